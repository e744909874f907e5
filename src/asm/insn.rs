//! Raw instruction encoding: registers, sizes, operations and the 8-byte slot.

/// Instruction classes (low 3 bits of `code`).
pub const CLASS_LD: u8 = 0x00;
pub const CLASS_LDX: u8 = 0x01;
pub const CLASS_ST: u8 = 0x02;
pub const CLASS_STX: u8 = 0x03;
pub const CLASS_ALU: u8 = 0x04;
pub const CLASS_JMP: u8 = 0x05;
pub const CLASS_JMP32: u8 = 0x06;
pub const CLASS_ALU64: u8 = 0x07;

/// Load/store modes (top 3 bits of `code` for the LD/LDX/ST/STX classes).
pub const MODE_IMM: u8 = 0x00;
pub const MODE_MEM: u8 = 0x60;
pub const MODE_MEMSX: u8 = 0x80;
pub const MODE_ATOMIC: u8 = 0xc0;

/// Operand source bit for ALU and JMP classes.
pub const SRC_K: u8 = 0x00;
pub const SRC_X: u8 = 0x08;

/// ALU byte-swap opcode and its direction bit (`BPF_TO_LE` / `BPF_TO_BE`).
pub const OP_END: u8 = 0xd0;
pub const TO_LE: u8 = 0x00;
pub const TO_BE: u8 = 0x08;

/// JMP-class operations without a [`Jmp`] variant.
pub const OP_JA: u8 = 0x00;
pub const OP_CALL: u8 = 0x80;
pub const OP_EXIT: u8 = 0x90;

/// `BPF_FETCH` modifier of atomic operations (in `imm`).
pub const ATOMIC_FETCH: i32 = 0x01;
pub const ATOMIC_XCHG: i32 = 0xe0 | ATOMIC_FETCH;
pub const ATOMIC_CMPXCHG: i32 = 0xf0 | ATOMIC_FETCH;

/// `src` values of the first `ld_imm64` slot (`BPF_PSEUDO_*`).
pub const PSEUDO_MAP_FD: u8 = 1;
pub const PSEUDO_MAP_VALUE: u8 = 2;
pub const PSEUDO_BTF_ID: u8 = 3;
pub const PSEUDO_FUNC: u8 = 4;
pub const PSEUDO_MAP_IDX: u8 = 5;
pub const PSEUDO_MAP_IDX_VALUE: u8 = 6;

/// `src` values of a call instruction.
pub const PSEUDO_CALL: u8 = 1;
pub const PSEUDO_KFUNC_CALL: u8 = 2;

/// `code` of the first `ld_imm64` slot: `BPF_LD | BPF_IMM | BPF_DW`.
pub const LD_IMM64: u8 = CLASS_LD | MODE_IMM | 0x18;

/// A BPF register. `R10` is the read-only frame pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    R0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
}

impl Reg {
    /// The register number, 0..=10.
    pub fn num(self) -> u8 {
        self as u8
    }
}

/// Memory access width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// 1 byte.
    B,
    /// 2 bytes.
    H,
    /// 4 bytes.
    W,
    /// 8 bytes.
    DW,
}

impl Size {
    /// The size for an access of `n` bytes (1, 2, 4 or 8).
    pub fn from_bytes(n: usize) -> Option<Size> {
        match n {
            1 => Some(Size::B),
            2 => Some(Size::H),
            4 => Some(Size::W),
            8 => Some(Size::DW),
            _ => None,
        }
    }

    /// Width in bytes.
    pub fn bytes(self) -> usize {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    /// The size bits of `code` (`BPF_W`, `BPF_H`, `BPF_B`, `BPF_DW`).
    pub fn code(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }

    pub(crate) fn from_code(code: u8) -> Size {
        match code & 0x18 {
            0x00 => Size::W,
            0x08 => Size::H,
            0x10 => Size::B,
            _ => Size::DW,
        }
    }
}

/// Arithmetic operations (`BPF_ADD` .. `BPF_ARSH`). Byte swaps have their own builders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alu {
    Add,
    Sub,
    Mul,
    Div,
    Or,
    And,
    Lsh,
    Rsh,
    Neg,
    Mod,
    Xor,
    Mov,
    Arsh,
}

impl Alu {
    /// All operations, in opcode order.
    pub const ALL: [Alu; 13] = [
        Alu::Add,
        Alu::Sub,
        Alu::Mul,
        Alu::Div,
        Alu::Or,
        Alu::And,
        Alu::Lsh,
        Alu::Rsh,
        Alu::Neg,
        Alu::Mod,
        Alu::Xor,
        Alu::Mov,
        Alu::Arsh,
    ];

    /// The operation bits of `code`.
    pub fn code(self) -> u8 {
        (self as u8) << 4
    }
}

/// Conditional jump operations. The unconditional `JA` is [`crate::asm::Asm::ja`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jmp {
    Eq,
    Gt,
    Ge,
    Set,
    Ne,
    Sgt,
    Sge,
    Lt,
    Le,
    Slt,
    Sle,
}

impl Jmp {
    /// All conditions.
    pub const ALL: [Jmp; 11] = [
        Jmp::Eq,
        Jmp::Gt,
        Jmp::Ge,
        Jmp::Set,
        Jmp::Ne,
        Jmp::Sgt,
        Jmp::Sge,
        Jmp::Lt,
        Jmp::Le,
        Jmp::Slt,
        Jmp::Sle,
    ];

    /// The operation bits of `code`.
    pub fn code(self) -> u8 {
        match self {
            Jmp::Eq => 0x10,
            Jmp::Gt => 0x20,
            Jmp::Ge => 0x30,
            Jmp::Set => 0x40,
            Jmp::Ne => 0x50,
            Jmp::Sgt => 0x60,
            Jmp::Sge => 0x70,
            Jmp::Lt => 0xa0,
            Jmp::Le => 0xb0,
            Jmp::Slt => 0xc0,
            Jmp::Sle => 0xd0,
        }
    }
}

/// One raw 8-byte instruction slot, laid out as the kernel's `struct bpf_insn`.
///
/// `regs` holds the `dst_reg:4, src_reg:4` bitfields in host order: on little-endian hosts dst is the
/// low nibble, on big-endian hosts the high one. Use [`RawInsn::new`], [`RawInsn::dst`] and
/// [`RawInsn::src`] rather than touching `regs` directly.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RawInsn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const _: () = assert!(core::mem::size_of::<RawInsn>() == 8);

impl RawInsn {
    /// Builds a slot; register numbers are masked to 4 bits.
    pub fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
        let (dst, src) = (dst & 0xf, src & 0xf);
        let regs = if cfg!(target_endian = "little") { dst | (src << 4) } else { (dst << 4) | src };
        RawInsn { code, regs, off, imm }
    }

    /// Destination register number.
    pub fn dst(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs & 0xf
        } else {
            self.regs >> 4
        }
    }

    /// Source register number (or pseudo source).
    pub fn src(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs >> 4
        } else {
            self.regs & 0xf
        }
    }

    /// The little-endian wire form (as on x86-64 and arm64).
    pub fn to_le_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.dst() | (self.src() << 4);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    /// Parses the little-endian wire form.
    pub fn from_le_bytes(b: [u8; 8]) -> RawInsn {
        RawInsn::new(
            b[0],
            b[1] & 0xf,
            b[1] >> 4,
            i16::from_le_bytes([b[2], b[3]]),
            i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        )
    }
}
