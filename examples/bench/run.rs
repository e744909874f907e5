//! One measured run: a tracer (tcptracer or bpftrace, or none) under a load,
//! then stop it and count its event lines against the load's connections.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::Cfg;
use crate::load::{loadgen_finish, loadgen_spawn, Load};
use crate::proc::{file_has_lines, read_lossy, read_lossy_filtered, settle, wait_until, Proc};
use crate::sys::R;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Cond {
    Baseline,
    TracerFile,
    TracerNull,
    Bpftrace,
}

impl Cond {
    pub fn name(self) -> &'static str {
        match self {
            Cond::Baseline => "baseline (no tracer)",
            Cond::TracerFile => "tcptracer > file",
            Cond::TracerNull => "tcptracer > /dev/null",
            Cond::Bpftrace => "bpftrace > file",
        }
    }
}

/// Start tcptracer; with `debug`, wait for its `phases:` line, else for the
/// header in `out` (which must then be a file).
pub fn tracer_start(cfg: &Cfg, out: Option<&Path>, err: &Path, debug: bool) -> R<Proc> {
    let mut c = Command::new(&cfg.tracer);
    c.args(&cfg.tracer_args);
    if debug {
        c.arg("--debug");
    }
    let stdout = match out {
        Some(p) => fs::File::create(p).map_err(|e| e.to_string())?,
        None => fs::OpenOptions::new().write(true).open("/dev/null").map_err(|e| e.to_string())?,
    };
    c.stdin(Stdio::null()).stdout(stdout).stderr(fs::File::create(err).map_err(|e| e.to_string())?);
    let mut p = Proc::spawn("tcptracer", &mut c)?;
    let to = Duration::from_secs(15);
    let r = if debug {
        wait_until(&mut p, to, "its phases line", || read_lossy(err).contains("phases:"))
    } else {
        let out = out.ok_or("tracer_start: no --debug needs a file")?;
        wait_until(&mut p, to, "its header", || file_has_lines(out, 2))
    };
    r.map_err(|e| format!("{e}: {}", read_lossy(err).lines().last().unwrap_or("")))?;
    Ok(p)
}

fn bpftrace_start(cfg: &Cfg, out: &Path, err: &Path) -> R<Proc> {
    let mut c = Command::new("bpftrace");
    c.arg(cfg.tmp.join("cax.bt"));
    c.stdin(Stdio::null())
        .stdout(fs::File::create(out).map_err(|e| e.to_string())?)
        .stderr(fs::File::create(err).map_err(|e| e.to_string())?);
    let mut p = Proc::spawn("bpftrace", &mut c)?;
    wait_until(&mut p, Duration::from_secs(60), "bench-ready", || read_lossy(out).contains("bench-ready"))
        .map_err(|e| format!("{e}: {}", read_lossy(err).trim()))?;
    Ok(p)
}

/// Sum of N over lines `<prefix>N events` (after leading spaces).
pub fn sum_lost(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix(prefix))
        .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[derive(Default, Clone, Copy)]
pub struct Count {
    pub ours: u64,  // C/A/X lines of this run's connections (loopback, a loadgen port)
    pub other: u64, // other C/A/X lines (other processes' connections)
}

fn is_loopback(a: &str) -> bool {
    let a = a.trim_start_matches('[').trim_end_matches(']');
    a.starts_with("127.") || a == "::1" || a.starts_with("::ffff:127.")
}

/// Count event lines (`C`, `A` or `X` first; `... SADDR DADDR SPORT DPORT` last).
pub fn count_events(path: &Path, ports: &HashSet<u16>) -> R<Count> {
    let f = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut line = Vec::with_capacity(256);
    let mut c = Count::default();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).map_err(|e| e.to_string())? == 0 {
            break;
        }
        if line.len() < 2 || !matches!(line[0], b'C' | b'A' | b'X') || line[1] != b' ' {
            continue;
        }
        let s = String::from_utf8_lossy(&line);
        let t: Vec<&str> = s.split_whitespace().collect();
        let n = t.len();
        let ours = n >= 6
            && is_loopback(t[n - 4])
            && is_loopback(t[n - 3])
            && [t[n - 2], t[n - 1]].iter().any(|p| p.parse::<u16>().is_ok_and(|p| ports.contains(&p)));
        if ours {
            c.ours += 1;
        } else {
            c.other += 1;
        }
    }
    Ok(c)
}

#[derive(Clone, Debug, Default)]
pub struct Run {
    pub load: Load,
    pub delivered: Option<u64>, // our events in the output (None: /dev/null)
    pub other: u64,
    pub lost: u64,
    pub exact: Option<bool>,
    pub err: Option<String>,
}

impl Run {
    pub fn expected(&self) -> u64 {
        4 * self.load.conns
    }
}

/// One run: the tracer of `cond` (if any), then the load, then stop and count.
pub fn run_cond(cfg: &Cfg, cond: Cond, threads: usize, secs: f64, rate: f64, v6: bool) -> R<Run> {
    let out = cfg.scratch("out");
    let err = cfg.scratch("err");
    let r = run_cond_files(cfg, cond, threads, secs, rate, v6, &out, &err);
    let _ = fs::remove_file(&out);
    let _ = fs::remove_file(&err);
    r
}

#[allow(clippy::too_many_arguments)]
fn run_cond_files(
    cfg: &Cfg,
    cond: Cond,
    threads: usize,
    secs: f64,
    rate: f64,
    v6: bool,
    out: &Path,
    err: &Path,
) -> R<Run> {
    let mut tracer = match cond {
        Cond::Baseline => None,
        Cond::TracerFile => Some(tracer_start(cfg, Some(out), err, true)?),
        Cond::TracerNull => Some(tracer_start(cfg, None, err, true)?),
        Cond::Bpftrace => Some(bpftrace_start(cfg, out, err)?),
    };
    let mut lg = loadgen_spawn(cfg, threads, secs, rate, v6)?;
    let load = loadgen_finish(&mut lg, secs)?;
    let mut run = Run { load, ..Run::default() };
    let Some(t) = tracer.as_mut() else { return Ok(run) };
    if cond != Cond::TracerNull {
        settle(out, Duration::from_secs(15));
    }
    let st = t.stop(libc::SIGINT, Duration::from_secs(30))?;
    let errs = read_lossy(err);
    if !st.success() {
        return Err(format!("{} exited with {st}: {}", t.name, errs.lines().last().unwrap_or("")));
    }
    run.lost = match cond {
        Cond::Bpftrace => sum_lost(&errs, "Lost ") + sum_lost(&read_lossy_filtered(out), "Lost "),
        _ => {
            let lost = sum_lost(&errs, "Possibly lost ");
            let all = sum_lost(&errs, "lost ");
            if all != lost {
                run.err = Some(format!("stderr: Possibly lost sum {lost} != lost in all {all}"));
            }
            lost
        }
    };
    if cond != Cond::TracerNull {
        let ports: HashSet<u16> = run.load.ports.iter().copied().collect();
        let c = count_events(out, &ports)?;
        run.delivered = Some(c.ours);
        run.other = c.other;
        // Lost events cannot be attributed: exact when ours + all lost = 4 × connections
        // and nothing was lost, or ours ≤ expected ≤ ours + lost when something was.
        run.exact = Some(if run.lost == 0 {
            c.ours == run.expected()
        } else {
            c.ours <= run.expected() && run.expected() <= c.ours + run.lost
        });
    }
    Ok(run)
}
