//! Who owns a socket, and closes whose owner is not known yet.
//!
//! Identity: a socket's inode number (`socket:[N]`, from
//! `sock->sk_socket`'s inode), unique while the machine runs (the kernel
//! never hands out one twice until 2^32 inodes later). `conns` is keyed by
//! the `struct sock *`, whose memory the next socket gets at once; its
//! values carry the identity, and a value is believed only when that
//! matches. An entry that outlives its socket (a skipped program run) is
//! never pinned on the next one; the next record there replaces it.
//!
//! Deferred X: an X found without an owner may be a connection reset while
//! `accept()` was taking it (between the socket's graft and the syscall's
//! return, where the accept program records the owner). The state program
//! then marks the identity in `marks`, fences, and looks for an owner once
//! more; the accept program records its owner, fences, and looks for a
//! mark. At least one sees the other's write; whoever deletes the mark
//! reports the X (once). If the state program saw no owner it outputs the
//! X as `KIND_PENDING`: the tracer holds it (and everything after it) until
//! the accept's A names the same socket (the accept then reports the X,
//! after its A), or, after a while, deletes the mark itself and prints the
//! X (a connection older than the tracer).

use super::fill::set_kind;
use super::filters::task_filters;
use super::frame::{stack_ptr, CONN_IDENT, CONN_OPEN, FLAG, IDENT, KEY, SK, TMP, VAL};
use super::maps::MapFds;
use super::output::{count, count_failure};
use super::read::probe_read;
use super::stats::{STAT_CONN_UPDATE_FAILED, STAT_MARK_FAILED};
use super::task::{owner_to_event, task_block};
use crate::asm::{Arch, Asm, Helper, Jmp, Label, Reg, Size};
use crate::tracer::config::Filters;
use crate::tracer::event::KIND_PENDING;
use crate::tracer::offsets::SockOffsets;

/// IDENT = the inode number of the `struct socket` of the sock; go to
/// `none` (IDENT 0) when the sock has none (it waits in an accept queue).
pub(super) fn read_ident(a: &mut Asm, so: &SockOffsets, none: Label) {
    a.st(Size::DW, Reg::R10, IDENT, 0);
    probe_read(a, TMP, 8, SK, so.sk_socket, none);
    a.ldx(Size::DW, Reg::R3, Reg::R10, TMP);
    a.jmp_imm(Jmp::Eq, Reg::R3, 0, none);
    probe_read(a, IDENT, 8, Reg::R3, so.socket_ino, none);
}

/// `h` on `map` with key = the sock pointer (stored at KEY); an update takes
/// its value from r10 + `val`.
fn sk_map_call(a: &mut Asm, map: i32, h: Helper, val: i16) {
    a.stx(Size::DW, Reg::R10, KEY, SK);
    a.ld_map_fd(Reg::R1, map);
    stack_ptr(a, Reg::R2, KEY);
    if h == Helper::MapUpdateElem {
        stack_ptr(a, Reg::R3, val);
        a.mov64_imm(Reg::R4, 0);
    }
    a.call(h);
}

/// `conns` helper call for the sock; an update stores VAL.
pub(super) fn conns_call(a: &mut Asm, maps: &MapFds, h: Helper) {
    sk_map_call(a, maps.conns, h, VAL);
}

/// VAL = the current task's block (pid_tgid in `pid_tgid`) and IDENT;
/// conns[sk] = VAL. A failure is counted.
pub(super) fn remember_owner(a: &mut Asm, maps: &MapFds, pid_tgid: Reg, f: &Filters) {
    task_block(a, VAL, Some(pid_tgid), f);
    a.st(Size::DW, Reg::R10, VAL + CONN_OPEN, 0);
    record_owner(a, maps);
}

/// conns[sk] = VAL, with IDENT as its identity (`open` set by the
/// caller). A failure is counted.
pub(super) fn record_owner(a: &mut Asm, maps: &MapFds) {
    a.ldx(Size::DW, Reg::R1, Reg::R10, IDENT);
    a.stx(Size::DW, Reg::R10, VAL + CONN_IDENT, Reg::R1);
    conns_call(a, maps, Helper::MapUpdateElem);
    count_failure(a, maps, STAT_CONN_UPDATE_FAILED);
}

/// r0 = the owner recorded for the sock, if its identity is IDENT;
/// else go to `miss`.
pub(super) fn lookup_owner(a: &mut Asm, maps: &MapFds, miss: Label) {
    conns_call(a, maps, Helper::MapLookupElem);
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, miss);
    a.ldx(Size::DW, Reg::R1, Reg::R0, CONN_IDENT);
    a.ldx(Size::DW, Reg::R2, Reg::R10, IDENT);
    a.jmp_reg(Jmp::Ne, Reg::R1, Reg::R2, miss);
}

