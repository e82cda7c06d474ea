//! Links the wasm32 test binary with a 4 MiB initial memory, so the initial heap
//! (`__heap_base..__heap_end`) is large enough for dlmalloc to start in it: the case where
//! a `WasmAllocator` that takes the initial heap would overlap dlmalloc's first blocks.
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo::rustc-link-arg-tests=--initial-memory=4194304");
    }
}
