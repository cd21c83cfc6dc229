//! Reading FAQ exports into raw records.
//!
//! Owns: input format detection (.json array, .jsonl, .csv/.tsv, SQLite), text encoding
//! detection (UTF-8 with or without BOM, UTF-16 with BOM, else GB18030, which covers GBK as
//! Excel writes it on Chinese systems), flexible column matching, and locating every record
//! (1-based row and, for text formats, the line it starts on).
//!
//! Does not own: any change to the text. Records come out exactly as stored; rows that cannot
//! be read (broken CSV quoting, JSON elements that are not objects, non-text fields) come out
//! as [`Malformed`] with their location so the caller can report them. Problems with the input
//! as a whole (missing file, table or column, undecodable bytes) are errors.

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Query used for SQLite inputs when `--query` is not given. It selects every column, so tags
/// and timestamps come along and columns are matched by name like in the other formats.
pub const DEFAULT_SQLITE_QUERY: &str = "SELECT * FROM faq_table";

/// Accepted column names, compared after [`normalize_column_name`], in order of preference.
const QUESTION_NAMES: &[&str] = &["question", "instruction", "q", "问题", "问", "标准问题"];
const ANSWER_NAMES: &[&str] = &["answer", "output", "a", "答案", "答", "回答", "response"];
const TAGS_NAMES: &[&str] = &["tags", "tag", "标签", "category", "categories", "分类"];
const SIMILAR_NAMES: &[&str] = &[
    "similar",
    "similarquestions",
    "aliases",
    "相似问",
    "相似问法",
    "相似问题",
    "扩展问",
];
const UPDATED_NAMES: &[&str] = &[
    "updatedat",
    "updated",
    "updatetime",
    "updatedtime",
    "lastmodified",
    "modified",
    "modifiedat",
    "更新时间",
    "修改时间",
    "timestamp",
];

/// Input format; `auto` picks by file extension, then by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    Auto,
    Json,
    Jsonl,
    Csv,
    Sqlite,
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            InputFormat::Auto => "auto",
            InputFormat::Json => "json",
            InputFormat::Jsonl => "jsonl",
            InputFormat::Csv => "csv",
            InputFormat::Sqlite => "sqlite",
        };
        f.write_str(name)
    }
}

/// Where a record came from: its 1-based position among the input's records (JSON array
/// element, CSV data row after the header, JSONL non-blank line, SQL result row) and, for text
/// formats, the 1-based line of the file it starts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourceRef {
    pub row: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "row {} (line {line})", self.row),
            None => write!(f, "row {}", self.row),
        }
    }
}

/// One FAQ row as stored in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub source: SourceRef,
    pub question: String,
    pub answer: String,
    /// Other ways customers ask the question (相似问法).
    pub similar: Vec<String>,
    pub tags: Vec<String>,
    pub updated_at: Option<String>,
}

/// A row that could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub source: SourceRef,
    pub error: String,
}

/// The columns (or JSON keys) the records were taken from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Columns {
    pub question: String,
    pub answer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similar: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// How to read an input; `None` fields mean "detect".
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub format: Option<InputFormat>,
    pub encoding: Option<String>,
    pub query: Option<String>,
    pub question_field: Option<String>,
    pub answer_field: Option<String>,
    pub similar_field: Option<String>,
    pub tags_field: Option<String>,
    pub updated_at_field: Option<String>,
}

/// Everything read from one input.
#[derive(Debug, Clone)]
pub struct Input {
    pub format: InputFormat,
    /// Text encoding used (text formats only).
    pub encoding: Option<String>,
    /// SQL run (SQLite only).
    pub query: Option<String>,
    pub columns: Columns,
    pub records: Vec<RawRecord>,
    pub malformed: Vec<Malformed>,
}

