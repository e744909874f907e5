//! A perf ring over raw memory, kept apart from the mmap so tests (and
//! the fuzzer) can run it on a heap buffer laid out like a real mapping.

use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::transport::error::PerfError;
use crate::transport::mmap::Tail;
use crate::transport::record::{contiguous, Corrupt, DrainStats, Record, ViewDrain};

/// Offsets into `struct perf_event_mmap_page`.
const DATA_HEAD: usize = 1024;
const DATA_TAIL: usize = 1032;
pub(crate) const DATA_OFFSET: usize = 1040;
pub(crate) const DATA_SIZE: usize = 1048;

pub(crate) const PERF_RECORD_LOST: u32 = 2;
pub(crate) const PERF_RECORD_SAMPLE: u32 = 9;
/// `struct perf_event_header { u32 type; u16 misc; u16 size; }`
const HEADER: u64 = 8;
/// Header + `u32 size` of a sample.
const SAMPLE_BODY: usize = 12;
/// Header + `u64 id` + `u64 lost`.
const LOST_LEN: usize = 24;

/// Where the data area lies in a mapping of `map_len` bytes, from the
/// kernel's `data_offset`/`data_size` (both 0 before 4.1: data then starts
/// one page in). `None` if that doesn't fit the mapping or isn't 2^n bytes.
pub(crate) fn data_layout(
    data_offset: u64,
    data_size: u64,
    map_len: usize,
    page: usize,
) -> Option<(usize, u64)> {
    let (off, size) = if data_size == 0 {
        (page as u64, (map_len as u64).checked_sub(page as u64)?)
    } else {
        (data_offset, data_size)
    };
    let fits = off >= (DATA_SIZE + 8) as u64 && off.checked_add(size)? <= map_len as u64;
    (fits && size.is_power_of_two() && size >= HEADER).then_some((off as usize, size))
}

/// The consumer side of one ring.
pub(crate) struct RingView {
    meta: *mut u8,
    data: *const u8,
    mask: u64,
}

impl RingView {
    /// # Safety
    /// `meta` is 8-aligned and valid for reads and writes of
    /// `DATA_SIZE + 8` bytes; `data` is valid for reads of `size` bytes;
    /// `size` is a power of two; both stay valid while the view is used.
    pub(crate) unsafe fn new(meta: *mut u8, data: *const u8, size: u64) -> Self {
        debug_assert!(size.is_power_of_two() && (meta as usize).is_multiple_of(8));
        RingView { meta, data, mask: size - 1 }
    }

    fn atomic(&self, off: usize) -> &AtomicU64 {
        // SAFETY: in bounds and 8-aligned by the contract of `new`; the kernel
        // (or the test writer) only accesses these words atomically too.
        unsafe { AtomicU64::from_ptr(self.meta.add(off).cast()) }
    }

    /// Copy `dst.len()` (≤ ring size) bytes starting at `pos`, wrapping.
    fn copy_out(&self, pos: u64, dst: &mut [u8]) {
        let (a, b) = self.parts(pos, dst.len());
        dst[..a.len()].copy_from_slice(a);
        dst[a.len()..].copy_from_slice(b);
    }

    /// The `len` (≤ ring size) bytes at `pos` as up to two slices.
    fn parts(&self, pos: u64, len: usize) -> (&[u8], &[u8]) {
        let idx = (pos & self.mask) as usize;
        let first = len.min((self.mask + 1) as usize - idx);
        // SAFETY: idx + first ≤ size and len - first ≤ size; these bytes lie
        // between tail and head, which the kernel doesn't write until we
        // publish a new tail, after the slices are gone.
        unsafe {
            (
                &*ptr::slice_from_raw_parts(self.data.add(idx), first),
                &*ptr::slice_from_raw_parts(self.data, len - first),
            )
        }
    }

    /// The record at `pos` as one slice: in place, or copied into `scratch`
    /// if it wraps. `scratch` keeps its capacity, so this stops allocating
    /// once it has held the largest record.
    fn record<'s>(&'s self, pos: u64, len: usize, scratch: &'s mut Vec<u8>) -> &'s [u8] {
        let (a, b) = self.parts(pos, len);
        contiguous(a, b, scratch)
    }

