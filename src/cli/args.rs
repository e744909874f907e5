//! The arguments (argh) and the configuration they make.

use super::die;
use argh::FromArgs;
use std::path::PathBuf;
use tcptracer::tracer::{Backend, Config, Tracer};

/// Default bound of the output queue.
pub const DEFAULT_QUEUE_BYTES: usize = 16 << 20;

/// Trace TCP established connections: connect (C), accept (A) and close (X).
#[derive(FromArgs)]
pub struct Args {
    /// include long event type names and the network namespace
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    /// include a timestamp: seconds since the first event (ns with -v)
    #[argh(switch, short = 't')]
    pub timestamp: bool,
    /// trace this PID (process) only, filtered in the kernel
    #[argh(option, short = 'p')]
    pub pid: Option<u32>,
    /// trace this network namespace (inode number) only, filtered in the kernel
    #[argh(option, short = 'N')]
    pub netns: Option<u32>,
    /// trace IPv4 sockets only
    #[argh(switch, short = '4')]
    pub ipv4: bool,
    /// trace IPv6 sockets only (IPv4-mapped flows included)
    #[argh(switch, short = '6')]
    pub ipv6: bool,
    /// trace this user ID only, filtered in the kernel
    #[argh(option, short = 'u')]
    pub uid: Option<u32>,
    /// trace tasks in this cgroup v2 directory only (e.g. /sys/fs/cgroup/system.slice/nginx.service)
    #[argh(option)]
    pub cgroup: Option<PathBuf>,
    /// trace connections with this local or remote port only (repeatable, up to 16)
    #[argh(option)]
    pub port: Vec<u16>,
    /// trace tasks with this COMM (thread name, up to 15 bytes) only
    #[argh(option)]
    pub comm: Option<String>,
    /// include a UID column
    #[argh(switch, short = 'U')]
    pub print_uid: bool,
    /// include an EXE column: the full path of the process's executable
    #[argh(switch, short = 'w')]
    pub wide: bool,
    /// print one JSON object per line (with exe, uid, gid, cgroup and wall-clock time), and a summary at exit
    #[argh(switch)]
    pub json: bool,
    /// also report connects that never established (type F) with their error
    #[argh(switch)]
    pub failed: bool,
    /// ring memory per CPU, e.g. 512K or 8M (default 2M): more holds longer bursts
    #[argh(option, short = 'b')]
    pub buffer: Option<String>,
    /// output waiting for a slow stdout, at most this much, e.g. 64M (default 16M); more is reported lost
    #[argh(option)]
    pub queue: Option<String>,
    /// sockets tracked at once (default: 4 x the TCP sockets at start, at least 65536); more are reported lost
    #[argh(option)]
    pub max_conns: Option<u32>,
    /// read kernel BTF from this file (raw BTF or an ELF vmlinux) instead of /sys/kernel/btf/vmlinux
    #[argh(option)]
    pub btf: Option<PathBuf>,
    /// probe backend: auto (default: fentry, else tracepoint, else kprobe), fentry, kprobe or tracepoint
    #[argh(option, default = "String::from(\"auto\")")]
    pub backend: String,
    /// instead of a line per event, every SECONDS a table of the events counted per type, process, remote address and port, busiest first (one JSON object per interval with --json)
    #[argh(option, arg_name = "seconds")]
    pub summary: Option<String>,
    /// print what this kernel supports and which backend auto picks, then exit
    #[argh(switch)]
    pub check: bool,
    /// add to X rows the bytes the connection sent (acked) and received, in KiB, and its milliseconds since its C or A (TX_KB RX_KB MS, as bcc's tcplife)
    #[argh(switch, short = 'L')]
    pub lifetime: bool,
    /// print phase timings, each program's disassembly and verifier log on stderr
    #[argh(switch)]
    pub debug: bool,
}

/// The arguments, or exit: `--help` prints the usage, a bad argument
/// dies naming it.
pub fn parse() -> Args {
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

/// The tracer's configuration, or exit saying what is wrong.
pub fn config(args: &Args) -> Config {
    if args.ipv4 && args.ipv6 {
        die("-4 and -6 exclude each other: give one, or neither for both families");
    }
    if args.json {
        for (set, flag) in [
            (args.verbose, "-v"),
            (args.timestamp, "-t"),
            (args.print_uid, "-U"),
            (args.wide, "-w"),
            (args.lifetime, "-L"),
        ] {
            if set {
                die(format!("--json cannot be combined with {flag}: JSON lines carry every field"));
            }
        }
    }
    if let Some(s) = &args.summary {
        if let Err(e) = super::summary::parse_seconds(s) {
            die(format!("--summary: {e}"));
        }
        for (set, flag) in [
            (args.verbose, "-v"),
            (args.timestamp, "-t"),
            (args.print_uid, "-U"),
            (args.wide, "-w"),
            (args.lifetime, "-L"),
        ] {
            if set {
                die(format!("--summary cannot be combined with {flag}: it prints counts, not lines"));
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
        // (--lifetime: the namespace is part of a connection's key.)
        .netns_ids(args.json || args.verbose || args.lifetime)
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
pub fn queue_bytes(size: &str) -> Result<usize, String> {
    let n = tcptracer::tracer::builder::parse_size(size)?;
    if !(64 << 10..=4 << 30).contains(&n) {
        return Err(format!("invalid size {size:?}: the output queue takes 64K to 4G"));
    }
    Ok(n)
}
