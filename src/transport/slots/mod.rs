//! Slot rings: per-CPU rings of fixed-size slots in one mmap'able BPF array
//! (`BPF_F_MMAPABLE`, 5.5+), written by the programs with plain stores.
//! No helper call per event: `bpf_perf_event_output` took most of an
//! event's cost (see docs/decisions.md, slot rings). Needs BPF cmpxchg
//! (5.12+). The reader is woken through a small BPF ring buffer.
//!
//! Array layout, `cpus * n` slots then one control element per CPU:
//! - slot `cpu * n + (pos & (n - 1))`: `u64 commit` then the record, and in
//!   the slot's last 8 bytes the program's clock read before it reserved the
//!   slot. The program writes those, then `commit = pos + 1` (x86 keeps
//!   stores in order; 0 is never a commit, so a zeroed slot is empty).
//!   That plain store publishes the record only under x86's store order:
//!   on arm64 slot rings are never chosen ([`arch_refusal`]).
//! - control `cpus * n + cpu`: `u64 head` at 0 (the next position to
//!   reserve; the programs advance it with a cmpxchg, so a program
//!   interrupted on its CPU by another cannot share a slot) and `u64 tail`
//!   at 64 (ours: positions below it are read). A program finding
//!   `head - tail == n` counts a loss instead of writing.
//!
//! Files: `layout.rs` (the constants), `emit.rs` (the programs' side),
//! `view.rs` (one ring's reader).
//!
//! Positions are free-running `u64`s. We read a slot's commit with Acquire,
//! stop at the first slot not yet committed, and publish `tail` with Release
//! after the batch (the records are handed out in place until then).

mod emit;
mod layout;
mod view;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use crate::asm::{Arch, Asm, Reg, Size};
use crate::loader::map::BPF_F_MMAPABLE;
use crate::loader::prog::{self, ProgSpec};
use crate::loader::{Map, MapType, ProgType};
use crate::transport::error::{PerfError, SetupError};
use crate::transport::mmap::{map, page_size, Mapping};
use crate::transport::options::Options;
use crate::transport::poll::Poll;
use crate::transport::record::{Drained, Record, Wake};
use crate::transport::ringbuf::BpfRing;
pub use emit::SlotMaps;
use layout::slots_per_cpu;
pub use layout::{MIN_SLOT, RESERVE_TRIES, SLOT_SIZE};
use view::SlotView;

/// Why slot rings cannot run on `arch` (None: they can). The programs
/// commit a slot with a plain store after the record's stores: the reader
/// that sees the commit sees the record only where stores stay in order
/// (x86). arm64 would need a store-release (BPF has one only on recent
/// kernels); there the ring buffer or perf rings carry the events.
pub fn arch_refusal(arch: Arch) -> Option<&'static str> {
    match arch {
        Arch::X86_64 => None,
        Arch::Aarch64 => Some("arm64 does not keep their plain-store commit after the record's stores"),
    }
}

/// What slot rings need: this architecture's store order
/// ([`arch_refusal`]), BPF cmpxchg (5.12+; the verifier refuses it
/// before) and mmap'able arrays (5.5+).
pub fn supported() -> bool {
    arch_refusal(Arch::HOST).is_none() && kernel_supports()
}

fn kernel_supports() -> bool {
    let mut a = Asm::new();
    a.st(Size::DW, Reg::R10, -8, 0);
    a.mov64_imm(Reg::R0, 0);
    a.mov64_imm(Reg::R1, 1);
    a.atomic_cmpxchg(Size::DW, Reg::R10, -8, Reg::R1);
    a.mov64_imm(Reg::R0, 0);
    a.exit();
    let cmpxchg = a.finish().is_ok_and(|p| {
        let spec = ProgSpec {
            name: "tcpt_probe",
            prog_type: ProgType::Tracepoint,
            expected_attach_type: 0,
            attach_btf_id: 0,
            insns: p.insns(),
            want_log: false,
        };
        prog::try_load(&spec).is_ok()
    });
    cmpxchg && Map::create_flags(MapType::Array, "tcpt_probe", 4, 8, 1, BPF_F_MMAPABLE).is_ok()
}

/// The slot array's mapping and a view per CPU.
struct SlotRings {
    views: Vec<SlotView>,
    _map: Mapping,
}

// SAFETY: the mapping is owned here and only touched through `&mut
// Slots` or by the kernel.
unsafe impl Send for SlotRings {}

