//! Time order across CPUs: each perf ring is per CPU, so events are held
//! until no ring can still deliver an older one, then released sorted.
//! (The ring buffer is one ring in reservation order; stamps taken just
//! before reserving may still cross between CPUs, and the window covers it.)
//!
//! An event stamped before the drain started may still be in flight in
//! its program (stamped, not yet committed): the window covers that gap.
//! The programs count such outputs per CPU (`STAT_IN_FLIGHT`); a drain
//! that finds none in flight needs no window, so a trickle of events is
//! printed at once instead of a window later. (Slot rings need no count: a
//! program stamps after reserving its slot, so a drain that finds every
//! reserved slot read has all events stamped before it.)

use super::event::Event;

/// Held events' room kept after a backlog (104 KiB).
const SHRINK_ABOVE: usize = 1024;
/// Releases in a row that must find the room mostly unused (an eighth
/// held) before it shrinks: a steady high rate uses it at every drain, and
/// giving it back each time cost a realloc and page faults per drain. Idle,
/// the reader drains at least every 100 ms.
const SHRINK_AFTER: u32 = 16;

#[derive(Debug, Default)]
pub struct Reorder {
    pending: Vec<Event>,
    max_len: usize,
    /// Kept between releases for [`sort_by_stamp`].
    scratch: Vec<Event>,
    runs: Vec<usize>,
    /// Releases in a row that found the room mostly unused.
    unused: u32,
}

impl Reorder {
    pub fn push(&mut self, e: Event) {
        self.pending.push(e);
        self.max_len = self.max_len.max(self.pending.len());
    }

    /// Most events held at once.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Event> {
        self.pending.iter()
    }

    /// The oldest stamp held.
    pub fn oldest(&self) -> Option<u64> {
        self.pending.iter().map(|e| e.ts_ns).min()
    }

    /// Hand out, oldest first, every held event stamped at or before `cutoff`.
    pub fn release(&mut self, cutoff: u64, f: &mut dyn FnMut(&Event)) -> usize {
        let held = self.pending.len();
        sort_by_stamp(&mut self.pending, &mut self.scratch, &mut self.runs);
        let n = self.pending.partition_point(|e| e.ts_ns <= cutoff);
        for e in &self.pending[..n] {
            f(e);
        }
        self.pending.drain(..n);
        // After a backlog (a reader behind by whole rings): give the memory back.
        let cap = self.pending.capacity();
        if cap > SHRINK_ABOVE && held < cap / 8 {
            self.unused += 1;
        } else {
            self.unused = 0;
        }
        if self.unused >= SHRINK_AFTER {
            self.unused = 0;
            self.pending.shrink_to(cap / 4);
            self.scratch = Vec::new();
            self.runs = Vec::new();
            super::io::trim();
        }
        n
    }
}

/// Sort `v` by stamp, stably: merge its ascending runs (mostly one per
/// ring) pairwise until one is left. The memory is kept between calls
/// (std's stable sort allocates its scratch on every call: an mmap, page
/// faults and an munmap per drain where the allocator maps large blocks).
fn sort_by_stamp(v: &mut Vec<Event>, scratch: &mut Vec<Event>, runs: &mut Vec<usize>) {
    loop {
        runs.clear();
        runs.push(0);
        runs.extend((1..v.len()).filter(|&i| v[i].ts_ns < v[i - 1].ts_ns));
        if runs.len() == 1 {
            return;
        }
        runs.push(v.len());
        scratch.clear();
        scratch.reserve(v.len());
        for k in (0..runs.len() - 1).step_by(2) {
            let a = &v[runs[k]..runs[k + 1]];
            let b = &v[runs[k + 1]..runs[(k + 2).min(runs.len() - 1)]];
            let (mut i, mut j) = (0, 0);
            while i < a.len() && j < b.len() {
                // Ties take the earlier run's event first: stable.
                if b[j].ts_ns < a[i].ts_ns {
                    scratch.push(b[j]);
                    j += 1;
                } else {
                    scratch.push(a[i]);
                    i += 1;
                }
            }
            scratch.extend_from_slice(&a[i..]);
            scratch.extend_from_slice(&b[j..]);
        }
        std::mem::swap(v, scratch);
    }
}

/// For one slot ring: a stamp no event still to be read from it can be
/// older than. A program stamps its event after reserving its slot, so a
/// position not yet reserved when the clock read `t` (the ring's head was
/// at or below it, read after the clock) carries a stamp after `t`; and a
/// position after the last one read was reserved after that one, whose
/// program read the clock before reserving it (`reserved_after`).
#[derive(Debug)]
pub struct SlotBound {
    base: u64,
    /// (clock, head) of passes whose head is beyond what was read.
    seen: std::collections::VecDeque<(u64, u64)>,
}

/// Passes remembered per ring (more only while a ring lags that far).
const SEEN: usize = 256;

impl SlotBound {
    /// `start`: a clock read before anything could be reserved.
    pub fn new(start: u64) -> SlotBound {
        SlotBound { base: start, seen: Default::default() }
    }

    /// A pass read the clock `now`, then the ring's `head`, and read the
    /// ring up to `tail`; the last record it read was reserved after the
    /// clock read `reserved_after`: the bound for the ring's events unread.
    pub fn update(&mut self, now: u64, head: u64, tail: u64, reserved_after: Option<u64>) -> u64 {
        if let Some(t) = reserved_after {
            self.base = self.base.max(t);
        }
        if self.seen.len() == SEEN {
            self.seen.pop_front(); // the bound stays older: still safe
        }
        self.seen.push_back((now, head));
        while let Some(&(t, h)) = self.seen.front() {
            if tail.wrapping_sub(h) as i64 >= 0 {
                self.base = self.base.max(t);
                self.seen.pop_front();
            } else {
                break;
            }
        }
        self.base
    }
}

