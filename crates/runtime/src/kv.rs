//! The application's key-value stores, persisted in SQLite at `<state-dir>/key_value.db`.
//!
//! Owns: the database file and its schema, the per-store size cap, and the retention of
//! conversation records. It backs `fermyon:spin/key-value` (the grants are checked in
//! `spin::key_value`, not here) and is read directly by offline commands (`kefu feedback
//! export`, `kefu stats`) through [`KeyValueStores::open_read_only`] and
//! [`KeyValueStores::scan`].
//!
//! One table `entries(store, key, value, updated_at)`; `updated_at` is Unix seconds of the
//! last write. One connection behind a mutex (WAL journal, so readers in other processes do
//! not block the server); every operation is a single statement or a short transaction.
//!
//! Invariant: the bytes of a store (keys plus values) never exceed its capacity; the running
//! totals are loaded at open and kept in step with every write and prune.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

/// The database's file name under the state directory.
pub const DB_FILE: &str = "key_value.db";

/// Most bytes (keys plus values) one store holds, unless set otherwise.
pub const DEFAULT_STORE_CAPACITY_BYTES: u64 = 256 << 20;

/// Default age after which conversation records are deleted.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Key prefixes subject to retention: the gateway's conversation records (masked questions
/// and answers, feedback) and its quota counters. Other keys stay until a component deletes
/// them, as with Spin's own key-value stores.
pub const RETAINED_PREFIXES: &[&str] = &["completion:", "feedback:", "quota:"];

/// How often [`KeyValueStores::prune_periodically`] prunes.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    store      TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      BLOB    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (store, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_updated_at ON entries (updated_at);
";

/// A store refused a write.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("store `{store}` is full ({capacity} bytes)")]
    Full { store: String, capacity: u64 },
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// One stored entry, as [`KeyValueStores::scan`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    /// Unix seconds of the last write.
    pub updated_at: i64,
}

/// All key-value stores of an application. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct KeyValueStores {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    capacity: u64,
    db: Mutex<Db>,
}

struct Db {
    conn: Connection,
    /// Bytes per store (keys plus values).
    sizes: HashMap<String, u64>,
}

impl KeyValueStores {
    /// Opens (or creates) `<state_dir>/key_value.db`.
    pub fn open_in(state_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating the state directory {}", state_dir.display()))?;
        Self::open(&state_dir.join(DB_FILE))
    }

