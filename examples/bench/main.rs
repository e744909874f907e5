//! `make bench`: the tcptracer benchmark. Runs as root; writes `bench/results.md`
//! (or `BENCH_RESULTS`) and prints it. See `bench/README.md` for the method.
//!
//! Environment: `BENCH_ROUNDS` (5), `BENCH_SECONDS` (5: one overhead run; drain
//! steps, the memory run and consumer runs take twice that), `BENCH_SEED` (1),
//! `BENCH_STARTS` (10), `TCPTRACER_BIN` (the static build), `LOADGEN_BIN` (the
//! `loadgen` example next to this binary), `BENCH_TRACER_ARGS` (extra tracer
//! options), `BENCH_NO_BPFTRACE=1`, `BENCH_TMP` (scratch directory),
//! `BENCH_PIN` (1: `loadgen --pin`, each client/server pair on its own CPU;
//! 0: unpinned, which on a VM is dominated by cross-CPU wake-ups and noisy).
//!
//! Every child gets PR_SET_PDEATHSIG(SIGKILL) and is registered for a kill on
//! SIGINT/SIGTERM/SIGHUP or a panic, which also restore
//! `kernel.bpf_stats_enabled`. Loads are to loopback only (`loadgen`).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

type R<T> = Result<T, String>;

const BPFTRACE_SCRIPT: &str = include_str!("../../bench/cax.bt");
const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

// ------------------------------------------------------------------ cleanup

const MAX_CHILDREN: usize = 32;
static CHILDREN: [AtomicI32; MAX_CHILDREN] = [const { AtomicI32::new(0) }; MAX_CHILDREN];
/// The value of kernel.bpf_stats_enabled to restore (-1: nothing to restore).
static SYSCTL_OLD: AtomicI32 = AtomicI32::new(-1);

fn register(pid: i32) {
    for c in &CHILDREN {
        if c.compare_exchange(0, pid, SeqCst, SeqCst).is_ok() {
            return;
        }
    }
}

fn unregister(pid: i32) {
    for c in &CHILDREN {
        let _ = c.compare_exchange(pid, 0, SeqCst, SeqCst);
    }
}

/// Restore the sysctl with async-signal-safe calls only.
fn restore_sysctl() {
    let old = SYSCTL_OLD.swap(-1, SeqCst);
    if old < 0 {
        return;
    }
    let val: &[u8] = if old == 0 { b"0\n" } else { b"1\n" };
    // SAFETY: NUL-terminated path, valid buffer; open/write/close are async-signal-safe.
    unsafe {
        let fd = libc::open(c"/proc/sys/kernel/bpf_stats_enabled".as_ptr(), libc::O_WRONLY);
        if fd >= 0 {
            libc::write(fd, val.as_ptr() as *const libc::c_void, val.len());
            libc::close(fd);
        }
    }
}

/// Kill every registered child and restore the sysctl (signal-handler safe).
fn emergency_cleanup() {
    for c in &CHILDREN {
        let pid = c.swap(0, SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) is async-signal-safe; the pid is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    restore_sysctl();
}

extern "C" fn on_signal(sig: libc::c_int) {
    emergency_cleanup();
    let msg = b"\nbench: interrupted; children killed, sysctl restored\n";
    // SAFETY: async-signal-safe calls only.
    unsafe {
        libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
        libc::_exit(128 + sig);
    }
}

fn install_cleanup() {
    // SAFETY: a valid handler that only makes async-signal-safe calls.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        emergency_cleanup();
        prev(info);
    }));
}

/// Sets kernel.bpf_stats_enabled=1 while alive.
struct BpfStats;

impl BpfStats {
    fn enable() -> R<BpfStats> {
        let old = fs::read_to_string(BPF_STATS).map_err(|e| format!("{BPF_STATS}: {e}"))?;
        let old: i32 = old.trim().parse().map_err(|_| format!("{BPF_STATS}: {old:?}"))?;
        SYSCTL_OLD.store(old, SeqCst);
        fs::write(BPF_STATS, "1\n").map_err(|e| format!("writing {BPF_STATS}: {e}"))?;
        Ok(BpfStats)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        restore_sysctl();
    }
}

// ---------------------------------------------------------------- processes

