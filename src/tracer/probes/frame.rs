//! What every program shares: its registers, its stack frame, and the
//! `conns` value it builds there.

use crate::asm::{Alu, Asm, Reg};
use crate::tracer::event::{off, EVENT_SIZE};

// Registers kept across helper calls (r6-r9; calls clobber r0-r5).
/// The program's context (its first argument).
pub(crate) const CTX: Reg = Reg::R6;
/// The `struct sock *` (the accept program: the new fd until it finds it).
pub(crate) const SK: Reg = Reg::R7;
/// The event's kind, once known (`fill_event` stores it); before that a
/// program uses r8 for its own (old state, pid_tgid).
pub(crate) const KIND: Reg = Reg::R8;

/// Bytes of the task block {u64 pid_tgid; u64 uid_gid; u64 cgroup; char
/// comm[16]}, copied into events as it is.
pub(crate) const TASK_SIZE: i16 = off::KIND - off::TASK;
/// `conns` value: the task block, the socket's identity (u64), then
/// `open` (u64): 0 until the connection's C or A, then `OPEN | skc_dport`.
pub const CONN_VALUE_SIZE: u32 = TASK_SIZE as u32 + 16;
/// Where the identity sits in a `conns` value.
pub(crate) const CONN_IDENT: i16 = TASK_SIZE;
/// Where `open` sits in a `conns` value.
pub(crate) const CONN_OPEN: i16 = TASK_SIZE + 8;
/// `open`'s flag: the C or A went out, the X is due.
pub(crate) const OPEN: i32 = 1 << 16;

// Stack layout (offsets from r10).
/// The event.
pub(crate) const EV: i16 = -(EVENT_SIZE as i16);
/// Map key (sk pointer, ident, pid_tgid or cpu).
pub(crate) const KEY: i16 = EV - 8;
/// A `conns` value.
pub(crate) const VAL: i16 = KEY - CONN_VALUE_SIZE as i16;
/// probe_read target, mark value, fence.
pub(crate) const TMP: i16 = VAL - 8;
/// A 16-byte probe_read target: the slot below TMP, and TMP. It lies in
/// CHUNK's room: only for reads before the sock_common copy is made.
pub(crate) const TMP16: i16 = TMP - 8;
/// The sock_common copy ends here (grows down, at most MAX_CHUNK bytes).
pub(crate) const CHUNK: i16 = TMP;
/// sock_common's fields in use span 88 bytes.
pub(crate) const MAX_CHUNK: u32 = 96;
/// The socket's identity (u64 inode number), once read.
pub(crate) const IDENT: i16 = CHUNK - MAX_CHUNK as i16 - 8;
/// u64: the `stats` pointer or slot position during `output`.
pub(crate) const FLIGHT: i16 = IDENT - 8;
/// u32: accept program, an X follows the A; state program, the X is
/// deferred (`owner::DEFER_*`).
pub(crate) const FLAG: i16 = FLIGHT - 8;
/// u64: the clock before a slot is reserved (`output`).
pub(crate) const PRE: i16 = FLAG - 8;
/// u32: state program, 1 when the X's connection had the peer's FIN (it
/// closes from CLOSE_WAIT): `bytes_received` counts it, the event does not.
pub(crate) const FIN_IN: i16 = PRE - 8;
const _: () = assert!(FIN_IN >= -512);
const _: () = assert!(TMP16 >= CHUNK - MAX_CHUNK as i16);

/// `reg = r10 + off`
pub(crate) fn stack_ptr(a: &mut Asm, reg: Reg, off: i16) {
    a.mov64_reg(reg, Reg::R10);
    a.alu64_imm(Alu::Add, reg, off as i32);
}

/// `return 0`
pub(crate) fn exit0(a: &mut Asm) {
    a.mov64_imm(Reg::R0, 0);
    a.exit();
}
