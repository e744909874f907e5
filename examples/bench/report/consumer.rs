//! The `## Consumer (reader) CPU per event` section.

use std::fmt::Write as _;

use super::targets::Targets;
use crate::config::Cfg;
use crate::consumer::Consumer;
use crate::stats::{k, median};

pub fn section(w: &mut String, t: &mut Targets, cfg: &Cfg, c: &Consumer) {
    let _ = writeln!(
        w,
        "\n## Consumer (reader) CPU per event\n\ntcptracer > file at a fixed 10k conn/s ({} load threads, {} s), 3 runs: \
         utime+stime from /proc/PID/stat (clock ticks of {:.0} ms), from the header to the end of the load; \
         the schedstat column is the same interval from /proc/PID/task/*/schedstat (ns resolution).\n",
        cfg.ncpu,
        c.secs,
        1000.0 / c.clk_tck as f64
    );
    let _ = writeln!(w, "| run | conn/s | events | CPU ticks | ns/event (stat) | ns/event (schedstat) |\n|---|---|---|---|---|---|");
    for (i, (l, ev, ticks, a, b)) in c.runs.iter().enumerate() {
        let _ = writeln!(w, "| {} | {} | {ev} | {ticks} | {a:.0} | {b:.0} |", i + 1, k(l.rate));
    }
    for e in &c.errors {
        let _ = writeln!(w, "- error: {e}");
    }
    let a = median(&c.runs.iter().map(|r| r.3).collect::<Vec<_>>());
    let b = median(&c.runs.iter().map(|r| r.4).collect::<Vec<_>>());
    let _ = writeln!(w, "\nMedian: {a:.0} ns/event (stat), {b:.0} ns/event (schedstat).");
    t.add(
        "reader CPU per formatted event (median of 3, /proc/PID/stat)",
        "≤ 0.5 µs",
        format!("{:.3} µs (schedstat: {:.3} µs)", a / 1000.0, b / 1000.0),
        a <= 500.0,
    );
}
