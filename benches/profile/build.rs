//! Copies the wasm workloads (benches/workloads/src/lib.rs) into OUT_DIR without their
//! crate-level lines (`//!` docs and `#![cfg(target_arch = "wasm32")]`), so that
//! `include!` can compile them for the host unchanged.
use std::{env, fs, path::PathBuf};

fn main() {
    let src = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../workloads/src/lib.rs");
    println!("cargo:rerun-if-changed={}", src.display());
    let text = fs::read_to_string(&src).expect("benches/workloads/src/lib.rs");
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//!") && !l.trim_start().starts_with("#!["))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(PathBuf::from(env::var("OUT_DIR").unwrap()).join("workloads.rs"), body).unwrap();
}