impl SlotRings {
    /// Map the array `fd` (`cpus * n + cpus` elements of `slot` bytes).
    fn open(fd: BorrowedFd<'_>, cpus: u32, n: u64, slot: usize, page: usize) -> Result<SlotRings, PerfError> {
        let count = u64::from(cpus).checked_mul(n).and_then(|s| s.checked_add(u64::from(cpus)));
        let bytes = count.and_then(|c| c.checked_mul(slot as u64)).filter(|_| n.is_power_of_two());
        let Some(bytes) = bytes.filter(|_| slot.is_multiple_of(8) && slot >= MIN_SLOT) else {
            return Err(PerfError::BadSlots { cpus, n, slot });
        };
        let len = (bytes as usize).div_ceil(page) * page;
        let m = map(fd, len, libc::PROT_READ | libc::PROT_WRITE, 0, "slot array")?;
        let ring_bytes = n as usize * slot;
        let views = (0..cpus as usize)
            .map(|c| {
                // SAFETY: both ranges lie inside the mapping of `bytes`
                // (checked above); it lives as long as the views (same struct).
                unsafe {
                    let slots = m.ptr.add(c * ring_bytes);
                    let ctl = m.ptr.add(cpus as usize * ring_bytes + c * slot);
                    SlotView::new(slots, ctl, n, slot)
                }
            })
            .collect();
        Ok(SlotRings { views, _map: m })
    }

    /// Positions reserved and not read, on all CPUs.
    fn unread(&self) -> u64 {
        self.views.iter().map(SlotView::unread).sum()
    }
}

/// The slot rings the tracer runs: the array, the wake ring, their
/// mappings and the epoll set.
pub struct Slots {
    // Field order is drop order: the mappings, then the maps.
    rings: SlotRings,
    wake_ring: BpfRing,
    poll: Poll,
    scratch: Vec<u8>,
    _array: Map,
    _wake: Map,
    maps: SlotMaps,
    /// The ring memory asked for per CPU, in pages.
    pub(crate) pages: usize,
}

// SAFETY: as for SlotRings; the wake ring is only touched through `&mut Slots`.
unsafe impl Send for Slots {}

impl Slots {
    /// Per CPU of `cpus` (the present ones), as many slots as fit
    /// `ring_pages` pages, rounded down to a power of two (at least 8):
    /// 16384 by default. Their pages are kernel memory, all resident, and
    /// count in the tracer's RSS once read (mapped).
    pub(crate) fn setup(o: &Options, cpus: u32) -> Result<Slots, SetupError> {
        debug_assert!(8 + o.event_size + 8 <= SLOT_SIZE as usize);
        let page = page_size();
        let n = slots_per_cpu(o.ring_pages, page);
        let entries = u64::from(cpus) * u64::from(n) + u64::from(cpus);
        let entries =
            u32::try_from(entries).ok().filter(|_| entries * u64::from(SLOT_SIZE) <= 1 << 32).ok_or_else(
                || SetupError::Config(format!("slot rings of {n} slots on {cpus} CPUs are too large")),
            )?;
        let array = Map::create_flags(MapType::Array, "tcpt_slots", 4, SLOT_SIZE, entries, BPF_F_MMAPABLE)?;
        let wake = Map::create(MapType::RingBuf, "tcpt_wake", 0, 0, page as u32)?;
        let mut poll = Poll::new()?;
        poll.add_ring(wake.as_fd().as_raw_fd(), 0).map_err(|source| PerfError::Epoll {
            call: "epoll_ctl(wake ring)",
            cpu: None,
            source,
        })?;
        poll.reserve(2);
        let wake_ring = BpfRing::open(wake.as_fd(), page, page)?;
        let rings = SlotRings::open(array.as_fd(), cpus, u64::from(n), SLOT_SIZE as usize, page)?;
        let maps = SlotMaps { fd: array.raw_fd(), wake: wake.raw_fd(), n, cpus };
        let scratch = Vec::with_capacity(u16::MAX as usize);
        Ok(Slots { rings, wake_ring, poll, scratch, _array: array, _wake: wake, maps, pages: o.ring_pages })
    }

    pub(crate) fn maps(&self) -> SlotMaps {
        self.maps
    }

    pub(crate) fn poll(&mut self) -> &mut Poll {
        &mut self.poll
    }

    /// One ring per present CPU.
    pub(crate) fn ring_count(&self) -> usize {
        self.rings.views.len()
    }

    pub(crate) fn wait(&mut self, timeout_ms: i32) -> Result<Wake, PerfError> {
        let ready = self.poll.wait(timeout_ms)?;
        if ready.ring {
            // Wake-up records carry nothing: drop them.
            self.wake_ring.view.drain(&mut self.scratch, usize::MAX, &mut |_| {});
        }
        Ok(ready.wake)
    }

    /// Hand up to `limit` committed records of ring `i` to `f`.
    pub(crate) fn drain(&self, i: usize, limit: usize, f: &mut dyn FnMut(Record<'_>)) -> Drained {
        self.rings.views[i].drain(limit, f)
    }

    /// Positions reserved and not yet read on all CPUs (records being
    /// written, or left by a drain's limit).
    pub(crate) fn unread(&self) -> u64 {
        self.rings.unread()
    }
}