/// Reads `path` into records and malformed rows.
pub fn read_input(path: &Path, opts: &ReadOptions) -> Result<Input> {
    if !path.is_file() {
        bail!(
            "input file {} does not exist or is not a file",
            path.display()
        );
    }
    let format = match opts.format {
        Some(f) if f != InputFormat::Auto => f,
        _ => detect_format(path)?,
    };
    if format == InputFormat::Sqlite {
        let query = opts.query.as_deref().unwrap_or(DEFAULT_SQLITE_QUERY);
        return read_sqlite(path, query, opts)
            .with_context(|| format!("cannot read SQLite database {}", path.display()));
    }
    if opts.query.is_some() {
        bail!(
            "--query applies to SQLite inputs only; {} is read as {format}",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (text, encoding) = decode_text(&bytes, opts.encoding.as_deref())
        .with_context(|| format!("cannot decode {}", path.display()))?;
    let mut input = match format {
        InputFormat::Json => read_json(&text, opts),
        InputFormat::Jsonl => read_jsonl(&text, opts),
        _ => {
            let tsv = extension(path).as_deref() == Some("tsv");
            read_csv(&text, if tsv { b'\t' } else { b',' }, opts)
        }
    }
    .with_context(|| format!("cannot read {} as {format}", path.display()))?;
    input.encoding = Some(encoding.to_string());
    Ok(input)
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
}

/// Picks a format from the extension, else from the first bytes of the file.
pub fn detect_format(path: &Path) -> Result<InputFormat> {
    match extension(path).as_deref() {
        Some("json") => return Ok(InputFormat::Json),
        Some("jsonl" | "ndjson") => return Ok(InputFormat::Jsonl),
        Some("csv" | "tsv") => return Ok(InputFormat::Csv),
        Some("sqlite" | "sqlite3" | "db" | "db3") => return Ok(InputFormat::Sqlite),
        _ => {}
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.starts_with(b"SQLite format 3\0") {
        return Ok(InputFormat::Sqlite);
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    Ok(
        match body.iter().copied().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => InputFormat::Json,
            Some(b'{') => InputFormat::Jsonl,
            _ => InputFormat::Csv,
        },
    )
}

/// Decodes file bytes to text. With `label` (an encoding name such as `gbk` or `utf-8`) that
/// encoding is used; otherwise a BOM decides, then valid UTF-8, then GB18030. Returns the text
/// (BOM removed) and the encoding's name. Undecodable bytes are an error, never replaced.
pub fn decode_text(bytes: &[u8], label: Option<&str>) -> Result<(String, &'static str)> {
    use encoding_rs::{Encoding, GB18030, UTF_8};
    let encoding = match label {
        Some(label) => Encoding::for_label(label.trim().as_bytes())
            .with_context(|| format!("unknown encoding {label:?} (try utf-8, gbk or gb18030)"))?,
        None => match Encoding::for_bom(bytes) {
            Some((enc, _)) => enc,
            None if std::str::from_utf8(bytes).is_ok() => UTF_8,
            None => GB18030,
        },
    };
    let (text, had_errors) = encoding.decode_with_bom_removal(bytes);
    if had_errors {
        let hint = if label.is_some() {
            "pass the right --encoding"
        } else {
            "neither UTF-8 nor GB18030/GBK; pass --encoding"
        };
        bail!("bytes not valid in {} ({hint})", encoding.name());
    }
    Ok((text.into_owned(), encoding.name()))
}

/// Lower-cases a column name and drops spaces, `_`, `-` and a BOM, for flexible matching.
pub fn normalize_column_name(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '\u{feff}') && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Picks the question/answer/tags/updated_at columns among `names`.
fn resolve_columns(names: &[String], opts: &ReadOptions) -> Result<Columns> {
    let listing = || {
        if names.is_empty() {
            "the input has no columns".to_string()
        } else {
            format!("columns are: {}", names.join(", "))
        }
    };
    let pick = |explicit: Option<&str>, flag: &str, aliases: &[&str], what: Option<&str>| {
        if let Some(want) = explicit {
            if let Some(found) = names.iter().find(|n| n.as_str() == want) {
                return Ok(Some(found.clone()));
            }
            let norm = normalize_column_name(want);
            return match names.iter().find(|n| normalize_column_name(n) == norm) {
                Some(found) => Ok(Some(found.clone())),
                None => bail!("column {want:?} given by {flag} not found; {}", listing()),
            };
        }
        for alias in aliases {
            if let Some(found) = names.iter().find(|n| normalize_column_name(n) == *alias) {
                return Ok(Some(found.clone()));
            }
        }
        if let Some(what) = what {
            bail!(
                "no {what} column (looked for {}); {}; pass {flag}",
                aliases.join("/"),
                listing()
            );
        }
        Ok(None)
    };
    let question = pick(
        opts.question_field.as_deref(),
        "--question-field",
        QUESTION_NAMES,
        Some("question"),
    )?
    .expect("required column");
    let answer = pick(
        opts.answer_field.as_deref(),
        "--answer-field",
        ANSWER_NAMES,
        Some("answer"),
    )?
    .expect("required column");
    if question == answer {
        bail!("question and answer would both come from column {question:?}");
    }
    let similar = pick(
        opts.similar_field.as_deref(),
        "--similar-field",
        SIMILAR_NAMES,
        None,
    )?;
    let tags = pick(opts.tags_field.as_deref(), "--tags-field", TAGS_NAMES, None)?;
    let updated_at = pick(
        opts.updated_at_field.as_deref(),
        "--updated-at-field",
        UPDATED_NAMES,
        None,
    )?;
    Ok(Columns {
        question,
        answer,
        similar,
        tags,
        updated_at,
    })
}

/// Splits a tags cell ("套餐,价格", "a; b", "x|y", "甲、乙") into tags.
pub fn split_tags(text: &str) -> Vec<String> {
    text.split([',', ';', '|', '，', '、', '；'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Splits a similar-questions cell into questions: one a line or `|`-separated (commas
/// belong to questions).
pub fn split_questions(text: &str) -> Vec<String> {
    text.split(['\n', '|'])
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_string)
        .collect()
}

fn empty_to_none(s: String) -> Option<String> {
    if s.trim().is_empty() { None } else { Some(s) }
}

fn new_input(format: InputFormat, columns: Columns) -> Input {
    Input {
        format,
        encoding: None,
        query: None,
        columns,
        records: Vec::new(),
        malformed: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON and JSON Lines

/// Text of a JSON field for a question/answer/timestamp; `Err` for arrays and objects.
fn json_text(obj: &Map<String, Value>, key: &str) -> Result<String, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Bool(b)) => Ok(b.to_string()),
        Some(other) => Err(format!(
            "field {key:?} holds {}, expected text",
            json_kind(other)
        )),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn json_record(
    obj: &Map<String, Value>,
    columns: &Columns,
    source: SourceRef,
) -> Result<RawRecord, String> {
    let question = json_text(obj, &columns.question)?;
    let answer = json_text(obj, &columns.answer)?;
    let tags = match columns.tags.as_deref().and_then(|k| obj.get(k)) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => split_tags(s),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|t| match t {
                Value::String(s) => Some(s.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|t| !t.is_empty())
            .collect(),
        Some(other) => return Err(format!("field \"tags\" holds {}", json_kind(other))),
    };
    let similar = match columns.similar.as_deref().and_then(|k| obj.get(k)) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => split_questions(s),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|q| q.as_str().map(str::trim))
            .filter(|q| !q.is_empty())
            .map(str::to_string)
            .collect(),
        Some(other) => return Err(format!("field \"similar\" holds {}", json_kind(other))),
    };
    let updated_at = match &columns.updated_at {
        Some(key) => empty_to_none(json_text(obj, key)?),
        None => None,
    };
    Ok(RawRecord {
        source,
        question,
        answer,
        similar,
        tags,
        updated_at,
    })
}

/// Resolves columns from the keys of all objects (first appearance order).
fn json_columns<'a>(
    objects: impl Iterator<Item = &'a Map<String, Value>>,
    opts: &ReadOptions,
) -> Result<Columns> {
    let mut names: Vec<String> = Vec::new();
    for obj in objects {
        for key in obj.keys() {
            if !names.contains(key) {
                names.push(key.clone());
            }
        }
    }
    resolve_columns(&names, opts)
}

/// Parsed JSON values with their locations, or the reason they could not be parsed.
type Located = Vec<(SourceRef, Result<Value, String>)>;

fn build_json_input(format: InputFormat, items: Located, opts: &ReadOptions) -> Result<Input> {
    let columns = json_columns(
        items.iter().filter_map(|(_, v)| match v {
            Ok(Value::Object(o)) => Some(o),
            _ => None,
        }),
        opts,
    )?;
    let mut input = new_input(format, columns);
    for (source, item) in items {
        let outcome = match item {
            Ok(Value::Object(obj)) => json_record(&obj, &input.columns, source),
            Ok(other) => Err(format!(
                "expected a JSON object, found {}",
                json_kind(&other)
            )),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(record) => input.records.push(record),
            Err(error) => input.malformed.push(Malformed { source, error }),
        }
    }
    Ok(input)
}

fn read_json(text: &str, opts: &ReadOptions) -> Result<Input> {
    let elements = split_json_array(text)?;
    let items = elements
        .into_iter()
        .enumerate()
        .map(|(i, (line, slice))| {
            let source = SourceRef {
                row: i + 1,
                line: Some(line),
            };
            let parsed = if slice.trim().is_empty() {
                Err("empty array element".to_string())
            } else {
                serde_json::from_str::<Value>(slice).map_err(|e| format!("invalid JSON: {e}"))
            };
            (source, parsed)
        })
        .collect();
    build_json_input(InputFormat::Json, items, opts)
}

/// Splits the text of a top-level JSON array into its elements' source slices, each with the
/// 1-based line where it starts, without parsing them: one bad element does not hide the rest.
fn split_json_array(text: &str) -> Result<Vec<(usize, &str)>> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut line = 1;
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        line += usize::from(bytes[i] == b'\n');
        i += 1;
    }
    match bytes.get(i) {
        Some(b'[') => {}
        Some(b'{') => bail!(
            "expected a JSON array of objects but the file holds an object; for one object \
             per line use .jsonl or --format jsonl"
        ),
        Some(_) => bail!("expected a JSON array of objects at line {line}"),
        None => bail!("the file is empty"),
    }
    i += 1;
    let mut out = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut start = i;
    let mut start_line: Option<usize> = None;
    let mut closed = false;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => depth += 1,
                b']' | b'}' if depth > 0 => depth -= 1,
                b',' if depth == 0 => {
                    out.push((start_line.unwrap_or(line), &text[start..i]));
                    start = i + 1;
                    start_line = None;
                }
                b']' if depth == 0 => {
                    let last = &text[start..i];
                    // A trailing comma leaves an empty last element: nothing is lost.
                    if !last.trim().is_empty() {
                        out.push((start_line.unwrap_or(line), last));
                    }
                    closed = true;
                    i += 1;
                    break;
                }
                _ => {}
            }
        }
        if start_line.is_none() && !b.is_ascii_whitespace() && !(b == b',' && depth == 0) {
            start_line = Some(line);
        }
        i += 1;
    }
    if !closed {
        // A cut-off file: whatever follows the last comma is one (probably broken) element.
        let last = &text[start..];
        if !last.trim().is_empty() {
            out.push((start_line.unwrap_or(line), last));
        }
    } else if !text[i..].trim().is_empty() {
        bail!("unexpected data after the end of the JSON array (line {line})");
    }
    Ok(out)
}

