//! Kernel-side cost: the BPF programs' run time per hit with
//! kernel.bpf_stats_enabled=1, for the default transport and the others.

use std::fs;
use std::time::Duration;

use crate::config::Cfg;
use crate::load::{loadgen_finish, loadgen_spawn, Load};
use crate::proc::read_lossy;
use crate::run::{sum_lost, tracer_start};
use crate::sys::{progress, BpfStats, BPF_STATS, R};

pub struct ProgStat {
    pub name: String,
    pub cnt: u64,
    pub ns: u64,
}

pub struct Kernel {
    pub progs: Vec<ProgStat>,
    /// The same run with TCPTRACER_RINGBUF=1 (the BPF ring buffer), if it ran.
    pub ringbuf: Option<Box<Kernel>>,
    /// The same run with TCPTRACER_PERF_RINGS=1 (per-CPU perf rings), if it ran.
    pub perf: Option<Box<Kernel>>,
    /// How the programs handed out events (from their --debug disassembly).
    pub transport: &'static str,
    /// The same run with one load thread (no CPU shares the load's sockets
    /// and fd table with another), if it ran.
    pub one_thread: Option<Box<Kernel>>,
    pub threads: usize,
    pub load: Load,
    pub lost: u64,
    pub secs: f64,
    pub restored: String,
}

pub fn kernel_cost(cfg: &Cfg) -> R<Kernel> {
    let mut k = kernel_cost_run(cfg, cfg.ncpu)?;
    k.one_thread = kernel_cost_run(cfg, 1).ok().map(Box::new);
    // The optional ring buffer, for comparison (children inherit the variable).
    std::env::set_var("TCPTRACER_RINGBUF", "1");
    let rb = kernel_cost_run(cfg, cfg.ncpu);
    std::env::remove_var("TCPTRACER_RINGBUF");
    k.ringbuf = rb.ok().map(Box::new);
    if k.transport != "perf rings" {
        std::env::set_var("TCPTRACER_PERF_RINGS", "1");
        let perf = kernel_cost_run(cfg, cfg.ncpu);
        std::env::remove_var("TCPTRACER_PERF_RINGS");
        k.perf = perf.ok().map(Box::new);
    }
    Ok(k)
}

/// The `prog NAME: run_cnt N run_time_ns M avg_ns A` lines of `tcptracer --debug`.
fn prog_stats(errs: &str) -> Vec<ProgStat> {
    errs.lines()
        .filter_map(|l| {
            let r = l.strip_prefix("prog ")?;
            let (name, rest) = r.split_once(": ")?;
            let t: Vec<&str> = rest.split_whitespace().collect();
            let get =
                |k: &str| t.iter().position(|&x| x == k).and_then(|i| t.get(i + 1)?.parse::<u64>().ok());
            Some(ProgStat { name: name.to_string(), cnt: get("run_cnt")?, ns: get("run_time_ns")? })
        })
        .collect()
}

fn kernel_cost_run(cfg: &Cfg, threads: usize) -> R<Kernel> {
    let secs = cfg.seconds;
    progress(format!("kernel-side cost: bpf_stats_enabled=1, max rate, {threads} threads, {secs} s"));
    let err = cfg.scratch("kcost-err");
    let r = (|| {
        let stats = BpfStats::enable()?;
        let mut t = tracer_start(cfg, None, &err, true)?;
        let mut lg = loadgen_spawn(cfg, threads, secs, 0.0, false)?;
        let load = loadgen_finish(&mut lg, secs)?;
        t.stop(libc::SIGINT, Duration::from_secs(30))?;
        drop(stats);
        let errs = read_lossy(&err);
        let progs = prog_stats(&errs);
        if progs.is_empty() {
            return Err("no `prog NAME: run_cnt` lines in tcptracer --debug output".into());
        }
        Ok(Kernel {
            progs,
            ringbuf: None,
            perf: None,
            transport: if errs.contains("atomic64_cmpxchg") {
                "slot rings"
            } else if errs.contains("bpf_ringbuf_output") {
                "ring buffer"
            } else {
                "perf rings"
            },
            one_thread: None,
            threads,
            load,
            lost: sum_lost(&errs, "Possibly lost "),
            secs,
            restored: fs::read_to_string(BPF_STATS).unwrap_or_default().trim().to_string(),
        })
    })();
    let _ = fs::remove_file(&err);
    r
}
