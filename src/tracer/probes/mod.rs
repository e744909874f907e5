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
//! Files: `owner.rs` (identity, owners, deferred X), `output.rs` (the
//! transports' write side, counters), `state.rs`, `accept.rs`, `connect.rs`,
//! `destroy.rs`.

mod accept;
mod connect;
mod destroy;
mod output;
mod owner;
mod state;
#[cfg(test)]
mod tests;

pub use accept::accept_program;
pub use connect::{connect_entry_program, connect_exit_program, ConnectHook};
pub use destroy::destroy_program;
pub use output::{RINGBUF_RECORD, SLOT_SIZE, STATS_VALUE_SIZE};
pub use state::{state_program, StateHook};

pub use super::config::Filters;
use super::event::{off, EVENT_SIZE, KIND_PENDING};
use super::offsets::{Field, SockOffsets};
use crate::asm::{Alu, Asm, Helper, Jmp, Label, Reg, Size};
use output::output;

pub const KIND_CONNECT: i32 = 1;
pub const KIND_ACCEPT: i32 = 2;
pub const KIND_CLOSE: i32 = 3;
pub const KIND_FAILED: i32 = 4;

/// Bytes of the task block {u64 pid_tgid; u64 uid_gid; u64 cgroup; char
/// comm[16]}, copied into events as it is.
const TASK_SIZE: i16 = off::KIND - off::TASK;
/// `conns` value: the task block, the socket's identity (u64), then
/// `open` (u64): 0 until the connection's C or A, then `OPEN | skc_dport`.
pub const CONN_VALUE_SIZE: u32 = TASK_SIZE as u32 + 16;
/// Where the identity sits in a `conns` value.
const CONN_IDENT: i16 = TASK_SIZE;
/// Where `open` sits in a `conns` value.
const CONN_OPEN: i16 = TASK_SIZE + 8;
/// `open`'s flag: the C or A went out, the X is due.
const OPEN: i32 = 1 << 16;

/// Counters of the `stats` array: one 64-byte element per CPU, each
/// counter added to atomically (a program interrupted by another on its
/// CPU loses no count); user space reads them through a mapping, never
/// through a map syscall (which would make the kernel skip kprobe and
/// tracepoint programs on its CPU meanwhile).
pub const STAT_OUTPUT_FAILED: usize = 0;
/// A socket could not be recorded in `conns` (its C or softirq X is lost).
pub const STAT_CONN_UPDATE_FAILED: usize = 1;
/// The ring (slot ring, ring buffer) was full.
pub const STAT_RING_FULL: usize = 2;
/// Not a failure: outputs between their stamp and their commit on this
/// CPU (perf rings and the ring buffer; see `output`). All zero: nothing
/// stamped is still on its way into a ring.
pub const STAT_IN_FLIGHT: usize = 3;
/// A deferred X could not be marked (`marks` full): it went out at once.
pub const STAT_MARK_FAILED: usize = 4;
/// Not a failure: X reported when the socket was destroyed, its closing
/// move unseen (a program run the kernel skipped; see `destroy.rs`).
pub const STAT_CLOSE_AT_DESTROY: usize = 5;
pub const STATS: usize = 8;

// TCP states (include/net/tcp_states.h).
const ESTABLISHED: i32 = 1;
const SYN_SENT: i32 = 2;
const SYN_RECV: i32 = 3;
const FIN_WAIT1: i32 = 4;
const CLOSE: i32 = 7;
const CLOSE_WAIT: i32 = 8;
const LAST_ACK: i32 = 9;
const AF_INET: i32 = 2;
const AF_INET6: i32 = 10;
const IPPROTO_TCP: i32 = 6;

// Stack layout (offsets from r10).
const EV: i16 = -(EVENT_SIZE as i16); // the event
const KEY: i16 = EV - 8; // map key (sk pointer, ident, pid_tgid or cpu)
const VAL: i16 = KEY - CONN_VALUE_SIZE as i16; // conns value
const TMP: i16 = VAL - 8; // probe_read target, mark value, fence
const CHUNK: i16 = TMP; // sock_common copy ends here (grows down)
const MAX_CHUNK: u32 = 96; // sock_common's fields in use span 88 bytes
/// The socket's identity (u64 inode number), once read.
const IDENT: i16 = CHUNK - MAX_CHUNK as i16 - 8;
/// Stack slot (u64): the `stats` pointer or slot position during `output`.
const FLIGHT: i16 = IDENT - 8;
/// Stack slot (u32): accept program, an X follows the A; state program,
/// the X is deferred (`owner::DEFER_*`).
const FLAG: i16 = FLIGHT - 8;
/// Stack slot (u64): the clock before a slot is reserved (`output`).
const PRE: i16 = FLAG - 8;
const _: () = assert!(PRE >= -512);

