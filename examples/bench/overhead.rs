//! Overhead: conn/s with no tracer, tcptracer (to a file and to /dev/null) and
//! bpftrace, in shuffled rounds, each compared with the same round's baseline.

use std::collections::BTreeMap;

use crate::config::Cfg;
use crate::run::{run_cond, Cond, Run};
use crate::stats::shuffle;
use crate::sys::{progress, R};

pub struct Overhead {
    pub threads: Vec<usize>,
    pub conds: Vec<Cond>,
    /// Per condition and load threads: (round, run).
    pub runs: BTreeMap<(Cond, usize), Vec<(usize, Run)>>,
    pub failures: Vec<String>,
    pub v6: Option<R<Run>>,
}

pub fn overhead(cfg: &Cfg) -> Overhead {
    let mut threads = vec![1, cfg.ncpu];
    threads.dedup();
    let mut conds = vec![Cond::Baseline, Cond::TracerFile, Cond::TracerNull];
    if cfg.bpftrace.is_some() {
        conds.push(Cond::Bpftrace);
    }
    let mut o = Overhead { threads, conds, runs: BTreeMap::new(), failures: Vec::new(), v6: None };
    for round in 0..cfg.rounds {
        let mut list: Vec<(Cond, usize)> =
            o.conds.iter().flat_map(|&c| o.threads.iter().map(move |&t| (c, t))).collect();
        shuffle(&mut list, cfg.seed.wrapping_add(round as u64));
        for (c, t) in list {
            progress(format!(
                "overhead round {}/{}: {} with {t} load thread(s)",
                round + 1,
                cfg.rounds,
                c.name()
            ));
            match run_cond(cfg, c, t, cfg.seconds, 0.0, false) {
                Ok(r) => {
                    if let Some(e) = &r.err {
                        o.failures.push(format!("round {}, {}, {t} threads: {e}", round + 1, c.name()));
                    }
                    o.runs.entry((c, t)).or_default().push((round, r))
                }
                Err(e) => o.failures.push(format!("round {}, {}, {t} threads: {e}", round + 1, c.name())),
            }
        }
    }
    progress("IPv6 exactness: tcptracer > file");
    o.v6 = Some(run_cond(cfg, Cond::TracerFile, cfg.ncpu, cfg.seconds, 0.0, true));
    o
}

impl Overhead {
    /// conn/s of `c` / the same round's baseline, per round.
    pub fn ratios(&self, c: Cond, t: usize) -> Vec<f64> {
        let (Some(runs), Some(base)) = (self.runs.get(&(c, t)), self.runs.get(&(Cond::Baseline, t))) else {
            return Vec::new();
        };
        runs.iter()
            .filter_map(|(round, r)| {
                let b = base.iter().find(|(br, _)| br == round)?;
                (b.1.load.rate > 0.0).then(|| r.load.rate / b.1.load.rate)
            })
            .collect()
    }

    pub fn lost_total(&self, c: Cond, t: usize) -> u64 {
        self.runs.get(&(c, t)).map_or(0, |v| v.iter().map(|(_, r)| r.lost).sum())
    }
}