/// A child process: killed (SIGKILL) and reaped when dropped if still running.
struct Proc {
    child: Child,
    pid: i32,
    pidfd: i32,
    name: &'static str,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command) -> R<Proc> {
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("starting {name}: {e}"))?;
        let pid = child.id() as i32;
        register(pid);
        // SAFETY: plain syscall; -1 on failure (then we poll with try_wait).
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        Ok(Proc { child, pid, pidfd, name })
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn signal(&mut self, sig: i32) {
        if self.running() {
            // SAFETY: our child, not yet reaped, so the pid is still ours.
            unsafe { libc::kill(self.pid, sig) };
        }
    }

    /// Wait up to `d` for the child to end.
    fn wait_for(&mut self, d: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + d;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let ms = (deadline - now).as_millis().clamp(1, 1000) as i32;
            if self.pidfd >= 0 {
                let mut p = libc::pollfd { fd: self.pidfd, events: libc::POLLIN, revents: 0 };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut p, 1, ms) };
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Send `sig` (again every second: a busy bpftrace has been seen to miss
    /// one SIGINT), wait up to `grace`; SIGKILL after that. Err if it had to be killed.
    fn stop(&mut self, sig: i32, grace: Duration) -> R<ExitStatus> {
        let deadline = Instant::now() + grace;
        let mut status = None;
        while status.is_none() && Instant::now() < deadline {
            self.signal(sig);
            status =
                self.wait_for(Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now())));
        }
        match status {
            Some(s) => Ok(s),
            None => {
                self.signal(libc::SIGKILL);
                let _ = self.child.wait();
                Err(format!(
                    "{} did not exit within {:.0} s of signal {sig}; killed",
                    self.name,
                    grace.as_secs_f64()
                ))
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.running() {
            // SAFETY: our unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.child.wait();
        }
        unregister(self.pid);
        if self.pidfd >= 0 {
            // SAFETY: our fd.
            unsafe { libc::close(self.pidfd) };
        }
    }
}

