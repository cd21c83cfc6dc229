//! Text cleaning that keeps meaning.
//!
//! Owns: turning exported FAQ text into plain text. It strips HTML tags and decodes entities,
//! folds full-width ASCII letters/digits/symbols, the ideographic space and ligatures to their
//! plain forms (the part of NFKC that does not change meaning), applies NFC, drops emoji,
//! control and zero-width characters, removes decorative 【】/〖〗 brackets around words,
//! squeezes runs of ?/？ and !/！, and collapses whitespace (keeping single line breaks, which
//! separate list items).
//!
//! Invariants: every other character survives. Punctuation, digits, decimal points, list
//! markers ("1. "), units, URLs, product names and Chinese punctuation (，。！？：；（）～) are
//! kept as written; "AES-256", "12.5 元" and "1. 打开设置" come out unchanged. Cleaning is
//! idempotent: `clean_text(&clean_text(s)) == clean_text(s)`.
//!
//! Does not own: personal data (see `pii`) or duplicate detection (see `dedup`).

use std::sync::LazyLock;

use regex::{Captures, Regex};
use unicode_normalization::UnicodeNormalization;

/// Cleans one field (question, answer or tag).
pub fn clean_text(text: &str) -> String {
    // Each pass is deterministic; steps can expose work for earlier ones (an entity that
    // decodes to a full-width letter, a tag spelled in full-width brackets), so repeat until
    // nothing changes. Real text settles in one or two passes.
    let mut current = clean_pass(text);
    for _ in 0..8 {
        let next = clean_pass(&current);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn clean_pass(text: &str) -> String {
    let text = strip_markup(text);
    let text = normalize_chars(&text);
    let text = trim_decorative_brackets(&text);
    let text = squeeze_repeats(&text);
    collapse_whitespace(&text)
}

static BLOCK_ELEMENTS: &str = "p|div|br|li|ul|ol|tr|table|thead|tbody|h[1-6]|hr|blockquote|pre|section|article|header|footer|dd|dt|dl";
static INLINE_ELEMENTS: &str = "a|b|i|u|s|em|strong|span|font|small|big|sub|sup|code|td|th|img|mark|del|ins|label|center|html|body|head|meta|link|title|abbr|cite|q|tt|nobr|wbr";

static SCRIPT_OR_STYLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)<script\b[^>]*>.*?</script\s*>|<style\b[^>]*>.*?</style\s*>|<!--.*?-->")
        .expect("valid regex")
});
static BLOCK_TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)</?(?:{BLOCK_ELEMENTS})(?:\s[^<>]*)?/?>")).expect("valid regex")
});
static INLINE_TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)</?(?:{INLINE_ELEMENTS})(?:\s[^<>]*)?/?>")).expect("valid regex")
});
static ENTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,15});")
        .expect("valid regex")
});

/// Removes HTML: script/style blocks and comments go, block-level tags become line breaks,
/// inline tags vanish, entities are decoded. Only known HTML element names count as tags, so
/// text such as "a < b" or `文件名不能包含 < > |` is left alone.
pub fn strip_markup(text: &str) -> String {
    if !text.contains(['<', '&']) {
        return text.to_string();
    }
    let mut current = text.to_string();
    loop {
        let next = SCRIPT_OR_STYLE.replace_all(&current, "");
        let next = BLOCK_TAG.replace_all(&next, "\n");
        let next = INLINE_TAG.replace_all(&next, "");
        let next = ENTITY.replace_all(&next, |c: &Captures| decode_entity(&c[1]));
        if next == current {
            return current;
        }
        current = next.into_owned();
    }
}

fn decode_entity(body: &str) -> String {
    if let Some(num) = body.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => num.parse::<u32>().ok(),
        };
        return code
            .and_then(char::from_u32)
            .filter(|c| *c != '\0')
            .map(String::from)
            .unwrap_or_default();
    }
    let decoded = match body {
        "nbsp" | "ensp" | "emsp" | "thinsp" => " ",
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        "copy" => "©",
        "reg" => "®",
        "trade" => "™",
        "hellip" => "…",
        "mdash" => "—",
        "ndash" => "–",
        "middot" => "·",
        "bull" => "•",
        "ldquo" => "“",
        "rdquo" => "”",
        "lsquo" => "‘",
        "rsquo" => "’",
        "laquo" => "«",
        "raquo" => "»",
        "yen" => "¥",
        "times" => "×",
        "divide" => "÷",
        "deg" => "°",
        "plusmn" => "±",
        "sup2" => "²",
        "sup3" => "³",
        "euro" => "€",
        "pound" => "£",
        "cent" => "¢",
        "sect" => "§",
        "larr" => "←",
        "rarr" => "→",
        "uarr" => "↑",
        "darr" => "↓",
        "shy" | "zwj" | "zwnj" | "lrm" | "rlm" => "",
        // Unknown names stay as written (they may be plain text such as "&foo;").
        _ => return format!("&{body};"),
    };
    decoded.to_string()
}

