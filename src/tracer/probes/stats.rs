//! The counters of the `stats` array: one 64-byte element per CPU, each
//! counter added to atomically (a program interrupted by another on its
//! CPU loses no count); user space reads them through a mapping, never
//! through a map syscall (which would make the kernel skip kprobe and
//! tracepoint programs on its CPU meanwhile).

pub const STAT_OUTPUT_FAILED: usize = 0;
/// A socket could not be recorded in `conns` (its C or softirq X is lost).
pub const STAT_CONN_UPDATE_FAILED: usize = 1;
/// The ring (slot ring, ring buffer) was full.
pub const STAT_RING_FULL: usize = 2;
/// Not a failure: outputs between their stamp and their commit on this
/// CPU (perf rings and the ring buffer; see `output`). All zero: nothing
/// stamped is still on its way into a ring.
pub const STAT_IN_FLIGHT: usize = 3;
/// A deferred X could not be marked (`marks` full), or its mark not
/// deleted (a busy bucket lock): it went out at once.
pub const STAT_MARK_FAILED: usize = 4;
/// Not a failure: X reported when the socket was destroyed, its closing
/// move unseen (a program run the kernel skipped; see `destroy.rs`).
pub const STAT_CLOSE_AT_DESTROY: usize = 5;
/// An event dropped because its socket showed no local or remote port
/// (never expected of a connection the programs report: counted so such
/// a drop is never silent).
pub const STAT_NO_PORT: usize = 6;
pub const STATS: usize = 8;
