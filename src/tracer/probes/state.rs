//! The state-change program: C on SYN_SENT→ESTABLISHED, X on the first
//! closing move; with the tracepoint hook also the start of a connect.

use super::*;
use crate::asm::{AsmError, Program};

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
    fn mem(self) -> Mem {
        match self {
            StateHook::TpBtf | StateHook::Fentry => Mem::Direct,
            StateHook::Kprobe { .. } => Mem::Probe,
        }
    }
}

/// Registers after the prologue: r6 ctx, r7 sk, r8 old state, r9 new state.
fn prologue(a: &mut Asm, so: &SockOffsets, hook: StateHook, out: Label) {
    a.mov64_reg(Reg::R6, Reg::R1);
    match hook {
        StateHook::TpBtf => {
            a.ldx(Size::DW, Reg::R7, Reg::R6, 0);
            a.ldx(Size::DW, Reg::R8, Reg::R6, 8);
            a.ldx(Size::DW, Reg::R9, Reg::R6, 16);
        }
        StateHook::Fentry => {
            a.ldx(Size::DW, Reg::R7, Reg::R6, 0);
            a.ldx(Size::DW, Reg::R9, Reg::R6, 8);
            a.ldx(Size::B, Reg::R8, Reg::R7, so.state as i16);
        }
        StateHook::Kprobe { arg0, arg1 } => {
            a.ldx(Size::DW, Reg::R7, Reg::R6, arg0 as i16);
            a.ldx(Size::DW, Reg::R9, Reg::R6, arg1 as i16);
            probe_read(a, TMP, 1, Reg::R7, so.state, out);
            a.ldx(Size::B, Reg::R8, Reg::R10, TMP);
        }
    }
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
    let [syn_sent, established, on_close, closing, failed, first_close, softirq, unknown, emit_close, emit] =
        [(); 10].map(|_| a.label());
    prologue(&mut a, so, hook, out);
    if hook == StateHook::TpBtf {
        a.jmp32_imm(Jmp::Eq, Reg::R9, SYN_SENT, syn_sent);
    }
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

    // A connect that never established: forget it, or report it (F)
    // with the task that started it.
    a.bind(failed);
    if f.failed {
        conns_call(&mut a, maps, Helper::MapLookupElem);
        a.jmp_imm(Jmp::Eq, Reg::R0, 0, out);
        owner_to_event(&mut a, Reg::R0);
        conns_call(&mut a, maps, Helper::MapDeleteElem);
        a.mov64_imm(Reg::R8, KIND_FAILED);
        a.ja(emit);
    } else {
        conns_call(&mut a, maps, Helper::MapDeleteElem);
        a.ja(out);
    }

    if hook == StateHook::TpBtf {
        // CLOSE → SYN_SENT, in the connecting task.
        a.bind(syn_sent);
        a.jmp32_imm(Jmp::Ne, Reg::R8, CLOSE, out);
        check_tcp(&mut a, so, mem, out);
        a.call(Helper::GetCurrentPidTgid);
        pid_filter(&mut a, Reg::R0, f, out);
        a.mov64_reg(Reg::R9, Reg::R0);
        remember_owner(&mut a, maps, Reg::R9, f);
        a.ja(out);
    }

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
    check_tcp(&mut a, so, mem, out);
    let owned = Field { off: so.lock_owned, size: 4, bits: None };
    read_sk(&mut a, mem, Reg::R1, owned, out);
    a.jmp_imm(Jmp::Eq, Reg::R1, 0, softirq);
    current_to_event(&mut a, f);
    conns_call(&mut a, maps, Helper::MapDeleteElem);
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, emit_close);
    // No owner recorded: mark that this X was reported (see mark_closed).
    peer(&mut a, so, mem, out);
    mark_closed(&mut a, maps, MARK_SHOWN, Reg::R8);
    a.ja(emit_close);
    // No task holds the lock (softirq or timer): the owner did it.
    a.bind(softirq);
    conns_call(&mut a, maps, Helper::MapLookupElem);
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, unknown);
    owner_to_event(&mut a, Reg::R0);
    conns_call(&mut a, maps, Helper::MapDeleteElem);
    a.ja(emit_close);
    a.bind(unknown);
    // No owner and no `struct socket`: a connection reset (or dropped with
    // its listener) while it waited in an accept queue. Nobody accepted it,
    // so it gets no A and no X. (Owned sockets that predate tracing have one.)
    // Read as a number even where sk is typed: a typed load of a pointer
    // field costs the 6.x verifier a ~1.4 ms scan of the kernel's BTF.
    probe_read(&mut a, TMP, 8, Reg::R7, so.sk_socket, out);
    a.ldx(Size::DW, Reg::R1, Reg::R10, TMP);
    a.jmp_imm(Jmp::Eq, Reg::R1, 0, out);
    peer(&mut a, so, mem, out);
    if f.on_task() {
        // Task filters cannot match an unknown owner: leave the X to the
        // accept program, if this socket is being accepted.
        mark_closed(&mut a, maps, MARK_HIDDEN, Reg::R8);
        // Unless the accept program recorded the owner since the lookup
        // above (it looks for this mark after recording: see accept.rs).
        // Whoever deletes the mark reports the X.
        fence(&mut a);
        conns_call(&mut a, maps, Helper::MapLookupElem);
        a.jmp_imm(Jmp::Eq, Reg::R0, 0, out);
        owner_to_event(&mut a, Reg::R0);
        closed_call(&mut a, maps, Helper::MapDeleteElem, 0);
        a.jmp_imm(Jmp::Ne, Reg::R0, 0, out);
        conns_call(&mut a, maps, Helper::MapDeleteElem);
        a.ja(emit_close);
    } else {
        mark_closed(&mut a, maps, MARK_SHOWN, Reg::R8);
        unknown_to_event(&mut a);
    }
    a.bind(emit_close);
    a.mov64_imm(Reg::R8, KIND_CLOSE);

    a.bind(emit);
    // tp_btf runs after inet_put_port() zeroed skc_num on CLOSE (r9: the
    // new state); the function-entry hooks run before it.
    let sport = if hook == StateHook::TpBtf { Sport::NumUnlessClose(Reg::R9) } else { Sport::Num };
    let acc = sock_access(&mut a, so, mem, out);
    emit_event(&mut a, so, Tail { acc, sport, also_x: false }, f, maps, out);
    a.bind(out);
    exit0(&mut a);
    a.finish()
}

/// r8 = the peer word of the sk in r7 (see `mark_closed`).
fn peer(a: &mut Asm, so: &SockOffsets, mem: Mem, out: Label) {
    peer_word(a, so, Reg::R8, |a, size, dst, off| {
        let bytes = if size == Size::W { 4 } else { 2 };
        read_sk(a, mem, dst, Field { off, size: bytes, bits: None }, out)
    });
}