impl Filters {
    fn ids(&self) -> bool {
        self.task_ids || self.uid.is_some() || self.cgroup.is_some()
    }

    fn reads_netns(&self) -> bool {
        !self.no_netns || self.netns.is_some()
    }
}

/// Map fds the programs reference.
#[derive(Clone, Copy, Debug)]
pub struct MapFds {
    /// A `RINGBUF` map (`ringbuf`), else a `PERF_EVENT_ARRAY`.
    pub events: i32,
    /// With a ring buffer: wake the reader when the queued bytes reach the
    /// first value; a record finding up to the second queued still wakes
    /// it (several CPUs may step over the first together).
    pub ringbuf: Option<(u32, u32)>,
    pub conns: i32,
    /// ident → 1: deferred X, not yet claimed (see `owner.rs`).
    pub marks: i32,
    /// pid_tgid → sk between kprobe entry and return (kprobe backend only).
    pub inflight: Option<i32>,
    /// An mmap'able array: [`STATS_VALUE_SIZE`] bytes of counters per CPU.
    pub stats: i32,
    /// Slot rings instead of `events` (see `perf/slots.rs`).
    pub slots: Option<SlotMaps>,
}

/// The slot rings' array and wake-up ring buffer.
#[derive(Clone, Copy, Debug)]
pub struct SlotMaps {
    /// The mmap'able array: `cpus * n` slots of [`SLOT_SIZE`] bytes, then
    /// a control element per CPU.
    pub fd: i32,
    /// A small ring buffer; a record in it only wakes the reader.
    pub wake: i32,
    /// Slots per CPU (a power of two).
    pub n: u32,
    pub cpus: u32,
}

/// How a program reads kernel memory: direct loads through BTF-typed
/// pointers (tp_btf, fentry) or `probe_read_kernel` (tracepoint, kprobe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mem {
    Direct,
    Probe,
}

/// Where the source port comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sport {
    /// `skc_num` (host order), read with the other sock_common fields.
    Num,
    /// `skc_num`, unless the TCP state in this register is CLOSE or
    /// `skc_num` is 0: then `inet_sock.inet_sport` (network order) through
    /// probe_read_kernel, as `inet_put_port()` zeroes `skc_num` before the
    /// state becomes CLOSE (a copy of sock_common may see both).
    NumUnlessClose(Reg),
}

/// How `fill_event` reads sock_common: in place, or from a stack copy of
/// bytes [lo, hi) made with one probe_read_kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Direct,
    Copied { lo: u32, hi: u32 },
}

impl Access {
    fn base(self) -> i16 {
        match self {
            Access::Direct => 0,
            Access::Copied { lo, hi } => CHUNK - ((hi - lo).div_ceil(8) * 8) as i16,
        }
    }

    /// `dst = *(size *)(sk + field)` with sk in r7.
    fn load(self, a: &mut Asm, size: Size, dst: Reg, field: u32) {
        match self {
            Access::Direct => a.ldx(size, dst, Reg::R7, field as i16),
            Access::Copied { lo, .. } => a.ldx(size, dst, Reg::R10, self.base() + (field - lo) as i16),
        }
    }

    fn mem(self) -> Mem {
        match self {
            Access::Direct => Mem::Direct,
            Access::Copied { .. } => Mem::Probe,
        }
    }
}

fn exit0(a: &mut Asm) {
    a.mov64_imm(Reg::R0, 0);
    a.exit();
}

/// `reg = r10 + off`
fn stack_ptr(a: &mut Asm, reg: Reg, off: i16) {
    a.mov64_reg(reg, Reg::R10);
    a.alu64_imm(Alu::Add, reg, off as i32);
}

/// `probe_read_kernel(r10 + dst_off, size, src + src_off)`; on failure go to `out`.
fn probe_read(a: &mut Asm, dst_off: i16, size: i32, src: Reg, src_off: u32, out: Label) {
    if src != Reg::R3 {
        a.mov64_reg(Reg::R3, src);
    }
    if src_off != 0 {
        a.alu64_imm(Alu::Add, Reg::R3, src_off as i32);
    }
    stack_ptr(a, Reg::R1, dst_off);
    a.mov64_imm(Reg::R2, size);
    a.call(Helper::ProbeReadKernel);
    a.jmp_imm(Jmp::Ne, Reg::R0, 0, out);
}

