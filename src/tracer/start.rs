//! Starting a tracer: BTF, maps, the transport, the probes built, loaded
//! and attached.

use super::backend;
use super::config::{Backend, Config, CONNS_MIN};
use super::deferred::Deferred;
use super::drain::clock_ns;
use super::error::Error;
use super::handle::Tracer;
use super::order;
use super::{event, features, io, probes};
use crate::btf::Btf;
use crate::loader::attach::{self, BpfLink, PerfLink};
use crate::loader::kprobe::{self, Kprobe};
use crate::loader::map::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC};
use crate::loader::prog;
use crate::loader::tracefs::Tracefs;
use crate::loader::{Map, MapType, Prog, ProgSpec};
use crate::transport::{self, Counters, Transport};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Instant;

/// Most `conns` capacity by default.
const CONNS_DEFAULT_MAX: u32 = 1 << 22;

/// Closes deferred at once (see `deferred.rs`; each waits at most
/// `deferred::SETTLE_NS`).
pub const MARKS_MAX: u32 = 8192;

/// Connect calls in flight between kprobe and kretprobe.
pub const INFLIGHT_MAX: u32 = 4096;

impl Tracer {
    pub fn start(cfg: &Config) -> Result<Tracer, Error> {
        cfg.check().map_err(Error::Config)?;
        let t0 = Instant::now();
        let t0_mono = clock_ns(libc::CLOCK_MONOTONIC) as u64;
        crate::loader::raise_memlock();
        // The BTF is parsed in a thread while tracefs, the maps and the
        // rings, which do not need it, are set up.
        let (btf, setup, t_btf, t_setup) = std::thread::scope(|s| {
            let h = s.spawn(|| (load_btf(cfg), t0.elapsed()));
            let setup = Setup::new(cfg);
            let t_setup = t0.elapsed();
            let (btf, t_btf) = h.join().expect("btf thread");
            (btf, setup, t_btf, t_setup)
        });
        let (btf, kernel_btf) = btf?;
        let Setup { tracefs, stats, counters, transport, slot_fallback } = setup?;
        // Offsets come from `btf`; ids for attaching by BTF id must be the
        // running kernel's own, which differ when --btf names another file.
        let ids = if cfg.btf.is_some() { kernel_btf.as_ref() } else { Some(&btf) };
        let t_ready = t0.elapsed();
        // Hash maps the programs fill: not preallocated where the kernel
        // allows it for tracing programs (6.1+, with the BPF memory
        // allocator); before that the verifier warns (a kernel WARNING and
        // taint) on 5.7-6.0, or refuses (PREEMPT_RT). Made before the
        // feature checks: where BPF memory counts against RLIMIT_MEMLOCK
        // (before 5.11), running short shows here, not as a refused probe.
        let no_prealloc = ids.is_some_and(|b| b.find("bpf_mem_alloc", crate::btf::Kind::Struct).is_ok());
        let hash_flags = if no_prealloc { BPF_F_NO_PREALLOC } else { 0 };
        let max_conns = cfg.max_conns.unwrap_or_else(default_conns);
        let conns = Map::create_flags(
            MapType::Hash,
            "tcpt_conns",
            8,
            probes::CONN_VALUE_SIZE,
            max_conns,
            hash_flags,
        )?;
        let marks = Map::create_flags(MapType::Hash, "tcpt_marks", 8, 8, MARKS_MAX, hash_flags)?;
        let kind = match cfg.backend {
            Backend::Auto => features::pick(ids, &tracefs),
            b => b,
        };
        // `pick` has already checked what it picked, except its last resort.
        if cfg.backend != Backend::Auto || kind == Backend::Tracepoint {
            features::check(kind, ids, &tracefs).map_err(|why| Error::Unsupported { backend: kind, why })?;
        }
        let inflight = match kind {
            Backend::Kprobe => Some(Map::create(MapType::LruHash, "tcpt_inflight", 8, 8, INFLIGHT_MAX)?),
            _ => None,
        };
        let cx = backend::Context {
            btf: &btf,
            ids,
            tracefs: &tracefs,
            filters: &cfg.filters,
            maps: probes::MapFds {
                transport: transport.maps(),
                conns: conns.raw_fd(),
                marks: marks.raw_fd(),
                inflight: inflight.as_ref().map(Map::raw_fd),
                stats: stats.raw_fd(),
            },
        };
        let probes = backend::build(kind, &cx)?;
        drop(btf);
        drop(kernel_btf);
        if kind == Backend::Kprobe {
            let n = kprobe::remove_stale(&tracefs);
            debug_log(cfg, || format!("removed {n} kprobe_events entries of dead tracers"));
        }
        let t_build = t0.elapsed();
        for p in &probes {
            debug_log(cfg, || format!("program {} ({} insns):\n{}", p.name, p.program.len(), p.program));
        }
        // Each program is verified in a thread of its own (the verifier runs
        // on every CPU); they are attached one after the other, in probe
        // order (0.25-0.5 ms each when no recent detach makes the kernel
        // wait for an RCU grace period).
        let loaded: Result<Vec<(Prog, f64)>, Error> = std::thread::scope(|s| {
            let handles: Vec<_> = probes.iter().map(|p| s.spawn(move || load_probe(p))).collect();
            handles.into_iter().map(|h| h.join().expect("load thread")).collect()
        });
        let (mut bpf_links, mut perf_links, mut kprobes, mut progs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut loads = Vec::new();
        for (r, p) in loaded?.into_iter().zip(&probes) {
            let a = attach_probe(cfg, p, r, &tracefs)?;
            loads.push(format!("{} load {:.2} ms, attach {:.2} ms", p.name, a.load_ms, a.attach_ms));
            progs.push(a.prog);
            bpf_links.extend(a.bpf);
            perf_links.extend(a.perf);
            kprobes.extend(a.kprobes);
        }
        let t_attach = t0.elapsed();
        if cfg.debug {
            verifier_logs(&probes);
        }
        debug_log(cfg, || {
            format!("owner map: {max_conns} sockets, {}preallocated", if no_prealloc { "not " } else { "" })
        });
        debug_log(cfg, || format!("rings: {transport}"));
        debug_log(cfg, || {
            format!(
                "backend {}; phases: btf {:.2} ms, setup {:.2} ms, build {:.2} ms, load+attach {:.2} ms\n\
                 btf and setup (tracefs, maps, rings) run in parallel; so do the loads: {}",
                kind.name(),
                ms(t_btf),
                ms(t_setup),
                ms(t_build - t_ready),
                ms(t_attach - t_build),
                loads.join("; ")
            )
        });
        let rings = transport.ring_count();
        Ok(Tracer {
            _perf_links: perf_links,
            kprobes,
            _bpf_links: bpf_links,
            progs,
            _conns: conns,
            marks,
            _inflight: inflight,
            counters,
            _stats: stats,
            backend: kind,
            slots_per_cpu: transport.slots_per_cpu(),
            max_conns,
            slot_fallback,
            ring_pages: transport.pages(),
            transport,
            held: order::Reorder::default(),
            reorder_ns: cfg.reorder_ns,
            window_ns: cfg.reorder_ns,
            unfinished: Vec::new(),
            // Before any program was attached: no event is older.
            bounds: (0..rings).map(|_| order::SlotBound::new(t0_mono)).collect(),
            deferred: Deferred::default(),
            on_task: cfg.filters.on_task(),
            last_out: 0,
            late: 0,
            read: 0,
            handed_out: 0,
            unprintable: 0,
            undecodable: 0,
            kprobe_missed_at_detach: None,
        })
    }
}

fn debug_log(cfg: &Config, msg: impl FnOnce() -> String) {
    if cfg.debug {
        io::say(&msg());
    }
}

/// One probe's loaded program and attachments, and how long each took (ms).
struct Loaded {
    prog: Prog,
    bpf: Vec<BpfLink>,
    perf: Vec<PerfLink>,
    kprobes: Vec<Kprobe>,
    load_ms: f64,
    attach_ms: f64,
}

impl backend::Probe {
    fn spec(&self, want_log: bool) -> ProgSpec<'_> {
        ProgSpec {
            name: self.name,
            prog_type: self.prog_type,
            expected_attach_type: self.attach_type(),
            attach_btf_id: self.btf_id(),
            insns: self.program.insns(),
            want_log,
        }
    }
}

