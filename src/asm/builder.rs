//! The instruction builder with labels, and the finished [`Program`].

use super::helpers::Helper;
use super::insn::*;
use std::fmt;

/// A jump target created by [`Asm::label`] and placed by [`Asm::bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Label(u32);

impl Label {
    /// The label's number, as printed by the disassembler (`L3`) and in [`AsmError`].
    pub fn id(self) -> u32 {
        self.0
    }
}

/// Errors found by [`Asm::finish`]. Slot positions (`at`) count `ld_imm64` as two slots.
#[derive(Debug, PartialEq, Eq)]
pub enum AsmError {
    /// The jump at slot `at` targets a label that was never bound (or belongs to another builder).
    UnboundLabel { label: u32, at: usize },
    /// `bind` was called twice for the same label.
    LabelBoundTwice { label: u32 },
    /// The jump at slot `at` needs an offset outside `i16`.
    JumpTooFar { label: u32, at: usize, delta: i64 },
    /// The label was bound after the last instruction, so it marks no instruction.
    LabelAtEnd { label: u32 },
}

impl fmt::Display for AsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AsmError::UnboundLabel { label, at } => {
                write!(f, "jump at slot {at} targets unbound label L{label}")
            }
            AsmError::LabelBoundTwice { label } => write!(f, "label L{label} bound twice"),
            AsmError::JumpTooFar { label, at, delta } => {
                write!(f, "jump at slot {at} to label L{label} needs offset {delta}, outside the i16 range")
            }
            AsmError::LabelAtEnd { label } => {
                write!(f, "label L{label} is bound after the last instruction")
            }
        }
    }
}

impl std::error::Error for AsmError {}

/// Builds a BPF program instruction by instruction. Jumps take [`Label`]s, resolved by [`Asm::finish`].
///
/// Immediates are `i32` as in the ISA: 64-bit ALU and `st` sign-extend them; use [`Asm::ld_imm64`]
/// (or `mov32_imm`, which zero-extends) for anything else.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<RawInsn>,
    /// Slot each label is bound to.
    labels: Vec<Option<usize>>,
    /// (jump slot, target label).
    fixups: Vec<(usize, Label)>,
    /// Errors noticed while building (double binds), reported by `finish`.
    errors: Vec<AsmError>,
}

impl Asm {
    pub fn new() -> Asm {
        Asm::default()
    }

