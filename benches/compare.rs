//! `cargo bench` (or `cargo bench --bench compare`): the allocator comparison.
//!
//! 1. installs the wasm32-unknown-unknown target if rustup lacks it;
//! 2. builds the workloads once per allocator (`benches/peers/*`, `--profile wasm-bench`,
//!    linked with `--import-memory` so the runner can cap memory) into `target/bench`;
//!    wasm-alloc is built on its own, so a build failure there (or of any peer) becomes
//!    a FAIL row instead of stopping the run;
//! 3. builds the `no_std` size probe once per allocator (`--profile wasm-size`), and
//!    runs `wasm-opt -Oz` on it when binaryen is installed;
//! 4. builds the app probe (`benches/app-probe`, a wasm-bindgen cdylib with one export)
//!    once per allocator as users build it, when `wasm-bindgen` is installed: the default
//!    `release` profile, then wasm-bindgen, as is and after `wasm-opt -O` (as wasm-pack
//!    does); and `--profile app-size` (opt-level "z", LTO, one codegen unit), then
//!    wasm-bindgen and `wasm-opt -Oz`;
//! 5. writes `target/bench/manifest.json` (with wasm-alloc's module a second time, as
//!    `wasm-alloc (A/A)`, for the A/A spread) and runs `node benches/runner/run.mjs`.
//!
//! Quick mode: `BENCH_QUICK=1 cargo bench` or `cargo bench --bench compare -- --quick`;
//! its results go to `target/bench/quick/` instead of `benches/results/`.
//! Baseline: `BENCH_BASELINE=<rev> cargo bench` or `cargo bench --bench compare -- --baseline
//! <rev>` adds `wasm-alloc@<short sha>`, wasm-alloc at that git revision built with the
//! current workloads and size probe (see `Baseline`); results go to
//! `target/bench/baseline-run/` (quick: `target/bench/baseline-run/quick/`).
//! Other arguments after `--` are passed to the runner (e.g. `--only churn,json`).

