//! Reading kernel memory: probe_read_kernel into the stack, fields of the
//! sock in `SK`, and how a program reaches sock_common.

use super::frame::{stack_ptr, CHUNK, MAX_CHUNK, SK, TMP};
use super::kernel::IPPROTO_TCP;
use crate::asm::{Alu, Asm, Helper, Jmp, Label, Reg, Size};
use crate::tracer::offsets::{Field, SockOffsets};

/// How a program reads kernel memory: direct loads through BTF-typed
/// pointers (tp_btf, fentry) or `probe_read_kernel` (tracepoint, kprobe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mem {
    Direct,
    Probe,
}

/// How `fill_event` reads sock_common: in place, or from a stack copy of
/// bytes [lo, hi) made with one probe_read_kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access {
    Direct,
    Copied { lo: u32, hi: u32 },
}

impl Access {
    pub(super) fn base(self) -> i16 {
        match self {
            Access::Direct => 0,
            Access::Copied { lo, hi } => CHUNK - ((hi - lo).div_ceil(8) * 8) as i16,
        }
    }

    /// `dst = *(size *)(sk + field)`.
    pub(super) fn load(self, a: &mut Asm, size: Size, dst: Reg, field: u32) {
        match self {
            Access::Direct => a.ldx(size, dst, SK, field as i16),
            Access::Copied { lo, .. } => a.ldx(size, dst, Reg::R10, self.base() + (field - lo) as i16),
        }
    }

    pub(super) fn mem(self) -> Mem {
        match self {
            Access::Direct => Mem::Direct,
            Access::Copied { .. } => Mem::Probe,
        }
    }
}

/// `probe_read_kernel(r10 + dst_off, size, src + src_off)`; on failure go to `out`.
pub(super) fn probe_read(a: &mut Asm, dst_off: i16, size: i32, src: Reg, src_off: u32, out: Label) {
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
pub(super) fn read_ptr(a: &mut Asm, dst: Reg, src: Reg, off: u32, out: Label) {
    probe_read(a, TMP, 8, src, off, out);
    a.ldx(Size::DW, dst, Reg::R10, TMP);
    a.jmp_imm(Jmp::Eq, dst, 0, out);
}

fn size_of(bytes: u32) -> Size {
    Size::from_bytes(bytes as usize).expect("field size checked by offsets")
}

/// `dst = sk->field`, a possibly-bitfield scalar. Clobbers r0–r5.
pub(super) fn read_sk(a: &mut Asm, mem: Mem, dst: Reg, f: Field, out: Label) {
    let size = size_of(f.size);
    match mem {
        Mem::Direct => a.ldx(size, dst, SK, f.off as i16),
        Mem::Probe => {
            probe_read(a, TMP, f.size as i32, SK, f.off, out);
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

/// `r1 = sk->sk_lock.owned`: non-zero in process context.
pub(super) fn read_owned(a: &mut Asm, so: &SockOffsets, mem: Mem, out: Label) {
    read_sk(a, mem, Reg::R1, Field { off: so.lock_owned, size: 4, bits: None }, out);
}

/// Go to `out` unless the sock is TCP.
pub(super) fn check_tcp(a: &mut Asm, so: &SockOffsets, mem: Mem, out: Label) {
    read_sk(a, mem, Reg::R1, so.protocol, out);
    a.jmp_imm(Jmp::Ne, Reg::R1, IPPROTO_TCP, out);
}

/// How `fill_event` will read sock_common: in place, or (probe-read
/// backends) from one copy to the stack made here.
pub(super) fn sock_access(a: &mut Asm, so: &SockOffsets, mem: Mem, out: Label) -> Access {
    match mem {
        Mem::Direct => Access::Direct,
        Mem::Probe => {
            let (lo, hi) = so.common_span();
            assert!(hi - lo <= MAX_CHUNK, "sock_common span {lo}..{hi} too large");
            let acc = Access::Copied { lo, hi };
            probe_read(a, acc.base(), (hi - lo) as i32, SK, lo, out);
            acc
        }
    }
}