    /// A new, unbound label.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label((self.labels.len() - 1) as u32)
    }

    /// Binds `l` to the next instruction emitted. Binding a label twice is reported by `finish`.
    pub fn bind(&mut self, l: Label) {
        match self.labels.get_mut(l.0 as usize) {
            Some(slot @ None) => *slot = Some(self.insns.len()),
            Some(Some(_)) => self.errors.push(AsmError::LabelBoundTwice { label: l.0 }),
            // A label from another builder: jumps to it are reported as unbound.
            None => {}
        }
    }

    /// Appends one raw slot (escape hatch for encodings without a builder).
    pub fn raw(&mut self, insn: RawInsn) {
        self.insns.push(insn);
    }

    fn push(&mut self, code: u8, dst: Reg, src: u8, off: i16, imm: i32) {
        self.raw(RawInsn::new(code, dst.num(), src, off, imm));
    }

    fn alu(&mut self, class: u8, op: Alu, dst: Reg, src: Option<Reg>, imm: i32) {
        match (op, src) {
            // NEG has no register form; the kernel rejects NEG|X.
            (Alu::Neg, _) => self.push(class | op.code() | SRC_K, dst, 0, 0, 0),
            (_, Some(s)) => self.push(class | op.code() | SRC_X, dst, s.num(), 0, 0),
            (_, None) => self.push(class | op.code() | SRC_K, dst, 0, 0, imm),
        }
    }

    /// `dst op= imm` on 64 bits (imm sign-extended). `Neg` ignores `imm`.
    pub fn alu64_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        self.alu(CLASS_ALU64, op, dst, None, imm);
    }

    /// `dst op= src` on 64 bits. `Neg` ignores `src` (emits `dst = -dst`).
    pub fn alu64_reg(&mut self, op: Alu, dst: Reg, src: Reg) {
        self.alu(CLASS_ALU64, op, dst, Some(src), 0);
    }

    /// `wdst op= imm` on 32 bits; the upper half of dst becomes zero.
    pub fn alu32_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        self.alu(CLASS_ALU, op, dst, None, imm);
    }

    /// `wdst op= wsrc` on 32 bits; the upper half of dst becomes zero.
    pub fn alu32_reg(&mut self, op: Alu, dst: Reg, src: Reg) {
        self.alu(CLASS_ALU, op, dst, Some(src), 0);
    }

    /// `dst = imm`, sign-extended: `mov64_imm(r, -1)` gives all ones.
    pub fn mov64_imm(&mut self, dst: Reg, imm: i32) {
        self.alu64_imm(Alu::Mov, dst, imm);
    }

    pub fn mov64_reg(&mut self, dst: Reg, src: Reg) {
        self.alu64_reg(Alu::Mov, dst, src);
    }

    /// `dst = (u32)imm`, zero-extended: `mov32_imm(r, -1)` gives `0xffffffff` (`BPF_F_CURRENT_CPU`).
    pub fn mov32_imm(&mut self, dst: Reg, imm: i32) {
        self.alu32_imm(Alu::Mov, dst, imm);
    }

    pub fn mov32_reg(&mut self, dst: Reg, src: Reg) {
        self.alu32_reg(Alu::Mov, dst, src);
    }

    fn ld_imm64_pseudo(&mut self, dst: Reg, pseudo: u8, lo: i32, hi: i32) {
        self.push(LD_IMM64, dst, pseudo, 0, lo);
        self.raw(RawInsn::new(0, 0, 0, 0, hi));
    }

    /// `dst = imm` for any 64-bit constant (two slots).
    pub fn ld_imm64(&mut self, dst: Reg, imm: u64) {
        self.ld_imm64_pseudo(dst, 0, imm as u32 as i32, (imm >> 32) as u32 as i32);
    }

    /// `dst = map` for the map file descriptor `fd` (two slots, `BPF_PSEUDO_MAP_FD`).
    pub fn ld_map_fd(&mut self, dst: Reg, fd: i32) {
        self.ld_imm64_pseudo(dst, PSEUDO_MAP_FD, fd, 0);
    }

    /// `dst = &map_value[off]` of an array map's first element (two slots, `BPF_PSEUDO_MAP_VALUE`, 5.2+).
    pub fn ld_map_value(&mut self, dst: Reg, fd: i32, off: i32) {
        self.ld_imm64_pseudo(dst, PSEUDO_MAP_VALUE, fd, off);
    }

    /// `dst = *(size *)(src + off)`, zero-extended.
    pub fn ldx(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        self.push(CLASS_LDX | MODE_MEM | size.code(), dst, src.num(), off, 0);
    }

    /// `*(size *)(dst + off) = src`.
    pub fn stx(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        self.push(CLASS_STX | MODE_MEM | size.code(), dst, src.num(), off, 0);
    }

    /// `*(size *)(dst + off) = imm`; with `Size::DW` the imm is sign-extended.
    pub fn st(&mut self, size: Size, dst: Reg, off: i16, imm: i32) {
        self.push(CLASS_ST | MODE_MEM | size.code(), dst, 0, off, imm);
    }

    /// `lock *(size *)(dst + off) += src` (`BPF_ATOMIC`/`BPF_XADD`); only `W` and `DW` are valid.
    pub fn atomic_add(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        debug_assert!(matches!(size, Size::W | Size::DW), "atomic add needs W or DW");
        self.push(CLASS_STX | MODE_ATOMIC | size.code(), dst, src.num(), off, 0);
    }

    /// `src = atomic_fetch_add((size *)(dst + off), src)` (`BPF_ADD |
    /// BPF_FETCH`, 5.12+): `src` gets the old value. Fully ordered (arm64's
    /// JIT emits LDADDAL, or LDXR/STLXR and DMB ISH), unlike
    /// [`Asm::atomic_add`], which arm64 JITs as a relaxed STADD.
    pub fn atomic_fetch_add(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        debug_assert!(matches!(size, Size::W | Size::DW), "atomic fetch add needs W or DW");
        self.push(CLASS_STX | MODE_ATOMIC | size.code(), dst, src.num(), off, ATOMIC_FETCH);
    }

    /// `r0 = cmpxchg((size *)(dst + off), r0, src)` (5.12+): stores `src`
    /// if the memory holds r0; r0 gets the old value either way.
    pub fn atomic_cmpxchg(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        debug_assert!(matches!(size, Size::W | Size::DW), "cmpxchg needs W or DW");
        self.push(CLASS_STX | MODE_ATOMIC | size.code(), dst, src.num(), off, ATOMIC_CMPXCHG);
    }

    fn jump(&mut self, code: u8, dst: Reg, src: u8, imm: i32, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.push(code, dst, src, 0, imm);
    }

    /// `if dst op imm goto to` (64-bit compare, imm sign-extended).
    pub fn jmp_imm(&mut self, op: Jmp, dst: Reg, imm: i32, to: Label) {
        self.jump(CLASS_JMP | op.code() | SRC_K, dst, 0, imm, to);
    }

    /// `if dst op src goto to` (64-bit compare).
    pub fn jmp_reg(&mut self, op: Jmp, dst: Reg, src: Reg, to: Label) {
        self.jump(CLASS_JMP | op.code() | SRC_X, dst, src.num(), 0, to);
    }

    /// `if wdst op imm goto to` (32-bit compare, 5.1+).
    pub fn jmp32_imm(&mut self, op: Jmp, dst: Reg, imm: i32, to: Label) {
        self.jump(CLASS_JMP32 | op.code() | SRC_K, dst, 0, imm, to);
    }

    /// `if wdst op wsrc goto to` (32-bit compare, 5.1+).
    pub fn jmp32_reg(&mut self, op: Jmp, dst: Reg, src: Reg, to: Label) {
        self.jump(CLASS_JMP32 | op.code() | SRC_X, dst, src.num(), 0, to);
    }

    /// `goto to`.
    pub fn ja(&mut self, to: Label) {
        self.jump(CLASS_JMP | OP_JA, Reg::R0, 0, 0, to);
    }

    /// Calls helper `h`: args in r1-r5, result in r0; r1-r5 are clobbered.
    pub fn call(&mut self, h: Helper) {
        self.call_id(h.id());
    }

    /// Calls the helper with kernel id `id` (for helpers without a [`Helper`] variant).
    pub fn call_id(&mut self, id: i32) {
        self.push(CLASS_JMP | OP_CALL, Reg::R0, 0, 0, id);
    }

    /// Returns r0.
    pub fn exit(&mut self) {
        self.push(CLASS_JMP | OP_EXIT, Reg::R0, 0, 0, 0);
    }

    /// `dst = htobe<bits>(dst)`; bits is 16, 32 or 64, upper bits are zeroed.
    pub fn to_be(&mut self, dst: Reg, bits: u32) {
        debug_assert!(matches!(bits, 16 | 32 | 64), "bad byte-swap width {bits}");
        self.push(CLASS_ALU | OP_END | TO_BE, dst, 0, 0, bits as i32);
    }

    /// `dst = htole<bits>(dst)`; bits is 16, 32 or 64 (a truncation on little-endian hosts).
    pub fn to_le(&mut self, dst: Reg, bits: u32) {
        debug_assert!(matches!(bits, 16 | 32 | 64), "bad byte-swap width {bits}");
        self.push(CLASS_ALU | OP_END | TO_LE, dst, 0, 0, bits as i32);
    }

    /// Raw slots emitted so far (`ld_imm64` counts two).
    pub fn len_slots(&self) -> usize {
        self.insns.len()
    }

    /// Resolves every jump to its label, in raw slots: `off = target - (jump + 1)`.
    pub fn finish(mut self) -> Result<Program, AsmError> {
        if let Some(e) = self.errors.into_iter().next() {
            return Err(e);
        }
        let end = self.insns.len();
        if let Some(l) = self.labels.iter().position(|s| *s == Some(end)) {
            return Err(AsmError::LabelAtEnd { label: l as u32 });
        }
        for &(at, label) in &self.fixups {
            let target = self.labels.get(label.0 as usize).copied().flatten();
            let target = target.ok_or(AsmError::UnboundLabel { label: label.0, at })?;
            let delta = target as i64 - (at as i64 + 1);
            self.insns[at].off =
                i16::try_from(delta).map_err(|_| AsmError::JumpTooFar { label: label.0, at, delta })?;
        }
        Ok(Program { insns: self.insns, labels: self.labels })
    }
}

/// A finished program: what `BPF_PROG_LOAD` gets, plus label positions for [`fmt::Display`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    insns: Vec<RawInsn>,
    labels: Vec<Option<usize>>,
}

impl Program {
    /// The raw slots; `insn_cnt` is `insns().len()`.
    pub fn insns(&self) -> &[RawInsn] {
        &self.insns
    }

    /// Number of raw slots.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// The slot `l` is bound to, if bound.
    pub fn label_slot(&self, l: Label) -> Option<usize> {
        self.labels.get(l.0 as usize).copied().flatten()
    }

    /// Little-endian wire form, 8 bytes per slot.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.insns.iter().flat_map(|i| i.to_le_bytes()).collect()
    }
}

/// Disassembly with slot numbers, `Ln:` lines before labelled slots and `goto Ln` in jumps.
impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut at_slot: Vec<Vec<u32>> = vec![Vec::new(); self.insns.len()];
        for (id, slot) in self.labels.iter().enumerate() {
            if let Some(s) = slot.filter(|&s| s < at_slot.len()) {
                at_slot[s].push(id as u32);
            }
        }
        super::disasm::write_listing(f, &self.insns, &at_slot)
    }
}
