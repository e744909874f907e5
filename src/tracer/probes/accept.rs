//! The accept program: `syscalls:sys_exit_accept{,4}` perf tracepoints, in
//! the accepting task. Seeing the syscall's return (not `inet_csk_accept`)
//! also reports an `accept()` that was already blocked when tracing started,
//! and has no kretprobe `maxactive` limit.

use super::owner::{conns_call, fence, mark_call, record_owner};
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
    let (out, open, x) = (a.label(), a.label(), a.label());
    a.mov64_reg(Reg::R6, Reg::R1);
    a.st(Size::W, Reg::R10, FLAG, 0);
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
    a.stx(Size::DW, Reg::R10, KEY, Reg::R9);
    read_ptr(&mut a, Reg::R9, Reg::R9, fo.file_private_data, out); // struct socket *
    socket_file_and_sk(&mut a, fo, out);
    // Another thread may have closed or replaced the fd since the syscall
    // installed it: only a socket whose file is the one found is ours (a
    // file of another kind has no socket there to point back).
    a.ldx(Size::DW, Reg::R2, Reg::R10, KEY);
    a.jmp_reg(Jmp::Ne, Reg::R1, Reg::R2, out);
    a.jmp_imm(Jmp::Eq, Reg::R7, 0, out);
    check_tcp(&mut a, so, Mem::Probe, out);
    probe_read(&mut a, IDENT, 8, Reg::R9, so.socket_ino, out);
    task_block(&mut a, VAL, Some(Reg::R8), f);
    let acc = sock_access(&mut a, so, Mem::Probe, out);
    acc.load(&mut a, Size::B, Reg::R9, so.state);
    a.jmp_imm(Jmp::Ne, Reg::R9, CLOSE, open);
    // Handed out already closed. Reset while queued: it had no socket, so
    // its close was no X and left no mark: no A either. Reset while
    // accept() was taking it: its X was deferred (owner.rs); claim it,
    // and report the A, then the X.
    mark_call(&mut a, maps, Helper::MapDeleteElem);
    a.jmp32_imm(Jmp::Ne, Reg::R0, 0, out);
    a.st(Size::W, Reg::R10, FLAG, 1);
    a.bind(open);
    for o in (0..TASK_SIZE).step_by(8) {
        a.ldx(Size::DW, Reg::R1, Reg::R10, VAL + o);
        a.stx(Size::DW, Reg::R10, EV + off::TASK + o, Reg::R1);
    }
    a.mov64_imm(Reg::R8, KIND_ACCEPT);
    // A reset racing this program zeroes skc_num (inet_put_port) before
    // the state says CLOSE: then inet_sport.
    let tail = Tail { acc, sport: Sport::NumUnlessClose(Reg::R9), task_filters: true };
    fill_event(&mut a, so, tail, f, out);
    output(&mut a, maps);
    a.ldx(Size::W, Reg::R1, Reg::R10, FLAG);
    a.jmp_imm(Jmp::Ne, Reg::R1, 0, x);
    // The owner, for an X from softirq later (after the A: an X that finds
    // it is stamped after the A), open (its X is due). A filtered A needs
    // none: that X would be filtered alike. Then look for a close deferred
    // meanwhile (owner.rs).
    acc.load(&mut a, Size::H, Reg::R1, so.dport);
    a.alu64_imm(Alu::Or, Reg::R1, OPEN);
    a.stx(Size::DW, Reg::R10, VAL + CONN_OPEN, Reg::R1);
    record_owner(&mut a, maps);
    fence(&mut a);
    mark_call(&mut a, maps, Helper::MapDeleteElem);
    a.jmp32_imm(Jmp::Ne, Reg::R0, 0, out);
    conns_call(&mut a, maps, Helper::MapDeleteElem);
    a.bind(x);
    set_kind(&mut a, KIND_CLOSE);
    output(&mut a, maps);
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

/// r1 = socket->file, r7 = socket->sk (socket in r9): one read when they
/// are adjacent (every kernel), else two.
fn socket_file_and_sk(a: &mut Asm, fo: &FdOffsets, out: Label) {
    let at = TMP - 8;
    if fo.socket_sk == fo.socket_file + 8 {
        probe_read(a, at, 16, Reg::R9, fo.socket_file, out);
        a.ldx(Size::DW, Reg::R7, Reg::R10, TMP);
    } else {
        probe_read(a, TMP, 8, Reg::R9, fo.socket_sk, out);
        a.ldx(Size::DW, Reg::R7, Reg::R10, TMP);
        probe_read(a, at, 8, Reg::R9, fo.socket_file, out);
    }
    a.ldx(Size::DW, Reg::R1, Reg::R10, at);
}
