//! PII masking of user text before it reaches the model or a log line.
//!
//! Masked, each as a typed placeholder in the message's language:
//! - mainland mobile numbers: `1[3-9]` + 9 digits, optionally `+86`/`86`, optionally split by
//!   spaces or hyphens (`138 1234 5678`) → `[电话]` / `[PHONE]`;
//! - resident identity numbers: 17 digits + check character with a valid ISO 7064 check and
//!   a plausible birth date → `[身份证]` / `[ID_NUMBER]`;
//! - bank cards: 16-19 digits (groups allowed) passing the Luhn check → `[银行卡]` /
//!   `[CARD_NUMBER]`;
//! - e-mail addresses, except on allow-listed domains (and their subdomains) → `[邮箱]` /
//!   `[EMAIL]`.
//!
//! Kept: 400/800 service hotlines, landlines, short numbers, digit strings that fail the
//! checks (order numbers). Full-width digits and letters are read as ASCII.

use crate::text::Lang;

/// A kind of personal data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// Mainland mobile number.
    Phone,
    /// Resident identity card number.
    IdCard,
    /// Bank card number.
    BankCard,
    /// Personal e-mail address.
    Email,
}

impl PiiKind {
    /// The placeholder that replaces it.
    pub fn placeholder(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (PiiKind::Phone, Lang::Zh) => "[电话]",
            (PiiKind::IdCard, Lang::Zh) => "[身份证]",
            (PiiKind::BankCard, Lang::Zh) => "[银行卡]",
            (PiiKind::Email, Lang::Zh) => "[邮箱]",
            (PiiKind::Phone, Lang::En) => "[PHONE]",
            (PiiKind::IdCard, Lang::En) => "[ID_NUMBER]",
            (PiiKind::BankCard, Lang::En) => "[CARD_NUMBER]",
            (PiiKind::Email, Lang::En) => "[EMAIL]",
        }
    }
}

/// Masked text and what was found, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Masked {
    /// The text with placeholders.
    pub text: String,
    /// Kinds replaced, one per occurrence.
    pub found: Vec<PiiKind>,
}

