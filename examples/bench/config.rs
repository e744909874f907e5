//! The benchmark's settings, from the environment (see the top of `main.rs`).

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use crate::sys::{cmd_out, R};

const BPFTRACE_SCRIPT: &str = include_str!("../../bench/cax.bt");

pub struct Cfg {
    pub rounds: usize,
    pub seconds: f64,
    pub seed: u64,
    pub starts: usize,
    pub tracer: PathBuf,
    pub tracer_args: Vec<String>,
    pub loadgen: PathBuf,
    pub tmp: PathBuf,
    pub results: PathBuf,
    pub ncpu: usize,
    pub pin: bool,
    pub bpftrace: Option<String>,
    pub notes: Vec<String>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Cfg {
    /// A fresh file name in the scratch directory.
    pub fn scratch(&self, what: &str) -> PathBuf {
        self.tmp.join(format!("{what}-{}.txt", SEQ.fetch_add(1, SeqCst)))
    }
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> R<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| format!("{name}={v:?}: not a number")),
        _ => Ok(default),
    }
}

fn find_bpftrace(notes: &mut Vec<String>) -> Option<String> {
    if std::env::var("BENCH_NO_BPFTRACE").is_ok_and(|v| v == "1") {
        notes.push("bpftrace skipped (BENCH_NO_BPFTRACE=1).".into());
        return None;
    }
    if let Some(v) = cmd_out("bpftrace", &["--version"]) {
        return Some(v);
    }
    eprintln!("bench: bpftrace missing; apt-get install -y bpftrace");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "bpftrace"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    match cmd_out("bpftrace", &["--version"]) {
        Some(v) if ok => {
            notes.push(format!("bpftrace was installed by the benchmark (apt-get): {v}."));
            Some(v)
        }
        _ => {
            notes.push(
                "bpftrace is missing and `apt-get install -y bpftrace` failed: its rows are skipped.".into(),
            );
            None
        }
    }
}

pub fn config() -> R<Cfg> {
    let rounds: usize = env_num("BENCH_ROUNDS", 5)?;
    let seconds: f64 = env_num("BENCH_SECONDS", 5.0)?;
    if rounds == 0 || !(seconds > 0.0 && seconds <= 600.0) {
        return Err("BENCH_ROUNDS must be ≥ 1 and BENCH_SECONDS in (0, 600]".into());
    }
    let exe_dir = std::env::current_exe().map_err(|e| e.to_string())?.parent().unwrap().to_path_buf();
    let tracer = std::env::var_os("TCPTRACER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/x86_64-unknown-linux-gnu/release/tcptracer"));
    let tracer = fs::canonicalize(&tracer).map_err(|e| format!("TCPTRACER_BIN {}: {e}", tracer.display()))?;
    let loadgen =
        std::env::var_os("LOADGEN_BIN").map(PathBuf::from).unwrap_or_else(|| exe_dir.join("loadgen"));
    if !loadgen.exists() {
        return Err(format!("{} missing: cargo build --release --example loadgen", loadgen.display()));
    }
    let tmp = std::env::var_os("BENCH_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("tcptracer-bench.{}", std::process::id())));
    fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let results =
        std::env::var_os("BENCH_RESULTS").map(PathBuf::from).unwrap_or_else(|| "bench/results.md".into());
    let mut notes = Vec::new();
    let bpftrace = find_bpftrace(&mut notes);
    if bpftrace.is_some() {
        fs::write(tmp.join("cax.bt"), BPFTRACE_SCRIPT).map_err(|e| e.to_string())?;
    }
    Ok(Cfg {
        rounds,
        seconds,
        seed: env_num("BENCH_SEED", 1)?,
        starts: env_num("BENCH_STARTS", 10)?.max(1),
        tracer,
        tracer_args: std::env::var("BENCH_TRACER_ARGS")
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect(),
        loadgen,
        tmp,
        results,
        pin: env_num("BENCH_PIN", 1u8)? != 0,
        // SAFETY: sysconf is a plain query.
        ncpu: (unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }).max(1) as usize,
        bpftrace,
        notes,
    })
}