/// `dst = *(u64 *)(src + off)` through probe_read_kernel; null → `out`.
fn read_ptr(a: &mut Asm, dst: Reg, src: Reg, off: u32, out: Label) {
    probe_read(a, TMP, 8, src, off, out);
    a.ldx(Size::DW, dst, Reg::R10, TMP);
    a.jmp_imm(Jmp::Eq, dst, 0, out);
}

fn size_of(bytes: u32) -> Size {
    Size::from_bytes(bytes as usize).expect("field size checked by offsets")
}

/// `dst = sk->field` (sk in r7), a possibly-bitfield scalar. Clobbers r0–r5.
fn read_sk(a: &mut Asm, mem: Mem, dst: Reg, f: Field, out: Label) {
    let size = size_of(f.size);
    match mem {
        Mem::Direct => a.ldx(size, dst, Reg::R7, f.off as i16),
        Mem::Probe => {
            probe_read(a, TMP, f.size as i32, Reg::R7, f.off, out);
            a.ldx(size, dst, Reg::R10, TMP);
        }
    }
    if let Some((shift, bits)) = f.bits {
        if shift != 0 {
            a.alu64_imm(Alu::Rsh, dst, shift as i32);
        }
        a.alu64_imm(Alu::And, dst, ((1u64 << bits) - 1) as i32);
    }
}

/// `r1 = sk->sk_lock.owned` (sk in r7): non-zero in process context.
fn read_owned(a: &mut Asm, so: &SockOffsets, mem: Mem, out: Label) {
    read_sk(a, mem, Reg::R1, Field { off: so.lock_owned, size: 4, bits: None }, out);
}

/// Go to `out` unless the sock in r7 is TCP.
fn check_tcp(a: &mut Asm, so: &SockOffsets, mem: Mem, out: Label) {
    read_sk(a, mem, Reg::R1, so.protocol, out);
    a.jmp_imm(Jmp::Ne, Reg::R1, IPPROTO_TCP, out);
}

/// Copy a task block at `src` (a `conns` value) into the event.
fn owner_to_event(a: &mut Asm, src: Reg) {
    for o in (0..TASK_SIZE).step_by(8) {
        a.ldx(Size::DW, Reg::R1, src, o);
        a.stx(Size::DW, Reg::R10, EV + off::TASK + o, Reg::R1);
    }
}

/// The current task's block at r10 + `base`: pid_tgid (from `pid_tgid`,
/// or the helper), uid_gid and cgroup (zero unless `f` wants them), comm.
fn task_block(a: &mut Asm, base: i16, pid_tgid: Option<Reg>, f: &Filters) {
    match pid_tgid {
        Some(r) => a.stx(Size::DW, Reg::R10, base, r),
        None => {
            a.call(Helper::GetCurrentPidTgid);
            a.stx(Size::DW, Reg::R10, base, Reg::R0);
        }
    }
    if f.ids() {
        a.call(Helper::GetCurrentUidGid);
        a.stx(Size::DW, Reg::R10, base + 8, Reg::R0);
        a.call(Helper::GetCurrentCgroupId);
        a.stx(Size::DW, Reg::R10, base + 16, Reg::R0);
    } else {
        a.st(Size::DW, Reg::R10, base + 8, 0);
        a.st(Size::DW, Reg::R10, base + 16, 0);
    }
    // Some kernels (6.1) copy the name without padding the rest: zero it
    // first, so the comm filter and the map value see NUL padding.
    a.st(Size::DW, Reg::R10, base + 24, 0);
    a.st(Size::DW, Reg::R10, base + 32, 0);
    stack_ptr(a, Reg::R1, base + 24);
    a.mov64_imm(Reg::R2, 16);
    a.call(Helper::GetCurrentComm);
}

/// The current task into the event.
fn current_to_event(a: &mut Asm, f: &Filters) {
    task_block(a, EV + off::TASK, None, f);
}

/// An unknown task into the event: pid 0, uid/gid unknown, no comm.
fn unknown_to_event(a: &mut Asm) {
    for o in (0..TASK_SIZE).step_by(8) {
        a.st(Size::DW, Reg::R10, EV + off::TASK + o, if o == 8 { -1 } else { 0 });
    }
}

