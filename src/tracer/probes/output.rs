//! The write side of the transports: stamp the event on the stack and
//! put it into a slot ring, a perf ring or the ring buffer; and the
//! per-CPU counters.

use super::*;

/// Bytes one event takes in the ring buffer (8-byte header + event).
pub const RINGBUF_RECORD: i32 = 8 + EVENT_SIZE as i32;
const BPF_RB_NO_WAKEUP: i32 = 1;
const BPF_RB_FORCE_WAKEUP: i32 = 2;
const BPF_RB_AVAIL_DATA: i32 = 0;

/// A `stats` element: [`STATS`] u64 counters, one cache line per CPU.
pub const STATS_VALUE_SIZE: u32 = 64;
const _: () = assert!(STATS * 8 <= STATS_VALUE_SIZE as usize);

/// A slot: the commit word, the event, padding, and in its last 8 bytes
/// the clock read before the slot was reserved (see `perf/slots.rs`): two
/// whole cache lines, so a program writing one slot and the reader reading
/// the one before never share a line.
pub const SLOT_SIZE: u32 = 128;
const _: () = assert!(SLOT_SIZE as usize >= 8 + EVENT_SIZE + 8);
/// Tries at reserving a slot: each fails only if a program interrupting
/// this one on its CPU reserved one between our read and our cmpxchg.
pub(super) const RESERVE_TRIES: usize = 4;

/// r0 = this CPU's `stats` element (or 0). Uses the KEY stack slot.
fn stats_element(a: &mut Asm, maps: &MapFds) {
    a.call(Helper::GetSmpProcessorId);
    a.stx(Size::DW, Reg::R10, KEY, Reg::R0);
    a.ld_map_fd(Reg::R1, maps.stats);
    stack_ptr(a, Reg::R2, KEY);
    a.call(Helper::MapLookupElem);
}

/// Add one to this CPU's counter `slot`, atomically. Uses KEY.
pub(super) fn count(a: &mut Asm, maps: &MapFds, slot: usize) {
    let done = a.label();
    stats_element(a, maps);
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, done);
    a.mov64_imm(Reg::R1, 1);
    a.atomic_add(Size::DW, Reg::R0, (slot * 8) as i16, Reg::R1);
    a.bind(done);
}

/// If the helper just called failed (r0 < 0), count it in `slot`. A full
/// perf ring (-ENOSPC) is not counted: perf reports it itself in a LOST
/// record. Uses KEY. The tests are 32-bit: before 6.5 the verifier calls
/// a map's own update/delete function, which returns an int, in place of
/// the helper, so only r0's low half holds the result (-E2BIG was seen as
/// 4294967289 on 5.10 and 6.1).
pub(super) fn count_failure(a: &mut Asm, maps: &MapFds, slot: usize) {
    let done = a.label();
    a.jmp32_imm(Jmp::Sge, Reg::R0, 0, done);
    if slot == STAT_OUTPUT_FAILED {
        a.jmp32_imm(Jmp::Eq, Reg::R0, -libc::ENOSPC, done);
    }
    count(a, maps, slot);
    a.bind(done);
}

/// Stamp the event and copy it into the ring(s). Perf rings and the ring
/// buffer count the output in flight meanwhile (`STAT_IN_FLIGHT`). Keeps
/// r6-r9; uses KEY, TMP and FLIGHT.
pub(super) fn output(a: &mut Asm, maps: &MapFds) {
    if let Some(s) = maps.slots {
        return slot_output(a, maps, s);
    }
    let (counted, uncounted) = (a.label(), a.label());
    stats_element(a, maps);
    a.stx(Size::DW, Reg::R10, FLIGHT, Reg::R0);
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, counted);
    a.mov64_imm(Reg::R1, 1);
    a.atomic_add(Size::DW, Reg::R0, (STAT_IN_FLIGHT * 8) as i16, Reg::R1);
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
    a.atomic_add(Size::DW, Reg::R1, (STAT_IN_FLIGHT * 8) as i16, Reg::R2);
    a.bind(uncounted);
}

/// Read the clock, reserve this CPU's next slot, stamp the event, copy it
/// and the first clock in, commit it (see `perf/slots.rs`). The reader is woken (a record in the wake ring)
/// by the event that makes an eighth or half of the ring queued; it polls
/// for less.
fn slot_output(a: &mut Asm, maps: &MapFds, s: SlotMaps) {
    let (reserved, full, failed, wake, done) = (a.label(), a.label(), a.label(), a.label(), a.label());
    let n = s.n as i32;
    a.call(Helper::KtimeGetNs);
    a.stx(Size::DW, Reg::R10, PRE, Reg::R0);
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
    // r1: our position, r2: the tail we saw. Stamped after reserving: the
    // reader bounds the stamps still to come by the reservations it saw.
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
    a.ldx(Size::DW, Reg::R1, Reg::R10, PRE);
    a.stx(Size::DW, Reg::R0, (SLOT_SIZE - 8) as i16, Reg::R1);
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
    a.mov64_imm(Reg::R5, BPF_RB_NO_WAKEUP);
    let quiet = a.label();
    a.jmp_imm(Jmp::Lt, Reg::R0, from - RINGBUF_RECORD, quiet);
    a.jmp_imm(Jmp::Ge, Reg::R0, to, quiet);
    a.mov64_imm(Reg::R5, BPF_RB_FORCE_WAKEUP);
    a.bind(quiet);
    a.ld_map_fd(Reg::R1, maps.events);
    stack_ptr(a, Reg::R2, EV);
    a.mov64_imm(Reg::R3, EVENT_SIZE as i32);
    a.mov64_reg(Reg::R4, Reg::R5);
    a.call(Helper::RingbufOutput);
    // Fails only when the ring is full (-EAGAIN).
    count_failure(a, maps, STAT_RING_FULL);
}
