//! The accept program: `syscalls:sys_exit_accept{,4}` perf tracepoints, in
//! the accepting task. Seeing the syscall's return (not `inet_csk_accept`)
//! also reports an `accept()` that was already blocked when tracing started,
//! and has no kretprobe `maxactive` limit.

use super::fill::{fill_event, read_bytes, set_kind, Sport, Tail, KIND_ACCEPT, KIND_CLOSE};
use super::filters::pid_filter;
use super::frame::{exit0, CONN_OPEN, CTX, EV, FLAG, IDENT, KEY, KIND, OPEN, SK, TASK_SIZE, TMP, TMP16, VAL};
use super::kernel::CLOSE;
use super::maps::MapFds;
use super::output::output;
use super::owner::{conns_call, fence, mark_call, record_owner};
use super::read::{check_tcp, probe_read, read_ptr, sock_access, Mem};
use super::task::task_block;
use crate::asm::{Alu, Asm, AsmError, Helper, Jmp, Label, Program, Reg, Size};
use crate::tracer::config::Filters;
use crate::tracer::event::off;
use crate::tracer::offsets::{FdOffsets, SockOffsets};

/// The new fd, until the sk replaces it.
const FD: Reg = SK;
/// The accepting task's pid_tgid, until `KIND` replaces it.
const PID_TGID: Reg = KIND;
/// The pointer chain to the sock, then the socket, then its TCP state.
const PTR: Reg = Reg::R9;

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
    a.mov64_reg(CTX, Reg::R1);
    a.st(Size::W, Reg::R10, FLAG, 0);
    a.ldx(Size::DW, FD, CTX, ret_off as i16);
    a.jmp_imm(Jmp::Slt, FD, 0, out);
    a.call(Helper::GetCurrentPidTgid);
    a.mov64_reg(PID_TGID, Reg::R0);
    pid_filter(&mut a, PID_TGID, f, out);
    // current → files → fdt → fd[ret] → file → socket → sk
    a.call(Helper::GetCurrentTask);
    read_ptr(&mut a, PTR, Reg::R0, fo.task_files, out);
    read_ptr(&mut a, PTR, PTR, fo.files_fdt, out);
    fd_array(&mut a, fo, out);
    a.alu64_imm(Alu::Lsh, FD, 3);
    a.alu64_reg(Alu::Add, PTR, FD);
    read_ptr(&mut a, PTR, PTR, 0, out); // struct file *
    a.stx(Size::DW, Reg::R10, KEY, PTR);
    read_ptr(&mut a, PTR, PTR, fo.file_private_data, out); // struct socket *
    socket_file_and_sk(&mut a, fo, out);
    // Another thread may have closed or replaced the fd since the syscall
    // installed it: only a socket whose file is the one found is ours (a
    // file of another kind has no socket there to point back).
    a.ldx(Size::DW, Reg::R2, Reg::R10, KEY);
    a.jmp_reg(Jmp::Ne, Reg::R1, Reg::R2, out);
    a.jmp_imm(Jmp::Eq, SK, 0, out);
    check_tcp(&mut a, so, Mem::Probe, out);
    probe_read(&mut a, IDENT, 8, PTR, so.socket_ino, out);
    task_block(&mut a, VAL, Some(PID_TGID), f);
    let acc = sock_access(&mut a, so, Mem::Probe, out);
    acc.load(&mut a, Size::B, PTR, so.state);
    a.jmp_imm(Jmp::Ne, PTR, CLOSE, open);
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
    a.mov64_imm(KIND, KIND_ACCEPT);
    // A reset racing this program zeroes skc_num (inet_put_port) before
    // the state says CLOSE: then inet_sport.
    let tail = Tail { acc, sport: Sport::NumUnlessClose(PTR), task_filters: true };
    fill_event(&mut a, so, tail, f, maps, out);
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
    read_bytes(&mut a, so, None);
    output(&mut a, maps);
    a.bind(out);
    exit0(&mut a);
    a.finish()
}

/// PTR = fdt->fd (fdtable in PTR), or `out` unless FD is below
/// fdt->max_fds. The two fields are read with one probe_read_kernel when
/// they lie within 16 bytes (they are adjacent in every kernel).
fn fd_array(a: &mut Asm, fo: &FdOffsets, out: Label) {
    let lo = fo.fdt_max_fds.min(fo.fdt_fd);
    let hi = (fo.fdt_max_fds + 4).max(fo.fdt_fd + 8);
    if hi - lo <= 16 {
        probe_read(a, TMP16, (hi - lo) as i32, PTR, lo, out);
        a.ldx(Size::W, Reg::R1, Reg::R10, TMP16 + (fo.fdt_max_fds - lo) as i16);
        a.jmp_reg(Jmp::Ge, FD, Reg::R1, out);
        a.ldx(Size::DW, PTR, Reg::R10, TMP16 + (fo.fdt_fd - lo) as i16);
        a.jmp_imm(Jmp::Eq, PTR, 0, out);
    } else {
        probe_read(a, TMP, 4, PTR, fo.fdt_max_fds, out);
        a.ldx(Size::W, Reg::R1, Reg::R10, TMP);
        a.jmp_reg(Jmp::Ge, FD, Reg::R1, out);
        read_ptr(a, PTR, PTR, fo.fdt_fd, out);
    }
}

/// r1 = socket->file, SK = socket->sk (socket in PTR): one read when they
/// are adjacent (every kernel), else two.
fn socket_file_and_sk(a: &mut Asm, fo: &FdOffsets, out: Label) {
    if fo.socket_sk == fo.socket_file + 8 {
        probe_read(a, TMP16, 16, PTR, fo.socket_file, out);
        a.ldx(Size::DW, SK, Reg::R10, TMP);
    } else {
        probe_read(a, TMP, 8, PTR, fo.socket_sk, out);
        a.ldx(Size::DW, SK, Reg::R10, TMP);
        probe_read(a, TMP16, 8, PTR, fo.socket_file, out);
    }
    a.ldx(Size::DW, Reg::R1, Reg::R10, TMP16);
}