fn read_jsonl(text: &str, opts: &ReadOptions) -> Result<Input> {
    let mut items = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let source = SourceRef {
            row: items.len() + 1,
            line: Some(idx + 1),
        };
        let parsed = serde_json::from_str::<Value>(raw).map_err(|e| format!("invalid JSON: {e}"));
        items.push((source, parsed));
    }
    build_json_input(InputFormat::Jsonl, items, opts)
}

// ---------------------------------------------------------------------------------------------
// CSV

fn read_csv(text: &str, delimiter: u8, opts: &ReadOptions) -> Result<Input> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .context("cannot read the CSV header row")?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let columns = resolve_columns(&headers, opts)?;
    let index = |name: &str| headers.iter().position(|h| h == name).expect("resolved");
    let (qi, ai) = (index(&columns.question), index(&columns.answer));
    let si = columns.similar.as_deref().map(index);
    let ti = columns.tags.as_deref().map(index);
    let ui = columns.updated_at.as_deref().map(index);
    let mut input = new_input(InputFormat::Csv, columns);
    let results: Vec<_> = reader.records().collect();
    let count = results.len();
    let mut row = 0;
    for (n, result) in results.into_iter().enumerate() {
        row += 1;
        let record = match result {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize);
                input.malformed.push(Malformed {
                    source: SourceRef { row, line },
                    error: format!("unreadable CSV row: {e}"),
                });
                continue;
            }
        };
        let position = record.position();
        let source = SourceRef {
            row,
            line: position.map(|p| p.line() as usize),
        };
        if record.iter().all(|f| f.trim().is_empty()) {
            // Spreadsheet exports end with rows of empty cells; they hold nothing.
            row -= 1;
            continue;
        }
        if n + 1 == count {
            // An opening quote that is never closed swallows the rest of the file into one
            // field; the parser accepts that, so look at the raw text of the last record.
            let start = position.map_or(0, |p| p.byte() as usize);
            let raw = text.get(start..).unwrap_or_default();
            if raw.bytes().filter(|&b| b == b'"').count() % 2 == 1 {
                let last_line = source.line.unwrap_or(1) + raw.trim_end().matches('\n').count();
                input.malformed.push(Malformed {
                    source,
                    error: format!(
                        "a quote is never closed: lines {}-{last_line} were read as one row",
                        source.line.unwrap_or(1)
                    ),
                });
                continue;
            }
        }
        if record.len() != headers.len() {
            input.malformed.push(Malformed {
                source,
                error: format!(
                    "expected {} fields, found {} (an unquoted delimiter or broken quotes?)",
                    headers.len(),
                    record.len()
                ),
            });
            continue;
        }
        let field = |i: usize| record.get(i).unwrap_or_default().to_string();
        input.records.push(RawRecord {
            source,
            question: field(qi),
            answer: field(ai),
            similar: si.map(|i| split_questions(&field(i))).unwrap_or_default(),
            tags: ti.map(|i| split_tags(&field(i))).unwrap_or_default(),
            updated_at: ui.and_then(|i| empty_to_none(field(i))),
        });
    }
    Ok(input)
}