    /// Opens (or creates) the database at `path` for reading and writing.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening the key-value database {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)
            .with_context(|| format!("creating the schema of {}", path.display()))?;
        Self::from_connection(conn, path)
    }

    /// Opens an existing database without writing to it (offline readers). Fails with a
    /// clear message when there is none.
    pub fn open_read_only(path: &Path) -> Result<Self> {
        if !path.is_file() {
            bail!(
                "no key-value database at {} (it is created by `kefu up --state-dir DIR`)",
                path.display()
            );
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening the key-value database {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Self::from_connection(conn, path)
    }

    fn from_connection(conn: Connection, path: &Path) -> Result<Self> {
        let sizes = load_sizes(&conn)
            .with_context(|| format!("reading the key-value database {}", path.display()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                capacity: DEFAULT_STORE_CAPACITY_BYTES,
                db: Mutex::new(Db { conn, sizes }),
            }),
        })
    }

    /// The same stores with a different per-store capacity (before any clone is shared).
    pub fn with_capacity(self, bytes: u64) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => Self {
                inner: Arc::new(Inner {
                    capacity: bytes,
                    ..inner
                }),
            },
            Err(inner) => Self { inner },
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Bytes (keys plus values) `store` holds.
    pub fn store_bytes(&self, store: &str) -> u64 {
        self.db().sizes.get(store).copied().unwrap_or(0)
    }

    fn db(&self) -> MutexGuard<'_, Db> {
        self.inner.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let db = self.db();
        let value = db
            .conn
            .prepare_cached("SELECT value FROM entries WHERE store = ?1 AND key = ?2")?
            .query_row(params![store, key], |row| row.get(0))
            .optional()?;
        Ok(value)
    }

    pub fn exists(&self, store: &str, key: &str) -> Result<bool, KvError> {
        let db = self.db();
        let found = db
            .conn
            .prepare_cached("SELECT 1 FROM entries WHERE store = ?1 AND key = ?2")?
            .exists(params![store, key])?;
        Ok(found)
    }

    /// Sets `key` to `value`, stamped now.
    pub fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.set_at(store, key, value, unix_now())
    }

    fn set_at(&self, store: &str, key: &str, value: &[u8], updated_at: i64) -> Result<(), KvError> {
        let mut guard = self.db();
        let Db { conn, sizes } = &mut *guard;
        let tx = conn.transaction()?;
        let old: Option<i64> = tx
            .prepare_cached(
                "SELECT length(CAST(key AS BLOB)) + length(value) FROM entries \
                 WHERE store = ?1 AND key = ?2",
            )?
            .query_row(params![store, key], |row| row.get(0))
            .optional()?;
        let current = sizes.get(store).copied().unwrap_or(0);
        let new_size = current - old.unwrap_or(0) as u64 + (key.len() + value.len()) as u64;
        if new_size > self.inner.capacity {
            return Err(KvError::Full {
                store: store.to_owned(),
                capacity: self.inner.capacity,
            });
        }
        tx.prepare_cached(
            "INSERT INTO entries (store, key, value, updated_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (store, key) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )?
        .execute(params![store, key, value, updated_at])?;
        tx.commit()?;
        sizes.insert(store.to_owned(), new_size);
        Ok(())
    }

    pub fn delete(&self, store: &str, key: &str) -> Result<(), KvError> {
        let mut db = self.db();
        let removed: Option<i64> = db
            .conn
            .prepare_cached(
                "DELETE FROM entries WHERE store = ?1 AND key = ?2 \
                 RETURNING length(CAST(key AS BLOB)) + length(value)",
            )?
            .query_row(params![store, key], |row| row.get(0))
            .optional()?;
        if let Some(bytes) = removed {
            let size = db.sizes.entry(store.to_owned()).or_default();
            *size = size.saturating_sub(bytes as u64);
        }
        Ok(())
    }

    /// Every key of `store`, in order.
    pub fn keys(&self, store: &str) -> Result<Vec<String>, KvError> {
        let db = self.db();
        let mut stmt = db
            .conn
            .prepare_cached("SELECT key FROM entries WHERE store = ?1 ORDER BY key")?;
        let keys = stmt
            .query_map(params![store], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(keys)
    }

    /// Every entry of `store` whose key starts with `prefix`, in key order.
    pub fn scan(&self, store: &str, prefix: &str) -> Result<Vec<Entry>> {
        let db = self.db();
        let mut stmt = db.conn.prepare_cached(
            "SELECT key, value, updated_at FROM entries \
             WHERE store = ?1 AND substr(key, 1, length(?2)) = ?2 ORDER BY key",
        )?;
        let entries = stmt
            .query_map(params![store, prefix], |row| {
                Ok(Entry {
                    key: row.get(0)?,
                    value: row.get(1)?,
                    updated_at: row.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading {}", self.inner.path.display()))?;
        Ok(entries)
    }

    /// Deletes entries under [`RETAINED_PREFIXES`], in every store, last written before
    /// `now - retention`. Returns how many were deleted.
    pub fn prune(&self, retention: Duration, now: SystemTime) -> Result<usize> {
        let cutoff = unix(now) - i64::try_from(retention.as_secs()).unwrap_or(i64::MAX / 2);
        let mut guard = self.db();
        let Db { conn, sizes } = &mut *guard;
        let tx = conn.transaction()?;
        let mut deleted = 0;
        for prefix in RETAINED_PREFIXES {
            deleted += tx
                .prepare_cached(
                    "DELETE FROM entries WHERE updated_at < ?1 \
                     AND substr(key, 1, length(?2)) = ?2",
                )?
                .execute(params![cutoff, prefix])?;
        }
        tx.commit()?;
        if deleted > 0 {
            *sizes = load_sizes(conn)?;
        }
        Ok(deleted)
    }

    /// Prunes now, then every [`PRUNE_INTERVAL`] on a background thread for as long as any
    /// clone of these stores is alive.
    pub fn prune_periodically(&self, retention: Duration) -> Result<()> {
        self.prune_and_log(retention);
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        std::thread::Builder::new()
            .name("kv-prune".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(PRUNE_INTERVAL);
                    let Some(inner) = weak.upgrade() else { return };
                    KeyValueStores { inner }.prune_and_log(retention);
                }
            })
            .context("starting the key-value pruning thread")?;
        Ok(())
    }

    fn prune_and_log(&self, retention: Duration) {
        match self.prune(retention, SystemTime::now()) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deleted = n,
                retention_days = retention.as_secs() / 86400,
                "pruned expired key-value entries"
            ),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "pruning key-value entries failed"),
        }
    }
}

