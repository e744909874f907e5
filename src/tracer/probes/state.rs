//! The state-change program: C on SYN_SENT→ESTABLISHED, X on the first
//! closing move; with the tracepoint hook also the start of a connect.

use super::fill::{fill_event, read_bytes, Sport, Tail, KIND_CLOSE, KIND_CONNECT, KIND_FAILED};
use super::filters::{pid_filter, task_filters};
use super::frame::{exit0, CONN_OPEN, CTX, FIN_IN, FLAG, IDENT, KIND, OPEN, SK, TMP, VAL};
use super::kernel::{CLOSE, CLOSE_WAIT, ESTABLISHED, FIN_WAIT1, LAST_ACK, SYN_RECV, SYN_SENT};
use super::maps::MapFds;
use super::output::output;
use super::owner::{conns_call, defer, lookup_owner, read_ident, remember_owner, DEFER_KNOWN, DEFER_UNKNOWN};
use super::read::{check_tcp, probe_read, read_owned, read_sk, sock_access, Mem};
use super::task::{current_to_event, owner_to_event, unknown_to_event};
use crate::asm::{Alu, Asm, AsmError, Helper, Jmp, Label, Program, Reg, Size};
use crate::tracer::config::Filters;
use crate::tracer::offsets::{Field, SockOffsets};

/// The state before the move, until `KIND` replaces it.
const OLD: Reg = KIND;
/// The state after the move (pid_tgid where it is no longer needed).
const NEW: Reg = Reg::R9;

/// Where the state program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateHook {
    /// tp_btf `inet_sock_set_state(sk, oldstate, newstate)`: fires after
    /// `inet_put_port()` on CLOSE; also records connects at CLOSE→SYN_SENT.
    TpBtf,
    /// fentry `tcp_set_state(sk, state)`: the old state is `sk->skc_state`.
    Fentry,
    /// kprobe `tcp_set_state`: `sk` and `state` at these `pt_regs` offsets.
    Kprobe { arg0: u32, arg1: u32 },
}

impl StateHook {
    pub(super) fn mem(self) -> Mem {
        match self {
            StateHook::TpBtf | StateHook::Fentry => Mem::Direct,
            StateHook::Kprobe { .. } => Mem::Probe,
        }
    }
}

/// Registers after the prologue: CTX, SK, OLD, NEW.
fn prologue(a: &mut Asm, so: &SockOffsets, hook: StateHook, out: Label) {
    a.mov64_reg(CTX, Reg::R1);
    match hook {
        StateHook::TpBtf => {
            a.ldx(Size::DW, SK, CTX, 0);
            a.ldx(Size::DW, OLD, CTX, 8);
            a.ldx(Size::DW, NEW, CTX, 16);
        }
        StateHook::Fentry => {
            a.ldx(Size::DW, SK, CTX, 0);
            a.ldx(Size::DW, NEW, CTX, 8);
            a.ldx(Size::B, OLD, SK, so.state as i16);
        }
        StateHook::Kprobe { arg0, arg1 } => {
            a.ldx(Size::DW, SK, CTX, arg0 as i16);
            a.ldx(Size::DW, NEW, CTX, arg1 as i16);
            probe_read(a, TMP, 1, SK, so.state, out);
            a.ldx(Size::B, OLD, Reg::R10, TMP);
        }
    }
    a.st(Size::DW, Reg::R10, IDENT, 0);
}

/// Emit `owned` for process context (a task holds the socket lock) and
/// `unowned` for the rest (softirq, timers); both end in jumps.
fn by_lock(
    a: &mut Asm,
    so: &SockOffsets,
    mem: Mem,
    out: Label,
    owned: impl FnOnce(&mut Asm),
    unowned: impl FnOnce(&mut Asm),
) {
    let soft = a.label();
    read_owned(a, so, mem, out);
    a.jmp_imm(Jmp::Eq, Reg::R1, 0, soft);
    owned(a);
    a.bind(soft);
    unowned(a);
}

