//! The filters on the task and the ports (the rest are in `fill_event`,
//! where the fields they test are read).

use super::frame::EV;
use crate::asm::{Alu, Asm, Jmp, Label, Reg, Size};
use crate::tracer::config::Filters;
use crate::tracer::event::off;

/// Go to `out` unless the tgid in the upper half of `reg` is the filtered pid.
pub(super) fn pid_filter(a: &mut Asm, reg: Reg, f: &Filters, out: Label) {
    if let Some(pid) = f.pid {
        a.mov64_reg(Reg::R1, reg);
        a.alu64_imm(Alu::Rsh, Reg::R1, 32);
        a.jmp32_imm(Jmp::Ne, Reg::R1, pid as i32, out);
    }
}

/// Go to `out` unless the event's task (already in place) passes the
/// task filters.
pub(super) fn task_filters(a: &mut Asm, f: &Filters, out: Label) {
    if let Some(pid) = f.pid {
        a.ldx(Size::W, Reg::R1, Reg::R10, EV + off::PID);
        a.jmp32_imm(Jmp::Ne, Reg::R1, pid as i32, out);
    }
    if let Some(uid) = f.uid {
        a.ldx(Size::W, Reg::R1, Reg::R10, EV + off::UID);
        a.jmp32_imm(Jmp::Ne, Reg::R1, uid as i32, out);
    }
    if let Some(id) = f.cgroup {
        a.ldx(Size::DW, Reg::R1, Reg::R10, EV + off::CGROUP);
        a.ld_imm64(Reg::R2, id);
        a.jmp_reg(Jmp::Ne, Reg::R1, Reg::R2, out);
    }
    if let Some(comm) = f.comm {
        for half in [0, 8] {
            let word = u64::from_le_bytes(comm[half..half + 8].try_into().unwrap());
            a.ldx(Size::DW, Reg::R1, Reg::R10, EV + off::COMM + half as i16);
            a.ld_imm64(Reg::R2, word);
            a.jmp_reg(Jmp::Ne, Reg::R1, Reg::R2, out);
        }
    }
}

/// Go to `out` unless one of the ports (sport host order, dport network
/// order, both in the event) is in the filter.
pub(super) fn port_filter(a: &mut Asm, f: &Filters, out: Label) {
    if f.ports.is_empty() {
        return;
    }
    let keep = a.label();
    a.ldx(Size::H, Reg::R1, Reg::R10, EV + off::SPORT);
    a.ldx(Size::H, Reg::R2, Reg::R10, EV + off::DPORT);
    for &p in &f.ports {
        a.jmp_imm(Jmp::Eq, Reg::R1, p as i32, keep);
        a.jmp_imm(Jmp::Eq, Reg::R2, p.to_be() as i32, keep);
    }
    a.ja(out);
    a.bind(keep);
}