/// Chinese punctuation in the full-width block that stays full-width: NFKC would turn it into
/// ASCII punctuation, which is not how Chinese text is written.
const KEEP_FULL_WIDTH: &[char] = &['！', '（', '）', '，', '：', '；', '？', '～'];

enum CharAction {
    Keep,
    Fold,
    Drop,
    Replace(char),
}

fn classify(c: char) -> CharAction {
    use CharAction::*;
    match c {
        '\n' => Keep,
        '\t' | '\u{3000}' | '\u{a0}' => Replace(' '),
        '\r' | '\u{2028}' | '\u{2029}' | '\u{85}' => Replace('\n'),
        c if c.is_control() => Drop,
        // Zero-width and bidi formatting characters, soft hyphen, BOM.
        '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}'
        | '\u{feff}'
        | '\u{ad}'
        | '\u{180e}' => Drop,
        // Variation selectors, combining keycap, tag characters (parts of emoji sequences).
        '\u{fe00}'..='\u{fe0f}' | '\u{20e3}' | '\u{e0020}'..='\u{e007f}' => Drop,
        '\u{e0100}'..='\u{e01ef}' => Drop,
        // Emoji and pictographs.
        '\u{1f000}'..='\u{1faff}' | '\u{2600}'..='\u{27bf}' | '\u{1fc00}'..='\u{1ffff}' => Drop,
        '\u{231a}' | '\u{231b}' | '\u{23e9}'..='\u{23f3}' | '\u{23f8}'..='\u{23fa}' => Drop,
        '\u{2b1b}' | '\u{2b1c}' | '\u{2b50}' | '\u{2b55}' => Drop,
        c if KEEP_FULL_WIDTH.contains(&c) => Keep,
        // Full-width ASCII, full-width signs (￥ ￡ …), half-width katakana and punctuation,
        // Latin ligatures: their NFKC forms mean the same.
        '\u{ff01}'..='\u{ff5e}' | '\u{ff61}'..='\u{ffee}' | '\u{fb00}'..='\u{fb06}' => Fold,
        _ => Keep,
    }
}

/// Character-level normalisation: the meaning-preserving part of NFKC, then NFC; emoji,
/// control and zero-width characters removed.
pub fn normalize_chars(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match classify(c) {
            CharAction::Keep => out.push(c),
            CharAction::Drop => {}
            CharAction::Replace(r) => out.push(r),
            CharAction::Fold => out.extend(std::iter::once(c).nfkc()),
        }
    }
    out.nfc().collect()
}

static DECORATIVE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"【([^【】\n]*)】|〖([^〖〗\n]*)〗").expect("valid regex"));

/// 【基础套餐】 → 基础套餐 (also 〖〗). Quotation brackets such as 「」『』 and ASCII [] are kept.
pub fn trim_decorative_brackets(text: &str) -> String {
    if !text.contains(['【', '〖']) {
        return text.to_string();
    }
    let mut current = text.to_string();
    loop {
        let next = DECORATIVE.replace_all(&current, |c: &Captures| {
            c.get(1).or(c.get(2)).map_or("", |m| m.as_str()).to_string()
        });
        if next == current {
            return current;
        }
        current = next.into_owned();
    }
}

static REPEATED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[?？]{2,}|[!！]{2,}").expect("valid regex"));

/// "？？？" → "？", "!!!" → "!" (keeps the first mark). Ellipses ("...", "。。。") stay.
pub fn squeeze_repeats(text: &str) -> String {
    REPEATED
        .replace_all(text, |c: &Captures| {
            c[0].chars().next().map(String::from).unwrap_or_default()
        })
        .into_owned()
}

