//! `bench/results.md`: the machine table, the targets, then one section per
//! measurement (each in its own file here, in the order they appear).

mod consumer;
mod drain;
mod kernel;
mod memory;
mod overhead;
mod startup;
mod targets;

use std::fmt::Write as _;
use std::time::Duration;

use crate::config::Cfg;
use crate::consumer::Consumer;
use crate::drain::Drain;
use crate::kernel::Kernel;
use crate::memory::Memory;
use crate::overhead::Overhead;
use crate::startup::Startup;
use crate::sys::{cmd_out, loadavg, R};
use targets::Targets;

/// The whole report; `la0` is the load average at the start.
#[allow(clippy::too_many_arguments)]
pub fn report(
    cfg: &Cfg,
    la0: &str,
    o: &Overhead,
    d: &Drain,
    s: &R<Startup>,
    m: &R<Memory>,
    kc: &R<Kernel>,
    c: &Consumer,
    elapsed: Duration,
) -> String {
    let mut w = preamble(cfg, la0, elapsed);
    let mut t = Targets::default();
    let mut body = String::new();
    overhead::section(&mut body, &mut t, cfg, o);
    drain::section(&mut body, &mut t, o, d);
    startup::section(&mut body, &mut t, cfg, s);
    memory::section(&mut body, &mut t, cfg, m);
    kernel::section(&mut body, &mut t, cfg, kc);
    consumer::section(&mut body, &mut t, cfg, c);
    // Targets right after the machine table.
    w.push_str(&t.section(cfg));
    w.push_str(&body);
    w
}

/// The title and the table of the machine and the run.
fn preamble(cfg: &Cfg, la0: &str, elapsed: Duration) -> String {
    let mut w = String::new();
    let _ = writeln!(w, "# tcptracer benchmark (`make bench`)\n");
    w.push_str(&machine(cfg));
    let _ = writeln!(
        w,
        "| load average (1/5/15 min) | {la0} at the start, {} at the end |\n| wall time | {:.0} s |",
        loadavg(),
        elapsed.as_secs_f64()
    );
    w
}

fn machine(cfg: &Cfg) -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let date = cmd_out("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]).unwrap_or_default();
    let kernel = cmd_out("uname", &["-r"]).unwrap_or_default();
    let git = cmd_out("git", &["describe", "--always", "--dirty"]).unwrap_or_else(|| "?".into());
    let mut s = String::new();
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| date | {date} |");
    let _ = writeln!(s, "| CPUs (nproc) | {} |", cfg.ncpu);
    let _ = writeln!(s, "| model name | {model} |");
    let _ = writeln!(s, "| kernel | {kernel} |");
    let _ = writeln!(s, "| tcptracer | `{}` (git {git}) |", cfg.tracer.display());
    let _ = writeln!(s, "| bpftrace | {} |", cfg.bpftrace.as_deref().unwrap_or("not used"));
    let _ = writeln!(
        s,
        "| parameters | BENCH_ROUNDS={} BENCH_SECONDS={} BENCH_SEED={} BENCH_STARTS={} BENCH_PIN={} |",
        cfg.rounds, cfg.seconds, cfg.seed, cfg.starts, cfg.pin as u8
    );
    let _ = writeln!(
        s,
        "| load generator | `loadgen`, loopback, server closes first; {} |",
        if cfg.pin { "pinned: client thread i and its server thread on CPU i" } else { "unpinned" }
    );
    s
}
