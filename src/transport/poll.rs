//! One epoll set per transport: its rings' fds, and fds that end a wait.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::loader::sys::owned_fd;
use crate::transport::error::PerfError;
use crate::transport::record::Wake;

/// epoll token of wake fds; rings use their index.
const WAKE_TOKEN: u64 = u64::MAX;

pub(crate) struct Poll {
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
}

/// What one `epoll_wait` saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ready {
    pub(crate) wake: Wake,
    /// A ring's fd was ready (token below `WAKE_TOKEN`).
    pub(crate) ring: bool,
}

impl Poll {
    pub(crate) fn new() -> Result<Poll, PerfError> {
        // SAFETY: plain syscall; the result is checked.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            let source = io::Error::last_os_error();
            return Err(PerfError::Epoll { call: "epoll_create1", cpu: None, source });
        }
        Ok(Poll { epoll: owned_fd(ep), events: vec![libc::epoll_event { events: 0, u64: 0 }; 1] })
    }

    /// Watch a ring's fd for data under `token` (its index).
    pub(crate) fn add_ring(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        epoll_ctl_add(&self.epoll, fd, libc::EPOLLIN as u32, token)
    }

    /// Room for `n` ready entries (rings and wake fds).
    pub(crate) fn reserve(&mut self, n: usize) {
        self.events.resize(n, libc::epoll_event { events: 0, u64: 0 });
    }

    /// Make `wait` return `Wake::Woken` when `fd` is readable (e.g. an
    /// eventfd written on shutdown). The fd is not read here: reset it
    /// yourself, and keep it open while waiting (closing it unregisters it).
    pub(crate) fn add_wake_fd(&mut self, fd: BorrowedFd<'_>) -> Result<(), PerfError> {
        epoll_ctl_add(&self.epoll, fd.as_raw_fd(), libc::EPOLLIN as u32, WAKE_TOKEN)
            .map_err(|source| PerfError::Epoll { call: "epoll_ctl(wake fd)", cpu: None, source })?;
        self.events.push(libc::epoll_event { events: 0, u64: 0 });
        Ok(())
    }

    /// Make `wait` return `Wake::Woken` when `fd` reports an error or a
    /// hang-up (e.g. a pipe's write end whose reader went away); it is not
    /// watched for anything else. Fails for fds epoll cannot watch (files).
    pub(crate) fn add_error_fd(&mut self, fd: BorrowedFd<'_>) -> Result<(), PerfError> {
        epoll_ctl_add(&self.epoll, fd.as_raw_fd(), 0, WAKE_TOKEN).map_err(|source| PerfError::Epoll {
            call: "epoll_ctl(error fd)",
            cpu: None,
            source,
        })?;
        self.events.push(libc::epoll_event { events: 0, u64: 0 });
        Ok(())
    }

    /// One `epoll_wait` (timeout in ms, -1 = forever).
    pub(crate) fn wait(&mut self, timeout_ms: i32) -> Result<Ready, PerfError> {
        // SAFETY: events is a valid buffer of events.len() (≥ 1) entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(Ready { wake: Wake::Interrupted, ring: false });
            }
            return Err(PerfError::Epoll { call: "epoll_wait", cpu: None, source: e });
        }
        let ready = &self.events[..n as usize];
        let ring = ready.iter().any(|e| ({ e.u64 }) != WAKE_TOKEN);
        let wake = if ready.is_empty() {
            Wake::Timeout
        } else if ready.iter().any(|e| ({ e.u64 }) == WAKE_TOKEN) {
            Wake::Woken
        } else {
            Wake::Data
        };
        Ok(Ready { wake, ring })
    }
}

fn epoll_ctl_add(ep: &OwnedFd, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: ev is a valid epoll_event; the kernel validates the fds.
    if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn wake_fd() {
        let mut p = Poll::new().unwrap();
        // SAFETY: plain syscall; checked.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        assert!(efd >= 0);
        let efd = owned_fd(efd);
        p.add_wake_fd(efd.as_fd()).unwrap();
        assert_eq!(p.wait(0).unwrap(), Ready { wake: Wake::Timeout, ring: false });
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer.
        assert_eq!(unsafe { libc::write(efd.as_raw_fd(), one.as_ptr().cast(), 8) }, 8);
        assert_eq!(p.wait(0).unwrap(), Ready { wake: Wake::Woken, ring: false });
    }
}
