//! The output guard: checks a generated answer against the FAQ entries it cites.
//!
//! Rules ([`check_answer`]):
//! 1. every number in the answer (prices, dates, sizes, durations, phone numbers, times,
//!    percentages; Arabic digits or Chinese numerals before a unit) must appear in a cited
//!    entry, with a compatible unit (`5GB` does not support `5TB`; a bare `5` matches any);
//! 2. the answer must carry the key facts of the first cited entry: each of its numbers, and
//!    each quoted or bracketed term (`“忘记密码”`, `【设置】`) and menu step (`设置 > 订单`);
//! 3. no chat-template tokens or prompt delimiters may leak into it; it must not be empty.
//!
//! English number words (`thirty`) are not read; list markers (`1.` at a line start, `第2步`,
//! `step 3`) are not facts.

use std::fmt;

use crate::kb::Entry;
use crate::text::{self, is_cjk};

/// A number found in text, with its unit when one follows or precedes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fact {
    /// Canonical value: no thousands separators, no leading or trailing zeros (`1,000.50` → `1000.5`).
    pub value: String,
    /// Canonical unit (`cny`, `gb`, `day`, ...), if any.
    pub unit: Option<&'static str>,
    /// The text it was read from.
    pub surface: String,
}

/// One reason to distrust a generated answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Issue {
    /// Nothing but whitespace.
    Empty,
    /// A number the cited entries do not contain.
    UnsupportedFact(String),
    /// A key fact of the first cited entry that the answer lacks.
    MissingFact(String),
    /// Template tokens or prompt delimiters in the answer.
    Markup(String),
    /// The answer is not in the question's language.
    WrongLanguage,
    /// No entry was cited, so nothing can be checked.
    NoCitation,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Issue::Empty => write!(f, "empty answer"),
            Issue::UnsupportedFact(s) => write!(f, "unsupported fact {s:?}"),
            Issue::MissingFact(s) => write!(f, "missing fact {s:?}"),
            Issue::Markup(s) => write!(f, "leaked markup {s:?}"),
            Issue::WrongLanguage => write!(f, "wrong language"),
            Issue::NoCitation => write!(f, "no cited entry"),
        }
    }
}

/// The outcome of [`check_answer`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuardVerdict {
    /// Everything wrong; empty means accepted.
    pub issues: Vec<Issue>,
}

impl GuardVerdict {
    /// True when there is no issue.
    pub fn ok(&self) -> bool {
        self.issues.is_empty()
    }

