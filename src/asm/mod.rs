//! BPF instruction builder: encodes eBPF instructions at run time, without clang or LLVM.
//!
//! [`Asm`] emits instructions and resolves [`Label`]s into `i16` jump offsets counted in raw
//! 8-byte slots (`ld_imm64` takes two). [`Program::insns`] is what `BPF_PROG_LOAD` takes;
//! `Program`'s `Display` and [`disassemble`] print verifier-like text for debugging.
//!
//! ```
//! use tcptracer::asm::{Asm, Helper, Jmp, Reg, Size};
//! let mut a = Asm::new();
//! let out = a.label();
//! a.call(Helper::GetCurrentPidTgid);
//! a.jmp_imm(Jmp::Eq, Reg::R0, 0, out);
//! a.stx(Size::DW, Reg::R10, -8, Reg::R0);
//! a.bind(out);
//! a.mov64_imm(Reg::R0, 0);
//! a.exit();
//! let prog = a.finish().unwrap();
//! assert_eq!(prog.len(), 5);
//! ```
//!
//! The in-memory [`RawInsn`] follows the host's bitfield order for the register nibbles, so
//! `insns()` is correct for the running kernel on either endianness; [`Program::to_bytes`] is
//! always the little-endian wire form.

mod arch;
mod builder;
mod disasm;
mod helpers;
mod insn;
#[cfg(test)]
mod tests;

pub use arch::Arch;
pub use builder::{Asm, AsmError, Label, Program};
pub use disasm::disassemble;
pub use helpers::Helper;
pub use insn::{Alu, Jmp, RawInsn, Reg, Size};
