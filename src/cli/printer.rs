//! Formats events (table rows or JSON lines) into one buffer, counts them,
//! and hands the buffer to the writer thread in chunks.

use super::exe::ExeCache;
use super::json;
use super::output::{self, Format};
use super::summary::{self, Summary};
use super::writer::Writer;
use std::time::Instant;
use tcptracer::tracer::event::{Event, Kind};
use tcptracer::tracer::lifetime::Lifetimes;

/// Output is queued in chunks of this size (and once per drain). A chunk's
/// buffer is above musl's mmap threshold (128 KiB less 20 bytes): freed, it
/// goes back to the kernel at once, so a backlog queued while the output
/// stalled leaves no resident memory behind (glibc: `io::trim`); the
/// writer keeps two written buffers for reuse.
const OUT_CHUNK: usize = 128 << 10;
const _: () = assert!(OUT_CHUNK + 512 > 131_052);

pub struct Printer {
    fmt: Format,
    json: bool,
    pub buf: Vec<u8>,
    /// Events in `buf`.
    pub buf_events: u64,
    pub out: Writer,
    /// Events dropped because the output queue was full.
    pub dropped: u64,
    first_ts: Option<u64>,
    realtime_offset: i64,
    exes: ExeCache,
    /// The time exe paths are resolved at (set once per drain).
    pub now: Instant,
    pub counts: json::Summary,
    /// `--summary`: events are counted per interval, not printed.
    pub summary: Option<Summary>,
    /// Connections' C/A stamps, for X's duration (`-L`, `--json`).
    pub lifetimes: Option<Lifetimes>,
}

impl Printer {
    pub fn new(fmt: Format, json: bool, out: Writer) -> Printer {
        Printer {
            fmt,
            json,
            buf: Vec::with_capacity(OUT_CHUNK + 512),
            buf_events: 0,
            out,
            dropped: 0,
            first_ts: None,
            realtime_offset: json::realtime_offset_ns(),
            exes: ExeCache::new(),
            now: Instant::now(),
            counts: json::Summary::default(),
            summary: None,
            lifetimes: (json || fmt.lifetime).then(Lifetimes::default),
        }
    }

    /// The banner, and the table's header: on stdout, or with JSON (stdout
    /// carries JSON only) the banner on stderr, so a person still sees that
    /// tracing began.
    pub fn banner(&mut self) {
        if self.json {
            tcptracer::tracer::io::say(output::BANNER);
        } else {
            self.buf.extend_from_slice(output::BANNER.as_bytes());
            self.buf.push(b'\n');
            match &self.summary {
                Some(s) => self.buf.extend_from_slice(summary::mode_line(s.seconds()).as_bytes()),
                None => {
                    self.buf.extend_from_slice(output::header(&self.fmt).trim_end_matches('\n').as_bytes())
                }
            }
            self.buf.push(b'\n');
            self.flush();
        }
    }

    pub fn event(&mut self, e: &Event) {
        let mut tracked;
        let e = match &mut self.lifetimes {
            Some(l) => {
                tracked = *e;
                l.track(&mut tracked);
                &tracked
            }
            None => e,
        };
        let c = &mut self.counts;
        c.events += 1;
        match e.kind {
            Some(Kind::Connect) => c.connect += 1,
            Some(Kind::Accept) => c.accept += 1,
            Some(Kind::Close) => c.close += 1,
            Some(Kind::Failed) => c.failed += 1,
            None => {}
        }
        if let Some(s) = &mut self.summary {
            s.record(e);
            return;
        }
        self.buf_events += 1;
        let exe = if self.json || self.fmt.exe { self.exes.get(e.pid, self.now) } else { None };
        if self.json {
            json::event(&mut self.buf, e, self.realtime_offset, exe);
        } else {
            let first = *self.first_ts.get_or_insert(e.ts_ns);
            output::row(&mut self.buf, &self.fmt, e, e.ts_ns.saturating_sub(first), exe);
        }
        if self.buf.len() >= OUT_CHUNK {
            self.flush();
        }
    }

    /// `--summary`: end the interval under way if it is due (or `last`, at
    /// exit, whatever it counted) and queue its table.
    pub fn end_interval(&mut self, now: Instant, last: bool) {
        let Some(s) = &mut self.summary else { return };
        if !last && !s.is_due(now) {
            return;
        }
        let unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        self.buf_events += s.end(&mut self.buf, self.json, now, unix_ns);
        self.flush();
    }

    /// Hand the buffer to the writer thread.
    pub fn flush(&mut self) {
        if !self.buf.is_empty() {
            let next = self.out.spare().unwrap_or_else(|| Vec::with_capacity(OUT_CHUNK + 512));
            let buf = std::mem::replace(&mut self.buf, next);
            self.dropped += self.out.send(buf, std::mem::take(&mut self.buf_events));
        }
    }
}
