//! Starting the tracer: the capabilities it needs, notes on what it could
//! not have, and start errors explained with what may help.

use super::{die, signals};
use tcptracer::asm::Arch;
use tcptracer::loader::LoadError;
use tcptracer::tracer::io::say;
use tcptracer::tracer::{Config, Error, Tracer};
use tcptracer::transport::PerfError;

/// Start tracing, or exit saying why not. Signals stop it from here on;
/// a hang-up of stdout ends its waits.
pub fn start(cfg: &Config) -> Tracer {
    let missing = missing_caps();
    if !missing.is_empty() {
        die(format!(
            "missing capability {}: run tcptracer as root, or grant CAP_BPF and CAP_PERFMON",
            missing.join(" and ")
        ));
    }
    let wake = signals::install();
    let mut tracer = match Tracer::start(cfg) {
        Ok(t) => t,
        Err(e) => start_error(e, cfg.debug),
    };
    if !tracer.kprobe_misses_counted() {
        note!(
            "Note: this kernel does not count missed hits of kprobes made through the kprobe PMU \
             (it does from 6.6); TCPTRACER_KPROBE_TRACEFS=1 uses tracefs kprobes, whose misses are counted"
        );
    }
    if let Some(why) = tcptracer::transport::slot_rings_arch_refusal(Arch::HOST) {
        if cfg.debug {
            let by = match tracer.transport() {
                tcptracer::transport::Kind::RingBuf => "the ring buffer carries",
                _ => "perf rings carry",
            };
            note!("Note: no slot rings: {why}; {by} the events");
        }
    }
    if let Some(why) = &tracer.slot_fallback {
        note!("Note: slot rings could not be set up ({why}); perf rings carry the events");
    }
    if tracer.transport() != tcptracer::transport::Kind::RingBuf && tracer.ring_pages < cfg.ring_pages {
        // SAFETY: sysconf has no preconditions.
        let kib = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize / 1024).max(1);
        note!(
            "Note: perf rings cut to {} KiB per CPU (of {}) by the locked-memory limit; \
             ulimit -l unlimited or CAP_IPC_LOCK allows more; bursts may be lost",
            tracer.ring_pages * kib,
            cfg.ring_pages * kib
        );
    }
    if let Some(w) = wake {
        if let Err(e) = tracer.add_wake_fd(w) {
            die(e);
        }
    }
    // A pipe whose reader went away reports an error to epoll: end then,
    // not at the next write (a regular file cannot be watched, and needs not).
    // SAFETY: fd 1 stays open for the life of the process.
    let _ = tracer.add_error_fd(unsafe { std::os::fd::BorrowedFd::borrow_raw(1) });
    tracer
}

/// The capabilities tracing needs that this process lacks (empty: none).
/// CAP_SYS_ADMIN covers both, as it does on kernels before 5.8.
fn missing_caps() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(eff) = status.lines().find_map(|l| l.strip_prefix("CapEff:")) else { return Vec::new() };
    let Ok(eff) = u64::from_str_radix(eff.trim(), 16) else { return Vec::new() };
    missing_from(eff)
}

fn missing_from(eff: u64) -> Vec<&'static str> {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    if eff & (1 << CAP_SYS_ADMIN) != 0 {
        return Vec::new();
    }
    [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(bit, _)| eff & (1u64 << bit) == 0)
        .map(|(_, name)| name)
        .collect()
}

/// Die saying why the tracer could not start, with what may help.
fn start_error(e: Error, debug: bool) -> ! {
    if let Error::Load { source, disasm } = &e {
        if debug {
            if let LoadError::Verifier { log, .. } = source {
                say(&format!("verifier log:\n{}", log.trim_end()));
            }
            if let Some(d) = disasm {
                say(&format!("program:\n{d}"));
            }
        }
    }
    let mut msg = e.to_string();
    let (errno, verifier, tracefs) = match &e {
        Error::Load { source, .. } => (
            source.errno(),
            matches!(source, LoadError::Verifier { .. }),
            matches!(source, LoadError::Tracefs(_)),
        ),
        _ => (None, false, false),
    };
    // SAFETY: trivial syscall.
    let root = unsafe { libc::geteuid() } == 0;
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(0);
    let perf_denied = match &e {
        Error::Perf(PerfError::Open { source, .. }) => source.raw_os_error() == Some(libc::EACCES),
        Error::Load { source: LoadError::Call { call, source }, .. } => {
            call.starts_with("perf_event_open") && source.raw_os_error() == Some(libc::EACCES)
        }
        _ => false,
    };
    if perf_denied && paranoid > 2 {
        // Debian's level 3: only CAP_SYS_ADMIN may open perf events.
        msg.push_str(&format!(
            "; kernel.perf_event_paranoid is {paranoid}: above 2 this kernel lets only CAP_SYS_ADMIN \
             open perf events (sysctl kernel.perf_event_paranoid=2 lets CAP_PERFMON)"
        ));
    } else if !root && (tracefs || matches!(errno, Some(libc::EPERM) | Some(libc::EACCES))) {
        msg.push_str("; run tcptracer as root (it needs CAP_BPF, CAP_PERFMON and tracefs)");
    } else if matches!(errno, Some(libc::EPERM)) && !verifier {
        msg.push_str(
            "; RLIMIT_MEMLOCK may be too low (kernels before 5.11): ulimit -l unlimited, or CAP_SYS_RESOURCE",
        );
    } else if verifier && !debug {
        msg.push_str(" (--debug shows the verifier log and the program)");
    }
    die(msg)
}

#[cfg(test)]
mod tests {
    #[test]
    fn capabilities() {
        let bit = |b: u32| 1u64 << b;
        assert!(super::missing_from(bit(21)).is_empty());
        assert!(super::missing_from(bit(38) | bit(39)).is_empty());
        assert_eq!(super::missing_from(bit(39)), vec!["CAP_PERFMON"]);
        assert_eq!(super::missing_from(bit(38)), vec!["CAP_BPF"]);
        assert_eq!(super::missing_from(0), vec!["CAP_BPF", "CAP_PERFMON"]);
    }
}
