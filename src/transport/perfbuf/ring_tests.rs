//! Ring logic on a heap buffer laid out like a real mapping: one metadata
//! page, then a small data area so records wrap.

use std::sync::atomic::{AtomicU64, Ordering};

use super::ring::{data_layout, RingView, PERF_RECORD_LOST, PERF_RECORD_SAMPLE};
use crate::transport::record::{Corrupt, DrainStats, Record};

const META: usize = 4096;

/// Kernel stand-in: writes records at data_head and publishes it.
struct Fake {
    base: *mut u64,
    words: usize,
    size: u64,
}

impl Drop for Fake {
    fn drop(&mut self) {
        // SAFETY: base/words came from Box::into_raw in `new`.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.base, self.words)) });
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Got {
    S(Vec<u8>),
    L(u64),
}

impl Fake {
    fn new(size: u64) -> Fake {
        let words = (META + size as usize) / 8;
        let base = Box::into_raw(vec![0u64; words].into_boxed_slice()) as *mut u64;
        Fake { base, words, size }
    }
    fn meta(&self) -> *mut u8 {
        self.base.cast()
    }
    fn view(&self) -> RingView {
        // SAFETY: the buffer is 8-aligned, META + size bytes, alive as long as self.
        unsafe { RingView::new(self.meta(), self.meta().add(META), self.size) }
    }
    fn word(&self, off: usize) -> &AtomicU64 {
        // SAFETY: in bounds and aligned.
        unsafe { AtomicU64::from_ptr(self.meta().add(off).cast()) }
    }
    fn head(&self) -> u64 {
        self.word(1024).load(Ordering::Relaxed)
    }
    fn tail(&self) -> u64 {
        self.word(1032).load(Ordering::Relaxed)
    }
    fn set_pos(&self, pos: u64) {
        self.word(1024).store(pos, Ordering::Relaxed);
        self.word(1032).store(pos, Ordering::Relaxed);
    }
    /// Write bytes at head (wrapping) and publish head + len.
    fn write(&self, bytes: &[u8]) {
        let head = self.head();
        let used = head.wrapping_sub(self.tail());
        assert!(used + bytes.len() as u64 <= self.size, "test writer overfills the ring");
        for (i, b) in bytes.iter().enumerate() {
            let idx = (head.wrapping_add(i as u64) & (self.size - 1)) as usize;
            // SAFETY: idx < size, inside the data area.
            unsafe { *self.meta().add(META + idx) = *b };
        }
        self.word(1024).store(head.wrapping_add(bytes.len() as u64), Ordering::Release);
    }
    fn record(&self, typ: u32, body: &[u8]) {
        let mut r = typ.to_ne_bytes().to_vec();
        r.extend_from_slice(&0u16.to_ne_bytes());
        r.extend_from_slice(&((8 + body.len()) as u16).to_ne_bytes());
        r.extend_from_slice(body);
        self.write(&r);
    }
    /// A sample as the kernel writes it: u32 size + data, padded to 8 bytes.
    /// Returns the bytes a reader should get (data + zero padding).
    fn sample(&self, data: &[u8]) -> Vec<u8> {
        let raw = (data.len() + 4).next_multiple_of(8) - 4;
        let mut padded = data.to_vec();
        padded.resize(raw, 0);
        let mut body = (raw as u32).to_ne_bytes().to_vec();
        body.extend_from_slice(&padded);
        self.record(PERF_RECORD_SAMPLE, &body);
        padded
    }
    fn lost(&self, n: u64) {
        let mut body = 77u64.to_ne_bytes().to_vec();
        body.extend_from_slice(&n.to_ne_bytes());
        self.record(PERF_RECORD_LOST, &body);
    }
    fn drain(&self, scratch: &mut Vec<u8>) -> (Vec<Got>, DrainStats, Option<Corrupt>) {
        let (got, st, c, more) = self.drain_some(scratch, usize::MAX);
        assert!(!more);
        (got, st, c)
    }
    fn drain_some(
        &self,
        scratch: &mut Vec<u8>,
        limit: usize,
    ) -> (Vec<Got>, DrainStats, Option<Corrupt>, bool) {
        let mut got = Vec::new();
        let d = self.view().drain(scratch, limit, &mut |r| {
            got.push(match r {
                Record::Sample(s) => Got::S(s.to_vec()),
                Record::Lost(n) => Got::L(n),
            })
        });
        (got, d.stats, d.corrupt, d.more)
    }
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| seed.wrapping_add(i as u8 * 3)).collect()
}

#[test]
fn one_sample_fits_in_place() {
    let f = Fake::new(128);
    let want = f.sample(&bytes(13, 1));
    assert_eq!(want.len(), 20);
    let mut scratch = Vec::new();
    let (got, st, c) = f.drain(&mut scratch);
    assert_eq!(got, [Got::S(want)]);
    assert_eq!(st, DrainStats { samples: 1, lost: 0 });
    assert_eq!(c, None);
    assert_eq!(f.tail(), 32);
    assert_eq!(f.tail(), f.head());
    assert!(scratch.is_empty(), "a contiguous record must not be copied");
}

#[test]
fn several_samples_one_drain_tail_equals_head() {
    let f = Fake::new(128);
    let w: Vec<_> = (0..4).map(|i| f.sample(&bytes(4 + i * 5, i as u8))).collect();
    assert_eq!(f.tail(), 0);
    let (got, st, c) = f.drain(&mut Vec::new());
    assert_eq!(got, w.into_iter().map(Got::S).collect::<Vec<_>>());
    assert_eq!((st.samples, c), (4, None));
    assert_eq!(f.tail(), f.head());
    // Nothing new: nothing delivered, tail unchanged.
    let (got, st, _) = f.drain(&mut Vec::new());
    assert!(got.is_empty());
    assert_eq!(st, DrainStats::default());
}

#[test]
fn body_wraps_across_end() {
    let f = Fake::new(64);
    f.set_pos(48);
    let data = bytes(20, 9);
    let want = f.sample(&data);
    // header 48..56, u32 size 56..60, data 60..64 then 0..16
    assert_eq!(want, data);
    let mut scratch = Vec::with_capacity(1 << 16);
    let cap = scratch.capacity();
    let (got, st, c) = f.drain(&mut scratch);
    assert_eq!(got, [Got::S(data.clone())]);
    assert_eq!((st.samples, c), (1, None));
    assert_eq!(f.tail(), 80);
    assert_eq!(scratch.len(), 32, "wrapped record is copied whole");
    // Repeated wraps reuse the scratch buffer.
    for round in 0..20u8 {
        let want = f.sample(&bytes(20 + (round as usize % 3), round));
        let (got, _, _) = f.drain(&mut scratch);
        assert_eq!(got, [Got::S(want)]);
    }
    assert_eq!(scratch.capacity(), cap);
}

#[test]
fn header_at_end_body_at_zero() {
    let f = Fake::new(64);
    f.set_pos(56);
    let want = f.sample(&bytes(12, 40));
    let (got, _, c) = f.drain(&mut Vec::new());
    assert_eq!(got, [Got::S(want)]);
    assert_eq!(c, None);
    assert_eq!(f.tail(), 80);
}

#[test]
fn lost_record() {
    let f = Fake::new(64);
    f.lost(12345);
    let (got, st, c) = f.drain(&mut Vec::new());
    assert_eq!(got, [Got::L(12345)]);
    assert_eq!(st, DrainStats { samples: 0, lost: 12345 });
    assert_eq!(c, None);
}

#[test]
fn mixed_types_skip_unknown() {
    let f = Fake::new(256);
    let a = f.sample(&bytes(3, 0));
    f.lost(2);
    f.record(3 /* PERF_RECORD_COMM-like */, &bytes(16, 5));
    let b = f.sample(&bytes(30, 7));
    f.lost(5);
    let (got, st, c) = f.drain(&mut Vec::new());
    assert_eq!(got, [Got::S(a), Got::L(2), Got::S(b), Got::L(7 - 2)]);
    assert_eq!(st, DrainStats { samples: 2, lost: 7 });
    assert_eq!(c, None);
    assert_eq!(f.tail(), f.head());
}

#[test]
fn positions_beyond_u32_and_near_u64_wrap() {
    for start in [(1u64 << 32) + 40, u64::MAX - 15, u64::MAX - 7, u64::MAX] {
        let f = Fake::new(64);
        f.set_pos(start);
        let mut want = Vec::new();
        let mut total = 0;
        for i in 0..6u8 {
            let s = f.sample(&bytes(10 + i as usize, i));
            total += 12 + s.len() as u64;
            want.push(Got::S(s));
            if i % 2 == 1 {
                let (got, _, c) = f.drain(&mut Vec::new());
                assert_eq!(c, None, "start {start:#x}");
                assert_eq!(got, std::mem::take(&mut want), "start {start:#x}");
                assert_eq!(f.tail(), f.head());
            }
        }
        assert_eq!(total, 3 * 24 + 3 * 32);
        assert_eq!(f.tail(), start.wrapping_add(total));
    }
}

#[test]
fn corrupt_size_zero_stops_and_resyncs() {
    let f = Fake::new(128);
    let a = f.sample(&bytes(5, 1));
    f.write(&[9, 0, 0, 0, 0, 0, 0, 0]); // SAMPLE with size 0
    f.sample(&bytes(5, 2));
    let (got, st, c) = f.drain(&mut Vec::new());
    assert_eq!(got, [Got::S(a)]);
    assert_eq!(st.samples, 1);
    assert_eq!(c, Some(Corrupt { pos: 24, size: 0, avail: 8 + 24 }));
    assert_eq!(f.tail(), f.head(), "resynchronised to head");
    // The ring works again afterwards.
    let b = f.sample(&bytes(6, 3));
    assert_eq!(f.drain(&mut Vec::new()).0, [Got::S(b)]);
}

#[test]
fn corrupt_headers_never_hang_or_overread() {
    let cases: &[(&str, Vec<u8>)] = &[
        ("size 4", [9u32.to_ne_bytes(), [0, 0, 4, 0]].concat()),
        ("size > available", [9u32.to_ne_bytes(), [0, 0, 200, 0]].concat()),
        ("max u16 size", [9u32.to_ne_bytes(), [0, 0, 0xff, 0xff]].concat()),
        ("partial header", vec![9, 0, 0, 0]),
        // A sample whose u32 size runs past its record.
        ("sample size", [9u32.to_ne_bytes(), [0, 0, 16, 0], 100u32.to_ne_bytes(), [0; 4]].concat()),
        ("short sample", [9u32.to_ne_bytes(), [0, 0, 8, 0]].concat()),
        ("short lost", [2u32.to_ne_bytes(), [0, 0, 16, 0], [0; 4], [0; 4]].concat()),
    ];
    for (name, rec) in cases {
        let f = Fake::new(64);
        f.set_pos(40);
        f.write(rec);
        let (got, st, c) = f.drain(&mut Vec::new());
        assert!(got.is_empty(), "{name}");
        assert_eq!(st, DrainStats::default(), "{name}");
        let c = c.unwrap_or_else(|| panic!("{name}: not reported"));
        assert_eq!(c.pos, 40, "{name}");
        assert_eq!(f.tail(), f.head(), "{name}");
    }
}

#[test]
fn head_more_than_a_ring_ahead_is_corrupt() {
    let f = Fake::new(64);
    f.word(1024).store(65, Ordering::Relaxed);
    let (got, _, c) = f.drain(&mut Vec::new());
    assert!(got.is_empty());
    assert_eq!(c, Some(Corrupt { pos: 0, size: 0, avail: 65 }));
    assert_eq!(f.tail(), 65);
}

#[test]
fn layout() {
    let page = 4096;
    // Old kernels leave data_offset/data_size at 0.
    assert_eq!(data_layout(0, 0, 5 * page, page), Some((page, 4 * page as u64)));
    assert_eq!(data_layout(4096, 16384, 5 * page, page), Some((page, 16384)));
    assert_eq!(data_layout(4096, 12288, 5 * page, page), None, "not 2^n");
    assert_eq!(data_layout(8192, 16384, 5 * page, page), None, "past the mapping");
    assert_eq!(data_layout(0, 16384, 5 * page, page), None, "overlaps the metadata");
    assert_eq!(data_layout(u64::MAX, 16384, 5 * page, page), None, "overflow");
    assert_eq!(data_layout(0, 0, page, page), None, "no data pages");
}

#[test]
fn limited_drain_leaves_the_rest() {
    let f = Fake::new(512);
    let sent: Vec<Vec<u8>> = (0..5u8).map(|i| f.sample(&bytes(16, i))).collect();
    f.lost(3);
    let mut scratch = Vec::new();
    let (got, st, c, more) = f.drain_some(&mut scratch, 2);
    assert_eq!((got.len(), st.samples, c, more), (2, 2, None, true));
    assert_eq!(got[1], Got::S(sent[1].clone()));
    let (got, _, _, more) = f.drain_some(&mut scratch, 3);
    assert_eq!((got.len(), more), (3, true));
    assert_eq!(got[2], Got::S(sent[4].clone()));
    let (got, st, _, more) = f.drain_some(&mut scratch, 3);
    assert_eq!((got, st.lost, more), (vec![Got::L(3)], 3, false));
    let (got, _, _, more) = f.drain_some(&mut scratch, 3);
    assert_eq!((got.len(), more), (0, false));
}
