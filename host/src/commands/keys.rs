//! `kefu keys new`: a fresh random API key, printed once, and the `api_keys` entry (its
//! SHA-256 digest) that lets the gateway accept it. kefu never stores the key itself.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Print a new random API key and the line that adds its digest to `api_keys`.
    New(NewArgs),
}

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// A label for the key (who or what uses it), shown in the printed line.
    #[arg(long)]
    name: Option<String>,
    /// The manifest whose `api_keys` default the printed line extends.
    #[arg(long, short = 'f', default_value = "spin.toml")]
    manifest: PathBuf,
}

/// Bytes of randomness in a key (256 bits).
const KEY_BYTES: usize = 32;
/// Prefix that makes kefu keys recognisable (e.g. by secret scanners).
const KEY_PREFIX: &str = "kefu-";

pub fn run(cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::New(args) => new_key(&args),
    }
}

fn new_key(args: &NewArgs) -> Result<()> {
    let key = generate_key()?;
    let digest = digest_hex(&key);
    let label = args
        .name
        .as_deref()
        .map(|n| format!(" `{n}`"))
        .unwrap_or_default();
    println!("New API key{label} (shown only this once; kefu keeps only its digest):\n");
    println!("  {key}\n");
    println!("SHA-256: {digest}\n");
    let list = match current_api_keys(&args.manifest) {
        Some(current) if !current.trim().is_empty() => format!("{},{digest}", current.trim()),
        _ => digest.clone(),
    };
    let comment = args
        .name
        .as_deref()
        .map(|n| format!("  # added {n}"))
        .unwrap_or_default();
    println!(
        "Accept it by adding the digest to `api_keys` in {} [variables]:\n",
        args.manifest.display()
    );
    println!("  api_keys = {{ default = \"{list}\" }}{comment}\n");
    println!("or when serving: kefu up --variable api_keys={list}");
    println!("(or SPIN_VARIABLE_API_KEYS={list})");
    Ok(())
}

/// `kefu-` and 64 hex digits from the operating system's random source.
fn generate_key() -> Result<String> {
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes).context("reading the system's random source")?;
    Ok(format!("{KEY_PREFIX}{}", hex::encode(bytes)))
}

/// Lowercase hex SHA-256, as `api_keys` lists digests (`printf %s "$KEY" | sha256sum`).
fn digest_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The manifest's `[variables] api_keys` default, if it has one.
fn current_api_keys(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let doc: toml::Table = toml::from_str(&text).ok()?;
    let var = doc.get("variables")?.get("api_keys")?;
    var.get("default")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_digests_match_sha256sum() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 2 * KEY_BYTES);
        assert_eq!(
            digest_hex("kefu-demo-key"),
            "c323bd9a55870cf7341a00289d030972fc4d7a77422c6120db91c8a7939b12dc"
        );
    }

    #[test]
    fn reads_the_current_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spin.toml");
        std::fs::write(&path, "[variables]\napi_keys = { default = \"ab,cd\" }\n").unwrap();
        assert_eq!(current_api_keys(&path).as_deref(), Some("ab,cd"));
        assert_eq!(current_api_keys(&dir.path().join("none.toml")), None);
    }
}
