//! The one syscall choke point: every `bpf(2)`, `perf_event_open(2)` and
//! `ioctl(2)` the crate makes goes through [`syscall`]. Unit tests replace it
//! with [`override_syscall`] so loader and perf logic run without root.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `bpf(2)` commands used by the crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Cmd {
    MapCreate = 0,
    MapLookupElem = 1,
    MapUpdateElem = 2,
    MapDeleteElem = 3,
    MapGetNextKey = 4,
    ProgLoad = 5,
    ProgGetNextId = 11,
    MapGetNextId = 12,
    ProgGetFdById = 13,
    MapGetFdById = 14,
    ObjGetInfoByFd = 15,
    RawTracepointOpen = 17,
    LinkCreate = 28,
}

/// `struct perf_event_attr`, zero-filled past the fields we set (128 bytes,
/// `PERF_ATTR_SIZE_VER8`; older kernels accept it because the tail is zero).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PerfEventAttr {
    pub type_: u32,
    pub size: u32,
    pub config: u64,
    pub sample_period: u64,
    pub sample_type: u64,
    pub read_format: u64,
    pub flags: u64,
    pub wakeup: u32,
    pub bp_type: u32,
    pub config1: u64,
    pub config2: u64,
    pub rest: [u64; 7],
}
const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == 128);
const _: () = assert!(std::mem::offset_of!(PerfEventAttr, wakeup) == 48);
const _: () = assert!(std::mem::offset_of!(PerfEventAttr, config2) == 64);

pub const PERF_TYPE_SOFTWARE: u32 = 1;
pub const PERF_TYPE_TRACEPOINT: u32 = 2;
pub const PERF_COUNT_SW_BPF_OUTPUT: u64 = 10;
pub const PERF_SAMPLE_RAW: u64 = 1 << 10;
pub const PERF_FLAG_WATERMARK: u64 = 1 << 14;
pub const PERF_FLAG_FD_CLOEXEC: u64 = 8;
pub const PERF_EVENT_IOC_ENABLE: u64 = 0x2400;
pub const PERF_EVENT_IOC_DISABLE: u64 = 0x2401;
pub const PERF_EVENT_IOC_SET_BPF: u64 = 0x4004_2408;

/// One syscall, as data.
#[derive(Debug)]
pub enum Call<'a> {
    Bpf { cmd: Cmd, attr: *mut u8, size: u32 },
    PerfEventOpen { attr: &'a PerfEventAttr, pid: i32, cpu: i32, group_fd: i32, flags: u64 },
    Ioctl { fd: RawFd, request: u64, arg: u64 },
}

#[cfg(test)]
type Fake = Box<dyn FnMut(&Call) -> io::Result<i64>>;

#[cfg(test)]
thread_local! {
    static FAKE: std::cell::RefCell<Option<Fake>> =
        const { std::cell::RefCell::new(None) };
}

/// Replace the syscall for this thread (tests only).
#[cfg(test)]
pub fn override_syscall(f: impl FnMut(&Call) -> io::Result<i64> + 'static) {
    FAKE.with(|c| *c.borrow_mut() = Some(Box::new(f)));
}

/// Make one syscall. Returns the non-negative result or the errno.
pub fn syscall(call: Call) -> io::Result<i64> {
    #[cfg(test)]
    {
        let faked = FAKE.with(|c| c.borrow_mut().as_mut().map(|f| f(&call)));
        if let Some(r) = faked {
            return r;
        }
    }
    // SAFETY: each variant carries pointers that are valid for the call.
    let ret = unsafe {
        match call {
            Call::Bpf { cmd, attr, size } => libc::syscall(libc::SYS_bpf, cmd as u32, attr, size),
            Call::PerfEventOpen { attr, pid, cpu, group_fd, flags } => libc::syscall(
                libc::SYS_perf_event_open,
                attr as *const PerfEventAttr,
                pid,
                cpu,
                group_fd,
                flags,
            ),
            Call::Ioctl { fd, request, arg } => libc::ioctl(fd, request as _, arg) as i64,
        }
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `bpf(cmd, attr, sizeof(*attr))`, retried on EINTR.
pub fn bpf<T>(cmd: Cmd, attr: &mut T) -> io::Result<i64> {
    loop {
        let r = syscall(Call::Bpf {
            cmd,
            attr: attr as *mut T as *mut u8,
            size: std::mem::size_of::<T>() as u32,
        });
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            r => return r,
        }
    }
}

/// `bpf(2)` returning a new fd.
pub fn bpf_fd<T>(cmd: Cmd, attr: &mut T) -> io::Result<OwnedFd> {
    bpf(cmd, attr).map(|fd| owned_fd(fd as RawFd))
}

pub fn perf_event_open(attr: &PerfEventAttr, pid: i32, cpu: i32) -> io::Result<OwnedFd> {
    let fd = syscall(Call::PerfEventOpen { attr, pid, cpu, group_fd: -1, flags: PERF_FLAG_FD_CLOEXEC })?;
    Ok(owned_fd(fd as RawFd))
}

pub fn ioctl(fd: RawFd, request: u64, arg: u64) -> io::Result<i64> {
    syscall(Call::Ioctl { fd, request, arg })
}

/// Wrap a new fd; never keep 0, 1 or 2 (the bpf UAPI treats fd 0 as "none",
/// and a closed stdio slot must not become a BPF object).
pub fn owned_fd(fd: RawFd) -> OwnedFd {
    if (0..3).contains(&fd) {
        // SAFETY: fd was just returned to us and is open.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if dup >= 3 {
            unsafe { libc::close(fd) };
            return unsafe { OwnedFd::from_raw_fd(dup) };
        }
    }
    // SAFETY: the kernel just gave us this fd; we are its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_sees_bpf_call() {
        override_syscall(|c| match c {
            Call::Bpf { cmd: Cmd::MapCreate, size, .. } => Ok(*size as i64 + 100),
            _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        });
        let mut attr = [0u64; 9];
        let fd = bpf(Cmd::MapCreate, &mut attr).unwrap();
        assert_eq!(fd, 172);
        assert_eq!(ioctl(5, 1, 0).unwrap_err().raw_os_error(), Some(libc::EINVAL));
    }
}