use std::env;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
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
/// The second copy of wasm-alloc's workload module, for the A/A spread.
const AA_NAME: &str = "wasm-alloc (A/A)";
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
    // `--baseline <rev>` / `--baseline=<rev>` (over BENCH_BASELINE): not for the runner.
    let mut baseline_rev = env::var("BENCH_BASELINE").ok().filter(|v| !v.trim().is_empty());
    let mut runner_args: Vec<String> = Vec::new();
    let mut it = args.iter().filter(|a| *a != "--quick");
    while let Some(a) = it.next() {
        if a == "--baseline" {
            baseline_rev =
                Some(it.next().cloned().unwrap_or_else(|| fail("--baseline needs a git revision")));
        } else if let Some(rev) = a.strip_prefix("--baseline=") {
            baseline_rev = Some(rev.to_string());
        } else {
            runner_args.push(a.clone());
        }
    }
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_root = env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bench_dir = target_root.join("bench");

    let node = match output("node", &["--version"]) {
        Some(v) => v,
        None => fail("the benchmark runs its wasm modules under Node (>= 18): install node and retry"),
    };
    ensure_wasm_target();

    // Which wasm-alloc is measured, and the baseline's revision (resolved before any build).
    let head_src_dirty = Command::new("git")
        .args(["diff", "--quiet", "HEAD", "--", "src"])
        .status()
        .is_ok_and(|s| !s.success());
    let baseline = baseline_rev.map(|rev| {
        let b = Baseline::resolve(&rev, &bench_dir, head_src_dirty);
        eprintln!(
            "bench: baseline {} = wasm-alloc at {} ({rev}){}",
            b.name,
            b.sha,
            if b.aa { "; HEAD with src/ clean: an A/A run" } else { "" }
        );
        b
    });

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

    // --- baseline: wasm-alloc at another revision, the current workloads --------------------
    let mut baseline_built: Option<Result<(PathBuf, &str), String>> = None;
    let mut baseline_ready: Result<(), String> = Ok(());
    if let Some(b) = &baseline {
        baseline_ready = b.prepare(&root);
        let res = baseline_ready.clone().and_then(|()| b.build_workloads(&cargo)).and_then(|(file, peer)| {
            let dst = wasm_dir.join(format!("{}.wasm", b.name));
            let _ = fs::remove_file(&dst);
            fs::copy(file, &dst).map_err(|e| format!("no module: {e}"))?;
            Ok((dst, peer))
        });
        baseline_built = Some(res);
    }

    // --- code size ----------------------------------------------------------------------
    let wasm_opt = output("wasm-opt", &["--version"]);
    if wasm_opt.is_none() {
        eprintln!("bench: wasm-opt not found (apt-get install binaryen): sizes without wasm-opt -Oz");
    }
    let mut sizes = Vec::new();
    for (i, a) in ALLOCATORS.iter().enumerate() {
        eprintln!("bench: size probe for {}", a.0);
        let dir = bench_dir.join("size").join(a.3);
        sizes.push(size_json(a.0, size_probe(&cargo, None, a.3, &dir, wasm_opt.is_some())));
        if let (Some(b), 0) = (&baseline, i) {
            eprintln!("bench: size probe for {}", b.name);
            let res = baseline_ready.clone().and_then(|()| {
                let manifest = b.build_manifest();
                size_probe(
                    &cargo,
                    Some((&manifest, &b.remap())),
                    a.3,
                    &b.dir.join("size"),
                    wasm_opt.is_some(),
                )
            });
            sizes.push(size_json(&b.name, res));
        }
    }

    // --- code size as users build it: the app probe in three profiles ------------------------
    let wasm_bindgen = output("wasm-bindgen", &["--version"]);
    if wasm_bindgen.is_none() {
        eprintln!("bench: wasm-bindgen not found (cargo install wasm-bindgen-cli): no per-profile sizes");
    }
    let mut app_sizes = Vec::new();
    if wasm_bindgen.is_some() {
        for a in ALLOCATORS {
            eprintln!("bench: app probe for {}", a.0);
            let res = app_probe(&cargo, a.3, &bench_dir.join("app"), wasm_opt.is_some());
            app_sizes.push(app_json(a.0, res));
        }
    }

    // --- manifest and runner ---------------------------------------------------------------
    let mut allocs: Vec<String> = ALLOCATORS
        .iter()
        .zip(&errors)
        .zip(&wasm_paths)
        .map(|((a, e), p)| match e {
            None => format!(r#"{{"name":{},"wasm":{}}}"#, js(a.0), js(&p.to_string_lossy())),
            Some(e) => format!(r#"{{"name":{},"error":{}}}"#, js(a.0), js(e)),
        })
        .collect();
    // The A/A copy: wasm-alloc's module again under another name, run in the same rounds;
    // the runner reports the spread of the two (the noise) and keeps it out of the other tables.
    let aa_path = wasm_dir.join("wasm-alloc-aa.wasm");
    let _ = fs::remove_file(&aa_path);
    let aa = match &errors[0] {
        None => fs::copy(&wasm_paths[0], &aa_path).map(|_| ()).map_err(|e| format!("no module: {e}")),
        Some(e) => Err(e.clone()),
    };
    allocs.push(match aa {
        Ok(()) => format!(
            r#"{{"name":{},"wasm":{},"aa_of":{}}}"#,
            js(AA_NAME),
            js(&aa_path.to_string_lossy()),
            js(ALLOCATORS[0].0)
        ),
        Err(e) => format!(r#"{{"name":{},"error":{},"aa_of":{}}}"#, js(AA_NAME), js(&e), js(ALLOCATORS[0].0)),
    });
    // The baseline goes right after wasm-alloc; the manifest says which it is.
    let mut baseline_json = String::new();
    if let (Some(b), Some(res)) = (&baseline, &baseline_built) {
        allocs.insert(
            1,
            match res {
                Ok((p, _)) => format!(r#"{{"name":{},"wasm":{}}}"#, js(&b.name), js(&p.to_string_lossy())),
                Err(e) => format!(r#"{{"name":{},"error":{}}}"#, js(&b.name), js(e)),
            },
        );
        baseline_json = format!(
            ",\n\"baseline\":{{\"name\":{},\"rev\":{},\"commit\":{},\"aa\":{},\"peer\":{}}}",
            js(&b.name),
            js(&b.rev),
            js(&b.sha),
            b.aa,
            js(res.as_ref().map_or("current", |r| r.1)),
        );
    }
    let out_dir = if baseline.is_some() {
        let d = bench_dir.join("baseline-run");
        if quick {
            d.join("quick")
        } else {
            d
        }
    } else if quick {
        bench_dir.join("quick")
    } else {
        root.join("benches").join("results")
    };
    let rustc =
        output(&env::var("RUSTC").unwrap_or_else(|_| "rustc".into()), &["--version"]).unwrap_or_default();
    // Which wasm-alloc was measured: the commit, and whether src/ had local changes.
    let commit = output("git", &["rev-parse", "--short", "HEAD"]).map(|c| {
        if head_src_dirty {
            format!("{c} + uncommitted src/ changes")
        } else {
            c
        }
    });
    let manifest = format!(
        "{{\n\"allocators\":[\n{}\n],\n\"sizes\":[\n{}\n],\n\"app_sizes\":[\n{}\n],\n\"wasm_bindgen\":{},\n\"wasm_opt\":{},\n\"rustc\":{},\n\"node\":{},\n\"profile\":{},\n\"out_dir\":{},\n\"commit\":{}{}\n}}\n",
        allocs.join(",\n"),
        sizes.join(",\n"),
        app_sizes.join(",\n"),
        wasm_bindgen.as_deref().map_or("null".into(), js),
        wasm_opt.as_deref().map_or("null".into(), js),
        js(&rustc),
        js(&node),
        js("wasm-bench (opt-level=3, fat LTO, codegen-units=1, panic=abort)"),
        js(&out_dir.to_string_lossy()),
        commit.as_deref().map_or("null".into(), js),
        baseline_json,
    );
    let manifest_path = bench_dir.join("manifest.json");
    fs::write(&manifest_path, manifest).expect("write manifest");

    let mut node_cmd = Command::new("node");
    node_cmd
        .arg("--no-liftoff")
        .arg("--no-wasm-lazy-compilation")
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

/// Builds the size probe with one allocator feature (`--profile wasm-size`, its own target
/// dir; `other`: another workspace's manifest and its rustflags), then `wasm-opt -Oz` on it
/// if `wasm_opt`: (bytes, bytes after wasm-opt).
fn size_probe(
    cargo: &str,
    other: Option<(&Path, &str)>,
    feature: &str,
    dir: &Path,
    wasm_opt: bool,
) -> Result<(u64, Option<u64>), String> {
    let mut c = Command::new(cargo);
    c.args([
        "build",
        "--profile",
        "wasm-size",
        "--target",
        TARGET,
        "-p",
        "size-probe",
        "--features",
        feature,
    ])
    .arg("--target-dir")
    .arg(dir)
    .env("CARGO_ENCODED_RUSTFLAGS", "");
    if let Some((m, flags)) = other {
        c.arg("--manifest-path").arg(m).env("CARGO_ENCODED_RUSTFLAGS", flags);
    }
    run_cargo(c)?;
    let file = dir.join(TARGET).join("wasm-size").join("size_probe.wasm");
    let bytes = fs::metadata(&file).map_err(|e| e.to_string())?.len();
    let opt = wasm_opt.then(|| {
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
    Ok((bytes, opt.flatten()))
}

fn size_json(name: &str, res: Result<(u64, Option<u64>), String>) -> String {
    match res {
        Ok((b, Some(o))) => format!(r#"{{"name":{},"bytes":{b},"opt_bytes":{o}}}"#, js(name)),
        Ok((b, None)) => format!(r#"{{"name":{},"bytes":{b}}}"#, js(name)),
        Err(e) => format!(r#"{{"name":{},"error":{}}}"#, js(name), js(&e)),
    }
}

/// The app probe's bytes with one allocator, each after wasm-bindgen: the `release`
/// build, the same after `wasm-opt -O` (as wasm-pack does), the `app-size` build, and
/// the same after `wasm-opt -Oz` (the `wasm-opt` figures only `if wasm_opt`).
struct AppSizes {
    release: u64,
    release_opt: Option<u64>,
    size: u64,
    size_opt: Option<u64>,
}

/// Builds `benches/app-probe` with one allocator feature in the `release` and `app-size`
/// profiles (one target directory per profile, shared by the allocators, so only the
/// probe and the allocator are rebuilt), runs wasm-bindgen (`--target web`) and wasm-opt.
fn app_probe(cargo: &str, feature: &str, dir: &Path, wasm_opt: bool) -> Result<AppSizes, String> {
    let mut sizes = [(0, None), (0, None)];
    for (i, (profile, level)) in [("release", "-O"), ("app-size", "-Oz")].into_iter().enumerate() {
        let target_dir = dir.join(profile);
        let mut c = Command::new(cargo);
        c.args(["build", "--profile", profile, "--target", TARGET, "-p", "app-probe", "--features", feature])
            .arg("--target-dir")
            .arg(&target_dir)
            .env("CARGO_ENCODED_RUSTFLAGS", "");
        run_cargo(c)?;
        let built = target_dir.join(TARGET).join(profile).join("app_probe.wasm");
        let out_dir = dir.join("out").join(profile).join(feature);
        let _ = fs::remove_dir_all(&out_dir);
        let bindgen = Command::new("wasm-bindgen")
            .args(["--target", "web", "--out-dir"])
            .arg(&out_dir)
            .arg(&built)
            .output()
            .map_err(|e| format!("wasm-bindgen: {e}"))?;
        if !bindgen.status.success() {
            return Err(format!("wasm-bindgen: {}", String::from_utf8_lossy(&bindgen.stderr).trim()));
        }
        let file = out_dir.join("app_probe_bg.wasm");
        let bytes = fs::metadata(&file).map_err(|e| e.to_string())?.len();
        let opt = wasm_opt.then(|| {
            let out = out_dir.join("opt.wasm");
            let ok = Command::new("wasm-opt")
                .arg(level)
                .args(WASM_FEATURES)
                .arg(&file)
                .arg("-o")
                .arg(&out)
                .status()
                .is_ok_and(|s| s.success());
            ok.then(|| fs::metadata(&out).ok().map(|m| m.len())).flatten()
        });
        sizes[i] = (bytes, opt.flatten());
    }
    let [(release, release_opt), (size, size_opt)] = sizes;
    Ok(AppSizes { release, release_opt, size, size_opt })
}

fn app_json(name: &str, res: Result<AppSizes, String>) -> String {
    let opt = |v: Option<u64>| v.map_or("null".into(), |v| v.to_string());
    match res {
        Ok(s) => format!(
            r#"{{"name":{},"release":{},"release_opt":{},"size":{},"size_opt":{}}}"#,
            js(name),
            s.release,
            opt(s.release_opt),
            s.size,
            opt(s.size_opt)
        ),
        Err(e) => format!(r#"{{"name":{},"error":{}}}"#, js(name), js(&e)),
    }
}

/// wasm-alloc at another git revision (`BENCH_BASELINE` / `--baseline`), measured as one
/// more allocator, `wasm-alloc@<short sha>`.
///
/// `target/bench/baseline/<short>/src` is a git worktree of the revision (kept and reused
/// while it is at that commit with no tracked changes). Into it, as `.bench-current/`,
/// go copies of the *current* `benches/workloads`, `benches/peers/wasm-alloc`,
/// `benches/size-probe` and `benches/bump`, the current `Cargo.lock`, and a generated
/// workspace manifest with the current `[profile.*]` tables. The copies' path
/// dependencies on wasm-alloc (`../../..`, `../..`) then name the worktree's crate root:
/// the old allocator, under the same workloads, dependency versions and profiles as the
/// current one, so the comparison is of the allocator alone. Builds go to
/// `target/bench/baseline/<short>/{target,size}`.
struct Baseline {
    rev: String,
    sha: String,
    name: String,
    /// The revision is HEAD and `src/` has no local changes: the same code twice.
    aa: bool,
    dir: PathBuf,
    worktree: PathBuf,
}

impl Baseline {
    fn resolve(rev: &str, bench_dir: &Path, head_src_dirty: bool) -> Baseline {
        let sha = output("git", &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")])
            .unwrap_or_else(|| fail(&format!("baseline: `{rev}` is not a git revision of this repository")));
        let short = output("git", &["rev-parse", "--short", &sha]).unwrap_or_else(|| sha[..7].to_string());
        let head = output("git", &["rev-parse", "HEAD"]);
        let dir = bench_dir.join("baseline").join(&short);
        Baseline {
            rev: rev.to_string(),
            aa: head.as_deref() == Some(sha.as_str()) && !head_src_dirty,
            name: format!("wasm-alloc@{short}"),
            sha,
            worktree: dir.join("src"),
            dir,
        }
    }

    fn build_area(&self) -> PathBuf {
        self.worktree.join(".bench-current")
    }

    fn build_manifest(&self) -> PathBuf {
        self.build_area().join("Cargo.toml")
    }

    /// Rustflags (`CARGO_ENCODED_RUSTFLAGS`) that give the source paths compiled into the
    /// modules (panic locations) the names they have in the main workspace's build:
    /// `src/...` for wasm-alloc (a workspace member there, a path dependency here),
    /// `benches/...` for the copies. Without them the data section differs in length,
    /// and with it `__heap_base`; with them, an A/A run builds a module of the same size
    /// and data (symbol hashes in the name section and the function order still differ:
    /// the crates' paths are part of their metadata).
    fn remap(&self) -> String {
        let mut flags = vec![format!("--remap-path-prefix={}/=", self.worktree.display())];
        for d in ["workloads", "peers", "size-probe", "bump"] {
            flags.push(format!("--remap-path-prefix={d}/=benches/{d}/"));
        }
        flags.join("\x1f")
    }

    /// The worktree at the revision, and the build area in it (always copied afresh).
    fn prepare(&self, root: &Path) -> Result<(), String> {
        let wt = &self.worktree;
        let git_wt = |args: &[&str]| output("git", &[&["-C", &wt.to_string_lossy()], args].concat());
        // Its own worktree (not just a directory inside this repository), at the commit,
        // with no tracked file changed.
        let reusable = wt.is_dir()
            && git_wt(&["rev-parse", "--show-toplevel"])
                .map(PathBuf::from)
                .and_then(|p| p.canonicalize().ok())
                == wt.canonicalize().ok()
            && git_wt(&["rev-parse", "HEAD"]).as_deref() == Some(self.sha.as_str())
            && Command::new("git")
                .arg("-C")
                .arg(wt)
                .args(["diff", "--quiet", "HEAD"])
                .status()
                .is_ok_and(|s| s.success());
        if reusable {
            eprintln!("bench: baseline worktree {} (reused)", wt.display());
        } else {
            if wt.exists() {
                fs::remove_dir_all(wt).map_err(|e| format!("cannot remove {}: {e}", wt.display()))?;
            }
            fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
            eprintln!("bench: git worktree add {} {}", wt.display(), self.sha);
            // --force: the path may still be registered from a worktree since deleted
            // (e.g. by `cargo clean`).
            let o = Command::new("git")
                .args(["worktree", "add", "--force", "--detach"])
                .arg(wt)
                .arg(&self.sha)
                .output()
                .map_err(|e| e.to_string())?;
            if !o.status.success() {
                return Err(format!(
                    "git worktree add failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
        }
        let area = self.build_area();
        if area.exists() {
            fs::remove_dir_all(&area).map_err(|e| e.to_string())?;
        }
        for d in ["workloads", "peers/wasm-alloc", "size-probe", "bump"] {
            copy_dir(&root.join("benches").join(d), &area.join(d))
                .map_err(|e| format!("copy benches/{d}: {e}"))?;
        }
        fs::copy(root.join("Cargo.lock"), area.join("Cargo.lock"))
            .map_err(|e| format!("copy Cargo.lock: {e}"))?;
        let current = fs::read_to_string(root.join("Cargo.toml")).map_err(|e| e.to_string())?;
        let mut profiles = String::new();
        let mut keep = false;
        for line in current.lines() {
            let t = line.trim_start();
            if t.starts_with('[') {
                keep = t.starts_with("[profile.");
            }
            if keep {
                profiles.push_str(line);
                profiles.push('\n');
            }
        }
        if !profiles.contains("[profile.wasm-bench]") || !profiles.contains("[profile.wasm-size]") {
            return Err("Cargo.toml has no [profile.wasm-bench] or [profile.wasm-size] table".into());
        }
        let manifest = format!(
            "# Generated by benches/compare.rs: the current workloads, wasm-alloc peer and size probe,\n\
             # built against the wasm-alloc of this worktree ({}), with the current profiles.\n\
             [workspace]\nmembers = [\"peers/wasm-alloc\", \"size-probe\"]\nresolver = \"2\"\n\n{profiles}",
            self.sha
        );
        fs::write(self.build_manifest(), manifest).map_err(|e| e.to_string())
    }

    /// The workload module: with the current peer crate, or, if that does not build
    /// against the old allocator (its glue names an API the revision lacks), with the
    /// revision's own `benches/peers/wasm-alloc/src/lib.rs`. Returns the module and
    /// which glue ("current" or "own").
    fn build_workloads(&self, cargo: &str) -> Result<(PathBuf, &'static str), String> {
        eprintln!("bench: building the workloads for {} ({})", self.name, self.dir.display());
        let target = self.dir.join("target");
        let build = || {
            let mut c = Command::new(cargo);
            c.args(["build", "--profile", "wasm-bench", "--target", TARGET, "-p", "wl-wasm-alloc"])
                .arg("--manifest-path")
                .arg(self.build_manifest())
                .arg("--target-dir")
                .arg(&target)
                .env("CARGO_ENCODED_RUSTFLAGS", format!("-Clink-arg=--import-memory\x1f{}", self.remap()));
            run_cargo(c)
        };
        let file = target.join(TARGET).join("wasm-bench").join("wl_wasm_alloc.wasm");
        match build() {
            Ok(()) => Ok((file, "current")),
            Err(e) => {
                let own = self.worktree.join("benches/peers/wasm-alloc/src/lib.rs");
                let cur = self.build_area().join("peers/wasm-alloc/src/lib.rs");
                match (fs::read(&own), fs::read(&cur)) {
                    (Ok(o), Ok(c)) if o != c => {
                        eprintln!(
                            "bench: the current peer glue does not build against {}: trying its own",
                            self.name
                        );
                        fs::write(&cur, o).map_err(|e| e.to_string())?;
                        build()
                            .map(|()| (file, "own"))
                            .map_err(|e2| format!("{e2} (with the current glue: {e})"))
                    }
                    _ => Err(e),
                }
            }
        }
    }
}

/// Copies a directory tree (files and directories; a `target` directory is skipped).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type()?.is_dir() {
            if e.file_name() != "target" {
                copy_dir(&src, &dst)?;
            }
        } else {
            fs::copy(&src, &dst)?;
        }
    }
    Ok(())
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
