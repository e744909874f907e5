//! The `## Zero-loss drain rate` section.

use std::fmt::Write as _;

use super::targets::Targets;
use crate::drain::Drain;
use crate::overhead::Overhead;
use crate::run::Cond;
use crate::stats::{k, median};

pub fn section(w: &mut String, t: &mut Targets, o: &Overhead, d: &Drain) {
    let _ = writeln!(
        w,
        "\n## Zero-loss drain rate\n\ntcptracer > file, {} load threads at a fixed rate, {} s per step: doubling \
         from 10k conn/s, then 3 bisection steps between the last clean and the first lossy rate; when the \
         generator cannot reach a target, one step at its maximum rate, unpaced. A step is clean with 0 lost, exact counts and no loadgen errors. events/s = 4 × achieved conn/s.\n",
        d.threads, d.secs
    );
    steps(w, d);
    let best = 4.0 * d.best;
    let bound = match (d.generator_bound, d.lossy_unpaced) {
        (true, Some(r)) => format!(
            " (the paced generator could not reach the next target; unpaced, at {} events/s, events were lost: \
             the drain rate lies between the two)",
            k(4.0 * r)
        ),
        (true, None) => {
            " (bounded by the load generator: it could not reach the next target, so the true drain rate is higher)"
                .to_string()
        }
        _ => String::new(),
    };
    let _ = writeln!(w, "\nZero-loss drain rate: **{} events/s**{bound}.", k(best));
    // The baseline of the overhead runs with as many load threads: the generator's ceiling.
    if let Some(b) = o.runs.get(&(Cond::Baseline, d.threads)) {
        let r = median(&b.iter().map(|(_, r)| r.load.rate).collect::<Vec<_>>());
        let _ = writeln!(
            w,
            "The load generator's own ceiling (baseline, {} threads, no tracer, median): {} conn/s = {} events/s; \
             no drain rate above that can be shown on this machine.",
            d.threads,
            k(r),
            k(4.0 * r)
        );
    }
    t.add(
        "zero-loss drain rate",
        "≥ 300k events/s",
        format!("{}{} events/s", if d.generator_bound { "≥ " } else { "" }, k(best)),
        best >= 300_000.0,
    );
}

/// The table of the search's steps.
fn steps(w: &mut String, d: &Drain) {
    let _ = writeln!(w, "| step | target conn/s | achieved conn/s | events/s | lost | exact | clean |");
    let target = |t: f64| if t > 0.0 { k(t) } else { "max (unpaced)".to_string() };
    let _ = writeln!(w, "|---|---|---|---|---|---|---|");
    for (i, s) in d.steps.iter().enumerate() {
        match &s.run {
            Ok(r) => {
                let _ = writeln!(
                    w,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    i + 1,
                    target(s.target),
                    k(r.load.rate),
                    k(4.0 * r.load.rate),
                    r.lost,
                    if r.exact == Some(true) { "yes" } else { "no" },
                    if s.ok() { "yes" } else { "no" }
                );
            }
            Err(e) => {
                let _ = writeln!(w, "| {} | {} | failed: {e} | | | | no |", i + 1, target(s.target));
            }
        }
    }
}
