//! Test guest that never returns: it burns CPU in an endless loop without calling the host,
//! so only epoch interruption (a CPU deadline) can stop it.

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_component;

#[http_component]
fn handle(_request: Request) -> impl IntoResponse {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    #[allow(unreachable_code)]
    spin_sdk::http::Response::new(200, ())
}
