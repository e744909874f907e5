//! Child processes (killed and reaped on drop) and waiting on their output files.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::sys::{register, unregister, R};

/// A child process: killed (SIGKILL) and reaped when dropped if still running.
pub struct Proc {
    pub child: Child,
    pub pid: i32,
    pidfd: i32,
    pub name: &'static str,
}

impl Proc {
    pub fn spawn(name: &'static str, cmd: &mut Command) -> R<Proc> {
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("starting {name}: {e}"))?;
        let pid = child.id() as i32;
        register(pid);
        // SAFETY: plain syscall; -1 on failure (then we poll with try_wait).
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        Ok(Proc { child, pid, pidfd, name })
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn signal(&mut self, sig: i32) {
        if self.running() {
            // SAFETY: our child, not yet reaped, so the pid is still ours.
            unsafe { libc::kill(self.pid, sig) };
        }
    }

    /// Wait up to `d` for the child to end.
    pub fn wait_for(&mut self, d: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + d;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let ms = (deadline - now).as_millis().clamp(1, 1000) as i32;
            if self.pidfd >= 0 {
                let mut p = libc::pollfd { fd: self.pidfd, events: libc::POLLIN, revents: 0 };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut p, 1, ms) };
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Send `sig` (again every second: a busy bpftrace has been seen to miss
    /// one SIGINT), wait up to `grace`; SIGKILL after that. Err if it had to be killed.
    pub fn stop(&mut self, sig: i32, grace: Duration) -> R<ExitStatus> {
        let deadline = Instant::now() + grace;
        let mut status = None;
        while status.is_none() && Instant::now() < deadline {
            self.signal(sig);
            status =
                self.wait_for(Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now())));
        }
        match status {
            Some(s) => Ok(s),
            None => {
                self.signal(libc::SIGKILL);
                let _ = self.child.wait();
                Err(format!(
                    "{} did not exit within {:.0} s of signal {sig}; killed",
                    self.name,
                    grace.as_secs_f64()
                ))
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.running() {
            // SAFETY: our unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.child.wait();
        }
        unregister(self.pid);
        if self.pidfd >= 0 {
            // SAFETY: our fd.
            unsafe { libc::close(self.pidfd) };
        }
    }
}

/// Poll `cond` every millisecond until true; Err on timeout or if `p` ends.
pub fn wait_until(p: &mut Proc, timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) -> R<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return Ok(());
        }
        if !p.running() {
            return Err(format!("{} exited while waiting for {what}", p.name));
        }
        if Instant::now() >= deadline {
            return Err(format!("{} timed out waiting for {what}", p.name));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub fn read_lossy(p: &Path) -> String {
    fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// The non-event lines of a (possibly large) output file.
pub fn read_lossy_filtered(p: &Path) -> String {
    let Ok(f) = fs::File::open(p) else { return String::new() };
    let mut s = String::new();
    for l in BufReader::with_capacity(1 << 20, f).split(b'\n').map_while(Result::ok) {
        if !matches!(l.first(), Some(b'C' | b'A' | b'X')) {
            s.push_str(&String::from_utf8_lossy(&l));
            s.push('\n');
        }
    }
    s
}

pub fn file_has_lines(p: &Path, n: usize) -> bool {
    fs::read(p).map(|b| b.iter().filter(|&&c| c == b'\n').count() >= n).unwrap_or(false)
}

/// Wait until `p` stops growing for 300 ms (at most `max`): the reader caught up.
pub fn settle(p: &Path, max: Duration) {
    let deadline = Instant::now() + max;
    let mut last = u64::MAX;
    let mut since = Instant::now();
    while Instant::now() < deadline {
        let len = fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        if len != last {
            last = len;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_millis(300) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
