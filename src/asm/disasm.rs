//! A disassembler printing kernel-verifier-like syntax (`kernel/bpf/disasm.c`).
//!
//! It never panics: unknown encodings print as `(bad 0xNN)`.

use super::helpers::Helper;
use super::insn::*;
use std::fmt::{self, Write};

/// Disassembles raw slots, one line per instruction (`ld_imm64` takes one line for its two slots),
/// each prefixed with its slot number. Jump targets print as relative offsets (`goto +3`).
pub fn disassemble(insns: &[RawInsn]) -> String {
    let mut s = String::new();
    // Writing into a String cannot fail.
    let _ = write_listing(&mut s, insns, &[]);
    s
}

/// Writes the listing; `labels[slot]` names the labels bound at `slot` (may be shorter than `insns`).
pub(crate) fn write_listing(out: &mut dyn Write, insns: &[RawInsn], labels: &[Vec<u32>]) -> fmt::Result {
    let mut i = 0;
    while i < insns.len() {
        for id in labels.get(i).into_iter().flatten() {
            writeln!(out, "  L{id}:")?;
        }
        let (text, slots) = insn_text(insns, i, labels);
        writeln!(out, "{i:>5}: {text}")?;
        i += slots;
    }
    Ok(())
}

fn size_name(code: u8) -> &'static str {
    match Size::from_code(code) {
        Size::B => "u8",
        Size::H => "u16",
        Size::W => "u32",
        Size::DW => "u64",
    }
}

/// `goto` operand: a label name if one is bound at the target, else `+off`.
fn target(at: usize, off: i64, labels: &[Vec<u32>]) -> String {
    let t = at as i64 + 1 + off;
    usize::try_from(t)
        .ok()
        .and_then(|t| labels.get(t))
        .and_then(|ids| ids.first())
        .map_or_else(|| format!("{off:+}"), |id| format!("L{id}"))
}

/// Text of the instruction at `i` and how many slots it occupies.
fn insn_text(insns: &[RawInsn], i: usize, labels: &[Vec<u32>]) -> (String, usize) {
    let ins = insns[i];
    let bad = || format!("(bad 0x{:02x})", ins.code);
    let (code, dst, src, off, imm) = (ins.code, ins.dst(), ins.src(), ins.off, ins.imm);
    let text = match code & 0x07 {
        CLASS_ALU | CLASS_ALU64 => alu_text(ins).unwrap_or_else(bad),
        CLASS_LDX => match code & 0xe0 {
            MODE_MEM => format!("r{dst} = *({} *)(r{src} {off:+})", size_name(code)),
            MODE_MEMSX if code & 0x18 != 0x18 => {
                format!("r{dst} = *(s{} *)(r{src} {off:+})", &size_name(code)[1..])
            }
            _ => bad(),
        },
        CLASS_ST if code & 0xe0 == MODE_MEM => {
            format!("*({} *)(r{dst} {off:+}) = {imm}", size_name(code))
        }
        CLASS_STX => match code & 0xe0 {
            MODE_MEM => format!("*({} *)(r{dst} {off:+}) = r{src}", size_name(code)),
            MODE_ATOMIC if matches!(code & 0x18, 0x00 | 0x18) => atomic_text(ins).unwrap_or_else(bad),
            _ => bad(),
        },
        CLASS_LD if code == LD_IMM64 => {
            return match insns.get(i + 1) {
                Some(next) if next.code == 0 && next.regs == 0 && next.off == 0 => {
                    let v = (imm as u32 as u64) | ((next.imm as u32 as u64) << 32);
                    let text = match src {
                        0 => format!("r{dst} = {v:#x} ll"),
                        PSEUDO_MAP_FD => format!("r{dst} = map_fd({imm}) ll"),
                        PSEUDO_MAP_VALUE => format!("r{dst} = map_value({imm})+{} ll", next.imm),
                        PSEUDO_BTF_ID => format!("r{dst} = btf_id({imm}) ll"),
                        PSEUDO_FUNC => {
                            format!("r{dst} = func({}) ll", target(i + 1, imm as i64, labels))
                        }
                        PSEUDO_MAP_IDX => format!("r{dst} = map_idx({imm}) ll"),
                        PSEUDO_MAP_IDX_VALUE => {
                            format!("r{dst} = map_idx_value({imm})+{} ll", next.imm)
                        }
                        _ => bad(),
                    };
                    (text, 2)
                }
                _ => (bad(), 1),
            };
        }
        CLASS_JMP | CLASS_JMP32 => jmp_text(ins, i, labels).unwrap_or_else(bad),
        _ => bad(),
    };
    (text, 1)
}