/// Collapses runs of spaces/tabs to one space, trims each line, drops empty lines, and trims
/// the whole text. Line breaks (list items, paragraphs) are kept as single `\n`.
pub fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split(['\n', '\r']) {
        let mut words = line
            .split(|c: char| c.is_whitespace())
            .filter(|w| !w.is_empty());
        let Some(first) = words.next() else { continue };
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(first);
        for w in words {
            out.push(' ');
            out.push_str(w);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[track_caller]
    fn check(before: &str, after: &str) {
        assert_eq!(clean_text(before), after, "cleaning {before:?}");
    }

    #[test]
    fn meaning_bearing_punctuation_survives() {
        for text in [
            "1. 访问登录页",
            "AES-256",
            "12.5 元",
            "¥2.5/月",
            "https://cloudsail.example/download?lang=zh&v=2",
            "客服热线 400-820-1234，服务时间 9:00-21:00。",
            "TLS 1.3 (RFC 8446) / macOS 12+",
            "“订阅管理”中点击「取消」；完成！",
            "文件名不能包含 \\ / : * ? \" < > | 等字符",
            "若 a < b 且 c > d",
            "Wi-Fi, e-mail, C++, C#, 50% off, ~/.config",
            "[电话] [邮箱]",
            "第①步",
        ] {
            check(text, text);
        }
    }

    #[test]
    fn html_tags_and_entities() {
        check(
            "<p>1. 打开&nbsp;<b>设置</b></p><p>2. 进入 账户 &gt; 安全</p>",
            "1. 打开 设置\n2. 进入 账户 > 安全",
        );
        check(
            "A&amp;B &lt;tag&gt; &#x41;&#66; &copy; &unknown;",
            "A&B <tag> AB © &unknown;",
        );
        check("line<br>break<br/>again", "line\nbreak\nagain");
        check("<ul><li>one</li><li>two</li></ul>", "one\ntwo");
        check("<span style=\"color:red\">红色</span>文字", "红色文字");
        check(
            "before<script>alert(1)</script><!-- note -->after",
            "beforeafter",
        );
        check("&amp;lt;p&amp;gt;", "");
        check("<p>&nbsp;</p>", "");
    }

    #[test]
    fn full_width_forms_fold_but_chinese_punctuation_stays() {
        check("ＶＩＰ会员：２ＴＢ空间", "VIP会员：2TB空间");
        check("单价 ￥１２．５／月（含税）", "单价 ¥12.5/月（含税）");
        check("Ｈｏｗ　ｍａｎｙ？", "How many？");
        check("你好，世界。！？：；（）～", "你好，世界。！？：；（）～");
        check("ﬁle ｶﾀｶﾅ", "file カタカナ");
        check("m² and ½", "m² and ½");
    }

    #[test]
    fn decorative_brackets_are_trimmed() {
        check("【基础套餐】包含 1TB", "基础套餐包含 1TB");
        check("〖重要〗请注意【】", "重要请注意");
        check("「引号」『书名』[占位]", "「引号」『书名』[占位]");
    }

    #[test]
    fn repeated_marks_are_squeezed() {
        check("为什么失败？？？", "为什么失败？");
        check("No!!! Really??", "No! Really?");
        check("好的！！！!", "好的！");
        check("等等...。。。", "等等...。。。");
        check("真的?!", "真的?!");
    }

    #[test]
    fn emoji_and_control_characters_are_dropped() {
        check("可以😊 打开", "可以 打开");
        check("👍🏽好评 ✅", "好评");
        check("1️⃣ 第一步", "1 第一步");
        check("文件\u{200b}可以\u{feff}预览\u{7}吗", "文件可以预览吗");
        check("a\u{0}b", "ab");
    }

    #[test]
    fn whitespace_is_collapsed() {
        check(
            "  如何  修改\t密码？ \r\n\r\n 2.  进入\u{3000}设置  ",
            "如何 修改 密码？\n2. 进入 设置",
        );
        check("\n\n", "");
    }

    #[test]
    fn settles_when_steps_expose_each_other() {
        check("&#xFF21;&#xFF22;", "AB");
        check("＜b＞粗体＜/b＞", "粗体");
        check("?😊?", "?");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn cleaning_never_panics_and_is_idempotent(s in "\\PC*") {
            let once = clean_text(&s);
            prop_assert_eq!(clean_text(&once), once);
        }

        #[test]
        fn cleaning_markupish_text_is_idempotent(
            s in r"([<>&;#/a-zA-Z0-9 ！？?!【】\n\t]|&nbsp;|&amp;|<p>|</b>|&#x[0-9a-f]{2,5};|ＡＢ１|😊|\u{3000}){0,40}"
        ) {
            let once = clean_text(&s);
            prop_assert_eq!(clean_text(&once), once);
        }
    }
}
