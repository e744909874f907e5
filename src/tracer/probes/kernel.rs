//! Kernel constants the programs compare against.

// TCP states (include/net/tcp_states.h).
pub(super) const ESTABLISHED: i32 = 1;
pub(super) const SYN_SENT: i32 = 2;
pub(super) const SYN_RECV: i32 = 3;
pub(super) const FIN_WAIT1: i32 = 4;
pub(super) const CLOSE: i32 = 7;
pub(super) const CLOSE_WAIT: i32 = 8;
pub(super) const LAST_ACK: i32 = 9;
pub(super) const AF_INET: i32 = 2;
pub(super) const AF_INET6: i32 = 10;
pub(super) const IPPROTO_TCP: i32 = 6;
