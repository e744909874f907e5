//! `tcptracer`: the command line.

use argh::FromArgs;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Instant;
use tcptracer::loader::LoadError;
use tcptracer::tracer::event::{Event, Kind};
use tcptracer::tracer::exe::ExeCache;
use tcptracer::tracer::json;
use tcptracer::tracer::output::{self, Format};
use tcptracer::tracer::writer::{say, Writer};
use tcptracer::tracer::{Backend, Config, Error, KernelLosses, Tracer};
use tcptracer::transport::PerfError;
use tcptracer::transport::Wake;

/// Trace TCP established connections: connect (C), accept (A) and close (X).
#[derive(FromArgs)]
struct Args {
    /// include long event type names and the network namespace
    #[argh(switch, short = 'v')]
    verbose: bool,
    /// include a timestamp: seconds since the first event (ns with -v)
    #[argh(switch, short = 't')]
    timestamp: bool,
    /// trace this PID (process) only, filtered in the kernel
    #[argh(option, short = 'p')]
    pid: Option<u32>,
    /// trace this network namespace (inode number) only, filtered in the kernel
    #[argh(option, short = 'N')]
    netns: Option<u32>,
    /// trace IPv4 sockets only
    #[argh(switch, short = '4')]
    ipv4: bool,
    /// trace IPv6 sockets only (IPv4-mapped flows included)
    #[argh(switch, short = '6')]
    ipv6: bool,
    /// trace this user ID only, filtered in the kernel
    #[argh(option, short = 'u')]
    uid: Option<u32>,
    /// trace tasks in this cgroup v2 directory only (e.g. /sys/fs/cgroup/system.slice/nginx.service)
    #[argh(option)]
    cgroup: Option<PathBuf>,
    /// trace connections with this local or remote port only (repeatable, up to 16)
    #[argh(option)]
    port: Vec<u16>,
    /// trace tasks with this COMM (thread name, up to 15 bytes) only
    #[argh(option)]
    comm: Option<String>,
    /// include a UID column
    #[argh(switch, short = 'U')]
    print_uid: bool,
    /// include an EXE column: the full path of the process's executable
    #[argh(switch, short = 'w')]
    wide: bool,
    /// print one JSON object per line (with exe, uid, gid, cgroup and wall-clock time), and a summary at exit
    #[argh(switch)]
    json: bool,
    /// also report connects that never established (type F) with their error
    #[argh(switch)]
    failed: bool,
    /// ring memory per CPU, e.g. 512K or 8M (default 2M): more holds longer bursts
    #[argh(option, short = 'b')]
    buffer: Option<String>,
    /// output waiting for a slow stdout, at most this much, e.g. 64M (default 16M); more is reported lost
    #[argh(option)]
    queue: Option<String>,
    /// sockets tracked at once (default: 4 x the TCP sockets at start, at least 65536); more are reported lost
    #[argh(option)]
    max_conns: Option<u32>,
    /// read kernel BTF from this file (raw BTF or an ELF vmlinux) instead of /sys/kernel/btf/vmlinux
    #[argh(option)]
    btf: Option<PathBuf>,
    /// probe backend: auto (default: fentry, else tracepoint, else kprobe), fentry, kprobe or tracepoint
    #[argh(option, default = "String::from(\"auto\")")]
    backend: String,
    /// print what this kernel supports and which backend auto picks, then exit
    #[argh(switch)]
    check: bool,
    /// print phase timings, each program's disassembly and verifier log on stderr
    #[argh(switch)]
    debug: bool,
}

/// `eprintln!` without its panic when stderr is closed or broken.
macro_rules! note {
    ($($t:tt)*) => { say(&format!($($t)*)) };
}

/// Output is queued in chunks of this size (and once per drain).
const OUT_CHUNK: usize = 1 << 16;

/// Default bound of the output queue.
const DEFAULT_QUEUE_BYTES: usize = 16 << 20;

/// After a stop is asked for, how long queued output may take to be written.
const STOP_WRITE_MS: u64 = 600;

/// Formats events (table or JSON) into one buffer and counts them.
struct Printer {
    fmt: Format,
    json: bool,
    buf: Vec<u8>,
    /// Events in `buf`.
    buf_events: u64,
    out: Writer,
    /// Events dropped because the output queue was full.
    dropped: u64,
    first_ts: Option<u64>,
    realtime_offset: i64,
    exes: ExeCache,
    now: Instant,
    counts: json::Summary,
}