pub fn state_program(
    so: &SockOffsets,
    hook: StateHook,
    f: &Filters,
    maps: &MapFds,
) -> Result<Program, AsmError> {
    let mem = hook.mem();
    let mut a = Asm::new();
    let out = a.label();
    let [syn_sent, established, on_close, closing, failed, first_close, syn_recv, fill, emit] =
        [(); 9].map(|_| a.label());
    prologue(&mut a, so, hook, out);
    a.st(Size::W, Reg::R10, FLAG, 0);
    a.st(Size::W, Reg::R10, FIN_IN, 0);
    if hook == StateHook::TpBtf {
        a.jmp32_imm(Jmp::Eq, NEW, SYN_SENT, syn_sent);
    }
    a.jmp32_imm(Jmp::Eq, NEW, ESTABLISHED, established);
    a.jmp32_imm(Jmp::Eq, NEW, CLOSE, on_close);
    a.jmp32_imm(Jmp::Eq, NEW, FIN_WAIT1, closing);
    a.jmp32_imm(Jmp::Eq, NEW, LAST_ACK, closing);
    a.ja(out);

    a.bind(on_close);
    a.jmp32_imm(Jmp::Eq, OLD, SYN_SENT, failed);
    a.bind(closing);
    a.jmp32_imm(Jmp::Eq, OLD, ESTABLISHED, first_close);
    a.jmp32_imm(Jmp::Eq, OLD, CLOSE_WAIT, first_close);
    a.jmp32_imm(Jmp::Eq, OLD, SYN_RECV, syn_recv);
    a.ja(out);

    // A connect that never established: forget it, or report it (F)
    // with the task that started it.
    a.bind(failed);
    if f.failed {
        let forget = a.label();
        read_ident(&mut a, so, forget);
        lookup_owner(&mut a, maps, forget);
        owner_to_event(&mut a, Reg::R0);
        conns_call(&mut a, maps, Helper::MapDeleteElem);
        a.mov64_imm(KIND, KIND_FAILED);
        a.ja(fill);
        a.bind(forget);
    }
    conns_call(&mut a, maps, Helper::MapDeleteElem);
    a.ja(out);

    if hook == StateHook::TpBtf {
        // CLOSE → SYN_SENT, in the connecting task.
        a.bind(syn_sent);
        a.jmp32_imm(Jmp::Ne, OLD, CLOSE, out);
        check_tcp(&mut a, so, mem, out);
        a.call(Helper::GetCurrentPidTgid);
        pid_filter(&mut a, Reg::R0, f, out);
        a.mov64_reg(NEW, Reg::R0);
        read_ident(&mut a, so, out);
        remember_owner(&mut a, maps, NEW, f);
        a.ja(out);
    }

    // SYN_SENT → ESTABLISHED: C with the connecting task (entry kept as
    // owner, now open: its X is due).
    a.bind(established);
    a.jmp32_imm(Jmp::Ne, OLD, SYN_SENT, out);
    read_sk(&mut a, mem, Reg::R1, Field { off: so.dport, size: 2, bits: None }, out);
    a.alu64_imm(Alu::Or, Reg::R1, OPEN);
    a.stx(Size::W, Reg::R10, VAL + CONN_OPEN, Reg::R1);
    read_ident(&mut a, so, out);
    lookup_owner(&mut a, maps, out);
    a.ldx(Size::W, Reg::R1, Reg::R10, VAL + CONN_OPEN);
    a.stx(Size::W, Reg::R0, CONN_OPEN, Reg::R1);
    owner_to_event(&mut a, Reg::R0);
    a.mov64_imm(KIND, KIND_CONNECT);
    a.ja(fill);

    // First move of an established connection towards closing: X. With a
    // task holding the lock, that task; else the owner.
    a.bind(first_close);
    check_tcp(&mut a, so, mem, out);
    let fin_done = a.label();
    a.jmp32_imm(Jmp::Ne, OLD, CLOSE_WAIT, fin_done);
    a.st(Size::W, Reg::R10, FIN_IN, 1);
    a.bind(fin_done);
    a.mov64_imm(KIND, KIND_CLOSE);
    by_lock(
        &mut a,
        so,
        mem,
        out,
        |a| {
            current_to_event(a, f);
            conns_call(a, maps, Helper::MapDeleteElem);
            a.jmp32_imm(Jmp::Eq, Reg::R0, 0, fill);
            // No owner recorded: an accept may be taking it (its A is
            // still to come), or it predates tracing.
            read_ident(a, so, fill);
            a.st(Size::W, Reg::R10, FLAG, DEFER_KNOWN);
            a.ja(fill);
        },
        |a| {
            let unknown = a.label();
            // Tests: this run "skipped" (only runs outside process context
            // can be: a run is skipped when it interrupts another).
            if let Some(port) = f.skip_close_port {
                // (skc_num is 0 once the port is released: inet_sport.)
                read_sk(a, mem, Reg::R1, Field { off: so.dport, size: 2, bits: None }, out);
                a.jmp_imm(Jmp::Eq, Reg::R1, port.to_be() as i32, out);
                probe_read(a, TMP, 2, SK, so.inet_sport, out);
                a.ldx(Size::H, Reg::R1, Reg::R10, TMP);
                a.jmp_imm(Jmp::Eq, Reg::R1, port.to_be() as i32, out);
            }
            // No socket: reset (or dropped with its listener) while it
            // waited in an accept queue. Nobody accepted it: no X.
            read_ident(a, so, out);
            lookup_owner(a, maps, unknown);
            owner_to_event(a, Reg::R0);
            conns_call(a, maps, Helper::MapDeleteElem);
            a.ja(fill);
            a.bind(unknown);
            unknown_to_event(a);
            a.st(Size::W, Reg::R10, FLAG, DEFER_UNKNOWN);
            a.ja(fill);
        },
    );

    // A Fast Open child accepted before its handshake ended, closed from
    // SYN_RECV: an X if it was accepted (it has an owner).
    a.bind(syn_recv);
    check_tcp(&mut a, so, mem, out);
    a.mov64_imm(KIND, KIND_CLOSE);
    read_ident(&mut a, so, out);
    by_lock(
        &mut a,
        so,
        mem,
        out,
        |a| {
            lookup_owner(a, maps, out);
            conns_call(a, maps, Helper::MapDeleteElem);
            current_to_event(a, f);
            a.ja(fill);
        },
        |a| {
            lookup_owner(a, maps, out);
            owner_to_event(a, Reg::R0);
            conns_call(a, maps, Helper::MapDeleteElem);
            a.ja(fill);
        },
    );

    // The event (task block in place, kind in KIND): its tuple, the filters
    // (not those on the task while it is unknown), then out, or deferred.
    a.bind(fill);
    if f.on_task() {
        let skip = a.label();
        a.ldx(Size::W, Reg::R1, Reg::R10, FLAG);
        a.jmp_imm(Jmp::Eq, Reg::R1, DEFER_UNKNOWN, skip);
        task_filters(&mut a, f, out);
        a.bind(skip);
    }
    let acc = sock_access(&mut a, so, mem, out);
    // tp_btf runs after inet_put_port() zeroed skc_num on CLOSE (NEW: the
    // new state); the function-entry hooks run before it.
    let sport = if hook == StateHook::TpBtf { Sport::NumUnlessClose(NEW) } else { Sport::Num };
    fill_event(&mut a, so, Tail { acc, sport, task_filters: false }, f, maps, out);
    // An X carries the bytes its connection carried.
    let no_bytes = a.label();
    a.jmp_imm(Jmp::Ne, KIND, KIND_CLOSE, no_bytes);
    read_bytes(&mut a, so, Some(FIN_IN));
    a.bind(no_bytes);
    a.ldx(Size::W, Reg::R1, Reg::R10, FLAG);
    a.jmp_imm(Jmp::Eq, Reg::R1, 0, emit);
    defer(&mut a, f, maps, emit, out);
    a.bind(emit);
    output(&mut a, maps);
    a.bind(out);
    exit0(&mut a);
    a.finish()
}
