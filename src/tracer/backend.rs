//! Backends: which kernel hooks carry the probes. A backend turns BTF
//! offsets, filters and map fds into [`Probe`]s; the tracer loads and
//! attaches them without knowing which backend made them.

use super::offsets::{FdOffsets, SockOffsets};
use super::probes::{self, Filters, MapFds};
use super::Error;
use crate::asm::Program;
use crate::btf::{Btf, Kind as BtfKind};
use crate::loader::prog::ATTACH_TRACE_RAW_TP;
use crate::loader::tracefs::Tracefs;
use crate::loader::{LoadError, ProgType};

/// Where a program attaches.
pub enum Hook {
    /// By BTF id through BPF_RAW_TRACEPOINT_OPEN (tp_btf, fentry, fexit).
    BtfId { btf_id: u32, attach_type: u32 },
    /// Perf tracepoints `category:name`; one program on each.
    Tracepoints(Vec<(&'static str, &'static str)>),
}

/// One generated program and where it goes.
pub struct Probe {
    pub name: &'static str,
    pub prog_type: ProgType,
    pub hook: Hook,
    pub program: Program,
    /// For messages: e.g. "tp_btf inet_sock_set_state".
    pub what: String,
}

/// What every backend gets to build its probes from.
pub struct Context<'a> {
    pub btf: &'a Btf,
    pub tracefs: &'a Tracefs,
    pub filters: Filters,
    pub maps: MapFds,
}

/// Tracepoint backend: `sock:inet_sock_set_state` as a BTF tracepoint for C
/// and X, `syscalls:sys_exit_accept{,4}` perf tracepoints for A.
pub fn tracepoint(cx: &Context) -> Result<Vec<Probe>, Error> {
    let sock = SockOffsets::from_btf(cx.btf)?;
    let fds = FdOffsets::from_btf(cx.btf)?;
    let state_tp = cx.btf.find("btf_trace_inet_sock_set_state", BtfKind::Typedef)?;
    let mut ret_off = None;
    for name in ["sys_exit_accept4", "sys_exit_accept"] {
        let (off, size) = cx.tracefs.field("syscalls", name, "ret")?;
        if size != 8 || ret_off.is_some_and(|o| o != off) {
            return Err(LoadError::Tracefs(format!(
                "syscalls:{name}: unexpected ret field at {off} size {size}"
            ))
            .into());
        }
        ret_off = Some(off);
    }
    Ok(vec![
        Probe {
            name: "tcpt_state",
            prog_type: ProgType::Tracing,
            hook: Hook::BtfId { btf_id: state_tp, attach_type: ATTACH_TRACE_RAW_TP },
            program: probes::state_program(&sock, &cx.filters, &cx.maps)?,
            what: "tp_btf inet_sock_set_state".into(),
        },
        Probe {
            name: "tcpt_accept",
            prog_type: ProgType::Tracepoint,
            hook: Hook::Tracepoints(vec![("syscalls", "sys_exit_accept4"), ("syscalls", "sys_exit_accept")]),
            program: probes::accept_program(&sock, &fds, ret_off.unwrap(), &cx.filters, &cx.maps)?,
            what: "tracepoints syscalls:sys_exit_accept{,4}".into(),
        },
    ])
}