/// Go to `out` unless the tgid in the upper half of `reg` is the filtered pid.
fn pid_filter(a: &mut Asm, reg: Reg, f: &Filters, out: Label) {
    if let Some(pid) = f.pid {
        a.mov64_reg(Reg::R1, reg);
        a.alu64_imm(Alu::Rsh, Reg::R1, 32);
        a.jmp32_imm(Jmp::Ne, Reg::R1, pid as i32, out);
    }
}

/// How `fill_event` will read sock_common: in place, or (probe-read
/// backends) from one copy to the stack made here.
fn sock_access(a: &mut Asm, so: &SockOffsets, mem: Mem, out: Label) -> Access {
    match mem {
        Mem::Direct => Access::Direct,
        Mem::Probe => {
            let (lo, hi) = so.common_span();
            assert!(hi - lo <= MAX_CHUNK, "sock_common span {lo}..{hi} too large");
            let acc = Access::Copied { lo, hi };
            probe_read(a, acc.base(), (hi - lo) as i32, Reg::R7, lo, out);
            acc
        }
    }
}

/// Go to `out` unless the event's task (already in place) passes the
/// task filters.
fn task_filters(a: &mut Asm, f: &Filters, out: Label) {
    if let Some(pid) = f.pid {
        a.ldx(Size::W, Reg::R1, Reg::R10, EV + off::PID);
        a.jmp32_imm(Jmp::Ne, Reg::R1, pid as i32, out);
    }
    if let Some(uid) = f.uid {
        a.ldx(Size::W, Reg::R1, Reg::R10, EV + off::UID);
        a.jmp32_imm(Jmp::Ne, Reg::R1, uid as i32, out);
    }
    if let Some(id) = f.cgroup {
        a.ldx(Size::DW, Reg::R1, Reg::R10, EV + off::CGROUP);
        a.ld_imm64(Reg::R2, id);
        a.jmp_reg(Jmp::Ne, Reg::R1, Reg::R2, out);
    }
    if let Some(comm) = f.comm {
        for half in [0, 8] {
            let word = u64::from_le_bytes(comm[half..half + 8].try_into().unwrap());
            a.ldx(Size::DW, Reg::R1, Reg::R10, EV + off::COMM + half as i16);
            a.ld_imm64(Reg::R2, word);
            a.jmp_reg(Jmp::Ne, Reg::R1, Reg::R2, out);
        }
    }
}

/// Go to `out` unless one of the ports (sport host order, dport network
/// order, both in the event) is in the filter.
fn port_filter(a: &mut Asm, f: &Filters, out: Label) {
    if f.ports.is_empty() {
        return;
    }
    let keep = a.label();
    a.ldx(Size::H, Reg::R1, Reg::R10, EV + off::SPORT);
    a.ldx(Size::H, Reg::R2, Reg::R10, EV + off::DPORT);
    for &p in &f.ports {
        a.jmp_imm(Jmp::Eq, Reg::R1, p as i32, keep);
        a.jmp_imm(Jmp::Eq, Reg::R2, p.to_be() as i32, keep);
    }
    a.ja(out);
    a.bind(keep);
}

/// How `fill_event` reads the sock and whom it filters.
#[derive(Clone, Copy)]
struct Tail {
    acc: Access,
    sport: Sport,
    /// Apply the task filters (not while the event's task is unknown).
    task_filters: bool,
}

