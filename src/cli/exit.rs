//! The end of a trace: the JSON summary line, the `--debug` statistics,
//! and every event accounted for on stderr.

use super::printer::Printer;
use super::{die, json};
use std::time::Instant;
use tcptracer::tracer::{KernelLosses, Tracer};

/// After a stop is asked for, how long queued output may take to be written.
const STOP_WRITE_MS: u64 = 600;

/// How the run loop ended.
pub struct Ended {
    /// When it stopped (after the last drain).
    pub stop_at: Instant,
    /// Samples the rings reported lost.
    pub lost: u64,
    /// The kernel side's losses at the end.
    pub kernel: KernelLosses,
}

/// Say what was lost, free the tracer, let the output be written, exit.
pub fn finish(mut tracer: Tracer, mut p: Printer, end: Ended, debug: bool, as_json: bool) -> ! {
    let uncommitted = tracer.outputs_in_flight().unwrap_or(0);
    let full = end.lost + end.kernel.ring_full + tracer.undecodable();
    if as_json {
        p.counts.lost_perf = full;
        p.counts.lost_kernel = end.kernel.total();
        p.counts.lost_queue = p.dropped;
        p.counts.skipped = end.kernel.skipped();
        p.counts.uncommitted = uncommitted;
        p.counts.late = tracer.late();
        let unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        json::summary(&mut p.buf, &p.counts, unix_ns);
        p.buf_events = 0;
        p.flush();
    }
    if debug {
        let d = tracer.deferred_stats();
        note!(
            "deferred closes: {} ({} claimed by an accept, {} settled here, {} marks swept); \
             most events held {}; late {}; closes reported at destroy: {}",
            d.deferred,
            d.by_accept,
            d.settled,
            d.swept,
            tracer.max_held(),
            tracer.late(),
            tracer.closes_at_destroy()
        );
        for e in tracer.claimed_closes() {
            note!(
                "deferred close claimed by an accept: pid {} {}:{} -> {}:{} socket {}",
                e.pid,
                e.saddr(),
                e.sport,
                e.daddr(),
                e.dport,
                e.sock
            );
        }
        for p in tracer.prog_stats() {
            let avg = if p.run_cnt > 0 { p.run_time_ns as f64 / p.run_cnt as f64 } else { 0.0 };
            note!(
                "prog {}: run_cnt {} run_time_ns {} avg_ns {avg:.1} skipped {}",
                p.name,
                p.run_cnt,
                p.run_time_ns,
                p.recursion_misses
            );
        }
    }
    // -L/--json: connections forgotten with the table full (their X had no duration).
    if let Some(n) = p.lifetimes.as_ref().map(|l| l.evicted()).filter(|&n| n > 0 || debug) {
        note!("lifetimes: {n} connections forgotten before their close (table full)");
    }
    let late = tracer.late();
    let unaccounted = tracer.unaccounted();
    if unaccounted != 0 {
        note!("tcptracer: {unaccounted} events read from the rings and not accounted for (a bug: please report)");
    }
    let t = Instant::now();
    drop(tracer);
    if debug {
        note!("detach and free: {:.1} ms", t.elapsed().as_secs_f64() * 1000.0);
    }
    // Everything is released; give the output a moment to be written. A
    // stdout nobody reads does not hold the exit.
    let (unwritten, broken) = p.out.finish(end.stop_at + std::time::Duration::from_millis(STOP_WRITE_MS));
    // Every event accounted for: handed out, lost (and where), possibly in
    // a run the kernel skipped, or never committed by its program. Events a
    // closed pipe did not take are not losses.
    let unwritten = if broken == Some(libc::EPIPE) { 0 } else { unwritten };
    let dropped = if broken.is_some() { 0 } else { p.dropped };
    let off_course =
        full + end.kernel.total() + dropped + end.kernel.skipped() + unwritten + uncommitted + late;
    if off_course > 0 || debug {
        note!(
            "tcptracer: lost {} events in all: {full} in full buffers, {} in the kernel \
             (output failed {}, sockets untracked {}, no port {}), {dropped} in a full output queue; \
             skipped by the kernel: {} probe runs, {} kprobe hits; \
             {} events delivered, {unwritten} not written at exit, {uncommitted} left uncommitted, {late} out of order",
            full + end.kernel.total() + dropped,
            end.kernel.total(),
            end.kernel.output_failed,
            end.kernel.untracked,
            end.kernel.no_port,
            end.kernel.recursion_misses,
            end.kernel.kprobe_missed,
            p.counts.events,
        );
    }
    match broken {
        Some(e) if e != libc::EPIPE => {
            die(format!("writing output: {}", std::io::Error::from_raw_os_error(e)))
        }
        // The writer thread may still be blocked in write(): exit now.
        _ => std::process::exit(0),
    }
}
