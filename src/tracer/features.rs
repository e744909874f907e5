//! What this kernel supports, found by trying (tiny loads, file checks),
//! and which backend `auto` picks from it.

use super::config::Backend;
use crate::asm::{Asm, Helper, Reg};
use crate::btf::{Btf, Kind as BtfKind};
use crate::loader::prog::{self, ProgSpec, ATTACH_TRACE_FENTRY, ATTACH_TRACE_RAW_TP};
use crate::loader::tracefs::Tracefs;
use crate::loader::{attach, kprobe, Prog, ProgType};

const NO_KERNEL_BTF: &str = "no kernel BTF (/sys/kernel/btf/vmlinux) to attach by BTF id";

fn try_load(
    prog_type: ProgType,
    attach_type: u32,
    btf_id: u32,
    body: impl FnOnce(&mut Asm),
) -> Result<(), String> {
    load(prog_type, attach_type, btf_id, body).map(drop)
}

fn load(
    prog_type: ProgType,
    attach_type: u32,
    btf_id: u32,
    body: impl FnOnce(&mut Asm),
) -> Result<Prog, String> {
    let mut a = Asm::new();
    body(&mut a);
    a.mov64_imm(Reg::R0, 0);
    a.exit();
    let p = a.finish().map_err(|e| e.to_string())?;
    let spec = ProgSpec {
        name: "tcpt_probe",
        prog_type,
        expected_attach_type: attach_type,
        attach_btf_id: btf_id,
        insns: p.insns(),
        want_log: false,
    };
    prog::try_load(&spec).map_err(|e| format!("BPF_PROG_LOAD: {e}"))
}

/// fentry/fexit: load a trivial fentry program on `tcp_set_state` and
/// attach it (then detach at once). The load checks the verifier's side
/// only: the trampoline is made at attach, and where the kernel cannot
/// make one (arm64 6.1: no ftrace direct calls) that fails with ENOTSUPP.
pub fn fentry(btf: Option<&Btf>) -> Result<(), String> {
    let btf = btf.ok_or(NO_KERNEL_BTF)?;
    let id = btf.find("tcp_set_state", BtfKind::Func).map_err(|e| e.to_string())?;
    let p = load(ProgType::Tracing, ATTACH_TRACE_FENTRY, id, |_| {})?;
    match attach::raw_tracepoint(&p, None, "fentry tcp_set_state") {
        Ok(_) => Ok(()),
        Err(e) if e.errno() == Some(ENOTSUPP) => {
            Err("attach: ENOTSUPP (this kernel cannot make a BPF trampoline here)".to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The kernel's ENOTSUPP (not in libc: it never reaches user space by design, yet does here).
const ENOTSUPP: i32 = 524;

/// BTF tracepoints: load a trivial tp_btf program on `inet_sock_set_state`.
pub fn tp_btf(btf: Option<&Btf>) -> Result<(), String> {
    let btf = btf.ok_or(NO_KERNEL_BTF)?;
    let id = btf.find("btf_trace_inet_sock_set_state", BtfKind::Typedef).map_err(|e| e.to_string())?;
    try_load(ProgType::Tracing, ATTACH_TRACE_RAW_TP, id, |_| {})
}

/// The perf tracepoints the A program needs.
pub fn tracepoints(tracefs: &Tracefs) -> Result<(), String> {
    for name in ["sys_exit_accept4", "sys_exit_accept"] {
        tracefs.event_id("syscalls", name).map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub fn kprobes(tracefs: &Tracefs) -> bool {
    kprobe::available(tracefs)
}

/// The BPF ring buffer (5.8+; see `transport/ringbuf.rs`).
pub fn ringbuf() -> bool {
    crate::transport::ringbuf_supported()
}

/// Slot rings (5.12+; see `transport/slots/`).
pub fn slot_rings() -> bool {
    crate::transport::slot_rings_supported()
}

/// `bpf_probe_read_kernel` (5.5+): the verifier refuses an unknown helper.
pub fn probe_read_kernel() -> bool {
    try_load(ProgType::Tracepoint, 0, 0, |a| {
        a.mov64_reg(Reg::R1, Reg::R10);
        a.alu64_imm(crate::asm::Alu::Add, Reg::R1, -8);
        a.mov64_imm(Reg::R2, 8);
        a.mov64_imm(Reg::R3, 0);
        a.call(Helper::ProbeReadKernel);
    })
    .is_ok()
}

/// Can `kind` run here? `Err` says why not, in one line.
pub fn check(kind: Backend, btf: Option<&Btf>, tracefs: &Tracefs) -> Result<(), String> {
    tracepoints(tracefs)?;
    match kind {
        Backend::Fentry => fentry(btf).map_err(|e| format!("fentry/fexit programs are refused: {e}")),
        Backend::Kprobe if !kprobes(tracefs) => {
            Err("this kernel has no kprobes (no kprobe PMU and no kprobe_events; CONFIG_KPROBES off?)".into())
        }
        Backend::Kprobe => Ok(()),
        // No trial load: loading the real program reports a refusal as well.
        Backend::Tracepoint | Backend::Auto => btf.map(drop).ok_or_else(|| NO_KERNEL_BTF.to_string()),
    }
}

/// The best backend this kernel offers: fentry, then tracepoint (tp_btf),
/// then kprobe. kprobe programs come last: they share one per-CPU flag
/// with every kprobe and tracepoint program, so a state change in a softirq
/// that interrupts any of them is skipped, and kernels before 6.7 count no
/// such skip (the VM matrix lost rows that way on 5.10 and 6.1).
pub fn pick(btf: Option<&Btf>, tracefs: &Tracefs) -> Backend {
    if check(Backend::Fentry, btf, tracefs).is_ok() {
        Backend::Fentry
    } else if tracepoints(tracefs).is_ok() && tp_btf(btf).is_ok() {
        Backend::Tracepoint
    } else if check(Backend::Kprobe, btf, tracefs).is_ok() {
        Backend::Kprobe
    } else {
        // Its start says what is missing.
        Backend::Tracepoint
    }
}
