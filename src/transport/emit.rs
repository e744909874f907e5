//! What a transport's BPF write side needs of the program it ends: where
//! the event and the scratch slots are on the stack, and the counters.

use crate::asm::{Arch, Asm, Helper, Jmp, Reg, Size};

/// The event and the u64 scratch slots an output may use (offsets from
/// r10), and the counters. An output keeps r6-r9 (r6: the context).
pub struct Frame<'a> {
    /// The event: `event_size` bytes (a multiple of 8) at `event`; the
    /// output writes its stamp (`bpf_ktime_get_ns`) at `event + stamp`.
    pub event: i16,
    pub event_size: usize,
    pub stamp: i16,
    /// A map key (u32 CPU numbers here); the counters use it too.
    pub key: i16,
    pub tmp: i16,
    pub flight: i16,
    pub pre: i16,
    pub stats: &'a dyn Stats,
}

/// The per-CPU counters an output adds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// An output failed.
    OutputFailed,
    /// The ring was full.
    RingFull,
    /// Outputs between their stamp and their commit.
    InFlight,
}

/// How a program reaches its counters (see `tracer::probes`).
pub trait Stats {
    /// r0 = this CPU's counters element, or 0. Uses the key slot.
    fn element(&self, a: &mut Asm);
    /// Byte offset of `s` in an element.
    fn offset(&self, s: Stat) -> i16;
    /// Add one to `s`, atomically. Uses the key slot.
    fn count(&self, a: &mut Asm, s: Stat);
    /// Count `s` if the helper just called failed (r0 < 0).
    fn count_failure(&self, a: &mut Asm, s: Stat);
}

/// Stamp the event and `write` it, counted in `Stat::InFlight` from
/// before the stamp to after the write (the pointer to the element kept in
/// `flight`), so the reader knows when every event stamped is in a ring.
pub(crate) fn in_flight(a: &mut Asm, f: &Frame, write: impl FnOnce(&mut Asm)) {
    let (counted, uncounted) = (a.label(), a.label());
    let at = f.stats.offset(Stat::InFlight);
    f.stats.element(a);
    a.stx(Size::DW, Reg::R10, f.flight, Reg::R0);
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, counted);
    a.mov64_imm(Reg::R1, 1);
    ordered_add(a, Reg::R0, at, Reg::R1);
    a.bind(counted);
    a.call(Helper::KtimeGetNs);
    a.stx(Size::DW, Reg::R10, f.event + f.stamp, Reg::R0);
    write(a);
    a.ldx(Size::DW, Reg::R1, Reg::R10, f.flight);
    a.jmp_imm(Jmp::Eq, Reg::R1, 0, uncounted);
    a.mov64_imm(Reg::R2, -1);
    ordered_add(a, Reg::R1, at, Reg::R2);
    a.bind(uncounted);
}

/// `*(u64 *)(dst + off) += src`, fully ordered: the increment visible
/// before the stamp is read, the decrement only after the write is (a
/// reader that finds no output in flight has every event stamped before
/// its clock in a ring).
/// - x86-64: the plain `BPF_ATOMIC` add, JIT'd as `lock add`: a full
///   barrier.
/// - arm64: the plain add is JIT'd as STADD, which orders nothing (seen:
///   an event handed out late, "1 out of order", in a 1000-connection
///   burst on 6.1 under QEMU); the fetching add (5.12+) is JIT'd as LDADDAL
///   (or LDAXR/STLXR and DMB ISH): fully ordered. `src` gets the old value.
pub(crate) fn ordered_add(a: &mut Asm, dst: Reg, off: i16, src: Reg) {
    match Arch::HOST {
        Arch::X86_64 => a.atomic_add(Size::DW, dst, off, src),
        Arch::Aarch64 => a.atomic_fetch_add(Size::DW, dst, off, src),
    }
}

/// `reg = r10 + off`
pub(crate) fn stack_ptr(a: &mut Asm, reg: Reg, off: i16) {
    a.mov64_reg(reg, Reg::R10);
    a.alu64_imm(crate::asm::Alu::Add, reg, off as i32);
}
