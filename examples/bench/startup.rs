//! Start-up and exit: spawn → header → first event → exit, under a light
//! background load, and the `--debug` phase times.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::Cfg;
use crate::load::loadgen_spawn;
use crate::proc::{read_lossy, Proc};
use crate::run::tracer_start;
use crate::stats::ms;
use crate::sys::{progress, R};

/// Reads lines from a pipe with a deadline, noting when each arrived.
struct Lines {
    fd: std::process::ChildStdout,
    buf: Vec<u8>,
}

impl Lines {
    fn next(&mut self, deadline: Instant) -> R<(String, Instant)> {
        loop {
            if let Some(i) = self.buf.iter().position(|&c| c == b'\n') {
                let l: Vec<u8> = self.buf.drain(..=i).collect();
                return Ok((String::from_utf8_lossy(&l).trim_end().to_string(), Instant::now()));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err("timed out reading tcptracer's stdout".into());
            }
            let mut p = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut p, 1, (deadline - now).as_millis().max(1) as i32) };
            if n <= 0 {
                continue;
            }
            let mut chunk = [0u8; 4096];
            let n = self.fd.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("tcptracer closed stdout".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[derive(Default)]
pub struct Startup {
    pub header_ms: Vec<f64>,
    pub first_ms: Vec<f64>,
    pub exit_ms: Vec<f64>,
    pub true_ms: Vec<f64>,
    pub phases: BTreeMap<String, Vec<f64>>,
    pub backend: String,
    pub errors: Vec<String>,
}

fn one_start(cfg: &Cfg, s: &mut Startup) -> R<()> {
    let err = cfg.scratch("start-err");
    let mut c = Command::new(&cfg.tracer);
    c.args(&cfg.tracer_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&err).map_err(|e| e.to_string())?);
    let t0 = Instant::now();
    let mut p = Proc::spawn("tcptracer", &mut c)?;
    let mut lines = Lines { fd: p.child.stdout.take().unwrap(), buf: Vec::new() };
    let deadline = t0 + Duration::from_secs(10);
    let r = (|| {
        let _banner = lines.next(deadline)?;
        let (_, t_header) = lines.next(deadline)?;
        loop {
            let (l, t) = lines.next(deadline)?;
            if matches!(l.as_bytes().first(), Some(b'C' | b'A' | b'X')) {
                return Ok::<_, String>((t_header - t0, t - t0));
            }
        }
    })();
    // Keep reading so that the tracer never blocks on a full pipe while it exits.
    let Lines { mut fd, .. } = lines;
    let drainer = std::thread::spawn(move || std::io::copy(&mut fd, &mut std::io::sink()));
    let t_sig = Instant::now();
    let st = p.stop(libc::SIGINT, Duration::from_secs(10));
    let t_exit = t_sig.elapsed();
    let _ = drainer.join();
    let errs = read_lossy(&err);
    let _ = fs::remove_file(&err);
    let (h, f) = r.map_err(|e| format!("{e} {}", errs.trim()))?;
    let st = st?;
    if !st.success() {
        return Err(format!("tcptracer exited with {st}: {}", errs.trim()));
    }
    s.header_ms.push(ms(h));
    s.first_ms.push(ms(f));
    s.exit_ms.push(ms(t_exit));
    Ok(())
}

fn one_debug_start(cfg: &Cfg, s: &mut Startup) -> R<()> {
    let err = cfg.scratch("debug-err");
    let mut p = tracer_start(cfg, None, &err, true)?;
    let st = p.stop(libc::SIGINT, Duration::from_secs(10));
    let errs = read_lossy(&err);
    let _ = fs::remove_file(&err);
    st?;
    // "backend tracepoint; phases: btf X ms, build X ms, load X ms, attach X ms"
    let line = errs.lines().find(|l| l.contains("phases:")).ok_or("no phases line")?;
    if let Some(b) = line.strip_prefix("backend ").and_then(|r| r.split(';').next()) {
        s.backend = b.to_string();
    }
    for part in line.split("phases:").nth(1).unwrap_or("").split(',') {
        let t: Vec<&str> = part.split_whitespace().collect();
        if let [name, v, "ms"] = t[..] {
            if let Ok(v) = v.parse::<f64>() {
                s.phases.entry(name.to_string()).or_default().push(v);
            }
        }
    }
    Ok(())
}

/// Pause before each start: a tracepoint's first attach after its last detach waits
/// for an RCU grace period (`tp_rcu_cond_sync`), so back-to-back starts would measure
/// the previous run's exit; see docs/decisions.md (bench start-up gap).
const START_GAP: Duration = Duration::from_secs(1);

pub fn startup(cfg: &Cfg) -> R<Startup> {
    let mut s = Startup::default();
    for _ in 0..cfg.starts {
        let t0 = Instant::now();
        let st = Command::new("/bin/true").status().map_err(|e| e.to_string())?;
        if st.success() {
            s.true_ms.push(ms(t0.elapsed()));
        }
    }
    // Background load: 1k conn/s, bounded; killed when `bg` drops.
    let mut bg = loadgen_spawn(cfg, 1, 120.0, 1000.0, false)?;
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..cfg.starts {
        progress(format!("start-up {}/{}", i + 1, cfg.starts));
        std::thread::sleep(START_GAP);
        if let Err(e) = one_start(cfg, &mut s) {
            s.errors.push(e);
        }
    }
    for i in 0..5 {
        progress(format!("start-up with --debug {}/5", i + 1));
        std::thread::sleep(START_GAP);
        if let Err(e) = one_debug_start(cfg, &mut s) {
            s.errors.push(e);
        }
    }
    if !bg.running() {
        s.errors.push("the background load ended early".into());
    }
    bg.signal(libc::SIGKILL);
    Ok(s)
}
