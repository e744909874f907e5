//! What a tracer is asked to do: the backend, the filters, ring sizes, and
//! the checks that refuse values the kernel would silently never match.

use std::path::PathBuf;

/// Which hooks to use (see `backend.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The best the kernel offers: fentry, then kprobe, then tracepoint.
    Auto,
    /// `sock:inet_sock_set_state` (BTF tracepoint) + `syscalls:sys_exit_accept{,4}`.
    Tracepoint,
    /// kprobes on `tcp_v{4,6}_connect` (entry and return) and `tcp_set_state`.
    Kprobe,
    /// fentry/fexit on the same functions, through BPF trampolines.
    Fentry,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Tracepoint => "tracepoint",
            Backend::Kprobe => "kprobe",
            Backend::Fentry => "fentry",
        }
    }

    pub fn from_name(s: &str) -> Option<Backend> {
        [Backend::Auto, Backend::Tracepoint, Backend::Kprobe, Backend::Fentry]
            .into_iter()
            .find(|b| b.name() == s)
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub filters: Filters,
    pub backend: Backend,
    /// BTF file to read instead of /sys/kernel/btf/vmlinux.
    pub btf: Option<PathBuf>,
    /// Print phase timings, disassembly and verifier logs on stderr.
    pub debug: bool,
    /// Ring memory per CPU, in pages: a slot ring of as many 128-byte slots
    /// or a perf ring of as many pages (each rounded down to a power of
    /// two); the ring buffer has this many per online CPU, in one ring.
    pub ring_pages: usize,
    /// One BPF ring buffer (5.8+) instead of per-CPU rings: not the
    /// default, its one lock makes programs slower with several producing
    /// CPUs (see docs/decisions.md, "ring buffer"). Where the kernel has no
    /// ring buffer, per-CPU rings are used.
    pub ringbuf: bool,
    /// Per-CPU perf rings even where the kernel can run slot rings (the
    /// default from 5.12, faster per program run: see `transport/slots/` and
    /// docs/decisions.md, "slot rings").
    pub perf_rings: bool,
    /// Bytes in a ring before the reader is woken; 0: an eighth of the
    /// ring. Each wake-up costs the producing CPU an interrupt (an exit on
    /// a VM), so it should be rare; half the ring made the state program
    /// fire inside itself under churn (see docs/decisions.md, "watermark").
    pub watermark: u32,
    /// Attach kprobes through tracefs `kprobe_events` even where the kprobe
    /// PMU exists (the path older kernels take).
    pub kprobe_tracefs: bool,
    /// Perf rings and the ring buffer: events are held this long (ns) so
    /// that events from all CPUs come out in time order; 0 sorts each drain
    /// only. (Slot rings need no window: see `Tracer::drain`.)
    pub reorder_ns: u64,
    /// Sockets the probes can track at once (connecting, or owned for an X
    /// in softirq); `None`: four times the TCP sockets allocated at start,
    /// at least [`CONNS_MIN`]. When full, a socket is not tracked and that
    /// is reported as a loss.
    pub max_conns: Option<u32>,
}

/// Ring memory per CPU by default: 2 MiB (16384 slots of a slot ring);
/// less lost events in the soak (see docs/decisions.md, "ring size").
pub const DEFAULT_RING_BYTES: usize = 2 << 20;

/// Least `conns` capacity by default (see `Config::max_conns`).
pub const CONNS_MIN: u32 = 65536;

impl Default for Config {
    fn default() -> Config {
        Config {
            filters: Filters::default(),
            backend: Backend::Auto,
            btf: None,
            debug: false,
            ring_pages: DEFAULT_RING_BYTES / 4096,
            ringbuf: false,
            perf_rings: false,
            watermark: 0,
            kprobe_tracefs: false,
            reorder_ns: 2_000_000,
            max_conns: None,
        }
    }
}

/// Most ports `Filters::ports` may hold.
pub const MAX_PORTS: usize = 16;

