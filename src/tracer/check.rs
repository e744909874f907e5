//! What this kernel supports, for `tcptracer --check`: every feature a
//! backend or a transport needs, and the backend `auto` would pick.

use super::config::{Backend, Config};
use super::error::Error;
use super::features;
use crate::btf::Btf;
use crate::loader::kprobe;
use crate::loader::tracefs::Tracefs;

/// The facts [`report`] found.
#[derive(Debug)]
pub struct CheckReport {
    /// Types in the BTF read (the kernel's, or `Config::btf`).
    pub btf_types: u32,
    /// The rest, which needs tracefs: `Err` when it cannot be opened.
    pub support: Result<Support, Error>,
}

/// What the kernel offers; an `Err` says why not, in one line.
#[derive(Debug)]
pub struct Support {
    /// The kprobe PMU's perf type (kprobes through perf_event_open).
    pub kprobe_pmu: Option<u32>,
    /// tracefs `kprobe_events` (kprobes on older kernels).
    pub kprobe_events: bool,
    pub fentry: Result<(), String>,
    pub tp_btf: Result<(), String>,
    /// The syscall tracepoints the accept program needs.
    pub tracepoints: Result<(), String>,
    pub ringbuf: bool,
    /// Slot rings can run (else perf rings carry the events).
    pub slot_rings: bool,
    pub probe_read_kernel: bool,
    /// The backend `auto` picks.
    pub auto: Backend,
}

/// Read the BTF `cfg` names, then try each feature (trial loads, file
/// checks). Fails only when the BTF cannot be read.
pub fn report(cfg: &Config) -> Result<CheckReport, Error> {
    let btf = match &cfg.btf {
        Some(p) => Btf::from_file(p)?,
        None => Btf::kernel()?,
    };
    let support = Tracefs::open().map_err(Error::from).map(|tracefs| Support {
        kprobe_pmu: kprobe::pmu_type(),
        kprobe_events: tracefs.root().join("kprobe_events").exists(),
        fentry: features::fentry(Some(&btf)),
        tp_btf: features::tp_btf(Some(&btf)),
        tracepoints: features::tracepoints(&tracefs),
        ringbuf: features::ringbuf(),
        slot_rings: features::slot_rings(),
        probe_read_kernel: features::probe_read_kernel(),
        auto: features::pick(Some(&btf), &tracefs),
    });
    Ok(CheckReport { btf_types: btf.type_count(), support })
}
