//! `make bench`: the tcptracer benchmark. Runs as root; writes `bench/results.md`
//! (or `BENCH_RESULTS`) and prints it. See `bench/README.md` for the method.
//!
//! Environment: `BENCH_ROUNDS` (5), `BENCH_SECONDS` (5: one overhead run; drain
//! steps, the memory run and consumer runs take twice that), `BENCH_SEED` (1),
//! `BENCH_STARTS` (10), `TCPTRACER_BIN` (the static build), `LOADGEN_BIN` (the
//! `loadgen` example next to this binary), `BENCH_TRACER_ARGS` (extra tracer
//! options), `BENCH_NO_BPFTRACE=1`, `BENCH_TMP` (scratch directory),
//! `BENCH_PIN` (1: `loadgen --pin`, each client/server pair on its own CPU;
//! 0: unpinned, which on a VM is dominated by cross-CPU wake-ups and noisy).
//!
//! Every child gets PR_SET_PDEATHSIG(SIGKILL) and is registered for a kill on
//! SIGINT/SIGTERM/SIGHUP or a panic, which also restore
//! `kernel.bpf_stats_enabled`. Loads are to loopback only (`loadgen`).
//!
//! Modules: `sys` (cleanup, queries), `proc` (child processes), `config`, `load`
//! (the load generator), `run` (one traced run and its counts), `stats`; one module
//! per measurement (`overhead`, `drain`, `startup`, `memory`, `kernel`, `consumer`)
//! and `report` (one file per section of the results).

mod config;
mod consumer;
mod drain;
mod kernel;
mod load;
mod memory;
mod overhead;
mod proc;
mod report;
mod run;
mod startup;
mod stats;
mod sys;
#[cfg(test)]
mod tests;

use std::fs;
use std::time::Instant;

use sys::{emergency_cleanup, install_cleanup, loadavg, other_tracers, progress};

fn main() {
    install_cleanup();
    let mut cfg = match config::config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    };
    // SAFETY: plain query.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench: run as root (tcptracer and bpftrace need it)");
        std::process::exit(1);
    }
    let t0 = Instant::now();
    let la0 = loadavg();
    let others0 = other_tracers();
    progress(format!(
        "tracer {}, {} rounds × {} s, {} CPUs, bpftrace: {}",
        cfg.tracer.display(),
        cfg.rounds,
        cfg.seconds,
        cfg.ncpu,
        cfg.bpftrace.as_deref().unwrap_or("no")
    ));
    let o = overhead::overhead(&cfg);
    let d = drain::drain(&cfg);
    let s = startup::startup(&cfg);
    let m = memory::memory(&cfg);
    let kc = kernel::kernel_cost(&cfg);
    let c = consumer::consumer(&cfg);
    let others1 = other_tracers();
    for (when, o) in [("start", &others0), ("end", &others1)] {
        if !o.is_empty() {
            cfg.notes.push(format!(
                "Other tracers were running at the {when} of the benchmark: {}. Their BPF programs also run \
                 on every state change of the load (baseline included) and they compete for the CPUs.",
                o.join(", ")
            ));
        }
    }
    let text = report::report(&cfg, &la0, &o, &d, &s, &m, &kc, &c, t0.elapsed());
    emergency_cleanup(); // nothing should be left; belt and braces
    let _ = fs::remove_dir_all(&cfg.tmp);
    if let Some(dir) = cfg.results.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = fs::create_dir_all(dir);
    }
    if let Err(e) = fs::write(&cfg.results, &text) {
        eprintln!("bench: writing {}: {e}", cfg.results.display());
    }
    println!("{text}");
    eprintln!("bench: wrote {} in {:.0} s", cfg.results.display(), t0.elapsed().as_secs_f64());
}
