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

#[derive(Debug, Default)]
pub struct Reorder {
    pending: Vec<Event>,
}

impl Reorder {
    pub fn push(&mut self, e: Event) {
        self.pending.push(e);
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The oldest stamp held.
    pub fn oldest(&self) -> Option<u64> {
        self.pending.iter().map(|e| e.ts_ns).min()
    }

    /// Hand out, oldest first, every held event stamped at or before `cutoff`.
    pub fn release(&mut self, cutoff: u64, f: &mut dyn FnMut(&Event)) -> usize {
        // Mostly sorted runs (one per ring): the stable sort merges them.
        self.pending.sort_by_key(|e| e.ts_ns);
        let n = self.pending.partition_point(|e| e.ts_ns <= cutoff);
        for e in &self.pending[..n] {
            f(e);
        }
        self.pending.drain(..n);
        n
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
        let mut b = [0u8; 96];
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
    fn cutoff_waits_for_unfinished_rings() {
        assert_eq!(cutoff(1000, [].into_iter(), 100), 900);
        assert_eq!(cutoff(1000, [700, 950].into_iter(), 100), 600);
        assert_eq!(cutoff(50, [].into_iter(), 100), 0);
    }
}