impl Printer {
    fn event(&mut self, e: &Event) {
        let c = &mut self.counts;
        c.events += 1;
        self.buf_events += 1;
        match e.kind {
            Some(Kind::Connect) => c.connect += 1,
            Some(Kind::Accept) => c.accept += 1,
            Some(Kind::Close) => c.close += 1,
            Some(Kind::Failed) => c.failed += 1,
            None => {}
        }
        let exe = if self.json || self.fmt.exe { self.exes.get(e.pid, self.now) } else { None };
        if self.json {
            json::event(&mut self.buf, e, self.realtime_offset, exe);
        } else {
            let first = *self.first_ts.get_or_insert(e.ts_ns);
            output::row(&mut self.buf, &self.fmt, e, e.ts_ns.saturating_sub(first), exe);
        }
        if self.buf.len() >= OUT_CHUNK {
            self.flush();
        }
    }

    /// Hand the buffer to the writer thread.
    fn flush(&mut self) {
        if !self.buf.is_empty() {
            let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(OUT_CHUNK + 512));
            self.dropped += self.out.send(buf, std::mem::take(&mut self.buf_events));
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: libc::c_int) {
    request_stop();
}

/// Async-signal-safe: set the flag and wake the main loop.
fn request_stop() {
    STOP.store(true, Ordering::Relaxed);
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: write(2) is async-signal-safe; the buffer is valid.
        unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
    }
}

fn install_signals() -> Option<OwnedFd> {
    // SAFETY: eventfd and sigaction with a valid handler.
    unsafe {
        let fd = libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
        if fd >= 0 {
            WAKE_FD.store(fd, Ordering::Relaxed);
        }
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
        (fd >= 0).then(|| OwnedFd::from_raw_fd(fd))
    }
}

fn die(msg: impl std::fmt::Display) -> ! {
    say(&format!("tcptracer: {msg}"));
    std::process::exit(1);
}

/// stdout reports an error or hang-up: the reader of the pipe went away
/// (`tcptracer | head`), or the terminal hung up.
fn stdout_gone() -> bool {
    let mut p = libc::pollfd { fd: 1, events: 0, revents: 0 };
    // SAFETY: one valid pollfd; timeout 0.
    unsafe { libc::poll(&mut p, 1, 0) == 1 && p.revents & (libc::POLLERR | libc::POLLHUP) != 0 }
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let rest: Vec<&str> =
        argv.iter().skip(1).map(|s| if s == "-h" { "--help" } else { s.as_str() }).collect();
    match Args::from_args(&["tcptracer"], &rest) {
        Ok(a) => a,
        Err(early) => {
            if early.status.is_ok() {
                print!("{}", early.output);
                std::process::exit(0);
            }
            let first = early.output.lines().next().unwrap_or("bad arguments").trim_end_matches('.');
            die(format!("{first} (see tcptracer --help)"));
        }
    }
}