/// Poll `cond` every millisecond until true; Err on timeout or if `p` ends.
fn wait_until(p: &mut Proc, timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) -> R<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return Ok(());
        }
        if !p.running() {
            return Err(format!("{} exited while waiting for {what}", p.name));
        }
        if Instant::now() >= deadline {
            return Err(format!("{} timed out waiting for {what}", p.name));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn read_lossy(p: &Path) -> String {
    fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

fn file_has_lines(p: &Path, n: usize) -> bool {
    fs::read(p).map(|b| b.iter().filter(|&&c| c == b'\n').count() >= n).unwrap_or(false)
}

/// Wait until `p` stops growing for 300 ms (at most `max`): the reader caught up.
fn settle(p: &Path, max: Duration) {
    let deadline = Instant::now() + max;
    let mut last = u64::MAX;
    let mut since = Instant::now();
    while Instant::now() < deadline {
        let len = fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        if len != last {
            last = len;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_millis(300) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// -------------------------------------------------------------------- setup

struct Cfg {
    rounds: usize,
    seconds: f64,
    seed: u64,
    starts: usize,
    tracer: PathBuf,
    tracer_args: Vec<String>,
    loadgen: PathBuf,
    tmp: PathBuf,
    results: PathBuf,
    ncpu: usize,
    pin: bool,
    bpftrace: Option<String>,
    notes: Vec<String>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Cfg {
    fn scratch(&self, what: &str) -> PathBuf {
        self.tmp.join(format!("{what}-{}.txt", SEQ.fetch_add(1, SeqCst)))
    }
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> R<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| format!("{name}={v:?}: not a number")),
        _ => Ok(default),
    }
}

fn cmd_out(prog: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(prog).args(args).stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn find_bpftrace(notes: &mut Vec<String>) -> Option<String> {
    if std::env::var("BENCH_NO_BPFTRACE").is_ok_and(|v| v == "1") {
        notes.push("bpftrace skipped (BENCH_NO_BPFTRACE=1).".into());
        return None;
    }
    if let Some(v) = cmd_out("bpftrace", &["--version"]) {
        return Some(v);
    }
    eprintln!("bench: bpftrace missing; apt-get install -y bpftrace");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "bpftrace"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    match cmd_out("bpftrace", &["--version"]) {
        Some(v) if ok => {
            notes.push(format!("bpftrace was installed by the benchmark (apt-get): {v}."));
            Some(v)
        }
        _ => {
            notes.push(
                "bpftrace is missing and `apt-get install -y bpftrace` failed: its rows are skipped.".into(),
            );
            None
        }
    }
}

fn config() -> R<Cfg> {
    let rounds: usize = env_num("BENCH_ROUNDS", 5)?;
    let seconds: f64 = env_num("BENCH_SECONDS", 5.0)?;
    if rounds == 0 || !(seconds > 0.0 && seconds <= 600.0) {
        return Err("BENCH_ROUNDS must be ≥ 1 and BENCH_SECONDS in (0, 600]".into());
    }
    let exe_dir = std::env::current_exe().map_err(|e| e.to_string())?.parent().unwrap().to_path_buf();
    let tracer = std::env::var_os("TCPTRACER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/x86_64-unknown-linux-gnu/release/tcptracer"));
    let tracer = fs::canonicalize(&tracer).map_err(|e| format!("TCPTRACER_BIN {}: {e}", tracer.display()))?;
    let loadgen =
        std::env::var_os("LOADGEN_BIN").map(PathBuf::from).unwrap_or_else(|| exe_dir.join("loadgen"));
    if !loadgen.exists() {
        return Err(format!("{} missing: cargo build --release --example loadgen", loadgen.display()));
    }
    let tmp = std::env::var_os("BENCH_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("tcptracer-bench.{}", std::process::id())));
    fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let results =
        std::env::var_os("BENCH_RESULTS").map(PathBuf::from).unwrap_or_else(|| "bench/results.md".into());
    let mut notes = Vec::new();
    let bpftrace = find_bpftrace(&mut notes);
    if bpftrace.is_some() {
        fs::write(tmp.join("cax.bt"), BPFTRACE_SCRIPT).map_err(|e| e.to_string())?;
    }
    Ok(Cfg {
        rounds,
        seconds,
        seed: env_num("BENCH_SEED", 1)?,
        starts: env_num("BENCH_STARTS", 10)?.max(1),
        tracer,
        tracer_args: std::env::var("BENCH_TRACER_ARGS")
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect(),
        loadgen,
        tmp,
        results,
        // SAFETY: sysconf is a plain query.
        pin: env_num("BENCH_PIN", 1u8)? != 0,
        ncpu: (unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }).max(1) as usize,
        bpftrace,
        notes,
    })
}

// ------------------------------------------------------------------ loadgen

#[derive(Clone, Debug, Default)]
struct Load {
    conns: u64,
    rate: f64,
    errors: u64,
    ports: Vec<u16>,
}

fn loadgen_spawn(cfg: &Cfg, threads: usize, secs: f64, rate: f64, v6: bool) -> R<Proc> {
    let mut c = Command::new(&cfg.loadgen);
    c.args([
        "--threads",
        &threads.to_string(),
        "--seconds",
        &format!("{secs}"),
        "--rate",
        &format!("{rate}"),
    ]);
    if v6 {
        c.arg("--ipv6");
    }
    if cfg.pin {
        c.arg("--pin");
    }
    c.stdin(Stdio::null()).stdout(Stdio::piped());
    Proc::spawn("loadgen", &mut c)
}

fn loadgen_finish(p: &mut Proc, secs: f64) -> R<Load> {
    let st = p.wait_for(Duration::from_secs_f64(secs + 20.0));
    let Some(st) = st else {
        return Err("loadgen did not finish in time".into());
    };
    let mut out = String::new();
    if let Some(mut o) = p.child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if !st.success() {
        return Err(format!("loadgen failed ({st}): {out}"));
    }
    parse_load(&out)
}

fn parse_load(line: &str) -> R<Load> {
    let t: Vec<&str> = line.split_whitespace().collect();
    let kv: BTreeMap<&str, &str> = t.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0], c[1])).collect();
    let get = |k: &str| kv.get(k).copied().ok_or_else(|| format!("loadgen output without {k}: {line:?}"));
    let num = |k: &str| -> R<f64> {
        get(k)?.trim_end_matches("/s").parse().map_err(|_| format!("loadgen {k}: {line:?}"))
    };
    Ok(Load {
        conns: num("connections")? as u64,
        rate: num("rate")?,
        errors: num("errors")? as u64,
        ports: get("ports")?.split(',').filter_map(|p| p.parse().ok()).collect(),
    })
}

// ------------------------------------------------------------------- tracers

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Cond {
    Baseline,
    TracerFile,
    TracerNull,
    Bpftrace,
}

impl Cond {
    fn name(self) -> &'static str {
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
fn tracer_start(cfg: &Cfg, out: Option<&Path>, err: &Path, debug: bool) -> R<Proc> {
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
fn sum_lost(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix(prefix))
        .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[derive(Default, Clone, Copy)]
struct Count {
    ours: u64,  // C/A/X lines of this run's connections (loopback, a loadgen port)
    other: u64, // other C/A/X lines (other processes' connections)
}

fn is_loopback(a: &str) -> bool {
    let a = a.trim_start_matches('[').trim_end_matches(']');
    a.starts_with("127.") || a == "::1" || a.starts_with("::ffff:127.")
}

/// Count event lines (`C`, `A` or `X` first; `... SADDR DADDR SPORT DPORT` last).
fn count_events(path: &Path, ports: &HashSet<u16>) -> R<Count> {
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
struct Run {
    load: Load,
    delivered: Option<u64>, // our events in the output (None: /dev/null)
    other: u64,
    lost: u64,
    exact: Option<bool>,
    err: Option<String>,
}

impl Run {
    fn expected(&self) -> u64 {
        4 * self.load.conns
    }
}

/// One run: the tracer of `cond` (if any), then the load, then stop and count.
fn run_cond(cfg: &Cfg, cond: Cond, threads: usize, secs: f64, rate: f64, v6: bool) -> R<Run> {
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

/// The non-event lines of a (possibly large) output file.
fn read_lossy_filtered(p: &Path) -> String {
    let Ok(f) = fs::File::open(p) else { return String::new() };
    let mut s = String::new();
    for l in BufReader::with_capacity(1 << 20, f).split(b'\n').map_while(Result::ok) {
        if !matches!(l.first(), Some(b'C' | b'A' | b'X')) {
            s.push_str(&String::from_utf8_lossy(&l));
            s.push('\n');
        }
    }
    s
}

// ---------------------------------------------------------------- statistics

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)))
}

/// xorshift64*: a deterministic shuffle per (seed, round).
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    for i in (1..v.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "**pass**"
    } else {
        "**miss**"
    }
}

