//! One CPU's slot ring over raw memory (the layout: `mod.rs`), kept apart
//! from the mmap so tests can run it on a heap buffer.

use std::sync::atomic::{AtomicU64, Ordering};

use super::layout::{MIN_SLOT, TAIL};
use crate::transport::mmap::Tail;
use crate::transport::record::{DrainStats, Drained, Positions, Record};

/// The consumer side of one CPU's slot ring, over raw memory.
pub(crate) struct SlotView {
    slots: *const u8,
    ctl: *mut u8,
    n: u64,
    slot: usize,
}

impl SlotView {
    /// # Safety
    /// `slots` is valid for reads of `n * slot` bytes, `ctl` for reads and
    /// writes of `TAIL + 8`, both 8-aligned; `slot` is a multiple of 8 and
    /// at least [`MIN_SLOT`]; `n` is a power of two; all stay valid while
    /// the view is used.
    pub(crate) unsafe fn new(slots: *const u8, ctl: *mut u8, n: u64, slot: usize) -> SlotView {
        debug_assert!(n.is_power_of_two() && slot.is_multiple_of(8) && slot >= MIN_SLOT);
        SlotView { slots, ctl, n, slot }
    }

    fn word(&self, p: *const u8) -> &AtomicU64 {
        // SAFETY: 8 valid, aligned bytes by the contract of `new`.
        unsafe { AtomicU64::from_ptr(p.cast_mut().cast()) }
    }

    fn head(&self) -> u64 {
        self.word(self.ctl).load(Ordering::Acquire)
    }

    fn tail(&self) -> &AtomicU64 {
        // SAFETY: TAIL + 8 bytes at ctl by the contract of `new`.
        self.word(unsafe { self.ctl.add(TAIL) })
    }

    /// Positions reserved and not yet read: committed records left by the
    /// limit, or records being written.
    pub(crate) fn unread(&self) -> u64 {
        self.head().wrapping_sub(self.tail().load(Ordering::Relaxed))
    }

