//! The `## Start-up and exit` section.

use std::fmt::Write as _;

use super::targets::Targets;
use crate::config::Cfg;
use crate::startup::Startup;
use crate::stats::{median, min_max};
use crate::sys::R;

pub fn section(w: &mut String, t: &mut Targets, cfg: &Cfg, s: &R<Startup>) {
    let _ = writeln!(
        w,
        "\n## Start-up and exit\n\n{} starts of tcptracer (no --debug) under a 1k conn/s background load \
         (1 load thread), 1 s apart (a start right after a stop waits for an RCU grace period in \
         the tracepoint attach, 10-15 ms here); times from spawn.\n",
        cfg.starts
    );
    match s {
        Ok(s) => {
            let _ = writeln!(w, "| | median ms | min–max ms | n |\n|---|---|---|---|");
            row(w, "spawn → header (attached)", &s.header_ms);
            row(w, "spawn → first event line", &s.first_ms);
            row(w, "SIGINT → exit", &s.exit_ms);
            row(w, "spawn → exit of /bin/true (reference)", &s.true_ms);
            let _ = writeln!(w, "\n`--debug` phases (backend {}), 5 starts:\n", s.backend);
            let _ = writeln!(w, "| phase | median ms | min–max ms | n |\n|---|---|---|---|");
            for (name, v) in &s.phases {
                row(w, name, v);
            }
            for e in &s.errors {
                let _ = writeln!(w, "- error: {e}");
            }
            let f = median(&s.first_ms);
            t.add("start → first event (median)", "≤ 10 ms", format!("{f:.2} ms"), f <= 10.0);
        }
        Err(e) => {
            let _ = writeln!(w, "failed: {e}");
            t.add("start → first event (median)", "≤ 10 ms", "failed".into(), false);
        }
    }
}

fn row(w: &mut String, name: &str, v: &[f64]) {
    let (lo, hi) = min_max(v);
    let _ = writeln!(w, "| {name} | {:.2} | {lo:.2}–{hi:.2} | {} |", median(v), v.len());
}
