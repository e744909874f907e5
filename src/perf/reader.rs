//! Per-CPU perf events, their mappings and one epoll set.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr;

use super::bpfring::BpfRing;
use super::ring::{data_layout, RingView, DATA_OFFSET, DATA_SIZE};
use super::slots::{Drained, SlotRings};
use super::{DrainStats, PerfError, Record, Wake};
use crate::loader::sys::{
    ioctl, owned_fd, perf_event_open, PerfEventAttr, PERF_COUNT_SW_BPF_OUTPUT, PERF_EVENT_IOC_DISABLE,
    PERF_EVENT_IOC_ENABLE, PERF_FLAG_WATERMARK, PERF_SAMPLE_RAW, PERF_TYPE_SOFTWARE,
};

/// epoll token of wake fds; rings use their index.
const WAKE_TOKEN: u64 = u64::MAX;
/// `perf_event_header.size` is a u16, so no record is larger.
const MAX_RECORD: usize = u16::MAX as usize;

/// An mmap'ed region, unmapped on drop (perf rings and the ring buffer).
pub(crate) struct Mapping {
    pub(crate) ptr: *mut u8,
    pub(crate) len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap and are unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// One CPU's perf event and ring. Field order is drop order: the view
/// dies first, then the mapping, then the fd.
struct Ring {
    cpu: u32,
    view: RingView,
    _map: Mapping,
    fd: OwnedFd,
}

// SAFETY: the mapping is owned by the Ring and only touched through `&mut
// PerfReader` (drain) or the kernel; nothing is tied to the opening thread.
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
                                      // SAFETY: a fresh shared mapping of the perf fd; checked below.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(PerfError::Mmap { cpu, pages: pages + 1, source: io::Error::last_os_error() });
        }
        let map = Mapping { ptr: p.cast(), len };
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
pub struct PerfReader {
    rings: Vec<Ring>,
    /// A BPF ring buffer instead of perf rings (ring index 0).
    bpf: Option<BpfRing>,
    /// Slot rings instead of perf rings (ring index = CPU).
    slots: Option<SlotRings>,
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
    scratch: Vec<u8>,
}

impl PerfReader {
    /// Open a perf event and a ring of `pages` (a power of two) data pages
    /// on each CPU in `cpus`, skipping offline CPUs (ENODEV). A ring wakes
    /// `wait` once `watermark_bytes` are queued (clamped below the ring
    /// size; 0 lets the kernel pick half the ring).
    pub fn open(cpus: &[u32], pages: usize, watermark_bytes: u32) -> Result<PerfReader, PerfError> {
        let page = page_size();
        let data = pages.checked_mul(page).filter(|_| pages.is_power_of_two());
        let Some(data) = data.filter(|d| d.checked_add(page).is_some()) else {
            return Err(PerfError::BadPages(pages));
        };
        let watermark = u64::from(watermark_bytes).min(data as u64 - 1) as u32;
        let mut r = PerfReader::empty()?;
        for &cpu in cpus {
            let Some(ring) = Ring::open(cpu, pages, page, watermark)? else {
                continue;
            };
            epoll_add(&r.epoll, ring.fd.as_raw_fd(), r.rings.len() as u64)
                .map_err(|source| PerfError::Epoll { call: "epoll_ctl", cpu: Some(cpu), source })?;
            r.rings.push(ring);
        }
        if r.rings.is_empty() {
            return Err(PerfError::NoCpus);
        }
        r.events.resize(r.rings.len() + 1, libc::epoll_event { events: 0, u64: 0 });
        Ok(r)
    }

    /// Read the BPF ring buffer map `fd` of `size` bytes (max_entries)
    /// instead of perf rings: one ring, woken by the programs themselves
    /// (`BPF_RB_FORCE_WAKEUP`).
    pub fn open_ringbuf(fd: BorrowedFd<'_>, size: usize) -> Result<PerfReader, PerfError> {
        let mut r = PerfReader::waiting_on(fd, "epoll_ctl(ring buffer)")?;
        r.bpf = Some(BpfRing::open(fd, size, page_size())?);
        Ok(r)
    }

    /// A reader with no rings whose `wait` returns `Data` when `fd` (a ring
    /// buffer) is readable.
    fn waiting_on(fd: BorrowedFd<'_>, call: &'static str) -> Result<PerfReader, PerfError> {
        let mut r = PerfReader::empty()?;
        epoll_add(&r.epoll, fd.as_raw_fd(), 0).map_err(|source| PerfError::Epoll {
            call,
            cpu: None,
            source,
        })?;
        r.events.resize(2, libc::epoll_event { events: 0, u64: 0 });
        Ok(r)
    }

