//! The BPF programs, written in the `asm` DSL with offsets from BTF.
//!
//! Every backend shares one design:
//! - `conns` (hash) maps a `struct sock *` to {pid_tgid, comm} of the
//!   task that connected or accepted it: filled in process context, read
//!   when the connection establishes (C) or is closed from softirq (X),
//!   deleted at its X. `closed` (LRU hash) marks sockets whose X went out
//!   without an owner (see `mark_closed`).
//! - C: a connect that reaches ESTABLISHED from SYN_SENT, with the task
//!   recorded when it started (tracepoint: the CLOSE→SYN_SENT transition;
//!   kprobe/fentry: entry of `tcp_v{4,6}_connect`, undone by its return or
//!   fexit on failure).
//! - X: the first move of an established connection towards closing
//!   (ESTABLISHED/CLOSE_WAIT → FIN_WAIT1/LAST_ACK/CLOSE), with the current
//!   task when a task holds the socket lock (`sk_lock.owned`: process
//!   context), else with the owner from `conns`.
//! - A: `syscalls:sys_exit_accept{,4}` in the accepting task (see `accept.rs`).

mod accept;
mod connect;
mod state;

pub use accept::accept_program;
pub use connect::{connect_entry_program, connect_exit_program, ConnectHook};
pub use state::{state_program, StateHook};

use super::event::{off, EVENT_SIZE};
use super::offsets::{Field, SockOffsets};
use crate::asm::{Alu, Asm, Helper, Jmp, Label, Reg, Size};

pub const KIND_CONNECT: i32 = 1;
pub const KIND_ACCEPT: i32 = 2;
pub const KIND_CLOSE: i32 = 3;
pub const KIND_FAILED: i32 = 4;

/// `conns` value: the event's task block {u64 pid_tgid; u64 uid_gid;
/// u64 cgroup; char comm[16]}, copied into events as it is.
pub const CONN_VALUE_SIZE: u32 = (off::KIND - off::TASK) as u32;

/// Slots of the per-CPU `stats` array: failures counted in the kernel.
pub const STAT_OUTPUT_FAILED: i32 = 0;
pub const STAT_CONN_UPDATE_FAILED: i32 = 1;
/// `bpf_ringbuf_output` found the ring buffer full.
pub const STAT_RING_FULL: i32 = 2;
/// Not a failure: how many outputs are between their stamp and their
/// commit on this CPU (see `output`). All zero: nothing stamped is still
/// on its way into a ring, so the reader need not wait for it.
pub const STAT_IN_FLIGHT: i32 = 3;
pub const STATS: u32 = 4;

/// Bytes one event takes in the ring buffer (8-byte header + event).
pub const RINGBUF_RECORD: i32 = 8 + EVENT_SIZE as i32;
const BPF_RB_NO_WAKEUP: i32 = 1;
const BPF_RB_FORCE_WAKEUP: i32 = 2;
const BPF_RB_AVAIL_DATA: i32 = 0;

// TCP states (include/net/tcp_states.h).
const ESTABLISHED: i32 = 1;
const SYN_SENT: i32 = 2;
const FIN_WAIT1: i32 = 4;
const CLOSE: i32 = 7;
const CLOSE_WAIT: i32 = 8;
const LAST_ACK: i32 = 9;
const AF_INET: i32 = 2;
const AF_INET6: i32 = 10;
const IPPROTO_TCP: i32 = 6;

// Stack layout (offsets from r10).
const EV: i16 = -(EVENT_SIZE as i16); // the event, 96 bytes
const KEY: i16 = EV - 8; // map key (sk pointer or pid_tgid)
const VAL: i16 = KEY - CONN_VALUE_SIZE as i16; // conns value
const TMP: i16 = VAL - 8; // probe_read_kernel target
const CHUNK: i16 = TMP; // sock_common copy ends here (grows down)
const MAX_CHUNK: u32 = 96; // sock_common's fields in use span 88 bytes

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
}

