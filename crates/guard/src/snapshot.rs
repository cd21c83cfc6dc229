//! The precomputed index file: FAQ entries and their retrieval index in one compact binary
//! blob, so a fresh Wasm instance loads a knowledge base without tokenising it again.
//!
//! Layout (little-endian; `varint` is unsigned LEB128; `str` is a varint length and UTF-8):
//! ```text
//! b"KFGIDX" version:u8 fingerprint:u64 source:u64
//! n_entries:varint  { id:str question:str n_similar:varint similar:str* answer:str
//!                     n_tags:varint tag:str* lang:u8 }*
//! avg_q:f32 avg_a:f32  { len_q:f32 len_a:f32 }*            (one pair per entry)
//! n_terms:varint  { key:u64 n_postings:varint { doc_delta:varint tf_q:varint tf_a:varint }* }*
//! ```
//! `source` is [`source_hash`] of the JSON Lines the entries came from (0 when unknown), so a
//! reader holding both files can tell a stale index. The fingerprint covers the tokeniser
//! version and every word list. A file written with a different lexicon is still accepted:
//! its entries are re-indexed (correct, only slower), so upgrading the guard never breaks an
//! old file. Corrupt input is an error, never a panic.

use crate::kb::{Entry, KbError, Knowledge};
use crate::lexicon;
use crate::retrieve::{Index, Posting};
use crate::text::Lang;

const MAGIC: &[u8; 6] = b"KFGIDX";
const VERSION: u8 = 2;

