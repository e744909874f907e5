//! Shared memory with the kernel: a mapping that unmaps itself, and the
//! consumer position a drain publishes once, when it is done.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::transport::error::PerfError;

/// An mmap'ed region, unmapped on drop.
pub(crate) struct Mapping {
    pub(crate) ptr: *mut u8,
    pub(crate) len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap and are unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A shared mapping of `len` bytes of `fd` from `offset`.
pub(crate) fn mmap(fd: BorrowedFd<'_>, len: usize, prot: i32, offset: usize) -> io::Result<Mapping> {
    // SAFETY: a fresh shared mapping of the fd; the result is checked.
    let p =
        unsafe { libc::mmap(ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.as_raw_fd(), offset as i64) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(Mapping { ptr: p.cast(), len })
}

/// A mapping of a BPF map (`what` names it in the error).
pub(crate) fn map(
    fd: BorrowedFd<'_>,
    len: usize,
    prot: i32,
    offset: usize,
    what: &'static str,
) -> Result<Mapping, PerfError> {
    mmap(fd, len, prot, offset).map_err(|source| PerfError::RingMmap { what, len, source })
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

/// The consumer's position in a ring (perf `data_tail`, the ring buffer's
/// `consumer_pos`, a slot ring's `tail`), as one drain moves it: read at
/// the start, published with Release when dropped, if it moved. Records
/// are handed out in place until then: the producer may not reuse their
/// bytes before the position passes them.
pub(crate) struct Tail<'a> {
    word: &'a AtomicU64,
    start: u64,
    /// Where the drain is.
    pub(crate) pos: u64,
}

impl<'a> Tail<'a> {
    pub(crate) fn new(word: &'a AtomicU64) -> Tail<'a> {
        // Only we write it.
        let start = word.load(Ordering::Relaxed);
        Tail { word, start, pos: start }
    }

    /// Where the drain began.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }
}

impl Drop for Tail<'_> {
    fn drop(&mut self) {
        if self.pos != self.start {
            self.word.store(self.pos, Ordering::Release);
        }
    }
}