fn fold(c: char) -> char {
    match c as u32 {
        0xFF10..=0xFF19
        | 0xFF21..=0xFF3A
        | 0xFF41..=0xFF5A
        | 0xFF20
        | 0xFF0B
        | 0xFF0D
        | 0xFF0E
        | 0xFF3F => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// Replaces personal data in `text` with placeholders in `lang`. `allow_domains` are
/// lower-case e-mail domains that stay visible.
pub fn mask_pii(text: &str, lang: Lang, allow_domains: &[String]) -> Masked {
    let chars: Vec<char> = text.chars().map(fold).collect();
    let mut spans: Vec<(usize, usize, PiiKind)> = Vec::new();
    emails(&chars, allow_domains, &mut spans);
    numbers(&chars, &mut spans);
    spans.sort_by_key(|s| s.0);
    let mut out = String::with_capacity(text.len());
    let mut found = Vec::new();
    let mut i = 0;
    for (start, end, kind) in spans {
        if start < i {
            continue;
        }
        out.extend(&chars[i..start]);
        out.push_str(kind.placeholder(lang));
        found.push(kind);
        i = end;
    }
    out.extend(&chars[i..]);
    Masked { text: out, found }
}

fn is_local(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-')
}

fn is_domain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-')
}

fn emails(chars: &[char], allow: &[String], spans: &mut Vec<(usize, usize, PiiKind)>) {
    for at in (0..chars.len()).filter(|&i| chars[i] == '@') {
        let mut start = at;
        while start > 0 && is_local(chars[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < chars.len() && is_domain(chars[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(chars[end - 1], '.' | '-') {
            end -= 1;
        }
        if start == at || end == at + 1 {
            continue;
        }
        let domain: String = chars[at + 1..end].iter().collect::<String>().to_lowercase();
        let Some((_, tld)) = domain.rsplit_once('.') else {
            continue;
        };
        if tld.len() < 2 || !tld.bytes().all(|b| b.is_ascii_alphabetic()) {
            continue;
        }
        let allowed = allow
            .iter()
            .any(|a| domain == *a || domain.ends_with(&format!(".{a}")));
        if !allowed {
            spans.push((start, end, PiiKind::Email));
        }
    }
}

/// Digit groups joined by single spaces or hyphens: `(start, end)` char ranges.
fn digit_groups(chars: &[char], from: usize) -> Vec<(usize, usize)> {
    let mut groups = Vec::new();
    let mut i = from;
    loop {
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            break;
        }
        if i < chars.len() && matches!(chars[i], 'x' | 'X') && i - start == 18 - 1 {
            i += 1;
        }
        groups.push((start, i));
        if i + 1 < chars.len() && matches!(chars[i], ' ' | '-') && chars[i + 1].is_ascii_digit() {
            i += 1;
        } else {
            break;
        }
    }
    groups
}

fn numbers(chars: &[char], spans: &mut Vec<(usize, usize, PiiKind)>) {
    let mut i = 0;
    while i < chars.len() {
        let starts_number = chars[i].is_ascii_digit()
            && (i == 0 || !(chars[i - 1].is_ascii_digit() || chars[i - 1] == '.'));
        if !starts_number {
            i += 1;
            continue;
        }
        let groups = digit_groups(chars, i);
        let last_end = groups.last().map_or(i + 1, |g| g.1);
        let mut matched_to = None;
        'outer: for s in 0..groups.len() {
            for e in (s + 1..=groups.len()).rev() {
                let digits: String = groups[s..e]
                    .iter()
                    .flat_map(|&(a, b)| chars[a..b].iter())
                    .collect();
                if let Some(kind) = classify(&digits) {
                    let mut start = groups[s].0;
                    if kind == PiiKind::Phone
                        && digits.len() == 13
                        && start > 0
                        && chars[start - 1] == '+'
                    {
                        start -= 1;
                    }
                    spans.push((start, groups[e - 1].1, kind));
                    matched_to = Some(e);
                    break 'outer;
                }
            }
        }
        i = match matched_to {
            Some(e) if e < groups.len() => groups[e].0,
            _ => last_end,
        };
    }
}

fn classify(d: &str) -> Option<PiiKind> {
    let b = d.as_bytes();
    let mobile = |m: &[u8]| m.len() == 11 && m[0] == b'1' && (b'3'..=b'9').contains(&m[1]);
    if mobile(b) || (b.len() == 13 && b.starts_with(b"86") && mobile(&b[2..])) {
        return Some(PiiKind::Phone);
    }
    if is_valid_resident_id(d) {
        return Some(PiiKind::IdCard);
    }
    if (16..=19).contains(&b.len()) && b.iter().all(u8::is_ascii_digit) && luhn_valid(d) {
        return Some(PiiKind::BankCard);
    }
    None
}

/// True when the 18-character `id` is a plausible resident ID: region code not starting with
/// 0, a real birth date, and the right check digit.
pub fn is_valid_resident_id(id: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) || b[0] == b'0' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| id[r].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if !(1900..=2100).contains(&year) || day == 0 || day > days {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK[(sum % 11) as usize] == b[17].to_ascii_uppercase()
}

/// Luhn checksum over the digits of `number`.
pub fn luhn_valid(number: &str) -> bool {
    let digits: Vec<u32> = number.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 2 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zh(s: &str) -> String {
        mask_pii(s, Lang::Zh, &["cloudsail.example".to_string()]).text
    }

    #[test]
    fn masks_mobile_numbers_in_common_shapes() {
        assert_eq!(zh("我的手机13812345678，"), "我的手机[电话]，");
        assert_eq!(zh("电话 138 1234 5678 谢谢"), "电话 [电话] 谢谢");
        assert_eq!(zh("+86 138-1234-5678"), "[电话]");
        assert_eq!(zh("+8613812345678"), "[电话]");
        assert_eq!(zh("１３８１２３４５６７８"), "[电话]");
        assert_eq!(
            mask_pii("call 13912345678", Lang::En, &[]).text,
            "call [PHONE]"
        );
    }

    #[test]
    fn keeps_hotlines_order_numbers_and_longer_runs() {
        assert_eq!(zh("客服 400-820-1234"), "客服 400-820-1234");
        assert_eq!(zh("800 820 1234"), "800 820 1234");
        assert_eq!(zh("订单 20240501123"), "订单 20240501123");
        assert_eq!(zh("12345678901234"), "12345678901234");
        assert_eq!(zh("版本 1.13812345678"), "版本 1.13812345678");
    }

    #[test]
    fn masks_resident_ids_with_valid_check_digit_only() {
        assert_eq!(zh("身份证11010519491231002X"), "身份证[身份证]");
        assert_eq!(zh("身份证 11010519491231002x。"), "身份证 [身份证]。");
        assert_eq!(zh("110105194912310021"), "110105194912310021");
    }

    #[test]
    fn masks_luhn_valid_cards() {
        assert_eq!(zh("卡号6222021234567890128"), "卡号[银行卡]");
        assert_eq!(zh("卡号 4111 1111 1111 1111"), "卡号 [银行卡]");
        assert_eq!(zh("6222021234567890123"), "6222021234567890123");
    }

    #[test]
    fn masks_personal_email_but_not_company_domain() {
        let m = mask_pii(
            "write to Zhang.San+x@gmail.com or help@cloudsail.example or a@mail.cloudsail.example.",
            Lang::En,
            &["cloudsail.example".to_string()],
        );
        assert_eq!(
            m.text,
            "write to [EMAIL] or help@cloudsail.example or a@mail.cloudsail.example."
        );
        assert_eq!(m.found, [PiiKind::Email]);
        assert_eq!(zh("邮箱：张三 abc@qq.com"), "邮箱：张三 [邮箱]");
        assert_eq!(zh("@someone hi, a@b"), "@someone hi, a@b");
    }

    #[test]
    fn reports_everything_found() {
        let m = mask_pii(
            "13812345678 / 4111111111111111 / 11010519491231002X / x@y.cn",
            Lang::Zh,
            &[],
        );
        assert_eq!(
            m.found,
            [
                PiiKind::Phone,
                PiiKind::BankCard,
                PiiKind::IdCard,
                PiiKind::Email
            ]
        );
    }
}
