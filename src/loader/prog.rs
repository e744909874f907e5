//! BPF program load: first without a verifier log, then (on failure) again
//! with a log that grows until the verifier's whole output fits.

use super::error::LoadError;
use super::map::obj_name;
use super::sys::{self, Cmd};
use crate::asm::RawInsn;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ProgType {
    Kprobe = 2,
    Tracepoint = 5,
    RawTracepoint = 17,
    Tracing = 26,
}

/// `expected_attach_type` values.
pub const ATTACH_TRACE_RAW_TP: u32 = 23;
pub const ATTACH_TRACE_FENTRY: u32 = 24;
pub const ATTACH_TRACE_FEXIT: u32 = 25;

/// `union bpf_attr` for BPF_PROG_LOAD, up to `log_true_size` (6.4).
#[repr(C)]
#[derive(Default)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_btf_obj_fd: u32,
    core_relo_cnt: u32,
    fd_array: u64,
    core_relos: u64,
    core_relo_rec_size: u32,
    log_true_size: u32,
}
const _: () = assert!(std::mem::offset_of!(LoadAttr, prog_name) == 48);
const _: () = assert!(std::mem::offset_of!(LoadAttr, expected_attach_type) == 68);
const _: () = assert!(std::mem::offset_of!(LoadAttr, attach_btf_id) == 108);
const _: () = assert!(std::mem::offset_of!(LoadAttr, log_true_size) == 140);

/// What to load.
pub struct ProgSpec<'a> {
    pub name: &'a str,
    pub prog_type: ProgType,
    pub expected_attach_type: u32,
    pub attach_btf_id: u32,
    pub insns: &'a [RawInsn],
    /// Load with a verifier log even on success (level 1 + stats), for `--debug`.
    pub want_log: bool,
}

#[derive(Debug)]
pub struct Prog {
    fd: OwnedFd,
    name: String,
    /// The verifier's log, when it was asked for.
    pub log: String,
}

const LOG_START: usize = 64 * 1024;
const LOG_MAX: usize = 16 << 20;
const LICENSE: &[u8] = b"GPL\0";

fn load_once(spec: &ProgSpec, log: &mut [u8], level: u32) -> (std::io::Result<OwnedFd>, u32) {
    let mut attr = LoadAttr {
        prog_type: spec.prog_type as u32,
        insn_cnt: spec.insns.len() as u32,
        insns: spec.insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        prog_name: obj_name(spec.name),
        expected_attach_type: spec.expected_attach_type,
        attach_btf_id: spec.attach_btf_id,
        ..Default::default()
    };
    if level != 0 && !log.is_empty() {
        attr.log_level = level;
        attr.log_size = log.len() as u32;
        attr.log_buf = log.as_mut_ptr() as u64;
    }
    let mut tries = 0;
    loop {
        let r = sys::bpf_fd(Cmd::ProgLoad, &mut attr);
        match r {
            // The verifier was interrupted by a signal (4.20+): try again.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < 5 => tries += 1,
            r => return (r, attr.log_true_size),
        }
    }
}

fn log_text(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Load a program. On failure the error carries the verifier's whole log.
pub fn load(spec: &ProgSpec) -> Result<Prog, LoadError> {
    let level = if spec.want_log { 1 | 4 } else { 0 };
    let mut log = if spec.want_log { vec![0u8; LOG_START] } else { Vec::new() };
    let mut first_err = None;
    loop {
        let (r, true_size) = load_once(spec, &mut log, level.max(if first_err.is_some() { 1 } else { 0 }));
        match r {
            Ok(fd) => return Ok(Prog { fd, name: spec.name.to_string(), log: log_text(&log) }),
            Err(e) => {
                let no_space = e.raw_os_error() == Some(libc::ENOSPC) && !log.is_empty();
                if log.is_empty() {
                    // Retry with a log to learn why.
                    first_err = Some(e);
                    log = vec![0u8; LOG_START];
                    continue;
                }
                if no_space && log.len() < LOG_MAX {
                    let want = (true_size as usize).max(log.len() * 2).min(LOG_MAX);
                    log = vec![0u8; want];
                    continue;
                }
                let source = if no_space { first_err.take().unwrap_or(e) } else { e };
                return Err(LoadError::Verifier { prog: spec.name.to_string(), source, log: log_text(&log) });
            }
        }
    }
}

/// Load once, without a verifier log and without retrying: for feature
/// probes, where only "does the kernel take it" matters.
pub fn try_load(spec: &ProgSpec) -> std::io::Result<Prog> {
    let (r, _) = load_once(spec, &mut [], 0);
    r.map(|fd| Prog { fd, name: spec.name.to_string(), log: String::new() })
}

impl Prog {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Prog {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::sys::{override_syscall, Call};
    use std::cell::RefCell;
    use std::io;
    use std::rc::Rc;

    fn spec(insns: &[RawInsn]) -> ProgSpec<'_> {
        ProgSpec {
            name: "tcpt_test",
            prog_type: ProgType::Tracepoint,
            expected_attach_type: 0,
            attach_btf_id: 0,
            insns,
            want_log: false,
        }
    }

    #[test]
    fn failure_retries_with_growing_log_and_keeps_it() {
        let sizes = Rc::new(RefCell::new(Vec::new()));
        let s2 = sizes.clone();
        override_syscall(move |c| {
            let Call::Bpf { cmd: Cmd::ProgLoad, attr, .. } = c else { panic!("unexpected {c:?}") };
            // SAFETY: the loader passes a LoadAttr.
            let a = unsafe { &mut *(*attr as *mut LoadAttr) };
            assert_eq!(a.insn_cnt, 2);
            assert_eq!(&a.prog_name[..10], b"tcpt_test\0");
            s2.borrow_mut().push((a.log_level, a.log_size));
            if a.log_size == 0 {
                return Err(io::Error::from_raw_os_error(libc::EACCES));
            }
            if a.log_size < 200_000 {
                a.log_true_size = 200_000;
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let msg = b"0: R1=ctx\nR0 !read_ok\n\0";
            // SAFETY: log_buf has log_size bytes.
            unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), a.log_buf as *mut u8, msg.len()) };
            Err(io::Error::from_raw_os_error(libc::EACCES))
        });
        let insns = [RawInsn::default(); 2];
        let err = load(&spec(&insns)).unwrap_err();
        assert_eq!(*sizes.borrow(), vec![(0, 0), (1, 65536), (1, 200_000)]);
        match &err {
            LoadError::Verifier { log, source, .. } => {
                assert_eq!(log, "0: R1=ctx\nR0 !read_ok\n");
                assert_eq!(source.raw_os_error(), Some(libc::EACCES));
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(
            err.to_string(),
            "loading BPF program tcpt_test: Permission denied (os error 13); verifier: R0 !read_ok"
        );
    }

    #[test]
    fn eagain_is_retried() {
        let n = Rc::new(RefCell::new(0));
        let n2 = n.clone();
        override_syscall(move |_| {
            *n2.borrow_mut() += 1;
            if *n2.borrow() < 3 {
                Err(io::Error::from_raw_os_error(libc::EAGAIN))
            } else {
                // An fd number that is ours to close: a dup of a real file.
                let f = std::fs::File::open("/dev/null").unwrap();
                Ok(std::os::fd::IntoRawFd::into_raw_fd(f) as i64)
            }
        });
        let insns = [RawInsn::default(); 2];
        assert!(load(&spec(&insns)).is_ok());
        assert_eq!(*n.borrow(), 3);
    }
}
