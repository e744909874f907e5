//! The report on canned measurements against `report-golden.md`: any change to the
//! layout of `bench/results.md` fails here. After an intended change, regenerate
//! with `BENCH_GOLDEN_UPDATE=1 cargo test --example bench` and review the diff.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Cfg;
use crate::consumer::Consumer;
use crate::drain::{Drain, Step};
use crate::kernel::{Kernel, ProgStat};
use crate::load::Load;
use crate::memory::{Memory, Rings};
use crate::overhead::Overhead;
use crate::report::report;
use crate::run::{Cond, Run};
use crate::startup::Startup;

fn cfg(bpftrace: bool, notes: Vec<String>, pin: bool) -> Cfg {
    Cfg {
        rounds: 2,
        seconds: 3.0,
        seed: 7,
        starts: 4,
        tracer: PathBuf::from("/x/tcptracer"),
        tracer_args: Vec::new(),
        loadgen: PathBuf::from("/x/loadgen"),
        tmp: PathBuf::from("/x/tmp"),
        results: PathBuf::from("/x/results.md"),
        ncpu: 2,
        pin,
        bpftrace: bpftrace.then(|| "bpftrace v0.20".to_string()),
        notes,
    }
}

fn load(conns: u64, rate: f64) -> Load {
    Load { conns, rate, errors: 0, ports: vec![1, 2] }
}

fn run(conns: u64, rate: f64, delivered: Option<u64>, other: u64, lost: u64, exact: Option<bool>) -> Run {
    Run { load: load(conns, rate), delivered, other, lost, exact, err: None }
}

fn kern(n: u64, threads: usize, transport: &'static str) -> Kernel {
    Kernel {
        progs: vec![
            ProgStat { name: "tp_state".into(), cnt: 4000 * n, ns: 400_000 * n + 17 },
            ProgStat { name: "kp_close".into(), cnt: 1000 * n, ns: 90_000 * n },
            ProgStat { name: "idle".into(), cnt: 0, ns: 0 },
        ],
        ringbuf: None,
        perf: None,
        transport,
        one_thread: None,
        threads,
        load: load(1000 * n, 12345.6 * n as f64),
        lost: n - 1,
        secs: 3.0,
        restored: "0".into(),
    }
}

/// Every condition with 1 and 2 load threads, 2 rounds; bpftrace inexact.
fn overhead_full() -> Overhead {
    let mut runs = BTreeMap::new();
    for (i, &cond) in [Cond::Baseline, Cond::TracerFile, Cond::TracerNull, Cond::Bpftrace].iter().enumerate()
    {
        for &t in &[1usize, 2] {
            let v: Vec<(usize, Run)> = (0..2)
                .map(|round| {
                    let rate = 50_000.0 - 3000.0 * i as f64 - 1111.0 * round as f64 + 7.0 * t as f64;
                    let conns = (rate * 3.0) as u64;
                    let (del, lost, exact) = match cond {
                        Cond::Baseline => (None, 0, None),
                        Cond::TracerNull => (None, 3 * round as u64, None),
                        Cond::TracerFile => (Some(4 * conns - round as u64), round as u64, Some(true)),
                        Cond::Bpftrace => (Some(4 * conns - 100), 50, Some(false)),
                    };
                    (round, run(conns, rate, del, 2, lost, exact))
                })
                .collect();
            runs.insert((cond, t), v);
        }
    }
    Overhead {
        threads: vec![1, 2],
        conds: vec![Cond::Baseline, Cond::TracerFile, Cond::TracerNull, Cond::Bpftrace],
        runs,
        failures: vec!["round 1, bpftrace > file, 2 threads: boom".into()],
        v6: Some(Ok(run(9000, 3000.0, Some(36000), 0, 0, Some(true)))),
    }
}

