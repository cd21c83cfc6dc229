//! Personal data redaction.
//!
//! Owns: finding personal contact and identity data in cleaned text and replacing it with
//! typed placeholders: Chinese resident ID numbers (18 characters, valid birth date and ISO
//! 7064 check digit) → `[身份证号]`, bank card numbers (16-19 digits, Luhn) → `[银行卡号]`,
//! mainland mobile numbers (optionally +86, spaces or dashes) → `[电话]`, e-mail addresses →
//! `[邮箱]`. Every replacement is counted by type. The check-digit rules are kefu-guard's
//! (`kefu_guard::pii`), so prepared data and live questions agree on what is personal data.
//!
//! Invariants: company contact points survive. 400/800 hotlines never look like mobiles and are
//! on the allow-list anyway; addresses at the company's domains (and subdomains) and any
//! `--allow-contact` pattern are kept. Numbers that fail their check (ID check digit, Luhn,
//! impossible birth date) are not touched, so order numbers and prices stay.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Kind of personal data found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Phone,
    IdCard,
    BankCard,
    Email,
}

impl PiiKind {
    /// Text that replaces a found item.
    pub fn placeholder(self) -> &'static str {
        match self {
            PiiKind::Phone => "[电话]",
            PiiKind::IdCard => "[身份证号]",
            PiiKind::BankCard => "[银行卡号]",
            PiiKind::Email => "[邮箱]",
        }
    }
}

/// Number of redactions of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactionCounts {
    pub phone: usize,
    pub id_card: usize,
    pub bank_card: usize,
    pub email: usize,
}

impl RedactionCounts {
    pub fn add(&mut self, kind: PiiKind, n: usize) {
        match kind {
            PiiKind::Phone => self.phone += n,
            PiiKind::IdCard => self.id_card += n,
            PiiKind::BankCard => self.bank_card += n,
            PiiKind::Email => self.email += n,
        }
    }

    pub fn merge(&mut self, other: &RedactionCounts) {
        self.phone += other.phone;
        self.id_card += other.id_card;
        self.bank_card += other.bank_card;
        self.email += other.email;
    }

    pub fn total(&self) -> usize {
        self.phone + self.id_card + self.bank_card + self.email
    }

    /// `(name, count)` pairs in a fixed order.
    pub fn by_kind(&self) -> [(&'static str, usize); 4] {
        [
            ("phone", self.phone),
            ("id_card", self.id_card),
            ("bank_card", self.bank_card),
            ("email", self.email),
        ]
    }
}

/// Contacts that are kept although they look personal.
#[derive(Debug, Clone)]
pub struct AllowList {
    /// E-mail domains whose addresses (and subdomains' addresses) are company addresses.
    domains: Vec<String>,
    /// Lower-cased e-mail patterns with `*` wildcards.
    emails: Vec<String>,
    /// Digit patterns with `*` wildcards, matched against a number's digits.
    numbers: Vec<String>,
}

/// Number patterns always allowed: national 400/800 service hotlines.
pub const HOTLINE_PATTERNS: &[&str] = &["400*", "800*"];

impl AllowList {
    /// `domains`: company e-mail domains; `contacts`: extra patterns, each a phone number or
    /// an e-mail address with optional `*` wildcards ("13800000000", "*@partner.example").
    pub fn new(domains: &[String], contacts: &[String]) -> Self {
        let mut list = AllowList {
            domains: domains
                .iter()
                .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
            emails: Vec::new(),
            numbers: HOTLINE_PATTERNS.iter().map(|p| p.to_string()).collect(),
        };
        for c in contacts {
            let c = c.trim();
            if c.contains('@') {
                list.emails.push(c.to_ascii_lowercase());
            } else {
                let digits: String = c
                    .chars()
                    .filter(|ch| ch.is_ascii_digit() || *ch == '*')
                    .collect();
                if !digits.is_empty() {
                    list.numbers.push(digits);
                }
            }
        }
        list
    }

    pub fn allows_email(&self, email: &str) -> bool {
        let email = email.to_ascii_lowercase();
        let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
        self.domains
            .iter()
            .any(|d| domain == d || domain.ends_with(&format!(".{d}")))
            || self.emails.iter().any(|p| glob(p, &email))
    }

    /// `number` as written; only its digits are compared ("+86 138-..." → "86138...").
    pub fn allows_number(&self, number: &str) -> bool {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        let national = digits.strip_prefix("86").filter(|d| d.len() == 11);
        self.numbers
            .iter()
            .any(|p| glob(p, &digits) || national.is_some_and(|n| glob(p, n)))
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

static ID_CARD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[0-9]{17}[0-9Xx]").expect("valid regex"));
static BANK_CARD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[0-9]{16,19}|[0-9]{4}(?:[ -][0-9]{4}){3}(?:[ -]?[0-9]{1,3})?")
        .expect("valid regex")
});
static MOBILE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}").expect("valid regex")
});
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
        .expect("valid regex")
});

