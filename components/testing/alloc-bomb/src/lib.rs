//! Test guest that allocates memory. Without a query it allocates (and touches) 1 MiB blocks
//! until the host's memory cap makes an allocation fail, which aborts the instance. With
//! `?mb=N` it allocates N MiB, then answers 200 `allocated N MiB` (to check that usage below
//! the cap works).

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

const MIB: usize = 1 << 20;

#[http_component]
fn handle(request: Request) -> impl IntoResponse {
    let limit: Option<usize> = request
        .query()
        .split('&')
        .find_map(|kv| kv.strip_prefix("mb="))
        .and_then(|v| v.parse().ok());
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    while limit.is_none_or(|n| blocks.len() < n) {
        let mut block = vec![0u8; MIB];
        // Touch every page so the memory is really committed on the host.
        for i in (0..MIB).step_by(4096) {
            block[i] = blocks.len() as u8;
        }
        blocks.push(std::hint::black_box(block));
    }
    Response::new(200, format!("allocated {} MiB", blocks.len()))
}
