//! What a guest may consume: memory, CPU, concurrent instances and wall-clock time.
//!
//! # CPU: fuel, not epochs
//!
//! A guest must be stopped when it computes too long, but a streaming chat answer can keep a
//! guest alive for minutes while it mostly *waits*: on the engine inside wasi-nn `compute`, or
//! on a slow client draining the response body. Only the time the guest spends executing its
//! own instructions should count.
//!
//! Epoch interruption measures wall-clock time, waits included; excluding them would mean
//! re-arming the deadline around every host call. Fuel counts executed Wasm instructions
//! only: awaiting a host future consumes none. So each request's store gets a fuel budget
//! ([`GuestLimits::fuel`]) and a runaway loop runs dry within seconds, while a generation that
//! streams for minutes uses a few million units for its JSON and SSE framing. With
//! `fuel_async_yield_interval` a busy guest also yields to the tokio scheduler regularly, so it
//! cannot monopolise a worker thread. Fuel costs some guest speed (a counter update per basic
//! block), which is small next to inference.
//!
//! A wall-clock [`GuestLimits::request_timeout`] remains as a last resort against a guest that
//! waits forever on a host timer.
//!
//! # Memory
//!
//! [`MemoryLimiter`] caps each store's linear memories and fails the growth with a trap, and
//! records that it did so the error is reported as a memory limit rather than a generic trap.
//! The pooling allocator's slots are sized to the same cap.

use std::time::Duration;

use wasmtime::{PoolingAllocationConfig, ResourceLimiter};

/// Default CPU budget of one request. Measured here (2-core x86-64 VM, wasmtime 48,
/// Cranelift): a tight guest loop burns about 8e9 fuel per second (3e9 lasted 0.36 s), so this
/// stops one in one to two seconds; typical guest code retires fewer instructions per second,
/// so "a few seconds" of real work. A chat request's own guest work (JSON, retrieval over the
/// FAQ, SSE framing per chunk) is orders of magnitude below it.
pub const DEFAULT_FUEL: u64 = 10_000_000_000;

/// Per-request guest limits.
#[derive(Debug, Clone)]
pub struct GuestLimits {
    /// Most bytes of linear memory one request's component instance may hold (all memories).
    pub memory_bytes: usize,
    /// CPU budget of one request in Wasm fuel units (about one per instruction).
    pub fuel: u64,
    /// A busy guest yields to the async runtime after this much fuel.
    pub fuel_yield_interval: u64,
    /// Component instances that may exist at once (concurrent requests); sizes the pool.
    pub max_instances: u32,
    /// Wall-clock limit of one request, waits included.
    pub request_timeout: Duration,
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            fuel: DEFAULT_FUEL,
            fuel_yield_interval: 10_000_000,
            max_instances: 256,
            request_timeout: Duration::from_secs(600),
        }
    }
}

impl GuestLimits {
    /// Pooling allocator settings matching these limits.
    pub(crate) fn pooling_config(&self) -> PoolingAllocationConfig {
        let mut pool = PoolingAllocationConfig::default();
        let n = self.max_instances.max(1);
        // A wasip2 component built by Rust has a few core instances (the program, the WASI
        // adapter, shims), each possibly with a memory and a table.
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(4))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_memory_size(self.memory_bytes)
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            // Keep a little of each freed memory resident so the next request's instantiation
            // does not fault it all in again.
            .linear_memory_keep_resident(1 << 20);
        pool
    }

    pub(crate) fn limiter(&self) -> MemoryLimiter {
        MemoryLimiter {
            memory_bytes: self.memory_bytes,
            total: 0,
            exceeded: false,
        }
    }
}

/// Caps the linear memory of one store. Growth past the cap traps the guest.
pub(crate) struct MemoryLimiter {
    memory_bytes: usize,
    /// Bytes held by all memories of the store (a store serves one request, so memories are
    /// only ever added or grown).
    total: usize,
    /// Set once a growth was refused; read after a failed request to name the cause.
    pub(crate) exceeded: bool,
}

/// The error a refused memory growth traps with.
#[derive(Debug, thiserror::Error)]
#[error("the component exceeded its memory limit of {limit} bytes (wanted {wanted} bytes)")]
pub struct MemoryLimitExceeded {
    pub limit: usize,
    pub wanted: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total - current.min(self.total) + desired;
        if total > self.memory_bytes {
            self.exceeded = true;
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.memory_bytes,
                wanted: total,
            }));
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max) && desired <= 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_all_memories_of_a_store() {
        let mut l = GuestLimits {
            memory_bytes: 100,
            ..GuestLimits::default()
        }
        .limiter();
        assert!(l.memory_growing(0, 60, None).unwrap());
        // A second memory: 60 + 30 fits.
        assert!(l.memory_growing(0, 30, None).unwrap());
        // Growing the second from 30 to 50 makes 110.
        assert!(l.memory_growing(30, 50, None).is_err());
        assert!(l.exceeded);
    }
}