fn load_sizes(conn: &Connection) -> rusqlite::Result<HashMap<String, u64>> {
    let mut stmt = conn.prepare(
        "SELECT store, SUM(length(CAST(key AS BLOB)) + length(value)) FROM entries GROUP BY store",
    )?;
    stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
    })?
    .collect()
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn unix_now() -> i64 {
    unix(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> KeyValueStores {
        KeyValueStores::open_in(dir).unwrap()
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = open(dir.path());
            kv.set("default", "a", b"1").unwrap();
            kv.set("default", "b", b"22").unwrap();
            kv.set("other", "a", b"x").unwrap();
            kv.set("default", "a", b"333").unwrap();
            kv.delete("default", "b").unwrap();
        }
        let kv = open(dir.path());
        assert_eq!(
            kv.get("default", "a").unwrap().as_deref(),
            Some(&b"333"[..])
        );
        assert_eq!(kv.get("default", "b").unwrap(), None);
        assert_eq!(kv.get("other", "a").unwrap().as_deref(), Some(&b"x"[..]));
        assert!(kv.exists("default", "a").unwrap());
        assert!(!kv.exists("nowhere", "a").unwrap());
        assert_eq!(kv.keys("default").unwrap(), ["a"]);
        assert_eq!(kv.store_bytes("default"), 4);
        assert_eq!(kv.store_bytes("other"), 2);
        assert!(dir.path().join(DB_FILE).is_file());
    }

    #[test]
    fn capacity_is_enforced_per_store() {
        let dir = tempfile::tempdir().unwrap();
        let kv = open(dir.path()).with_capacity(10);
        kv.set("s", "k", b"123456789").unwrap(); // 10 bytes: exactly full
        let err = kv.set("s", "j", b"1").unwrap_err();
        assert!(matches!(err, KvError::Full { capacity: 10, .. }), "{err}");
        // Replacing a value counts only the difference; another store has its own budget.
        kv.set("s", "k", b"12345").unwrap();
        kv.set("s", "j", b"123").unwrap();
        kv.set("t", "k", b"123456789").unwrap();
        assert_eq!(kv.store_bytes("s"), 10);
        kv.delete("s", "k").unwrap();
        assert_eq!(kv.store_bytes("s"), 4);
        // Multi-byte keys count in bytes.
        assert!(kv.set("s", "中文", b"1234").is_err());
        drop(kv);
        // Totals are rebuilt from the file.
        let kv = open(dir.path());
        assert_eq!(kv.store_bytes("s"), 4);
        assert_eq!(kv.store_bytes("t"), 10);
    }

    #[test]
    fn prune_deletes_only_old_records() {
        let dir = tempfile::tempdir().unwrap();
        let kv = open(dir.path());
        let now = SystemTime::now();
        let day = 86_400;
        let t = unix(now);
        kv.set_at("default", "completion:old", b"q", t - 31 * day)
            .unwrap();
        kv.set_at("default", "feedback:old", b"f", t - 40 * day)
            .unwrap();
        kv.set_at("default", "completion:new", b"q", t - 29 * day)
            .unwrap();
        kv.set_at("default", "settings", b"s", t - 400 * day)
            .unwrap();
        kv.set_at("other", "quota:x", b"1", t - 31 * day).unwrap();
        let deleted = kv.prune(Duration::from_secs(30 * day as u64), now).unwrap();
        assert_eq!(deleted, 3);
        assert_eq!(kv.keys("default").unwrap(), ["completion:new", "settings"]);
        assert!(kv.keys("other").unwrap().is_empty());
        assert_eq!(
            kv.store_bytes("default"),
            "completion:new".len() as u64 + 1 + 9
        );
        assert_eq!(
            kv.prune(Duration::from_secs(30 * day as u64), now).unwrap(),
            0
        );
    }

    #[test]
    fn scan_by_prefix_and_read_only_open() {
        let dir = tempfile::tempdir().unwrap();
        let missing = KeyValueStores::open_read_only(&dir.path().join(DB_FILE));
        assert!(missing.is_err());
        let kv = open(dir.path());
        kv.set("default", "completion:b", b"2").unwrap();
        kv.set("default", "completion:a", b"1").unwrap();
        kv.set("default", "completions", b"no").unwrap();
        kv.set("default", "feedback:a", b"f").unwrap();
        // A reader in another connection sees committed writes while the writer is open.
        let reader = KeyValueStores::open_read_only(&dir.path().join(DB_FILE)).unwrap();
        let keys: Vec<_> = reader
            .scan("default", "completion:")
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["completion:a", "completion:b"]);
        assert!(reader.set("default", "x", b"y").is_err());
        assert!(reader.scan("default", "%").unwrap().is_empty());
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let kv = open(dir.path());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let kv = kv.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        kv.set("default", &format!("k{t}-{i}"), b"v").unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(kv.keys("default").unwrap().len(), 400);
    }
}