    /// The issues as one line (`"ok"` when none).
    pub fn reason(&self) -> String {
        if self.ok() {
            return "ok".into();
        }
        self.issues
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Markers that must never appear in an answer.
const MARKUP: &[&str] = &[
    "<|",
    "|>",
    "<faq",
    "</faq",
    "<entry",
    "</entry",
    "<user_question",
    "</user_question",
    "<context",
    "</context",
    "<start_of_turn",
    "<end_of_turn",
    "[inst]",
    "[/inst]",
];

/// Checks `generated` against `cited` (the first is the primary entry).
pub fn check_answer(generated: &str, cited: &[&Entry]) -> GuardVerdict {
    let mut issues = Vec::new();
    if generated.trim().is_empty() {
        issues.push(Issue::Empty);
        return GuardVerdict { issues };
    }
    let Some(primary) = cited.first() else {
        issues.push(Issue::NoCitation);
        return GuardVerdict { issues };
    };
    let norm = text::normalize(generated);
    for m in MARKUP {
        if norm.contains(m) {
            issues.push(Issue::Markup((*m).to_string()));
        }
    }
    let mut kb_single = Vec::new();
    let mut kb_joined = Vec::new();
    for e in cited {
        for field in [&e.question, &e.answer] {
            let (single, joined) = facts_and_joins(field);
            kb_single.extend(single);
            kb_joined.extend(joined);
        }
    }
    let supports = |f: &Fact| {
        kb_single.iter().chain(&kb_joined).any(|s| {
            s.value == f.value && (s.unit.is_none() || f.unit.is_none() || s.unit == f.unit)
        })
    };
    let (said, said_joined) = facts_and_joins(generated);
    for f in &said {
        let ok = supports(f)
            || said_joined
                .iter()
                .any(|j| j.surface.contains(&f.surface) && supports(j));
        let issue = Issue::UnsupportedFact(f.surface.clone());
        if !ok && !issues.contains(&issue) {
            issues.push(issue);
        }
    }
    let said_values: Vec<&str> = said
        .iter()
        .chain(&said_joined)
        .map(|f| f.value.as_str())
        .collect();
    let (key, key_joined) = facts_and_joins(&primary.answer);
    let mut missing: Vec<String> = Vec::new();
    for f in key {
        let ok = said_values.contains(&f.value.as_str())
            || key_joined
                .iter()
                .any(|j| j.surface.contains(&f.surface) && said_values.contains(&j.value.as_str()));
        if !ok && !missing.contains(&f.surface) {
            missing.push(f.surface);
        }
    }
    for term in key_terms(&primary.answer) {
        if !norm.contains(&term) && !missing.contains(&term) {
            missing.push(term);
        }
    }
    issues.extend(missing.into_iter().map(Issue::MissingFact));
    GuardVerdict { issues }
}

/// Numbers of `s`, and separately the digit groups joined by `-` or a space
/// (`400-820-1234` gives `4008201234`), so a phone number written either way is found.
fn facts_and_joins(s: &str) -> (Vec<Fact>, Vec<Fact>) {
    let chars: Vec<char> = text::normalize(s).chars().collect();
    let found = scan(&chars);
    let mut joined = Vec::new();
    let mut i = 0;
    while i < found.len() {
        let mut j = i;
        while j + 1 < found.len()
            && found[j].1.unit.is_none()
            && found[j + 1].1.unit.is_none()
            && found[j + 1].0 == found[j].2 + 1
            && matches!(chars[found[j].2], '-' | ' ')
            && is_digits(&found[j].1.surface)
            && is_digits(&found[j + 1].1.surface)
        {
            j += 1;
        }
        if j > i {
            joined.push(Fact {
                value: found[i..=j].iter().map(|f| f.1.surface.as_str()).collect(),
                unit: None,
                surface: chars[found[i].0..found[j].2].iter().collect(),
            });
        }
        i = j + 1;
    }
    (found.into_iter().map(|f| f.1).collect(), joined)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Every number of `s` with its unit, in order.
pub fn extract_facts(s: &str) -> Vec<Fact> {
    let chars: Vec<char> = text::normalize(s).chars().collect();
    scan(&chars).into_iter().map(|f| f.1).collect()
}

/// Units after a number, longest first within a shared prefix. Latin units need a word end.
const UNITS: &[(&str, &str)] = &[
    ("个工作日", "workday"),
    ("工作日", "workday"),
    ("business days", "workday"),
    ("business day", "workday"),
    ("working days", "workday"),
    ("working day", "workday"),
    ("个月", "month"),
    ("个小时", "hour"),
    ("小时", "hour"),
    ("分钟", "minute"),
    ("星期", "week"),
    ("美元", "usd"),
    ("tb", "tb"),
    ("gb", "gb"),
    ("mb", "mb"),
    ("kb", "kb"),
    ("t", "tb"),
    ("g", "gb"),
    ("m", "mb"),
    ("元", "cny"),
    ("块", "cny"),
    ("rmb", "cny"),
    ("yuan", "cny"),
    ("cny", "cny"),
    ("usd", "usd"),
    ("dollars", "usd"),
    ("dollar", "usd"),
    ("%", "pct"),
    ("percent", "pct"),
    ("天", "day"),
    ("days", "day"),
    ("day", "day"),
    ("日", "day"),
    ("hours", "hour"),
    ("hour", "hour"),
    ("hrs", "hour"),
    ("h", "hour"),
    ("点", "hour"),
    ("minutes", "minute"),
    ("minute", "minute"),
    ("mins", "minute"),
    ("min", "minute"),
    ("月", "month"),
    ("months", "month"),
    ("month", "month"),
    ("年", "year"),
    ("years", "year"),
    ("year", "year"),
    ("周", "week"),
    ("weeks", "week"),
    ("week", "week"),
    ("次", "times"),
    ("times", "times"),
    ("倍", "multiple"),
    ("折", "zhe"),
    ("台", "device"),
    ("devices", "device"),
    ("device", "device"),
    ("人", "person"),
    ("位", "person"),
    ("people", "person"),
    ("users", "person"),
    ("members", "person"),
];

const CN_DIGITS: &str = "零〇一二两三四五六七八九";
const CN_ALL: &str = "零〇一二两三四五六七八九十百千万";

fn starts_with_at(chars: &[char], at: usize, pat: &str) -> bool {
    let mut k = at;
    for p in pat.chars() {
        if chars.get(k) != Some(&p) {
            return false;
        }
        k += 1;
    }
    // Latin units must end at a word boundary.
    !(pat.as_bytes()[pat.len() - 1].is_ascii_alphabetic()
        && chars.get(k).is_some_and(|c| c.is_ascii_alphabetic()))
}

fn unit_at(chars: &[char], mut at: usize) -> (Option<&'static str>, usize) {
    if chars.get(at) == Some(&' ') {
        at += 1;
    }
    for (pat, unit) in UNITS {
        if starts_with_at(chars, at, pat) {
            return (Some(unit), at + pat.chars().count());
        }
    }
    (None, at)
}

fn canonical(int: &str, frac: &str) -> String {
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

fn times_10000(v: &str) -> String {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let mut frac = frac.to_string();
    while frac.len() < 4 {
        frac.push('0');
    }
    let (head, tail) = frac.split_at(4);
    canonical(&format!("{int}{head}"), tail)
}

fn cn_value(run: &[char]) -> u64 {
    let (mut total, mut section, mut num) = (0u64, 0u64, 0u64);
    for &c in run {
        if let Some(d) = CN_DIGITS.chars().position(|x| x == c) {
            num = match d {
                0 | 1 => 0,
                2 => 1,
                3 | 4 => 2,
                _ => d as u64 - 2,
            };
            continue;
        }
        match c {
            '十' => section += num.max(1) * 10,
            '百' => section += num * 100,
            '千' => section += num * 1000,
            '万' => {
                total += (section + num) * 10000;
                section = 0;
            }
            _ => {}
        }
        num = 0;
    }
    total + section + num
}

/// Numbers with `(start, fact, end)` char positions in `chars` (normalised text).
fn scan(chars: &[char]) -> Vec<(usize, Fact, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric()) {
            let start = i;
            let mut int = String::new();
            let mut frac = String::new();
            while i < chars.len() {
                if chars[i].is_ascii_digit() {
                    int.push(chars[i]);
                    i += 1;
                } else if chars[i] == ','
                    && chars
                        .get(i + 1..i + 4)
                        .is_some_and(|d| d.iter().all(char::is_ascii_digit))
                    && !chars.get(i + 4).is_some_and(char::is_ascii_digit)
                {
                    i += 1;
                } else {
                    break;
                }
            }
            if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    frac.push(chars[i]);
                    i += 1;
                }
            }
            let digits_end = i;
            if is_list_marker(chars, start, digits_end, &int, &frac) {
                continue;
            }
            let mut value = canonical(&int, &frac);
            let mut end = digits_end;
            if chars.get(end) == Some(&'万') {
                value = times_10000(&value);
                end += 1;
            }
            let (mut unit, after) = unit_at(chars, end);
            if unit.is_some() {
                end = after;
            } else {
                unit = currency_before(chars, start);
            }
            out.push((
                start,
                Fact {
                    value,
                    unit,
                    surface: chars[start..end]
                        .iter()
                        .collect::<String>()
                        .trim()
                        .to_string(),
                },
                digits_end,
            ));
            i = digits_end.max(start + 1);
        } else if CN_ALL.contains(c) && (i == 0 || !CN_ALL.contains(chars[i - 1])) {
            let start = i;
            while i < chars.len() && CN_ALL.contains(chars[i]) {
                i += 1;
            }
            let (unit, after) = unit_at(chars, i);
            let v = cn_value(&chars[start..i]);
            let preceded_by_ordinal = start > 0 && chars[start - 1] == '第';
            // Only a Chinese unit makes a Chinese numeral a fact (`两台`, not `一个`).
            if let Some(unit) = unit.filter(|_| v >= 2 && !preceded_by_ordinal)
                && is_cjk(chars[after - 1])
            {
                out.push((
                    start,
                    Fact {
                        value: v.to_string(),
                        unit: Some(unit),
                        surface: chars[start..after].iter().collect(),
                    },
                    i,
                ));
            }
        } else {
            i += 1;
        }
    }
    out
}