// ---------------------------------------------------------------------------------------------
// SQLite

fn read_sqlite(path: &Path, query: &str, opts: &ReadOptions) -> Result<Input> {
    use rusqlite::types::ValueRef;
    use rusqlite::{Connection, OpenFlags};
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .context("cannot open the database")?;
    let mut stmt = conn
        .prepare(query)
        .with_context(|| format!("query failed: {query}"))?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let columns = resolve_columns(&names, opts)?;
    let index = |name: &str| names.iter().position(|h| h == name).expect("resolved");
    let (qi, ai) = (index(&columns.question), index(&columns.answer));
    let si = columns.similar.as_deref().map(index);
    let ti = columns.tags.as_deref().map(index);
    let ui = columns.updated_at.as_deref().map(index);
    let mut input = new_input(InputFormat::Sqlite, columns);
    input.query = Some(query.to_string());
    let mut rows = stmt
        .query([])
        .with_context(|| format!("query failed: {query}"))?;
    let mut n = 0;
    while let Some(row) = rows
        .next()
        .with_context(|| format!("query failed: {query}"))?
    {
        n += 1;
        let source = SourceRef { row: n, line: None };
        let text = |i: usize| -> Result<String, String> {
            let value = row.get_ref(i).map_err(|e| e.to_string())?;
            match value {
                ValueRef::Null => Ok(String::new()),
                ValueRef::Integer(v) => Ok(v.to_string()),
                ValueRef::Real(v) => Ok(v.to_string()),
                ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8(t.to_vec())
                    .map_err(|_| format!("column {:?} is not UTF-8 text", names[i])),
            }
        };
        let record = (|| -> Result<RawRecord, String> {
            Ok(RawRecord {
                source,
                question: text(qi)?,
                answer: text(ai)?,
                similar: match si {
                    Some(i) => split_questions(&text(i)?),
                    None => Vec::new(),
                },
                tags: match ti {
                    Some(i) => split_tags(&text(i)?),
                    None => Vec::new(),
                },
                updated_at: match ui {
                    Some(i) => empty_to_none(text(i)?),
                    None => None,
                },
            })
        })();
        match record {
            Ok(record) => input.records.push(record),
            Err(error) => input.malformed.push(Malformed { source, error }),
        }
    }
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ReadOptions {
        ReadOptions::default()
    }

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn json_array_with_non_object_element_reports_its_line() {
        let text = "[\n  {\"question\": \"Q1\", \"answer\": \"A1\"},\n  [\"not\", \"an object\"],\n  \"text\",\n  {\"q\": 1}\n]\n";
        let input = read_json(text, &opts()).unwrap();
        assert_eq!(input.records.len(), 2);
        assert_eq!(
            input.records[0].source,
            SourceRef {
                row: 1,
                line: Some(2)
            }
        );
        assert_eq!(
            input.records[1].source,
            SourceRef {
                row: 4,
                line: Some(5)
            }
        );
        let lines: Vec<_> = input.malformed.iter().map(|m| m.source.line).collect();
        assert_eq!(lines, vec![Some(3), Some(4)]);
        assert!(
            input.malformed[0].error.contains("array"),
            "{:?}",
            input.malformed
        );
    }

    #[test]
    fn json_element_with_bad_syntax_does_not_hide_the_rest() {
        let text = "[{\"question\":\"a,]}\",\"answer\":\"x\"},\n{\"question\": oops},\n{\"question\":\"b\",\"answer\":\"y\"}]";
        let input = read_json(text, &opts()).unwrap();
        assert_eq!(input.records.len(), 2);
        assert_eq!(input.records[0].question, "a,]}");
        assert_eq!(input.malformed.len(), 1);
        assert_eq!(input.malformed[0].source.line, Some(2));
        assert!(input.malformed[0].error.starts_with("invalid JSON"));
    }

    #[test]
    fn json_object_at_top_level_is_a_clear_error() {
        let err = read_json("{\"question\":\"q\",\"answer\":\"a\"}", &opts()).unwrap_err();
        assert!(err.to_string().contains("jsonl"), "{err}");
    }

    #[test]
    fn json_field_holding_an_object_is_malformed() {
        let text = r#"[{"question":"q","answer":{"x":1}}]"#;
        let input = read_json(text, &opts()).unwrap();
        assert!(input.records.is_empty());
        assert!(
            input.malformed[0]
                .error
                .contains("\"answer\" holds an object")
        );
    }

    #[test]
    fn jsonl_reports_bad_lines() {
        let text = "{\"instruction\":\"q1\",\"output\":\"a1\"}\n\n{broken\n42\n{\"instruction\":\"q2\",\"output\":\"a2\"}\n";
        let input = read_jsonl(text, &opts()).unwrap();
        assert_eq!(input.columns.question, "instruction");
        assert_eq!(input.records.len(), 2);
        assert_eq!(
            input.records[1].source,
            SourceRef {
                row: 4,
                line: Some(5)
            }
        );
        let lines: Vec<_> = input
            .malformed
            .iter()
            .map(|m| m.source.line.unwrap())
            .collect();
        assert_eq!(lines, vec![3, 4]);
    }

    #[test]
    fn similar_questions_from_a_json_list_or_a_cell() {
        let json = r#"[{"question":"Q","answer":"A","similar":["q one"," ","q two"]},
            {"question":"R","answer":"B","相似问法":"r one|r two\nr three"}]"#;
        let input = read_json(json, &opts()).unwrap();
        assert_eq!(input.columns.similar.as_deref(), Some("similar"));
        assert_eq!(input.records[0].similar, ["q one", "q two"]);
        assert!(input.records[1].similar.is_empty(), "one column per input");
        let csv = "question,answer,similar\nQ,A,\"q one, with a comma\nq two\"\nR,B,\n";
        let input = read_csv(csv, b',', &opts()).unwrap();
        assert_eq!(input.records[0].similar, ["q one, with a comma", "q two"]);
        assert!(input.records[1].similar.is_empty());
        let bad = r#"[{"question":"Q","answer":"A","similar":7}]"#;
        let input = read_json(bad, &opts()).unwrap();
        assert!(
            input.malformed[0].error.contains("similar"),
            "{:?}",
            input.malformed
        );
    }

    #[test]
    fn csv_multiline_fields_and_broken_quoting() {
        let text = "问题,答案,标签\nQ1,\"line one\nline two\",a;b\nQ2,A2, oops,x\nQ3,A3,\n,,\n";
        let input = read_csv(text, b',', &opts()).unwrap();
        assert_eq!(input.columns.question, "问题");
        assert_eq!(input.columns.tags.as_deref(), Some("标签"));
        assert_eq!(input.records.len(), 2);
        assert_eq!(input.records[0].answer, "line one\nline two");
        assert_eq!(input.records[0].tags, vec!["a", "b"]);
        assert_eq!(
            input.records[1].source,
            SourceRef {
                row: 3,
                line: Some(5)
            }
        );
        assert_eq!(input.malformed.len(), 1);
        assert_eq!(
            input.malformed[0].source,
            SourceRef {
                row: 2,
                line: Some(4)
            }
        );
        assert!(
            input.malformed[0]
                .error
                .contains("expected 3 fields, found 4")
        );
    }

    #[test]
    fn csv_unclosed_quote_is_reported() {
        let text = "q,a\nQ1,A1\nQ2,\"never closed\nQ3,A3\n";
        let input = read_csv(text, b',', &opts()).unwrap();
        assert_eq!(input.records.len(), 1);
        assert_eq!(input.malformed.len(), 1);
        assert_eq!(input.malformed[0].source.line, Some(3));
        assert!(
            input.malformed[0].error.contains("lines 3-4"),
            "{:?}",
            input.malformed
        );
    }

    #[test]
    fn missing_column_names_the_columns_and_the_flag() {
        let err = read_csv("title,body\nx,y\n", b',', &opts())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no question column"), "{err}");
        assert!(err.contains("title, body"), "{err}");
        assert!(err.contains("--question-field"), "{err}");
        let o = ReadOptions {
            question_field: Some("title".into()),
            answer_field: Some("body".into()),
            ..opts()
        };
        let input = read_csv("title,body\nx,y\n", b',', &o).unwrap();
        assert_eq!(input.records[0].answer, "y");
        let o = ReadOptions {
            question_field: Some("nope".into()),
            ..opts()
        };
        let err = read_csv("q,a\nx,y\n", b',', &o).unwrap_err().to_string();
        assert!(
            err.contains("\"nope\" given by --question-field not found"),
            "{err}"
        );
    }

    #[test]
    fn column_names_match_flexibly() {
        for (q, a) in [
            ("Question", "Answer"),
            (" Q ", "A"),
            ("INSTRUCTION", "output"),
            ("问题", "答案"),
        ] {
            let text = format!("{q},{a},Updated_At\nx,y,2024-01-01\n");
            let input = read_csv(&text, b',', &opts()).unwrap();
            assert_eq!(input.records[0].question, "x", "{q}");
            assert_eq!(input.records[0].updated_at.as_deref(), Some("2024-01-01"));
        }
    }

    #[test]
    fn encodings_are_detected() {
        let text = "问题,答案\n基础版多少钱？,￥12/月\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        assert!(std::str::from_utf8(&gbk).is_err());
        let (decoded, name) = decode_text(&gbk, None).unwrap();
        assert_eq!((decoded.as_str(), name), (text, "gb18030"));
        let (decoded, name) = decode_text(&gbk, Some("GBK")).unwrap();
        assert_eq!((decoded.as_str(), name), (text, "GBK"));

        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(text.as_bytes());
        assert_eq!(
            decode_text(&bom, None).unwrap(),
            (text.to_string(), "UTF-8")
        );
        assert_eq!(decode_text(text.as_bytes(), None).unwrap().0, text);

        let mut utf16 = vec![0xFF, 0xFE];
        for unit in text.encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(
            decode_text(&utf16, None).unwrap(),
            (text.to_string(), "UTF-16LE")
        );

        let err = decode_text(&gbk, Some("utf-8")).unwrap_err().to_string();
        assert!(err.contains("--encoding"), "{err}");
        assert!(decode_text(b"x", Some("klingon")).is_err());
    }

    #[test]
    fn gbk_csv_file_reads_like_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let text = "question,answer\n退款政策？,7 天无理由退款\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        let a = read_input(&write(&dir, "gbk.csv", &gbk), &opts()).unwrap();
        let b = read_input(&write(&dir, "utf8.csv", text.as_bytes()), &opts()).unwrap();
        assert_eq!(a.records, b.records);
        assert_eq!(a.encoding.as_deref(), Some("gb18030"));
    }

    #[test]
    fn missing_file_table_and_column_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_input(&dir.path().join("nope.csv"), &opts()).unwrap_err();
        assert!(format!("{err:#}").contains("does not exist"), "{err:#}");

        let db = dir.path().join("faq.sqlite");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE other (question TEXT, answer TEXT); CREATE TABLE faq_table (title TEXT, answer TEXT);").unwrap();
        drop(conn);
        let err = format!("{:#}", read_input(&db, &opts()).unwrap_err());
        assert!(err.contains("no question column"), "{err}");
        let o = ReadOptions {
            query: Some("SELECT * FROM missing".into()),
            ..opts()
        };
        let err = format!("{:#}", read_input(&db, &o).unwrap_err());
        assert!(err.contains("no such table: missing"), "{err}");
    }

    #[test]
    fn sqlite_values_and_custom_query() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kb.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE faq (问题 TEXT, 答案 TEXT, 更新时间 INTEGER);
             INSERT INTO faq VALUES ('Q1', 'A1', 1700000000), ('Q2', NULL, NULL), (3, 4.5, NULL);",
        )
        .unwrap();
        drop(conn);
        let o = ReadOptions {
            query: Some("SELECT * FROM faq".into()),
            ..opts()
        };
        let input = read_input(&db, &o).unwrap();
        assert_eq!(input.format, InputFormat::Sqlite);
        assert_eq!(input.records.len(), 3);
        assert_eq!(input.records[0].updated_at.as_deref(), Some("1700000000"));
        assert_eq!(input.records[1].answer, "");
        assert_eq!(
            (
                input.records[2].question.as_str(),
                input.records[2].answer.as_str()
            ),
            ("3", "4.5")
        );
        assert_eq!(input.records[2].source, SourceRef { row: 3, line: None });
    }

    #[test]
    fn format_is_detected_by_extension_then_content() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            detect_format(&write(&dir, "a.JSONL", b"")).unwrap(),
            InputFormat::Jsonl
        );
        assert_eq!(
            detect_format(&write(&dir, "a.txt", b"\xEF\xBB\xBF [")).unwrap(),
            InputFormat::Json
        );
        assert_eq!(
            detect_format(&write(&dir, "b.txt", b"{}")).unwrap(),
            InputFormat::Jsonl
        );
        assert_eq!(
            detect_format(&write(&dir, "c.txt", b"q,a")).unwrap(),
            InputFormat::Csv
        );
        assert_eq!(
            detect_format(&write(&dir, "d.bin", b"SQLite format 3\0....")).unwrap(),
            InputFormat::Sqlite
        );
    }

    #[test]
    fn tsv_uses_tabs() {
        let dir = tempfile::tempdir().unwrap();
        let input = read_input(&write(&dir, "a.tsv", b"q\ta\nx, y\tz\n"), &opts()).unwrap();
        assert_eq!(input.records[0].question, "x, y");
    }
}
