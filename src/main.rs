//! `tcptracer`: the command line.

use argh::FromArgs;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use tcptracer::loader::LoadError;
use tcptracer::tracer::output::{self, Format};
use tcptracer::tracer::{Backend, Config, Error, Filters, KernelLosses, Tracer};

/// Trace TCP established connections: connect (C), accept (A) and close (X).
#[derive(FromArgs)]
struct Args {
    /// include long event type names and the network namespace
    #[argh(switch, short = 'v')]
    verbose: bool,
    /// trace this PID (process) only, filtered in the kernel
    #[argh(option, short = 'p')]
    pid: Option<u32>,
    /// trace this network namespace (inode number) only, filtered in the kernel
    #[argh(option, short = 'N')]
    netns: Option<u32>,
    /// read kernel BTF from this file (raw BTF or an ELF vmlinux) instead of /sys/kernel/btf/vmlinux
    #[argh(option)]
    btf: Option<PathBuf>,
    /// probe backend: auto (default: fentry, else kprobe, else tracepoint), fentry, kprobe or tracepoint
    #[argh(option, default = "String::from(\"auto\")")]
    backend: String,
    /// print what this kernel supports and which backend auto picks, then exit
    #[argh(switch)]
    check: bool,
    /// print phase timings, each program's disassembly and verifier log on stderr
    #[argh(switch)]
    debug: bool,
}

/// Output is written in chunks of this size (and once per drain).
const OUT_CHUNK: usize = 1 << 16;
/// Events sorted and printed together: a drain of two full rings is cut
/// into batches of this size, so memory stays flat under any load.
const BATCH_MAX: usize = 4096;

