//! kprobes and kretprobes: through the kprobe PMU (4.17+), else through
//! tracefs `kprobe_events` (a "legacy" event that must be removed again).
//!
//! Legacy events are named `tcpt_<pid>_<n>_<symbol>` in group `tcptracer`,
//! so a later start can remove the leftovers of a tracer that died
//! (`remove_stale`). `kprobe_events` is only ever opened with O_APPEND: a
//! truncating open would delete every kprobe on the system.

use super::attach::PerfLink;
use super::prog::Prog;
use super::sys::{self, PerfEventAttr};
use super::tracefs::Tracefs;
use super::LoadError;
use std::ffi::CString;
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

const PMU_DIR: &str = "/sys/bus/event_source/devices/kprobe";
pub const GROUP: &str = "tcptracer";
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The kprobe PMU's perf type, if the kernel has one.
pub fn pmu_type() -> Option<u32> {
    std::fs::read_to_string(format!("{PMU_DIR}/type")).ok()?.trim().parse().ok()
}

/// The `config` bit that makes a PMU kprobe a kretprobe (`config:N`).
fn retprobe_bit() -> Result<u32, LoadError> {
    let path = format!("{PMU_DIR}/format/retprobe");
    let text = std::fs::read_to_string(&path).map_err(|e| LoadError::call(format!("reading {path}"), e))?;
    parse_config_bit(&text).ok_or_else(|| LoadError::Tracefs(format!("{path}: unexpected {:?}", text.trim())))
}

pub fn parse_config_bit(text: &str) -> Option<u32> {
    text.trim().strip_prefix("config:")?.parse().ok()
}

/// Are kprobes available at all (PMU or tracefs)?
pub fn available(tracefs: &Tracefs) -> bool {
    pmu_type().is_some() || tracefs.root().join("kprobe_events").exists()
}

/// An attached kprobe; detached (and its legacy event removed) on drop.
#[derive(Debug)]
pub struct Kprobe {
    link: Option<PerfLink>,
    legacy: Option<(Arc<Tracefs>, String)>,
}

impl Drop for Kprobe {
    fn drop(&mut self) {
        // Disable and close the perf event first: the event cannot be
        // removed while it is open.
        drop(self.link.take());
        if let Some((tracefs, name)) = self.legacy.take() {
            let _ = write_kprobe_events(&tracefs, &format!("-:{GROUP}/{name}\n"));
        }
    }
}

fn write_kprobe_events(tracefs: &Tracefs, line: &str) -> std::io::Result<()> {
    let path = tracefs.root().join("kprobe_events");
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(line.as_bytes())
}

fn what(symbol: &str, ret: bool) -> String {
    format!("{} {symbol}", if ret { "kretprobe" } else { "kprobe" })
}

/// Attach `prog` (type KPROBE) at the entry (or return, `ret`) of `symbol`.
/// `legacy` forces the tracefs path even when the PMU exists.
pub fn attach(
    prog: &Prog,
    symbol: &str,
    ret: bool,
    tracefs: &Arc<Tracefs>,
    legacy: bool,
) -> Result<Kprobe, LoadError> {
    match pmu_type() {
        Some(pmu) if !legacy => attach_pmu(prog, pmu, symbol, ret),
        _ => attach_legacy(prog, symbol, ret, tracefs),
    }
}

fn attach_pmu(prog: &Prog, pmu: u32, symbol: &str, ret: bool) -> Result<Kprobe, LoadError> {
    let name = CString::new(symbol).map_err(|_| LoadError::Tracefs(format!("bad symbol {symbol:?}")))?;
    let config = if ret { 1u64 << retprobe_bit()? } else { 0 };
    let attr = PerfEventAttr {
        type_: pmu,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config,
        sample_period: 1,
        wakeup: 1,
        config1: name.as_ptr() as u64,
        config2: 0,
        ..Default::default()
    };
    let w = what(symbol, ret);
    let fd = sys::perf_event_open(&attr, -1, 0).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::EINVAL) => {
            LoadError::Tracefs(format!("{w}: the kernel has no such probe-able function ({e})"))
        }
        _ => LoadError::call(format!("perf_event_open({w})"), e),
    })?;
    let link = PerfLink::attach_with_link(fd, prog, w)?;
    Ok(Kprobe { link: Some(link), legacy: None })
}

