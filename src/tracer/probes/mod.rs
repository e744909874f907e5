//! The BPF programs, written in the `asm` DSL with offsets from BTF.
//!
//! Every backend shares one design:
//! - `conns` (hash) maps a `struct sock *` to the task that connected or
//!   accepted it and the socket's identity (its inode number): filled in
//!   process context, read when the connection establishes (C) or is
//!   closed from softirq (X), deleted at its X. Socket memory is reused at
//!   once, so an entry is only believed when its identity matches the
//!   socket's (see `owner.rs`): an entry that outlived its socket is never
//!   pinned on the next one.
//! - C: a connect that reaches ESTABLISHED from SYN_SENT, with the task
//!   recorded when it started (tracepoint: the CLOSE→SYN_SENT transition;
//!   kprobe/fentry: entry of `tcp_v{4,6}_connect`, undone by its return or
//!   fexit on failure).
//! - X: the first move of an established connection towards closing
//!   (ESTABLISHED/CLOSE_WAIT → FIN_WAIT1/LAST_ACK/CLOSE), with the current
//!   task when a task holds the socket lock (`sk_lock.owned`: process
//!   context), else with the owner from `conns`. A Fast Open child accepted
//!   before its handshake ended gets its X when it closes from SYN_RECV.
//! - A: `syscalls:sys_exit_accept{,4}` in the accepting task (see `accept.rs`).
//! - An entry is open from its C or A to its X. One still open when its
//!   socket is destroyed lost its X to a skipped run: `destroy.rs` reports it.
//! - An X whose owner is not known yet may belong to a socket an accept()
//!   is taking: it is deferred (`owner.rs`), and the accept or the tracer
//!   settles it.
//!
//! Files: `frame.rs` (registers, stack slots, the `conns` value), `read.rs`
//! (kernel memory, sock fields), `task.rs` (task blocks), `filters.rs`,
//! `fill.rs` (the event's tuple and kind), `owner.rs` (identity, owners,
//! deferred X), `output.rs` (counters, and the event's output through
//! `crate::transport`), `stats.rs` (counter slots), `kernel.rs` (kernel
//! constants); one file per program: `state.rs`, `accept.rs`, `connect.rs`,
//! `destroy.rs`.

mod accept;
mod connect;
mod destroy;
mod fill;
mod filters;
mod frame;
mod kernel;
mod maps;
mod output;
mod owner;
mod read;
mod state;
mod stats;
mod task;
#[cfg(test)]
mod tests;

pub use accept::accept_program;
pub use connect::{connect_entry_program, connect_exit_program, ConnectHook};
pub use destroy::destroy_program;
pub use fill::{Sport, KIND_ACCEPT, KIND_CLOSE, KIND_CONNECT, KIND_FAILED};
pub use frame::CONN_VALUE_SIZE;
pub use maps::MapFds;
pub use output::STATS_VALUE_SIZE;
pub use read::Mem;
pub use state::{state_program, StateHook};
pub use stats::{
    STATS, STAT_CLOSE_AT_DESTROY, STAT_CONN_UPDATE_FAILED, STAT_IN_FLIGHT, STAT_MARK_FAILED,
    STAT_OUTPUT_FAILED, STAT_RING_FULL,
};

/// Most ports `Filters::ports` may hold.
pub const MAX_PORTS: usize = 16;

/// What the probes filter on (all in the kernel; filters combine with AND)
/// and what they report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    /// Process id (tgid).
    pub pid: Option<u32>,
    /// Network namespace inode number.
    pub netns: Option<u32>,
    /// 4 or 6: sockets of that family only.
    pub family: Option<u8>,
    pub uid: Option<u32>,
    /// cgroup v2 id (the cgroup directory's inode number).
    pub cgroup: Option<u64>,
    /// Either side's port is one of these (at most [`MAX_PORTS`]).
    pub ports: Vec<u16>,
    /// COMM, NUL-padded (at most 15 bytes of name).
    pub comm: Option<[u8; 16]>,
    /// Also report connects that never established (kind F, with sk_err).
    pub failed: bool,
    /// Fill uid, gid and cgroup in events (two more helper calls per
    /// recorded task); implied by the uid and cgroup filters.
    pub task_ids: bool,
    /// Leave the events' netns 0: two kernel reads less per event, about
    /// 50 ns here. Ignored with the netns filter.
    pub no_netns: bool,
    /// Tests only: the state program ignores the closing moves outside
    /// process context of connections with this local or remote port, as
    /// if the kernel had skipped those runs (their X then comes from
    /// `destroy.rs`).
    pub skip_close_port: Option<u16>,
}

impl Filters {
    /// Whether any filter on the event's task is set (an unknown owner
    /// never passes one).
    pub fn on_task(&self) -> bool {
        self.pid.is_some() || self.uid.is_some() || self.cgroup.is_some() || self.comm.is_some()
    }

    fn ids(&self) -> bool {
        self.task_ids || self.uid.is_some() || self.cgroup.is_some()
    }

    fn reads_netns(&self) -> bool {
        !self.no_netns || self.netns.is_some()
    }
}