/// Every measurement succeeded, with all the optional rows.
fn full() -> String {
    let c = cfg(true, vec!["note one".into(), "note two".into()], true);
    let o = overhead_full();
    let d = Drain {
        steps: vec![
            Step { target: 10_000.0, run: Ok(run(60000, 9999.0, Some(240000), 0, 0, Some(true))) },
            Step { target: 20_000.0, run: Ok(run(100000, 17000.0, Some(400000), 0, 0, Some(true))) },
            Step { target: 0.0, run: Ok(run(100000, 23456.0, Some(400000), 0, 12, Some(true))) },
            Step { target: 40_000.0, run: Err("tracer died".into()) },
        ],
        best: 17000.0,
        generator_bound: true,
        lossy_unpaced: Some(23456.0),
        threads: 2,
        secs: 6.0,
    };
    let mut phases = BTreeMap::new();
    phases.insert("btf".to_string(), vec![1.5, 2.5, 2.0]);
    phases.insert("load".to_string(), vec![0.25]);
    let s = Ok(Startup {
        header_ms: vec![3.0, 4.0, 5.5, 2.25],
        first_ms: vec![6.0, 7.0, 8.0],
        exit_ms: vec![1.0],
        true_ms: vec![0.5, 0.7],
        phases,
        backend: "tracepoint".into(),
        errors: vec!["one start failed".into()],
    });
    let m = Ok(Memory {
        hwm_attach: 2000,
        rss_attach: 1900,
        rings_attach: Rings { count: 3, size_kb: 2048, rss_kb: 0 },
        hwm_load: 2500,
        rss_load: 2400,
        rings_load: Rings { count: 3, size_kb: 2048, rss_kb: 0 },
        load: load(100, 33333.0),
        lost: 0,
        secs: 6.0,
        bin_size: 900_000,
        bin_file: "ELF 64-bit LSB executable, static-pie linked, stripped".into(),
    });
    let mut k = kern(1, 2, "slot rings");
    k.one_thread = Some(Box::new(kern(2, 1, "slot rings")));
    k.perf = Some(Box::new(kern(3, 2, "perf rings")));
    k.ringbuf = Some(Box::new(kern(4, 2, "ring buffer")));
    let cons = Consumer {
        runs: vec![
            (load(100, 10000.0), 400, 12, 300.0, 280.5),
            (load(100, 9999.0), 401, 13, 310.0, 290.5),
            (load(100, 9998.0), 402, 14, 320.0, 300.5),
        ],
        secs: 6.0,
        clk_tck: 100,
        errors: vec!["consumer oops".into()],
    };
    report(&c, "0.10 0.20 0.30", &o, &d, &s, &m, &Ok(k), &cons, Duration::from_secs_f64(123.4))
}

/// Missing runs, the IPv6 check and most measurements failed.
fn failing() -> String {
    let c = cfg(false, Vec::new(), false);
    let mut runs = BTreeMap::new();
    runs.insert(
        (Cond::Baseline, 1),
        vec![(0, run(100, 20000.0, None, 0, 0, None)), (1, run(100, 21000.0, None, 0, 0, None))],
    );
    runs.insert((Cond::TracerFile, 1), vec![(1, run(100, 19000.0, Some(399), 0, 1, Some(true)))]);
    let o = Overhead {
        threads: vec![1],
        conds: vec![Cond::Baseline, Cond::TracerFile, Cond::TracerNull],
        runs,
        failures: Vec::new(),
        v6: Some(Err("v6 broke".into())),
    };
    let d = Drain {
        steps: vec![Step { target: 10_000.0, run: Ok(run(60000, 9000.0, Some(240000), 0, 0, Some(true))) }],
        best: 9000.0,
        generator_bound: true,
        lossy_unpaced: None,
        threads: 1,
        secs: 6.0,
    };
    let m = Ok(Memory {
        rings_load: Rings { count: 2, size_kb: 1024, rss_kb: 1024 },
        bin_size: 2_000_000,
        bin_file: "ELF 64-bit".into(),
        hwm_load: 5000,
        ..Memory::default()
    });
    let cons = Consumer { runs: Vec::new(), secs: 6.0, clk_tck: 250, errors: Vec::new() };
    report(
        &c,
        "1 2 3",
        &o,
        &d,
        &Err("no start".into()),
        &m,
        &Err("no stats".into()),
        &cons,
        Duration::from_secs(9),
    )
}

/// No runs at all, every measurement failed.
fn empty() -> String {
    let c = cfg(false, Vec::new(), false);
    let cons = Consumer { runs: Vec::new(), secs: 6.0, clk_tck: 250, errors: Vec::new() };
    let o2 = Overhead {
        threads: vec![1],
        conds: vec![Cond::Baseline],
        runs: BTreeMap::new(),
        failures: Vec::new(),
        v6: None,
    };
    let d2 = Drain {
        steps: Vec::new(),
        best: 0.0,
        generator_bound: false,
        lossy_unpaced: None,
        threads: 1,
        secs: 1.0,
    };
    report(&c, "", &o2, &d2, &Err("x".into()), &Err("mem".into()), &Err("k".into()), &cons, Duration::ZERO)
}

/// Blank the values that come from the machine (date, CPU, kernel, git, load average).
fn normalize(s: &str) -> String {
    s.lines()
        .map(|l| {
            for key in ["| date |", "| model name |", "| kernel |"] {
                if l.starts_with(key) {
                    return format!("{key} X |");
                }
            }
            if l.starts_with("| tcptracer |") {
                return l.split(" (git ").next().unwrap().to_string() + " (git X) |";
            }
            if let Some(r) = l.strip_prefix("| load average (1/5/15 min) | ") {
                let start = r.split(" at the start, ").next().unwrap();
                return format!("| load average (1/5/15 min) | {start} at the start, X at the end |");
            }
            l.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn report_matches_golden() {
    let text = [full(), failing(), empty()].map(|r| normalize(&r)).join("\n=====\n");
    if std::env::var("BENCH_GOLDEN_UPDATE").is_ok_and(|v| v == "1") {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/bench/report-golden.md");
        std::fs::write(path, &text).unwrap();
    }
    let golden = include_str!("report-golden.md");
    if text != golden {
        let got = std::env::temp_dir().join("bench-report-got.md");
        std::fs::write(&got, &text).unwrap();
        panic!("report differs from examples/bench/report-golden.md; got {}", got.display());
    }
}