fn alu_text(ins: RawInsn) -> Option<String> {
    let (code, dst, src, off, imm) = (ins.code, ins.dst(), ins.src(), ins.off, ins.imm);
    let r = if code & 0x07 == CLASS_ALU64 { 'r' } else { 'w' };
    let x = code & SRC_X != 0;
    let rhs = if x { format!("{r}{src}") } else { imm.to_string() };
    let op = match code & 0xf0 {
        OP_END => {
            let kind = match (code & 0x07, code & TO_BE) {
                (CLASS_ALU, TO_LE) => "le",
                (CLASS_ALU, _) => "be",
                (_, TO_LE) => "bswap",
                _ => return None,
            };
            if !matches!(imm, 16 | 32 | 64) {
                return None;
            }
            return Some(format!("r{dst} = {kind}{imm} r{dst}"));
        }
        0x80 => return Some(format!("{r}{dst} = -{r}{dst}")),
        0xb0 if x && matches!(off, 8 | 16 | 32) => return Some(format!("{r}{dst} = (s{off}){r}{src}")),
        0xb0 => "=",
        0x00 => "+=",
        0x10 => "-=",
        0x20 => "*=",
        0x30 if off == 1 => "s/=",
        0x30 => "/=",
        0x40 => "|=",
        0x50 => "&=",
        0x60 => "<<=",
        0x70 => ">>=",
        0x90 if off == 1 => "s%=",
        0x90 => "%=",
        0xa0 => "^=",
        0xc0 => "s>>=",
        _ => return None,
    };
    Some(format!("{r}{dst} {op} {rhs}"))
}

fn atomic_text(ins: RawInsn) -> Option<String> {
    let (dst, src, off, imm) = (ins.dst(), ins.src(), ins.off, ins.imm);
    let ty = size_name(ins.code);
    let bits = if ins.code & 0x18 == 0x18 { "64" } else { "" };
    let mem = format!("({ty} *)(r{dst} {off:+})");
    let name = match imm & !ATOMIC_FETCH {
        0x00 => "add",
        0x40 => "or",
        0x50 => "and",
        0xa0 => "xor",
        _ => {
            return match imm {
                ATOMIC_XCHG => Some(format!("r{src} = atomic{bits}_xchg({mem}, r{src})")),
                ATOMIC_CMPXCHG => Some(format!("r0 = atomic{bits}_cmpxchg({mem}, r0, r{src})")),
                _ => None,
            }
        }
    };
    Some(if imm & ATOMIC_FETCH != 0 {
        format!("r{src} = atomic{bits}_fetch_{name}({mem}, r{src})")
    } else {
        let op = match name {
            "add" => "+=",
            "or" => "|=",
            "and" => "&=",
            _ => "^=",
        };
        format!("lock *{mem} {op} r{src}")
    })
}

fn jmp_text(ins: RawInsn, i: usize, labels: &[Vec<u32>]) -> Option<String> {
    let (code, dst, src, off, imm) = (ins.code, ins.dst(), ins.src(), ins.off, ins.imm);
    let jmp64 = code & 0x07 == CLASS_JMP;
    let x = code & SRC_X != 0;
    let op = match code & 0xf0 {
        OP_JA if x => return None,
        OP_JA if jmp64 => return Some(format!("goto {}", target(i, off.into(), labels))),
        OP_JA => return Some(format!("gotol {}", target(i, imm.into(), labels))),
        OP_CALL if jmp64 && !x => {
            return Some(match src {
                0 => match Helper::from_id(imm) {
                    Some(h) => format!("call {}#{imm}", h.name()),
                    None => format!("call #{imm}"),
                },
                PSEUDO_CALL => format!("call {}", target(i, imm.into(), labels)),
                PSEUDO_KFUNC_CALL => format!("call kfunc#{imm}"),
                _ => return None,
            })
        }
        OP_EXIT if jmp64 && !x => return Some("exit".to_string()),
        0x10 => "==",
        0x20 => ">",
        0x30 => ">=",
        0x40 => "&",
        0x50 => "!=",
        0x60 => "s>",
        0x70 => "s>=",
        0xa0 => "<",
        0xb0 => "<=",
        0xc0 => "s<",
        0xd0 => "s<=",
        _ => return None,
    };
    let r = if jmp64 { 'r' } else { 'w' };
    let rhs = if x { format!("{r}{src}") } else { format!("{:#x}", imm as u32) };
    Some(format!("if {r}{dst} {op} {rhs} goto {}", target(i, off.into(), labels)))
}