fn config(args: &Args) -> Config {
    if args.ipv4 && args.ipv6 {
        die("-4 and -6 exclude each other: give one, or neither for both families");
    }
    if args.json {
        for (set, flag) in
            [(args.verbose, "-v"), (args.timestamp, "-t"), (args.print_uid, "-U"), (args.wide, "-w")]
        {
            if set {
                die(format!("--json cannot be combined with {flag}: JSON lines carry every field"));
            }
        }
    }
    let Some(backend) = Backend::from_name(&args.backend) else {
        die(format!("unknown backend {:?}: use auto, fentry, kprobe or tracepoint", args.backend))
    };
    let mut b = Tracer::builder()
        .backend(backend)
        .failed(args.failed)
        .task_ids(args.json || args.print_uid)
        .netns_ids(args.json || args.verbose)
        .debug(args.debug)
        .kprobe_tracefs(std::env::var_os("TCPTRACER_KPROBE_TRACEFS").is_some_and(|v| v == "1"))
        .ringbuf(std::env::var_os("TCPTRACER_RINGBUF").is_some_and(|v| v == "1"))
        .perf_rings(std::env::var_os("TCPTRACER_PERF_RINGS").is_some_and(|v| v == "1"))
        .skip_close_port(std::env::var("TCPTRACER_TEST_SKIP_CLOSE_PORT").ok().and_then(|p| p.parse().ok()));
    if let Some(p) = &args.btf {
        b = b.btf(p);
    }
    if let Some(n) = args.max_conns {
        b = b.max_conns(n);
    }
    if let Some(size) = &args.buffer {
        match tcptracer::tracer::builder::parse_size(size) {
            Ok(bytes) => b = b.buffer(bytes),
            Err(e) => die(format!("-b: {e}")),
        }
    }
    if let Some(size) = &args.queue {
        if let Err(e) = queue_bytes(size) {
            die(format!("--queue: {e}"));
        }
    }
    if let Some(p) = args.pid {
        b = b.pid(p);
    }
    if let Some(n) = args.netns {
        b = b.netns(n);
    }
    if args.ipv4 || args.ipv6 {
        b = b.family(if args.ipv4 { 4 } else { 6 });
    }
    if let Some(u) = args.uid {
        b = b.uid(u);
    }
    if let Some(c) = &args.cgroup {
        b = b.cgroup_path(c);
    }
    for &p in &args.port {
        b = b.port(p);
    }
    if let Some(c) = &args.comm {
        b = b.comm(c);
    }
    b.config().unwrap_or_else(|e| die(e))
}

/// `--queue SIZE` in bytes: 64K to 4G.
fn queue_bytes(size: &str) -> Result<usize, String> {
    let n = tcptracer::tracer::builder::parse_size(size)?;
    if !(64 << 10..=4 << 30).contains(&n) {
        return Err(format!("invalid size {size:?}: the output queue takes 64K to 4G"));
    }
    Ok(n)
}

/// The capabilities tracing needs that this process lacks (empty: none).
/// CAP_SYS_ADMIN covers both, as it does on kernels before 5.8.
fn missing_caps() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(eff) = status.lines().find_map(|l| l.strip_prefix("CapEff:")) else { return Vec::new() };
    let Ok(eff) = u64::from_str_radix(eff.trim(), 16) else { return Vec::new() };
    missing_from(eff)
}

fn missing_from(eff: u64) -> Vec<&'static str> {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    if eff & (1 << CAP_SYS_ADMIN) != 0 {
        return Vec::new();
    }
    [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(bit, _)| eff & (1u64 << bit) == 0)
        .map(|(_, name)| name)
        .collect()
}

fn start_error(e: Error, debug: bool) -> ! {
    if let Error::Load { source, disasm } = &e {
        if debug {
            if let LoadError::Verifier { log, .. } = source {
                say(&format!("verifier log:\n{}", log.trim_end()));
            }
            if let Some(d) = disasm {
                say(&format!("program:\n{d}"));
            }
        }
    }
    let mut msg = e.to_string();
    let (errno, verifier, tracefs) = match &e {
        Error::Load { source, .. } => (
            source.errno(),
            matches!(source, LoadError::Verifier { .. }),
            matches!(source, LoadError::Tracefs(_)),
        ),
        _ => (None, false, false),
    };
    // SAFETY: trivial syscall.
    let root = unsafe { libc::geteuid() } == 0;
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(0);
    let perf_denied = match &e {
        Error::Perf(PerfError::Open { source, .. }) => source.raw_os_error() == Some(libc::EACCES),
        Error::Load { source: LoadError::Call { call, source }, .. } => {
            call.starts_with("perf_event_open") && source.raw_os_error() == Some(libc::EACCES)
        }
        _ => false,
    };
    if perf_denied && paranoid > 2 {
        // Debian's level 3: only CAP_SYS_ADMIN may open perf events.
        msg.push_str(&format!(
            "; kernel.perf_event_paranoid is {paranoid}: above 2 this kernel lets only CAP_SYS_ADMIN \
             open perf events (sysctl kernel.perf_event_paranoid=2 lets CAP_PERFMON)"
        ));
    } else if !root && (tracefs || matches!(errno, Some(libc::EPERM) | Some(libc::EACCES))) {
        msg.push_str("; run tcptracer as root (it needs CAP_BPF, CAP_PERFMON and tracefs)");
    } else if matches!(errno, Some(libc::EPERM)) && !verifier {
        msg.push_str(
            "; RLIMIT_MEMLOCK may be too low (kernels before 5.11): ulimit -l unlimited, or CAP_SYS_RESOURCE",
        );
    } else if verifier && !debug {
        msg.push_str(" (--debug shows the verifier log and the program)");
    }
    die(msg)
}

