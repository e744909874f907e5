//! The destroy program: a socket's last moment (`tcp_v4_destroy_sock`,
//! which IPv6 sockets pass through too). An owner entry still open there
//! means the connection's X never went out: the kernel skipped the state
//! program's run for its closing move (a softirq on that CPU while the
//! program ran for another socket; counted, but the X would be lost). It
//! is reported here, late but after its C or A, with the owner as its task.
//!
//! The socket is orphaned by now (no `struct socket`, so no identity to
//! check): the entry is believed when it is open and its remote port is
//! the socket's. Every other path that reports an X deletes the entry
//! first, so an entry found here is this socket's (or one left by a socket
//! whose X and destroy runs were both skipped, at this address, with the
//! same remote port). The entry goes in any case.

use super::fill::{fill_event, read_bytes, Sport, Tail, KIND_CLOSE};
use super::frame::{exit0, CONN_IDENT, CONN_OPEN, CTX, FLAG, IDENT, KIND, OPEN, SK};
use super::kernel::CLOSE;
use super::maps::MapFds;
use super::output::{count, output};
use super::owner::conns_call;
use super::read::{read_sk, sock_access};
use super::state::StateHook;
use super::stats::STAT_CLOSE_AT_DESTROY;
use super::task::owner_to_event;
use crate::asm::{Alu, Asm, AsmError, Helper, Jmp, Program, Reg, Size};
use crate::tracer::config::Filters;
use crate::tracer::offsets::{Field, SockOffsets};

/// The socket's remote port, then its state for `fill_event` (CLOSE).
const PORT: Reg = Reg::R9;

pub fn destroy_program(
    so: &SockOffsets,
    hook: StateHook,
    f: &Filters,
    maps: &MapFds,
) -> Result<Program, AsmError> {
    let mem = hook.mem();
    let mut a = Asm::new();
    let out = a.label();
    a.mov64_reg(CTX, Reg::R1);
    let arg0 = match hook {
        StateHook::TpBtf | StateHook::Fentry => 0,
        StateHook::Kprobe { arg0, .. } => arg0 as i16,
    };
    a.ldx(Size::DW, SK, CTX, arg0);
    conns_call(&mut a, maps, Helper::MapLookupElem);
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, out);
    owner_to_event(&mut a, Reg::R0);
    a.ldx(Size::DW, Reg::R1, Reg::R0, CONN_IDENT);
    a.stx(Size::DW, Reg::R10, IDENT, Reg::R1);
    a.ldx(Size::W, Reg::R1, Reg::R0, CONN_OPEN);
    a.stx(Size::W, Reg::R10, FLAG, Reg::R1);
    conns_call(&mut a, maps, Helper::MapDeleteElem);
    // Open, and the remote port matches.
    a.ldx(Size::W, Reg::R1, Reg::R10, FLAG);
    a.alu64_imm(Alu::And, Reg::R1, OPEN);
    a.jmp_imm(Jmp::Eq, Reg::R1, 0, out);
    read_sk(&mut a, mem, PORT, Field { off: so.dport, size: 2, bits: None }, out);
    a.ldx(Size::W, Reg::R1, Reg::R10, FLAG);
    a.alu64_imm(Alu::And, Reg::R1, 0xffff);
    a.jmp_reg(Jmp::Ne, Reg::R1, PORT, out);
    count(&mut a, maps, STAT_CLOSE_AT_DESTROY);
    a.mov64_imm(KIND, KIND_CLOSE);
    // The port is no longer bound (skc_num is 0): inet_sport.
    a.mov64_imm(PORT, CLOSE);
    let acc = sock_access(&mut a, so, mem, out);
    let tail = Tail { acc, sport: Sport::NumUnlessClose(PORT), task_filters: true };
    fill_event(&mut a, so, tail, f, maps, out);
    // (Late: the bytes now, which may count a FIN each way.)
    read_bytes(&mut a, so, None);
    output(&mut a, maps);
    a.bind(out);
    exit0(&mut a);
    a.finish()
}