fn attach_legacy(prog: &Prog, symbol: &str, ret: bool, tracefs: &Arc<Tracefs>) -> Result<Kprobe, LoadError> {
    let sanitized: String = symbol.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = format!("tcpt_{}_{n}_{sanitized}", std::process::id());
    name.truncate(63);
    let w = what(symbol, ret);
    let line = format!("{}:{GROUP}/{name} {symbol}\n", if ret { "r" } else { "p" });
    write_kprobe_events(tracefs, &line).map_err(|e| {
        LoadError::call(format!("adding {w} to {}/kprobe_events", tracefs.root().display()), e)
    })?;
    // From here on the event exists: the guard removes it on any error.
    let mut probe = Kprobe { link: None, legacy: Some((tracefs.clone(), name.clone())) };
    let id = tracefs.event_id(GROUP, &name)?;
    probe.link = Some(super::attach::trace_event(id, prog, w)?);
    Ok(probe)
}

/// Hits the kernel missed on our kprobes: legacy (tracefs) ones from
/// `kprobe_profile` ("<event> <hits> <nmissed>" per line), PMU ones from
/// their BPF link's info (6.7+; before that they count as 0).
pub fn missed(probes: &[Kprobe]) -> u64 {
    let pmu: u64 = probes.iter().filter_map(|k| k.link.as_ref()?.kprobe_missed()).sum();
    let legacy: Vec<&(Arc<Tracefs>, String)> = probes.iter().filter_map(|k| k.legacy.as_ref()).collect();
    let Some((tracefs, _)) = legacy.first() else { return pmu };
    let Ok(text) = std::fs::read_to_string(tracefs.root().join("kprobe_profile")) else { return pmu };
    pmu + parse_missed(&text, legacy.iter().map(|(_, n)| n.as_str()))
}

/// Does this kernel tell how many hits of `k` it missed?
pub fn counts_missed(k: &Kprobe) -> bool {
    k.legacy.is_some() || k.link.as_ref().is_some_and(|l| l.kprobe_missed().is_some())
}

pub fn parse_missed<'a>(profile: &str, names: impl Iterator<Item = &'a str> + Clone) -> u64 {
    profile
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && names.clone().any(|n| n == f[0])).then(|| f[2].parse::<u64>().ok())?
        })
        .sum()
}

/// Names of our legacy events in a `kprobe_events` text whose tracer
/// process (`is_alive(pid)`) is gone.
pub fn stale_events(kprobe_events: &str, is_alive: impl Fn(u32) -> bool) -> Vec<String> {
    let prefix = format!("{GROUP}/tcpt_");
    kprobe_events
        .lines()
        .filter_map(|l| {
            let spec = l.split_whitespace().next()?; // "p:tcptracer/tcpt_123_0_sym"
            let full = spec.split_once(':')?.1;
            let rest = full.strip_prefix(&prefix)?;
            let pid: u32 = rest.split('_').next()?.parse().ok()?;
            (!is_alive(pid)).then(|| full.split_once('/').unwrap().1.to_string())
        })
        .collect()
}

/// Remove legacy events left by tracers that died (e.g. `kill -9`).
pub fn remove_stale(tracefs: &Tracefs) -> usize {
    let Ok(text) = std::fs::read_to_string(tracefs.root().join("kprobe_events")) else { return 0 };
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "tcptracer")
            || pid == std::process::id()
    };
    let stale = stale_events(&text, alive);
    stale.iter().filter(|name| write_kprobe_events(tracefs, &format!("-:{GROUP}/{name}\n")).is_ok()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_bit() {
        assert_eq!(parse_config_bit("config:0\n"), Some(0));
        assert_eq!(parse_config_bit("config:9"), Some(9));
        assert_eq!(parse_config_bit("config1:0"), None);
        assert_eq!(parse_config_bit(""), None);
    }

    #[test]
    fn missed_counts_only_our_events() {
        let profile = "  tcpt_1_0_tcp_v4_connect                 120      3\n  \
                       tcpt_1_1_tcp_set_state                  900      4\n  other                 5 100\n";
        let names = ["tcpt_1_0_tcp_v4_connect", "tcpt_1_1_tcp_set_state"];
        assert_eq!(parse_missed(profile, names.iter().copied()), 7);
        assert_eq!(parse_missed("garbage\n", names.iter().copied()), 0);
    }

    #[test]
    fn stale_events_are_ours_and_dead_only() {
        let text = "p:tcptracer/tcpt_100_0_tcp_v4_connect tcp_v4_connect\n\
                    r:tcptracer/tcpt_100_1_tcp_v4_connect tcp_v4_connect\n\
                    p:tcptracer/tcpt_200_0_tcp_set_state tcp_set_state\n\
                    p:kprobes/tcpt_100_0_x x\n\
                    p:kprobes/other do_sys_open\n\
                    garbage\n";
        let stale = stale_events(text, |pid| pid == 200);
        assert_eq!(stale, vec!["tcpt_100_0_tcp_v4_connect", "tcpt_100_1_tcp_v4_connect"]);
    }
}
