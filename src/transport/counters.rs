//! Counters the programs keep per CPU in an mmap'able array, read through
//! the mapping: no map syscall, which would make the kernel skip kprobe and
//! tracepoint programs on the reading CPU while it runs.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::transport::error::PerfError;
use crate::transport::mmap::{map, Mapping};

/// The mapped array: one element of `elem` bytes (u64 counters) per CPU.
pub struct Counters {
    map: Mapping,
    cpus: usize,
    elem: usize,
}

// SAFETY: the mapping is owned here; it is only read (atomically).
unsafe impl Send for Counters {}

impl Counters {
    /// Map the array `fd` of `cpus` elements of `elem` bytes (a multiple of 8).
    pub fn open(fd: BorrowedFd<'_>, cpus: u32, elem: usize, page: usize) -> Result<Counters, PerfError> {
        let cpus = cpus as usize;
        let len = (cpus * elem).div_ceil(page).max(1) * page;
        let map = map(fd, len, libc::PROT_READ, 0, "counters")?;
        debug_assert!(elem.is_multiple_of(8));
        Ok(Counters { map, cpus, elem })
    }

    /// Counter `slot` summed over the CPUs.
    pub fn sum(&self, slot: usize) -> u64 {
        assert!((slot + 1) * 8 <= self.elem, "counter {slot} outside the element");
        (0..self.cpus)
            .map(|c| {
                // SAFETY: inside the mapping (cpus * elem bytes), 8-aligned
                // (page-aligned base, elem a multiple of 8).
                let p = unsafe { self.map.ptr.add(c * self.elem + slot * 8) };
                // SAFETY: as above; the kernel writes it with atomic adds.
                unsafe { AtomicU64::from_ptr(p.cast()) }.load(Ordering::Relaxed)
            })
            .fold(0u64, u64::wrapping_add)
    }
}