/// True when `bytes` start like a precomputed index file.
pub fn is_snapshot(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// FNV-1a hash of JSON Lines bytes (BOM removed): what an index file was made from.
pub fn source_hash(jsonl: &[u8]) -> u64 {
    let jsonl = jsonl.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(jsonl);
    fnv1a(FNV_OFFSET, jsonl.iter().copied())
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a: enough to tell files apart, and the same on every platform and build.
fn fnv1a(h: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes
        .into_iter()
        .fold(h, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The `(fingerprint, source)` header of an index file of this version (`None` for anything
/// else).
fn header_of(index: &[u8]) -> Option<(u64, u64)> {
    let header = index.get(..MAGIC.len() + 1 + 16)?;
    let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    (header.starts_with(MAGIC) && header[MAGIC.len()] == VERSION)
        .then(|| (word(MAGIC.len() + 1), word(MAGIC.len() + 9)))
}

/// The `source` recorded in an index file of this version (`None` for anything else).
pub fn source_of(index: &[u8]) -> Option<u64> {
    header_of(index).map(|(_, source)| source)
}

/// True when an index file was written by this version with this lexicon, so loading it
/// needs no re-indexing.
pub fn is_current(index: &[u8]) -> bool {
    header_of(index).is_some_and(|(lexicon, _)| lexicon == fingerprint())
}

/// Hash of the tokeniser version and all word lists: what an index depends on.
pub fn fingerprint() -> u64 {
    let mut h = FNV_OFFSET;
    let mut eat = |s: &str| h = fnv1a(h, s.bytes().chain([0xff]));
    eat(crate::text::TOKENIZER_VERSION);
    for list in [
        lexicon::EN_STOP,
        lexicon::ZH_STOP_BIGRAMS,
        lexicon::ZH_FILLERS,
        &[lexicon::ZH_PARTICLES, lexicon::ZH_WEAK_CHARS],
    ] {
        list.iter().for_each(|s| eat(s));
    }
    for (name, variants) in lexicon::SYNONYMS {
        eat(name);
        variants.iter().for_each(|v| eat(v));
    }
    h
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Serialises a knowledge base with its index.
pub fn encode(kb: &Knowledge) -> Vec<u8> {
    let ix = kb.index();
    let mut out = Vec::with_capacity(64 * 1024);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&fingerprint().to_le_bytes());
    out.extend_from_slice(&kb.source.to_le_bytes());
    put_varint(&mut out, kb.entries().len() as u64);
    for (i, e) in kb.entries().iter().enumerate() {
        put_str(&mut out, &e.id);
        put_str(&mut out, &e.question);
        put_varint(&mut out, e.similar.len() as u64);
        for q in &e.similar {
            put_str(&mut out, q);
        }
        put_str(&mut out, &e.answer);
        put_varint(&mut out, e.tags.len() as u64);
        for t in &e.tags {
            put_str(&mut out, t);
        }
        out.push(match kb.lang_of(i) {
            Lang::Zh => 0,
            Lang::En => 1,
        });
    }
    out.extend_from_slice(&ix.avg_q.to_le_bytes());
    out.extend_from_slice(&ix.avg_a.to_le_bytes());
    for (q, a) in ix.len_q.iter().zip(&ix.len_a) {
        out.extend_from_slice(&q.to_le_bytes());
        out.extend_from_slice(&a.to_le_bytes());
    }
    let mut terms: Vec<(u64, u32)> = ix.terms.iter().map(|(&k, &id)| (k, id)).collect();
    terms.sort_unstable();
    put_varint(&mut out, terms.len() as u64);
    for (key, id) in terms {
        out.extend_from_slice(&key.to_le_bytes());
        let postings = &ix.postings[id as usize];
        put_varint(&mut out, postings.len() as u64);
        let mut prev = 0u32;
        for p in postings {
            put_varint(&mut out, (p.doc - prev) as u64);
            prev = p.doc;
            put_varint(&mut out, p.tf_q as u64);
            put_varint(&mut out, p.tf_a as u64);
        }
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

fn corrupt(what: &str) -> KbError {
    KbError {
        line: 0,
        message: format!("index file is corrupt ({what})"),
    }
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], KbError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| corrupt("truncated"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, KbError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, KbError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn f32(&mut self) -> Result<f32, KbError> {
        let v = f32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(corrupt("bad length"))
        }
    }
    fn varint(&mut self) -> Result<u64, KbError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("varint"))
    }
    /// A count that cannot exceed the bytes left (each item takes at least one byte).
    fn count(&mut self) -> Result<usize, KbError> {
        let n = self.varint()?;
        if n > (self.bytes.len() - self.at) as u64 {
            return Err(corrupt("count"));
        }
        Ok(n as usize)
    }
    fn str(&mut self) -> Result<String, KbError> {
        let n = self.count()?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| corrupt("not UTF-8"))
    }
}

/// Reads a file written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Knowledge, KbError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(corrupt("magic"));
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(KbError {
            line: 0,
            message: format!("index file version {version} is not supported (expected {VERSION})"),
        });
    }
    let same_lexicon = r.u64()? == fingerprint();
    let source = r.u64()?;
    let n = r.count()?;
    let mut entries = Vec::with_capacity(n);
    let mut langs = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.str()?;
        let question = r.str()?;
        let n_similar = r.count()?;
        let similar = (0..n_similar).map(|_| r.str()).collect::<Result<_, _>>()?;
        let answer = r.str()?;
        let n_tags = r.count()?;
        let tags = (0..n_tags).map(|_| r.str()).collect::<Result<_, _>>()?;
        langs.push(match r.u8()? {
            0 => Lang::Zh,
            1 => Lang::En,
            _ => return Err(corrupt("language")),
        });
        entries.push(Entry {
            id,
            question,
            similar,
            answer,
            tags,
        });
    }
    if !same_lexicon {
        let mut kb = Knowledge::from_entries(entries)?;
        kb.source = source;
        return Ok(kb);
    }
    let mut ix = Index {
        n_docs: n,
        avg_q: r.f32()?,
        avg_a: r.f32()?,
        ..Index::default()
    };
    for _ in 0..n {
        ix.len_q.push(r.f32()?);
        ix.len_a.push(r.f32()?);
    }
    let n_terms = r.count()?;
    ix.terms.reserve(n_terms);
    ix.postings.reserve(n_terms);
    for id in 0..n_terms {
        let key = r.u64()?;
        let np = r.count()?;
        let mut list = Vec::with_capacity(np);
        let mut doc = 0u64;
        for _ in 0..np {
            doc += r.varint()?;
            if doc >= n as u64 {
                return Err(corrupt("posting"));
            }
            list.push(Posting {
                doc: doc as u32,
                tf_q: r.varint()? as f32,
                tf_a: r.varint()? as f32,
            });
        }
        if ix.terms.insert(key, id as u32).is_some() {
            return Err(corrupt("duplicate term"));
        }
        ix.postings.push(list);
    }
    if r.at != bytes.len() {
        return Err(corrupt("trailing bytes"));
    }
    Knowledge::from_parts(entries, langs, ix, source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::tests::fixture;

    #[test]
    fn round_trips_and_searches_identically() {
        let kb = fixture();
        let bytes = encode(&kb);
        assert!(is_snapshot(&bytes));
        let back = decode(&bytes).unwrap();
        assert_eq!(back.entries(), kb.entries());
        for q in ["我想退钱", "how do I cancel", "分享链接", "天气"] {
            assert_eq!(back.search(q, 3), kb.search(q, 3), "{q}");
        }
    }

    #[test]
    fn an_index_knows_the_json_lines_it_came_from() {
        use crate::kb::tests::FIXTURE;
        let index = fixture().to_index_bytes();
        assert!(Knowledge::index_matches(&index, FIXTURE.as_bytes()));
        let bom = [b"\xEF\xBB\xBF".as_slice(), FIXTURE.as_bytes()].concat();
        assert!(Knowledge::index_matches(&index, &bom));
        let edited = FIXTURE.replace("7 天内", "14 天内");
        assert!(!Knowledge::index_matches(&index, edited.as_bytes()));
        assert!(!Knowledge::index_matches(
            b"not an index",
            FIXTURE.as_bytes()
        ));
        let reloaded = decode(&index).unwrap();
        assert!(Knowledge::index_matches(
            &reloaded.to_index_bytes(),
            FIXTURE.as_bytes()
        ));
    }

    #[test]
    fn an_index_knows_the_lexicon_it_was_made_with() {
        let mut index = fixture().to_index_bytes();
        assert!(Knowledge::index_is_current(&index));
        index[MAGIC.len() + 1] ^= 1; // another lexicon's fingerprint
        assert!(!Knowledge::index_is_current(&index));
        assert!(decode(&index).is_ok(), "an older index still loads");
        assert!(!Knowledge::index_is_current(b"not an index"));
    }

    #[test]
    fn rejects_corruption_without_panicking() {
        let bytes = encode(&fixture());
        for cut in [0, 5, 7, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        for i in (15..flipped.len()).step_by(7) {
            flipped[i] ^= 0x5a;
            let _ = decode(&flipped);
        }
        let mut extra = bytes;
        extra.push(0);
        assert!(decode(&extra).is_err());
    }

    #[test]
    fn reindexes_a_file_from_another_lexicon() {
        let kb = fixture();
        let mut bytes = encode(&kb);
        bytes[7] ^= 1;
        let back = decode(&bytes).unwrap();
        assert_eq!(back.search("我想退钱", 3), kb.search("我想退钱", 3));
    }
}