/// Load one probe's program (timed, in ms). A log makes the verifier
/// several times slower: these loads go without; --debug fetches the logs
/// afterwards (verifier_logs).
fn load_probe(p: &backend::Probe) -> Result<(Prog, f64), Error> {
    let t = Instant::now();
    let prog = prog::load(&p.spec(false))
        .map_err(|e| Error::Load { source: e, disasm: Some(p.program.to_string()) })?;
    Ok((prog, ms(t.elapsed())))
}

/// Attach a loaded probe everywhere it goes.
fn attach_probe(
    cfg: &Config,
    p: &backend::Probe,
    (prog, load_ms): (Prog, f64),
    tracefs: &Arc<Tracefs>,
) -> Result<Loaded, Error> {
    let t = Instant::now();
    let mut a =
        Loaded { prog, bpf: Vec::new(), perf: Vec::new(), kprobes: Vec::new(), load_ms, attach_ms: 0.0 };
    let prog = &a.prog;
    match &p.hook {
        backend::Hook::BtfId { .. } => a.bpf.push(attach::raw_tracepoint(prog, None, &p.what)?),
        backend::Hook::Tracepoints(tps) => {
            for (cat, name) in tps {
                a.perf.push(attach::tracepoint(tracefs, prog, cat, name)?);
            }
        }
        backend::Hook::Kprobes(fns) => {
            for (func, ret) in fns {
                a.kprobes.push(kprobe::attach(prog, func, *ret, tracefs, cfg.kprobe_tracefs)?);
            }
        }
    }
    a.attach_ms = ms(t.elapsed());
    Ok(a)
}

