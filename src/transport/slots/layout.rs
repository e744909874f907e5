//! The slot array's layout constants (see `mod.rs`), shared by the
//! programs' write side and the reader.

/// Offset of `tail` in a control element (its own cache line).
pub const TAIL: usize = 64;
/// Smallest slot: the commit word, the tail's line.
pub const MIN_SLOT: usize = TAIL + 8;

/// A slot: the commit word, the event, padding, and in its last 8 bytes
/// the clock read before the slot was reserved: two whole cache lines, so
/// a program writing one slot and the reader reading the one before never
/// share a line.
pub const SLOT_SIZE: u32 = 128;
const _: () = assert!(SLOT_SIZE as usize >= MIN_SLOT && SLOT_SIZE.is_multiple_of(8));

/// Tries at reserving a slot: each fails only if a program interrupting
/// this one on its CPU reserved one between our read and our cmpxchg.
pub const RESERVE_TRIES: usize = 4;

/// Slots per CPU for `ring_pages` pages of `page` bytes: as many as fit,
/// rounded down to a power of two, at least 8, at most 2^24.
pub(crate) fn slots_per_cpu(ring_pages: usize, page: usize) -> u32 {
    let fit = ring_pages.saturating_mul(page) / SLOT_SIZE as usize;
    if fit < 8 {
        8
    } else {
        1 << (usize::BITS - 1 - fit.leading_zeros()).min(24)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_rings_take_the_ring_memory_in_a_power_of_two_of_slots() {
        assert_eq!(slots_per_cpu(512, 4096), 16384, "2 MiB per CPU");
        assert_eq!(slots_per_cpu(1, 4096), 32);
        assert_eq!(slots_per_cpu(3, 4096), 64, "rounded down");
        assert_eq!(slots_per_cpu(0, 4096), 8, "at least 8");
        assert_eq!(slots_per_cpu(usize::MAX, 4096), 1 << 24, "at most 2^24");
    }
}
