//! A running tracer: what it holds, and what it counts.

use super::config::Backend;
use super::deferred::{self, Deferred};
use super::event::Event;
use super::order;
use super::probes;
use crate::loader::attach::{BpfLink, PerfLink};
use crate::loader::kprobe::{self, Kprobe};
use crate::loader::{Map, Prog};
use crate::transport::{self, Counters, Transport};
use std::os::fd::AsFd;

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
    /// Events dropped because their socket showed no port (not expected).
    pub no_port: u64,
    /// Program runs the kernel skipped (a program firing while it or, for
    /// kprobe and tracepoint programs, any such program already runs on the
    /// CPU). Not counted as lost events: most runs are state changes that
    /// emit nothing; a run that would have emitted one leaves it missing.
    pub recursion_misses: u64,
    /// kprobe hits the kernel skipped (tracefs kprobes: `kprobe_profile`;
    /// PMU kprobes from 6.6: their link's count). Counted like
    /// `recursion_misses`.
    pub kprobe_missed: u64,
    /// Closes that could not be deferred (the marks map was full, or a mark
    /// could not be deleted): they went out at once, so one racing an
    /// accept may show its owner unknown (or, rarely, twice).
    pub undeferred: u64,
}

impl KernelLosses {
    /// Events known to be lost in the kernel, other than to a full ring.
    pub fn total(&self) -> u64 {
        self.output_failed + self.untracked + self.no_port
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
    pub(super) _perf_links: Vec<PerfLink>,
    pub(super) kprobes: Vec<Kprobe>,
    pub(super) _bpf_links: Vec<BpfLink>,
    pub(super) progs: Vec<Prog>,
    pub(super) _conns: Map,
    pub(super) marks: Map,
    pub(super) _inflight: Option<Map>,
    pub(super) counters: Counters,
    pub(super) _stats: Map,
    /// The rings, their maps and the epoll set.
    pub(super) transport: Transport,
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
    pub(super) held: order::Reorder,
    pub(super) reorder_ns: u64,
    /// The window the last drain pass used: `reorder_ns`, or 0 when no
    /// output was in flight (perf rings, ring buffer).
    pub(super) window_ns: u64,
    /// Per ring: records remain after this pass / last stamp read.
    pub(super) unfinished: Vec<(bool, u64)>,
    /// Slot rings, per ring: no event still unread is older (see `order`).
    pub(super) bounds: Vec<order::SlotBound>,
    pub(super) deferred: Deferred,
    /// Task filters are set: an X of an unknown owner passes none.
    pub(super) on_task: bool,
    /// Newest stamp handed out, and events handed out after a newer one.
    pub(super) last_out: u64,
    pub(super) late: u64,
    /// Events read from the rings, handed out, and settled closes not
    /// printable (their task unknown under a task filter): see
    /// [`Tracer::unaccounted`].
    pub(super) read: u64,
    pub(super) handed_out: u64,
    pub(super) unprintable: u64,
    /// Records read that held no event (never expected: counted as lost).
    pub(super) undecodable: u64,
    /// kprobe hits missed, as counted when the kprobes were detached.
    pub(super) kprobe_missed_at_detach: Option<u64>,
}

impl Tracer {
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
            no_port: c.sum(probes::STAT_NO_PORT),
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