fn k(x: f64) -> String {
    if x.is_nan() {
        "—".into()
    } else if x >= 10_000.0 {
        format!("{:.1}k", x / 1000.0)
    } else {
        format!("{x:.0}")
    }
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

// ----------------------------------------------------------------- overhead

struct Overhead {
    threads: Vec<usize>,
    conds: Vec<Cond>,
    runs: BTreeMap<(Cond, usize), Vec<(usize, Run)>>,
    failures: Vec<String>,
    v6: Option<R<Run>>,
}

fn overhead(cfg: &Cfg) -> Overhead {
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
    fn ratios(&self, c: Cond, t: usize) -> Vec<f64> {
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

    fn lost_total(&self, c: Cond, t: usize) -> u64 {
        self.runs.get(&(c, t)).map_or(0, |v| v.iter().map(|(_, r)| r.lost).sum())
    }
}

// ------------------------------------------------------------------- drain

struct Step {
    target: f64,
    run: R<Run>,
}

impl Step {
    fn ok(&self) -> bool {
        matches!(&self.run, Ok(r) if r.lost == 0 && r.exact == Some(true) && r.load.errors == 0)
    }
}

struct Drain {
    steps: Vec<Step>,
    best: f64, // highest zero-loss achieved conn/s
    generator_bound: bool,
    /// The unpaced step's rate (conn/s) when it lost events.
    lossy_unpaced: Option<f64>,
    threads: usize,
    secs: f64,
}

fn drain(cfg: &Cfg) -> Drain {
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

// ----------------------------------------------------------------- start-up

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
struct Startup {
    header_ms: Vec<f64>,
    first_ms: Vec<f64>,
    exit_ms: Vec<f64>,
    true_ms: Vec<f64>,
    phases: BTreeMap<String, Vec<f64>>,
    backend: String,
    errors: Vec<String>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
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

/// Pause before each start. A tracepoint's first attach after its last
/// detach waits for an RCU grace period (`tp_rcu_cond_sync`), 10-15 ms
/// under the background load: back-to-back starts measure the previous
/// run's exit, not a start.
const START_GAP: Duration = Duration::from_secs(1);

fn startup(cfg: &Cfg) -> R<Startup> {
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

// ----------------------------------------------------------------- memory

#[derive(Default, Clone, Copy)]
struct Rings {
    count: u64,
    size_kb: u64,
    rss_kb: u64,
}

fn status_kb(pid: i32, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The ring mappings in /proc/PID/smaps: perf rings (`anon_inode:[perf_event]`)
/// or the slot array and wake ring (`anon_inode:bpf-map`).
fn rings(pid: i32) -> Rings {
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut r = Rings::default();
    let mut in_ring = false;
    for l in smaps.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-') {
            in_ring = l.contains("perf_event") || l.contains("bpf-map");
            if in_ring {
                r.count += 1;
            }
        } else if in_ring {
            let kb =
                |p: &str| l.strip_prefix(p).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
            if let Some(v) = kb("Size:") {
                r.size_kb += v;
            } else if let Some(v) = kb("Rss:") {
                r.rss_kb += v;
            }
        }
    }
    r
}

#[derive(Default)]
struct Memory {
    hwm_attach: u64,
    rss_attach: u64,
    rings_attach: Rings,
    hwm_load: u64,
    rss_load: u64,
    rings_load: Rings,
    load: Load,
    lost: u64,
    secs: f64,
    bin_size: u64,
    bin_file: String,
}

fn memory(cfg: &Cfg) -> R<Memory> {
    let secs = 2.0 * cfg.seconds;
    let mut m = Memory { secs, ..Memory::default() };
    m.bin_size = fs::metadata(&cfg.tracer).map_err(|e| e.to_string())?.len();
    m.bin_file =
        cmd_out("file", &["-b", &cfg.tracer.to_string_lossy()]).unwrap_or_else(|| "(file(1) failed)".into());
    progress(format!("memory: max rate, {} threads, {secs} s", cfg.ncpu));
    let (out, err) = (cfg.scratch("mem-out"), cfg.scratch("mem-err"));
    let r = (|| {
        let mut t = tracer_start(cfg, Some(&out), &err, false)?;
        m.hwm_attach = status_kb(t.pid, "VmHWM");
        m.rss_attach = status_kb(t.pid, "VmRSS");
        m.rings_attach = rings(t.pid);
        let mut lg = loadgen_spawn(cfg, cfg.ncpu, secs, 0.0, false)?;
        m.load = loadgen_finish(&mut lg, secs)?;
        settle(&out, Duration::from_secs(10));
        m.hwm_load = status_kb(t.pid, "VmHWM");
        m.rss_load = status_kb(t.pid, "VmRSS");
        m.rings_load = rings(t.pid);
        t.stop(libc::SIGINT, Duration::from_secs(30))?;
        m.lost = sum_lost(&read_lossy(&err), "Possibly lost ");
        Ok::<_, String>(())
    })();
    let _ = fs::remove_file(&out);
    let _ = fs::remove_file(&err);
    r.map(|_| m)
}

// ------------------------------------------------------------- kernel cost

struct ProgStat {
    name: String,
    cnt: u64,
    ns: u64,
}

struct Kernel {
    progs: Vec<ProgStat>,
    /// The same run with TCPTRACER_RINGBUF=1 (the BPF ring buffer), if it ran.
    ringbuf: Option<Box<Kernel>>,
    /// The same run with TCPTRACER_PERF_RINGS=1 (per-CPU perf rings), if it ran.
    perf: Option<Box<Kernel>>,
    /// How the programs handed out events (from their --debug disassembly).
    transport: &'static str,
    /// The same run with one load thread (no CPU shares the load's sockets
    /// and fd table with another), if it ran.
    one_thread: Option<Box<Kernel>>,
    threads: usize,
    load: Load,
    lost: u64,
    secs: f64,
    restored: String,
}

fn kernel_cost(cfg: &Cfg) -> R<Kernel> {
    let mut k = kernel_cost_run(cfg, cfg.ncpu)?;
    k.one_thread = kernel_cost_run(cfg, 1).ok().map(Box::new);
    // The optional ring buffer, for comparison (children inherit the variable).
    std::env::set_var("TCPTRACER_RINGBUF", "1");
    let rb = kernel_cost_run(cfg, cfg.ncpu);
    std::env::remove_var("TCPTRACER_RINGBUF");
    k.ringbuf = rb.ok().map(Box::new);
    if k.transport != "perf rings" {
        std::env::set_var("TCPTRACER_PERF_RINGS", "1");
        let perf = kernel_cost_run(cfg, cfg.ncpu);
        std::env::remove_var("TCPTRACER_PERF_RINGS");
        k.perf = perf.ok().map(Box::new);
    }
    Ok(k)
}

fn kernel_cost_run(cfg: &Cfg, threads: usize) -> R<Kernel> {
    let secs = cfg.seconds;
    progress(format!("kernel-side cost: bpf_stats_enabled=1, max rate, {threads} threads, {secs} s"));
    let err = cfg.scratch("kcost-err");
    let r = (|| {
        let stats = BpfStats::enable()?;
        let mut t = tracer_start(cfg, None, &err, true)?;
        let mut lg = loadgen_spawn(cfg, threads, secs, 0.0, false)?;
        let load = loadgen_finish(&mut lg, secs)?;
        t.stop(libc::SIGINT, Duration::from_secs(30))?;
        drop(stats);
        let errs = read_lossy(&err);
        // "prog NAME: run_cnt N run_time_ns M avg_ns A"
        let progs = errs
            .lines()
            .filter_map(|l| {
                let r = l.strip_prefix("prog ")?;
                let (name, rest) = r.split_once(": ")?;
                let t: Vec<&str> = rest.split_whitespace().collect();
                let get =
                    |k: &str| t.iter().position(|&x| x == k).and_then(|i| t.get(i + 1)?.parse::<u64>().ok());
                Some(ProgStat { name: name.to_string(), cnt: get("run_cnt")?, ns: get("run_time_ns")? })
            })
            .collect::<Vec<_>>();
        if progs.is_empty() {
            return Err("no `prog NAME: run_cnt` lines in tcptracer --debug output".into());
        }
        Ok(Kernel {
            progs,
            ringbuf: None,
            perf: None,
            transport: if errs.contains("atomic64_cmpxchg") {
                "slot rings"
            } else if errs.contains("bpf_ringbuf_output") {
                "ring buffer"
            } else {
                "perf rings"
            },
            one_thread: None,
            threads,
            load,
            lost: sum_lost(&errs, "Possibly lost "),
            secs,
            restored: fs::read_to_string(BPF_STATS).unwrap_or_default().trim().to_string(),
        })
    })();
    let _ = fs::remove_file(&err);
    r
}

// ------------------------------------------------------------ consumer cost

struct Consumer {
    runs: Vec<(Load, u64, u64, f64, f64)>, // load, events, ticks, ns/event (ticks), ns/event (schedstat)
    secs: f64,
    clk_tck: i64,
    errors: Vec<String>,
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

fn consumer(cfg: &Cfg) -> Consumer {
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

// ------------------------------------------------------------------ report

fn machine(cfg: &Cfg) -> String {
    let model = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let date = cmd_out("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]).unwrap_or_default();
    let kernel = cmd_out("uname", &["-r"]).unwrap_or_default();
    let git = cmd_out("git", &["describe", "--always", "--dirty"]).unwrap_or_else(|| "?".into());
    let mut s = String::new();
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| date | {date} |");
    let _ = writeln!(s, "| CPUs (nproc) | {} |", cfg.ncpu);
    let _ = writeln!(s, "| model name | {model} |");
    let _ = writeln!(s, "| kernel | {kernel} |");
    let _ = writeln!(s, "| tcptracer | `{}` (git {git}) |", cfg.tracer.display());
    let _ = writeln!(s, "| bpftrace | {} |", cfg.bpftrace.as_deref().unwrap_or("not used"));
    let _ = writeln!(
        s,
        "| parameters | BENCH_ROUNDS={} BENCH_SECONDS={} BENCH_SEED={} BENCH_STARTS={} BENCH_PIN={} |",
        cfg.rounds, cfg.seconds, cfg.seed, cfg.starts, cfg.pin as u8
    );
    let _ = writeln!(
        s,
        "| load generator | `loadgen`, loopback, server closes first; {} |",
        if cfg.pin { "pinned: client thread i and its server thread on CPU i" } else { "unpinned" }
    );
    s
}

/// Other tracers running now (not ours): `comm (pid)` of tcptracer/bpftrace processes.
fn other_tracers() -> Vec<String> {
    let mut v = Vec::new();
    let ours: HashSet<i32> = CHILDREN.iter().map(|c| c.load(SeqCst)).collect();
    let Ok(d) = fs::read_dir("/proc") else { return v };
    for e in d.filter_map(Result::ok) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if (comm == "tcptracer" || comm == "bpftrace") && !ours.contains(&pid) {
            v.push(format!("{comm} ({pid})"));
        }
    }
    v
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

struct Targets(Vec<(String, String, String, bool)>);

impl Targets {
    fn add(&mut self, what: &str, target: &str, measured: String, ok: bool) {
        self.0.push((what.into(), target.into(), measured, ok));
    }
}

/// The per-program table of one kernel-cost run; returns (hits, mean ns per hit).
fn prog_table(w: &mut String, kc: &Kernel) -> (u64, f64) {
    let _ = writeln!(
        w,
        "| program | run_cnt | run_time_ns | ns per hit | hits per connection |\n|---|---|---|---|---|"
    );
    let (mut cnt, mut ns) = (0u64, 0u64);
    for p in &kc.progs {
        cnt += p.cnt;
        ns += p.ns;
        let _ = writeln!(
            w,
            "| {} | {} | {} | {:.1} | {:.2} |",
            p.name,
            p.cnt,
            p.ns,
            p.ns as f64 / p.cnt.max(1) as f64,
            p.cnt as f64 / kc.load.conns.max(1) as f64
        );
    }
    let mean = ns as f64 / cnt.max(1) as f64;
    let _ = writeln!(
        w,
        "| **all** | {cnt} | {ns} | **{mean:.1}** | {:.2} |\n\nPer event delivered (4 per connection): {:.1} ns.",
        cnt as f64 / kc.load.conns.max(1) as f64,
        ns as f64 / (4 * kc.load.conns).max(1) as f64
    );
    (cnt, mean)
}

#[allow(clippy::too_many_arguments)]
fn report(
    cfg: &Cfg,
    la0: &str,
    o: &Overhead,
    d: &Drain,
    s: &R<Startup>,
    m: &R<Memory>,
    kc: &R<Kernel>,
    c: &Consumer,
    elapsed: Duration,
) -> String {
    let mut t = Targets(Vec::new());
    let mut w = String::new();
    let _ = writeln!(w, "# tcptracer benchmark (`make bench`)\n");
    w.push_str(&machine(cfg));
    let _ = writeln!(
        w,
        "| load average (1/5/15 min) | {la0} at the start, {} at the end |\n| wall time | {:.0} s |\n",
        loadavg(),
        elapsed.as_secs_f64()
    );

    // Overhead.
    let _ = writeln!(
        w,
        "## Overhead on loopback connect/accept/close\n\n{} rounds of {} s per condition, conditions shuffled \
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
            let Some(runs) = o.runs.get(&(cond, th)) else {
                let _ = writeln!(w, "| {} | {th} | failed | | | | | |", cond.name());
                continue;
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
                    let ev: Vec<f64> =
                        runs.iter().filter_map(|(_, r)| r.delivered.map(|x| x as f64)).collect();
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
    }
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

    // Drain.
    let _ = writeln!(
        w,
        "\n## Zero-loss drain rate\n\ntcptracer > file, {} load threads at a fixed rate, {} s per step: doubling \
         from 10k conn/s, then 3 bisection steps between the last clean and the first lossy rate; when the \
         generator cannot reach a target, one step at its maximum rate, unpaced. A step is clean with 0 lost, exact counts and no loadgen errors. events/s = 4 × achieved conn/s.\n",
        d.threads, d.secs
    );
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

    // Start-up.
    let _ = writeln!(
        w,
        "\n## Start-up and exit\n\n{} starts of tcptracer (no --debug) under a 1k conn/s background load \
         (1 load thread), 1 s apart (a start right after a stop waits for an RCU grace period in \
         the tracepoint attach, 10-15 ms here); times from spawn.\n",
        cfg.starts
    );
    match s {
        Ok(s) => {
            let row = |w: &mut String, name: &str, v: &[f64]| {
                let (lo, hi) = min_max(v);
                let _ = writeln!(w, "| {name} | {:.2} | {lo:.2}–{hi:.2} | {} |", median(v), v.len());
            };
            let _ = writeln!(w, "| | median ms | min–max ms | n |\n|---|---|---|---|");
            row(&mut w, "spawn → header (attached)", &s.header_ms);
            row(&mut w, "spawn → first event line", &s.first_ms);
            row(&mut w, "SIGINT → exit", &s.exit_ms);
            row(&mut w, "spawn → exit of /bin/true (reference)", &s.true_ms);
            let _ = writeln!(w, "\n`--debug` phases (backend {}), 5 starts:\n", s.backend);
            let _ = writeln!(w, "| phase | median ms | min–max ms | n |\n|---|---|---|---|");
            for (name, v) in &s.phases {
                row(&mut w, name, v);
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

    // Memory.
    let _ = writeln!(w, "\n## Memory and size\n");
    match m {
        Ok(m) => {
            let _ = writeln!(w, "| | kB |\n|---|---|");
            let _ = writeln!(w, "| VmHWM at attach (header printed) | {} |", m.hwm_attach);
            let _ = writeln!(w, "| VmRSS at attach | {} |", m.rss_attach);
            let _ = writeln!(
                w,
                "| VmHWM after {} s at max rate ({} load threads, {} conn/s, {} lost) | {} |",
                m.secs,
                cfg.ncpu,
                k(m.load.rate),
                m.lost,
                m.hwm_load
            );
            let _ = writeln!(w, "| VmRSS after the load | {} |", m.rss_load);
            let _ = writeln!(
                w,
                "| rings: {} mappings (`[perf_event]`: perf rings; `bpf-map`: slot rings and wake ring), size | {} |",
                m.rings_load.count, m.rings_load.size_kb
            );
            let _ = writeln!(
                w,
                "| rings: Rss at attach / after the load | {} / {} |",
                m.rings_attach.rss_kb, m.rings_load.rss_kb
            );
            let _ = writeln!(
                w,
                "| VmHWM after the load minus ring Rss (heap, stack, code) | {} |",
                m.hwm_load.saturating_sub(m.rings_load.rss_kb)
            );
            let _ = writeln!(
                w,
                "| VmHWM after the load + ring pages not in Rss (all memory the tracer holds) | {} |",
                m.hwm_load + m.rings_load.size_kb.saturating_sub(m.rings_load.rss_kb)
            );
            if m.rings_load.count > 0 && m.rings_load.rss_kb == 0 {
                let _ = writeln!(
                    w,
                    "\nThe perf ring pages are kernel pages mapped VM_IO (`[perf_event]`, VmFlags `io`): smaps shows \
                     Rss 0 for them, so VmHWM does not include the rings; their size is the ring memory."
                );
            } else if m.rings_load.rss_kb > 0 {
                let _ = writeln!(
                    w,
                    "\nThe slot rings are an mmap'ed BPF array: all its pages count in Rss (and VmHWM) from the \
                     start, so VmHWM includes the ring memory."
                );
            }
            let _ = writeln!(w, "\nBinary: {} bytes; `file`: {}", m.bin_size, m.bin_file);
            let peak = m.hwm_load.max(m.hwm_attach);
            t.add("peak RSS (VmHWM)", "≤ 4 MB (4096 kB)", format!("{peak} kB"), peak <= 4096);
            let stripped = m.bin_file.contains(", stripped");
            t.add(
                "stripped static binary",
                "≤ 1 MB (1,048,576 bytes)",
                format!("{} bytes{}", m.bin_size, if stripped { "" } else { " (not stripped!)" }),
                m.bin_size <= 1 << 20 && stripped,
            );
        }
        Err(e) => {
            let _ = writeln!(w, "failed: {e}");
        }
    }

    // Kernel cost.
    let _ = writeln!(w, "\n## Kernel-side cost (BPF run time)\n");
    match kc {
        Ok(kc) => {
            let _ = writeln!(
                w,
                "kernel.bpf_stats_enabled=1 during one run: max rate, {} load threads, {} s, {} conn/s \
                 ({} connections, {} lost; events through {}); restored to {} afterwards.\n",
                cfg.ncpu,
                kc.secs,
                k(kc.load.rate),
                kc.load.conns,
                kc.lost,
                kc.transport,
                kc.restored
            );
            let (cnt, mean) = prog_table(&mut w, kc);
            let one = kc.one_thread.as_deref().map(|one| {
                let _ = writeln!(
                    w,
                    "\nThe same with 1 load thread (its client and server threads pinned to one CPU): {} conn/s, \
                     {} lost.\n",
                    k(one.load.rate),
                    one.lost
                );
                prog_table(&mut w, one)
            });
            if let Some(p) = &kc.perf {
                let _ = writeln!(
                    w,
                    "\nThe same with TCPTRACER_PERF_RINGS=1 (per-CPU perf rings, `bpf_perf_event_output`; the \
                     default before 5.12): {} conn/s, {} lost.\n",
                    k(p.load.rate),
                    p.lost
                );
                prog_table(&mut w, p);
            }
            if let Some(rb) = &kc.ringbuf {
                let _ = writeln!(
                    w,
                    "\nThe same with TCPTRACER_RINGBUF=1 (one BPF ring buffer for all CPUs; \
                     not the default): {} conn/s, {} lost.\n",
                    k(rb.load.rate),
                    rb.lost
                );
                prog_table(&mut w, rb);
            }
            if let Some((cnt, mean)) = one {
                t.add(
                    "BPF run time per hit (mean over all hits), 1 load thread",
                    "≤ 150 ns",
                    format!("{mean:.1} ns"),
                    mean <= 150.0 && cnt > 0,
                );
            }
            t.add(
                &format!("BPF run time per hit (mean over all hits), {} load threads", kc.threads),
                "≤ 150 ns",
                format!("{mean:.1} ns"),
                mean <= 150.0 && cnt > 0,
            );
        }
        Err(e) => {
            let _ = writeln!(w, "failed: {e}");
            t.add("BPF run time per hit (mean over all hits)", "≤ 150 ns", "failed".into(), false);
        }
    }

    // Consumer cost.
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

    // Targets.
    let mut head = String::new();
    let _ = writeln!(head, "\n## Targets\n\n| target | goal | measured | |\n|---|---|---|---|");
    for (what, goal, got, ok) in &t.0 {
        let _ = writeln!(head, "| {what} | {goal} | {got} | {} |", pass(*ok));
    }
    if !cfg.notes.is_empty() {
        let _ = writeln!(head, "\nNotes:");
        for n in &cfg.notes {
            let _ = writeln!(head, "- {n}");
        }
    }
    // Targets right after the machine table.
    let split = w.find("\n## Overhead").unwrap_or(w.len());
    w.insert_str(split, &head);
    w
}

fn main() {
    install_cleanup();
    let mut cfg = match config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    };
    // SAFETY: plain query.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench: run as root (tcptracer and bpftrace need it)");
        std::process::exit(1);
    }
    let t0 = Instant::now();
    let la0 = loadavg();
    let others0 = other_tracers();
    progress(format!(
        "tracer {}, {} rounds × {} s, {} CPUs, bpftrace: {}",
        cfg.tracer.display(),
        cfg.rounds,
        cfg.seconds,
        cfg.ncpu,
        cfg.bpftrace.as_deref().unwrap_or("no")
    ));
    let o = overhead(&cfg);
    let d = drain(&cfg);
    let s = startup(&cfg);
    let m = memory(&cfg);
    let kc = kernel_cost(&cfg);
    let c = consumer(&cfg);
    let others1 = other_tracers();
    for (when, o) in [("start", &others0), ("end", &others1)] {
        if !o.is_empty() {
            cfg.notes.push(format!(
                "Other tracers were running at the {when} of the benchmark: {}. Their BPF programs also run \
                 on every state change of the load (baseline included) and they compete for the CPUs.",
                o.join(", ")
            ));
        }
    }
    let text = report(&cfg, &la0, &o, &d, &s, &m, &kc, &c, t0.elapsed());
    emergency_cleanup(); // nothing should be left; belt and braces
    let _ = fs::remove_dir_all(&cfg.tmp);
    if let Some(dir) = cfg.results.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = fs::create_dir_all(dir);
    }
    if let Err(e) = fs::write(&cfg.results, &text) {
        eprintln!("bench: writing {}: {e}", cfg.results.display());
    }
    println!("{text}");
    eprintln!("bench: wrote {} in {:.0} s", cfg.results.display(), t0.elapsed().as_secs_f64());
}