    /// Read slot rings: the mmap'able array `fd` holding `n` slots of
    /// `slot` bytes per CPU for `cpus` CPUs, then a control element per CPU
    /// (see `slots.rs`). `wake` is a ring buffer of `wake_size` bytes whose
    /// records only wake `wait`; they are dropped unread.
    pub fn open_slots(
        fd: BorrowedFd<'_>,
        cpus: u32,
        n: u64,
        slot: usize,
        wake: BorrowedFd<'_>,
        wake_size: usize,
    ) -> Result<PerfReader, PerfError> {
        let mut r = PerfReader::waiting_on(wake, "epoll_ctl(wake ring)")?;
        let page = page_size();
        let ring = BpfRing::open(wake, wake_size, page)?;
        r.slots = Some(SlotRings::open(fd, cpus, n, slot, ring, page)?);
        Ok(r)
    }

    /// With slot rings: positions reserved on all CPUs and not yet read
    /// (records being written, or left by a drain's limit).
    pub fn slots_unread(&self) -> Option<u64> {
        self.slots.as_ref().map(SlotRings::unread)
    }

    /// With slot rings: drain ring `i` as [`PerfReader::drain_ring`] does,
    /// and say whether every position reserved when it began was read.
    pub fn drain_slot_ring(
        &mut self,
        i: usize,
        limit: usize,
        f: &mut dyn FnMut(Record<'_>),
    ) -> Option<Drained> {
        Some(self.slots.as_ref()?.views[i].drain(limit, f))
    }

    /// The BPF ring buffer's size, if this reads one (not perf rings).
    pub fn ringbuf_size(&self) -> Option<usize> {
        self.bpf.as_ref().map(|b| b.size())
    }

    /// A reader with no rings (only the epoll set).
    fn empty() -> Result<PerfReader, PerfError> {
        // SAFETY: plain syscall; the result is checked.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            let source = io::Error::last_os_error();
            return Err(PerfError::Epoll { call: "epoll_create1", cpu: None, source });
        }
        Ok(PerfReader {
            rings: Vec::new(),
            bpf: None,
            slots: None,
            epoll: owned_fd(ep),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 1],
            scratch: Vec::with_capacity(MAX_RECORD),
        })
    }

    /// `(cpu, perf fd)` of every ring, to store at index `cpu` of the
    /// BPF `PERF_EVENT_ARRAY`.
    pub fn fds(&self) -> impl Iterator<Item = (u32, BorrowedFd<'_>)> {
        self.rings.iter().map(|r| (r.cpu, r.fd.as_fd()))
    }

    /// Make `wait` return `Wake::Woken` when `fd` is readable (e.g. an
    /// eventfd written on shutdown). The fd is not read here: reset it
    /// yourself, and keep it open while waiting (closing it unregisters it).
    pub fn add_wake_fd(&mut self, fd: BorrowedFd<'_>) -> Result<(), PerfError> {
        epoll_add(&self.epoll, fd.as_raw_fd(), WAKE_TOKEN).map_err(|source| PerfError::Epoll {
            call: "epoll_ctl(wake fd)",
            cpu: None,
            source,
        })?;
        self.events.push(libc::epoll_event { events: 0, u64: 0 });
        Ok(())
    }

    /// Make `wait` return `Wake::Woken` when `fd` reports an error or a
    /// hang-up (e.g. a pipe's write end whose reader went away); it is not
    /// watched for anything else. Fails for fds epoll cannot watch (files).
    pub fn add_error_fd(&mut self, fd: BorrowedFd<'_>) -> Result<(), PerfError> {
        epoll_ctl_add(&self.epoll, fd.as_raw_fd(), 0, WAKE_TOKEN).map_err(|source| PerfError::Epoll {
            call: "epoll_ctl(error fd)",
            cpu: None,
            source,
        })?;
        self.events.push(libc::epoll_event { events: 0, u64: 0 });
        Ok(())
    }

    /// One `epoll_wait` (timeout in ms, -1 = forever). Reads no records.
    pub fn wait(&mut self, timeout_ms: i32) -> Result<Wake, PerfError> {
        // SAFETY: events is a valid buffer of events.len() (≥ 1) entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(Wake::Interrupted);
            }
            return Err(PerfError::Epoll { call: "epoll_wait", cpu: None, source: e });
        }
        let ready = &self.events[..n as usize];
        if let Some(s) = &self.slots {
            if ready.iter().any(|e| ({ e.u64 }) == 0) {
                // Wake-up records carry nothing: drop them.
                s.wake.view.drain(&mut self.scratch, usize::MAX, &mut |_| {});
            }
        }
        Ok(if ready.is_empty() {
            Wake::Timeout
        } else if ready.iter().any(|e| ({ e.u64 }) == WAKE_TOKEN) {
            Wake::Woken
        } else {
            Wake::Data
        })
    }

    /// Hand every queued record of every ring to `f`. A ring with a corrupt
    /// header is resynchronised (its remaining bytes dropped); the other
    /// rings are still drained, then the first such error is returned.
    /// Does not allocate.
    pub fn drain(&mut self, f: &mut dyn FnMut(Record<'_>)) -> Result<DrainStats, PerfError> {
        let mut total = DrainStats::default();
        let mut err = None;
        for i in 0..self.ring_count() {
            let (stats, r) = self.drain_ring(i, usize::MAX, f);
            total += stats;
            if let Err(e) = r {
                err.get_or_insert(e);
            }
        }
        err.map_or(Ok(total), Err)
    }

    /// How many rings there are (one per online CPU, the one ring buffer,
    /// or one slot ring per possible CPU).
    pub fn ring_count(&self) -> usize {
        self.rings.len() + usize::from(self.bpf.is_some()) + self.slots.as_ref().map_or(0, |s| s.views.len())
    }

    /// Hand up to `limit` records of ring `i` to `f`; `Ok(true)` when
    /// records remain. A corrupt ring is resynchronised and reported.
    pub fn drain_ring(
        &mut self,
        i: usize,
        limit: usize,
        f: &mut dyn FnMut(Record<'_>),
    ) -> (DrainStats, Result<bool, PerfError>) {
        if let Some(s) = &self.slots {
            let d = s.views[i].drain(limit, f);
            return (d.stats, Ok(d.more));
        }
        if let Some(b) = &self.bpf {
            let (stats, corrupt, more) = b.view.drain(&mut self.scratch, limit, f);
            let r = match corrupt {
                Some(c) => Err(PerfError::RingCorrupt { pos: c.pos, size: c.size, avail: c.avail }),
                None => Ok(more),
            };
            return (stats, r);
        }
        let ring = &self.rings[i];
        let (stats, corrupt, more) = ring.view.drain(&mut self.scratch, limit, f);
        let r = match corrupt {
            Some(c) => Err(PerfError::Corrupt { cpu: ring.cpu, pos: c.pos, size: c.size, avail: c.avail }),
            None => Ok(more),
        };
        (stats, r)
    }
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

fn epoll_add(ep: &OwnedFd, fd: RawFd, token: u64) -> io::Result<()> {
    epoll_ctl_add(ep, fd, libc::EPOLLIN as u32, token)
}

fn epoll_ctl_add(ep: &OwnedFd, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: ev is a valid epoll_event; the kernel validates the fds.
    if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::sys::{override_syscall, Call};
    use crate::perf::online_cpus;

    fn errno(e: i32) -> io::Error {
        io::Error::from_raw_os_error(e)
    }

    #[test]
    fn bad_pages() {
        for p in [0, 3, 6, usize::MAX, 1 << (usize::BITS - 2)] {
            assert!(matches!(PerfReader::open(&[0], p, 1), Err(PerfError::BadPages(n)) if n == p), "{p}");
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
        let e = PerfReader::open(&[0, 1], 4, u32::MAX).err().unwrap();
        assert_eq!(e.to_string(), "perf_event_open(cpu 1): Permission denied (os error 13)");
    }

    #[test]
    fn all_offline_is_an_error() {
        override_syscall(|_| Err(errno(libc::ENODEV)));
        assert!(matches!(PerfReader::open(&[0, 1, 2], 1, 0), Err(PerfError::NoCpus)));
        assert!(matches!(PerfReader::open(&[], 1, 0), Err(PerfError::NoCpus)));
    }

    #[test]
    fn wake_fd() {
        let mut r = PerfReader::empty().unwrap();
        // SAFETY: plain syscall; checked.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        assert!(efd >= 0);
        let efd = owned_fd(efd);
        r.add_wake_fd(efd.as_fd()).unwrap();
        assert_eq!(r.wait(0).unwrap(), Wake::Timeout);
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer.
        assert_eq!(unsafe { libc::write(efd.as_raw_fd(), one.as_ptr().cast(), 8) }, 8);
        assert_eq!(r.wait(0).unwrap(), Wake::Woken);
        assert_eq!(r.drain(&mut |_| panic!("no rings")).unwrap(), DrainStats::default());
    }

    #[test]
    fn real_rings_as_root() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping real_rings_as_root: perf_event_open of BPF output needs root");
            return;
        }
        let cpus = online_cpus().unwrap();
        let mut r = PerfReader::open(&cpus, 4, 4096).unwrap();
        let got: Vec<u32> = r.fds().map(|(c, _)| c).collect();
        assert_eq!(got, cpus);
        assert!(r.fds().all(|(_, fd)| fd.as_raw_fd() > 2));
        let size = (4 * page_size()) as u64;
        assert!(r.rings.iter().all(|ring| ring.view.size() == size));
        assert_eq!(r.wait(0).unwrap(), Wake::Timeout);
        assert_eq!(r.drain(&mut |_| panic!("no BPF program writes")).unwrap(), DrainStats::default());
    }
}
