//! Attaching programs to hooks.
//!
//! Terms:
//! - trace event: a named hook under tracefs `events/<category>/<name>`,
//!   with an `id` and a record `format` (e.g. `syscalls:sys_exit_accept4`).
//! - tracepoint: a static hook compiled into the kernel. A *perf* tracepoint
//!   attachment opens a perf event of type TRACEPOINT for the trace event id
//!   and hands it the program (PERF_EVENT_IOC_SET_BPF); the program sees the
//!   trace event's record. A *raw* / *BTF* tracepoint attachment
//!   (BPF_RAW_TRACEPOINT_OPEN) runs the program on the tracepoint's C
//!   arguments, with no record built: about 4× cheaper per hit.
//! - perf event: an fd from perf_event_open(2); closing it detaches.
//! - link: an fd whose lifetime is the attachment; closing it detaches.

use super::prog::Prog;
use super::sys::{self, Cmd, PerfEventAttr};
use super::tracefs::Tracefs;
use super::LoadError;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

/// A perf event with a BPF program attached; detached on drop.
#[derive(Debug)]
pub struct PerfLink {
    fd: OwnedFd,
    what: String,
    /// The BPF link when attached through BPF_LINK_CREATE (5.15+), whose
    /// info carries a kprobe's missed-hit count (6.7+).
    bpf_link: Option<OwnedFd>,
}

/// `union bpf_attr` for BPF_LINK_CREATE (zero tail: no cookie).
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    tail: [u64; 4],
}

/// `enum bpf_attach_type` BPF_PERF_EVENT.
const ATTACH_PERF_EVENT: u32 = 41;

impl Drop for PerfLink {
    fn drop(&mut self) {
        let _ = sys::ioctl(self.fd.as_raw_fd(), sys::PERF_EVENT_IOC_DISABLE, 0);
    }
}

impl PerfLink {
    /// Hand `prog` to the perf event `fd` (a tracepoint or kprobe) and enable it.
    pub fn attach(fd: OwnedFd, prog: &Prog, what: String) -> Result<PerfLink, LoadError> {
        let link = PerfLink { fd, what, bpf_link: None };
        sys::ioctl(link.fd.as_raw_fd(), sys::PERF_EVENT_IOC_SET_BPF, prog.raw_fd() as u64)
            .map_err(|e| LoadError::call(format!("PERF_EVENT_IOC_SET_BPF({})", link.what), e))?;
        link.enable()
    }

    /// Attach through a BPF link (BPF_LINK_CREATE) where the kernel has
    /// them for perf events (5.15+), else as [`PerfLink::attach`].
    pub fn attach_with_link(fd: OwnedFd, prog: &Prog, what: String) -> Result<PerfLink, LoadError> {
        let mut attr = LinkCreateAttr {
            prog_fd: prog.raw_fd() as u32,
            target_fd: fd.as_raw_fd() as u32,
            attach_type: ATTACH_PERF_EVENT,
            ..Default::default()
        };
        match sys::bpf_fd(sys::Cmd::LinkCreate, &mut attr) {
            Ok(l) => PerfLink { fd, what, bpf_link: Some(l) }.enable(),
            Err(_) => PerfLink::attach(fd, prog, what),
        }
    }

    fn enable(self) -> Result<PerfLink, LoadError> {
        sys::ioctl(self.fd.as_raw_fd(), sys::PERF_EVENT_IOC_ENABLE, 0)
            .map_err(|e| LoadError::call(format!("PERF_EVENT_IOC_ENABLE({})", self.what), e))?;
        Ok(self)
    }

    /// Hits the kernel missed on this kprobe (`None`: this kernel does not
    /// say: no BPF link, or its info has no kprobe fields, before 6.6).
    pub fn kprobe_missed(&self) -> Option<u64> {
        use std::os::fd::AsFd;
        super::info::perf_link_kprobe_missed(self.bpf_link.as_ref()?.as_fd())
    }

    pub fn what(&self) -> &str {
        &self.what
    }
}

/// Attach `prog` (type TRACEPOINT) to the trace event `category:name`.
pub fn tracepoint(tracefs: &Tracefs, prog: &Prog, category: &str, name: &str) -> Result<PerfLink, LoadError> {
    let id = tracefs.event_id(category, name)?;
    trace_event(id, prog, format!("tracepoint {category}:{name}"))
}

/// Open a perf event for trace event `id` (a tracepoint, or a kprobe made
/// through tracefs) on all CPUs and attach `prog` to it.
pub(crate) fn trace_event(id: u64, prog: &Prog, what: String) -> Result<PerfLink, LoadError> {
    let attr = PerfEventAttr {
        type_: sys::PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: id,
        sample_period: 1,
        wakeup: 1,
        ..Default::default()
    };
    let fd = sys::perf_event_open(&attr, -1, 0)
        .map_err(|e| LoadError::call(format!("perf_event_open({what})"), e))?;
    PerfLink::attach(fd, prog, what)
}

/// A BPF link fd (raw tracepoint, BTF tracepoint, fentry); detached on drop.
#[derive(Debug)]
pub struct BpfLink {
    _fd: OwnedFd,
}

#[repr(C)]
#[derive(Default)]
struct RawTpAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

/// BPF_RAW_TRACEPOINT_OPEN: `name` for a raw tracepoint program, `None` for a
/// program loaded with an attach BTF id (tp_btf, fentry, fexit).
pub fn raw_tracepoint(prog: &Prog, name: Option<&str>, what: &str) -> Result<BpfLink, LoadError> {
    let cname = name.map(|n| CString::new(n).expect("tracepoint name has no NUL"));
    let mut attr = RawTpAttr {
        name: cname.as_ref().map_or(0, |c| c.as_ptr() as u64),
        prog_fd: prog.raw_fd() as u32,
        ..Default::default()
    };
    let fd = sys::bpf_fd(Cmd::RawTracepointOpen, &mut attr)
        .map_err(|e| LoadError::call(format!("BPF_RAW_TRACEPOINT_OPEN({what})"), e))?;
    Ok(BpfLink { _fd: fd })
}
