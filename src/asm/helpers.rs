//! BPF helper function ids (`enum bpf_func_id` in `include/uapi/linux/bpf.h`).

/// The helpers tcptracer uses. The discriminant is the kernel's helper id (the `imm` of `call`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Helper {
    MapLookupElem = 1,
    MapUpdateElem = 2,
    MapDeleteElem = 3,
    /// Before 5.5 the only way to read kernel memory; later kernels prefer `ProbeReadKernel`.
    ProbeRead = 4,
    /// CLOCK_MONOTONIC.
    KtimeGetNs = 5,
    TracePrintk = 6,
    GetSmpProcessorId = 8,
    /// `tgid << 32 | pid`.
    GetCurrentPidTgid = 14,
    GetCurrentUidGid = 15,
    /// `(buf, 16)`.
    GetCurrentComm = 16,
    /// `(ctx, map, flags, data, size)`; flags `BPF_F_CURRENT_CPU` must be exactly `0xffffffff`.
    PerfEventOutput = 25,
    GetCurrentTask = 35,
    ProbeReadStr = 45,
    GetCurrentCgroupId = 80,
    /// 5.5+.
    ProbeReadKernel = 113,
    /// 5.5+.
    ProbeReadKernelStr = 115,
    /// CLOCK_BOOTTIME, 5.8+.
    KtimeGetBootNs = 125,
    /// 5.8+.
    RingbufOutput = 130,
    RingbufReserve = 131,
    RingbufSubmit = 132,
    RingbufDiscard = 133,
    /// `(map, flags)`: `BPF_RB_AVAIL_DATA` (0) = bytes queued.
    RingbufQuery = 134,
    /// 5.11+.
    GetCurrentTaskBtf = 158,
}

impl Helper {
    /// Every variant.
    pub const ALL: [Helper; 23] = [
        Helper::MapLookupElem,
        Helper::MapUpdateElem,
        Helper::MapDeleteElem,
        Helper::ProbeRead,
        Helper::KtimeGetNs,
        Helper::TracePrintk,
        Helper::GetSmpProcessorId,
        Helper::GetCurrentPidTgid,
        Helper::GetCurrentUidGid,
        Helper::GetCurrentComm,
        Helper::PerfEventOutput,
        Helper::GetCurrentTask,
        Helper::ProbeReadStr,
        Helper::GetCurrentCgroupId,
        Helper::ProbeReadKernel,
        Helper::ProbeReadKernelStr,
        Helper::KtimeGetBootNs,
        Helper::RingbufOutput,
        Helper::RingbufReserve,
        Helper::RingbufSubmit,
        Helper::RingbufDiscard,
        Helper::RingbufQuery,
        Helper::GetCurrentTaskBtf,
    ];

    /// The kernel helper id.
    pub fn id(self) -> i32 {
        self as i32
    }

    /// The helper with kernel id `id`, if it is one of ours.
    pub fn from_id(id: i32) -> Option<Helper> {
        Helper::ALL.iter().copied().find(|h| h.id() == id)
    }

    /// The kernel's name for the helper, e.g. `bpf_map_lookup_elem`.
    pub fn name(self) -> &'static str {
        match self {
            Helper::MapLookupElem => "bpf_map_lookup_elem",
            Helper::MapUpdateElem => "bpf_map_update_elem",
            Helper::MapDeleteElem => "bpf_map_delete_elem",
            Helper::ProbeRead => "bpf_probe_read",
            Helper::KtimeGetNs => "bpf_ktime_get_ns",
            Helper::TracePrintk => "bpf_trace_printk",
            Helper::GetSmpProcessorId => "bpf_get_smp_processor_id",
            Helper::GetCurrentPidTgid => "bpf_get_current_pid_tgid",
            Helper::GetCurrentUidGid => "bpf_get_current_uid_gid",
            Helper::GetCurrentComm => "bpf_get_current_comm",
            Helper::PerfEventOutput => "bpf_perf_event_output",
            Helper::GetCurrentTask => "bpf_get_current_task",
            Helper::ProbeReadStr => "bpf_probe_read_str",
            Helper::GetCurrentCgroupId => "bpf_get_current_cgroup_id",
            Helper::ProbeReadKernel => "bpf_probe_read_kernel",
            Helper::ProbeReadKernelStr => "bpf_probe_read_kernel_str",
            Helper::KtimeGetBootNs => "bpf_ktime_get_boot_ns",
            Helper::RingbufOutput => "bpf_ringbuf_output",
            Helper::RingbufReserve => "bpf_ringbuf_reserve",
            Helper::RingbufSubmit => "bpf_ringbuf_submit",
            Helper::RingbufDiscard => "bpf_ringbuf_discard",
            Helper::RingbufQuery => "bpf_ringbuf_query",
            Helper::GetCurrentTaskBtf => "bpf_get_current_task_btf",
        }
    }
}
