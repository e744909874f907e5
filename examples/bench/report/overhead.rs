//! The `## Overhead on loopback connect/accept/close` section.

use std::fmt::Write as _;

use super::targets::Targets;
use crate::config::Cfg;
use crate::overhead::Overhead;
use crate::run::Cond;
use crate::stats::{k, median, min_max};

pub fn section(w: &mut String, t: &mut Targets, cfg: &Cfg, o: &Overhead) {
    let _ = writeln!(
        w,
        "\n## Overhead on loopback connect/accept/close\n\n{} rounds of {} s per condition, conditions shuffled \
         within each round (seed {}), ratio = conn/s / the same round's baseline with the same number of load \
         threads. Events = this run's C/A/X lines (loopback, a loadgen port) per run, median. Exact = runs where \
         events = 4 × connections, or, in a run with losses (which cannot be attributed to a connection), \
         events ≤ 4 × connections ≤ events + reported lost. Lost % = reported lost / (4 × connections) over \
         all rounds. /dev/null: events cannot be counted (not exact-checked), lost is the tracer's own report.\n",
        cfg.rounds, cfg.seconds, cfg.seed
    );
    let _ = writeln!(w, "| condition | load threads | conn/s (median) | ratio (median) | ratio min–max | events/run (median) | lost % | exact |");
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|");
    for &th in &o.threads {
        for &cond in &o.conds {
            row(w, o, cond, th);
        }
    }
    notes(w, cfg, o);
    targets(t, o);
}

/// One condition with `th` load threads.
fn row(w: &mut String, o: &Overhead, cond: Cond, th: usize) {
    let Some(runs) = o.runs.get(&(cond, th)) else {
        let _ = writeln!(w, "| {} | {th} | failed | | | | | |", cond.name());
        return;
    };
    let rates: Vec<f64> = runs.iter().map(|(_, r)| r.load.rate).collect();
    let ratios = o.ratios(cond, th);
    let (lo, hi) = min_max(&ratios);
    let (ratio, range) = if cond == Cond::Baseline {
        ("1".to_string(), "—".to_string())
    } else {
        (format!("{:.3}", median(&ratios)), format!("{lo:.3}–{hi:.3}"))
    };
    let expected: u64 = runs.iter().map(|(_, r)| r.expected()).sum();
    let lost = o.lost_total(cond, th);
    let (events, lostp, exact) = match cond {
        Cond::Baseline => ("—".into(), "—".into(), "—".into()),
        Cond::TracerNull => (
            "—".into(),
            format!("{:.3} %", 100.0 * lost as f64 / expected.max(1) as f64),
            "n/a (not counted)".into(),
        ),
        _ => {
            let ev: Vec<f64> = runs.iter().filter_map(|(_, r)| r.delivered.map(|x| x as f64)).collect();
            let ex = runs.iter().filter(|(_, r)| r.exact == Some(true)).count();
            (
                format!("{:.0}", median(&ev)),
                format!("{:.3} %", 100.0 * lost as f64 / expected.max(1) as f64),
                format!("{} ({ex}/{})", if ex == runs.len() { "yes" } else { "no" }, runs.len()),
            )
        }
    };
    let _ = writeln!(
        w,
        "| {} | {th} | {} | {ratio} | {range} | {events} | {lostp} | {exact} |",
        cond.name(),
        k(median(&rates))
    );
}

/// Other connections' lines, the IPv6 check and the failed runs.
fn notes(w: &mut String, cfg: &Cfg, o: &Overhead) {
    let other: u64 = o.runs.values().flatten().map(|(_, r)| r.other).sum();
    let _ = writeln!(w, "\nLines of other connections (not this benchmark's) seen in the outputs: {other}.");
    match &o.v6 {
        Some(Ok(r)) => {
            let _ = writeln!(
                w,
                "IPv6 check (tcptracer > file, {} threads, {} s): {} conn/s, {} of {} events, {} lost, exact: {}.",
                cfg.ncpu,
                cfg.seconds,
                k(r.load.rate),
                r.delivered.unwrap_or(0),
                r.expected(),
                r.lost,
                if r.exact == Some(true) { "yes" } else { "no" }
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(w, "IPv6 check failed: {e}");
        }
        None => {}
    }
    if !o.failures.is_empty() {
        let _ = writeln!(w, "\nFailed runs:");
        for f in &o.failures {
            let _ = writeln!(w, "- {f}");
        }
    }
}

fn targets(t: &mut Targets, o: &Overhead) {
    for (cond, label) in [(Cond::TracerFile, "file"), (Cond::TracerNull, "/dev/null")] {
        let r = median(&o.ratios(cond, 1));
        t.add(
            &format!("traced/untraced, 1 load thread (tcptracer > {label})"),
            "≥ 0.97",
            format!("{r:.3}"),
            r >= 0.97,
        );
    }
    let sat = o.threads.last().copied().unwrap_or(1);
    for (cond, label) in [(Cond::TracerFile, "file"), (Cond::TracerNull, "/dev/null")] {
        let r = median(&o.ratios(cond, sat));
        let lost = o.lost_total(cond, sat);
        t.add(
            &format!("traced/untraced saturated ({sat} load threads, tcptracer > {label}), 0 lost"),
            "≥ 0.75, 0 lost",
            format!("{r:.3}, {lost} lost"),
            r >= 0.75 && lost == 0,
        );
    }
}
