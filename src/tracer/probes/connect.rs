//! Connect programs for the kprobe and fentry backends, on
//! `tcp_v4_connect` and `tcp_v6_connect` (an IPv4-mapped destination runs
//! the first inside the second).
//!
//! Entry: conns[sk] = {pid_tgid, comm, the socket's identity}. Keyed by
//! the socket, the nested call writes the same entry again; a per-task
//! slot would be clobbered by it (see docs/decisions.md (connect key)).
//! Exit with an error: forget conns[sk]. kprobe: the return probe finds sk
//! through `inflight[pid_tgid]`, which the inner return consumes; fexit
//! has sk in its arguments.

use super::filters::pid_filter;
use super::frame::{exit0, stack_ptr, CTX, KEY, SK, TMP};
use super::maps::MapFds;
use super::owner::{conns_call, read_ident, remember_owner};
use crate::asm::{Asm, AsmError, Helper, Jmp, Program, Reg, Size};
use crate::tracer::config::Filters;
use crate::tracer::offsets::SockOffsets;

/// The connecting task's pid_tgid (entry).
const PID_TGID: Reg = Reg::R8;
/// The function's return value (exit).
const RET: Reg = Reg::R9;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectHook {
    /// fentry/fexit: sk is ctx[0]; the return value follows the arguments.
    Fentry,
    /// kprobe/kretprobe: sk and the return value at these `pt_regs` offsets.
    Kprobe { arg0: u32, ret: u32 },
}

/// `inflight` helper call with key = pid_tgid stored at KEY.
fn inflight_call(a: &mut Asm, fd: i32, h: Helper) {
    a.ld_map_fd(Reg::R1, fd);
    stack_ptr(a, Reg::R2, KEY);
    if h == Helper::MapUpdateElem {
        stack_ptr(a, Reg::R3, TMP);
        a.mov64_imm(Reg::R4, 0);
    }
    a.call(h);
}

pub fn connect_entry_program(
    so: &SockOffsets,
    hook: ConnectHook,
    f: &Filters,
    maps: &MapFds,
) -> Result<Program, AsmError> {
    let mut a = Asm::new();
    let out = a.label();
    a.mov64_reg(CTX, Reg::R1);
    let off = match hook {
        ConnectHook::Fentry => 0,
        ConnectHook::Kprobe { arg0, .. } => arg0,
    };
    a.ldx(Size::DW, SK, CTX, off as i16);
    a.call(Helper::GetCurrentPidTgid);
    a.mov64_reg(PID_TGID, Reg::R0);
    pid_filter(&mut a, PID_TGID, f, out);
    read_ident(&mut a, so, out);
    remember_owner(&mut a, maps, PID_TGID, f);
    if let (ConnectHook::Kprobe { .. }, Some(inflight)) = (hook, maps.inflight) {
        a.stx(Size::DW, Reg::R10, KEY, PID_TGID);
        a.stx(Size::DW, Reg::R10, TMP, SK);
        inflight_call(&mut a, inflight, Helper::MapUpdateElem);
    }
    a.bind(out);
    exit0(&mut a);
    a.finish()
}

/// `nargs`: the function's parameter count (from its BTF prototype), which
/// is where fexit finds the return value.
pub fn connect_exit_program(hook: ConnectHook, nargs: u32, maps: &MapFds) -> Result<Program, AsmError> {
    let mut a = Asm::new();
    let out = a.label();
    a.mov64_reg(CTX, Reg::R1);
    match (hook, maps.inflight) {
        (ConnectHook::Fentry, _) => {
            a.ldx(Size::DW, RET, CTX, (nargs * 8) as i16);
            a.jmp32_imm(Jmp::Eq, RET, 0, out);
            a.ldx(Size::DW, SK, CTX, 0);
        }
        (ConnectHook::Kprobe { ret, .. }, Some(inflight)) => {
            a.ldx(Size::DW, RET, CTX, ret as i16);
            a.call(Helper::GetCurrentPidTgid);
            a.stx(Size::DW, Reg::R10, KEY, Reg::R0);
            inflight_call(&mut a, inflight, Helper::MapLookupElem);
            a.jmp_imm(Jmp::Eq, Reg::R0, 0, out);
            a.ldx(Size::DW, SK, Reg::R0, 0);
            inflight_call(&mut a, inflight, Helper::MapDeleteElem);
            a.jmp32_imm(Jmp::Eq, RET, 0, out);
        }
        (ConnectHook::Kprobe { .. }, None) => panic!("kprobe connect programs need the inflight map"),
    }
    conns_call(&mut a, maps, Helper::MapDeleteElem);
    a.bind(out);
    exit0(&mut a);
    a.finish()
}