/// `--check`: one line per feature, then the backend auto would pick.
fn check(cfg: &Config) -> ! {
    use tcptracer::btf::Btf;
    use tcptracer::tracer::features;
    let yes_no = |r: Result<(), String>| match r {
        Ok(()) => "yes".to_string(),
        Err(e) => format!("no ({e})"),
    };
    let btf = match &cfg.btf {
        Some(p) => Btf::from_file(p),
        None => Btf::kernel(),
    };
    let btf = match btf {
        Ok(b) => {
            println!("{:<18} yes ({} types)", "BTF", b.type_count());
            b
        }
        Err(e) => die(e),
    };
    let tracefs = match tcptracer::loader::tracefs::Tracefs::open() {
        Ok(t) => t,
        Err(e) => die(e),
    };
    let pmu = tcptracer::loader::kprobe::pmu_type();
    println!("{:<18} {}", "kprobe PMU", pmu.map_or("no".to_string(), |t| format!("yes (type {t})")));
    let ke = tracefs.root().join("kprobe_events").exists();
    println!("{:<18} {}", "kprobe_events", if ke { "yes" } else { "no" });
    println!("{:<18} {}", "fentry/fexit", yes_no(features::fentry(Some(&btf))));
    println!("{:<18} {}", "tp_btf", yes_no(features::tp_btf(Some(&btf))));
    println!("{:<18} {}", "tracepoints", yes_no(features::tracepoints(&tracefs)));
    println!("{:<18} {}", "ringbuf", if features::ringbuf() { "yes" } else { "no" });
    println!("{:<18} {}", "slot rings", if features::slot_rings() { "yes" } else { "no (perf rings)" });
    println!("{:<18} {}", "probe_read_kernel", if features::probe_read_kernel() { "yes" } else { "no" });
    println!("{:<18} {}", "backend (auto)", features::pick(Some(&btf), &tracefs).name());
    std::process::exit(0)
}

/// Say on stderr what the kernel side lost since the last report.
fn report_kernel_losses(before: &KernelLosses, now: &KernelLosses) {
    let causes = [
        (now.output_failed - before.output_failed, "events: BPF output failed"),
        (now.ring_full - before.ring_full, "events: ring buffer full"),
        (now.untracked - before.untracked, "sockets untracked: map update failed"),
    ];
    for (n, what) in causes {
        if n > 0 {
            say(&format!("Possibly lost {n} {what}"));
        }
    }
    for (n, what) in [
        (now.recursion_misses - before.recursion_misses, "probe runs (it fired inside itself)"),
        (now.kprobe_missed - before.kprobe_missed, "kprobe hits (kprobe_profile)"),
    ] {
        if n > 0 {
            say(&format!("Note: the kernel skipped {n} {what}; an event may be missing"));
        }
    }
}