fn currency_before(chars: &[char], start: usize) -> Option<&'static str> {
    let mut k = start;
    if k > 0 && chars[k - 1] == ' ' {
        k -= 1;
    }
    let before: String = chars[k.saturating_sub(3)..k].iter().collect();
    match chars.get(k.wrapping_sub(1)) {
        Some('¥' | '￥') => Some("cny"),
        Some('$') => Some("usd"),
        _ if before.ends_with("rmb") || before.ends_with("cny") => Some("cny"),
        _ if before.ends_with("usd") => Some("usd"),
        _ => None,
    }
}

/// `1.` / `2、` / `3)` at a line start, `第2步`, `step 3`: numbering, not facts.
fn is_list_marker(chars: &[char], start: usize, end: usize, int: &str, frac: &str) -> bool {
    if !frac.is_empty() || int.len() > 2 {
        return false;
    }
    let line_start = chars[..start]
        .iter()
        .rev()
        .take_while(|c| **c != '\n')
        .all(|c| c.is_whitespace() || matches!(c, '-' | '*' | '#'));
    let next = chars.get(end);
    if line_start && matches!(next, Some('.' | '、' | ')' | '）' | ':')) {
        return !chars.get(end + 1).is_some_and(char::is_ascii_digit);
    }
    let before: String = chars[start.saturating_sub(5)..start].iter().collect();
    (start > 0 && chars[start - 1] == '第') || before.trim_end().ends_with("step")
}

