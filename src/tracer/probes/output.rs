//! The per-CPU counters, and the output: the event handed to the write
//! side of the transport that runs (`crate::transport`).

use super::frame::{stack_ptr, EV, FLIGHT, KEY, PRE, TMP};
use super::maps::MapFds;
use super::stats::{STATS, STAT_IN_FLIGHT, STAT_OUTPUT_FAILED, STAT_RING_FULL};
use crate::asm::{Asm, Helper, Jmp, Reg, Size};
use crate::tracer::event::{off, EVENT_SIZE};
use crate::transport::{Frame, Stat, Stats, SLOT_SIZE};

/// A `stats` element: [`STATS`] u64 counters, one cache line per CPU.
pub const STATS_VALUE_SIZE: u32 = 64;
const _: () = assert!(STATS * 8 <= STATS_VALUE_SIZE as usize);

/// A slot holds the commit word, the event and a clock.
const _: () = assert!(SLOT_SIZE as usize >= 8 + EVENT_SIZE + 8);

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

/// Stamp the event and write it through the transport. Keeps r6-r9;
/// uses KEY, TMP, FLIGHT and PRE.
pub(super) fn output(a: &mut Asm, maps: &MapFds) {
    let f = Frame {
        event: EV,
        event_size: EVENT_SIZE,
        stamp: off::TS,
        key: KEY,
        tmp: TMP,
        flight: FLIGHT,
        pre: PRE,
        stats: maps,
    };
    maps.transport.emit_output(a, &f);
}

/// The counters the transports' write side adds to.
impl Stats for MapFds {
    fn element(&self, a: &mut Asm) {
        stats_element(a, self);
    }

    fn offset(&self, s: Stat) -> i16 {
        (stat(s) * 8) as i16
    }

    fn count(&self, a: &mut Asm, s: Stat) {
        count(a, self, stat(s));
    }

    fn count_failure(&self, a: &mut Asm, s: Stat) {
        count_failure(a, self, stat(s));
    }
}

fn stat(s: Stat) -> usize {
    match s {
        Stat::OutputFailed => STAT_OUTPUT_FAILED,
        Stat::RingFull => STAT_RING_FULL,
        Stat::InFlight => STAT_IN_FLIGHT,
    }
}
