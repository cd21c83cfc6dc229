//! Fact extraction: what a support answer must get right to be useful.
//!
//! From a reference answer this takes
//! - quantities: a number with its unit or currency, canonicalised (`¥25/人/月`, `25 元` and
//!   `25元` are all `25元`; `10 TB` is `10tb`; `3-5 个工作日` gives `3` and `5工作日`);
//! - bare numbers (`Windows 10`, `TLS 1.3`, `9:00`);
//! - key terms: phone numbers, URLs, e-mail addresses, acronyms and model names (`SSO`,
//!   `AES-256`, `macOS`), quoted words (`“转人工”`, `"agent"`) and menu items around `>`
//!   (`设置 > 订单与发票`).
//!
//! An answer states a quantity when it has the same number with the same canonical unit, a bare
//! number when it has that number in any form, a term when its normalised text contains it.
//! Numbers written in Chinese numerals (`三天`) are not recognised.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::text::normalize;

/// What kind of fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    /// A number with a unit or currency.
    Quantity,
    /// A number without a unit.
    Number,
    /// A phone number, URL, e-mail, acronym, quoted word or menu item.
    Term,
}

/// One checkable fact, canonicalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fact {
    pub kind: FactKind,
    /// Canonical text: `25元`, `10tb`, `9:00`, `sso`.
    pub text: String,
    /// The number of a quantity or bare number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

/// Which facts of a reference an answer states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactScore {
    pub total: usize,
    pub found: usize,
    /// Canonical texts of the facts the answer lacks.
    pub missing: Vec<String>,
}

impl FactScore {
    /// Share of facts found; `None` when the reference has none.
    pub fn recall(&self) -> Option<f64> {
        (self.total > 0).then(|| self.found as f64 / self.total as f64)
    }
}

const UNITS: &str = "个工作日|工作日|个月|小时|分钟|元|块|天|日|周|年|月|人|位|次|台|个|份|倍|折|秒|%|tb|gb|mb|kb|working days?|business days?|days?|hours?|minutes?|mins?|weeks?|months?|years?|yuan|rmb|cny|usd|seats?|people|users?|members?|devices?|copies|times";

static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?P<phone>\d{{3,4}}-\d{{3,4}}-\d{{3,4}})|(?:(?P<cur>[¥$]|rmb|cny|usd)\s*)?(?P<num>\d+(?:,\d{{3}})*(?:[.:]\d+)*)(?:\s*(?P<unit>{UNITS}))?"
    ))
    .expect("static regex")
});
static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"https?://[a-z0-9./_\-?=&%#~+]+").expect("static regex"));
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[a-z0-9._+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)+").expect("static regex")
});
static WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)[A-Za-z][A-Za-z0-9]*(?:[-+][A-Za-z0-9]+)*(?-u:\b)").expect("static regex")
});
static QUOTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"[“"「『‘]([^“”"「」『』‘’\n]{1,20})[”"」』’]"#).expect("static regex")
});

/// Canonical unit: one spelling per meaning, Chinese or English alike.
fn canonical_unit(unit: &str) -> &'static str {
    let u = unit.trim_end_matches('s');
    match u {
        "元" | "块" | "yuan" | "rmb" | "cny" | "¥" => "元",
        "$" | "usd" => "usd",
        "个工作日" | "工作日" | "working day" | "business day" => "工作日",
        "天" | "日" | "day" => "天",
        "小时" | "hour" => "小时",
        "分钟" | "minute" | "min" => "分钟",
        "个月" | "月" | "month" => "月",
        "年" | "year" => "年",
        "周" | "week" => "周",
        "人" | "位" | "people" | "user" | "member" | "seat" => "人",
        "次" | "time" => "次",
        "台" | "device" => "台",
        "份" | "copie" => "份",
        "倍" => "倍",
        "折" => "折",
        "秒" => "秒",
        "%" => "%",
        "tb" => "tb",
        "gb" => "gb",
        "mb" => "mb",
        "kb" => "kb",
        _ => "",
    }
}

