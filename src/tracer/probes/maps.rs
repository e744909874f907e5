//! The maps the programs reference, by fd.

/// Map fds the programs reference.
#[derive(Clone, Copy, Debug)]
pub struct MapFds {
    /// What the events are written to (see `crate::transport`).
    pub transport: crate::transport::TransportMaps,
    pub conns: i32,
    /// ident → 1: deferred X, not yet claimed (see `owner.rs`).
    pub marks: i32,
    /// pid_tgid → sk between kprobe entry and return (kprobe backend only).
    pub inflight: Option<i32>,
    /// An mmap'able array: [`STATS_VALUE_SIZE`](super::STATS_VALUE_SIZE) bytes of counters per CPU.
    pub stats: i32,
}
