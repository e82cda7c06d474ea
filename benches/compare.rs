//! `cargo bench` (or `cargo bench --bench compare`): the allocator comparison.
//!
//! 1. installs the wasm32-unknown-unknown target if rustup lacks it;
//! 2. builds the workloads once per allocator (`benches/peers/*`, `--profile wasm-bench`,
//!    linked with `--import-memory` so the runner can cap memory) into `target/bench`;
//!    wasm-alloc is built on its own, so a build failure there (or of any peer) becomes
//!    a FAIL row instead of stopping the run;
//! 3. builds the `no_std` size probe once per allocator (`--profile wasm-size`), and
//!    runs `wasm-opt -Oz` on it when binaryen is installed;
//! 4. writes `target/bench/manifest.json` and runs `node benches/runner/run.mjs`.
//!
//! Quick mode: `BENCH_QUICK=1 cargo bench` or `cargo bench --bench compare -- --quick`;
//! its results go to `target/bench/quick/` instead of `benches/results/`.
//! Other arguments after `--` are passed to the runner (e.g. `--only churn,json`).

use std::env;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// (name in the report, workload package, its wasm file stem, size-probe feature)
const ALLOCATORS: &[(&str, &str, &str, &str)] = &[
    ("wasm-alloc", "wl-wasm-alloc", "wl_wasm_alloc", "wasm-alloc"),
    ("dlmalloc", "wl-dlmalloc", "wl_dlmalloc", "dlmalloc"),
    ("wasmalloc", "wl-wasmalloc", "wl_wasmalloc", "wasmalloc"),
    ("talc", "wl-talc", "wl_talc", "talc"),
    ("rlsf", "wl-rlsf", "wl_rlsf", "rlsf"),
    ("lol_alloc", "wl-lol-alloc", "wl_lol_alloc", "lol_alloc"),
    ("wee_alloc", "wl-wee-alloc", "wl_wee_alloc", "wee_alloc"),
    ("bump", "wl-bump", "wl_bump", "bump"),
];
const TARGET: &str = "wasm32-unknown-unknown";
const WASM_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-multivalue",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-reference-types",
    "--enable-sign-ext",
];

