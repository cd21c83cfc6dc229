//! `fermyon:spin/key-value@2.0.0` over the application's persistent stores ([`crate::kv`]).
//!
//! Stores are shared by every request of the application and named by label; a component may
//! open only the labels in its `key_value_stores` (checked here, per instance). Storage,
//! size caps and retention belong to [`KeyValueStores`]; a storage failure is reported to the
//! guest as `error::other` and logged, never as a trap.

use anyhow::Result;
use wasmtime::component::Resource;

use super::bindings::fermyon::spin::key_value::{Error, Host, HostStore};
use crate::kv::{KeyValueStores, KvError};
use crate::state::GuestState;

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

fn guest_error(component: &str, label: &str, error: KvError) -> Error {
    match error {
        KvError::Full { .. } => Error::Other(error.to_string()),
        KvError::Db(e) => {
            tracing::warn!(component, store = label, error = %e, "key-value operation failed");
            Error::Other(format!("store `{label}` is unavailable"))
        }
    }
}

impl GuestState {
    /// Runs `op` on the store behind `handle`, mapping storage errors for the guest.
    fn kv<R>(
        &mut self,
        handle: &Resource<StoreHandle>,
        op: impl FnOnce(&KeyValueStores, &str) -> Result<R, KvError>,
    ) -> Result<Result<R, Error>> {
        let label = &self.table.get(handle)?.label;
        let config = &self.config;
        Ok(op(&config.key_value.stores, label).map_err(|e| guest_error(&config.id, label, e)))
    }
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
        self.kv(&store, |s, label| s.get(label, &key))
    }

    fn set(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Result<Result<(), Error>> {
        self.kv(&store, |s, label| s.set(label, &key, &value))
    }

    fn delete(&mut self, store: Resource<StoreHandle>, key: String) -> Result<Result<(), Error>> {
        self.kv(&store, |s, label| s.delete(label, &key))
    }

    fn exists(&mut self, store: Resource<StoreHandle>, key: String) -> Result<Result<bool, Error>> {
        self.kv(&store, |s, label| s.exists(label, &key))
    }

    fn get_keys(&mut self, store: Resource<StoreHandle>) -> Result<Result<Vec<String>, Error>> {
        self.kv(&store, |s, label| s.keys(label))
    }

    fn drop(&mut self, store: Resource<StoreHandle>) -> Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