pub use kefu_guard::pii::{is_valid_resident_id, luhn_valid};

/// Replaces the matches of `re` accepted by `accept` with `kind`'s placeholder. A match only
/// counts when it is not glued to more digits/letters (`boundary`), so fragments of longer
/// numbers are not redacted.
fn replace_checked(
    text: &str,
    re: &Regex,
    kind: PiiKind,
    boundary: fn(char) -> bool,
    accept: impl Fn(&str) -> bool,
    counts: &mut RedactionCounts,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut pos = 0;
    while let Some(m) = re.find_at(text, pos) {
        let before = text[..m.start()].chars().next_back();
        let after = text[m.end()..].chars().next();
        let bounded = !before.is_some_and(boundary) && !after.is_some_and(boundary);
        if bounded && accept(m.as_str()) {
            out.push_str(&text[last..m.start()]);
            out.push_str(kind.placeholder());
            counts.add(kind, 1);
            last = m.end();
            pos = m.end();
        } else {
            // Try again one character later: a shorter match may start inside this one.
            pos = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
        }
        if pos > text.len() {
            break;
        }
    }
    out.push_str(&text[last..]);
    out
}

fn digit_or_letter(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn digit(c: char) -> bool {
    c.is_ascii_digit()
}

fn email_boundary(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '@'
}

/// Redacts personal data from cleaned text.
#[derive(Debug, Clone)]
pub struct Redactor {
    allow: AllowList,
}

impl Redactor {
    pub fn new(allow: AllowList) -> Self {
        Redactor { allow }
    }

    /// Returns the redacted text; `counts` gains one per replacement.
    pub fn redact(&self, text: &str, counts: &mut RedactionCounts) -> String {
        // A replacement can free a neighbour that was glued to it ("a@b.com13812345678"):
        // repeat until nothing changes, so redacting twice finds nothing new.
        let mut current = self.redact_pass(text, counts);
        loop {
            let next = self.redact_pass(&current, counts);
            if next == current {
                return current;
            }
            current = next;
        }
    }

    fn redact_pass(&self, text: &str, counts: &mut RedactionCounts) -> String {
        let allow = &self.allow;
        let text = replace_checked(
            text,
            &ID_CARD,
            PiiKind::IdCard,
            digit_or_letter,
            is_valid_resident_id,
            counts,
        );
        let text = replace_checked(
            &text,
            &BANK_CARD,
            PiiKind::BankCard,
            digit,
            |m| {
                let digits = m.chars().filter(char::is_ascii_digit).count();
                (16..=19).contains(&digits) && luhn_valid(m) && !allow.allows_number(m)
            },
            counts,
        );
        let text = replace_checked(
            &text,
            &MOBILE,
            PiiKind::Phone,
            digit,
            |m| !allow.allows_number(m),
            counts,
        );
        replace_checked(
            &text,
            &EMAIL,
            PiiKind::Email,
            email_boundary,
            |m| !allow.allows_email(m),
            counts,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor::new(AllowList::new(&["cloudsail.example".into()], &[]))
    }

    #[track_caller]
    fn check(before: &str, after: &str, expected: RedactionCounts) {
        let mut counts = RedactionCounts::default();
        assert_eq!(
            redactor().redact(before, &mut counts),
            after,
            "redacting {before:?}"
        );
        assert_eq!(counts, expected, "counts for {before:?}");
    }

    const NONE: RedactionCounts = RedactionCounts {
        phone: 0,
        id_card: 0,
        bank_card: 0,
        email: 0,
    };

    #[test]
    fn mobiles_are_redacted() {
        let one = RedactionCounts { phone: 1, ..NONE };
        check("联系王先生 13812345678。", "联系王先生 [电话]。", one);
        check("call +86 138-1234-5678 now", "call [电话] now", one);
        check("手机：+8613912345678", "手机：[电话]", one);
        check("tel 159 1234 5678", "tel [电话]", one);
    }

    #[test]
    fn hotlines_and_other_numbers_are_kept() {
        for text in [
            "客服热线 400-820-1234，或 4008201234",
            "800-810-5678",
            "订单号 202403150000123456",
            "12345678901",  // starts with 12: not a mobile prefix
            "138123456789", // 12 digits: not a mobile
            "价格 ¥12/月，¥2.5/月",
            "座机 021-61234567",
            "版本 13.8.1234",
        ] {
            check(text, text, NONE);
        }
    }

    #[test]
    fn allow_list_keeps_listed_contacts() {
        let r = Redactor::new(AllowList::new(
            &["cloudsail.example".into()],
            &["138-0000-0000".into(), "*@partner.example".into()],
        ));
        let mut counts = RedactionCounts::default();
        let text = "值班手机 13800000000，合作方 ops@partner.example，个人 13812345678";
        assert_eq!(
            r.redact(text, &mut counts),
            "值班手机 13800000000，合作方 ops@partner.example，个人 [电话]"
        );
        assert_eq!(counts.total(), 1);
    }

    #[test]
    fn resident_ids_need_a_valid_check_digit() {
        let one = RedactionCounts { id_card: 1, ..NONE };
        check(
            "身份证号 310104198507153218，",
            "身份证号 [身份证号]，",
            one,
        );
        check("ID 11010519491231002X.", "ID [身份证号].", one);
        check("ID 11010519491231002x", "ID [身份证号]", one);
        // Wrong check digit, impossible date, embedded in a longer number: kept.
        check("310104198507153217", "310104198507153217", NONE);
        check("310104198513153218", "310104198513153218", NONE);
        check("9310104198507153218", "9310104198507153218", NONE);
        assert!(is_valid_resident_id("44030519920308172X"));
        assert!(!is_valid_resident_id("04030519920308172X"));
    }

    #[test]
    fn bank_cards_need_luhn() {
        let one = RedactionCounts {
            bank_card: 1,
            ..NONE
        };
        check("卡号 6222021234567890128。", "卡号 [银行卡号]。", one);
        check("card 6217 0000 1234 5678 907", "card [银行卡号]", one);
        check("4111-1111-1111-1111", "[银行卡号]", one);
        check("6222021234567890127", "6222021234567890127", NONE);
        check("订单 2024031500001234", "订单 2024031500001234", NONE);
    }

    #[test]
    fn personal_emails_are_redacted_company_ones_kept() {
        let one = RedactionCounts { email: 1, ..NONE };
        check(
            "发邮件至 wangxs1988@163.com 或 support@cloudsail.example。",
            "发邮件至 [邮箱] 或 support@cloudsail.example。",
            one,
        );
        check("Li.Na+faq@Gmail.COM", "[邮箱]", one);
        check("Write to li@qq.com.", "Write to [邮箱].", one);
        check(
            "billing@eu.cloudsail.example",
            "billing@eu.cloudsail.example",
            NONE,
        );
        check("a@cloudsail.example.evil.com", "[邮箱]", one);
        check("user@localhost 与 @提及", "user@localhost 与 @提及", NONE);
    }

    #[test]
    fn mixed_text_counts_each_kind() {
        let mut counts = RedactionCounts::default();
        let text = "张三 13812345678 li@qq.com 310104198507153218 6222021234567890128 400-820-1234";
        let out = redactor().redact(text, &mut counts);
        assert_eq!(out, "张三 [电话] [邮箱] [身份证号] [银行卡号] 400-820-1234");
        assert_eq!(
            counts,
            RedactionCounts {
                phone: 1,
                id_card: 1,
                bank_card: 1,
                email: 1
            }
        );
        // Redacting again finds nothing: placeholders hold no digits or addresses.
        let mut again = RedactionCounts::default();
        assert_eq!(redactor().redact(&out, &mut again), out);
        assert_eq!(again.total(), 0);
    }

    #[test]
    fn freed_neighbours_are_redacted_too() {
        let mut counts = RedactionCounts::default();
        let out = redactor().redact("x@y.com13812345678", &mut counts);
        assert_eq!(out, "[邮箱][电话]");
        assert_eq!(counts.total(), 2);
    }

    proptest::proptest! {
        #[test]
        fn redaction_never_panics_and_is_idempotent(
            s in r"([0-9]{1,19}|[ +\-.@xX]|[a-z]{1,4}|\.com|@cloudsail\.example|13812345678|手机){0,20}"
        ) {
            let mut counts = RedactionCounts::default();
            let once = redactor().redact(&s, &mut counts);
            let mut again = RedactionCounts::default();
            proptest::prop_assert_eq!(redactor().redact(&once, &mut again), once);
            proptest::prop_assert_eq!(again.total(), 0);
        }
    }

    #[test]
    fn glob_matches_wildcards() {
        assert!(glob("400*", "4008201234"));
        assert!(!glob("400*", "8004001234"));
        assert!(glob("*@x.example", "a@x.example"));
        assert!(glob("1*5*8", "12345678"));
        assert!(!glob("1*5*8", "15"));
        assert!(glob("abc", "abc"));
    }
}
