//! `fermyon:spin/key-value@2.0.0`, in memory.
//!
//! Stores are shared by every request of the application and named by label; a component may
//! open only the labels in its `key_value_stores`. Contents do not survive a restart (a
//! SQLite backend under the state directory can replace [`KeyValueStores`] later). Each store
//! is capped in size so a guest cannot exhaust host memory through it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use wasmtime::component::Resource;

use super::bindings::fermyon::spin::key_value::{Error, Host, HostStore};
use crate::state::GuestState;

/// Most bytes (keys plus values) one store holds.
pub const STORE_CAPACITY_BYTES: usize = 64 << 20;

/// All key-value stores of the application.
#[derive(Clone, Default)]
pub struct KeyValueStores {
    stores: Arc<Mutex<HashMap<String, Store>>>,
}

#[derive(Default)]
struct Store {
    entries: BTreeMap<String, Vec<u8>>,
    bytes: usize,
}

impl KeyValueStores {
    fn with_store<R>(&self, label: &str, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        f(stores.entry(label.to_owned()).or_default())
    }
}

/// One component's access: the shared stores and the labels it is granted.
#[derive(Clone)]
pub(crate) struct KeyValueAccess {
    pub stores: KeyValueStores,
    pub granted: Vec<String>,
}

/// An open store (the `store` resource).
pub struct StoreHandle {
    label: String,
}

impl Host for GuestState {}

impl HostStore for GuestState {
    fn open(&mut self, label: String) -> Result<Result<Resource<StoreHandle>, Error>> {
        if !self.config.key_value.granted.contains(&label) {
            return Ok(Err(Error::AccessDenied));
        }
        Ok(Ok(self.table.push(StoreHandle { label })?))
    }

    fn get(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> Result<Result<Option<Vec<u8>>, Error>> {
        let label = &self.table.get(&store)?.label;
        let value = self
            .config
            .key_value
            .stores
            .with_store(label, |s| s.entries.get(&key).cloned());
        Ok(Ok(value))
    }

    fn set(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Result<Result<(), Error>> {
        let label = &self.table.get(&store)?.label;
        let result = self.config.key_value.stores.with_store(label, |s| {
            let old = s.entries.get(&key).map_or(0, |v| key.len() + v.len());
            let new = key.len() + value.len();
            if s.bytes - old + new > STORE_CAPACITY_BYTES {
                return Err(Error::Other(format!(
                    "store `{label}` is full ({STORE_CAPACITY_BYTES} bytes)"
                )));
            }
            s.bytes = s.bytes - old + new;
            s.entries.insert(key, value);
            Ok(())
        });
        Ok(result)
    }

    fn delete(&mut self, store: Resource<StoreHandle>, key: String) -> Result<Result<(), Error>> {
        let label = &self.table.get(&store)?.label;
        self.config.key_value.stores.with_store(label, |s| {
            if let Some(v) = s.entries.remove(&key) {
                s.bytes -= key.len() + v.len();
            }
        });
        Ok(Ok(()))
    }

    fn exists(&mut self, store: Resource<StoreHandle>, key: String) -> Result<Result<bool, Error>> {
        let label = &self.table.get(&store)?.label;
        let exists = self
            .config
            .key_value
            .stores
            .with_store(label, |s| s.entries.contains_key(&key));
        Ok(Ok(exists))
    }

    fn get_keys(&mut self, store: Resource<StoreHandle>) -> Result<Result<Vec<String>, Error>> {
        let label = &self.table.get(&store)?.label;
        let keys = self
            .config
            .key_value
            .stores
            .with_store(label, |s| s.entries.keys().cloned().collect());
        Ok(Ok(keys))
    }

    fn drop(&mut self, store: Resource<StoreHandle>) -> Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
