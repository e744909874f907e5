//! Zero-loss drain rate: tcptracer > file at fixed rates, doubling then bisecting.

use crate::config::Cfg;
use crate::run::{run_cond, Cond, Run};
use crate::sys::{progress, R};

pub struct Step {
    pub target: f64,
    pub run: R<Run>,
}

impl Step {
    /// Clean: nothing lost, exact counts, no loadgen errors.
    pub fn ok(&self) -> bool {
        matches!(&self.run, Ok(r) if r.lost == 0 && r.exact == Some(true) && r.load.errors == 0)
    }
}

pub struct Drain {
    pub steps: Vec<Step>,
    pub best: f64, // highest zero-loss achieved conn/s
    pub generator_bound: bool,
    /// The unpaced step's rate (conn/s) when it lost events.
    pub lossy_unpaced: Option<f64>,
    pub threads: usize,
    pub secs: f64,
}

pub fn drain(cfg: &Cfg) -> Drain {
    let secs = 2.0 * cfg.seconds;
    let threads = cfg.ncpu;
    let mut d =
        Drain { steps: Vec::new(), best: 0.0, generator_bound: false, lossy_unpaced: None, threads, secs };
    let step = |d: &mut Drain, target: f64| -> bool {
        progress(format!("drain search: {target:.0} conn/s for {secs} s"));
        let s = Step { target, run: run_cond(cfg, Cond::TracerFile, threads, secs, target, false) };
        let ok = s.ok();
        if let (true, Ok(r)) = (ok, &s.run) {
            d.best = d.best.max(r.load.rate);
            if r.load.rate < 0.95 * target {
                d.generator_bound = true;
            }
        }
        d.steps.push(s);
        ok
    };
    // Doubling from 10k conn/s until a loss or until the generator cannot keep up.
    let mut lo = 0.0;
    let mut hi = None;
    let mut target: f64 = 10_000.0;
    for _ in 0..8 {
        if step(&mut d, target) {
            lo = target;
            if d.generator_bound {
                break;
            }
            target *= 2.0;
        } else {
            hi = Some(target);
            break;
        }
    }
    // The generator is slower paced than unpaced (its spin-waits share the CPUs): when it
    // could not reach a target, one more step at its maximum rate (target 0: unpaced).
    if hi.is_none() && d.generator_bound && !step(&mut d, 0.0) {
        d.lossy_unpaced = d.steps.last().and_then(|s| s.run.as_ref().ok()).map(|r| r.load.rate);
    }
    // Bisection between the last clean and the first lossy target.
    if let Some(mut hi) = hi {
        for _ in 0..3 {
            let mid = (lo + hi) / 2.0;
            if step(&mut d, mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
    d
}
