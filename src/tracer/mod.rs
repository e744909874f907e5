//! The tracer: build the probes for a backend, load and attach them, and
//! hand out decoded events.

pub mod backend;
pub mod builder;
pub mod check;
pub mod config;
pub mod deferred;
pub mod error;
pub mod event;
pub mod features;
pub mod io;
pub mod offsets;
pub mod order;
pub mod probes;

use crate::btf::Btf;
use crate::loader::attach::{self, BpfLink, PerfLink};
use crate::loader::kprobe::{self, Kprobe};
use crate::loader::map::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC};
use crate::loader::prog;
use crate::loader::tracefs::Tracefs;
use crate::loader::{Map, MapType, Prog, ProgSpec};
use crate::transport::{self, Counters, Record, Transport, Wake};
pub use config::{Backend, Config, Filters, CONNS_MIN, DEFAULT_RING_BYTES};
use deferred::Deferred;
pub use error::Error;
use event::Event;
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

/// Events the kernel side lost, by cause (cumulative counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelLosses {
    /// An output failed (other than a full perf ring, which perf reports
    /// itself in the ring).
    pub output_failed: u64,
    /// A slot ring or the ring buffer was full.
    pub ring_full: u64,
    /// A socket could not be recorded in `conns` (its C or softirq X is lost).
    pub untracked: u64,
    /// Program runs the kernel skipped (a program firing while it or, for
    /// kprobe and tracepoint programs, any such program already runs on the
    /// CPU). Not counted as lost events: most runs are state changes that
    /// emit nothing; a run that would have emitted one leaves it missing.
    pub recursion_misses: u64,
    /// kprobe hits the kernel skipped (tracefs kprobes: `kprobe_profile`;
    /// PMU kprobes from 6.6: their link's count). Counted like
    /// `recursion_misses`.
    pub kprobe_missed: u64,
    /// Closes that could not be deferred (the marks map was full): they went
    /// out at once, so one racing an accept may show its owner unknown.
    pub undeferred: u64,
}

impl KernelLosses {
    /// Events known to be lost in the kernel, other than to a full ring.
    pub fn total(&self) -> u64 {
        self.output_failed + self.untracked
    }

    /// Program runs the kernel skipped, by any cause.
    pub fn skipped(&self) -> u64 {
        self.recursion_misses + self.kprobe_missed
    }
}

/// A running tracer. Dropping it detaches every probe first, then frees
/// every map and ring: whatever it has not handed out (events still in the
/// rings, held for time order, closes deferred) is discarded, deliberately
/// (a drop may come from a panic or an error path). [`Tracer::stop`]
/// detaches and hands all of it out.
pub struct Tracer {
    // Field order is drop order: links first, then programs, maps, reader.
    _perf_links: Vec<PerfLink>,
    kprobes: Vec<Kprobe>,
    _bpf_links: Vec<BpfLink>,
    progs: Vec<Prog>,
    _conns: Map,
    marks: Map,
    _inflight: Option<Map>,
    counters: Counters,
    _stats: Map,
    /// The rings, their maps and the epoll set.
    transport: Transport,
    pub backend: Backend,
    /// Pages per perf ring: `Config::ring_pages`, or fewer where the
    /// locked-memory limit did not allow that many. With the ring buffer:
    /// its size in pages.
    pub ring_pages: usize,
    /// Sockets `conns` can hold (see `Config::max_conns`).
    pub max_conns: u32,
    /// Why slot rings could not be had, where perf rings carry the events
    /// in their place.
    pub slot_fallback: Option<String>,
    /// Slots per CPU with slot rings.
    pub slots_per_cpu: Option<u32>,
    held: order::Reorder,
    reorder_ns: u64,
    /// The window the last drain pass used: `reorder_ns`, or 0 when no
    /// output was in flight (perf rings, ring buffer).
    window_ns: u64,
    /// Per ring: records remain after this pass / last stamp read.
    unfinished: Vec<(bool, u64)>,
    /// Slot rings, per ring: no event still unread is older (see `order`).
    bounds: Vec<order::SlotBound>,
    deferred: Deferred,
    /// Task filters are set: an X of an unknown owner passes none.
    on_task: bool,
    /// Newest stamp handed out, and events handed out after a newer one.
    last_out: u64,
    late: u64,
    /// Events read from the rings, handed out, and settled closes not
    /// printable (their task unknown under a task filter): see
    /// [`Tracer::unaccounted`].
    read: u64,
    handed_out: u64,
    unprintable: u64,
    /// Records read that held no event (never expected: counted as lost).
    undecodable: u64,
    /// kprobe hits missed, as counted when the kprobes were detached.
    kprobe_missed_at_detach: Option<u64>,
}