    /// Hand up to `limit` committed records (each slot after its commit
    /// word) to `f`, then publish the tail once. Returns whether the limit
    /// stopped it with committed records left, and whether it read every
    /// position reserved when it began (`clear`): then every record
    /// reserved before the call has been read, and any still to come was
    /// reserved after it began.
    pub(crate) fn drain(&self, limit: usize, f: &mut dyn FnMut(Record<'_>)) -> Drained {
        let head = self.head();
        let mut tail = Tail::new(self.tail());
        let start = tail.start();
        let mut stats = DrainStats::default();
        let mut reserved_after = None;
        while (tail.pos.wrapping_sub(start) as usize) < limit {
            let pos = tail.pos;
            let at = (pos & (self.n - 1)) as usize * self.slot;
            // SAFETY: at + slot ≤ n * slot bytes by the contract of `new`.
            let p = unsafe { self.slots.add(at) };
            if self.word(p).load(Ordering::Acquire) != pos.wrapping_add(1) {
                break;
            }
            // SAFETY: as above; the kernel leaves the slot alone until the
            // tail passes it, which happens after `f` returns.
            let rec = unsafe { std::slice::from_raw_parts(p.add(8), self.slot - 8) };
            stats.samples += 1;
            f(Record::Sample(rec));
            // SAFETY: the slot's last 8 bytes, as above.
            reserved_after = Some(self.word(unsafe { p.add(self.slot - 8) }).load(Ordering::Relaxed));
            tail.pos = pos.wrapping_add(1);
        }
        let pos = tail.pos;
        drop(tail);
        let more = pos.wrapping_sub(start) as usize >= limit && {
            let at = (pos & (self.n - 1)) as usize * self.slot;
            // SAFETY: as above.
            self.word(unsafe { self.slots.add(at) }).load(Ordering::Acquire) == pos.wrapping_add(1)
        };
        Drained { stats, more, positions: Some(Positions { head, tail: pos, reserved_after }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOT: usize = 80;

    /// Two CPUs of `n` slots and their control elements, as the kernel lays them out.
    struct Fake {
        mem: Vec<u64>,
        n: usize,
    }

    impl Fake {
        fn new(n: usize) -> Fake {
            Fake { mem: vec![0; (2 * n + 2) * SLOT / 8], n }
        }
        fn view(&mut self, cpu: usize) -> SlotView {
            let p = self.mem.as_mut_ptr().cast::<u8>();
            // SAFETY: inside `mem`, which outlives the views in each test.
            unsafe {
                SlotView::new(
                    p.add(cpu * self.n * SLOT),
                    p.add((2 * self.n + cpu) * SLOT),
                    self.n as u64,
                    SLOT,
                )
            }
        }
        fn word(&mut self, cpu: usize, at: usize) -> &mut u64 {
            &mut self.mem[(cpu * self.n * SLOT + at) / 8]
        }
        fn head(&mut self, cpu: usize) -> &mut u64 {
            &mut self.mem[(2 * self.n + cpu) * SLOT / 8]
        }
        fn tail(&mut self, cpu: usize) -> u64 {
            self.mem[((2 * self.n + cpu) * SLOT + TAIL) / 8]
        }
        /// Reserve the next position on `cpu`; commit it with `value` in the first record word.
        fn reserve(&mut self, cpu: usize) -> u64 {
            let h = *self.head(cpu);
            *self.head(cpu) = h + 1;
            h
        }
        fn commit(&mut self, cpu: usize, pos: u64, value: u64) {
            let at = (pos as usize % self.n) * SLOT;
            *self.word(cpu, at + 8) = value;
            *self.word(cpu, at) = pos + 1;
        }
    }

    fn collect(v: &SlotView, limit: usize) -> (Vec<u64>, bool) {
        let (got, d) = collect_all(v, limit);
        (got, d.more)
    }

    /// The positions a slot ring's drain reports.
    fn at(d: &Drained) -> Positions {
        d.positions.unwrap()
    }

    fn collect_all(v: &SlotView, limit: usize) -> (Vec<u64>, Drained) {
        let mut got = Vec::new();
        let d = v.drain(limit, &mut |r| match r {
            Record::Sample(b) => {
                assert_eq!(b.len(), SLOT - 8);
                got.push(u64::from_ne_bytes(b[..8].try_into().unwrap()));
            }
            Record::Lost(_) => panic!("slot rings have no lost records"),
        });
        assert_eq!(d.stats.samples as usize, got.len());
        (got, d)
    }

    #[test]
    fn committed_records_in_order_then_the_tail_is_published() {
        let mut f = Fake::new(4);
        for v in [10, 11, 12] {
            let p = f.reserve(0);
            f.commit(0, p, v);
        }
        let v = f.view(0);
        assert_eq!(v.unread(), 3);
        assert_eq!(collect(&v, usize::MAX), (vec![10, 11, 12], false));
        assert_eq!(f.tail(0), 3);
        assert_eq!(f.view(0).unread(), 0);
        assert_eq!(f.tail(1), 0, "the other CPU's ring is untouched");
        assert_eq!(collect(&f.view(0), usize::MAX), (vec![], false), "nothing twice");
    }

    #[test]
    fn a_record_being_written_stops_the_batch_until_committed() {
        let mut f = Fake::new(4);
        let a = f.reserve(0);
        let b = f.reserve(0); // interrupted: reserved, not committed
        let c = f.reserve(0);
        f.commit(0, a, 1);
        f.commit(0, c, 3);
        assert_eq!(collect(&f.view(0), usize::MAX), (vec![1], false));
        assert_eq!(f.view(0).unread(), 2, "one in flight, one behind it");
        f.commit(0, b, 2);
        assert_eq!(collect(&f.view(0), usize::MAX), (vec![2, 3], false));
        assert_eq!(f.view(0).unread(), 0);
    }

    #[test]
    fn wraps_and_tells_stale_slots_from_new_ones() {
        let mut f = Fake::new(4);
        let mut want = Vec::new();
        for round in 0..5u64 {
            for k in 0..3 {
                let p = f.reserve(1);
                f.commit(1, p, round * 10 + k);
                want.push(round * 10 + k);
            }
            let (got, more) = collect(&f.view(1), usize::MAX);
            assert_eq!(got, want);
            assert!(!more);
            want.clear();
        }
        assert_eq!(f.tail(1), 15);
        // Slot 15 % 4 holds position 11's commit: not position 15's.
        f.reserve(1);
        assert_eq!(collect(&f.view(1), usize::MAX), (vec![], false));
    }

    #[test]
    fn clear_only_when_every_position_reserved_before_was_read() {
        let mut f = Fake::new(8);
        assert!(at(&collect_all(&f.view(0), usize::MAX).1).clear(), "an empty ring is clear");
        let a = f.reserve(0);
        let b = f.reserve(0);
        f.commit(0, b, 2);
        let (got, d) = collect_all(&f.view(0), usize::MAX);
        assert_eq!(
            (got, at(&d).clear(), at(&d).head, at(&d).tail),
            (vec![], false, 2, 0),
            "a reserved, uncommitted slot"
        );
        f.commit(0, a, 1);
        let (got, d) = collect_all(&f.view(0), 1);
        assert_eq!(
            (got, at(&d).clear(), d.more, at(&d).tail),
            (vec![1], false, true, 1),
            "the limit left one"
        );
        let (got, d) = collect_all(&f.view(0), 1);
        assert_eq!((got, at(&d).clear(), d.more), (vec![2], true, false));
    }

    #[test]
    fn the_limit_leaves_the_rest_and_says_so() {
        let mut f = Fake::new(8);
        for v in 0..5 {
            let p = f.reserve(0);
            f.commit(0, p, v);
        }
        assert_eq!(collect(&f.view(0), 2), (vec![0, 1], true));
        assert_eq!(f.tail(0), 2);
        assert_eq!(collect(&f.view(0), 3), (vec![2, 3, 4], false), "exactly the rest: no more");
        let p = f.reserve(0);
        assert_eq!(collect(&f.view(0), 0), (vec![], false), "in flight is not more");
        f.commit(0, p, 9);
        assert_eq!(collect(&f.view(0), 0), (vec![], true));
    }
}
