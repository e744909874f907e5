//! The BPF programs, written in the `asm` DSL with offsets from BTF.
//!
//! Tracepoint backend:
//! - `tcpt_state` (tp_btf `inet_sock_set_state`): CLOSE→SYN_SENT runs in the
//!   connecting task: remember sk → {pid_tgid, comm} in `conns`.
//!   SYN_SENT→ESTABLISHED: emit C from that entry (kept as the owner).
//!   SYN_SENT→CLOSE: forget the entry. The first move of an established
//!   connection towards closing (ESTABLISHED/CLOSE_WAIT → FIN_WAIT1/LAST_ACK/
//!   CLOSE): emit X with the current task when a task holds the socket lock
//!   (process context), else with the owner from `conns`; forget the entry.
//! - `tcpt_accept` (perf tracepoints `syscalls:sys_exit_accept{,4}`): walk
//!   current → files → fdt → fd[ret] → file → socket → sk with
//!   `probe_read_kernel`, emit A, record the owner in `conns`.

use super::event::{off, EVENT_SIZE};
use super::offsets::{FdOffsets, Field, SockOffsets};
use crate::asm::{Alu, Asm, AsmError, Helper, Jmp, Label, Program, Reg, Size};

// TCP states (include/net/tcp_states.h).
const ESTABLISHED: i32 = 1;
const SYN_SENT: i32 = 2;
const FIN_WAIT1: i32 = 4;
const CLOSE: i32 = 7;
const CLOSE_WAIT: i32 = 8;
const LAST_ACK: i32 = 9;
const AF_INET: i32 = 2;
const AF_INET6: i32 = 10;
const IPPROTO_TCP: i32 = 6;

pub const KIND_CONNECT: i32 = 1;
pub const KIND_ACCEPT: i32 = 2;
pub const KIND_CLOSE: i32 = 3;

/// `conns` value: {u64 pid_tgid; char comm[16]}.
pub const CONN_VALUE_SIZE: u32 = 24;

// Stack layout (offsets from r10).
const EV: i16 = -(EVENT_SIZE as i16); // the event, 80 bytes
const KEY: i16 = EV - 8; // sk pointer as map key
const VAL: i16 = KEY - 24; // conns value
const TMP: i16 = VAL - 8; // probe_read_kernel target
const CHUNK: i16 = TMP; // sock_common copy ends here (grows down)
const MAX_CHUNK: u32 = 256;

/// What the probes filter on, in the kernel.
#[derive(Clone, Copy, Debug, Default)]
pub struct Filters {
    pub pid: Option<u32>,
    pub netns: Option<u32>,
}

/// Map fds the programs reference.
#[derive(Clone, Copy, Debug)]
pub struct MapFds {
    pub events: i32,
    pub conns: i32,
}

/// How the programs read `struct sock`: direct loads (BTF-typed pointers:
/// tp_btf, fentry) or `probe_read_kernel` (tracepoint, kprobe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Direct,
    /// sock_common bytes [lo, hi) copied to the stack at `CHUNK - (hi-lo)`.
    Copied {
        lo: u32,
        hi: u32,
    },
}

impl Access {
    fn base(self) -> i16 {
        match self {
            Access::Direct => 0,
            Access::Copied { lo, hi } => CHUNK - ((hi - lo).div_ceil(8) * 8) as i16,
        }
    }

    /// `dst = *(size *)(sk + field)` with sk in r7.
    fn load(self, a: &mut Asm, size: Size, dst: Reg, field: u32) {
        match self {
            Access::Direct => a.ldx(size, dst, Reg::R7, field as i16),
            Access::Copied { lo, .. } => a.ldx(size, dst, Reg::R10, self.base() + (field - lo) as i16),
        }
    }
}

fn exit0(a: &mut Asm) {
    a.mov64_imm(Reg::R0, 0);
    a.exit();
}

/// `r1 = r10 + off`
fn stack_ptr(a: &mut Asm, reg: Reg, off: i16) {
    a.mov64_reg(reg, Reg::R10);
    a.alu64_imm(Alu::Add, reg, off as i32);
}

