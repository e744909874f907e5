//! Reading a running tracer: waiting, draining the rings in time order,
//! settling deferred closes, stopping.

use super::deferred::Deferred;
use super::error::Error;
use super::event::Event;
use super::handle::Tracer;
use super::order;
use super::{event, probes};
use crate::loader::kprobe;
use crate::transport::{self, Record, Wake};
use std::time::Instant;

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
/// (x86: the TSC read is not ordered with later loads without LFENCE;
/// arm64: the vDSO orders its counter read itself, ISB before it and a
/// dependency after it, so the SeqCst fence (DMB ISH) is all that is left).
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