impl Filters {
    /// Whether any filter on the event's task is set (an unknown owner
    /// never passes one).
    fn on_task(&self) -> bool {
        self.pid.is_some() || self.uid.is_some() || self.cgroup.is_some() || self.comm.is_some()
    }

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
    /// sk → 1: sockets whose X went out without a known owner (an LRU hash).
    pub closed: i32,
    /// pid_tgid → sk between kprobe entry and return (kprobe backend only).
    pub inflight: Option<i32>,
    /// Per-CPU u64 counters, indexed by the `STAT_*` slots.
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

/// A slot: the commit word, the event, padding to two whole cache lines,
/// so a program writing one slot and the reader reading the one before
/// never share a line (104-byte slots did: 2 load threads, 4 A/B pairs,
/// 141-151 against 118-127 ns per hit).
pub const SLOT_SIZE: u32 = 128;
const _: () = assert!(SLOT_SIZE as usize >= 8 + EVENT_SIZE);
/// Tries at reserving a slot: each fails only if a program interrupting
/// this one on its CPU reserved one between our read and our cmpxchg.
const RESERVE_TRIES: usize = 4;

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

/// How emit_event reads sock_common: in place, or from a stack copy of
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

/// Go to `out` unless the sock in r7 is TCP.
fn check_tcp(a: &mut Asm, so: &SockOffsets, mem: Mem, out: Label) {
    read_sk(a, mem, Reg::R1, so.protocol, out);
    a.jmp_imm(Jmp::Ne, Reg::R1, IPPROTO_TCP, out);
}

/// Copy a task block (a `conns` value) at `src` into the event.
fn owner_to_event(a: &mut Asm, src: Reg) {
    for o in (0..CONN_VALUE_SIZE as i16).step_by(8) {
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
    for o in (0..CONN_VALUE_SIZE as i16).step_by(8) {
        a.st(Size::DW, Reg::R10, EV + off::TASK + o, if o == 8 { -1 } else { 0 });
    }
}

/// Map helper call on `map` with key = r7 (sk) stored at KEY; an update
/// takes its value from r10 + `val`.
fn sk_map_call(a: &mut Asm, map: i32, h: Helper, val: i16) {
    a.stx(Size::DW, Reg::R10, KEY, Reg::R7);
    a.ld_map_fd(Reg::R1, map);
    stack_ptr(a, Reg::R2, KEY);
    if h == Helper::MapUpdateElem {
        stack_ptr(a, Reg::R3, val);
        a.mov64_imm(Reg::R4, 0);
    }
    a.call(h);
}

/// `conns` helper call for the sk in r7; an update stores VAL.
fn conns_call(a: &mut Asm, maps: &MapFds, h: Helper) {
    sk_map_call(a, maps.conns, h, VAL);
}

/// `closed` helper call for the sk in r7; an update stores `value`.
fn closed_call(a: &mut Asm, maps: &MapFds, h: Helper, value: i32) {
    if h == Helper::MapUpdateElem {
        a.st(Size::DW, Reg::R10, TMP, value);
    }
    sk_map_call(a, maps.closed, h, TMP);
}

/// closed[sk in r7] = `mark`: its X went out without a known owner
/// ([`MARK_SHOWN`]), or was not shown because task filters cannot match an
/// unknown owner ([`MARK_HIDDEN`]). The accept program reads it for a
/// socket it finds already closed (reset while `accept()` was taking it):
/// that one gets its A too, and with MARK_HIDDEN its X as well, with the
/// accepting task, so every server-side X has an A under any filter. These
/// marks live in an LRU map of their own (closes of connections older than
/// the tracer leave one each, which nothing deletes), so `conns` can be a
/// plain hash: faster, and nothing in it is evicted while its socket lives.
///
/// The mark's low 16 bits; above them the peer (`peer_word`), so a mark
/// left by an earlier socket at the same address is told apart.
fn mark_closed(a: &mut Asm, maps: &MapFds, mark: i32, peer: Reg) {
    a.alu64_imm(Alu::Lsh, peer, 16);
    a.alu64_imm(Alu::Or, peer, mark);
    a.stx(Size::DW, Reg::R10, TMP, peer);
    sk_map_call(a, maps.closed, Helper::MapUpdateElem, TMP);
}

/// `dst` = skc_daddr << 16 | skc_dport (48 bits: the peer, as a mark
/// records it); `load` reads one sock_common field into a register.
fn peer_word(a: &mut Asm, so: &SockOffsets, dst: Reg, mut load: impl FnMut(&mut Asm, Size, Reg, u32)) {
    load(a, Size::W, dst, so.daddr);
    a.alu64_imm(Alu::Lsh, dst, 16);
    load(a, Size::H, Reg::R1, so.dport);
    a.alu64_reg(Alu::Or, dst, Reg::R1);
}

/// A full memory barrier: a locked add on the stack (x86: any lock-prefixed
/// instruction orders all earlier stores before all later loads). Uses TMP.
fn fence(a: &mut Asm) {
    a.st(Size::DW, Reg::R10, TMP, 0);
    a.mov64_imm(Reg::R1, 0);
    a.atomic_add(Size::DW, Reg::R10, TMP, Reg::R1);
}

pub const MARK_SHOWN: i32 = 1;
pub const MARK_HIDDEN: i32 = 2;
/// Stack slot (u32) of the accept program: emit an X after the A.
const ALSO_X: i16 = CHUNK - MAX_CHUNK as i16 - 8;
// (A deeper stack cost the accept program ~60 ns per run here: keep it shallow.)
/// Stack slot (u64): the `stats[STAT_IN_FLIGHT]` pointer during `output`.
const FLIGHT: i16 = ALSO_X - 8;

/// VAL = the current task's block (pid_tgid in `pid_tgid`);
/// conns[sk in r7] = VAL.
fn remember_owner(a: &mut Asm, maps: &MapFds, pid_tgid: Reg, f: &Filters) {
    task_block(a, VAL, Some(pid_tgid), f);
    conns_call(a, maps, Helper::MapUpdateElem);
    count_failure(a, maps, STAT_CONN_UPDATE_FAILED);
}

/// If the helper just called failed (r0 < 0), add one to `stats[slot]`.
/// A full perf ring (-ENOSPC) is not counted: perf reports it itself in a
/// LOST record. Uses the KEY stack slot.
fn count_failure(a: &mut Asm, maps: &MapFds, slot: i32) {
    let done = a.label();
    a.jmp_imm(Jmp::Sge, Reg::R0, 0, done);
    if slot == STAT_OUTPUT_FAILED {
        a.jmp_imm(Jmp::Eq, Reg::R0, -libc::ENOSPC, done);
    }
    count(a, maps, slot);
    a.bind(done);
}

/// Add one to `stats[slot]`. Uses the KEY stack slot.
fn count(a: &mut Asm, maps: &MapFds, slot: i32) {
    let done = a.label();
    a.st(Size::W, Reg::R10, KEY, slot);
    a.ld_map_fd(Reg::R1, maps.stats);
    stack_ptr(a, Reg::R2, KEY);
    a.call(Helper::MapLookupElem);
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, done);
    a.ldx(Size::DW, Reg::R1, Reg::R0, 0);
    a.alu64_imm(Alu::Add, Reg::R1, 1);
    a.stx(Size::DW, Reg::R0, 0, Reg::R1);
    a.bind(done);
}

/// Go to `out` unless the tgid in the upper half of `reg` is the filtered pid.
fn pid_filter(a: &mut Asm, reg: Reg, f: &Filters, out: Label) {
    if let Some(pid) = f.pid {
        a.mov64_reg(Reg::R1, reg);
        a.alu64_imm(Alu::Rsh, Reg::R1, 32);
        a.jmp32_imm(Jmp::Ne, Reg::R1, pid as i32, out);
    }
}

/// How emit_event will read sock_common: in place, or (probe-read
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

/// Shared tail: fill the event's tuple from the sock in r7, kind in r8
/// (the task block already in place), apply the filters, output.
/// How the shared tail reads the sock and what it outputs.
struct Tail {
    acc: Access,
    sport: Sport,
    /// Output the event once more as an X when the ALSO_X slot says so.
    also_x: bool,
}

fn emit_event(a: &mut Asm, so: &SockOffsets, tail: Tail, f: &Filters, maps: &MapFds, out: Label) {
    let Tail { acc, sport, also_x } = tail;
    let (v4, ports) = (a.label(), a.label());
    for o in (off::KIND..EVENT_SIZE as i16).step_by(8) {
        a.st(Size::DW, Reg::R10, EV + o, 0);
    }
    a.stx(Size::B, Reg::R10, EV + off::KIND, Reg::R8);
    task_filters(a, f, out);
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
        let mem = if acc == Access::Direct { Mem::Direct } else { Mem::Probe };
        read_sk(a, mem, Reg::R1, Field { off: so.sk_err, size: 4, bits: None }, out);
        a.stx(Size::H, Reg::R10, EV + off::ERROR, Reg::R1);
        a.bind(not_failed);
    }
    output(a, maps);
    if also_x {
        // The A of a socket whose X was hidden (MARK_HIDDEN): now its X.
        // (Written out twice, not as a loop: older verifiers refuse back-edges.)
        let x = a.label();
        a.ldx(Size::W, Reg::R1, Reg::R10, ALSO_X);
        a.jmp_imm(Jmp::Eq, Reg::R1, MARK_HIDDEN, x);
        a.jmp_imm(Jmp::Ne, Reg::R1, 0, out);
        claim_missed_close(a, so, acc, maps, out);
        a.ldx(Size::W, Reg::R1, Reg::R10, ALSO_X);
        a.jmp_imm(Jmp::Ne, Reg::R1, MARK_HIDDEN, out);
        a.bind(x);
        a.st(Size::B, Reg::R10, EV + off::KIND, KIND_CLOSE);
        output(a, maps);
    }
    a.ja(out);
}

