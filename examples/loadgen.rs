//! Loopback TCP load for the benchmark (`make bench`, `examples/bench/`).
//!
//! N client threads each connect to their own listener (served by its own
//! accepting thread), wait for the server to close, and close in turn: every
//! connection yields exactly four tcptracer events (C on the client, A on the
//! server, X when the server closes, X when the client closes).
//!
//! ```text
//! loadgen [--threads N] [--seconds S] [--rate R] [--ipv6] [--pin]
//! loadgen N S [4|6]                      (the older positional form)
//! ```
//!
//! `--rate R` (connections/s, in total) paces each thread at R/N with an
//! absolute sleep-until schedule (`clock_nanosleep(TIMER_ABSTIME)`; gaps under
//! 100 µs are spun, see `SPIN_NS`): a late wake-up is caught up by the
//! following connections, so the long-run rate is R unless the machine cannot
//! do R. Without `--rate` the threads go as fast as they can.
//!
//! `--pin` pins client thread i and its server thread to the i-th CPU the
//! process may run on (modulo their count), so the ping-pong between a client
//! and its server stays on one CPU. Unpinned, the scheduler may put the two on
//! different CPUs and every hand-over becomes a cross-CPU wake-up (an IPI; in
//! a VM an exit): on the 2-vCPU benchmark VM one unpinned thread does 12k–40k
//! conn/s depending on placement, pinned a steady ~46k.
//!
//! The one output line (stdout) is machine-readable:
//!
//! ```text
//! connections N seconds S rate R/s threads T family 4 target_rate R errors E pinned 0|1 ports P1,P2
//! ```
//!
//! `target_rate` is 0 at max rate; `errors` counts failed connects/reads (not
//! in `connections`); `ports` are the listening ports (events of this run
//! have one of them as SPORT or DPORT).
//!
//! Bounded: the run ends after S seconds; each connect and read has a 2 s
//! timeout; a watchdog exits the process (status 3) if the clients have not
//! stopped S + 10 s after the start. Loopback only.
//!
//! Why the server closes first: the side that closes first ends in TIME_WAIT
//! (60 s on Linux). If the client closed first, every client port would stay
//! in TIME_WAIT, and at tens of thousands of connections/s the ~28k ephemeral
//! ports (net.ipv4.ip_local_port_range) would run out within a second or two:
//! connect() would fail with EADDRNOTAVAIL and the rate would collapse. With
//! the server closing first, the TIME_WAIT entries sit on the server side,
//! where they pin no ephemeral port; the client socket goes CLOSE_WAIT →
//! LAST_ACK → CLOSED and its port is free again at once. A new SYN that meets
//! an old server-side TIME_WAIT of the same 4-tuple is accepted by the kernel
//! (a newer ISN/timestamp), so recycled client ports keep working.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(2);
const WATCHDOG_GRACE: f64 = 10.0;

struct Opts {
    threads: usize,
    seconds: f64,
    rate: f64,
    ipv6: bool,
    pin: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    eprintln!("usage: loadgen [--threads N] [--seconds S] [--rate R] [--ipv6] [--pin]  |  loadgen N S [4|6]");
    std::process::exit(2);
}

fn parse() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = Opts { threads: 1, seconds: 5.0, rate: 0.0, ipv6: false, pin: false };
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| -> f64 {
            it.next()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
                .unwrap_or_else(|| usage(&format!("{name} needs a non-negative number")))
        };
        match a.as_str() {
            "--threads" | "-t" => o.threads = val("--threads") as usize,
            "--seconds" | "-s" => o.seconds = val("--seconds"),
            "--rate" | "-r" => o.rate = val("--rate"),
            "--ipv6" | "-6" => o.ipv6 = true,
            "--ipv4" | "-4" => o.ipv6 = false,
            "--pin" => o.pin = true,
            "-h" | "--help" => usage("loopback connect/accept/close load"),
            s if !s.starts_with('-') => positional.push(s.to_string()),
            s => usage(&format!("unknown option {s}")),
        }
    }
    if let Some(t) = positional.first() {
        o.threads = t.parse().unwrap_or_else(|_| usage("THREADS must be a number"));
    }
    if let Some(s) = positional.get(1) {
        o.seconds = s.parse().unwrap_or_else(|_| usage("SECONDS must be a number"));
    }
    if let Some(f) = positional.get(2) {
        o.ipv6 = match f.as_str() {
            "4" => false,
            "6" => true,
            _ => usage("the family is 4 or 6"),
        };
    }
    if o.threads == 0 || o.threads > 256 {
        usage("THREADS must be 1..256");
    }
    if !(o.seconds > 0.0 && o.seconds <= 3600.0) {
        usage("SECONDS must be in (0, 3600]");
    }
    o
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Waits shorter than this are spun, not slept: on the benchmark VM every
/// sleep that idles the CPU costs tens of µs (halt, VM exit, timer wake-up),
/// and with sleeps alone two paced threads topped out at ~36k conn/s where
/// they do ~79k unpaced. Spinning only the short gaps reaches 60k paced.
const SPIN_NS: u64 = 100_000;