/// Longest wait while events are held for ordering, in ms.
pub const HELD_WAIT_MS: i32 = 10;

/// Records read from one ring per pass before the others are read.
const PER_PASS: usize = 1024;
/// Passes per drain (64 Ki records per ring: several full rings).
const MAX_PASSES: usize = 64;
/// Slot rings: longest an event is held for a ring whose reserved slot
/// stays unwritten (its program stalled, e.g. a descheduled vCPU); past it,
/// events are handed out and that one comes late (counted).
const SLOT_STALL_NS: u64 = 1_000_000_000;

/// `clock`'s time in ns (CLOCK_MONOTONIC is what `bpf_ktime_get_ns` stamps).
#[allow(clippy::unnecessary_cast)] // time_t and c_long are i32 on some targets
pub(crate) fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64
}

/// CLOCK_MONOTONIC in ns, read before any memory access that follows
/// (x86: the TSC read is not ordered with later loads without LFENCE).
/// A program stamps an event after reserving its slot: a slot found
/// unreserved after this clock will be stamped later than it.
fn clock_before_loads() -> u64 {
    let now = clock_ns(libc::CLOCK_MONOTONIC) as u64;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: LFENCE has no preconditions.
    unsafe {
        std::arch::x86_64::_mm_lfence()
    };
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    now
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

impl Tracer {
    /// Wait up to `timeout_ms` (-1: without end) until events are handed
    /// out, then hand out what is ready; returns the samples reported lost
    /// (full rings) in this call. It also returns when a fd added with
    /// [`Tracer::add_wake_fd`] is readable or a signal interrupts it. The
    /// rings wake a reader only when they fill past their watermark; below
    /// it this polls them, every 1 ms backing off to 100 ms, so a trickle
    /// is handed out too.
    pub fn poll(&mut self, timeout_ms: i32, on_event: &mut dyn FnMut(&Event)) -> Result<u64, Error> {
        let start = Instant::now();
        let (mut lost, mut step) = (0, 1);
        loop {
            let left = match timeout_ms {
                t if t < 0 => step,
                t => (i64::from(t) - start.elapsed().as_millis() as i64).clamp(0, step.into()) as i32,
            };
            let wake = self.wait(left)?;
            let n = self.drain(on_event, &mut |n| lost += n)?;
            let ended = timeout_ms >= 0 && start.elapsed().as_millis() >= timeout_ms as u128;
            if n > 0 || lost > 0 || ended || matches!(wake, Wake::Woken | Wake::Interrupted) {
                return Ok(lost);
            }
            step = (step * 2).min(100);
        }
    }

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

    /// Register an fd (e.g. an eventfd written by a signal handler) that
    /// ends a [`Tracer::wait`].
    pub fn add_wake_fd(&mut self, fd: std::os::fd::BorrowedFd) -> Result<(), Error> {
        Ok(self.transport.add_wake_fd(fd)?)
    }

    /// Register an fd whose error or hang-up ends a [`Tracer::wait`] (e.g.
    /// stdout, a pipe whose reader may go away). Fails for regular files.
    pub fn add_error_fd(&mut self, fd: std::os::fd::BorrowedFd) -> Result<(), Error> {
        Ok(self.transport.add_error_fd(fd)?)
    }

    /// Wait up to `timeout_ms` for the rings to pass their watermark; while
    /// events are held, at most until they may be handed out
    /// ([`Tracer::next_release_ms`]).
    pub fn wait(&mut self, timeout_ms: i32) -> Result<Wake, Error> {
        let mut timeout = timeout_ms;
        if let Some(ms) = self.next_release_ms() {
            timeout = if timeout < 0 { ms } else { timeout.min(ms) };
        }
        Ok(self.transport.wait(timeout)?)
    }

    /// Drain the rings: `on_event` per event, in time order across CPUs,
    /// `on_lost` per lost-record. Returns the events handed out.
    ///
    /// Slot rings give exact order: a program stamps its event after
    /// reserving its slot, so a position a ring had not reserved when a
    /// pass read the clock (then the ring's head) is stamped later than
    /// that clock; and a position after the last one read is stamped after
    /// the clock that record's program read before reserving. The later of
    /// the two bounds the stamps still unread on a ring (`order::SlotBound`);
    /// events older than the oldest bound of all rings are handed out.
    /// (A slot reserved and left unwritten for over [`SLOT_STALL_NS`] stops
    /// holding the others back; its event then comes late, counted in
    /// [`Tracer::late`].) Perf rings and the ring buffer hold events for
    /// `Config::reorder_ns` while any output is between its stamp and its
    /// commit (an output stalled longer comes late).
    ///
    /// A close deferred by the programs (its owner unknown: an accept may
    /// be taking it) holds every later event until an accept claims it
    /// (its X comes) or `deferred::SETTLE_NS` passed.
    pub fn drain(
        &mut self,
        on_event: &mut dyn FnMut(&Event),
        on_lost: &mut dyn FnMut(u64),
    ) -> Result<usize, Error> {
        if self.transport.exact_order() {
            return Ok(self.drain_slots(on_event));
        }
        let rings = self.transport.ring_count();
        self.unfinished.clear();
        self.unfinished.resize(rings, (true, 0));
        let (mut out, mut err) = (0, None);
        // Bounded: a ring refilled as fast as it is read waits for the next drain.
        for _ in 0..MAX_PASSES {
            // Read per pass: a ring refilled while it is read keeps the
            // drain going, and what it held back would pile up.
            let now = clock_before_loads();
            // No output between stamp and commit (read after `now`, before
            // the rings): every event stamped before `now` is in a ring.
            self.window_ns = if self.counters.sum(probes::STAT_IN_FLIGHT) == 0 { 0 } else { self.reorder_ns };
            for i in 0..rings {
                let (more, last) = &mut self.unfinished[i];
                if !*more {
                    continue;
                }
                let (held, deferred, bad) = (&mut self.held, &mut self.deferred, &mut self.undecodable);
                let read = &mut self.read;
                let r = self.transport.drain(i, PER_PASS, &mut |r| match r {
                    Record::Sample(b) => match take(held, deferred, b) {
                        Some(ts) => {
                            *last = ts;
                            *read += 1;
                        }
                        None => *bad += 1,
                    },
                    Record::Lost(n) => on_lost(n),
                });
                *more = match r {
                    Ok(d) => d.more,
                    Err(e) => {
                        err.get_or_insert(e);
                        false
                    }
                };
            }
            let busy = self.unfinished.iter().filter(|(more, _)| *more).map(|&(_, last)| last);
            let cutoff = order::cutoff(now, busy, self.window_ns);
            out += self.settle_and_release(now, cutoff, on_event);
            if !self.unfinished.iter().any(|(more, _)| *more) {
                break;
            }
        }
        match err {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }

    /// [`Tracer::drain`] for slot rings.
    fn drain_slots(&mut self, on_event: &mut dyn FnMut(&Event)) -> usize {
        let mut out = 0;
        for _ in 0..MAX_PASSES {
            let now = clock_before_loads();
            let (mut more, mut bound) = (false, now);
            for i in 0..self.bounds.len() {
                let (held, deferred, bad) = (&mut self.held, &mut self.deferred, &mut self.undecodable);
                let read = &mut self.read;
                let d = self.transport.drain(i, PER_PASS, &mut |r| {
                    if let Record::Sample(b) = r {
                        match take(held, deferred, b) {
                            Some(_) => *read += 1,
                            None => *bad += 1,
                        }
                    }
                });
                // Slot rings report positions and no errors.
                let Ok(transport::Drained { positions: Some(p), more: m, .. }) = d else { return out };
                bound = bound.min(self.bounds[i].update(now, p.head, p.tail, p.reserved_after));
                more |= m;
            }
            let bound = bound.max(now.saturating_sub(SLOT_STALL_NS));
            out += self.settle_and_release(now, bound.saturating_sub(1), on_event);
            if !more {
                break;
            }
        }
        out
    }

    /// Settle deferred closes that waited long enough, then hand out held
    /// events stamped at or before `cutoff` and before any deferred close.
    fn settle_and_release(&mut self, now: u64, cutoff: u64, on_event: &mut dyn FnMut(&Event)) -> usize {
        let (on_task, held, unprintable) = (self.on_task, &mut self.held, &mut self.unprintable);
        self.deferred.settle(now, false, &self.marks, &mut |e| {
            if printable(on_task, &e) {
                held.push(e);
            } else {
                *unprintable += 1;
            }
        });
        self.deferred.sweep(now, &self.marks);
        let cutoff = match self.deferred.oldest(|e| printable(on_task, e)) {
            Some(t) => cutoff.min(t.saturating_sub(1)),
            None => cutoff,
        };
        self.release(cutoff, on_event)
    }

    /// Hand out held events stamped at or before `cutoff`, counting those
    /// that come after a newer one.
    fn release(&mut self, cutoff: u64, on_event: &mut dyn FnMut(&Event)) -> usize {
        let (last, late) = (&mut self.last_out, &mut self.late);
        let n = self.held.release(cutoff, &mut |e| {
            if e.ts_ns < *last {
                *late += 1;
            } else {
                *last = e.ts_ns;
            }
            on_event(e)
        });
        self.handed_out += n as u64;
        n
    }

    /// Events read from the rings and neither handed out, nor claimed (a
    /// deferred close whose accept reported it), nor settled unprintable,
    /// nor still held: 0 unless the reader has a bug. (Settled closes
    /// come from events read, one each.)
    pub fn unaccounted(&self) -> i64 {
        let kept = self.held.len() + self.deferred.pending();
        let d = &self.deferred.stats;
        self.read as i64 - (self.handed_out + d.by_accept + self.unprintable + kept as u64) as i64
    }

    /// Deferred closes dropped as claimed by an accept (the first 64).
    pub fn claimed_closes(&self) -> &[Event] {
        &self.deferred.claimed
    }

    /// In how many ms (1 to 100) held events may be handed out or a
    /// deferred close settles; `None` when nothing is held. A reader that
    /// has nothing else to wait for can sleep exactly that long.
    pub fn next_release_ms(&self) -> Option<i32> {
        let now = clock_ns(libc::CLOCK_MONOTONIC) as u64;
        let blocked = self.deferred.oldest(|e| printable(self.on_task, e));
        let held = self.held.oldest().filter(|&t| blocked.is_none_or(|b| t < b));
        let exact = self.transport.exact_order();
        let held_due = held.map(|t| if exact { now } else { t.saturating_add(self.window_ns) });
        let due = [held_due, self.deferred.due()].into_iter().flatten().min()?;
        Some(due.saturating_sub(now).div_ceil(1_000_000).clamp(1, 100) as i32)
    }

    /// Detach every probe, then hand out every event the rings still hold,
    /// held events and deferred closes (see [`Tracer::flush`]). Events
    /// committed after the last drain before a plain drop would be
    /// discarded; after this, none are left but ones never committed
    /// ([`Tracer::outputs_in_flight`]).
    pub fn stop(
        &mut self,
        on_event: &mut dyn FnMut(&Event),
        on_lost: &mut dyn FnMut(u64),
    ) -> Result<usize, Error> {
        self.detach();
        let mut out = 0;
        // A program that ran as we detached commits within microseconds.
        let t = Instant::now();
        loop {
            out += self.drain(on_event, on_lost)?;
            if self.outputs_in_flight() == Some(0) || t.elapsed() > std::time::Duration::from_millis(20) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        Ok(out + self.flush(on_event))
    }

    /// Detach every probe (programs and maps stay until dropped).
    pub fn detach(&mut self) {
        if self.kprobe_missed_at_detach.is_none() {
            self.kprobe_missed_at_detach = Some(kprobe::missed(&self.kprobes));
        }
        self._perf_links.clear();
        self.kprobes.clear();
        self._bpf_links.clear();
    }

    /// Hand out every held event and every deferred close not claimed by an
    /// accept (at the end of tracing).
    pub fn flush(&mut self, on_event: &mut dyn FnMut(&Event)) -> usize {
        let (on_task, held, unprintable) = (self.on_task, &mut self.held, &mut self.unprintable);
        let now = clock_ns(libc::CLOCK_MONOTONIC) as u64;
        self.deferred.settle(now, true, &self.marks, &mut |e| {
            if printable(on_task, &e) {
                held.push(e);
            } else {
                *unprintable += 1;
            }
        });
        self.release(u64::MAX, on_event)
    }

    /// Records read that held no event (torn or corrupt): counted as lost.
    pub fn undecodable(&self) -> u64 {
        self.undecodable
    }

    /// X reported when the socket was destroyed: the kernel had skipped the
    /// run for its closing move.
    pub fn closes_at_destroy(&self) -> u64 {
        self.counters.sum(probes::STAT_CLOSE_AT_DESTROY)
    }

    /// Closes the programs deferred, and how each was settled.
    pub fn deferred_stats(&self) -> deferred::DeferredStats {
        self.deferred.stats
    }

    /// Most events held at once (for ordering).
    pub fn max_held(&self) -> usize {
        self.held.max_len()
    }

    /// Events handed out after a newer one (a program stalled between its
    /// stamp and its commit longer than ordering waits).
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Whether every kprobe's missed hits are counted in
    /// [`KernelLosses::kprobe_missed`] (PMU kprobes: from 6.6; tracefs
    /// kprobes: always). True for backends without kprobes.
    pub fn kprobe_misses_counted(&self) -> bool {
        self.kprobes.iter().all(kprobe::counts_missed)
    }

    /// Which transport carries the events (see `crate::transport`).
    pub fn transport(&self) -> transport::Kind {
        self.transport.kind()
    }

    /// Outputs stamped but not yet committed, on all CPUs (`None`: unknown);
    /// with slot rings, slots reserved and not yet read.
    pub fn outputs_in_flight(&mut self) -> Option<u64> {
        if let Some(n) = self.transport.unread() {
            return Some(n);
        }
        Some(self.counters.sum(probes::STAT_IN_FLIGHT))
    }

    /// What the kernel side lost so far (cumulative).
    pub fn kernel_losses(&self) -> KernelLosses {
        let c = &self.counters;
        KernelLosses {
            output_failed: c.sum(probes::STAT_OUTPUT_FAILED),
            ring_full: c.sum(probes::STAT_RING_FULL),
            untracked: c.sum(probes::STAT_CONN_UPDATE_FAILED),
            recursion_misses: self.prog_stats().iter().map(|p| p.recursion_misses).sum(),
            kprobe_missed: self.kprobe_missed_at_detach.unwrap_or_else(|| kprobe::missed(&self.kprobes)),
            undeferred: c.sum(probes::STAT_MARK_FAILED),
        }
    }

    /// Each program's kernel run statistics (run_cnt and run_time_ns count
    /// only while `kernel.bpf_stats_enabled` is 1).
    pub fn prog_stats(&self) -> Vec<crate::loader::info::ProgInfo> {
        self.progs.iter().filter_map(|p| crate::loader::info::prog_info(p.as_fd()).ok()).collect()
    }
}

/// Whether a deferred close would pass the filters once printed: an
/// unknown owner passes no task filter.
fn printable(on_task: bool, e: &Event) -> bool {
    !(on_task && e.pid == 0)
}

/// Decode a sample into `held` (or, a deferred close, into `deferred`);
/// its stamp, if it was an event.
fn take(held: &mut order::Reorder, deferred: &mut Deferred, b: &[u8]) -> Option<u64> {
    let e = Event::decode(b)?;
    if Event::is_pending(b) {
        deferred.add(e);
    } else {
        if e.kind == Some(event::Kind::Close) {
            deferred.closed(e.sock);
        }
        held.push(e);
    }
    Some(e.ts_ns)
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
