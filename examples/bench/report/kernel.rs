//! The `## Kernel-side cost (BPF run time)` section.

use std::fmt::Write as _;

use super::targets::Targets;
use crate::config::Cfg;
use crate::kernel::Kernel;
use crate::stats::k;
use crate::sys::R;

pub fn section(w: &mut String, t: &mut Targets, cfg: &Cfg, kc: &R<Kernel>) {
    let _ = writeln!(w, "\n## Kernel-side cost (BPF run time)\n");
    let kc = match kc {
        Ok(kc) => kc,
        Err(e) => {
            let _ = writeln!(w, "failed: {e}");
            t.add("BPF run time per hit (mean over all hits)", "≤ 150 ns", "failed".into(), false);
            return;
        }
    };
    let _ = writeln!(
        w,
        "kernel.bpf_stats_enabled=1 during one run: max rate, {} load threads, {} s, {} conn/s \
         ({} connections, {} lost; events through {}); restored to {} afterwards.\n",
        cfg.ncpu,
        kc.secs,
        k(kc.load.rate),
        kc.load.conns,
        kc.lost,
        kc.transport,
        kc.restored
    );
    let (cnt, mean) = prog_table(w, kc);
    let one = kc
        .one_thread
        .as_deref()
        .map(|one| variant(w, "1 load thread (its client and server threads pinned to one CPU)", one));
    if let Some(p) = &kc.perf {
        variant(
            w,
            "TCPTRACER_PERF_RINGS=1 (per-CPU perf rings, `bpf_perf_event_output`; the default before 5.12)",
            p,
        );
    }
    if let Some(rb) = &kc.ringbuf {
        variant(w, "TCPTRACER_RINGBUF=1 (one BPF ring buffer for all CPUs; not the default)", rb);
    }
    if let Some((cnt, mean)) = one {
        t.add(
            "BPF run time per hit (mean over all hits), 1 load thread",
            "≤ 150 ns",
            format!("{mean:.1} ns"),
            mean <= 150.0 && cnt > 0,
        );
    }
    t.add(
        &format!("BPF run time per hit (mean over all hits), {} load threads", kc.threads),
        "≤ 150 ns",
        format!("{mean:.1} ns"),
        mean <= 150.0 && cnt > 0,
    );
}

/// "The same with `what`": its rate and losses, then its program table.
fn variant(w: &mut String, what: &str, kc: &Kernel) -> (u64, f64) {
    let _ = writeln!(w, "\nThe same with {what}: {} conn/s, {} lost.\n", k(kc.load.rate), kc.lost);
    prog_table(w, kc)
}

/// The per-program table of one kernel-cost run; returns (hits, mean ns per hit).
fn prog_table(w: &mut String, kc: &Kernel) -> (u64, f64) {
    let _ = writeln!(
        w,
        "| program | run_cnt | run_time_ns | ns per hit | hits per connection |\n|---|---|---|---|---|"
    );
    let (mut cnt, mut ns) = (0u64, 0u64);
    for p in &kc.progs {
        cnt += p.cnt;
        ns += p.ns;
        let _ = writeln!(
            w,
            "| {} | {} | {} | {:.1} | {:.2} |",
            p.name,
            p.cnt,
            p.ns,
            p.ns as f64 / p.cnt.max(1) as f64,
            p.cnt as f64 / kc.load.conns.max(1) as f64
        );
    }
    let mean = ns as f64 / cnt.max(1) as f64;
    let _ = writeln!(
        w,
        "| **all** | {cnt} | {ns} | **{mean:.1}** | {:.2} |\n\nPer event delivered (4 per connection): {:.1} ns.",
        cnt as f64 / kc.load.conns.max(1) as f64,
        ns as f64 / (4 * kc.load.conns).max(1) as f64
    );
    (cnt, mean)
}
