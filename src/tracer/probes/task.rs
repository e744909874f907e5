//! The task block: the current task's, a recorded owner's, or an unknown
//! one, into the event.

use super::frame::{stack_ptr, EV, TASK_SIZE};
use crate::asm::{Asm, Helper, Reg, Size};
use crate::tracer::config::Filters;
use crate::tracer::event::off;

/// Copy a task block at `src` (a `conns` value) into the event.
pub(super) fn owner_to_event(a: &mut Asm, src: Reg) {
    for o in (0..TASK_SIZE).step_by(8) {
        a.ldx(Size::DW, Reg::R1, src, o);
        a.stx(Size::DW, Reg::R10, EV + off::TASK + o, Reg::R1);
    }
}

/// The current task's block at r10 + `base`: pid_tgid (from `pid_tgid`,
/// or the helper), uid_gid and cgroup (zero unless `f` wants them), comm.
pub(super) fn task_block(a: &mut Asm, base: i16, pid_tgid: Option<Reg>, f: &Filters) {
    match pid_tgid {
        Some(r) => a.stx(Size::DW, Reg::R10, base, r),
        None => {
            a.call(Helper::GetCurrentPidTgid);
            a.stx(Size::DW, Reg::R10, base, Reg::R0);
        }
    }
    if f.ids() {
        a.call(Helper::GetCurrentUidGid);
        a.stx(Size::DW, Reg::R10, base + 8, Reg::R0);
        a.call(Helper::GetCurrentCgroupId);
        a.stx(Size::DW, Reg::R10, base + 16, Reg::R0);
    } else {
        a.st(Size::DW, Reg::R10, base + 8, 0);
        a.st(Size::DW, Reg::R10, base + 16, 0);
    }
    // Some kernels (6.1) copy the name without padding the rest: zero it
    // first, so the comm filter and the map value see NUL padding.
    a.st(Size::DW, Reg::R10, base + 24, 0);
    a.st(Size::DW, Reg::R10, base + 32, 0);
    stack_ptr(a, Reg::R1, base + 24);
    a.mov64_imm(Reg::R2, 16);
    a.call(Helper::GetCurrentComm);
}

/// The current task into the event.
pub(super) fn current_to_event(a: &mut Asm, f: &Filters) {
    task_block(a, EV + off::TASK, None, f);
}

/// An unknown task into the event: pid 0, uid/gid unknown, no comm.
pub(super) fn unknown_to_event(a: &mut Asm) {
    for o in (0..TASK_SIZE).step_by(8) {
        a.st(Size::DW, Reg::R10, EV + off::TASK + o, if o == 8 { -1 } else { 0 });
    }
}
