//! Reader for the per-CPU perf rings that BPF programs fill with
//! `bpf_perf_event_output` through a `PERF_EVENT_ARRAY` map.
//!
//! Ring protocol: each CPU's ring is an mmap of one metadata page
//! (`perf_event_mmap_page`) followed by 2^n data pages. The kernel writes
//! records at `data_head` and publishes the new head after the bytes; we read
//! `data_head` with Acquire, consume records from `data_tail` up to it, then
//! publish the new `data_tail` with Release so the kernel may reuse the space
//! (the pair matches the kernel's "rmb after head, mb before tail"). Positions
//! are free-running `u64`s; a byte lives at `pos & (size - 1)`, so a record's
//! body may wrap past the end of the data area: such a record is copied into
//! one reusable scratch buffer, every other record is handed out in place.
//! Borrowed slices never outlive the drain that produced them.
//!
//! The same reader also drains a BPF ring buffer (`bpfring.rs`): one ring
//! for all CPUs (5.8+), and slot rings (`slots.rs`): per-CPU rings the
//! programs write with plain stores into an mmap'ed array (5.12+ atomics),
//! which the tracer prefers.

mod bpfring;
mod counters;
mod cpus;
mod error;
mod reader;
mod ring;
#[cfg(test)]
mod ring_tests;
#[cfg(test)]
mod root_tests;
mod slots;

pub use counters::Counters;
pub use cpus::{online_cpus, parse_cpu_list, possible_cpu_count, present_cpu_count};
pub use error::PerfError;
pub use reader::{page_size, PerfReader};
#[doc(hidden)]
pub use ring::drain_buffer;
pub use slots::{Drained, MIN_SLOT, TAIL as SLOT_TAIL};

/// One record taken from a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// The raw bytes a BPF program passed to `bpf_perf_event_output`,
    /// followed by 0–7 bytes of padding: decode by the event's own length.
    Sample(&'a [u8]),
    /// The kernel dropped this many samples because the ring was full.
    Lost(u64),
}

/// Totals of one [`PerfReader::drain`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DrainStats {
    /// Samples handed to the callback.
    pub samples: u64,
    /// Sum of the counts of all `Lost` records.
    pub lost: u64,
}

impl std::ops::AddAssign for DrainStats {
    fn add_assign(&mut self, o: Self) {
        self.samples += o.samples;
        self.lost = self.lost.saturating_add(o.lost);
    }
}

/// Why [`PerfReader::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// At least one ring signalled data (call `drain`).
    Data,
    /// The timeout passed with nothing ready.
    Timeout,
    /// A fd added with [`PerfReader::add_wake_fd`] is readable (rings may
    /// also hold data).
    Woken,
    /// `epoll_wait` was interrupted by a signal (EINTR).
    Interrupted,
}
