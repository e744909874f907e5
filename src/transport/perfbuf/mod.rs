//! Per-CPU perf rings: a perf event per online CPU, its ring filled by
//! `bpf_perf_event_output` through a `PERF_EVENT_ARRAY` map.
//!
//! Ring protocol: each CPU's ring is an mmap of one metadata page
//! (`perf_event_mmap_page`) followed by 2^n data pages. The kernel writes
//! records at `data_head` and publishes the new head after the bytes; we read
//! `data_head` with Acquire, consume records from `data_tail` up to it, then
//! publish the new `data_tail` with Release so the kernel may reuse the space
//! (the pair matches the kernel's "rmb after head, mb before tail"). Positions
//! are free-running `u64`s; a byte lives at `pos & (size - 1)`, so a record's
//! body may wrap past the end of the data area: such a record is copied into
//! one reusable scratch buffer, every other record is handed out in place.
//! Borrowed slices never outlive the drain that produced them.

mod ring;
#[cfg(test)]
mod ring_tests;
#[cfg(test)]
mod root_tests;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr;

use crate::asm::{Asm, Helper, Reg};
use crate::loader::sys::{
    ioctl, perf_event_open, PerfEventAttr, PERF_COUNT_SW_BPF_OUTPUT, PERF_EVENT_IOC_DISABLE,
    PERF_EVENT_IOC_ENABLE, PERF_FLAG_WATERMARK, PERF_SAMPLE_RAW, PERF_TYPE_SOFTWARE,
};
use crate::loader::{Map, MapType};
use crate::transport::cpus::online_cpus;
use crate::transport::emit::{in_flight, stack_ptr, Frame, Stat};
use crate::transport::error::{PerfError, SetupError};
use crate::transport::mmap::{mmap, page_size, Mapping};
use crate::transport::options::Options;
use crate::transport::poll::Poll;
use crate::transport::record::{DrainStats, Drained, Record, Wake};
pub use ring::drain_buffer;
use ring::{data_layout, RingView, DATA_OFFSET, DATA_SIZE};

/// `perf_event_header.size` is a u16, so no record is larger.
const MAX_RECORD: usize = u16::MAX as usize;
/// Smallest ring tried when locked memory is short (64 KiB with 4 KiB pages).
const MIN_RING_PAGES: usize = 16;

/// One CPU's perf event and ring. Field order is drop order: the view
/// dies first, then the mapping, then the fd.
struct Ring {
    cpu: u32,
    view: RingView,
    _map: Mapping,
    fd: OwnedFd,
}

// SAFETY: the mapping is owned by the Ring and only touched through `&mut
// PerfBuf` (drain) or the kernel; nothing is tied to the opening thread.
unsafe impl Send for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = ioctl(self.fd.as_raw_fd(), PERF_EVENT_IOC_DISABLE, 0);
    }
}

impl Ring {
    /// `Ok(None)` if the CPU is offline (ENODEV).
    fn open(cpu: u32, pages: usize, page: usize, watermark: u32) -> Result<Option<Ring>, PerfError> {
        let attr = PerfEventAttr {
            type_: PERF_TYPE_SOFTWARE,
            size: std::mem::size_of::<PerfEventAttr>() as u32,
            config: PERF_COUNT_SW_BPF_OUTPUT,
            sample_period: 1,
            sample_type: PERF_SAMPLE_RAW,
            flags: PERF_FLAG_WATERMARK,
            wakeup: watermark,
            ..Default::default()
        };
        let fd = match perf_event_open(&attr, -1, cpu as i32) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
            Err(source) => return Err(PerfError::Open { cpu, source }),
        };
        let len = (pages + 1) * page; // checked by the caller
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let map = mmap(fd.as_fd(), len, prot, 0).map_err(|source| PerfError::Mmap {
            cpu,
            pages: pages + 1,
            source,
        })?;
        // SAFETY: the metadata page is mapped and page-aligned; the kernel
        // sets these fields before mmap returns and never changes them.
        let (off, size) = unsafe {
            (
                ptr::read_volatile(map.ptr.add(DATA_OFFSET).cast::<u64>()),
                ptr::read_volatile(map.ptr.add(DATA_SIZE).cast::<u64>()),
            )
        };
        let (data_off, data_size) = data_layout(off, size, len, page).ok_or(PerfError::Layout {
            cpu,
            data_offset: off,
            data_size: size,
        })?;
        // SAFETY: data_layout checked that the data area lies in the mapping
        // and is 2^n bytes; the mapping lives as long as the view (same Ring).
        let view = unsafe { RingView::new(map.ptr, map.ptr.add(data_off), data_size) };
        ioctl(fd.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0).map_err(|source| PerfError::Ioctl {
            cpu,
            request: "PERF_EVENT_IOC_ENABLE",
            source,
        })?;
        Ok(Some(Ring { cpu, view, _map: map, fd }))
    }
}

