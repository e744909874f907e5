//! The BPF ring buffer (`BPF_MAP_TYPE_RINGBUF`, 5.8+): one ring shared by
//! every CPU, filled with `bpf_ringbuf_output`. Also the slot rings' wake
//! channel (`slots.rs`).
//!
//! Layout of the map's mmap: page 0 holds `consumer_pos` (ours to write),
//! page 1 `producer_pos` (the kernel's), then the data area of 2^n bytes,
//! which the kernel maps twice in a row so that a record is contiguous. We
//! map it once (the second mapping would count in RSS again) and copy the
//! rare record that wraps into a scratch buffer. A record is
//! an 8-byte header {u32 len; u32 pg_off} and `len` bytes, padded to 8. The
//! kernel sets BUSY in `len` while the record is written and clears it (with
//! a release) on submit; DISCARD marks a record to skip. We read
//! `producer_pos` with Acquire, each header's `len` with Acquire, stop at a
//! BUSY record, and publish `consumer_pos` with Release after the batch.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::asm::{Asm, Helper, Jmp, Reg};
use crate::loader::{Map, MapType};
use crate::transport::cpus::online_cpus;
use crate::transport::emit::{in_flight, stack_ptr, Frame, Stat};
use crate::transport::error::{PerfError, SetupError};
use crate::transport::mmap::{map, page_size, Mapping, Tail};
use crate::transport::options::Options;
use crate::transport::poll::Poll;
use crate::transport::record::{contiguous, Corrupt, DrainStats, Drained, Record, ViewDrain, Wake};

const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
const HDR: u64 = 8;
const BPF_RB_NO_WAKEUP: i32 = 1;
pub(crate) const BPF_RB_FORCE_WAKEUP: i32 = 2;
const BPF_RB_AVAIL_DATA: i32 = 0;

/// The consumer side of a ring buffer, over raw memory.
pub(crate) struct BpfRingView {
    consumer: *mut u8,
    producer: *const u8,
    data: *const u8,
    mask: u64,
}

impl BpfRingView {
    /// # Safety
    /// `consumer` and `producer` are 8-aligned and valid (for writes, and
    /// reads) of 8 bytes; `data` is 8-aligned and valid for reads of `size`
    /// bytes; `size` is a power of two ≥ 8; all stay valid while the view
    /// is used.
    pub(crate) unsafe fn new(consumer: *mut u8, producer: *const u8, data: *const u8, size: u64) -> Self {
        debug_assert!(size.is_power_of_two() && size >= HDR);
        BpfRingView { consumer, producer, data, mask: size - 1 }
    }

    fn pos(&self, p: *const u8) -> &AtomicU64 {
        // SAFETY: 8 valid, aligned bytes by the contract of `new`.
        unsafe { AtomicU64::from_ptr(p.cast_mut().cast()) }
    }