/// `probe_read_kernel(r10 + dst_off, size, src + src_off)`; on failure go to `out`.
fn probe_read(a: &mut Asm, dst_off: i16, size: i32, src: Reg, src_off: u32, out: Label) {
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
fn read_ptr(a: &mut Asm, dst: Reg, src: Reg, off: u32, out: Label) {
    probe_read(a, TMP, 8, src, off, out);
    a.ldx(Size::DW, dst, Reg::R10, TMP);
    a.jmp_imm(Jmp::Eq, dst, 0, out);
}

/// Extract a possibly-bitfield scalar already loaded into `reg`.
fn extract(a: &mut Asm, reg: Reg, f: Field) {
    if let Some((shift, bits)) = f.bits {
        if shift != 0 {
            a.alu64_imm(Alu::Rsh, reg, shift as i32);
        }
        a.alu64_imm(Alu::And, reg, ((1u64 << bits) - 1) as i32);
    }
}

fn size_of(bytes: u32) -> Size {
    Size::from_bytes(bytes as usize).expect("field size checked by offsets")
}

/// Go to `out` unless the sock in r7 is TCP (direct loads).
fn check_tcp_direct(a: &mut Asm, so: &SockOffsets, out: Label) {
    a.ldx(size_of(so.protocol.size), Reg::R1, Reg::R7, so.protocol.off as i16);
    extract(a, Reg::R1, so.protocol);
    a.jmp_imm(Jmp::Ne, Reg::R1, IPPROTO_TCP, out);
}

/// Copy {pid_tgid, comm} from the map value at `src` into the event.
fn owner_to_event(a: &mut Asm, src: Reg) {
    a.ldx(Size::DW, Reg::R1, src, 0);
    a.stx(Size::W, Reg::R10, EV + off::TID, Reg::R1);
    a.alu64_imm(Alu::Rsh, Reg::R1, 32);
    a.stx(Size::W, Reg::R10, EV + off::PID, Reg::R1);
    a.ldx(Size::DW, Reg::R1, src, 8);
    a.stx(Size::DW, Reg::R10, EV + off::COMM, Reg::R1);
    a.ldx(Size::DW, Reg::R1, src, 16);
    a.stx(Size::DW, Reg::R10, EV + off::COMM + 8, Reg::R1);
}

/// `conns` helper call with key = r7 (sk) stored at KEY.
fn conns_call(a: &mut Asm, maps: &MapFds, h: Helper) {
    a.stx(Size::DW, Reg::R10, KEY, Reg::R7);
    a.ld_map_fd(Reg::R1, maps.conns);
    stack_ptr(a, Reg::R2, KEY);
    if h == Helper::MapUpdateElem {
        stack_ptr(a, Reg::R3, VAL);
        a.mov64_imm(Reg::R4, 0);
    }
    a.call(h);
}

/// Where the source port comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sport {
    /// `skc_num` (host order), read like the other sock_common fields.
    Num,
    /// `inet_sock.inet_sport` (network order) through probe_read_kernel:
    /// needed where the state may be moving to CLOSE.
    InetSport,
}