/// Put a batch in time order (the rings are per CPU) and format it,
/// writing whenever a chunk of output is ready.
fn print_batch(batch: &mut Vec<tcptracer::tracer::event::Event>, buf: &mut Vec<u8>, fmt: &Format) {
    batch.sort_by_key(|e| e.ts_ns);
    for e in batch.drain(..) {
        output::row(buf, fmt, &e);
        if buf.len() >= OUT_CHUNK {
            write_out(buf);
            buf.clear();
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: libc::c_int) {
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
    eprintln!("tcptracer: {msg}");
    std::process::exit(1);
}

/// Write all of `buf` to stdout. A closed pipe ends the program quietly.
fn write_out(buf: &[u8]) {
    let mut rest = buf;
    while !rest.is_empty() {
        // SAFETY: valid buffer.
        let n = unsafe { libc::write(1, rest.as_ptr() as *const libc::c_void, rest.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::EAGAIN) => continue,
                Some(libc::EPIPE) => STOP.store(true, Ordering::Relaxed),
                _ => die(format!("writing output: {e}")),
            }
            return;
        }
        rest = &rest[n as usize..];
    }
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
    if let Some(p) = args.pid {
        if p == 0 || p > 4_194_304 {
            die(format!("invalid PID {p}: must be between 1 and 4194304"));
        }
    }
    if args.netns == Some(0) {
        die("invalid NETNS 0: give the inode number of a network namespace (ls -Li /proc/PID/ns/net)");
    }
    let Some(backend) = Backend::from_name(&args.backend) else {
        die(format!("unknown backend {:?}: use auto, fentry, kprobe or tracepoint", args.backend))
    };
    Config {
        filters: Filters { pid: args.pid, netns: args.netns },
        backend,
        btf: args.btf.clone(),
        debug: args.debug,
        kprobe_tracefs: std::env::var_os("TCPTRACER_KPROBE_TRACEFS").is_some_and(|v| v == "1"),
        ..Config::default()
    }
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
                eprintln!("verifier log:\n{}", log.trim_end());
            }
            if let Some(d) = disasm {
                eprintln!("program:\n{d}");
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
    if !root && (tracefs || matches!(errno, Some(libc::EPERM) | Some(libc::EACCES))) {
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
    println!("{:<18} {}", "probe_read_kernel", if features::probe_read_kernel() { "yes" } else { "no" });
    println!("{:<18} {}", "backend (auto)", features::pick(Some(&btf), &tracefs).name());
    std::process::exit(0)
}

/// Say on stderr what the kernel side lost since the last report.
fn report_kernel_losses(before: &KernelLosses, now: &KernelLosses) {
    let causes = [
        (now.output_failed - before.output_failed, "events: BPF output failed"),
        (now.untracked - before.untracked, "sockets untracked: map update failed"),
    ];
    for (n, what) in causes {
        if n > 0 {
            eprintln!("Possibly lost {n} {what}");
        }
    }
    for (n, what) in [
        (now.recursion_misses - before.recursion_misses, "probe runs (it fired inside itself)"),
        (now.kprobe_missed - before.kprobe_missed, "kprobe hits (kprobe_profile)"),
    ] {
        if n > 0 {
            eprintln!("Note: the kernel skipped {n} {what}; an event may be missing");
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
    if let Some(w) = &wake {
        if let Err(e) = tracer.add_wake_fd(w.as_fd()) {
            die(e);
        }
    }
    let fmt = Format::new(args.verbose, args.netns.is_some());
    let mut buf = Vec::with_capacity(OUT_CHUNK + 512);
    buf.extend_from_slice(output::BANNER.as_bytes());
    buf.push(b'\n');
    buf.extend_from_slice(output::header(&fmt).as_bytes());
    write_out(&buf);
    buf.clear();

    let mut lost_total = 0u64;
    let mut kernel = tracer.kernel_losses();
    let mut last_check = std::time::Instant::now();
    let mut batch = Vec::with_capacity(BATCH_MAX);
    // The rings wake us at their watermark; below it we poll: every 10 ms
    // while events flow, backing off to 100 ms when idle, so a trickle is
    // printed promptly without a wakeup per event.
    let mut timeout = 1;
    loop {
        let stopping = STOP.load(Ordering::Relaxed);
        if !stopping {
            if let Err(e) = tracer.wait(timeout) {
                die(e);
            }
        }
        let mut lost = 0u64;
        let mut events = 0usize;
        let r = tracer.drain(
            &mut |e| {
                events += 1;
                batch.push(*e);
                if batch.len() == BATCH_MAX {
                    print_batch(&mut batch, &mut buf, &fmt);
                }
            },
            &mut |n| lost += n,
        );
        print_batch(&mut batch, &mut buf, &fmt);
        if !buf.is_empty() {
            write_out(&buf);
            buf.clear();
        }
        timeout = if events == 0 { (timeout * 2).min(100) } else { 10 };
        if lost > 0 {
            lost_total += lost;
            eprintln!("Possibly lost {lost} events");
        }
        if let Err(e) = r {
            eprintln!("tcptracer: {e}");
        }
        if stopping || last_check.elapsed() >= std::time::Duration::from_secs(1) {
            last_check = std::time::Instant::now();
            let now = tracer.kernel_losses();
            report_kernel_losses(&kernel, &now);
            kernel = now;
        }
        if stopping {
            break;
        }
    }
    if lost_total + kernel.total() > 0 || cfg.debug {
        eprintln!(
            "tcptracer: lost {} events in all: {lost_total} in full perf rings, {} in the kernel \
             (output failed {}, sockets untracked {}); skipped by the kernel: {} probe runs, {} kprobe hits",
            lost_total + kernel.total(),
            kernel.total(),
            kernel.output_failed,
            kernel.untracked,
            kernel.recursion_misses,
            kernel.kprobe_missed
        );
    }
    if cfg.debug {
        for p in tracer.prog_stats() {
            let avg = if p.run_cnt > 0 { p.run_time_ns as f64 / p.run_cnt as f64 } else { 0.0 };
            eprintln!("prog {}: run_cnt {} run_time_ns {} avg_ns {avg:.1}", p.name, p.run_cnt, p.run_time_ns);
        }
    }
    let t = std::time::Instant::now();
    drop(tracer);
    if cfg.debug {
        eprintln!("detach and free: {:.1} ms", t.elapsed().as_secs_f64() * 1000.0);
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