/// The newest stamp that is safe to release, given the drain's start time,
/// the last stamp read from each ring that still holds records (0 if
/// none was read yet), and the window.
pub fn cutoff(now: u64, last_of_unfinished: impl Iterator<Item = u64>, window: u64) -> u64 {
    last_of_unfinished.fold(now, u64::min).saturating_sub(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: u64) -> Event {
        let mut b = [0u8; super::super::event::EVENT_SIZE];
        b[49] = 4;
        b[..8].copy_from_slice(&ts.to_le_bytes());
        Event::decode(&b).unwrap()
    }

    #[test]
    fn releases_sorted_up_to_the_cutoff() {
        let mut r = Reorder::default();
        // Ring 0 then ring 1, each in order, interleaved in time.
        for ts in [10, 30, 50, 20, 40, 60] {
            r.push(ev(ts));
        }
        let mut got = Vec::new();
        assert_eq!(r.release(45, &mut |e| got.push(e.ts_ns)), 4);
        assert_eq!(got, [10, 20, 30, 40]);
        assert_eq!(r.len(), 2);
        r.push(ev(55));
        got.clear();
        r.release(u64::MAX, &mut |e| got.push(e.ts_ns));
        assert_eq!(got, [50, 55, 60]);
        assert!(r.is_empty());
    }

    #[test]
    fn the_room_shrinks_after_a_backlog_not_at_a_steady_rate() {
        let mut r = Reorder::default();
        let fill = |r: &mut Reorder, n: u64| (0..n).for_each(|ts| r.push(ev(ts)));
        // Steady: each drain holds ~4000 events, releases them all.
        for _ in 0..100 {
            fill(&mut r, 4000);
            r.release(u64::MAX, &mut |_| {});
        }
        let cap = r.pending.capacity();
        assert!(cap >= 4000);
        fill(&mut r, 4000);
        assert_eq!(r.pending.capacity(), cap, "no realloc at a steady rate");
        r.release(u64::MAX, &mut |_| {});
        // Quiet: a trickle for SHRINK_AFTER releases gives the room back.
        for i in 0..SHRINK_AFTER {
            assert_eq!(r.pending.capacity(), cap, "release {i}");
            fill(&mut r, 3);
            r.release(u64::MAX, &mut |_| {});
        }
        assert!(r.pending.capacity() <= cap / 4, "{} of {cap}", r.pending.capacity());
        assert_eq!(r.scratch.capacity(), 0);
    }

    #[test]
    fn the_merge_sorts_like_the_stable_sort() {
        // Small pseudo-random inputs: runs, ties, reversed, sorted, empty.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut scratch, mut runs) = (Vec::new(), Vec::new());
        for case in 0..2000 {
            let n = (next() % 300) as usize;
            let span = [3, 50, 1 << 40][case % 3];
            let mut v: Vec<Event> = (0..n)
                .map(|i| {
                    let mut e = ev(next() % span);
                    e.pid = i as u32;
                    e
                })
                .collect();
            if case % 7 == 0 {
                v.sort_by_key(|e| std::cmp::Reverse(e.ts_ns));
            }
            let mut want = v.clone();
            want.sort_by_key(|e| e.ts_ns);
            sort_by_stamp(&mut v, &mut scratch, &mut runs);
            assert_eq!(v, want, "case {case}");
        }
    }

    #[test]
    fn slot_bound_is_the_clock_of_the_last_pass_whose_head_was_read() {
        let mut b = SlotBound::new(100);
        assert_eq!(b.update(200, 0, 0, None), 200, "empty ring: now");
        assert_eq!(b.update(300, 10, 10, None), 300, "read up to the head: now");
        // Positions 10..40 reserved; read to 20 only: position 20 may have
        // been reserved any time after the pass at 300 (head 10).
        assert_eq!(b.update(400, 40, 20, None), 300);
        assert_eq!(b.update(500, 50, 30, None), 300, "still below the head seen at 400");
        assert_eq!(b.update(600, 55, 45, None), 400, "past 40: reserved after 400");
        assert_eq!(b.update(700, 55, 55, None), 700);
        // An uncommitted slot at 55 holds the bound until it is read.
        assert_eq!(b.update(800, 60, 55, None), 700);
        assert_eq!(b.update(900, 60, 60, None), 900);
    }

    #[test]
    fn slot_bound_follows_the_reads_through_a_backlog() {
        let mut b = SlotBound::new(100);
        assert_eq!(b.update(200, 0, 0, None), 200);
        // A backlog of 4000 read 1000 at a time: the last record read was
        // reserved after its program read the clock at 250, 260, 270.
        assert_eq!(b.update(300, 4000, 1000, Some(250)), 250);
        assert_eq!(b.update(310, 4000, 2000, Some(260)), 260);
        assert_eq!(b.update(320, 4100, 3000, Some(270)), 270);
        assert_eq!(b.update(330, 4100, 4100, Some(280)), 330, "caught up: the clock again");
        // Never backwards: an older clock (nesting) does not lower it.
        assert_eq!(b.update(340, 4200, 4150, Some(290)), 330);
    }

    #[test]
    fn cutoff_waits_for_unfinished_rings() {
        assert_eq!(cutoff(1000, [].into_iter(), 100), 900);
        assert_eq!(cutoff(1000, [700, 950].into_iter(), 100), 600);
        assert_eq!(cutoff(50, [].into_iter(), 100), 0);
    }
}