/// The accept program recorded the owner of the sk in r7 (conns) and sent
/// its A. A reset handled on another CPU meanwhile may have looked for the
/// owner before it was recorded and marked the socket instead (state.rs).
/// Each side writes, fences, then looks for the other's write, so at least
/// one sees the other; whoever deletes the mark reports the X. Here: a mark
/// with this socket's peer → ALSO_X = the mark, and the now stale owner
/// entry deleted; otherwise `out`.
fn claim_missed_close(a: &mut Asm, so: &SockOffsets, acc: Access, maps: &MapFds, out: Label) {
    fence(a);
    closed_call(a, maps, Helper::MapLookupElem, 0);
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, out);
    a.ldx(Size::DW, Reg::R9, Reg::R0, 0);
    peer_word(a, so, Reg::R8, |a, size, dst, off| acc.load(a, size, dst, off));
    a.mov64_reg(Reg::R1, Reg::R9);
    a.alu64_imm(Alu::Rsh, Reg::R1, 16);
    a.jmp_reg(Jmp::Ne, Reg::R1, Reg::R8, out);
    a.alu64_imm(Alu::And, Reg::R9, 0xffff);
    a.stx(Size::W, Reg::R10, ALSO_X, Reg::R9);
    closed_call(a, maps, Helper::MapDeleteElem, 0);
    a.jmp_imm(Jmp::Ne, Reg::R0, 0, out);
    conns_call(a, maps, Helper::MapDeleteElem);
}

/// Stamp the event and copy it into the ring(s), counted in flight
/// meanwhile (`STAT_IN_FLIGHT`).
fn output(a: &mut Asm, maps: &MapFds) {
    if let Some(s) = maps.slots {
        return slot_output(a, maps, s);
    }
    let (counted, uncounted) = (a.label(), a.label());
    a.st(Size::W, Reg::R10, KEY, STAT_IN_FLIGHT);
    a.ld_map_fd(Reg::R1, maps.stats);
    stack_ptr(a, Reg::R2, KEY);
    a.call(Helper::MapLookupElem);
    a.stx(Size::DW, Reg::R10, FLIGHT, Reg::R0);
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, counted);
    a.mov64_imm(Reg::R1, 1);
    a.atomic_add(Size::DW, Reg::R0, 0, Reg::R1);
    a.bind(counted);
    a.call(Helper::KtimeGetNs);
    a.stx(Size::DW, Reg::R10, EV + off::TS, Reg::R0);
    if let Some((from, to)) = maps.ringbuf {
        ringbuf_output(a, maps, from as i32, to as i32);
    } else {
        a.mov64_reg(Reg::R1, Reg::R6);
        a.ld_map_fd(Reg::R2, maps.events);
        a.mov32_imm(Reg::R3, -1); // BPF_F_CURRENT_CPU: exactly 0xffffffff
        stack_ptr(a, Reg::R4, EV);
        a.mov64_imm(Reg::R5, EVENT_SIZE as i32);
        a.call(Helper::PerfEventOutput);
        count_failure(a, maps, STAT_OUTPUT_FAILED);
    }
    a.ldx(Size::DW, Reg::R1, Reg::R10, FLIGHT);
    a.jmp_imm(Jmp::Eq, Reg::R1, 0, uncounted);
    a.mov64_imm(Reg::R2, -1);
    a.atomic_add(Size::DW, Reg::R1, 0, Reg::R2);
    a.bind(uncounted);
}