/// Shared tail: fill the event's tuple from the sock in r7, kind in r8
/// (pid, tid and comm already in place), apply the netns filter, output.
fn emit_event(
    a: &mut Asm,
    so: &SockOffsets,
    acc: Access,
    sport: Sport,
    f: &Filters,
    maps: &MapFds,
    out: Label,
) {
    let (v4, ports) = (a.label(), a.label());
    for o in (off::KIND..EVENT_SIZE as i16).step_by(8) {
        a.st(Size::DW, Reg::R10, EV + o, 0);
    }
    a.stx(Size::B, Reg::R10, EV + off::KIND, Reg::R8);
    acc.load(a, Size::H, Reg::R1, so.family);
    a.jmp_imm(Jmp::Eq, Reg::R1, AF_INET, v4);
    match so.v6 {
        Some((daddr, saddr)) => {
            a.jmp_imm(Jmp::Ne, Reg::R1, AF_INET6, out);
            a.st(Size::B, Reg::R10, EV + off::IP, 6);
            for (field, dst) in [(saddr, off::SADDR), (daddr, off::DADDR)] {
                for half in [0, 8] {
                    acc.load(a, Size::DW, Reg::R1, field + half as u32);
                    a.stx(Size::DW, Reg::R10, EV + dst + half, Reg::R1);
                }
            }
            a.ja(ports);
        }
        None => a.ja(out),
    }
    a.bind(v4);
    a.st(Size::B, Reg::R10, EV + off::IP, 4);
    acc.load(a, Size::W, Reg::R1, so.rcv_saddr);
    a.stx(Size::W, Reg::R10, EV + off::SADDR, Reg::R1);
    acc.load(a, Size::W, Reg::R1, so.daddr);
    a.stx(Size::W, Reg::R10, EV + off::DADDR, Reg::R1);
    a.bind(ports);
    match sport {
        Sport::Num => acc.load(a, Size::H, Reg::R1, so.num),
        Sport::InetSport => {
            probe_read(a, TMP, 2, Reg::R7, so.inet_sport, out);
            a.ldx(Size::H, Reg::R1, Reg::R10, TMP);
            a.to_be(Reg::R1, 16);
        }
    }
    a.jmp_imm(Jmp::Eq, Reg::R1, 0, out);
    a.stx(Size::H, Reg::R10, EV + off::SPORT, Reg::R1);
    acc.load(a, Size::H, Reg::R1, so.dport);
    a.jmp_imm(Jmp::Eq, Reg::R1, 0, out);
    a.stx(Size::H, Reg::R10, EV + off::DPORT, Reg::R1);
    if let Some((net, inum)) = so.netns {
        let no_net = a.label();
        acc.load(a, Size::DW, Reg::R1, net);
        a.jmp_imm(Jmp::Eq, Reg::R1, 0, no_net);
        match acc {
            Access::Direct => a.ldx(Size::W, Reg::R1, Reg::R1, inum as i16),
            Access::Copied { .. } => {
                probe_read(a, TMP, 4, Reg::R1, inum, no_net);
                a.ldx(Size::W, Reg::R1, Reg::R10, TMP);
            }
        }
        a.stx(Size::W, Reg::R10, EV + off::NETNS, Reg::R1);
        a.bind(no_net);
    }
    if let Some(ns) = f.netns {
        a.ldx(Size::W, Reg::R1, Reg::R10, EV + off::NETNS);
        a.jmp32_imm(Jmp::Ne, Reg::R1, ns as i32, out);
    }
    a.call(Helper::KtimeGetNs);
    a.stx(Size::DW, Reg::R10, EV + off::TS, Reg::R0);
    a.mov64_reg(Reg::R1, Reg::R6);
    a.ld_map_fd(Reg::R2, maps.events);
    a.mov32_imm(Reg::R3, -1); // BPF_F_CURRENT_CPU: exactly 0xffffffff
    stack_ptr(a, Reg::R4, EV);
    a.mov64_imm(Reg::R5, EVENT_SIZE as i32);
    a.call(Helper::PerfEventOutput);
    a.ja(out);
}

/// Go to `out` unless the tgid in the upper half of `reg` is the filtered pid.
fn pid_filter(a: &mut Asm, reg: Reg, f: &Filters, out: Label) {
    if let Some(pid) = f.pid {
        a.mov64_reg(Reg::R1, reg);
        a.alu64_imm(Alu::Rsh, Reg::R1, 32);
        a.jmp32_imm(Jmp::Ne, Reg::R1, pid as i32, out);
    }
}