fn main() {
    let args = parse_args();
    let cfg = config(&args);
    if args.check {
        check(&cfg);
    }
    let missing = missing_caps();
    if !missing.is_empty() {
        die(format!(
            "missing capability {}: run tcptracer as root, or grant CAP_BPF and CAP_PERFMON",
            missing.join(" and ")
        ));
    }
    let wake = install_signals();
    let mut tracer = match Tracer::start(&cfg) {
        Ok(t) => t,
        Err(e) => start_error(e, cfg.debug),
    };
    if !tracer.kprobe_misses_counted() {
        note!(
            "Note: this kernel does not count missed hits of kprobes made through the kprobe PMU \
             (it does from 6.6); TCPTRACER_KPROBE_TRACEFS=1 uses tracefs kprobes, whose misses are counted"
        );
    }
    if let Some(why) = &tracer.slot_fallback {
        note!("Note: slot rings could not be set up ({why}); perf rings carry the events");
    }
    if tracer.transport() != tcptracer::transport::Kind::RingBuf && tracer.ring_pages < cfg.ring_pages {
        // SAFETY: sysconf has no preconditions.
        let kib = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize / 1024).max(1);
        note!(
            "Note: perf rings cut to {} KiB per CPU (of {}) by the locked-memory limit; \
             ulimit -l unlimited or CAP_IPC_LOCK allows more; bursts may be lost",
            tracer.ring_pages * kib,
            cfg.ring_pages * kib
        );
    }
    if let Some(w) = &wake {
        if let Err(e) = tracer.add_wake_fd(w.as_fd()) {
            die(e);
        }
    }
    // A pipe whose reader went away reports an error to epoll: end then,
    // not at the next write (a regular file cannot be watched, and needs not).
    // SAFETY: fd 1 stays open for the life of the process.
    let _ = tracer.add_error_fd(unsafe { std::os::fd::BorrowedFd::borrow_raw(1) });
    let queue =
        args.queue.as_deref().map_or(DEFAULT_QUEUE_BYTES, |q| queue_bytes(q).unwrap_or_else(|e| die(e)));
    let out = Writer::spawn(1, queue, Box::new(request_stop))
        .unwrap_or_else(|e| die(format!("output thread: {e}")));
    if cfg.debug {
        note!("output queue: at most {} KiB", queue >> 10);
    }
    let mut fmt = Format::new(args.verbose, args.netns.is_some());
    (fmt.timestamp, fmt.uid, fmt.error, fmt.exe) = (args.timestamp, args.print_uid, args.failed, args.wide);
    let mut p = Printer {
        fmt,
        json: args.json,
        buf: Vec::with_capacity(OUT_CHUNK + 512),
        buf_events: 0,
        out,
        dropped: 0,
        first_ts: None,
        realtime_offset: json::realtime_offset_ns(),
        exes: ExeCache::new(),
        now: Instant::now(),
        counts: json::Summary::default(),
    };
    if args.json {
        // stdout carries JSON only; a person still sees that tracing began.
        note!("{}", output::BANNER);
    } else {
        p.buf.extend_from_slice(output::BANNER.as_bytes());
        p.buf.push(b'\n');
        p.buf.extend_from_slice(output::header(&fmt).as_bytes());
        p.flush();
    }

    let mut lost_total = 0u64;
    let mut dropped_told = 0u64;
    let mut bad_told = 0u64;
    let mut kernel = tracer.kernel_losses();
    let mut last_check = Instant::now();
    // The rings wake us at their watermark; below it we poll: every 10 ms
    // while events flow, backing off to 100 ms when idle, so a trickle is
    // printed promptly without a wakeup per event. An event held for time
    // order is printed as soon as its window has passed.
    let mut timeout = 1;
    let stop_at = loop {
        let stopping = STOP.load(Ordering::Relaxed);
        if !stopping {
            match tracer.wait(timeout) {
                Ok(Wake::Woken) if !STOP.load(Ordering::Relaxed) && stdout_gone() => request_stop(),
                Ok(_) => {}
                Err(e) => die(e),
            }
        }
        let mut lost = 0u64;
        p.now = Instant::now();
        let r = if stopping {
            // Detach first: what the rings hold then is all there is.
            tracer.stop(&mut |e| p.event(e), &mut |n| lost += n)
        } else {
            tracer.drain(&mut |e| p.event(e), &mut |n| lost += n)
        };
        p.flush();
        let events = *r.as_ref().unwrap_or(&0);
        timeout = match (events, tracer.next_release_ms()) {
            (0, None) => (timeout * 2).min(100),
            (0, Some(ms)) => ms,
            _ => 10,
        };
        if lost > 0 {
            lost_total += lost;
            note!("Possibly lost {lost} events");
        }
        if let Err(e) = r {
            note!("tcptracer: {e}");
        }
        if stopping || last_check.elapsed() >= std::time::Duration::from_secs(1) {
            last_check = Instant::now();
            let now = tracer.kernel_losses();
            report_kernel_losses(&kernel, &now);
            kernel = now;
            if tracer.undecodable() > bad_told {
                note!("Possibly lost {} events: undecodable records", tracer.undecodable() - bad_told);
                bad_told = tracer.undecodable();
            }
            if p.dropped > dropped_told && p.out.failed().is_none() {
                note!(
                    "Possibly lost {} events: output queue full (stdout too slow)",
                    p.dropped - dropped_told
                );
                dropped_told = p.dropped;
            }
        }
        if stopping {
            break Instant::now();
        }
    };
    let uncommitted = tracer.outputs_in_flight().unwrap_or(0);
    let full = lost_total + kernel.ring_full + tracer.undecodable();
    if args.json {
        p.counts.lost_perf = full;
        p.counts.lost_kernel = kernel.total();
        p.counts.lost_queue = p.dropped;
        p.counts.skipped = kernel.skipped();
        p.counts.uncommitted = uncommitted;
        p.counts.late = tracer.late();
        let unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        json::summary(&mut p.buf, &p.counts, unix_ns);
        p.buf_events = 0;
        p.flush();
    }
    if cfg.debug {
        let d = tracer.deferred_stats();
        note!(
            "deferred closes: {} ({} claimed by an accept, {} settled here, {} marks swept); \
             most events held {}; late {}; closes reported at destroy: {}",
            d.deferred,
            d.by_accept,
            d.settled,
            d.swept,
            tracer.max_held(),
            tracer.late(),
            tracer.closes_at_destroy()
        );
        for e in tracer.claimed_closes() {
            note!(
                "deferred close claimed by an accept: pid {} {}:{} -> {}:{} socket {}",
                e.pid,
                e.saddr(),
                e.sport,
                e.daddr(),
                e.dport,
                e.sock
            );
        }
        for p in tracer.prog_stats() {
            let avg = if p.run_cnt > 0 { p.run_time_ns as f64 / p.run_cnt as f64 } else { 0.0 };
            note!(
                "prog {}: run_cnt {} run_time_ns {} avg_ns {avg:.1} skipped {}",
                p.name,
                p.run_cnt,
                p.run_time_ns,
                p.recursion_misses
            );
        }
    }
    let late = tracer.late();
    let unaccounted = tracer.unaccounted();
    if unaccounted != 0 {
        note!("tcptracer: {unaccounted} events read from the rings and not accounted for (a bug: please report)");
    }
    let t = Instant::now();
    drop(tracer);
    if cfg.debug {
        note!("detach and free: {:.1} ms", t.elapsed().as_secs_f64() * 1000.0);
    }
    // Everything is released; give the output a moment to be written. A
    // stdout nobody reads does not hold the exit.
    let (unwritten, broken) = p.out.finish(stop_at + std::time::Duration::from_millis(STOP_WRITE_MS));
    // Every event accounted for: handed out, lost (and where), possibly in
    // a run the kernel skipped, or never committed by its program. Events a
    // closed pipe did not take are not losses.
    let unwritten = if broken == Some(libc::EPIPE) { 0 } else { unwritten };
    let dropped = if broken.is_some() { 0 } else { p.dropped };
    let off_course = full + kernel.total() + dropped + kernel.skipped() + unwritten + uncommitted + late;
    if off_course > 0 || cfg.debug {
        note!(
            "tcptracer: lost {} events in all: {full} in full buffers, {} in the kernel \
             (output failed {}, sockets untracked {}), {dropped} in a full output queue; \
             skipped by the kernel: {} probe runs, {} kprobe hits; \
             {} events delivered, {unwritten} not written at exit, {uncommitted} left uncommitted, {late} out of order",
            full + kernel.total() + dropped,
            kernel.total(),
            kernel.output_failed,
            kernel.untracked,
            kernel.recursion_misses,
            kernel.kprobe_missed,
            p.counts.events,
        );
    }
    match broken {
        Some(e) if e != libc::EPIPE => {
            die(format!("writing output: {}", std::io::Error::from_raw_os_error(e)))
        }
        // The writer thread may still be blocked in write(): exit now.
        _ => std::process::exit(0),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn capabilities() {
        let bit = |b: u32| 1u64 << b;
        assert!(super::missing_from(bit(21)).is_empty());
        assert!(super::missing_from(bit(38) | bit(39)).is_empty());
        assert_eq!(super::missing_from(bit(39)), vec!["CAP_PERFMON"]);
        assert_eq!(super::missing_from(bit(38)), vec!["CAP_BPF"]);
        assert_eq!(super::missing_from(0), vec!["CAP_BPF", "CAP_PERFMON"]);
    }
}
