//! Deferred X (see `probes/owner.rs`): a close found without an owner is
//! marked in the kernel (`marks`, keyed by the socket's identity) and sent
//! here as `KIND_PENDING`. It is held, and every event stamped after it,
//! until an X names the same socket (an accept claimed the close and
//! reported it after its A) or [`SETTLE_NS`] passed: then we claim the mark
//! ourselves (deleting it: only one side can) and print the X as it came,
//! in its place. A mark whose pending event was lost (a full ring) is
//! swept after two sweeps of seeing it; should its pending X come after
//! all (a reader late by a sweep), the sweep deleted the mark, so the X is
//! ours to print: swept keys are remembered for that.

use super::event::{Event, Kind};
use crate::loader::Map;
use std::collections::VecDeque;

/// The kernel's `marks` map as the settling needs it (a set in tests).
pub trait Marks {
    /// Delete `key`: true if it was there (and so is ours now).
    fn take(&self, key: u64) -> bool;
    /// The keys present (None: could not be read).
    fn keys(&self) -> Option<Vec<u64>>;
}

impl Marks for Map {
    fn take(&self, key: u64) -> bool {
        matches!(self.delete(&key.to_ne_bytes()), Ok(true))
    }
    fn keys(&self) -> Option<Vec<u64>> {
        let keys = Map::keys(self).ok()?;
        Some(keys.iter().filter_map(|k| Some(u64::from_ne_bytes(k[..].try_into().ok()?))).collect())
    }
}

/// How long a deferred X waits for an accept to claim it: the time from
/// the socket's graft in `accept()` to the syscall's return, with room for
/// the accepting task to be preempted. Connections older than the tracer
/// closed without their owner print this much later.
pub const SETTLE_NS: u64 = 100_000_000;
/// How often marks are swept for ones nothing will settle.
const SWEEP_NS: u64 = 1_000_000_000;

#[derive(Debug, Default)]
pub struct Deferred {
    /// Pending X (kind already `Close`), oldest first as they came.
    pending: Vec<Event>,
    /// Mark keys seen at the last sweep.
    seen: Vec<u64>,
    last_sweep: u64,
    /// Counts: closes deferred to us, claimed by an accept, settled here
    /// (printed or not), marks swept (their X was lost on its way here).
    pub stats: DeferredStats,
    /// Sockets of the last [`RECENT`] X (the X of a claimed close may come
    /// before the pending one: they come through different rings).
    recent: VecDeque<u64>,
    /// Keys of the last [`RECENT`] marks the sweep deleted.
    swept: VecDeque<u64>,
    /// The first [`CLAIMED_KEPT`] pending X dropped as claimed (--debug
    /// lists them: a missing X can be looked up there).
    pub claimed: Vec<Event>,
}

const CLAIMED_KEPT: usize = 64;

const RECENT: usize = 1024;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeferredStats {
    pub deferred: u64,
    pub by_accept: u64,
    pub settled: u64,
    pub swept: u64,
}

impl Deferred {
    /// A pending X came (unless the X of its socket came already: an
    /// accept claimed it).
    pub fn add(&mut self, mut e: Event) {
        e.kind = Some(Kind::Close);
        self.stats.deferred += 1;
        if self.recent.contains(&e.sock) {
            self.claim(e);
        } else {
            self.pending.push(e);
        }
    }