    /// Hand up to `limit` records between tail and head to `f`, then
    /// publish the new tail once; `more` says records remain. On a corrupt
    /// header, stops and resynchronises the tail to the head (dropping the
    /// rest), and reports where.
    pub(crate) fn drain(
        &self,
        scratch: &mut Vec<u8>,
        limit: usize,
        f: &mut dyn FnMut(Record<'_>),
    ) -> ViewDrain {
        let head = self.atomic(DATA_HEAD).load(Ordering::Acquire);
        let mut tail = Tail::new(self.atomic(DATA_TAIL));
        let mut stats = DrainStats::default();
        let mut corrupt = None;
        if head.wrapping_sub(tail.pos) > self.mask + 1 {
            corrupt = Some(Corrupt { pos: tail.pos, size: 0, avail: head.wrapping_sub(tail.pos) });
        }
        let mut n = 0;
        while corrupt.is_none() && tail.pos != head && n < limit {
            n += 1;
            let avail = head.wrapping_sub(tail.pos);
            let mut hdr = [0u8; HEADER as usize];
            if avail >= HEADER {
                self.copy_out(tail.pos, &mut hdr);
            }
            let typ = u32::from_ne_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
            let size = u64::from(u16::from_ne_bytes([hdr[6], hdr[7]]));
            if size < HEADER || size > avail {
                corrupt = Some(Corrupt { pos: tail.pos, size, avail });
                break;
            }
            let rec = self.record(tail.pos, size as usize, scratch);
            match parse(typ, rec) {
                Ok(Some(r)) => {
                    match r {
                        Record::Sample(_) => stats.samples += 1,
                        Record::Lost(n) => stats.lost = stats.lost.saturating_add(n),
                    }
                    f(r);
                }
                Ok(None) => {}
                Err(()) => corrupt = Some(Corrupt { pos: tail.pos, size, avail }),
            }
            tail.pos = tail.pos.wrapping_add(size);
        }
        let more = corrupt.is_none() && tail.pos != head;
        if corrupt.is_some() {
            // Resynchronise: drop the rest.
            tail.pos = head;
        }
        ViewDrain { stats, more, corrupt }
    }
}

/// Test/fuzz support: drain a ring laid out in `mem` like a perf mapping of
/// `mem.len() * 8` bytes with pages of `page` bytes (metadata first:
/// `data_head`/`data_tail`/`data_offset`/`data_size` at bytes 1024/1032/1040/1048),
/// exactly as `PerfBuf::drain` drains one mapped ring (errors as for CPU 0).
/// The new `data_tail` is stored back into `mem`.
#[doc(hidden)]
pub fn drain_buffer(
    mem: &mut [u64],
    page: usize,
    f: &mut dyn FnMut(Record<'_>),
) -> Result<DrainStats, PerfError> {
    let len = mem.len() * 8;
    let (off, size) = (mem.get(DATA_OFFSET / 8).copied(), mem.get(DATA_SIZE / 8).copied());
    let (off, size) = (off.unwrap_or(0), size.unwrap_or(0));
    let (data_off, data_size) = data_layout(off, size, len, page).ok_or(PerfError::Layout {
        cpu: 0,
        data_offset: off,
        data_size: size,
    })?;
    let meta = mem.as_mut_ptr().cast::<u8>();
    // SAFETY: data_layout proved DATA_SIZE + 8 <= data_off and data_off + data_size <= len,
    // so the metadata words and the 2^n-byte data area lie apart inside `mem`
    // (8-aligned), which the exclusive borrow keeps alive for the whole drain.
    let view = unsafe { RingView::new(meta, meta.add(data_off), data_size) };
    let d = view.drain(&mut Vec::new(), usize::MAX, f);
    d.result(|c| PerfError::Corrupt { cpu: 0, pos: c.pos, size: c.size, avail: c.avail }).map(|d| d.stats)
}

/// Decode one whole record; `None` for types we skip.
fn parse(typ: u32, rec: &[u8]) -> Result<Option<Record<'_>>, ()> {
    match typ {
        PERF_RECORD_SAMPLE => {
            let n = rec.get(8..SAMPLE_BODY).ok_or(())?;
            let n = u32::from_ne_bytes(n.try_into().map_err(|_| ())?) as usize;
            let data = rec.get(SAMPLE_BODY..).and_then(|d| d.get(..n)).ok_or(())?;
            Ok(Some(Record::Sample(data)))
        }
        PERF_RECORD_LOST => {
            let n = rec.get(16..LOST_LEN).ok_or(())?;
            Ok(Some(Record::Lost(u64::from_ne_bytes(n.try_into().map_err(|_| ())?))))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
impl RingView {
    pub(crate) fn size(&self) -> u64 {
        self.mask + 1
    }
}
