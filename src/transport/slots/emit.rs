//! The programs' side of slot rings: reserve this CPU's next slot, stamp
//! the event, copy it in, commit it (the layout: `mod.rs`).

use super::layout::{RESERVE_TRIES, SLOT_SIZE, TAIL};
use crate::asm::{Alu, Asm, Helper, Jmp, Reg, Size};
use crate::transport::emit::{stack_ptr, Frame, Stat};
use crate::transport::ringbuf::BPF_RB_FORCE_WAKEUP;

/// The slot rings' array and wake-up ring buffer, as the programs see them.
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

impl SlotMaps {
    /// Read the clock, reserve this CPU's next slot, stamp the event, copy
    /// it and the first clock in, commit it. The reader is woken (a record
    /// in the wake ring) by the event that makes an eighth or half of the
    /// ring queued; it polls for less.
    pub(crate) fn emit(&self, a: &mut Asm, f: &Frame) {
        debug_assert!(8 + f.event_size + 8 <= SLOT_SIZE as usize);
        let (reserved, full, failed, wake, done) = (a.label(), a.label(), a.label(), a.label(), a.label());
        let n = self.n as i32;
        a.call(Helper::KtimeGetNs);
        a.stx(Size::DW, Reg::R10, f.pre, Reg::R0);
        a.call(Helper::GetSmpProcessorId);
        a.alu64_imm(Alu::Add, Reg::R0, (self.cpus * self.n) as i32);
        a.stx(Size::W, Reg::R10, f.key, Reg::R0);
        a.ld_map_fd(Reg::R1, self.fd);
        stack_ptr(a, Reg::R2, f.key);
        a.call(Helper::MapLookupElem);
        a.jmp_imm(Jmp::Eq, Reg::R0, 0, failed);
        a.mov64_reg(Reg::R4, Reg::R0);
        for _ in 0..RESERVE_TRIES {
            a.ldx(Size::DW, Reg::R1, Reg::R4, 0);
            a.ldx(Size::DW, Reg::R2, Reg::R4, TAIL as i16);
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
        a.stx(Size::DW, Reg::R10, f.flight, Reg::R1);
        a.alu64_reg(Alu::Sub, Reg::R1, Reg::R2);
        a.alu64_imm(Alu::Add, Reg::R1, 1);
        a.stx(Size::DW, Reg::R10, f.tmp, Reg::R1);
        a.call(Helper::KtimeGetNs);
        a.stx(Size::DW, Reg::R10, f.event + f.stamp, Reg::R0);
        a.call(Helper::GetSmpProcessorId);
        a.alu64_imm(Alu::Lsh, Reg::R0, self.n.trailing_zeros() as i32);
        a.ldx(Size::DW, Reg::R1, Reg::R10, f.flight);
        a.alu64_imm(Alu::And, Reg::R1, n - 1);
        a.alu64_reg(Alu::Or, Reg::R0, Reg::R1);
        a.stx(Size::W, Reg::R10, f.key, Reg::R0);
        a.ld_map_fd(Reg::R1, self.fd);
        stack_ptr(a, Reg::R2, f.key);
        a.call(Helper::MapLookupElem);
        // (Cannot fail: the CPU had a control element.)
        a.jmp_imm(Jmp::Eq, Reg::R0, 0, failed);
        for o in (0..f.event_size as i16).step_by(8) {
            a.ldx(Size::DW, Reg::R1, Reg::R10, f.event + o);
            a.stx(Size::DW, Reg::R0, 8 + o, Reg::R1);
        }
        a.ldx(Size::DW, Reg::R1, Reg::R10, f.pre);
        a.stx(Size::DW, Reg::R0, (SLOT_SIZE - 8) as i16, Reg::R1);
        a.ldx(Size::DW, Reg::R1, Reg::R10, f.flight);
        a.alu64_imm(Alu::Add, Reg::R1, 1);
        a.stx(Size::DW, Reg::R0, 0, Reg::R1);
        a.ldx(Size::DW, Reg::R1, Reg::R10, f.tmp);
        a.jmp_imm(Jmp::Eq, Reg::R1, (n / 8).max(1), wake);
        a.jmp_imm(Jmp::Ne, Reg::R1, (n / 2).max(1), done);
        a.bind(wake);
        a.ld_map_fd(Reg::R1, self.wake);
        stack_ptr(a, Reg::R2, f.tmp);
        a.mov64_imm(Reg::R3, 8);
        a.mov64_imm(Reg::R4, BPF_RB_FORCE_WAKEUP);
        a.call(Helper::RingbufOutput);
        a.ja(done);
        a.bind(full);
        f.stats.count(a, Stat::RingFull);
        a.ja(done);
        a.bind(failed);
        f.stats.count(a, Stat::OutputFailed);
        a.bind(done);
    }
}
