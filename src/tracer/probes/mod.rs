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

pub use crate::tracer::config::Filters;
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
    STATS, STAT_CLOSE_AT_DESTROY, STAT_CONN_UPDATE_FAILED, STAT_IN_FLIGHT, STAT_MARK_FAILED, STAT_NO_PORT,
    STAT_OUTPUT_FAILED, STAT_RING_FULL,
};
