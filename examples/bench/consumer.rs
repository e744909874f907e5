//! Consumer cost: the reader's CPU time per event at a fixed 10k conn/s.

use std::collections::HashSet;
use std::fs;
use std::time::Duration;

use crate::config::Cfg;
use crate::load::{loadgen_finish, loadgen_spawn, Load};
use crate::proc::settle;
use crate::run::{count_events, tracer_start};
use crate::sys::{progress, R};

pub struct Consumer {
    pub runs: Vec<(Load, u64, u64, f64, f64)>, // load, events, ticks, ns/event (ticks), ns/event (schedstat)
    pub secs: f64,
    pub clk_tck: i64,
    pub errors: Vec<String>,
}

/// utime + stime (clock ticks) from /proc/PID/stat.
fn cpu_ticks(pid: i32) -> R<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    let rest = &s[s.rfind(')').ok_or("bad stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime field 15.
    let p = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).ok_or("bad stat");
    Ok(p(11)? + p(12)?)
}

/// Sum of the threads' on-CPU time in ns (schedstat, first field).
fn cpu_ns(pid: i32) -> u64 {
    let Ok(d) = fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    d.filter_map(Result::ok)
        .filter_map(|e| fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

pub fn consumer(cfg: &Cfg) -> Consumer {
    let secs = 2.0 * cfg.seconds;
    // SAFETY: plain query.
    let clk_tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    let mut c = Consumer { runs: Vec::new(), secs, clk_tck, errors: Vec::new() };
    for i in 0..3 {
        progress(format!("consumer cost {}/3: 10k conn/s, {} threads, {secs} s", i + 1, cfg.ncpu));
        let (out, err) = (cfg.scratch("cons-out"), cfg.scratch("cons-err"));
        let r = (|| {
            let mut t = tracer_start(cfg, Some(&out), &err, false)?;
            let (t0, n0) = (cpu_ticks(t.pid)?, cpu_ns(t.pid));
            let mut lg = loadgen_spawn(cfg, cfg.ncpu, secs, 10_000.0, false)?;
            let load = loadgen_finish(&mut lg, secs)?;
            settle(&out, Duration::from_secs(10));
            let (t1, n1) = (cpu_ticks(t.pid)?, cpu_ns(t.pid));
            t.stop(libc::SIGINT, Duration::from_secs(30))?;
            let cnt = count_events(&out, &HashSet::new())?;
            let events = cnt.ours + cnt.other;
            if events == 0 {
                return Err("no events".to_string());
            }
            let ticks = t1 - t0;
            let per_tick = 1e9 / clk_tck as f64;
            Ok((
                load,
                events,
                ticks,
                ticks as f64 * per_tick / events as f64,
                (n1 - n0) as f64 / events as f64,
            ))
        })();
        let _ = fs::remove_file(&out);
        let _ = fs::remove_file(&err);
        match r {
            Ok(x) => c.runs.push(x),
            Err(e) => c.errors.push(e),
        }
    }
    c
}