/// tp_btf `inet_sock_set_state(sk, oldstate, newstate)`.
pub fn state_program(so: &SockOffsets, f: &Filters, maps: &MapFds) -> Result<Program, AsmError> {
    let mut a = Asm::new();
    let out = a.label();
    let [syn_sent, established, on_close, closing, failed, first_close, softirq, unknown, emit_close, emit] =
        [(); 10].map(|_| a.label());
    a.mov64_reg(Reg::R6, Reg::R1);
    a.ldx(Size::DW, Reg::R7, Reg::R6, 0); // sk
    a.ldx(Size::DW, Reg::R8, Reg::R6, 8); // oldstate
    a.ldx(Size::DW, Reg::R9, Reg::R6, 16); // newstate
    a.jmp32_imm(Jmp::Eq, Reg::R9, SYN_SENT, syn_sent);
    a.jmp32_imm(Jmp::Eq, Reg::R9, ESTABLISHED, established);
    a.jmp32_imm(Jmp::Eq, Reg::R9, CLOSE, on_close);
    a.jmp32_imm(Jmp::Eq, Reg::R9, FIN_WAIT1, closing);
    a.jmp32_imm(Jmp::Eq, Reg::R9, LAST_ACK, closing);
    a.ja(out);

    a.bind(on_close);
    a.jmp32_imm(Jmp::Eq, Reg::R8, SYN_SENT, failed);
    a.bind(closing);
    a.jmp32_imm(Jmp::Eq, Reg::R8, ESTABLISHED, first_close);
    a.jmp32_imm(Jmp::Eq, Reg::R8, CLOSE_WAIT, first_close);
    a.ja(out);

    // A connect that never established: forget it.
    a.bind(failed);
    conns_call(&mut a, maps, Helper::MapDeleteElem);
    a.ja(out);

    // CLOSE → SYN_SENT, in the connecting task.
    a.bind(syn_sent);
    a.jmp32_imm(Jmp::Ne, Reg::R8, CLOSE, out);
    check_tcp_direct(&mut a, so, out);
    a.call(Helper::GetCurrentPidTgid);
    pid_filter(&mut a, Reg::R0, f, out);
    a.stx(Size::DW, Reg::R10, VAL, Reg::R0);
    stack_ptr(&mut a, Reg::R1, VAL + 8);
    a.mov64_imm(Reg::R2, 16);
    a.call(Helper::GetCurrentComm);
    conns_call(&mut a, maps, Helper::MapUpdateElem);
    a.ja(out);

    // SYN_SENT → ESTABLISHED: C with the connecting task (entry kept as owner).
    a.bind(established);
    a.jmp32_imm(Jmp::Ne, Reg::R8, SYN_SENT, out);
    conns_call(&mut a, maps, Helper::MapLookupElem);
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, out);
    owner_to_event(&mut a, Reg::R0);
    a.mov64_imm(Reg::R8, KIND_CONNECT);
    a.ja(emit);

    // First move of an established connection towards closing: X.
    a.bind(first_close);
    check_tcp_direct(&mut a, so, out);
    a.ldx(Size::W, Reg::R9, Reg::R7, so.lock_owned as i16);
    a.jmp_imm(Jmp::Eq, Reg::R9, 0, softirq);
    a.call(Helper::GetCurrentPidTgid);
    a.stx(Size::W, Reg::R10, EV + off::TID, Reg::R0);
    a.alu64_imm(Alu::Rsh, Reg::R0, 32);
    a.stx(Size::W, Reg::R10, EV + off::PID, Reg::R0);
    stack_ptr(&mut a, Reg::R1, EV + off::COMM);
    a.mov64_imm(Reg::R2, 16);
    a.call(Helper::GetCurrentComm);
    conns_call(&mut a, maps, Helper::MapDeleteElem);
    a.ja(emit_close);
    // No task holds the lock (softirq or timer): the owner did it.
    a.bind(softirq);
    conns_call(&mut a, maps, Helper::MapLookupElem);
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, unknown);
    owner_to_event(&mut a, Reg::R0);
    conns_call(&mut a, maps, Helper::MapDeleteElem);
    a.ja(emit_close);
    a.bind(unknown);
    a.st(Size::DW, Reg::R10, EV + off::PID, 0);
    a.st(Size::DW, Reg::R10, EV + off::COMM, 0);
    a.st(Size::DW, Reg::R10, EV + off::COMM + 8, 0);
    a.bind(emit_close);
    if let Some(pid) = f.pid {
        a.ldx(Size::W, Reg::R1, Reg::R10, EV + off::PID);
        a.jmp32_imm(Jmp::Ne, Reg::R1, pid as i32, out);
    }
    a.mov64_imm(Reg::R8, KIND_CLOSE);

    a.bind(emit);
    emit_event(&mut a, so, Access::Direct, Sport::InetSport, f, maps, out);
    a.bind(out);
    exit0(&mut a);
    a.finish()
}