/// Wait until CLOCK_MONOTONIC reaches `deadline_ns` (returns at once if past):
/// clock_nanosleep(TIMER_ABSTIME), or a spin when less than SPIN_NS is left.
fn sleep_until(deadline_ns: u64) {
    if deadline_ns.saturating_sub(now_ns()) < SPIN_NS {
        while now_ns() < deadline_ns {
            std::hint::spin_loop();
        }
        return;
    }
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: valid timespec; EINTR is retried.
    while unsafe {
        libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &ts, std::ptr::null_mut())
    } == libc::EINTR
    {}
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// Pin the calling thread to `cpu` (best effort).
fn pin_to(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    // SAFETY: as above; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// One connection: connect, wait for the server's FIN (read returns 0), close.
fn one(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, IO_TIMEOUT) else { return false };
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let ok = matches!(s.read(&mut [0u8; 1]), Ok(0)); // EOF: the server closed
    drop(s);
    ok
}

fn main() {
    let o = parse();
    let host = if o.ipv6 { "[::1]:0" } else { "127.0.0.1:0" };
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut ports = Vec::new();
    let mut workers = Vec::new();
    let t0 = Instant::now();
    let start_ns = now_ns();
    // Per-thread interval of the fixed-rate schedule (0: as fast as possible).
    let interval_ns = if o.rate > 0.0 { (1e9 * o.threads as f64 / o.rate) as u64 } else { 0 };
    let cpus = if o.pin { allowed_cpus() } else { Vec::new() };
    for i in 0..o.threads {
        let cpu = (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
        let listener = TcpListener::bind(host).unwrap_or_else(|e| {
            eprintln!("loadgen: bind {host}: {e}");
            std::process::exit(1)
        });
        let addr = listener.local_addr().unwrap();
        ports.push(addr.port());
        // The server: accept and close at once (it closes first; see the top).
        thread::spawn(move || {
            pin_to(cpu);
            for s in listener.incoming() {
                drop(s);
            }
        });
        let (stop, total, errors) = (stop.clone(), total.clone(), errors.clone());
        workers.push(thread::spawn(move || {
            pin_to(cpu);
            if interval_ns > 0 {
                // SAFETY: plain prctl; 1 ns of timer slack (default 50 µs) for on-time wake-ups.
                unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64) };
            }
            let (mut n, mut errs) = (0u64, 0u64);
            // Stagger the threads' schedules across one interval.
            let mut next = start_ns + interval_ns * i as u64 / o.threads as u64;
            while !stop.load(Ordering::Relaxed) {
                if interval_ns > 0 {
                    sleep_until(next);
                    next += interval_ns;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                if one(addr) {
                    n += 1;
                } else {
                    errs += 1;
                    thread::sleep(Duration::from_millis(1));
                }
            }
            total.fetch_add(n, Ordering::Relaxed);
            errors.fetch_add(errs, Ordering::Relaxed);
        }));
    }
    let limit = o.seconds + WATCHDOG_GRACE;
    thread::spawn(move || {
        thread::sleep(Duration::from_secs_f64(limit));
        eprintln!("loadgen: clients did not stop within {limit:.0} s; exiting");
        std::process::exit(3);
    });
    thread::sleep(Duration::from_secs_f64(o.seconds).saturating_sub(t0.elapsed()));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = total.load(Ordering::Relaxed);
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    println!(
        "connections {n} seconds {secs:.3} rate {:.1}/s threads {} family {} target_rate {} errors {} pinned {} ports {}",
        n as f64 / secs,
        o.threads,
        if o.ipv6 { 6 } else { 4 },
        o.rate,
        errors.load(Ordering::Relaxed),
        o.pin as u8,
        ports.join(",")
    );
}