/// Reserve this CPU's next slot, stamp the event, copy it in, commit it
/// (see `perf/slots.rs`). The reader is woken (a record in the wake ring)
/// by the event that makes an eighth or half of the ring queued; it polls
/// for less. Uses KEY, TMP and FLIGHT; keeps r6-r9.
fn slot_output(a: &mut Asm, maps: &MapFds, s: SlotMaps) {
    let (reserved, full, failed, wake, done) = (a.label(), a.label(), a.label(), a.label(), a.label());
    let n = s.n as i32;
    a.call(Helper::GetSmpProcessorId);
    a.alu64_imm(Alu::Add, Reg::R0, (s.cpus * s.n) as i32);
    a.stx(Size::W, Reg::R10, KEY, Reg::R0);
    a.ld_map_fd(Reg::R1, s.fd);
    stack_ptr(a, Reg::R2, KEY);
    a.call(Helper::MapLookupElem);
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, failed);
    a.mov64_reg(Reg::R4, Reg::R0);
    for _ in 0..RESERVE_TRIES {
        a.ldx(Size::DW, Reg::R1, Reg::R4, 0);
        a.ldx(Size::DW, Reg::R2, Reg::R4, crate::perf::SLOT_TAIL as i16);
        a.mov64_reg(Reg::R3, Reg::R1);
        a.alu64_reg(Alu::Sub, Reg::R3, Reg::R2);
        a.jmp_imm(Jmp::Ge, Reg::R3, n, full);
        a.mov64_reg(Reg::R0, Reg::R1);
        a.mov64_reg(Reg::R3, Reg::R1);
        a.alu64_imm(Alu::Add, Reg::R3, 1);
        a.atomic_cmpxchg(Size::DW, Reg::R4, 0, Reg::R3);
        a.jmp_reg(Jmp::Eq, Reg::R0, Reg::R1, reserved);
    }
    a.ja(failed);
    a.bind(reserved);
    // r1: our position, r2: the tail we saw. Stamped after reserving: an
    // event stamped before the reader's clock is already reserved then.
    a.stx(Size::DW, Reg::R10, FLIGHT, Reg::R1);
    a.alu64_reg(Alu::Sub, Reg::R1, Reg::R2);
    a.alu64_imm(Alu::Add, Reg::R1, 1);
    a.stx(Size::DW, Reg::R10, TMP, Reg::R1);
    a.call(Helper::KtimeGetNs);
    a.stx(Size::DW, Reg::R10, EV + off::TS, Reg::R0);
    a.call(Helper::GetSmpProcessorId);
    a.alu64_imm(Alu::Lsh, Reg::R0, s.n.trailing_zeros() as i32);
    a.ldx(Size::DW, Reg::R1, Reg::R10, FLIGHT);
    a.alu64_imm(Alu::And, Reg::R1, n - 1);
    a.alu64_reg(Alu::Or, Reg::R0, Reg::R1);
    a.stx(Size::W, Reg::R10, KEY, Reg::R0);
    a.ld_map_fd(Reg::R1, s.fd);
    stack_ptr(a, Reg::R2, KEY);
    a.call(Helper::MapLookupElem);
    // (Cannot fail: the CPU had a control element.)
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, failed);
    for o in (0..EVENT_SIZE as i16).step_by(8) {
        a.ldx(Size::DW, Reg::R1, Reg::R10, EV + o);
        a.stx(Size::DW, Reg::R0, 8 + o, Reg::R1);
    }
    a.ldx(Size::DW, Reg::R1, Reg::R10, FLIGHT);
    a.alu64_imm(Alu::Add, Reg::R1, 1);
    a.stx(Size::DW, Reg::R0, 0, Reg::R1);
    a.ldx(Size::DW, Reg::R1, Reg::R10, TMP);
    a.jmp_imm(Jmp::Eq, Reg::R1, (n / 8).max(1), wake);
    a.jmp_imm(Jmp::Ne, Reg::R1, (n / 2).max(1), done);
    a.bind(wake);
    a.ld_map_fd(Reg::R1, s.wake);
    stack_ptr(a, Reg::R2, TMP);
    a.mov64_imm(Reg::R3, 8);
    a.mov64_imm(Reg::R4, BPF_RB_FORCE_WAKEUP);
    a.call(Helper::RingbufOutput);
    a.ja(done);
    a.bind(full);
    count(a, maps, STAT_RING_FULL);
    a.ja(done);
    a.bind(failed);
    count(a, maps, STAT_OUTPUT_FAILED);
    a.bind(done);
}