/// Reads the per-CPU perf rings of one `PERF_EVENT_ARRAY`.
///
/// Typical loop: `wait(timeout)`, then `drain(..)` on `Data` *and* on
/// `Timeout` (a watermark only wakes once that many bytes are queued, so
/// a trickle of events is only seen by draining after a timeout).
pub struct PerfBuf {
    rings: Vec<Ring>,
    poll: Poll,
    scratch: Vec<u8>,
}

impl PerfBuf {
    /// Open a perf event and a ring of `pages` (a power of two) data pages
    /// on each CPU in `cpus`, skipping offline CPUs (ENODEV). A ring wakes
    /// `wait` once `watermark_bytes` are queued (clamped below the ring
    /// size; 0 lets the kernel pick half the ring).
    pub fn open(cpus: &[u32], pages: usize, watermark_bytes: u32) -> Result<PerfBuf, PerfError> {
        let page = page_size();
        let data = pages.checked_mul(page).filter(|_| pages.is_power_of_two());
        let Some(data) = data.filter(|d| d.checked_add(page).is_some()) else {
            return Err(PerfError::BadPages(pages));
        };
        let watermark = u64::from(watermark_bytes).min(data as u64 - 1) as u32;
        let mut r =
            PerfBuf { rings: Vec::new(), poll: Poll::new()?, scratch: Vec::with_capacity(MAX_RECORD) };
        for &cpu in cpus {
            let Some(ring) = Ring::open(cpu, pages, page, watermark)? else {
                continue;
            };
            r.poll
                .add_ring(ring.fd.as_raw_fd(), r.rings.len() as u64)
                .map_err(|source| PerfError::Epoll { call: "epoll_ctl", cpu: Some(cpu), source })?;
            r.rings.push(ring);
        }
        if r.rings.is_empty() {
            return Err(PerfError::NoCpus);
        }
        r.poll.reserve(r.rings.len() + 1);
        Ok(r)
    }

    /// `(cpu, perf fd)` of every ring, to store at index `cpu` of the
    /// BPF `PERF_EVENT_ARRAY`.
    pub fn fds(&self) -> impl Iterator<Item = (u32, BorrowedFd<'_>)> {
        self.rings.iter().map(|r| (r.cpu, r.fd.as_fd()))
    }

    /// Make `wait` return `Wake::Woken` when `fd` is readable.
    pub fn add_wake_fd(&mut self, fd: BorrowedFd<'_>) -> Result<(), PerfError> {
        self.poll.add_wake_fd(fd)
    }

    /// Make `wait` return `Wake::Woken` when `fd` reports an error or a hang-up.
    pub fn add_error_fd(&mut self, fd: BorrowedFd<'_>) -> Result<(), PerfError> {
        self.poll.add_error_fd(fd)
    }

    /// One `epoll_wait` (timeout in ms, -1 = forever). Reads no records.
    pub fn wait(&mut self, timeout_ms: i32) -> Result<Wake, PerfError> {
        Ok(self.poll.wait(timeout_ms)?.wake)
    }

    pub(crate) fn poll(&mut self) -> &mut Poll {
        &mut self.poll
    }

    /// One ring per online CPU.
    pub fn ring_count(&self) -> usize {
        self.rings.len()
    }