    /// An X came: a close deferred for its socket was claimed (a socket
    /// closes once).
    pub fn closed(&mut self, sock: u64) {
        if sock == 0 {
            return;
        }
        while let Some(i) = self.pending.iter().position(|p| p.sock == sock) {
            let e = self.pending.remove(i);
            self.claim(e);
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(sock);
    }

    /// The oldest stamp that may still be printed (`None`: none pending).
    /// `printable` says whether a pending X would pass the filters.
    pub fn oldest(&self, printable: impl Fn(&Event) -> bool) -> Option<u64> {
        self.pending.iter().filter(|e| printable(e)).map(|e| e.ts_ns).min()
    }

    /// When the next pending X settles (`None`: none pending).
    pub fn due(&self) -> Option<u64> {
        self.pending.iter().map(|e| e.ts_ns.saturating_add(SETTLE_NS)).min()
    }

    /// Settle every pending X older than `now - SETTLE_NS` (all of them
    /// with `all`): claim its mark; `out` gets those we claimed.
    pub fn settle(&mut self, now: u64, all: bool, marks: &dyn Marks, out: &mut dyn FnMut(Event)) {
        let mut claimed = Vec::new();
        let (stats, swept) = (&mut self.stats, &mut self.swept);
        self.pending.retain(|e| {
            if !all && e.ts_ns.saturating_add(SETTLE_NS) > now {
                return true;
            }
            // Deleted here (or by our sweep): ours to report. Gone: an
            // accept claimed it.
            let ours = marks.take(e.sock) || take_swept(swept, e.sock);
            if ours {
                stats.settled += 1;
                out(*e);
            } else {
                claimed.push(*e);
            }
            false
        });
        for e in claimed {
            self.claim(e);
        }
    }

    /// A pending X an accept claimed (it reports the X itself).
    fn claim(&mut self, e: Event) {
        self.stats.by_accept += 1;
        if self.claimed.len() < CLAIMED_KEPT {
            self.claimed.push(e);
        }
    }

    /// Pending X not settled yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Once per [`SWEEP_NS`]: delete marks seen at the last sweep too and
    /// not pending (their pending X never came).
    pub fn sweep(&mut self, now: u64, marks: &dyn Marks) {
        if now < self.last_sweep.saturating_add(SWEEP_NS) {
            return;
        }
        self.last_sweep = now;
        let Some(keys) = marks.keys() else { return };
        for &k in &keys {
            let stale = self.seen.contains(&k) && !self.pending.iter().any(|e| e.sock == k);
            if stale && marks.take(k) {
                self.stats.swept += 1;
                if self.swept.len() == RECENT {
                    self.swept.pop_front();
                }
                self.swept.push_back(k);
            }
        }
        self.seen = keys;
    }
}

/// Whether our sweep deleted `key`'s mark (forgotten once asked).
fn take_swept(swept: &mut VecDeque<u64>, key: u64) -> bool {
    match swept.iter().position(|&k| k == key) {
        Some(i) => {
            swept.remove(i);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracer::event::{encode, EVENT_SIZE};

    fn x(sock: u64, ts: u64) -> Event {
        let mut b = [0u8; EVENT_SIZE];
        b[49] = 4;
        let mut e = Event::decode(&b).unwrap();
        (e.sock, e.ts_ns) = (sock, ts);
        Event::decode(&encode(&e)).unwrap()
    }

    /// `marks` in memory.
    #[derive(Default)]
    struct Set(std::cell::RefCell<Vec<u64>>);

    impl Marks for Set {
        fn take(&self, key: u64) -> bool {
            let mut v = self.0.borrow_mut();
            let had = v.contains(&key);
            v.retain(|&k| k != key);
            had
        }
        fn keys(&self) -> Option<Vec<u64>> {
            Some(self.0.borrow().clone())
        }
    }

    fn settled(d: &mut Deferred, now: u64, marks: &Set) -> Vec<u64> {
        let mut out = Vec::new();
        d.settle(now, false, marks, &mut |e| out.push(e.sock));
        out
    }

    #[test]
    fn a_close_whose_mark_was_swept_before_it_came_is_still_printed() {
        let (mut d, marks) = (Deferred::default(), Set::default());
        // Socket 5's mark is made; its pending X is late on its way here.
        marks.0.borrow_mut().push(5);
        d.sweep(SWEEP_NS, &marks);
        d.sweep(2 * SWEEP_NS, &marks);
        assert!(marks.0.borrow().is_empty(), "swept after two sweeps");
        assert_eq!(d.stats.swept, 1);
        // It comes: it is ours (the sweep deleted the mark, no accept did).
        let now = 2 * SWEEP_NS + 1;
        d.add(x(5, now));
        assert_eq!(settled(&mut d, now + SETTLE_NS, &marks), [5]);
        assert_eq!(d.stats.settled, 1);
        assert_eq!(d.stats.by_accept, 0);
        // An accept's claim (mark gone, not swept by us) stays a claim.
        d.add(x(6, now));
        assert_eq!(settled(&mut d, now + SETTLE_NS, &marks), Vec::<u64>::new());
        assert_eq!(d.stats.by_accept, 1);
        // And our own mark, still there, is ours.
        marks.0.borrow_mut().push(7);
        d.add(x(7, now));
        assert_eq!(settled(&mut d, now + SETTLE_NS - 1, &marks), Vec::<u64>::new(), "not due yet");
        assert_eq!(settled(&mut d, now + SETTLE_NS, &marks), [7]);
    }

    #[test]
    fn a_claimed_close_is_counted_once_and_kept_for_debug() {
        let mut d = Deferred::default();
        // The accept's X first, then the pending one: claimed on arrival.
        d.closed(7);
        d.add(x(7, 10));
        // The pending one first, then the accept's X.
        d.add(x(8, 20));
        assert_eq!(d.pending(), 1);
        assert_eq!(d.oldest(|_| true), Some(20));
        d.closed(8);
        // An X of another socket claims nothing.
        d.add(x(9, 30));
        d.closed(10);
        assert_eq!(d.pending(), 1);
        assert_eq!(d.stats, DeferredStats { deferred: 3, by_accept: 2, settled: 0, swept: 0 });
        let socks: Vec<u64> = d.claimed.iter().map(|e| e.sock).collect();
        assert_eq!(socks, [7, 8]);
        assert!(d.claimed.iter().all(|e| e.kind == Some(Kind::Close)));
    }
}
