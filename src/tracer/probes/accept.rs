//! The accept program: `syscalls:sys_exit_accept{,4}` perf tracepoints, in
//! the accepting task. Seeing the syscall's return (not `inet_csk_accept`)
//! also reports an `accept()` that was already blocked when tracing started,
//! and has no kretprobe `maxactive` limit.

use super::*;
use crate::asm::{AsmError, Program};
use crate::tracer::offsets::FdOffsets;

/// `ret_off`: offset of the `long ret` field in the trace record.
pub fn accept_program(
    so: &SockOffsets,
    fo: &FdOffsets,
    ret_off: u32,
    f: &Filters,
    maps: &MapFds,
) -> Result<Program, AsmError> {
    let mut a = Asm::new();
    let out = a.label();
    a.mov64_reg(Reg::R6, Reg::R1);
    a.st(Size::W, Reg::R10, ALSO_X, 0);
    a.ldx(Size::DW, Reg::R7, Reg::R6, ret_off as i16); // the new fd
    a.jmp_imm(Jmp::Slt, Reg::R7, 0, out);
    a.call(Helper::GetCurrentPidTgid);
    a.mov64_reg(Reg::R8, Reg::R0);
    pid_filter(&mut a, Reg::R8, f, out);
    // current → files → fdt → fd[ret] → file → socket → sk
    a.call(Helper::GetCurrentTask);
    read_ptr(&mut a, Reg::R9, Reg::R0, fo.task_files, out);
    read_ptr(&mut a, Reg::R9, Reg::R9, fo.files_fdt, out);
    fd_array(&mut a, fo, out);
    a.alu64_imm(Alu::Lsh, Reg::R7, 3);
    a.alu64_reg(Alu::Add, Reg::R9, Reg::R7);
    read_ptr(&mut a, Reg::R9, Reg::R9, 0, out); // struct file *
    read_ptr(&mut a, Reg::R9, Reg::R9, fo.file_private_data, out); // struct socket *
    read_ptr(&mut a, Reg::R7, Reg::R9, fo.socket_sk, out); // struct sock *
    check_tcp(&mut a, so, Mem::Probe, out);
    let (open, emit) = (a.label(), a.label());
    let acc = sock_access(&mut a, so, Mem::Probe, out);
    acc.load(&mut a, Size::B, Reg::R9, so.state);
    a.jmp_imm(Jmp::Ne, Reg::R9, CLOSE, open);
    // Handed out already closed. Reset while queued: its close was reported
    // as nothing (state.rs), so no A. Reset while accept() was taking it:
    // its X was marked (mark_closed), so it gets its A, and its X if that
    // was hidden.
    closed_call(&mut a, maps, Helper::MapLookupElem, 0);
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, out);
    a.ldx(Size::DW, Reg::R1, Reg::R0, 0);
    a.alu64_imm(Alu::And, Reg::R1, 0xffff); // the mark, without its peer
    a.stx(Size::W, Reg::R10, ALSO_X, Reg::R1);
    closed_call(&mut a, maps, Helper::MapDeleteElem, 0);
    task_block(&mut a, VAL, Some(Reg::R8), f);
    a.ja(emit);
    // The owner, for an X from softirq later; and the event's task fields.
    // (A reset on another CPU may miss it by a hair: after the A, the
    // program looks for that reset's mark; see claim_missed_close.)
    a.bind(open);
    remember_owner(&mut a, maps, Reg::R8, f);
    a.bind(emit);
    stack_ptr(&mut a, Reg::R9, VAL);
    owner_to_event(&mut a, Reg::R9);
    a.mov64_imm(Reg::R8, KIND_ACCEPT);
    // A reset racing this program zeroes skc_num (inet_put_port) before
    // the state says CLOSE: then inet_sport.
    let tail = Tail { acc, sport: Sport::NumUnlessClose(Reg::R9), also_x: true };
    emit_event(&mut a, so, tail, f, maps, out);
    a.bind(out);
    exit0(&mut a);
    a.finish()
}

/// r9 = fdt->fd (fdtable in r9), or `out` unless the fd in r7 is below
/// fdt->max_fds. The two fields are read with one probe_read_kernel when
/// they lie within 16 bytes (they are adjacent in every kernel).
fn fd_array(a: &mut Asm, fo: &FdOffsets, out: Label) {
    let lo = fo.fdt_max_fds.min(fo.fdt_fd);
    let hi = (fo.fdt_max_fds + 4).max(fo.fdt_fd + 8);
    if hi - lo <= 16 {
        let at = TMP - 8; // 16 bytes: TMP and the slot below it (free here)
        probe_read(a, at, (hi - lo) as i32, Reg::R9, lo, out);
        a.ldx(Size::W, Reg::R1, Reg::R10, at + (fo.fdt_max_fds - lo) as i16);
        a.jmp_reg(Jmp::Ge, Reg::R7, Reg::R1, out);
        a.ldx(Size::DW, Reg::R9, Reg::R10, at + (fo.fdt_fd - lo) as i16);
        a.jmp_imm(Jmp::Eq, Reg::R9, 0, out);
    } else {
        probe_read(a, TMP, 4, Reg::R9, fo.fdt_max_fds, out);
        a.ldx(Size::W, Reg::R1, Reg::R10, TMP);
        a.jmp_reg(Jmp::Ge, Reg::R7, Reg::R1, out);
        read_ptr(a, Reg::R9, Reg::R9, fo.fdt_fd, out);
    }
}
