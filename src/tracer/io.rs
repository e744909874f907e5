//! Process-level helpers shared by the tracer and the command line: a
//! stderr line that never fails, a write loop for an fd that may block or
//! break, and handing freed heap memory back to the kernel.

use std::os::fd::RawFd;

/// Write a diagnostic line to stderr, ignoring every error: a closed or
/// broken stderr must not stop (or abort) the tracer.
pub fn say(line: &str) {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    let _ = write_all(2, &buf, &|| false);
}

/// Why [`write_all`] stopped short.
#[derive(Debug, PartialEq)]
pub enum Short {
    /// The reader went away (EPIPE) or the fd failed otherwise.
    Failed(i32),
    /// `give_up` said so while the fd was not writable.
    GaveUp,
}

/// Write all of `buf` to `fd`. EINTR is retried; on EAGAIN (a non-blocking
/// fd) wait up to 100 ms for it to become writable, then ask `give_up`.
pub fn write_all(fd: RawFd, buf: &[u8], give_up: &dyn Fn() -> bool) -> Result<(), Short> {
    let mut rest = buf;
    while !rest.is_empty() {
        // SAFETY: rest is a valid buffer of rest.len() bytes.
        let n = unsafe { libc::write(fd, rest.as_ptr() as *const libc::c_void, rest.len()) };
        if n >= 0 {
            rest = &rest[n as usize..];
            continue;
        }
        match std::io::Error::last_os_error().raw_os_error().unwrap_or(0) {
            libc::EINTR => {}
            libc::EAGAIN => {
                let mut p = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut p, 1, 100) };
            }
            e => return Err(Short::Failed(e)),
        }
        if give_up() {
            return Err(Short::GaveUp);
        }
    }
    Ok(())
}

/// Hand freed heap memory back to the kernel.
pub fn trim() {
    // SAFETY: malloc_trim has no preconditions (glibc; musl returns freed
    // memory by itself).
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}
