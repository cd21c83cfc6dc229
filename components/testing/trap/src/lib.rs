//! Test guest that traps on every request: a Rust panic by default (with `panic = "abort"`
//! that ends in `unreachable`), or a bare `unreachable` instruction when the path contains
//! `unreachable`. The host must answer 500 and keep serving other requests.

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_component;

#[http_component]
fn handle(request: Request) -> impl IntoResponse {
    if request.path().contains("unreachable") {
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
    }
    panic!("kefu-test-trap: deliberate panic for {}", request.path());
    #[allow(unreachable_code)]
    spin_sdk::http::Response::new(200, ())
}