/// `--debug`: load each program once more, with a log, and print the log.
fn verifier_logs(probes: &[backend::Probe]) {
    for p in probes {
        match prog::load(&p.spec(true)) {
            Ok(prog) => io::say(&format!("verifier log for {}:\n{}", p.name, prog.log.trim_end())),
            Err(e) => io::say(&format!("verifier log for {}: {e}", p.name)),
        }
    }
}

/// `conns` capacity by default: four times the TCP sockets allocated now
/// (`/proc/net/sockstat`), at least [`CONNS_MIN`].
fn default_conns() -> u32 {
    let text = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let alloc = sockstat_tcp_alloc(&text).unwrap_or(0);
    alloc.saturating_mul(4).clamp(u64::from(CONNS_MIN), u64::from(CONNS_DEFAULT_MAX)) as u32
}

/// The `alloc` count of the `TCP:` line of `/proc/net/sockstat`.
fn sockstat_tcp_alloc(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("TCP:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "alloc")?;
    words.get(at + 1)?.parse().ok()
}

/// The kernel BTF (or `--btf`'s, with the running kernel's for attach ids),
/// with the types the probes use indexed.
fn load_btf(cfg: &Config) -> Result<(Btf, Option<Btf>), Error> {
    let btf = match &cfg.btf {
        Some(p) => Btf::from_file_finding(p, backend::BTF_NAMES)?,
        None => Btf::kernel_finding(backend::BTF_NAMES)?,
    };
    let kernel_btf = if cfg.btf.is_some() { Btf::kernel_finding(backend::BTF_NAMES).ok() } else { None };
    Ok((btf, kernel_btf))
}

/// What every backend needs besides the BTF.
struct Setup {
    tracefs: Arc<Tracefs>,
    stats: Map,
    counters: Counters,
    transport: Transport,
    /// Why slot rings could not be set up (perf rings carry the events).
    slot_fallback: Option<String>,
}

impl Setup {
    fn new(cfg: &Config) -> Result<Setup, Error> {
        // Privileges first: without them every later check fails for that reason.
        drop(Map::create(MapType::Array, "tcpt_probe", 4, 4, 1)?);
        let tracefs = Arc::new(Tracefs::open()?);
        // The CPUs that can run (per-CPU arrays are indexed by CPU id).
        let cpus = transport::present_cpu_count()?;
        let stats = Map::create_flags(
            MapType::Array,
            "tcpt_stats",
            4,
            probes::STATS_VALUE_SIZE,
            cpus,
            BPF_F_MMAPABLE,
        )?;
        let counters =
            Counters::open(stats.as_fd(), cpus, probes::STATS_VALUE_SIZE as usize, transport::page_size())?;
        let opts = transport::Options {
            ring_pages: cfg.ring_pages,
            watermark: cfg.watermark,
            ringbuf: cfg.ringbuf,
            perf_rings: cfg.perf_rings,
            event_size: event::EVENT_SIZE,
        };
        let chosen = Transport::open(&opts, cpus)?;
        Ok(Setup {
            tracefs,
            stats,
            counters,
            transport: chosen.transport,
            slot_fallback: chosen.slot_fallback,
        })
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
