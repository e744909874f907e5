//! What the tracer asks of its transport.

/// How to set up the transport (see `Transport::open`).
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Ring memory per CPU, in pages (see `tracer::Config::ring_pages`).
    pub ring_pages: usize,
    /// Bytes queued before the reader is woken; 0: an eighth of the ring.
    pub watermark: u32,
    /// The BPF ring buffer, where the kernel has one.
    pub ringbuf: bool,
    /// Perf rings even where slot rings can run.
    pub perf_rings: bool,
    /// Bytes of the event the programs write (a multiple of 8).
    pub event_size: usize,
}

impl Options {
    /// Queued bytes at which the reader is woken: `watermark`, or an
    /// eighth of the ring for 0; at most half the ring.
    pub(crate) fn watermark(&self, ring_bytes: usize) -> u32 {
        let half = (ring_bytes / 2).clamp(1, u32::MAX as usize) as u32;
        if self.watermark == 0 {
            (ring_bytes / 8).clamp(1, half as usize) as u32
        } else {
            self.watermark.min(half)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_is_woken_at_an_eighth_of_the_ring_unless_told() {
        let mut o =
            Options { ring_pages: 512, watermark: 0, ringbuf: false, perf_rings: false, event_size: 112 };
        assert_eq!(o.watermark(1 << 20), 1 << 17);
        assert_eq!(o.watermark(1), 1, "at least one byte");
        o.watermark = 4096;
        assert_eq!(o.watermark(1 << 20), 4096);
        o.watermark = u32::MAX;
        assert_eq!(o.watermark(1 << 20), 1 << 19);
    }
}