    /// Hand up to `limit` records to `f`, then publish the new consumer
    /// position once; `more` says records remain (a record still being
    /// written ends the batch without `more`). A header that cannot be
    /// right resynchronises to the producer position and is reported.
    pub(crate) fn drain(
        &self,
        scratch: &mut Vec<u8>,
        limit: usize,
        f: &mut dyn FnMut(Record<'_>),
    ) -> ViewDrain {
        let prod = self.pos(self.producer).load(Ordering::Acquire);
        let mut cons = Tail::new(self.pos(self.consumer));
        let (mut stats, mut corrupt, mut busy) = (DrainStats::default(), None, false);
        let size = self.mask + 1;
        if prod.wrapping_sub(cons.pos) > size || !cons.pos.is_multiple_of(HDR) {
            corrupt = Some(Corrupt { pos: cons.pos, size: 0, avail: prod.wrapping_sub(cons.pos) });
        }
        let mut n = 0;
        while corrupt.is_none() && cons.pos != prod && n < limit {
            let avail = prod.wrapping_sub(cons.pos);
            let idx = (cons.pos & self.mask) as usize;
            // SAFETY: idx + 8 ≤ size, 8-aligned (positions advance by multiples of 8).
            let len =
                unsafe { AtomicU32::from_ptr(self.data.add(idx).cast_mut().cast()) }.load(Ordering::Acquire);
            if len & BUSY != 0 {
                busy = true;
                break;
            }
            let body = u64::from(len & !(BUSY | DISCARD));
            let total = (body + HDR).div_ceil(HDR) * HDR;
            if total > avail {
                corrupt = Some(Corrupt { pos: cons.pos, size: body, avail });
                break;
            }
            if len & DISCARD == 0 {
                let at = (cons.pos.wrapping_add(HDR) & self.mask) as usize;
                let first = (body as usize).min(size as usize - at);
                // SAFETY: at + first ≤ size and body - first ≤ size (body <
                // avail ≤ size); the kernel does not reuse these bytes before
                // we publish a consumer position past them.
                let (a, b) = unsafe {
                    (
                        &*ptr::slice_from_raw_parts(self.data.add(at), first),
                        &*ptr::slice_from_raw_parts(self.data, body as usize - first),
                    )
                };
                let rec = contiguous(a, b, scratch);
                stats.samples += 1;
                f(Record::Sample(rec));
            }
            n += 1;
            cons.pos = cons.pos.wrapping_add(total);
        }
        let read = cons.pos;
        if corrupt.is_some() {
            // Resynchronise: drop the rest.
            cons.pos = prod;
        }
        drop(cons);
        // `more` looks again: the programs wake the reader as the queued
        // bytes grow past the watermark, so it must not sleep on records
        // that came during this drain (they may already be past it).
        let more = corrupt.is_none()
            && !busy
            && (read != prod || self.pos(self.producer).load(Ordering::Acquire) != read);
        ViewDrain { stats, more, corrupt }
    }
}

/// A mapped ring buffer. Field order is drop order: the view first.
pub(crate) struct BpfRing {
    pub(crate) view: BpfRingView,
    _producer: Mapping,
    _consumer: Mapping,
}

// SAFETY: the mappings are owned here and only touched through `&mut
// RingBuf` (drain) or the kernel; nothing is tied to the opening thread.
unsafe impl Send for BpfRing {}

impl BpfRing {
    /// Map the ring buffer map `fd` of `size` bytes (its max_entries).
    pub(crate) fn open(fd: BorrowedFd<'_>, size: usize, page: usize) -> Result<BpfRing, PerfError> {
        if !size.is_power_of_two() || size < page {
            return Err(PerfError::BadRingSize(size));
        }
        let consumer = map(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0, "consumer page")?;
        let producer = map(fd, page + size, libc::PROT_READ, page, "producer page and data")?;
        // SAFETY: both pages are mapped and page-aligned; the data area
        // (size bytes) follows the producer page; the mappings live as long
        // as the view.
        let view =
            unsafe { BpfRingView::new(consumer.ptr, producer.ptr, producer.ptr.add(page), size as u64) };
        Ok(BpfRing { view, _producer: producer, _consumer: consumer })
    }
}

/// Whether this kernel has the BPF ring buffer (5.8+).
pub fn supported() -> bool {
    // Its size must be a multiple of the page size (16 or 64 KiB on some arm64 kernels).
    Map::create(MapType::RingBuf, "tcpt_probe", 0, 0, page_size() as u32).is_ok()
}

/// The ring buffer the tracer runs, its map and its epoll set.
pub struct RingBuf {
    // Field order is drop order: the mappings, then the map.
    ring: BpfRing,
    poll: Poll,
    scratch: Vec<u8>,
    map: Map,
    /// Its size in pages.
    pub(crate) pages: usize,
    /// Queued bytes at which the programs wake the reader (see `RingMaps`).
    wake: (u32, u32),
}

impl RingBuf {
    /// `ring_pages` per online CPU (one ring for all: as much memory as
    /// perf rings would take), rounded up to a power of two, at most 1 GiB.
    /// `None` where the kernel has no ring buffer (before 5.8: creating the
    /// map fails with EINVAL). `cpus`: the CPUs that can run programs.
    pub(crate) fn setup(o: &Options, cpus: u32) -> Result<Option<RingBuf>, SetupError> {
        let online = online_cpus()?.len().max(1);
        let pages = o.ring_pages.saturating_mul(online).checked_next_power_of_two().unwrap_or(usize::MAX);
        let page = page_size();
        let bytes = pages.checked_mul(page).filter(|&b| b <= 1 << 30).ok_or_else(|| {
            SetupError::Config(format!("ring buffer of {pages} pages is larger than 1 GiB"))
        })?;
        let map = match Map::create(MapType::RingBuf, "tcpt_events", 0, 0, bytes as u32) {
            Ok(m) => m,
            Err(e) if e.errno() == Some(libc::EINVAL) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut poll = Poll::new()?;
        poll.add_ring(map.as_fd().as_raw_fd(), 0).map_err(|source| PerfError::Epoll {
            call: "epoll_ctl(ring buffer)",
            cpu: None,
            source,
        })?;
        poll.reserve(2);
        let ring = BpfRing::open(map.as_fd(), bytes, page_size())?;
        // Several CPUs may step over the watermark together: a record that
        // finds up to one more record per CPU queued still wakes.
        let at = o.watermark(bytes);
        let record = (HDR as usize + o.event_size) as u32;
        let wake = (at, at.saturating_add(cpus.saturating_mul(record)));
        Ok(Some(RingBuf { ring, poll, scratch: Vec::with_capacity(u16::MAX as usize), map, pages, wake }))
    }

    pub(crate) fn maps(&self) -> RingMaps {
        RingMaps { events: self.map.raw_fd(), wake_at: self.wake.0, wake_below: self.wake.1 }
    }

    pub(crate) fn poll(&mut self) -> &mut Poll {
        &mut self.poll
    }

    pub(crate) fn wait(&mut self, timeout_ms: i32) -> Result<Wake, PerfError> {
        Ok(self.poll.wait(timeout_ms)?.wake)
    }

    /// Hand up to `limit` records to `f`. A corrupt ring is resynchronised
    /// and reported.
    pub(crate) fn drain(
        &mut self,
        limit: usize,
        f: &mut dyn FnMut(Record<'_>),
    ) -> Result<Drained, PerfError> {
        let d = self.ring.view.drain(&mut self.scratch, limit, f);
        d.result(|c| PerfError::RingCorrupt { pos: c.pos, size: c.size, avail: c.avail })
    }
}

/// What the programs write: the ring buffer, and when they wake the reader.
#[derive(Clone, Copy, Debug)]
pub struct RingMaps {
    pub events: i32,
    /// A record that takes the queued bytes to `wake_at` wakes the reader,
    /// and so does one that finds fewer than `wake_below` queued (several
    /// CPUs may step over `wake_at` together).
    pub wake_at: u32,
    pub wake_below: u32,
}

impl RingMaps {
    /// Stamp the event and copy it into the ring buffer, counted in flight.
    /// The reader is woken only around the watermark; it polls for less. A
    /// wake-up per event would cost more than the event.
    pub(crate) fn emit(&self, a: &mut Asm, f: &Frame) {
        let record = HDR as i32 + f.event_size as i32;
        in_flight(a, f, |a| {
            a.ld_map_fd(Reg::R1, self.events);
            a.mov64_imm(Reg::R2, BPF_RB_AVAIL_DATA);
            a.call(Helper::RingbufQuery);
            a.mov64_imm(Reg::R5, BPF_RB_NO_WAKEUP);
            let quiet = a.label();
            a.jmp_imm(Jmp::Lt, Reg::R0, self.wake_at as i32 - record, quiet);
            a.jmp_imm(Jmp::Ge, Reg::R0, self.wake_below as i32, quiet);
            a.mov64_imm(Reg::R5, BPF_RB_FORCE_WAKEUP);
            a.bind(quiet);
            a.ld_map_fd(Reg::R1, self.events);
            stack_ptr(a, Reg::R2, f.event);
            a.mov64_imm(Reg::R3, f.event_size as i32);
            a.mov64_reg(Reg::R4, Reg::R5);
            a.call(Helper::RingbufOutput);
            // Fails only when the ring is full (-EAGAIN).
            f.stats.count_failure(a, Stat::RingFull);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring of `size` bytes on the heap: words [0] consumer, [1] producer,
    /// then size bytes of data and as many bytes the view must not read
    /// (0xee: a wrong read shows).
    struct Fake {
        mem: Vec<u64>,
        size: usize,
    }

    impl Fake {
        fn new(size: usize) -> Fake {
            let mut f = Fake { mem: vec![0; 2 + 2 * size / 8], size };
            bytemuck(&mut f.mem)[16 + size..].fill(0xee);
            f
        }
        fn view(&mut self) -> BpfRingView {
            let p = self.mem.as_mut_ptr().cast::<u8>();
            // SAFETY: the layout above; `mem` outlives each use of the view in these tests.
            unsafe { BpfRingView::new(p, p.add(8), p.add(16), self.size as u64) }
        }
        fn byte(&mut self, at: usize, b: u8) {
            let bytes: &mut [u8] = bytemuck(&mut self.mem);
            bytes[16 + at % self.size] = b;
        }
        /// A record at the producer position; returns its start.
        fn put(&mut self, len_word: u32, body: &[u8]) -> u64 {
            let at = self.mem[1];
            for (k, b) in len_word.to_ne_bytes().into_iter().enumerate() {
                self.byte(at as usize + k, b);
            }
            for (k, &b) in body.iter().enumerate() {
                self.byte(at as usize + 8 + k, b);
            }
            let len = u64::from(len_word & !(BUSY | DISCARD));
            self.mem[1] = at + (len + 8).div_ceil(8) * 8;
            at
        }
        fn set_len(&mut self, at: u64, len_word: u32) {
            for (k, b) in len_word.to_ne_bytes().into_iter().enumerate() {
                self.byte(at as usize + k, b);
            }
        }
    }

    fn bytemuck(v: &mut [u64]) -> &mut [u8] {
        // SAFETY: u64 memory viewed as bytes, same lifetime.
        unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len() * 8) }
    }

    fn collect(v: &BpfRingView, limit: usize) -> (Vec<Vec<u8>>, DrainStats, Option<Corrupt>, bool) {
        let mut got = Vec::new();
        let d = v.drain(&mut Vec::new(), limit, &mut |r| match r {
            Record::Sample(b) => got.push(b.to_vec()),
            Record::Lost(_) => panic!("no lost records in a ring buffer"),
        });
        (got, d.stats, d.corrupt, d.more)
    }

    #[test]
    fn records_in_order_padding_skipped_position_published() {
        let mut f = Fake::new(64);
        f.put(3, b"abc");
        f.put(8, b"12345678");
        let v = f.view();
        let (got, s, c, more) = collect(&v, usize::MAX);
        assert_eq!(got, vec![b"abc".to_vec(), b"12345678".to_vec()]);
        assert_eq!((s.samples, c, more), (2, None, false));
        assert_eq!(f.mem[0], 32, "16 + 16 bytes consumed");
    }

    #[test]
    fn wrapping_record_is_contiguous() {
        let mut f = Fake::new(64);
        f.mem[0] = 48;
        f.mem[1] = 48;
        let body: Vec<u8> = (0..20).collect();
        f.put(20, &body); // 48..80: wraps past 64
        let v = f.view();
        let (got, ..) = collect(&v, usize::MAX);
        assert_eq!(got, vec![body]);
        assert_eq!(f.mem[0], 80);
    }

    #[test]
    fn busy_stops_discard_skips_limit_leaves_more() {
        let mut f = Fake::new(128);
        f.put(1, b"a");
        f.put(1 | DISCARD, b"b");
        f.put(1, b"c");
        let busy = f.put(1 | BUSY, b"d");
        f.put(1, b"e");
        let v = f.view();
        let (got, _, c, more) = collect(&v, 1);
        assert_eq!((got, c, more), (vec![b"a".to_vec()], None, true));
        let (got, _, c, more) = collect(&v, usize::MAX);
        assert_eq!((got, c, more), (vec![b"c".to_vec()], None, false), "stops at BUSY");
        assert_eq!(f.mem[0], busy);
        f.set_len(busy, 1);
        let v = f.view();
        let (got, ..) = collect(&v, usize::MAX);
        assert_eq!(got, vec![b"d".to_vec(), b"e".to_vec()]);
    }

    #[test]
    fn records_arriving_during_a_drain_mean_more() {
        let mut f = Fake::new(128);
        f.put(1, b"a");
        let v = f.view();
        let prod = f.mem.as_mut_ptr().wrapping_add(1);
        let (mut n, mut more_later) = (0, false);
        let d = v.drain(&mut Vec::new(), usize::MAX, &mut |_| {
            n += 1;
            // A producer publishes another record while we read.
            // SAFETY: `prod` points into `f.mem`, alive and not otherwise borrowed here.
            unsafe { *prod += 16 };
            more_later = true;
        });
        assert_eq!((n, d.corrupt, d.more, more_later), (1, None, true, true));
    }

    #[test]
    fn corrupt_lengths_resynchronise() {
        let mut f = Fake::new(64);
        f.put(3, b"abc");
        f.mem[1] = 16;
        let at = f.mem[1];
        f.set_len(at, 100); // longer than the data published
        f.mem[1] = at + 16;
        let v = f.view();
        let (got, _, c, more) = collect(&v, usize::MAX);
        assert_eq!(got, vec![b"abc".to_vec()]);
        assert_eq!(c, Some(Corrupt { pos: 16, size: 100, avail: 16 }));
        assert!(!more);
        assert_eq!(f.mem[0], 32, "resynchronised to the producer");
        // A producer more than a ring ahead.
        f.mem[1] = 32 + 65;
        let v = f.view();
        let (_, _, c, _) = collect(&v, usize::MAX);
        assert_eq!(c, Some(Corrupt { pos: 32, size: 0, avail: 65 }));
    }
}
