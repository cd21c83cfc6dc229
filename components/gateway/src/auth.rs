//! API-key authentication: `Authorization: Bearer <key>` checked against the SHA-256 digests
//! in the `api_keys` variable.
//!
//! The component never holds plaintext keys. It hashes the presented key and compares the
//! digest with every configured digest in constant time (no early exit on the first match or
//! the first differing byte), so timing reveals neither which entry matched nor how much of a
//! digest a guess got right. An empty key list rejects everything (fail closed).

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type KeyDigest = [u8; 32];

/// Parses `api_keys`: comma-separated hex SHA-256 digests (either case; blanks ignored).
/// Returns the digests and the entries that are not 64 hex digits, for the operator's log.
pub fn parse_key_digests(list: &str) -> (Vec<KeyDigest>, Vec<String>) {
    let mut digests = Vec::new();
    let mut invalid = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match parse_hex_digest(entry) {
            Some(d) => digests.push(d),
            None => invalid.push(entry.to_owned()),
        }
    }
    (digests, invalid)
}

fn parse_hex_digest(hex: &str) -> Option<KeyDigest> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The lowercase hex SHA-256 of `key`, as `api_keys` lists it.
pub fn key_digest_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key of an `Authorization` header value, if it uses the Bearer scheme.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `key` hashes to one of `accepted`. Takes the same time for any key of a given
/// length: every digest is compared in full.
pub fn key_accepted(key: &str, accepted: &[KeyDigest]) -> bool {
    let digest: KeyDigest = Sha256::digest(key.as_bytes()).into();
    let mut any = 0u8;
    for candidate in accepted {
        any |= ct_eq(&digest, candidate);
    }
    std::hint::black_box(any) == 1
}

/// 1 if equal, 0 otherwise, without data-dependent branches.
fn ct_eq(a: &KeyDigest, b: &KeyDigest) -> u8 {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    let diff = std::hint::black_box(diff);
    // 0 -> 1, anything else -> 0.
    (((u16::from(diff)).wrapping_sub(1) >> 8) & 1) as u8
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    Allowed,
    /// No usable `Authorization: Bearer` header.
    Missing,
    /// A key was given but is not accepted (or no key is configured at all).
    Rejected,
}

/// Checks an `Authorization` header value against the configured digests.
pub fn check(header: Option<&str>, accepted: &[KeyDigest], auth_disabled: bool) -> AuthOutcome {
    if auth_disabled {
        return AuthOutcome::Allowed;
    }
    match header.and_then(bearer_token) {
        None => AuthOutcome::Missing,
        Some(key) if key_accepted(key, accepted) => AuthOutcome::Allowed,
        Some(_) => AuthOutcome::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_sha256sum() {
        // printf %s kefu-demo-key | sha256sum
        assert_eq!(
            key_digest_hex("kefu-demo-key"),
            "c323bd9a55870cf7341a00289d030972fc4d7a77422c6120db91c8a7939b12dc"
        );
        assert_eq!(
            key_digest_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parses_digest_list() {
        let a = key_digest_hex("a");
        let b = key_digest_hex("b").to_uppercase();
        let (digests, invalid) = parse_key_digests(&format!(" {a} ,, {b},nothex,"));
        assert_eq!(digests.len(), 2);
        assert_eq!(invalid, ["nothex"]);
        assert!(key_accepted("a", &digests) && key_accepted("b", &digests));
        assert!(!key_accepted("c", &digests));
        let (digests, _) = parse_key_digests(&"g".repeat(64));
        assert!(digests.is_empty());
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn check_outcomes() {
        let (keys, _) = parse_key_digests(&key_digest_hex("secret"));
        assert_eq!(
            check(Some("Bearer secret"), &keys, false),
            AuthOutcome::Allowed
        );
        assert_eq!(
            check(Some("Bearer wrong"), &keys, false),
            AuthOutcome::Rejected
        );
        assert_eq!(check(None, &keys, false), AuthOutcome::Missing);
        assert_eq!(check(Some("secret"), &keys, false), AuthOutcome::Missing);
        // No keys configured: fail closed, unless auth is explicitly disabled.
        assert_eq!(
            check(Some("Bearer secret"), &[], false),
            AuthOutcome::Rejected
        );
        assert_eq!(check(None, &[], true), AuthOutcome::Allowed);
    }

    #[test]
    fn ct_eq_is_exact() {
        let a = [7u8; 32];
        let mut b = a;
        assert_eq!(ct_eq(&a, &b), 1);
        for i in 0..32 {
            b = a;
            b[i] ^= 0x80;
            assert_eq!(ct_eq(&a, &b), 0);
        }
    }
}