/// `h` on `marks` with key = IDENT; an update stores 1. r0: the result.
pub(super) fn mark_call(a: &mut Asm, maps: &MapFds, h: Helper) {
    a.ld_map_fd(Reg::R1, maps.marks);
    stack_ptr(a, Reg::R2, IDENT);
    if h == Helper::MapUpdateElem {
        a.st(Size::DW, Reg::R10, TMP, 1);
        stack_ptr(a, Reg::R3, TMP);
        a.mov64_imm(Reg::R4, 0);
    }
    a.call(h);
}

/// A full memory barrier (orders all earlier stores before all later
/// loads), on the host's architecture. Uses TMP.
pub(super) fn fence(a: &mut Asm) {
    fence_for(a, Arch::HOST)
}

/// [`fence`] for `arch`: an atomic add of 0 on the stack.
/// - x86-64: a plain `BPF_ATOMIC` add, JIT'd as `lock add`: any locked
///   instruction is a full barrier. (5.10 has no `BPF_FETCH`.)
/// - arm64: the plain add is JIT'd as STADD, which orders nothing; the
///   fetching add (`BPF_ADD | BPF_FETCH`, 5.12+) is JIT'd as LDADDAL (or
///   LDAXR/STLXR then DMB ISH without LSE): fully ordered.
pub(super) fn fence_for(a: &mut Asm, arch: Arch) {
    a.st(Size::DW, Reg::R10, TMP, 0);
    a.mov64_imm(Reg::R1, 0);
    match arch {
        Arch::X86_64 => a.atomic_add(Size::DW, Reg::R10, TMP, Reg::R1),
        Arch::Aarch64 => a.atomic_fetch_add(Size::DW, Reg::R10, TMP, Reg::R1),
    }
}

/// FLAG values of the state program: the X (its task block in place)
/// has no owner known: deferred, with the current task (process context)
/// or with an unknown one.
pub(super) const DEFER_KNOWN: i32 = 1;
pub(super) const DEFER_UNKNOWN: i32 = 2;

/// The deferred X's protocol (above), after the event was filled and
/// filtered (task filters only with a known task): mark it, then report it
/// at `emit` (kind in the event) or give it up at `out`.
pub(super) fn defer(a: &mut Asm, f: &Filters, maps: &MapFds, emit: Label, out: Label) {
    let (marked, unseen) = (a.label(), a.label());
    // Run `body` only for an X whose task is unknown (FLAG).
    let if_unknown = |a: &mut Asm, body: &mut dyn FnMut(&mut Asm)| {
        let skip = a.label();
        a.ldx(Size::W, Reg::R1, Reg::R10, FLAG);
        a.jmp_imm(Jmp::Ne, Reg::R1, DEFER_UNKNOWN, skip);
        body(a);
        a.bind(skip);
    };
    mark_call(a, maps, Helper::MapUpdateElem);
    a.jmp32_imm(Jmp::Eq, Reg::R0, 0, marked);
    // No room to defer it: out at once, as it is (an unknown owner passes
    // no task filter).
    count(a, maps, STAT_MARK_FAILED);
    if f.on_task() {
        if_unknown(a, &mut |a| a.ja(out));
    }
    a.ja(emit);
    a.bind(marked);
    fence(a);
    lookup_owner(a, maps, unseen);
    // An accept recorded the owner since: whoever deletes the mark reports.
    if_unknown(a, &mut |a| owner_to_event(a, Reg::R0));
    // Gone (-ENOENT): the accept took it and reports the X. Any other
    // failure (a busy bucket lock, 6.15+) leaves it ours: counted, and out.
    let deleted = a.label();
    mark_call(a, maps, Helper::MapDeleteElem);
    a.jmp32_imm(Jmp::Eq, Reg::R0, 0, deleted);
    a.jmp32_imm(Jmp::Eq, Reg::R0, -libc::ENOENT, out);
    count(a, maps, STAT_MARK_FAILED);
    a.bind(deleted);
    conns_call(a, maps, Helper::MapDeleteElem);
    if f.on_task() {
        if_unknown(a, &mut |a| task_filters(a, f, out));
    }
    a.ja(emit);
    // The accept (if one is taking this socket) will see the mark.
    a.bind(unseen);
    set_kind(a, KIND_PENDING as i32);
    a.ja(emit);
}
