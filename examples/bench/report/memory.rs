//! The `## Memory and size` section.

use std::fmt::Write as _;

use super::targets::Targets;
use crate::config::Cfg;
use crate::memory::Memory;
use crate::stats::k;
use crate::sys::R;

pub fn section(w: &mut String, t: &mut Targets, cfg: &Cfg, m: &R<Memory>) {
    let _ = writeln!(w, "\n## Memory and size\n");
    let m = match m {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(w, "failed: {e}");
            return;
        }
    };
    table(w, cfg, m);
    if m.rings_load.count > 0 && m.rings_load.rss_kb == 0 {
        let _ = writeln!(
            w,
            "\nThe perf ring pages are kernel pages mapped VM_IO (`[perf_event]`, VmFlags `io`): smaps shows \
             Rss 0 for them, so VmHWM does not include the rings; their size is the ring memory."
        );
    } else if m.rings_load.rss_kb > 0 {
        let _ = writeln!(
            w,
            "\nThe slot rings are an mmap'ed BPF array: all its pages count in Rss (and VmHWM) from the \
             start, so VmHWM includes the ring memory."
        );
    }
    let _ = writeln!(w, "\nBinary: {} bytes; `file`: {}", m.bin_size, m.bin_file);
    let peak = m.hwm_load.max(m.hwm_attach);
    t.add("peak RSS (VmHWM)", "≤ 4 MB (4096 kB)", format!("{peak} kB"), peak <= 4096);
    let stripped = m.bin_file.contains(", stripped");
    t.add(
        "stripped static binary",
        "≤ 1 MB (1,048,576 bytes)",
        format!("{} bytes{}", m.bin_size, if stripped { "" } else { " (not stripped!)" }),
        m.bin_size <= 1 << 20 && stripped,
    );
}

fn table(w: &mut String, cfg: &Cfg, m: &Memory) {
    let _ = writeln!(w, "| | kB |\n|---|---|");
    let _ = writeln!(w, "| VmHWM at attach (header printed) | {} |", m.hwm_attach);
    let _ = writeln!(w, "| VmRSS at attach | {} |", m.rss_attach);
    let _ = writeln!(
        w,
        "| VmHWM after {} s at max rate ({} load threads, {} conn/s, {} lost) | {} |",
        m.secs,
        cfg.ncpu,
        k(m.load.rate),
        m.lost,
        m.hwm_load
    );
    let _ = writeln!(w, "| VmRSS after the load | {} |", m.rss_load);
    let _ = writeln!(
        w,
        "| rings: {} mappings (`[perf_event]`: perf rings; `bpf-map`: slot rings and wake ring), size | {} |",
        m.rings_load.count, m.rings_load.size_kb
    );
    let _ = writeln!(
        w,
        "| rings: Rss at attach / after the load | {} / {} |",
        m.rings_attach.rss_kb, m.rings_load.rss_kb
    );
    let _ = writeln!(
        w,
        "| VmHWM after the load minus ring Rss (heap, stack, code) | {} |",
        m.hwm_load.saturating_sub(m.rings_load.rss_kb)
    );
    let _ = writeln!(
        w,
        "| VmHWM after the load + ring pages not in Rss (all memory the tracer holds) | {} |",
        m.hwm_load + m.rings_load.size_kb.saturating_sub(m.rings_load.rss_kb)
    );
}
