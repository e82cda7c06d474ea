//! Empty: this crate is its test, `tests/coexist.rs` (run with
//! `cargo test -p wasm-alloc-coexist --target wasm32-unknown-unknown`).
#![no_std]