/// Perf tracepoint `syscalls:sys_exit_accept{,4}`; `ret_off` is the offset
/// of the `long ret` field in the trace record.
pub fn accept_program(
    so: &SockOffsets,
    fo: &FdOffsets,
    ret_off: u32,
    f: &Filters,
    maps: &MapFds,
) -> Result<Program, AsmError> {
    let (lo, hi) = so.common_span();
    assert!(hi - lo <= MAX_CHUNK, "sock_common span {lo}..{hi} too large");
    let acc = Access::Copied { lo, hi };
    let mut a = Asm::new();
    let out = a.label();
    a.mov64_reg(Reg::R6, Reg::R1);
    a.ldx(Size::DW, Reg::R7, Reg::R6, ret_off as i16); // new fd
    a.jmp_imm(Jmp::Slt, Reg::R7, 0, out);
    a.call(Helper::GetCurrentPidTgid);
    a.mov64_reg(Reg::R8, Reg::R0);
    pid_filter(&mut a, Reg::R8, f, out);
    a.call(Helper::GetCurrentTask);
    read_ptr(&mut a, Reg::R9, Reg::R0, fo.task_files, out);
    read_ptr(&mut a, Reg::R9, Reg::R9, fo.files_fdt, out);
    probe_read(&mut a, TMP, 4, Reg::R9, fo.fdt_max_fds, out);
    a.ldx(Size::W, Reg::R1, Reg::R10, TMP);
    a.jmp_reg(Jmp::Ge, Reg::R7, Reg::R1, out);
    read_ptr(&mut a, Reg::R9, Reg::R9, fo.fdt_fd, out);
    a.alu64_imm(Alu::Lsh, Reg::R7, 3);
    a.alu64_reg(Alu::Add, Reg::R9, Reg::R7);
    read_ptr(&mut a, Reg::R9, Reg::R9, 0, out); // struct file *
    read_ptr(&mut a, Reg::R9, Reg::R9, fo.file_private_data, out); // struct socket *
    read_ptr(&mut a, Reg::R7, Reg::R9, fo.socket_sk, out); // struct sock *
    probe_read(&mut a, TMP, so.protocol.size as i32, Reg::R7, so.protocol.off, out);
    a.ldx(size_of(so.protocol.size), Reg::R1, Reg::R10, TMP);
    extract(&mut a, Reg::R1, so.protocol);
    a.jmp_imm(Jmp::Ne, Reg::R1, IPPROTO_TCP, out);
    probe_read(&mut a, acc.base(), (hi - lo) as i32, Reg::R7, lo, out);
    // Owner for a later X in softirq, and the event's task fields.
    a.stx(Size::DW, Reg::R10, VAL, Reg::R8);
    stack_ptr(&mut a, Reg::R1, VAL + 8);
    a.mov64_imm(Reg::R2, 16);
    a.call(Helper::GetCurrentComm);
    conns_call(&mut a, maps, Helper::MapUpdateElem);
    stack_ptr(&mut a, Reg::R9, VAL);
    owner_to_event(&mut a, Reg::R9);
    a.mov64_imm(Reg::R8, KIND_ACCEPT);
    emit_event(&mut a, so, acc, Sport::Num, f, maps, out);
    a.bind(out);
    exit0(&mut a);
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets() -> SockOffsets {
        SockOffsets {
            daddr: 0,
            rcv_saddr: 4,
            dport: 12,
            num: 14,
            family: 16,
            v6: Some((56, 72)),
            netns: Some((48, 176)),
            protocol: Field { off: 516, size: 2, bits: None },
            lock_owned: 140,
            inet_sport: 814,
        }
    }

    fn fd_offsets() -> FdOffsets {
        FdOffsets {
            task_files: 2000,
            files_fdt: 32,
            fdt_max_fds: 0,
            fdt_fd: 8,
            file_private_data: 200,
            socket_sk: 24,
        }
    }

    const MAPS: MapFds = MapFds { events: 5, conns: 6 };

    #[test]
    fn programs_assemble_with_and_without_filters() {
        for f in [Filters::default(), Filters { pid: Some(42), netns: Some(4026531840) }] {
            let p = state_program(&offsets(), &f, &MAPS).unwrap();
            assert!(p.len() < 300, "state program grew to {}", p.len());
            let p = accept_program(&offsets(), &fd_offsets(), 16, &f, &MAPS).unwrap();
            assert!(p.len() < 300, "accept program grew to {}", p.len());
        }
    }

    #[test]
    fn filters_reach_the_code() {
        let f = Filters { pid: Some(4242), netns: Some(4026531840) };
        let text = state_program(&offsets(), &f, &MAPS).unwrap().to_string();
        assert!(text.contains("0x1092"), "pid filter missing:\n{text}");
        assert!(text.contains("0xf0000000"), "netns filter missing:\n{text}");
        let plain = state_program(&offsets(), &Filters::default(), &MAPS).unwrap().to_string();
        assert!(!plain.contains("0x1092") && !plain.contains("0xf0000000"));
    }

    #[test]
    fn current_cpu_flag_is_32_bit_all_ones() {
        let p = state_program(&offsets(), &Filters::default(), &MAPS).unwrap();
        // mov32 r3, -1 = b4 03 00 00 ff ff ff ff, never the sign-extending b7.
        let bytes = p.to_bytes();
        assert!(bytes.chunks(8).any(|c| c == [0xb4, 0x03, 0, 0, 0xff, 0xff, 0xff, 0xff]));
        assert!(!bytes.chunks(8).any(|c| c == [0xb7, 0x03, 0, 0, 0xff, 0xff, 0xff, 0xff]));
    }

    #[test]
    fn copied_access_reads_from_the_stack_chunk() {
        let so = offsets();
        let (lo, hi) = so.common_span();
        assert_eq!((lo, hi), (0, 88));
        let acc = Access::Copied { lo, hi };
        assert_eq!(acc.base(), TMP - 88);
        assert!(acc.base() >= -512);
    }
}