/// What the probes filter on (all in the kernel; filters combine with AND)
/// and what they report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    /// Process id (tgid).
    pub pid: Option<u32>,
    /// Network namespace inode number.
    pub netns: Option<u32>,
    /// 4 or 6: sockets of that family only.
    pub family: Option<u8>,
    pub uid: Option<u32>,
    /// cgroup v2 id (the cgroup directory's inode number).
    pub cgroup: Option<u64>,
    /// Either side's port is one of these (at most [`MAX_PORTS`]).
    pub ports: Vec<u16>,
    /// COMM, NUL-padded (at most 15 bytes of name).
    pub comm: Option<[u8; 16]>,
    /// Also report connects that never established (kind F, with sk_err).
    pub failed: bool,
    /// Fill uid, gid and cgroup in events (two more helper calls per
    /// recorded task); implied by the uid and cgroup filters.
    pub task_ids: bool,
    /// Leave the events' netns 0: two kernel reads less per event, about
    /// 50 ns here. Ignored with the netns filter.
    pub no_netns: bool,
    /// Tests only: the state program ignores the closing moves outside
    /// process context of connections with this local or remote port, as
    /// if the kernel had skipped those runs (their X then comes from
    /// `destroy.rs`).
    pub skip_close_port: Option<u16>,
}

impl Filters {
    /// Whether any filter on the event's task is set (an unknown owner
    /// never passes one).
    pub fn on_task(&self) -> bool {
        self.pid.is_some() || self.uid.is_some() || self.cgroup.is_some() || self.comm.is_some()
    }

    /// Whether the programs fill uid, gid and cgroup.
    pub(crate) fn ids(&self) -> bool {
        self.task_ids || self.uid.is_some() || self.cgroup.is_some()
    }

    /// Whether the programs read the socket's network namespace.
    pub(crate) fn reads_netns(&self) -> bool {
        !self.no_netns || self.netns.is_some()
    }
}

/// Least and most ring memory per CPU (`-b`).
pub const MIN_RING_BYTES: usize = 4 << 10;
pub const MAX_RING_BYTES: usize = 512 << 20;

/// Most sockets `--max-conns` may ask for (the map's elements are ~100
/// bytes of kernel memory each).
pub const MAX_CONNS: u32 = 1 << 24;

impl Config {
    /// Refuse values the kernel would silently never match; `Err` says
    /// which, in one line (the tracer's `Error::Config`).
    pub fn check(&self) -> Result<(), String> {
        let f = &self.filters;
        if let Some(p) = f.pid {
            if p == 0 || p > 4_194_304 {
                return Err(format!("invalid PID {p}: must be between 1 and 4194304"));
            }
        }
        if f.netns == Some(0) {
            return Err(
                "invalid NETNS 0: give the inode number of a network namespace (ls -Li /proc/PID/ns/net)"
                    .into(),
            );
        }
        if let Some(ip) = f.family.filter(|&ip| ip != 4 && ip != 6) {
            return Err(format!("invalid IP family {ip}: must be 4 or 6"));
        }
        if f.uid == Some(u32::MAX) {
            return Err("invalid UID 4294967295: that is the kernel's \"no user\" id".into());
        }
        if f.cgroup == Some(0) {
            return Err("invalid cgroup id 0".into());
        }
        if f.ports.len() > MAX_PORTS {
            return Err(format!("too many ports: at most {MAX_PORTS}"));
        }
        if f.ports.contains(&0) {
            return Err("invalid port 0: must be between 1 and 65535".into());
        }
        let page = crate::transport::page_size();
        if self.ring_pages < MIN_RING_BYTES / page || self.ring_pages > MAX_RING_BYTES / page {
            return Err(format!(
                "invalid buffer size {} KiB per CPU: must be between {} KiB and {} MiB",
                self.ring_pages * page / 1024,
                MIN_RING_BYTES / 1024,
                MAX_RING_BYTES >> 20
            ));
        }
        if self.max_conns.is_some_and(|n| n == 0 || n > MAX_CONNS) {
            return Err(format!("invalid --max-conns: must be between 1 and {MAX_CONNS}"));
        }
        Ok(())
    }
}
