//! System helpers: the error type, progress lines, emergency cleanup (children
//! and `kernel.bpf_stats_enabled`), and small /proc and command queries.

use std::collections::HashSet;
use std::fs;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};

pub type R<T> = Result<T, String>;

pub const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

pub fn progress(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

// ------------------------------------------------------------------ cleanup

const MAX_CHILDREN: usize = 32;
static CHILDREN: [AtomicI32; MAX_CHILDREN] = [const { AtomicI32::new(0) }; MAX_CHILDREN];
/// The value of kernel.bpf_stats_enabled to restore (-1: nothing to restore).
static SYSCTL_OLD: AtomicI32 = AtomicI32::new(-1);

pub fn register(pid: i32) {
    for c in &CHILDREN {
        if c.compare_exchange(0, pid, SeqCst, SeqCst).is_ok() {
            return;
        }
    }
}

pub fn unregister(pid: i32) {
    for c in &CHILDREN {
        let _ = c.compare_exchange(pid, 0, SeqCst, SeqCst);
    }
}

/// Restore the sysctl with async-signal-safe calls only.
fn restore_sysctl() {
    let old = SYSCTL_OLD.swap(-1, SeqCst);
    if old < 0 {
        return;
    }
    let val: &[u8] = if old == 0 { b"0\n" } else { b"1\n" };
    // SAFETY: NUL-terminated path, valid buffer; open/write/close are async-signal-safe.
    unsafe {
        let fd = libc::open(c"/proc/sys/kernel/bpf_stats_enabled".as_ptr(), libc::O_WRONLY);
        if fd >= 0 {
            libc::write(fd, val.as_ptr() as *const libc::c_void, val.len());
            libc::close(fd);
        }
    }
}

/// Kill every registered child and restore the sysctl (signal-handler safe).
pub fn emergency_cleanup() {
    for c in &CHILDREN {
        let pid = c.swap(0, SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) is async-signal-safe; the pid is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    restore_sysctl();
}

extern "C" fn on_signal(sig: libc::c_int) {
    emergency_cleanup();
    let msg = b"\nbench: interrupted; children killed, sysctl restored\n";
    // SAFETY: async-signal-safe calls only.
    unsafe {
        libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
        libc::_exit(128 + sig);
    }
}

pub fn install_cleanup() {
    // SAFETY: a valid handler that only makes async-signal-safe calls.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        emergency_cleanup();
        prev(info);
    }));
}

/// Sets kernel.bpf_stats_enabled=1 while alive.
pub struct BpfStats;

impl BpfStats {
    pub fn enable() -> R<BpfStats> {
        let old = fs::read_to_string(BPF_STATS).map_err(|e| format!("{BPF_STATS}: {e}"))?;
        let old: i32 = old.trim().parse().map_err(|_| format!("{BPF_STATS}: {old:?}"))?;
        SYSCTL_OLD.store(old, SeqCst);
        fs::write(BPF_STATS, "1\n").map_err(|e| format!("writing {BPF_STATS}: {e}"))?;
        Ok(BpfStats)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        restore_sysctl();
    }
}

// ------------------------------------------------------------------ queries

/// A command's trimmed stdout if it succeeds.
pub fn cmd_out(prog: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(prog).args(args).stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Other tracers running now (not ours): `comm (pid)` of tcptracer/bpftrace processes.
pub fn other_tracers() -> Vec<String> {
    let mut v = Vec::new();
    let ours: HashSet<i32> = CHILDREN.iter().map(|c| c.load(SeqCst)).collect();
    let Ok(d) = fs::read_dir("/proc") else { return v };
    for e in d.filter_map(Result::ok) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if (comm == "tcptracer" || comm == "bpftrace") && !ours.contains(&pid) {
            v.push(format!("{comm} ({pid})"));
        }
    }
    v
}

pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