/// Fill the event's tuple from the sock in r7, kind in r8 (the task block
/// already in place; IDENT as the socket's identity), and go to `out`
/// unless it passes the filters. Clobbers r0–r5.
fn fill_event(a: &mut Asm, so: &SockOffsets, tail: Tail, f: &Filters, out: Label) {
    let Tail { acc, sport, task_filters: tasks } = tail;
    let (v4, ports) = (a.label(), a.label());
    for o in (off::KIND..off::SOCK).step_by(8) {
        a.st(Size::DW, Reg::R10, EV + o, 0);
    }
    a.ldx(Size::DW, Reg::R1, Reg::R10, IDENT);
    a.stx(Size::DW, Reg::R10, EV + off::SOCK, Reg::R1);
    a.stx(Size::B, Reg::R10, EV + off::KIND, Reg::R8);
    if tasks {
        task_filters(a, f, out);
    }
    acc.load(a, Size::H, Reg::R1, so.family);
    match f.family {
        Some(4) => a.jmp_imm(Jmp::Ne, Reg::R1, AF_INET, out),
        Some(_) => a.jmp_imm(Jmp::Ne, Reg::R1, AF_INET6, out),
        None => {}
    }
    a.jmp_imm(Jmp::Eq, Reg::R1, AF_INET, v4);
    match so.v6 {
        Some((daddr, saddr)) => {
            a.jmp_imm(Jmp::Ne, Reg::R1, AF_INET6, out);
            a.st(Size::B, Reg::R10, EV + off::IP, 6);
            for (field, dst) in [(saddr, off::SADDR), (daddr, off::DADDR)] {
                for half in [0, 8] {
                    acc.load(a, Size::DW, Reg::R1, field + half as u32);
                    a.stx(Size::DW, Reg::R10, EV + dst + half, Reg::R1);
                }
            }
            a.ja(ports);
        }
        None => a.ja(out),
    }
    a.bind(v4);
    a.st(Size::B, Reg::R10, EV + off::IP, 4);
    acc.load(a, Size::W, Reg::R1, so.rcv_saddr);
    a.stx(Size::W, Reg::R10, EV + off::SADDR, Reg::R1);
    acc.load(a, Size::W, Reg::R1, so.daddr);
    a.stx(Size::W, Reg::R10, EV + off::DADDR, Reg::R1);
    a.bind(ports);
    match sport {
        Sport::Num => acc.load(a, Size::H, Reg::R1, so.num),
        Sport::NumUnlessClose(state) => {
            let (inet, done) = (a.label(), a.label());
            a.jmp_imm(Jmp::Eq, state, CLOSE, inet);
            acc.load(a, Size::H, Reg::R1, so.num);
            a.jmp_imm(Jmp::Ne, Reg::R1, 0, done);
            a.bind(inet);
            probe_read(a, TMP, 2, Reg::R7, so.inet_sport, out);
            a.ldx(Size::H, Reg::R1, Reg::R10, TMP);
            a.to_be(Reg::R1, 16);
            a.bind(done);
        }
    }
    a.jmp_imm(Jmp::Eq, Reg::R1, 0, out);
    a.stx(Size::H, Reg::R10, EV + off::SPORT, Reg::R1);
    acc.load(a, Size::H, Reg::R1, so.dport);
    a.jmp_imm(Jmp::Eq, Reg::R1, 0, out);
    a.stx(Size::H, Reg::R10, EV + off::DPORT, Reg::R1);
    port_filter(a, f, out);
    if let (Some((net, inum)), true) = (so.netns, f.reads_netns()) {
        let no_net = a.label();
        match acc {
            // A typed load of the pointer would cost the verifier a scan of
            // the kernel's BTF (~1.4 ms at start): read it as a number.
            Access::Direct => {
                probe_read(a, TMP, 8, Reg::R7, net, no_net);
                a.ldx(Size::DW, Reg::R1, Reg::R10, TMP);
            }
            Access::Copied { .. } => acc.load(a, Size::DW, Reg::R1, net),
        }
        a.jmp_imm(Jmp::Eq, Reg::R1, 0, no_net);
        probe_read(a, TMP, 4, Reg::R1, inum, no_net);
        a.ldx(Size::W, Reg::R1, Reg::R10, TMP);
        a.stx(Size::W, Reg::R10, EV + off::NETNS, Reg::R1);
        a.bind(no_net);
    }
    if let Some(ns) = f.netns {
        a.ldx(Size::W, Reg::R1, Reg::R10, EV + off::NETNS);
        a.jmp32_imm(Jmp::Ne, Reg::R1, ns as i32, out);
    }
    if f.failed {
        // A failed connect carries its error (sk_err, set before the CLOSE).
        let not_failed = a.label();
        a.jmp_imm(Jmp::Ne, Reg::R8, KIND_FAILED, not_failed);
        read_sk(a, acc.mem(), Reg::R1, Field { off: so.sk_err, size: 4, bits: None }, out);
        a.stx(Size::H, Reg::R10, EV + off::ERROR, Reg::R1);
        a.bind(not_failed);
    }
}

/// Set the event's kind byte.
fn set_kind(a: &mut Asm, kind: i32) {
    a.st(Size::B, Reg::R10, EV + off::KIND, kind);
}

/// A deferred X: `KIND_PENDING` instead of `KIND_CLOSE`.
const _: () = assert!(KIND_PENDING as i32 > KIND_FAILED);
