//! Golden bytes are written from the UAPI/libbpf `BPF_*` macro definitions, not from the encoder.

use super::*;
use Reg::*;

fn assemble(f: impl FnOnce(&mut Asm)) -> Vec<u8> {
    let mut a = Asm::new();
    f(&mut a);
    a.finish().unwrap().to_bytes()
}

#[test]
fn golden_single_instructions() {
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("mov64 r0,0", assemble(|a| a.mov64_imm(R0, 0)), vec![0xb7, 0, 0, 0, 0, 0, 0, 0]),
        ("exit", assemble(|a| a.exit()), vec![0x95, 0, 0, 0, 0, 0, 0, 0]),
        ("call 14", assemble(|a| a.call(Helper::GetCurrentPidTgid)), vec![0x85, 0, 0, 0, 0x0e, 0, 0, 0]),
        ("call_id 200", assemble(|a| a.call_id(200)), vec![0x85, 0, 0, 0, 200, 0, 0, 0]),
        (
            "ld_map_fd r1,7",
            assemble(|a| a.ld_map_fd(R1, 7)),
            vec![0x18, 0x11, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        (
            "ld_map_value r3,9,+12",
            assemble(|a| a.ld_map_value(R3, 9, 12)),
            vec![0x18, 0x23, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0],
        ),
        (
            "ld_imm64 r2",
            assemble(|a| a.ld_imm64(R2, 0x1122_3344_5566_7788)),
            vec![0x18, 0x02, 0, 0, 0x88, 0x77, 0x66, 0x55, 0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11],
        ),
        (
            "ld_imm64 r9 0xffffffff",
            assemble(|a| a.ld_imm64(R9, 0xffff_ffff)),
            vec![0x18, 0x09, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        (
            "stx W [r10-4], r0",
            assemble(|a| a.stx(Size::W, R10, -4, R0)),
            vec![0x63, 0x0a, 0xfc, 0xff, 0, 0, 0, 0],
        ),
        ("stx B [r1+3], r7", assemble(|a| a.stx(Size::B, R1, 3, R7)), vec![0x73, 0x71, 3, 0, 0, 0, 0, 0]),
        (
            "ldx DW r2,[r1+16]",
            assemble(|a| a.ldx(Size::DW, R2, R1, 16)),
            vec![0x79, 0x12, 0x10, 0, 0, 0, 0, 0],
        ),
        ("ldx H r4,[r6+2]", assemble(|a| a.ldx(Size::H, R4, R6, 2)), vec![0x69, 0x64, 2, 0, 0, 0, 0, 0]),
        (
            "st DW [r10-8], -1",
            assemble(|a| a.st(Size::DW, R10, -8, -1)),
            vec![0x7a, 0x0a, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff],
        ),
        (
            "st B [r10-1], 0x7f",
            assemble(|a| a.st(Size::B, R10, -1, 0x7f)),
            vec![0x72, 0x0a, 0xff, 0xff, 0x7f, 0, 0, 0],
        ),
        ("w1 += 2", assemble(|a| a.alu32_imm(Alu::Add, R1, 2)), vec![0x04, 1, 0, 0, 2, 0, 0, 0]),
        ("mov32 r3,-1", assemble(|a| a.mov32_imm(R3, -1)), vec![0xb4, 0x03, 0, 0, 0xff, 0xff, 0xff, 0xff]),
        ("mov64 r3,-1", assemble(|a| a.mov64_imm(R3, -1)), vec![0xb7, 0x03, 0, 0, 0xff, 0xff, 0xff, 0xff]),
        ("mov64 r6,r1", assemble(|a| a.mov64_reg(R6, R1)), vec![0xbf, 0x16, 0, 0, 0, 0, 0, 0]),
        ("mov32 r6,r1", assemble(|a| a.mov32_reg(R6, R1)), vec![0xbc, 0x16, 0, 0, 0, 0, 0, 0]),
        ("be16 r1", assemble(|a| a.to_be(R1, 16)), vec![0xdc, 0x01, 0, 0, 0x10, 0, 0, 0]),
        ("be32 r2", assemble(|a| a.to_be(R2, 32)), vec![0xdc, 0x02, 0, 0, 0x20, 0, 0, 0]),
        ("le64 r2", assemble(|a| a.to_le(R2, 64)), vec![0xd4, 0x02, 0, 0, 0x40, 0, 0, 0]),
        (
            "lock xadd DW [r1+8], r2",
            assemble(|a| a.atomic_add(Size::DW, R1, 8, R2)),
            vec![0xdb, 0x21, 8, 0, 0, 0, 0, 0],
        ),
        (
            "lock xadd W [r1+0], r2",
            assemble(|a| a.atomic_add(Size::W, R1, 0, R2)),
            vec![0xc3, 0x21, 0, 0, 0, 0, 0, 0],
        ),
        (
            "fetch add DW [r10-8], r1",
            assemble(|a| a.atomic_fetch_add(Size::DW, R10, -8, R1)),
            vec![0xdb, 0x1a, 0xf8, 0xff, 0x01, 0, 0, 0],
        ),
        (
            "fetch add W [r1+4], r2",
            assemble(|a| a.atomic_fetch_add(Size::W, R1, 4, R2)),
            vec![0xc3, 0x21, 4, 0, 0x01, 0, 0, 0],
        ),
        (
            "cmpxchg DW [r4+0], r3",
            assemble(|a| a.atomic_cmpxchg(Size::DW, R4, 0, R3)),
            vec![0xdb, 0x34, 0, 0, 0xf1, 0, 0, 0],
        ),
    ];
    for (name, got, want) in cases {
        assert_eq!(got, want, "{name}");
    }
}

/// A conditional jump over one `exit`, so its offset is +1.
fn jump_bytes(f: impl FnOnce(&mut Asm, Label)) -> Vec<u8> {
    let mut a = Asm::new();
    let l = a.label();
    f(&mut a, l);
    a.exit();
    a.bind(l);
    a.exit();
    a.finish().unwrap().to_bytes()[..8].to_vec()
}

#[test]
fn golden_jumps() {
    assert_eq!(jump_bytes(|a, l| a.jmp_imm(Jmp::Sgt, R1, 5, l)), [0x65, 0x01, 1, 0, 5, 0, 0, 0]);
    assert_eq!(
        jump_bytes(|a, l| a.jmp32_imm(Jmp::Ne, R2, -2, l)),
        [0x56, 0x02, 1, 0, 0xfe, 0xff, 0xff, 0xff]
    );
    assert_eq!(jump_bytes(|a, l| a.jmp32_reg(Jmp::Ne, R2, R3, l)), [0x5e, 0x32, 1, 0, 0, 0, 0, 0]);
    assert_eq!(jump_bytes(|a, l| a.jmp_reg(Jmp::Eq, R0, R9, l)), [0x1d, 0x90, 1, 0, 0, 0, 0, 0]);
    assert_eq!(jump_bytes(|a, l| a.ja(l)), [0x05, 0, 1, 0, 0, 0, 0, 0]);
}

#[test]
fn every_alu_op_k_and_x() {
    // BPF_ALU64|op|BPF_K, BPF_ALU64|op|BPF_X, BPF_ALU|op|BPF_K, BPF_ALU|op|BPF_X.
    // NEG has no X form in the kernel: the builder emits NEG|K for it.
    let want: [(Alu, u8, u8, u8, u8); 13] = [
        (Alu::Add, 0x07, 0x0f, 0x04, 0x0c),
        (Alu::Sub, 0x17, 0x1f, 0x14, 0x1c),
        (Alu::Mul, 0x27, 0x2f, 0x24, 0x2c),
        (Alu::Div, 0x37, 0x3f, 0x34, 0x3c),
        (Alu::Or, 0x47, 0x4f, 0x44, 0x4c),
        (Alu::And, 0x57, 0x5f, 0x54, 0x5c),
        (Alu::Lsh, 0x67, 0x6f, 0x64, 0x6c),
        (Alu::Rsh, 0x77, 0x7f, 0x74, 0x7c),
        (Alu::Neg, 0x87, 0x87, 0x84, 0x84),
        (Alu::Mod, 0x97, 0x9f, 0x94, 0x9c),
        (Alu::Xor, 0xa7, 0xaf, 0xa4, 0xac),
        (Alu::Mov, 0xb7, 0xbf, 0xb4, 0xbc),
        (Alu::Arsh, 0xc7, 0xcf, 0xc4, 0xcc),
    ];
    assert_eq!(want.len(), Alu::ALL.len());
    for (op, k64, x64, k32, x32) in want {
        let neg = op == Alu::Neg;
        let (imm, regs_x) = if neg { (0, 0x04) } else { (7, 0x54) };
        let imm_b = [imm, 0, 0, 0];
        let k = |code| [&[code, 0x04, 0, 0][..], &imm_b[..]].concat();
        let x = |code| vec![code, regs_x, 0, 0, 0, 0, 0, 0];
        assert_eq!(assemble(|a| a.alu64_imm(op, R4, 7)), k(k64), "{op:?} 64 K");
        assert_eq!(assemble(|a| a.alu64_reg(op, R4, R5)), x(x64), "{op:?} 64 X");
        assert_eq!(assemble(|a| a.alu32_imm(op, R4, 7)), k(k32), "{op:?} 32 K");
        assert_eq!(assemble(|a| a.alu32_reg(op, R4, R5)), x(x32), "{op:?} 32 X");
    }
}

#[test]
fn every_jmp_op_k_and_x() {
    // BPF_JMP|op|BPF_K, BPF_JMP|op|BPF_X, BPF_JMP32|op|BPF_K, BPF_JMP32|op|BPF_X.
    let want: [(Jmp, u8, u8, u8, u8); 11] = [
        (Jmp::Eq, 0x15, 0x1d, 0x16, 0x1e),
        (Jmp::Gt, 0x25, 0x2d, 0x26, 0x2e),
        (Jmp::Ge, 0x35, 0x3d, 0x36, 0x3e),
        (Jmp::Set, 0x45, 0x4d, 0x46, 0x4e),
        (Jmp::Ne, 0x55, 0x5d, 0x56, 0x5e),
        (Jmp::Sgt, 0x65, 0x6d, 0x66, 0x6e),
        (Jmp::Sge, 0x75, 0x7d, 0x76, 0x7e),
        (Jmp::Lt, 0xa5, 0xad, 0xa6, 0xae),
        (Jmp::Le, 0xb5, 0xbd, 0xb6, 0xbe),
        (Jmp::Slt, 0xc5, 0xcd, 0xc6, 0xce),
        (Jmp::Sle, 0xd5, 0xdd, 0xd6, 0xde),
    ];
    assert_eq!(want.len(), Jmp::ALL.len());
    for (op, k64, x64, k32, x32) in want {
        let k = |code| vec![code, 0x03, 1, 0, 0x2a, 0, 0, 0];
        let x = |code| vec![code, 0x83, 1, 0, 0, 0, 0, 0];
        assert_eq!(jump_bytes(|a, l| a.jmp_imm(op, R3, 42, l)), k(k64), "{op:?} 64 K");
        assert_eq!(jump_bytes(|a, l| a.jmp_reg(op, R3, R8, l)), x(x64), "{op:?} 64 X");
        assert_eq!(jump_bytes(|a, l| a.jmp32_imm(op, R3, 42, l)), k(k32), "{op:?} 32 K");
        assert_eq!(jump_bytes(|a, l| a.jmp32_reg(op, R3, R8, l)), x(x32), "{op:?} 32 X");
    }
}

#[test]
fn raw_insn_layout() {
    let i = RawInsn::new(0x79, 2, 1, 16, -5);
    assert_eq!((i.dst(), i.src()), (2, 1));
    assert_eq!(i.to_le_bytes(), [0x79, 0x12, 0x10, 0, 0xfb, 0xff, 0xff, 0xff]);
    assert_eq!(RawInsn::from_le_bytes(i.to_le_bytes()), i);
    assert_eq!(core::mem::size_of::<RawInsn>(), 8);
    #[cfg(target_endian = "little")]
    assert_eq!(i.regs, 0x12);
}

#[test]
fn sizes() {
    assert_eq!(Size::from_bytes(1), Some(Size::B));
    assert_eq!(Size::from_bytes(2), Some(Size::H));
    assert_eq!(Size::from_bytes(4), Some(Size::W));
    assert_eq!(Size::from_bytes(8), Some(Size::DW));
    assert_eq!(Size::from_bytes(3), None);
    assert_eq!(Size::from_bytes(0), None);
    for s in [Size::B, Size::H, Size::W, Size::DW] {
        assert_eq!(Size::from_bytes(s.bytes()), Some(s));
    }
}

#[test]
fn helpers() {
    let golden = [
        (1, "bpf_map_lookup_elem"),
        (4, "bpf_probe_read"),
        (14, "bpf_get_current_pid_tgid"),
        (25, "bpf_perf_event_output"),
        (113, "bpf_probe_read_kernel"),
        (125, "bpf_ktime_get_boot_ns"),
        (131, "bpf_ringbuf_reserve"),
        (158, "bpf_get_current_task_btf"),
    ];
    for (id, name) in golden {
        assert_eq!(Helper::from_id(id).map(Helper::name), Some(name));
    }
    assert_eq!(Helper::from_id(7), None);
    let mut names: Vec<_> = Helper::ALL.iter().map(|h| h.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), Helper::ALL.len());
    for h in Helper::ALL {
        assert_eq!(Helper::from_id(h.id()), Some(h));
        assert!(h.name().starts_with("bpf_"));
    }
}

fn offsets(p: &Program) -> Vec<i16> {
    p.insns().iter().map(|i| i.off).collect()
}

#[test]
fn forward_and_backward_jumps() {
    let mut a = Asm::new();
    let (top, out) = (a.label(), a.label());
    a.bind(top);
    a.jmp_imm(Jmp::Eq, R1, 0, out); // 0 -> 3: +2
    a.alu64_imm(Alu::Sub, R1, 1); // 1
    a.ja(top); // 2 -> 0: -3
    a.bind(out);
    a.exit(); // 3
    let p = a.finish().unwrap();
    assert_eq!(offsets(&p), [2, 0, -3, 0]);
    assert_eq!(p.label_slot(top), Some(0));
    assert_eq!(p.label_slot(out), Some(3));
}

#[test]
fn ld_imm64_counts_two_slots() {
    let mut a = Asm::new();
    let (top, out) = (a.label(), a.label());
    a.bind(top);
    a.ja(out); // 0 -> 3
    a.ld_imm64(R1, 1); // 1, 2
    assert_eq!(a.len_slots(), 3);
    a.bind(out);
    a.ld_map_fd(R2, 3); // 3, 4
    a.jmp_reg(Jmp::Gt, R1, R2, top); // 5 -> 0
    a.exit(); // 6
    assert_eq!(a.len_slots(), 7);
    let p = a.finish().unwrap();
    assert_eq!(p.len(), 7);
    assert_eq!(offsets(&p), [2, 0, 0, 0, 0, -6, 0]);
}

#[test]
fn label_errors() {
    let mut a = Asm::new();
    let l = a.label();
    a.bind(l);
    a.exit();
    a.bind(l);
    a.exit();
    assert_eq!(a.finish().unwrap_err(), AsmError::LabelBoundTwice { label: 0 });

    let mut a = Asm::new();
    let _unused = a.label();
    let l = a.label();
    a.mov64_imm(R0, 0);
    a.jmp_imm(Jmp::Eq, R0, 0, l);
    a.exit();
    assert_eq!(a.finish().unwrap_err(), AsmError::UnboundLabel { label: 1, at: 1 });

    let mut a = Asm::new();
    let l = a.label();
    a.ja(l);
    a.exit();
    a.bind(l);
    assert_eq!(a.finish().unwrap_err(), AsmError::LabelAtEnd { label: 0 });

    // A label of another builder is never bound in this one.
    let mut other = Asm::new();
    other.label();
    let foreign = other.label();
    let mut a = Asm::new();
    a.bind(foreign);
    a.ja(foreign);
    a.exit();
    assert_eq!(a.finish().unwrap_err(), AsmError::UnboundLabel { label: 1, at: 0 });
}

/// `ja` at slot 0 over `fill` instructions to a label; the needed offset is `fill`.
fn far_forward(fill: usize) -> Result<Program, AsmError> {
    let mut a = Asm::new();
    let l = a.label();
    a.ja(l);
    for _ in 0..fill {
        a.mov64_imm(R0, 0);
    }
    a.bind(l);
    a.exit();
    a.finish()
}

/// A jump back to slot 0 with offset `-(fill + 1)`.
fn far_backward(fill: usize) -> Result<Program, AsmError> {
    let mut a = Asm::new();
    let l = a.label();
    a.bind(l);
    for _ in 0..fill {
        a.mov64_imm(R0, 0);
    }
    a.jmp_imm(Jmp::Ne, R0, 0, l);
    a.exit();
    a.finish()
}

#[test]
fn jump_range() {
    assert_eq!(far_forward(32767).unwrap().insns()[0].off, 32767);
    assert_eq!(far_forward(32768).unwrap_err(), AsmError::JumpTooFar { label: 0, at: 0, delta: 32768 });
    assert_eq!(far_backward(32767).unwrap().insns()[32767].off, -32768);
    assert_eq!(far_backward(32768).unwrap_err(), AsmError::JumpTooFar { label: 0, at: 32768, delta: -32769 });
}

#[test]
fn error_display() {
    let e = AsmError::JumpTooFar { label: 2, at: 7, delta: 40000 };
    assert_eq!(e.to_string(), "jump at slot 7 to label L2 needs offset 40000, outside the i16 range");
    assert_eq!(
        AsmError::UnboundLabel { label: 1, at: 3 }.to_string(),
        "jump at slot 3 targets unbound label L1"
    );
    let _: &dyn std::error::Error = &e;
}

fn sample() -> Program {
    let mut a = Asm::new();
    let out = a.label();
    a.mov64_reg(R6, R1);
    a.ldx(Size::DW, R2, R6, 16);
    a.jmp_imm(Jmp::Ne, R2, 2, out);
    a.ld_map_fd(R1, 5);
    a.call(Helper::MapLookupElem);
    a.bind(out);
    a.mov64_imm(R0, 0);
    a.exit();
    a.finish().unwrap()
}

#[test]
fn display_labelled_program() {
    let want = "    0: r6 = r1
    1: r2 = *(u64 *)(r6 +16)
    2: if r2 != 0x2 goto L0
    3: r1 = map_fd(5) ll
    5: call bpf_map_lookup_elem#1
  L0:
    6: r0 = 0
    7: exit
";
    assert_eq!(sample().to_string(), want);
    let raw = disassemble(sample().insns());
    assert_eq!(raw, want.replace("L0", "+3").replace("  +3:\n", ""));
}

#[test]
fn disassemble_forms() {
    let mut a = Asm::new();
    let (top, l) = (a.label(), a.label());
    a.bind(top);
    a.alu32_imm(Alu::Add, R1, 2);
    a.alu32_reg(Alu::Arsh, R1, R2);
    a.alu64_imm(Alu::Neg, R3, 0);
    a.alu64_imm(Alu::Mod, R3, -7);
    a.to_be(R1, 16);
    a.to_le(R4, 32);
    a.jmp32_imm(Jmp::Gt, R1, 3, l);
    a.jmp32_reg(Jmp::Sle, R1, R2, top);
    a.st(Size::DW, R10, -8, -1);
    a.stx(Size::H, R10, -2, R7);
    a.atomic_add(Size::DW, R0, 8, R1);
    a.ld_imm64(R2, 0x1122_3344_5566_7788);
    a.bind(l);
    a.mov32_imm(R3, -1);
    a.call_id(999);
    a.exit();
    let want = "  L0:
    0: w1 += 2
    1: w1 s>>= w2
    2: r3 = -r3
    3: r3 %= -7
    4: r1 = be16 r1
    5: r4 = le32 r4
    6: if w1 > 0x3 goto L1
    7: if w1 s<= w2 goto L0
    8: *(u64 *)(r10 -8) = -1
    9: *(u16 *)(r10 -2) = r7
   10: lock *(u64 *)(r0 +8) += r1
   11: r2 = 0x1122334455667788 ll
  L1:
   13: w3 = -1
   14: call #999
   15: exit
";
    assert_eq!(a.finish().unwrap().to_string(), want);
}

#[test]
fn disassemble_raw_encodings() {
    let w = |b: [u8; 8]| RawInsn::from_le_bytes(b);
    let cases: [(&[RawInsn], &str); 10] = [
        (&[w([0x05, 0, 0xfe, 0xff, 0, 0, 0, 0])], "goto -2"),
        (&[w([0xff, 0, 0, 0, 0, 0, 0, 0])], "(bad 0xff)"),
        (&[w([0x18, 1, 0, 0, 1, 0, 0, 0])], "(bad 0x18)"), // ld_imm64 missing its second slot
        (&[w([0x8d, 0, 0, 0, 0, 0, 0, 0])], "(bad 0x8d)"), // call|X
        (&[w([0xdb, 0x21, 0, 0, 0xe1, 0, 0, 0])], "r2 = atomic64_xchg((u64 *)(r1 +0), r2)"),
        (&[w([0xc3, 0x21, 4, 0, 0x01, 0, 0, 0])], "r2 = atomic_fetch_add((u32 *)(r1 +4), r2)"),
        (&[w([0xdb, 0x1a, 0xf8, 0xff, 0x01, 0, 0, 0])], "r1 = atomic64_fetch_add((u64 *)(r10 -8), r1)"),
        (&[w([0xdc, 1, 0, 0, 17, 0, 0, 0])], "(bad 0xdc)"), // be17
        (&[w([0x85, 0x10, 0, 0, 4, 0, 0, 0])], "call +4"),
        (&[w([0x18, 0x23, 0, 0, 9, 0, 0, 0]), w([0, 0, 0, 0, 12, 0, 0, 0])], "r3 = map_value(9)+12 ll"),
    ];
    for (insns, want) in cases {
        assert_eq!(disassemble(insns), format!("    0: {want}\n"));
    }
}

#[test]
fn disassemble_random_words_never_panics() {
    // xorshift64*, fixed seed.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut insns = Vec::new();
    let mut lines = 0;
    for round in 0..2000 {
        insns.clear();
        for _ in 0..(round % 17) {
            let mut b = next().to_le_bytes();
            // Half the time use a plausible code byte so deep paths run too.
            if b[7] & 1 == 0 {
                b[0] = [0x18, 0x00, 0xdb, 0xc3, 0x85, 0xd4, 0xdc, 0xd7, 0x91, 0xbf, 0x16][b[6] as usize % 11];
            }
            insns.push(RawInsn::from_le_bytes(b));
        }
        let text = disassemble(&insns);
        assert!(text.lines().count() <= insns.len());
        assert!(insns.is_empty() || !text.is_empty());
        lines += text.lines().count();
    }
    assert!(lines > 10_000);
}
