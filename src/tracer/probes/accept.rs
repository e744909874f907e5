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
    a.ldx(Size::DW, Reg::R7, Reg::R6, ret_off as i16); // the new fd
    a.jmp_imm(Jmp::Slt, Reg::R7, 0, out);
    a.call(Helper::GetCurrentPidTgid);
    a.mov64_reg(Reg::R8, Reg::R0);
    pid_filter(&mut a, Reg::R8, f, out);
    // current → files → fdt → fd[ret] → file → socket → sk
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
    check_tcp(&mut a, so, Mem::Probe, out);
    // A connection reset while queued is handed out already closed: its
    // first closing move is past (and reported as nothing, see state.rs).
    let acc = sock_access(&mut a, so, Mem::Probe, out);
    acc.load(&mut a, Size::B, Reg::R1, so.state);
    a.jmp_imm(Jmp::Eq, Reg::R1, CLOSE, out);
    // The owner, for an X from softirq later; and the event's task fields.
    remember_owner(&mut a, maps, Reg::R8);
    stack_ptr(&mut a, Reg::R9, VAL);
    owner_to_event(&mut a, Reg::R9);
    a.mov64_imm(Reg::R8, KIND_ACCEPT);
    emit_event(&mut a, so, acc, Sport::Num, f, maps, out);
    a.bind(out);
    exit0(&mut a);
    a.finish()
}
