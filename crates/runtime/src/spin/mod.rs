//! The Spin platform interfaces kefu provides (`fermyon:spin@2.0.0`), so components built with
//! the Spin SDK run unchanged: [`variables`], [`key_value`] (persisted in SQLite by
//! [`crate::kv`]) and [`llm`] (over the same engines as wasi-nn, without streaming).
//!
//! The rest of `fermyon:spin/platform@2.0.0` (redis, mqtt, postgres, mysql, sqlite) is not
//! provided; the [`app`](crate::app) module links whatever else a component imports as traps,
//! so a component that merely links those interfaces still instantiates.

use anyhow::Result;
use wasmtime::component::{HasSelf, Linker};

use crate::state::GuestState;

pub(crate) mod key_value;
pub(crate) mod llm;
pub(crate) mod variables;

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/spin",
        world: "fermyon:spin/kefu-spin",
        imports: {
            "fermyon:spin/llm.infer": async | trappable,
            default: trappable,
        },
        with: {
            "fermyon:spin/key-value.store": super::key_value::StoreHandle,
        },
        anyhow: true,
    });
}

/// Adds the Spin interfaces to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<GuestState>) -> Result<()> {
    use bindings::fermyon::spin;
    spin::variables::add_to_linker::<_, HasSelf<GuestState>>(linker, |s| s)?;
    spin::key_value::add_to_linker::<_, HasSelf<GuestState>>(linker, |s| s)?;
    spin::llm::add_to_linker::<_, HasSelf<GuestState>>(linker, |s| s)?;
    Ok(())
}
