//! Memory: VmHWM/VmRSS and the ring mappings at attach and after a max-rate load;
//! the binary's size.

use std::fs;
use std::time::Duration;

use crate::config::Cfg;
use crate::load::{loadgen_finish, loadgen_spawn, Load};
use crate::proc::{read_lossy, settle};
use crate::run::{sum_lost, tracer_start};
use crate::sys::{cmd_out, progress, R};

#[derive(Default, Clone, Copy)]
pub struct Rings {
    pub count: u64,
    pub size_kb: u64,
    pub rss_kb: u64,
}

fn status_kb(pid: i32, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The ring mappings in /proc/PID/smaps: perf rings (`anon_inode:[perf_event]`)
/// or the slot array and wake ring (`anon_inode:bpf-map`).
fn rings(pid: i32) -> Rings {
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut r = Rings::default();
    let mut in_ring = false;
    for l in smaps.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-') {
            in_ring = l.contains("perf_event") || l.contains("bpf-map");
            if in_ring {
                r.count += 1;
            }
        } else if in_ring {
            let kb =
                |p: &str| l.strip_prefix(p).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
            if let Some(v) = kb("Size:") {
                r.size_kb += v;
            } else if let Some(v) = kb("Rss:") {
                r.rss_kb += v;
            }
        }
    }
    r
}

#[derive(Default)]
pub struct Memory {
    pub hwm_attach: u64,
    pub rss_attach: u64,
    pub rings_attach: Rings,
    pub hwm_load: u64,
    pub rss_load: u64,
    pub rings_load: Rings,
    pub load: Load,
    pub lost: u64,
    pub secs: f64,
    pub bin_size: u64,
    pub bin_file: String,
}

pub fn memory(cfg: &Cfg) -> R<Memory> {
    let secs = 2.0 * cfg.seconds;
    let mut m = Memory { secs, ..Memory::default() };
    m.bin_size = fs::metadata(&cfg.tracer).map_err(|e| e.to_string())?.len();
    m.bin_file =
        cmd_out("file", &["-b", &cfg.tracer.to_string_lossy()]).unwrap_or_else(|| "(file(1) failed)".into());
    progress(format!("memory: max rate, {} threads, {secs} s", cfg.ncpu));
    let (out, err) = (cfg.scratch("mem-out"), cfg.scratch("mem-err"));
    let r = (|| {
        let mut t = tracer_start(cfg, Some(&out), &err, false)?;
        m.hwm_attach = status_kb(t.pid, "VmHWM");
        m.rss_attach = status_kb(t.pid, "VmRSS");
        m.rings_attach = rings(t.pid);
        let mut lg = loadgen_spawn(cfg, cfg.ncpu, secs, 0.0, false)?;
        m.load = loadgen_finish(&mut lg, secs)?;
        settle(&out, Duration::from_secs(10));
        m.hwm_load = status_kb(t.pid, "VmHWM");
        m.rss_load = status_kb(t.pid, "VmRSS");
        m.rings_load = rings(t.pid);
        t.stop(libc::SIGINT, Duration::from_secs(30))?;
        m.lost = sum_lost(&read_lossy(&err), "Possibly lost ");
        Ok::<_, String>(())
    })();
    let _ = fs::remove_file(&out);
    let _ = fs::remove_file(&err);
    r.map(|_| m)
}