fn main() {
    let t_start = Instant::now();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    env::set_current_dir(&root).expect("cd to the workspace root");
    let args: Vec<String> = env::args().skip(1).filter(|a| a != "--bench").collect();
    let quick = args.iter().any(|a| a == "--quick")
        || env::var("BENCH_QUICK")
            .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
    let runner_args: Vec<String> = args.iter().filter(|a| *a != "--quick").cloned().collect();
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_root = env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bench_dir = target_root.join("bench");

    let node = match output("node", &["--version"]) {
        Some(v) => v,
        None => fail("the benchmark runs its wasm modules under Node (>= 18): install node and retry"),
    };
    ensure_wasm_target();

    // --- workloads, one module per allocator -------------------------------------------
    let wasm_dir = bench_dir.join("wasm");
    fs::create_dir_all(&wasm_dir).expect("create target/bench/wasm");
    let build = |pkgs: &[&str]| -> Result<(), String> {
        let mut c = Command::new(&cargo);
        c.args(["build", "--profile", "wasm-bench", "--target", TARGET, "--target-dir"])
            .arg(&bench_dir)
            .env("CARGO_ENCODED_RUSTFLAGS", "-Clink-arg=--import-memory");
        for p in pkgs {
            c.args(["-p", p]);
        }
        run_cargo(c)
    };
    let mut errors: Vec<Option<String>> = vec![None; ALLOCATORS.len()];
    let peers: Vec<&str> = ALLOCATORS.iter().skip(1).map(|a| a.1).collect();
    eprintln!("bench: building the workloads for {} peers (target/bench)", peers.len());
    if build(&peers).is_err() {
        // Find out which peer does not build; the others still run.
        for (i, a) in ALLOCATORS.iter().enumerate().skip(1) {
            errors[i] = build(&[a.1]).err();
        }
    }
    eprintln!("bench: building the workloads for wasm-alloc");
    errors[0] = build(&[ALLOCATORS[0].1]).err();
    let built = bench_dir.join(TARGET).join("wasm-bench");
    let mut wasm_paths = Vec::new();
    for (i, a) in ALLOCATORS.iter().enumerate() {
        let dst = wasm_dir.join(format!("{}.wasm", a.0));
        let _ = fs::remove_file(&dst);
        if errors[i].is_none() {
            if let Err(e) = fs::copy(built.join(format!("{}.wasm", a.2)), &dst) {
                errors[i] = Some(format!("no module: {e}"));
            }
        }
        wasm_paths.push(dst);
    }

    // --- code size ----------------------------------------------------------------------
    let wasm_opt = output("wasm-opt", &["--version"]);
    if wasm_opt.is_none() {
        eprintln!("bench: wasm-opt not found (apt-get install binaryen): sizes without wasm-opt -Oz");
    }
    let mut sizes = Vec::new();
    for a in ALLOCATORS {
        eprintln!("bench: size probe for {}", a.0);
        let dir = bench_dir.join("size").join(a.3);
        let mut c = Command::new(&cargo);
        c.args([
            "build",
            "--profile",
            "wasm-size",
            "--target",
            TARGET,
            "-p",
            "size-probe",
            "--features",
            a.3,
        ])
        .arg("--target-dir")
        .arg(&dir)
        .env("CARGO_ENCODED_RUSTFLAGS", "");
        let res = run_cargo(c).and_then(|()| {
            let file = dir.join(TARGET).join("wasm-size").join("size_probe.wasm");
            let bytes = fs::metadata(&file).map_err(|e| e.to_string())?.len();
            let opt = wasm_opt.as_ref().and_then(|_| {
                let out = file.with_extension("opt.wasm");
                // The probe is stripped (no target_features section): name the features
                // rustc enables by default for wasm32-unknown-unknown.
                let ok = Command::new("wasm-opt")
                    .arg("-Oz")
                    .args(WASM_FEATURES)
                    .arg("--strip-debug")
                    .arg("--strip-producers")
                    .arg(&file)
                    .arg("-o")
                    .arg(&out)
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    fs::metadata(&out).ok().map(|m| m.len())
                } else {
                    None
                }
            });
            Ok((bytes, opt))
        });
        sizes.push(match res {
            Ok((b, Some(o))) => format!(r#"{{"name":{},"bytes":{b},"opt_bytes":{o}}}"#, js(a.0)),
            Ok((b, None)) => format!(r#"{{"name":{},"bytes":{b}}}"#, js(a.0)),
            Err(e) => format!(r#"{{"name":{},"error":{}}}"#, js(a.0), js(&e)),
        });
    }

    // --- manifest and runner ---------------------------------------------------------------
    let allocs: Vec<String> = ALLOCATORS
        .iter()
        .zip(&errors)
        .zip(&wasm_paths)
        .map(|((a, e), p)| match e {
            None => format!(r#"{{"name":{},"wasm":{}}}"#, js(a.0), js(&p.to_string_lossy())),
            Some(e) => format!(r#"{{"name":{},"error":{}}}"#, js(a.0), js(e)),
        })
        .collect();
    let out_dir = if quick { bench_dir.join("quick") } else { root.join("benches").join("results") };
    let rustc =
        output(&env::var("RUSTC").unwrap_or_else(|_| "rustc".into()), &["--version"]).unwrap_or_default();
    // Which wasm-alloc was measured: the commit, and whether src/ had local changes.
    let commit = output("git", &["rev-parse", "--short", "HEAD"]).map(|c| {
        let dirty = Command::new("git")
            .args(["diff", "--quiet", "HEAD", "--", "src"])
            .status()
            .is_ok_and(|s| !s.success());
        if dirty {
            format!("{c} + uncommitted src/ changes")
        } else {
            c
        }
    });
    let manifest = format!(
        "{{\n\"allocators\":[\n{}\n],\n\"sizes\":[\n{}\n],\n\"wasm_opt\":{},\n\"rustc\":{},\n\"node\":{},\n\"profile\":{},\n\"out_dir\":{},\n\"commit\":{}\n}}\n",
        allocs.join(",\n"),
        sizes.join(",\n"),
        wasm_opt.as_deref().map_or("null".into(), js),
        js(&rustc),
        js(&node),
        js("wasm-bench (opt-level=3, fat LTO, codegen-units=1, panic=abort)"),
        js(&out_dir.to_string_lossy()),
        commit.as_deref().map_or("null".into(), js),
    );
    let manifest_path = bench_dir.join("manifest.json");
    fs::write(&manifest_path, manifest).expect("write manifest");

    let mut node_cmd = Command::new("node");
    node_cmd
        .arg("--no-liftoff")
        .arg(root.join("benches/runner/run.mjs"))
        .arg("--manifest")
        .arg(&manifest_path);
    if quick {
        node_cmd.arg("--quick");
    }
    node_cmd.args(&runner_args);
    let t_run = Instant::now();
    eprintln!("bench: builds took {} s; running the workloads", (t_run - t_start).as_secs());
    let status = node_cmd.status().unwrap_or_else(|e| fail(&format!("cannot run node: {e}")));
    eprintln!(
        "bench: {} s in all ({} s of builds, {} s of runs)",
        t_start.elapsed().as_secs(),
        (t_run - t_start).as_secs(),
        t_run.elapsed().as_secs()
    );
    std::process::exit(status.code().unwrap_or(1));
}

fn ensure_wasm_target() {
    let Some(list) = output("rustup", &["target", "list", "--installed"]) else {
        eprintln!("bench: no rustup; assuming the {TARGET} target is installed");
        return;
    };
    if !list.lines().any(|l| l.trim() == TARGET) {
        eprintln!("bench: rustup target add {TARGET}");
        let ok = Command::new("rustup").args(["target", "add", TARGET]).status().is_ok_and(|s| s.success());
        if !ok {
            fail(&format!("rustup target add {TARGET} failed"));
        }
    }
}

/// Runs cargo, echoing its `Compiling` lines (and a line every 30 s without any, so a
/// long link still shows); on failure returns its first error line (and the one after it).
fn run_cargo(mut c: Command) -> Result<(), String> {
    let mut child = c.stdout(Stdio::inherit()).stderr(Stdio::piped()).spawn().map_err(|e| e.to_string())?;
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    let start = Instant::now();
    let mut said = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => {
                if line.trim_start().starts_with("Compiling") {
                    eprintln!("  {}", line.trim());
                    said = Instant::now();
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if said.elapsed() >= Duration::from_secs(30) {
                    eprintln!("  ... cargo still building ({} s)", start.elapsed().as_secs());
                    said = Instant::now();
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let err = reader.join().unwrap_or_default();
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        if let Some(l) = err.lines().rev().find(|l| l.trim_start().starts_with("Finished")) {
            eprintln!("  {}", l.trim());
        }
        return Ok(());
    }
    eprintln!("{err}");
    let lines: Vec<&str> = err.lines().collect();
    let i = lines.iter().position(|l| l.starts_with("error")).unwrap_or(0);
    let msg = lines[i..].iter().take(2).map(|l| l.trim()).collect::<Vec<_>>().join(" ");
    Err(if msg.is_empty() { format!("cargo build failed ({status})") } else { msg })
}

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).stderr(Stdio::null()).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn js(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn fail(msg: &str) -> ! {
    eprintln!("bench: {msg}");
    std::process::exit(1)
}
