//! The BPF ring buffer (`BPF_MAP_TYPE_RINGBUF`, 5.8+): one ring shared by
//! every CPU, filled with `bpf_ringbuf_output`.
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

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::reader::Mapping;
use super::ring::{contiguous, Corrupt};
use super::{DrainStats, PerfError, Record};

const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
const HDR: u64 = 8;

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
    ) -> (DrainStats, Option<Corrupt>, bool) {
        let prod = self.pos(self.producer).load(Ordering::Acquire);
        // Only we write consumer_pos.
        let start = self.pos(self.consumer).load(Ordering::Relaxed);
        let (mut cons, mut stats, mut corrupt, mut busy) = (start, DrainStats::default(), None, false);
        let size = self.mask + 1;
        if prod.wrapping_sub(cons) > size || cons % HDR != 0 {
            corrupt = Some(Corrupt { pos: cons, size: 0, avail: prod.wrapping_sub(cons) });
        }
        let mut n = 0;
        while corrupt.is_none() && cons != prod && n < limit {
            let avail = prod.wrapping_sub(cons);
            let idx = (cons & self.mask) as usize;
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
                corrupt = Some(Corrupt { pos: cons, size: body, avail });
                break;
            }
            if len & DISCARD == 0 {
                let at = (cons.wrapping_add(HDR) & self.mask) as usize;
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
            cons = cons.wrapping_add(total);
        }
        let new = if corrupt.is_some() { prod } else { cons };
        if new != start {
            self.pos(self.consumer).store(new, Ordering::Release);
        }
        // `more` looks again: the programs wake the reader as the queued
        // bytes grow past the watermark, so it must not sleep on records
        // that came during this drain (they may already be past it).
        let more = corrupt.is_none()
            && !busy
            && (cons != prod || self.pos(self.producer).load(Ordering::Acquire) != cons);
        (stats, corrupt, more)
    }
}

pub(crate) fn map(
    fd: BorrowedFd<'_>,
    len: usize,
    prot: i32,
    offset: usize,
    what: &'static str,
) -> Result<Mapping, PerfError> {
    // SAFETY: a fresh shared mapping of the map fd; the result is checked.
    let p =
        unsafe { libc::mmap(ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.as_raw_fd(), offset as i64) };
    if p == libc::MAP_FAILED {
        return Err(PerfError::RingMmap { what, len, source: io::Error::last_os_error() });
    }
    Ok(Mapping { ptr: p.cast(), len })
}

/// A mapped ring buffer. Field order is drop order: the view first.
pub(crate) struct BpfRing {
    pub(crate) view: BpfRingView,
    _producer: Mapping,
    _consumer: Mapping,
}

// SAFETY: the mappings are owned here and only touched through `&mut
// PerfReader` (drain) or the kernel; nothing is tied to the opening thread.
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

    pub(crate) fn size(&self) -> usize {
        (self.view.mask + 1) as usize
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
        let (s, c, more) = v.drain(&mut Vec::new(), limit, &mut |r| match r {
            Record::Sample(b) => got.push(b.to_vec()),
            Record::Lost(_) => panic!("no lost records in a ring buffer"),
        });
        (got, s, c, more)
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
        let (_, c, more) = v.drain(&mut Vec::new(), usize::MAX, &mut |_| {
            n += 1;
            // A producer publishes another record while we read.
            // SAFETY: `prod` points into `f.mem`, alive and not otherwise borrowed here.
            unsafe { *prod += 16 };
            more_later = true;
        });
        assert_eq!((n, c, more, more_later), (1, None, true, true));
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