/// `1,000` -> `1000`, `12.50` -> `12.5`, `2.0` -> `2`; times (`9:00`) stay as written.
fn canonical_number(num: &str) -> String {
    let n = num.replace(',', "");
    if n.contains('.') && !n.contains(':') && n.matches('.').count() == 1 {
        return n.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    n
}

/// Quantities and bare numbers of normalised text, in order of appearance.
fn numeric_facts(norm: &str, out: &mut Vec<Fact>) {
    for caps in QUANTITY.captures_iter(norm) {
        if let Some(phone) = caps.name("phone") {
            out.push(Fact {
                kind: FactKind::Term,
                text: phone.as_str().to_string(),
                number: None,
            });
            continue;
        }
        let Some(num) = caps.name("num") else {
            continue;
        };
        let number = canonical_number(num.as_str());
        let unit = match (caps.name("cur"), caps.name("unit")) {
            (Some(cur), _) => canonical_unit(cur.as_str()),
            (None, Some(unit)) => canonical_unit(unit.as_str()),
            (None, None) => "",
        };
        let (kind, text) = if unit.is_empty() {
            (FactKind::Number, number.clone())
        } else {
            (FactKind::Quantity, format!("{number}{unit}"))
        };
        out.push(Fact {
            kind,
            text,
            number: Some(number),
        });
    }
}

fn term(text: &str) -> Fact {
    Fact {
        kind: FactKind::Term,
        text: text.split_whitespace().collect::<String>().to_lowercase(),
        number: None,
    }
}

/// Menu items on both sides of each `>` (`我的 > 帮助与客服 > 在线客服`).
fn menu_items(norm: &str, out: &mut Vec<Fact>) {
    let chars: Vec<char> = norm.chars().collect();
    let is_item = |c: char| c.is_alphanumeric() || c == '&';
    for (i, &c) in chars.iter().enumerate() {
        if c != '>' {
            continue;
        }
        let mut j = i;
        while j > 0 && chars[j - 1] == ' ' {
            j -= 1;
        }
        let end = j;
        while j > 0 && is_item(chars[j - 1]) {
            j -= 1;
        }
        if j < end {
            out.push(term(&chars[j..end].iter().collect::<String>()));
        }
        let mut k = i + 1;
        while k < chars.len() && chars[k] == ' ' {
            k += 1;
        }
        let start = k;
        while k < chars.len() && is_item(chars[k]) {
            k += 1;
        }
        if start < k {
            out.push(term(&chars[start..k].iter().collect::<String>()));
        }
    }
}

/// The facts of `text`, deduplicated, in order of appearance.
pub fn extract_facts(text: &str) -> Vec<Fact> {
    use unicode_normalization::UnicodeNormalization;
    let nfkc: String = text.nfkc().collect();
    let norm = nfkc.to_lowercase();
    let mut facts = Vec::new();
    let mut masked = norm.clone();
    for re in [&*URL, &*EMAIL] {
        for m in re.find_iter(&norm) {
            facts.push(term(m.as_str().trim_end_matches('.')));
            // Numbers inside URLs and addresses are not facts of their own.
            masked.replace_range(m.range(), &" ".repeat(m.len()));
        }
    }
    numeric_facts(&masked, &mut facts);
    for m in WORD.find_iter(&nfkc) {
        let w = m.as_str();
        let upper = w.chars().filter(char::is_ascii_uppercase).count();
        let digit = w.chars().any(|c| c.is_ascii_digit());
        // Unit and currency words (`TB`, `RMB`) belong to their quantities, not to the terms.
        let unit = !canonical_unit(&w.to_lowercase()).is_empty();
        if (upper >= 2 || digit) && !unit && !norm[m.range()].starts_with("http") {
            facts.push(term(w));
        }
    }
    for caps in QUOTED.captures_iter(&nfkc) {
        facts.push(term(&caps[1]));
    }
    menu_items(&norm, &mut facts);
    let mut seen = HashSet::new();
    facts.retain(|f| !f.text.is_empty() && seen.insert((f.kind, f.text.clone())));
    facts
}

/// Which facts of `reference` the `answer` states.
pub fn fact_score(reference: &str, answer: &str) -> FactScore {
    let facts = extract_facts(reference);
    let answer_facts = extract_facts(answer);
    let quantities: HashSet<&str> = answer_facts
        .iter()
        .filter(|f| f.kind == FactKind::Quantity)
        .map(|f| f.text.as_str())
        .collect();
    let numbers: HashSet<&str> = answer_facts
        .iter()
        .filter_map(|f| f.number.as_deref())
        .collect();
    let flat: String = normalize(answer).split_whitespace().collect();
    let mut missing = Vec::new();
    for f in &facts {
        let present = match f.kind {
            FactKind::Quantity => quantities.contains(f.text.as_str()),
            FactKind::Number => numbers.contains(f.text.as_str()),
            FactKind::Term => flat.contains(&f.text),
        };
        if !present {
            missing.push(f.text.clone());
        }
    }
    FactScore {
        total: facts.len(),
        found: facts.len() - missing.len(),
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        extract_facts(text).into_iter().map(|f| f.text).collect()
    }

    #[test]
    fn prices_and_sizes() {
        assert_eq!(texts("99元"), ["99元"]);
        assert_eq!(texts("12.5 元"), ["12.5元"]);
        assert_eq!(texts("10TB"), ["10tb"]);
        assert_eq!(texts("１０ＴＢ"), ["10tb"]);
        assert_eq!(texts("¥25/人/月"), ["25元"]);
        assert_eq!(texts("￥12.50"), ["12.5元"]);
        assert_eq!(texts("RMB 1,000"), ["1000元"]);
        assert_eq!(texts("a 100GB pack"), ["100gb"]);
    }

    #[test]
    fn units_have_one_spelling() {
        assert_eq!(texts("3-5 个工作日"), ["3", "5工作日"]);
        assert_eq!(texts("within 7 days"), ["7天"]);
        assert_eq!(texts("保留 30 天"), ["30天"]);
        assert_eq!(texts("最少购买 3 个席位"), ["3"]);
    }

    #[test]
    fn bare_numbers_times_and_terms() {
        assert_eq!(
            texts("Windows 10 及以上，TLS 1.3，AES-256 加密，支持 SSO。"),
            ["10", "1.3", "256", "tls", "aes-256", "sso"]
        );
        assert_eq!(texts("9:00 to 21:00"), ["9:00", "21:00"]);
        assert_eq!(texts("热线 400-820-1234"), ["400-820-1234"]);
    }

    #[test]
    fn urls_emails_quotes_and_menus() {
        assert_eq!(
            texts("在 https://cloudsail.example/download 下载"),
            ["https://cloudsail.example/download"]
        );
        assert_eq!(
            texts("Write to support@cloudsail.example."),
            ["support@cloudsail.example"]
        );
        assert_eq!(texts("发送“转人工”"), ["转人工"]);
        assert_eq!(texts(r#"type "agent""#), ["agent"]);
        assert_eq!(texts("在 设置 > 订单与发票 中申请"), ["设置", "订单与发票"]);
    }

    #[test]
    fn answer_states_facts_in_other_forms() {
        let reference =
            "团队版按成员数计费：¥25/人/月，或年付 ¥250/人/年，最少购买 3 个席位。每位成员 1TB。";
        let answer = "团队版每人每月25元，年付250元每人，至少3个席位，每人 1 TB。";
        let s = fact_score(reference, answer);
        assert_eq!((s.found, s.total), (4, 4), "{s:?}");
        assert_eq!(s.recall(), Some(1.0));
    }

    #[test]
    fn missing_and_wrong_facts() {
        let s = fact_score("专业版 ¥30/月，2TB 空间", "专业版每月 25 元，有 2TB 空间");
        assert_eq!((s.found, s.total), (1, 2));
        assert_eq!(s.missing, ["30元"]);
        let none = fact_score("您好，请稍等。", "好的");
        assert_eq!(none.total, 0);
        assert_eq!(none.recall(), None);
    }
}