/// Quoted or bracketed terms and menu steps of an answer, normalised.
pub fn key_terms(answer: &str) -> Vec<String> {
    let chars: Vec<char> = text::normalize(answer).chars().collect();
    let mut terms: Vec<String> = Vec::new();
    let mut push = |t: String| {
        let t = t.trim().to_string();
        if !t.is_empty() && t.chars().count() <= 24 && !terms.contains(&t) {
            terms.push(t);
        }
    };
    const PAIRS: &[(char, char)] = &[
        ('“', '”'),
        ('「', '」'),
        ('『', '』'),
        ('【', '】'),
        ('"', '"'),
        ('‘', '’'),
    ];
    let mut i = 0;
    while i < chars.len() {
        if let Some(&(_, close)) = PAIRS.iter().find(|p| p.0 == chars[i])
            && let Some(len) = chars[i + 1..].iter().position(|&c| c == close)
        {
            let quoted: String = chars[i + 1..i + 1 + len].iter().collect();
            for part in quoted.split(['>', '→']) {
                push(part.to_string());
            }
            i += len + 2;
            continue;
        }
        if matches!(chars[i], '>' | '→') {
            push(word_before(&chars, i));
            push(word_after(&chars, i + 1));
        }
        i += 1;
    }
    terms
}

fn same_class(a: char, b: char) -> bool {
    (is_cjk(a) && is_cjk(b)) || (a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric())
}

fn word_before(chars: &[char], mut end: usize) -> String {
    while end > 0 && chars[end - 1] == ' ' {
        end -= 1;
    }
    if end == 0 || !(is_cjk(chars[end - 1]) || chars[end - 1].is_ascii_alphanumeric()) {
        return String::new();
    }
    let mut start = end - 1;
    while start > 0 && same_class(chars[start - 1], chars[end - 1]) {
        start -= 1;
    }
    chars[start..end].iter().collect()
}