/// Copy the event into the ring buffer. The reader is woken only by the
/// record that takes the queued bytes across `from` (or by records finding
/// less than `to` queued, in case CPUs stepped over it together); it polls
/// for less. A wake-up per event would cost more than the event.
fn ringbuf_output(a: &mut Asm, maps: &MapFds, from: i32, to: i32) {
    a.ld_map_fd(Reg::R1, maps.events);
    a.mov64_imm(Reg::R2, BPF_RB_AVAIL_DATA);
    a.call(Helper::RingbufQuery);
    a.mov64_imm(Reg::R8, BPF_RB_NO_WAKEUP);
    let quiet = a.label();
    a.jmp_imm(Jmp::Lt, Reg::R0, from - RINGBUF_RECORD, quiet);
    a.jmp_imm(Jmp::Ge, Reg::R0, to, quiet);
    a.mov64_imm(Reg::R8, BPF_RB_FORCE_WAKEUP);
    a.bind(quiet);
    a.ld_map_fd(Reg::R1, maps.events);
    stack_ptr(a, Reg::R2, EV);
    a.mov64_imm(Reg::R3, EVENT_SIZE as i32);
    a.mov64_reg(Reg::R4, Reg::R8);
    a.call(Helper::RingbufOutput);
    // Fails only when the ring is full (-EAGAIN).
    count_failure(a, maps, STAT_RING_FULL);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tracer::offsets::FdOffsets;

    pub fn offsets() -> SockOffsets {
        SockOffsets {
            daddr: 0,
            rcv_saddr: 4,
            dport: 12,
            num: 14,
            family: 16,
            state: 18,
            v6: Some((56, 72)),
            netns: Some((48, 176)),
            protocol: Field { off: 516, size: 2, bits: None },
            lock_owned: 140,
            inet_sport: 814,
            sk_socket: 272,
            sk_err: 280,
        }
    }

    /// A disassembly's instructions without their `N: ` prefixes (labels kept).
    fn ops(text: &str) -> impl Iterator<Item = &str> {
        text.lines().map(|l| l.split(": ").nth(1).unwrap_or(l).trim())
    }

    pub fn fd_offsets() -> FdOffsets {
        FdOffsets {
            task_files: 2000,
            files_fdt: 32,
            fdt_max_fds: 0,
            fdt_fd: 8,
            file_private_data: 200,
            socket_sk: 24,
        }
    }

    pub const MAPS: MapFds =
        MapFds { events: 5, ringbuf: None, conns: 6, closed: 9, inflight: Some(7), stats: 8, slots: None };
    pub const RB_MAPS: MapFds = MapFds { ringbuf: Some((1 << 20, (1 << 20) + 104)), ..MAPS };

    const HOOKS: [StateHook; 3] =
        [StateHook::TpBtf, StateHook::Fentry, StateHook::Kprobe { arg0: 112, arg1: 104 }];

    #[test]
    fn programs_assemble_with_and_without_filters() {
        for f in [Filters::default(), all_filters()] {
            for hook in HOOKS {
                let p = state_program(&offsets(), hook, &f, &MAPS).unwrap();
                assert!(p.len() < 360, "{hook:?} state program grew to {}", p.len());
            }
            let p = accept_program(&offsets(), &fd_offsets(), 16, &f, &MAPS).unwrap();
            assert!(p.len() < 360, "accept program grew to {}", p.len());
            for hook in [ConnectHook::Fentry, ConnectHook::Kprobe { arg0: 112, ret: 80 }] {
                connect_entry_program(hook, &f, &MAPS).unwrap();
                connect_exit_program(hook, 3, &MAPS).unwrap();
            }
        }
    }

    fn all_filters() -> Filters {
        Filters {
            pid: Some(4242),
            netns: Some(4026531840),
            family: Some(6),
            uid: Some(0x4d2),
            cgroup: Some(0x1234_5678_9abc),
            ports: vec![8080, 443],
            comm: Some(*b"curl\0\0\0\0\0\0\0\0\0\0\0\0"),
            failed: true,
            task_ids: false,
            no_netns: true,
        }
    }

    #[test]
    fn every_filter_reaches_the_code() {
        let f = all_filters();
        for hook in HOOKS {
            let text = state_program(&offsets(), hook, &f, &MAPS).unwrap().to_string();
            let plain = state_program(&offsets(), hook, &Filters::default(), &MAPS).unwrap().to_string();
            for (what, needle) in [
                ("uid", "0x4d2"),
                ("cgroup", "0x123456789abc"),
                ("port 8080 host order", "0x1f90"),
                ("port 443 network order", "0xbb01"),
                ("comm", "0x6c727563"),
                ("uid helper (implied by the uid filter)", "bpf_get_current_uid_gid"),
                ("cgroup helper", "bpf_get_current_cgroup_id"),
            ] {
                assert!(text.contains(needle), "{what} missing in {hook:?}:\n{text}");
                assert!(!plain.contains(needle), "{what} without the filter in {hook:?}");
            }
        }
    }

    #[test]
    fn failed_connects_only_on_request() {
        // KIND_FAILED = 4 is moved into r8 only when failed connects are reported.
        for hook in HOOKS {
            let on = Filters { failed: true, ..Filters::default() };
            let text = state_program(&offsets(), hook, &on, &MAPS).unwrap().to_string();
            assert!(text.contains("r8 = 4"), "{hook:?}:\n{text}");
            let off = state_program(&offsets(), hook, &Filters::default(), &MAPS).unwrap().to_string();
            assert!(!off.contains("r8 = 4"), "{hook:?}");
        }
    }

    #[test]
    fn filters_reach_the_code() {
        let f = Filters { pid: Some(4242), netns: Some(4026531840), ..Filters::default() };
        for hook in HOOKS {
            let text = state_program(&offsets(), hook, &f, &MAPS).unwrap().to_string();
            assert!(text.contains("0x1092"), "pid filter missing:\n{text}");
            assert!(text.contains("0xf0000000"), "netns filter missing:\n{text}");
            let plain = state_program(&offsets(), hook, &Filters::default(), &MAPS).unwrap().to_string();
            assert!(!plain.contains("0x1092") && !plain.contains("0xf0000000"));
        }
    }

    #[test]
    fn current_cpu_flag_is_32_bit_all_ones() {
        let p = state_program(&offsets(), StateHook::TpBtf, &Filters::default(), &MAPS).unwrap();
        // mov32 r3, -1 = b4 03 00 00 ff ff ff ff, never the sign-extending b7.
        let bytes = p.to_bytes();
        assert!(bytes.chunks(8).any(|c| c == [0xb4, 0x03, 0, 0, 0xff, 0xff, 0xff, 0xff]));
        assert!(!bytes.chunks(8).any(|c| c == [0xb7, 0x03, 0, 0, 0xff, 0xff, 0xff, 0xff]));
    }

    #[test]
    fn probe_backends_never_load_through_sk_directly() {
        // With Mem::Probe, r7 holds a plain number: any `*(rX)(r7 + off)` load
        // would be rejected by the verifier (kprobe) or read garbage.
        let kp = StateHook::Kprobe { arg0: 112, arg1: 104 };
        for text in [
            state_program(&offsets(), kp, &Filters::default(), &MAPS).unwrap().to_string(),
            accept_program(&offsets(), &fd_offsets(), 16, &Filters::default(), &MAPS).unwrap().to_string(),
        ] {
            assert!(!text.contains("(r7 +"), "direct load through sk:\n{text}");
        }
        let tp = state_program(&offsets(), StateHook::TpBtf, &Filters::default(), &MAPS).unwrap().to_string();
        assert!(tp.contains("(r7 +16)"), "tp_btf reads skc_family directly:\n{tp}");
    }

    #[test]
    fn output_failures_are_counted() {
        // After perf_event_output: `if r0 s>= 0 goto done`, then stats[0] += 1.
        let text =
            state_program(&offsets(), StateHook::TpBtf, &Filters::default(), &MAPS).unwrap().to_string();
        let after = text.split("call bpf_perf_event_output#25").nth(1).unwrap();
        let lines: Vec<&str> = ops(after).skip(1).take(6).collect();
        assert_eq!(lines[0].split(" goto").next().unwrap(), "if r0 s>= 0x0", "{after}");
        assert_eq!(lines[1].split(" goto").next().unwrap(), "if r0 == 0xffffffe4", "{after}");
        assert_eq!(lines[2], "*(u32 *)(r10 -104) = 0", "{after}");
        assert_eq!(lines[3], "r1 = map_fd(8) ll", "{after}");
    }

    #[test]
    fn every_output_is_counted_in_flight_from_stamp_to_commit() {
        let kp = StateHook::Kprobe { arg0: 112, arg1: 104 };
        for maps in [MAPS, RB_MAPS] {
            let f = Filters::default();
            for p in [
                state_program(&offsets(), StateHook::TpBtf, &f, &maps).unwrap(),
                state_program(&offsets(), kp, &f, &maps).unwrap(),
                accept_program(&offsets(), &fd_offsets(), 16, &f, &maps).unwrap(),
            ] {
                let text = p.to_string();
                let lines: Vec<&str> = ops(&text).collect();
                let stamps: Vec<usize> =
                    (0..lines.len()).filter(|&i| lines[i] == "call bpf_ktime_get_ns#5").collect();
                assert!(!stamps.is_empty(), "{text}");
                let commit = if maps.ringbuf.is_some() {
                    "call bpf_ringbuf_output#130"
                } else {
                    "call bpf_perf_event_output#25"
                };
                for &at in &stamps {
                    // Before the stamp: stats[STAT_IN_FLIGHT] += 1, its pointer kept in FLIGHT.
                    let before = &lines[at.saturating_sub(11)..at];
                    assert!(
                        before.contains(&format!("*(u32 *)(r10 {KEY}) = {STAT_IN_FLIGHT}").as_str()),
                        "{before:?}"
                    );
                    assert!(before.contains(&format!("*(u64 *)(r10 {FLIGHT}) = r0").as_str()), "{before:?}");
                    assert!(
                        before.contains(&"lock *(u64 *)(r0 +0) += r1") && before.contains(&"r1 = 1"),
                        "{before:?}"
                    );
                    // After the commit (and its failure count): -= 1 through the kept pointer.
                    let c = at + lines[at..].iter().position(|l| *l == commit).expect("committed");
                    let after = &lines[c..];
                    let load =
                        after.iter().position(|l| *l == format!("r1 = *(u64 *)(r10 {FLIGHT})")).unwrap();
                    assert_eq!(after[load + 2], "r2 = -1", "{after:?}");
                    assert_eq!(after[load + 3], "lock *(u64 *)(r1 +0) += r2", "{after:?}");
                    assert!(!after[..load].contains(&"call bpf_ktime_get_ns#5"), "{after:?}");
                }
                let ups = lines.iter().filter(|l| **l == "lock *(u64 *)(r0 +0) += r1").count();
                let downs = lines.iter().filter(|l| **l == "lock *(u64 *)(r1 +0) += r2").count();
                assert_eq!((ups, downs), (stamps.len(), stamps.len()), "{text}");
            }
        }
    }

    #[test]
    fn ring_buffer_output_wakes_only_around_the_watermark() {
        for text in [
            state_program(&offsets(), StateHook::TpBtf, &Filters::default(), &RB_MAPS).unwrap().to_string(),
            accept_program(&offsets(), &fd_offsets(), 16, &Filters::default(), &RB_MAPS).unwrap().to_string(),
        ] {
            assert!(!text.contains("bpf_perf_event_output"), "{text}");
            let at = text.find("call bpf_ringbuf_query").expect("queried before output");
            let lines: Vec<&str> = ops(&text[at..]).take(12).collect();
            // NO_WAKEUP unless 1 MiB - 104 <= queued < 1 MiB + 104, then FORCE_WAKEUP.
            assert_eq!(lines[1], "r8 = 1", "{text}");
            assert!(lines[2].starts_with("if r0 < 0xfff98 goto"), "{text}");
            assert!(lines[3].starts_with("if r0 >= 0x100068 goto"), "{text}");
            assert_eq!(lines[4], "r8 = 2", "{text}");
            assert!(lines.contains(&"call bpf_ringbuf_output#130"), "{text}");
            // A failed output is counted in slot 2 (STAT_RING_FULL), -ENOSPC included.
            let after = text.split("call bpf_ringbuf_output#130").nth(1).unwrap();
            assert!(after.contains(&format!("*(u32 *)(r10 {KEY}) = {STAT_RING_FULL}")), "{after}");
            assert!(!after.lines().nth(2).unwrap().contains("0xffffffe4"), "{after}");
        }
    }

    pub const SLOT_MAPS: MapFds =
        MapFds { slots: Some(SlotMaps { fd: 10, wake: 11, n: 1024, cpus: 2 }), inflight: None, ..MAPS };

    #[test]
    fn slot_output_reserves_then_stamps_copies_and_commits_last() {
        let kp = StateHook::Kprobe { arg0: 112, arg1: 104 };
        let f = Filters::default();
        for p in [
            state_program(&offsets(), StateHook::TpBtf, &f, &SLOT_MAPS).unwrap(),
            state_program(&offsets(), kp, &f, &SLOT_MAPS).unwrap(),
            accept_program(&offsets(), &fd_offsets(), 16, &f, &SLOT_MAPS).unwrap(),
        ] {
            let text = p.to_string();
            let lines: Vec<&str> = ops(&text).filter(|l| !(l.starts_with('L') && l.ends_with(':'))).collect();
            assert!(!text.contains("perf_event_output") && !text.contains("ringbuf_query"), "{text}");
            assert!(!text.contains("map_fd(5)"), "the perf map is not used:\n{text}");
            let stamps: Vec<usize> =
                (0..lines.len()).filter(|&i| lines[i] == "call bpf_ktime_get_ns#5").collect();
            assert!(!stamps.is_empty(), "{text}");
            let cas = "r0 = atomic64_cmpxchg((u64 *)(r4 +0), r0, r3)";
            assert_eq!(lines.iter().filter(|l| **l == cas).count(), stamps.len() * RESERVE_TRIES, "{text}");
            for &at in &stamps {
                let before = &lines[..at];
                let res = before.iter().rposition(|l| *l == cas).unwrap();
                // This CPU's control element (after 2 CPUs x 1024 slots); full at 1024 queued.
                let start =
                    before[..res].iter().rposition(|l| *l == "call bpf_get_smp_processor_id#8").unwrap();
                assert_eq!(before[start + 1], "r0 += 2048", "{before:?}");
                assert!(before[res - 4].starts_with("if r3 >= 0x400 goto"), "{:?}", &before[res - 6..]);
                // The position is kept in FLIGHT before the stamp.
                assert!(before[res..].contains(&format!("*(u64 *)(r10 {FLIGHT}) = r1").as_str()));
                let after = &lines[at..];
                // The slot: cpu << 10 | position & 1023.
                assert!(after[..8].contains(&"r0 <<= 10") && after[..8].contains(&"r1 &= 1023"), "{after:?}");
                // The 96-byte event after the commit word, then the commit (position + 1) last.
                let body: Vec<usize> = (1..=12)
                    .map(|k| {
                        after.iter().position(|l| *l == format!("*(u64 *)(r0 +{}) = r1", 8 * k)).unwrap()
                    })
                    .collect();
                assert!(body.windows(2).all(|w| w[0] < w[1]), "{after:?}");
                let commit = after.iter().position(|l| *l == "*(u64 *)(r0 +0) = r1").unwrap();
                assert!(commit > body[11], "{after:?}");
                assert_eq!(after[commit - 2], format!("r1 = *(u64 *)(r10 {FLIGHT})"));
                assert_eq!(after[commit - 1], "r1 += 1");
                // Woken at 128 or 512 queued, through the wake ring, forced.
                assert!(after[commit + 2].starts_with("if r1 == 0x80 goto"), "{after:?}");
                assert!(after[commit + 3].starts_with("if r1 != 0x200 goto"), "{after:?}");
                assert_eq!(after[commit + 4], "r1 = map_fd(11) ll");
                assert_eq!(after[commit + 8], "r4 = 2");
                assert_eq!(after[commit + 9], "call bpf_ringbuf_output#130");
            }
            // A full ring is counted in STAT_RING_FULL, a failed reservation in STAT_OUTPUT_FAILED.
            assert!(text.contains(&format!("*(u32 *)(r10 {KEY}) = {STAT_RING_FULL}")), "{text}");
        }
    }

    #[test]
    fn sport_is_read_as_inet_sport_only_for_close() {
        let text =
            state_program(&offsets(), StateHook::TpBtf, &Filters::default(), &MAPS).unwrap().to_string();
        // skc_num (14) directly; inet_sport (814) through a probe read, after `if r9 != 7`.
        assert!(text.contains("*(u16 *)(r7 +14)"), "{text}");
        assert!(text.contains("r3 += 814"), "{text}");
        assert!(text.contains("if r9 == 0x7 goto"), "{text}");
    }

    #[test]
    fn accept_reads_max_fds_and_fd_together() {
        let reads = |fo: &FdOffsets| {
            let text = accept_program(&offsets(), fo, 16, &Filters::default(), &MAPS).unwrap().to_string();
            let ops: Vec<String> = ops(&text).map(str::to_string).collect();
            let sizes: Vec<String> = ops
                .windows(2)
                .filter(|w| w[1].starts_with("call bpf_probe_read_kernel"))
                .map(|w| w[0].clone())
                .collect();
            sizes
        };
        // fdtable: max_fds at 0, fd at 8: one 16-byte read into TMP - 8 and TMP.
        let together = reads(&fd_offsets());
        assert_eq!(together.iter().filter(|s| *s == "r2 = 16").count(), 1, "{together:?}");
        let apart = reads(&FdOffsets { fdt_fd: 64, ..fd_offsets() });
        assert_eq!(apart.iter().filter(|s| *s == "r2 = 16").count(), 0, "{apart:?}");
        assert_eq!(apart.len(), together.len() + 1, "one read more when apart");
    }

    #[test]
    fn unknown_owner_x_is_hidden_under_task_filters_and_emitted_by_accept() {
        let mark = |v: i32| format!("r8 |= {v}\n");
        let plain =
            state_program(&offsets(), StateHook::TpBtf, &Filters::default(), &MAPS).unwrap().to_string();
        let by_pid = Filters { pid: Some(4242), ..Filters::default() };
        let filtered = state_program(&offsets(), StateHook::TpBtf, &by_pid, &MAPS).unwrap().to_string();
        // Process-context X without owner: always MARK_SHOWN; softirq X of
        // an unknown owner: MARK_SHOWN and an X, or MARK_HIDDEN under filters.
        assert_eq!(plain.matches(&mark(MARK_SHOWN)).count(), 2, "{plain}");
        assert_eq!(plain.matches(&mark(MARK_HIDDEN)).count(), 0, "{plain}");
        assert_eq!(filtered.matches(&mark(MARK_SHOWN)).count(), 1, "{filtered}");
        assert_eq!(filtered.matches(&mark(MARK_HIDDEN)).count(), 1, "{filtered}");
        // The accept program copies the mark to ALSO_X and can output twice
        // (A, then X), written out twice: no back-edge.
        let acc = accept_program(&offsets(), &fd_offsets(), 16, &by_pid, &MAPS).unwrap();
        let text = acc.to_string();
        assert_eq!(text.matches("call bpf_perf_event_output").count(), 2, "{text}");
        assert!(text.contains(&format!("*(u32 *)(r10 {ALSO_X}) = r1")), "{text}");
        assert!(text.contains(&format!("if r1 != 0x{MARK_HIDDEN:x} goto")), "{text}");
        assert!(
            text.contains("r1 = *(u64 *)(r0 +0)\n") && text.contains("r1 &= 65535"),
            "mark without peer:\n{text}"
        );
        let insns = acc.insns();
        for (i, insn) in insns.iter().enumerate() {
            let class = insn.code & 0x07;
            if (class == 0x05 || class == 0x06) && insn.code != 0x85 && insn.code != 0x95 {
                assert!(insn.off >= 0, "back-edge at insn {i}:\n{text}");
            }
        }
    }

    #[test]
    fn a_reset_racing_accept_is_claimed_by_one_side() {
        let ops = |text: &str| -> Vec<String> { ops(text).map(str::to_string).collect() };
        let fence = format!("lock *(u64 *)(r10 {TMP}) += r1");
        let by_pid = Filters { pid: Some(4242), ..Filters::default() };
        // State, under task filters: MARK_HIDDEN (with the peer), fence, look
        // for an owner recorded since, claim by deleting the mark, X.
        let st = ops(&state_program(&offsets(), StateHook::TpBtf, &by_pid, &MAPS).unwrap().to_string());
        let hidden = st.iter().position(|l| *l == format!("r8 |= {MARK_HIDDEN}")).unwrap();
        let f = hidden + st[hidden..].iter().position(|l| *l == fence).expect("fence after the mark");
        assert!(st[hidden..f].contains(&"call bpf_map_update_elem#2".to_string()), "{st:?}");
        let after: Vec<&str> =
            st[f..].iter().map(|s| s.as_str()).filter(|l| l.starts_with("call")).take(3).collect();
        assert_eq!(
            after,
            ["call bpf_map_lookup_elem#1", "call bpf_map_delete_elem#3", "call bpf_map_delete_elem#3"]
        );
        let claimed = f + st[f..].iter().position(|l| l.starts_with("call bpf_map_delete_elem")).unwrap();
        assert!(
            st[claimed + 1].starts_with("if r0 != 0x0 goto"),
            "only the deleter reports: {:?}",
            &st[claimed..]
        );
        // Without task filters that X went out (unknown owner): no claim.
        let plain =
            state_program(&offsets(), StateHook::TpBtf, &Filters::default(), &MAPS).unwrap().to_string();
        assert!(!plain.contains(&fence), "{plain}");
        // Accept: after the A, fence, then a mark with this socket's peer
        // (daddr << 16 | dport from the copy) is claimed; its X follows.
        for f in [Filters::default(), by_pid] {
            let ac = ops(&accept_program(&offsets(), &fd_offsets(), 16, &f, &MAPS).unwrap().to_string());
            let outputs: Vec<usize> =
                (0..ac.len()).filter(|&i| ac[i] == "call bpf_perf_event_output#25").collect();
            assert_eq!(outputs.len(), 2);
            let fe = ac.iter().position(|l| *l == fence).expect("fence");
            assert!(outputs[0] < fe && fe < outputs[1], "between the A and the X");
            let claim = &ac[fe..outputs[1]];
            for want in ["r1 >>= 16", "if r1 != r8 goto", "r9 &= 65535", "call bpf_map_delete_elem#3"] {
                assert!(claim.iter().any(|l| l.starts_with(want)), "{want}: {claim:?}");
            }
        }
    }

    #[test]
    fn netns_is_read_only_when_shown_or_filtered() {
        // skc_net at 48, then net->ns.inum at 176 (two probe reads).
        let reads_ns = |f: &Filters| {
            let kp = StateHook::Kprobe { arg0: 112, arg1: 104 };
            [
                state_program(&offsets(), StateHook::TpBtf, f, &MAPS).unwrap().to_string(),
                state_program(&offsets(), kp, f, &MAPS).unwrap().to_string(),
                accept_program(&offsets(), &fd_offsets(), 16, f, &MAPS).unwrap().to_string(),
            ]
            .map(|t| t.contains("r3 += 176"))
        };
        assert_eq!(reads_ns(&Filters::default()), [true; 3]);
        let hidden = Filters { no_netns: true, ..Filters::default() };
        assert_eq!(reads_ns(&hidden), [false; 3]);
        assert_eq!(reads_ns(&Filters { netns: Some(4026531840), ..hidden }), [true; 3]);
    }

    #[test]
    fn copied_access_fits_the_stack() {
        let (lo, hi) = offsets().common_span();
        assert_eq!((lo, hi), (0, 88));
        let acc = Access::Copied { lo, hi };
        assert_eq!(acc.base(), TMP - 88);
        assert!(acc.base() >= -512);
    }
}