    /// Hand every queued record of every ring to `f`. A ring with a corrupt
    /// header is resynchronised (its remaining bytes dropped); the other
    /// rings are still drained, then the first such error is returned.
    /// Does not allocate.
    pub fn drain(&mut self, f: &mut dyn FnMut(Record<'_>)) -> Result<DrainStats, PerfError> {
        let mut total = DrainStats::default();
        let mut err = None;
        for i in 0..self.rings.len() {
            match self.drain_ring(i, usize::MAX, f) {
                Ok(d) => total += d.stats,
                Err(e) => {
                    err.get_or_insert(e);
                }
            }
        }
        err.map_or(Ok(total), Err)
    }

    /// Hand up to `limit` records of ring `i` to `f`. A corrupt ring is
    /// resynchronised and reported.
    pub fn drain_ring(
        &mut self,
        i: usize,
        limit: usize,
        f: &mut dyn FnMut(Record<'_>),
    ) -> Result<Drained, PerfError> {
        let ring = &self.rings[i];
        let d = ring.view.drain(&mut self.scratch, limit, f);
        d.result(|c| PerfError::Corrupt { cpu: ring.cpu, pos: c.pos, size: c.size, avail: c.avail })
    }
}

/// The perf rings the tracer runs and the map the programs write them through.
pub struct PerfRings {
    // Field order is drop order: the rings, then the map.
    pub(crate) reader: PerfBuf,
    _events: Map,
    /// Pages per ring: the configured size, or less where locked memory
    /// was short.
    pub(crate) pages: usize,
}

impl PerfRings {
    /// The perf event array of `cpus` (possible CPUs) entries, and a perf
    /// ring per online CPU in it.
    pub(crate) fn setup(o: &Options, cpus: u32) -> Result<PerfRings, SetupError> {
        let events = Map::create(MapType::PerfEventArray, "tcpt_events", 4, 4, cpus)?;
        // The rings are in the events map before any program can fire.
        let (reader, pages) = open_rings(o)?;
        for (cpu, fd) in reader.fds() {
            let fd = fd.as_raw_fd() as u32;
            events.update(&cpu.to_ne_bytes(), &fd.to_ne_bytes(), 0)?;
        }
        Ok(PerfRings { reader, _events: events, pages })
    }

    pub(crate) fn maps(&self) -> PerfMaps {
        PerfMaps { events: self._events.raw_fd() }
    }
}

/// The perf rings and their pages, halved in size while mmap says EPERM:
/// the memory perf may lock beyond `perf_event_mlock_kb` per CPU is bounded
/// by RLIMIT_MEMLOCK unless the caller has CAP_IPC_LOCK.
fn open_rings(o: &Options) -> Result<(PerfBuf, usize), SetupError> {
    let cpus = online_cpus()?;
    let mut pages = o.ring_pages;
    loop {
        let bytes = pages.saturating_mul(page_size());
        match PerfBuf::open(&cpus, pages, o.watermark(bytes)) {
            Err(PerfError::Mmap { source, .. })
                if source.raw_os_error() == Some(libc::EPERM) && pages > MIN_RING_PAGES =>
            {
                pages /= 2;
            }
            Err(e) => return Err(e.into()),
            Ok(r) => return Ok((r, pages)),
        }
    }
}

/// What the programs write: the `PERF_EVENT_ARRAY`.
#[derive(Clone, Copy, Debug)]
pub struct PerfMaps {
    pub events: i32,
}

impl PerfMaps {
    /// Stamp the event and output it to this CPU's ring, counted in
    /// flight. A full ring (-ENOSPC) is not counted as a failure: perf
    /// reports it itself in a LOST record.
    pub(crate) fn emit(&self, a: &mut Asm, f: &Frame) {
        in_flight(a, f, |a| {
            a.mov64_reg(Reg::R1, Reg::R6);
            a.ld_map_fd(Reg::R2, self.events);
            a.mov32_imm(Reg::R3, -1); // BPF_F_CURRENT_CPU: exactly 0xffffffff
            stack_ptr(a, Reg::R4, f.event);
            a.mov64_imm(Reg::R5, f.event_size as i32);
            a.call(Helper::PerfEventOutput);
            f.stats.count_failure(a, Stat::OutputFailed);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::sys::{override_syscall, Call};
    use std::io;

    fn errno(e: i32) -> io::Error {
        io::Error::from_raw_os_error(e)
    }

    #[test]
    fn bad_pages() {
        for p in [0, 3, 6, usize::MAX, 1 << (usize::BITS - 2)] {
            assert!(matches!(PerfBuf::open(&[0], p, 1), Err(PerfError::BadPages(n)) if n == p), "{p}");
        }
    }

    #[test]
    fn open_error_names_cpu_and_attr_is_right() {
        let page = page_size() as u32;
        override_syscall(move |c| match c {
            Call::PerfEventOpen { attr, pid: -1, cpu, .. } => {
                assert_eq!(attr.type_, PERF_TYPE_SOFTWARE);
                assert_eq!(attr.size, 128);
                assert_eq!(attr.config, PERF_COUNT_SW_BPF_OUTPUT);
                assert_eq!(attr.sample_type, PERF_SAMPLE_RAW);
                assert_eq!(attr.flags, PERF_FLAG_WATERMARK);
                assert_eq!(attr.wakeup, 4 * page - 1, "watermark not clamped");
                Err(errno(if *cpu == 0 { libc::ENODEV } else { libc::EACCES }))
            }
            _ => Err(errno(libc::ENOSYS)),
        });
        let e = PerfBuf::open(&[0, 1], 4, u32::MAX).err().unwrap();
        assert_eq!(e.to_string(), "perf_event_open(cpu 1): Permission denied (os error 13)");
    }

    #[test]
    fn all_offline_is_an_error() {
        override_syscall(|_| Err(errno(libc::ENODEV)));
        assert!(matches!(PerfBuf::open(&[0, 1, 2], 1, 0), Err(PerfError::NoCpus)));
        assert!(matches!(PerfBuf::open(&[], 1, 0), Err(PerfError::NoCpus)));
    }

    #[test]
    #[ignore = "needs root"]
    fn real_rings_as_root() {
        let cpus = online_cpus().unwrap();
        let mut r = PerfBuf::open(&cpus, 4, 4096).unwrap();
        let got: Vec<u32> = r.fds().map(|(c, _)| c).collect();
        assert_eq!(got, cpus);
        assert!(r.fds().all(|(_, fd)| fd.as_raw_fd() > 2));
        let size = (4 * page_size()) as u64;
        assert!(r.rings.iter().all(|ring| ring.view.size() == size));
        assert_eq!(r.wait(0).unwrap(), Wake::Timeout);
        assert_eq!(r.drain(&mut |_| panic!("no BPF program writes")).unwrap(), DrainStats::default());
    }
}