fn word_after(chars: &[char], mut start: usize) -> String {
    while start < chars.len() && chars[start] == ' ' {
        start += 1;
    }
    if start >= chars.len() || !(is_cjk(chars[start]) || chars[start].is_ascii_alphanumeric()) {
        return String::new();
    }
    let mut end = start + 1;
    while end < chars.len() && same_class(chars[end], chars[start]) {
        end += 1;
    }
    chars[start..end].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::tests::fixture;

    fn facts(s: &str) -> Vec<(String, Option<&'static str>)> {
        extract_facts(s)
            .into_iter()
            .map(|f| (f.value, f.unit))
            .collect()
    }

    #[test]
    fn reads_numbers_with_units() {
        assert_eq!(
            facts("个人版每月 ¥15，年付 1,080.50 元，空间 2TB、5 GB，8折"),
            [
                ("15".into(), Some("cny")),
                ("1080.5".into(), Some("cny")),
                ("2".into(), Some("tb")),
                ("5".into(), Some("gb")),
                ("8".into(), Some("zhe")),
            ]
        );
        assert_eq!(
            facts("within 3 business days, $9.99/month, 30% off"),
            [
                ("3".into(), Some("workday")),
                ("9.99".into(), Some("usd")),
                ("30".into(), Some("pct")),
            ]
        );
        assert_eq!(
            facts("三十天内，两台设备，一个文件"),
            [("30".into(), Some("day")), ("2".into(), Some("device"))]
        );
        assert_eq!(facts("最多 1万 个文件"), [("10000".into(), None)]);
    }

    #[test]
    fn skips_list_markers_and_glued_identifiers() {
        assert_eq!(facts("1. 打开设置\n2、点击退款\n第3步 完成"), []);
        assert_eq!(facts("step 2: open mp4 files"), []);
        assert_eq!(facts("1.5GB"), [("1.5".into(), Some("gb"))]);
    }

    #[test]
    fn joins_phone_number_groups() {
        let (single, joined) = facts_and_joins("电话 400-820-1234");
        assert_eq!(single.len(), 3);
        assert_eq!(joined[0].value, "4008201234");
    }

    #[test]
    fn accepts_faithful_paraphrases() {
        let kb = fixture();
        let refund = kb.get("refund-1").unwrap();
        let v = check_answer(
            "您可以在购买后7天内，到“设置 > 订单”申请全额退款，款项会在3个工作日内原路退回。",
            &[refund],
        );
        assert!(v.ok(), "{}", v.reason());
        let human = kb.get("en-human").unwrap();
        let v = check_answer(
            "You can call 4008201234 between 9:00 and 21:00 every day, or use Contact Support in the app.",
            &[human],
        );
        assert!(v.ok(), "{}", v.reason());
    }

    #[test]
    fn rejects_invented_or_missing_facts() {
        let kb = fixture();
        let refund = kb.get("refund-1").unwrap();
        let v = check_answer(
            "购买后 30 天内可在“设置 > 订单”中申请退款，3 个工作日到账。",
            &[refund],
        );
        assert!(
            v.issues.contains(&Issue::UnsupportedFact("30 天".into())),
            "{v:?}"
        );
        assert!(
            v.issues.contains(&Issue::MissingFact("7 天".into())),
            "{v:?}"
        );
        let space = kb.get("space-1").unwrap();
        let v = check_answer("免费用户有 5TB 空间，专业版为 2TB。", &[space]);
        assert!(
            v.issues.contains(&Issue::UnsupportedFact("5tb".into())),
            "{v:?}"
        );
        let v = check_answer("购买后 7 天内申请，3 个工作日退回。", &[refund]);
        assert_eq!(
            v.issues,
            [
                Issue::MissingFact("设置".into()),
                Issue::MissingFact("订单".into())
            ]
        );
        assert!(!check_answer("<|im_start|>system", &[refund]).ok());
        assert_eq!(check_answer(" ", &[refund]).issues, [Issue::Empty]);
        assert_eq!(check_answer("hi", &[]).issues, [Issue::NoCitation]);
    }

    #[test]
    fn finds_key_terms() {
        assert_eq!(
            key_terms("在登录页点击“忘记密码”，或进入【账户】。Open Settings > Subscription."),
            ["忘记密码", "账户", "settings", "subscription"]
        );
    }
}
