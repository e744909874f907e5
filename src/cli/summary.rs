//! `--summary SECONDS`: instead of a line per event, a table per interval
//! of the events counted per (type, process, remote address, port),
//! busiest first, with the interval's losses; with `--json` one object per
//! interval. Counted in user space from the same events: exact.
//!
//! The port is the connection's service port: for C and F the remote port
//! (RPORT), for A the local port (LPORT: the port accepted on, not the
//! peer's ephemeral one). An X counts under its local port when an A on
//! that port was seen since the start, else under its remote port: the X
//! of an accepted connection joins its A's row, the X of a connect its C's.
//!
//! ```text
//! [14:02:11] 20 events in 1.000 s, 0 lost
//! T  PID    COMM             RADDR            LPORT  RPORT  COUNT
//! C  4242   curl             10.0.0.1         -      443    7
//! ```

use super::fmt::{push_ipv4, push_ipv6, push_u32, push_u64, rfc3339};
use super::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tcptracer::tracer::event::{Event, Kind};

/// Longest interval: one day.
pub const MAX_SECONDS: u64 = 86_400;

/// `--summary SECONDS`: whole seconds, 1 to a day.
pub fn parse_seconds(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_SECONDS).contains(&n) => Ok(n),
        _ => Err(format!("invalid interval {s:?}: give whole seconds, 1 to {MAX_SECONDS}")),
    }
}

/// What a row counts. Field order is the tie-break order after the count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// `Kind as u8`, 255 for an unknown kind.
    pub kind: u8,
    pub pid: u32,
    /// NUL-padded.
    pub comm: [u8; 16],
    pub ip: u8,
    /// IPv4 in the first 4 bytes, the rest zero.
    pub raddr: [u8; 16],
    /// The port is the local one (LPORT), else the remote one (RPORT).
    pub local: bool,
    pub port: u16,
}

/// The counts of the interval under way.
pub struct Summary {
    every: Duration,
    /// When the interval under way began, and when it ends.
    start: Instant,
    due: Instant,
    counts: HashMap<Key, u64>,
    pub events: u64,
    /// Events lost in this interval (rings, kernel, output queue).
    pub lost: u64,
    /// Program runs the kernel skipped in this interval.
    pub skipped: u64,
    /// Local ports an A was seen on, a bit each.
    accept_ports: Box<[u64; 1024]>,
    /// Sorted rows, kept for reuse.
    rows: Vec<(Key, u64)>,
}

impl Summary {
    pub fn new(seconds: u64, now: Instant) -> Summary {
        let every = Duration::from_secs(seconds);
        Summary {
            every,
            start: now,
            due: now + every,
            counts: HashMap::new(),
            events: 0,
            lost: 0,
            skipped: 0,
            accept_ports: Box::new([0; 1024]),
            rows: Vec::new(),
        }
    }

    pub fn seconds(&self) -> u64 {
        self.every.as_secs()
    }

    /// Count one event.
    pub fn record(&mut self, e: &Event) {
        self.events += 1;
        let bit = |p: u16| (p as usize >> 6, 1u64 << (p & 63));
        let local = match e.kind {
            Some(Kind::Accept) => {
                let (i, b) = bit(e.sport);
                self.accept_ports[i] |= b;
                true
            }
            Some(Kind::Close) => {
                let (i, b) = bit(e.sport);
                self.accept_ports[i] & b != 0
            }
            _ => false,
        };
        let mut raddr = e.daddr;
        if e.ip == 4 {
            raddr[4..].fill(0);
        }
        let key = Key {
            kind: e.kind.map_or(255, |k| k as u8),
            pid: e.pid,
            comm: e.comm,
            ip: e.ip,
            raddr,
            local,
            port: if local { e.sport } else { e.dport },
        };
        *self.counts.entry(key).or_insert(0) += 1;
    }

    /// Milliseconds until the interval ends (at least 1).
    pub fn ms_left(&self, now: Instant) -> i32 {
        let left = self.due.saturating_duration_since(now).as_nanos().div_ceil(1_000_000);
        left.clamp(1, i32::MAX as u128) as i32
    }

    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.due
    }

    /// End the interval at `now`: append its table (or JSON object) to
    /// `out`, start the next one. Returns the events it counted.
    /// `unix_ns`: the wall-clock time now.
    pub fn end(&mut self, out: &mut Vec<u8>, as_json: bool, now: Instant, unix_ns: i64) -> u64 {
        self.rows.clear();
        self.rows.extend(self.counts.drain());
        self.rows.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let head = Head {
            unix_ns,
            seconds: now.saturating_duration_since(self.start).as_secs_f64(),
            events: self.events,
            lost: self.lost,
            skipped: self.skipped,
        };
        if as_json {
            json_object(out, &head, &self.rows);
        } else {
            table(out, &head, local_hms(unix_ns), &self.rows);
        }
        let events = self.events;
        (self.events, self.lost, self.skipped) = (0, 0, 0);
        self.start = now;
        // The next boundary on the schedule (no drift), skipping any missed.
        while self.due <= now {
            self.due += self.every;
        }
        events
    }
}

/// An interval's header.
pub struct Head {
    pub unix_ns: i64,
    /// Its measured length.
    pub seconds: f64,
    pub events: u64,
    pub lost: u64,
    pub skipped: u64,
}

/// The line after the banner.
pub fn mode_line(seconds: u64) -> String {
    format!("Counting events per type, process, remote address and port: a table every {seconds} s, busiest first.")
}

pub const HEADER: &str = "T  PID    COMM             RADDR            LPORT  RPORT  COUNT";

/// Local time of day `unix_ns`, as (hours, minutes, seconds).
fn local_hms(unix_ns: i64) -> (u32, u32, u32) {
    let t = (unix_ns / 1_000_000_000) as libc::time_t;
    // SAFETY: an all-zero tm is valid; localtime_r writes it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to a time_t and a tm.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        let s = unix_ns.max(0) / 1_000_000_000 % 86_400;
        return ((s / 3600) as u32, (s / 60 % 60) as u32, (s % 60) as u32);
    }
    (tm.tm_hour as u32, tm.tm_min as u32, tm.tm_sec as u32)
}

fn pad_to(out: &mut Vec<u8>, start: usize, width: usize) {
    let n = out.len() - start;
    if n < width {
        out.resize(out.len() + width - n, b' ');
    }
}

fn two(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

fn addr(out: &mut Vec<u8>, k: &Key) {
    if k.ip == 4 {
        push_ipv4(out, &k.raddr[..4]);
    } else {
        push_ipv6(out, &k.raddr);
    }
}

fn kind_of(k: &Key) -> Option<Kind> {
    Kind::from_u8(k.kind)
}

/// The text table of one interval, with a blank line after it.
pub fn table(out: &mut Vec<u8>, h: &Head, (hh, mm, ss): (u32, u32, u32), rows: &[(Key, u64)]) {
    use std::io::Write;
    out.push(b'[');
    two(out, hh);
    out.push(b':');
    two(out, mm);
    out.push(b':');
    two(out, ss);
    let _ = write!(out, "] {} events in {:.3} s, {} lost", h.events, h.seconds, h.lost);
    if h.skipped > 0 {
        let _ = write!(out, ", {} probe runs skipped by the kernel", h.skipped);
    }
    out.push(b'\n');
    out.extend_from_slice(HEADER.as_bytes());
    out.push(b'\n');
    for (k, n) in rows {
        out.push(match kind_of(k) {
            Some(Kind::Connect) => b'C',
            Some(Kind::Accept) => b'A',
            Some(Kind::Close) => b'X',
            Some(Kind::Failed) => b'F',
            None => b'U',
        });
        out.extend_from_slice(b"  ");
        let start = out.len();
        push_u32(out, k.pid);
        pad_to(out, start, 6);
        out.push(b' ');
        let start = out.len();
        let comm = &k.comm[..k.comm.iter().position(|&c| c == 0).unwrap_or(16)];
        out.extend_from_slice(comm);
        let chars = comm.iter().filter(|&&b| b & 0xc0 != 0x80).count();
        pad_to(out, start, 16 + comm.len() - chars);
        out.push(b' ');
        let start = out.len();
        if k.ip == 4 {
            addr(out, k);
        } else {
            out.push(b'[');
            addr(out, k);
            out.push(b']');
        }
        pad_to(out, start, 16);
        out.push(b' ');
        for local in [true, false] {
            let start = out.len();
            if k.local == local {
                push_u32(out, k.port as u32);
            } else {
                out.push(b'-');
            }
            pad_to(out, start, 6);
            out.push(b' ');
        }
        push_u64(out, *n);
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// The JSON object of one interval, on one line.
pub fn json_object(out: &mut Vec<u8>, h: &Head, rows: &[(Key, u64)]) {
    use std::io::Write;
    out.extend_from_slice(b"{\"type\":\"interval\",\"time\":\"");
    rfc3339(out, h.unix_ns);
    let _ = write!(
        out,
        "\",\"interval_s\":{:.3},\"events\":{},\"lost\":{},\"skipped\":{},\"rows\":[",
        h.seconds, h.events, h.lost, h.skipped
    );
    for (i, (k, n)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind_of(k).map_or("unknown", Kind::name).as_bytes());
        out.extend_from_slice(b"\",\"pid\":");
        push_u32(out, k.pid);
        out.extend_from_slice(b",\"comm\":");
        json::string(out, &k.comm[..k.comm.iter().position(|&c| c == 0).unwrap_or(16)]);
        out.extend_from_slice(b",\"ip\":");
        push_u32(out, k.ip as u32);
        out.extend_from_slice(b",\"raddr\":\"");
        addr(out, k);
        out.extend_from_slice(b"\",\"lport\":");
        for local in [true, false] {
            if k.local == local {
                push_u32(out, k.port as u32);
            } else {
                out.extend_from_slice(b"null");
            }
            if local {
                out.extend_from_slice(b",\"rport\":");
            }
        }
        out.extend_from_slice(b",\"count\":");
        push_u64(out, *n);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn ev(kind: Kind, pid: u32, comm: &[u8], ip: u8, d: &[u8], sport: u16, dport: u16) -> Event {
        let mut c = [0u8; 16];
        c[..comm.len()].copy_from_slice(comm);
        let mut daddr = [0u8; 16];
        daddr[..d.len()].copy_from_slice(d);
        let mut saddr = [0u8; 16];
        saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        Event {
            ts_ns: 0,
            pid,
            tid: pid,
            uid: 0,
            gid: 0,
            cgroup: 0,
            comm: c,
            kind: Some(kind),
            ip,
            sport,
            dport,
            error: 0,
            netns: 1,
            saddr,
            daddr,
            sock: 0,
            bytes_sent: 0,
            bytes_received: 0,
            duration_ns: None,
        }
    }

    const L: &[u8] = &[127, 0, 0, 1];

    /// A workload: 3 connects to :80 of 10.0.0.1 (and their closes), one
    /// server accepting 2 on :8080 from 127.0.0.1 (and its closes), an
    /// IPv6 connect, a failed connect, a close of unknown owner.
    fn workload(s: &mut Summary) {
        for i in 0..3 {
            s.record(&ev(Kind::Connect, 100, b"curl", 4, &[10, 0, 0, 1], 40000 + i, 80));
        }
        for i in 0..2 {
            s.record(&ev(Kind::Accept, 200, b"nginx", 4, L, 8080, 50000 + i));
        }
        for i in 0..3 {
            s.record(&ev(Kind::Close, 100, b"curl", 4, &[10, 0, 0, 1], 40000 + i, 80));
        }
        for i in 0..2 {
            s.record(&ev(Kind::Close, 200, b"nginx", 4, L, 8080, 50000 + i));
        }
        let mut v6 = [0u8; 16];
        v6[..2].copy_from_slice(&[0x20, 0x01]);
        v6[15] = 1;
        s.record(&ev(Kind::Connect, 100, b"curl", 6, &v6, 40100, 443));
        s.record(&ev(Kind::Failed, 7, "zürich".as_bytes(), 4, &[10, 0, 0, 2], 40200, 22));
        // Owner unknown, and garbage past the IPv4 address is not part of the key.
        let mut x = ev(Kind::Close, 0, b"", 4, &[10, 0, 0, 3, 9, 9], 40300, 5432);
        s.record(&x);
        x.daddr[5] = 0;
        s.record(&x);
    }

    #[test]
    fn table_golden_bytes_busiest_first() {
        let t0 = Instant::now();
        let mut s = Summary::new(1, t0);
        workload(&mut s);
        s.lost = 5;
        let mut out = Vec::new();
        let head = Head { unix_ns: 0, seconds: 1.0004, events: s.events, lost: s.lost, skipped: 0 };
        s.rows = s.counts.drain().collect();
        s.rows.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        table(&mut out, &head, (9, 5, 7), &s.rows);
        let want = "\
[09:05:07] 14 events in 1.000 s, 5 lost
T  PID    COMM             RADDR            LPORT  RPORT  COUNT
C  100    curl             10.0.0.1         -      80     3
X  100    curl             10.0.0.1         -      80     3
A  200    nginx            127.0.0.1        8080   -      2
X  0                       10.0.0.3         -      5432   2
X  200    nginx            127.0.0.1        8080   -      2
C  100    curl             [2001::1]        -      443    1
F  7      zürich           10.0.0.2         -      22     1

";
        assert_eq!(String::from_utf8(out).unwrap(), want);
        let mut out = Vec::new();
        table(&mut out, &Head { skipped: 3, events: 0, lost: 0, ..head }, (23, 59, 0), &[]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "[23:59:00] 0 events in 1.000 s, 0 lost, 3 probe runs skipped by the kernel\n{HEADER}\n\n"
            )
        );
    }

    #[test]
    fn end_resets_and_keeps_the_schedule() {
        let t0 = Instant::now();
        let mut s = Summary::new(2, t0);
        workload(&mut s);
        s.lost = 1;
        assert!(!s.is_due(t0 + Duration::from_millis(1999)));
        assert_eq!(s.ms_left(t0 + Duration::from_micros(1_998_500)), 2);
        assert!(s.is_due(t0 + Duration::from_secs(2)));
        let mut out = Vec::new();
        let end = t0 + Duration::from_millis(2050);
        assert_eq!(s.end(&mut out, true, end, 1_795_756_467_123_456_789), 14);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["events"], json!(14));
        assert_eq!(v["lost"], json!(1));
        assert_eq!(v["interval_s"], json!(2.05));
        assert_eq!(v["rows"].as_array().unwrap().len(), 7);
        // Next boundary: t0 + 4 s, not end + 2 s.
        assert_eq!(s.ms_left(end), 1950);
        out.clear();
        // Nothing counted: an empty interval, losses reset.
        assert_eq!(s.end(&mut out, false, t0 + Duration::from_millis(9100), 0), 0);
        assert!(String::from_utf8_lossy(&out).contains("] 0 events in 7.050 s, 0 lost\n"));
        assert_eq!(s.ms_left(t0 + Duration::from_millis(9100)), 900);
    }

    #[test]
    fn json_golden_bytes() {
        let mut s = Summary::new(1, Instant::now());
        workload(&mut s);
        let mut out = Vec::new();
        let now = Instant::now();
        s.skipped = 2;
        s.end(&mut out, true, now, 1_795_756_467_123_456_789);
        let text = String::from_utf8(out).unwrap();
        let (head, rest) = text.split_once(",\"events\"").unwrap();
        assert!(head.starts_with(
            "{\"type\":\"interval\",\"time\":\"2026-11-27T05:14:27.123456789Z\",\"interval_s\":0.0"
        ));
        assert_eq!(
            rest,
            ":14,\"lost\":0,\"skipped\":2,\"rows\":[\
             {\"type\":\"connect\",\"pid\":100,\"comm\":\"curl\",\"ip\":4,\"raddr\":\"10.0.0.1\",\"lport\":null,\"rport\":80,\"count\":3},\
             {\"type\":\"close\",\"pid\":100,\"comm\":\"curl\",\"ip\":4,\"raddr\":\"10.0.0.1\",\"lport\":null,\"rport\":80,\"count\":3},\
             {\"type\":\"accept\",\"pid\":200,\"comm\":\"nginx\",\"ip\":4,\"raddr\":\"127.0.0.1\",\"lport\":8080,\"rport\":null,\"count\":2},\
             {\"type\":\"close\",\"pid\":0,\"comm\":\"\",\"ip\":4,\"raddr\":\"10.0.0.3\",\"lport\":null,\"rport\":5432,\"count\":2},\
             {\"type\":\"close\",\"pid\":200,\"comm\":\"nginx\",\"ip\":4,\"raddr\":\"127.0.0.1\",\"lport\":8080,\"rport\":null,\"count\":2},\
             {\"type\":\"connect\",\"pid\":100,\"comm\":\"curl\",\"ip\":6,\"raddr\":\"2001::1\",\"lport\":null,\"rport\":443,\"count\":1},\
             {\"type\":\"failed\",\"pid\":7,\"comm\":\"zürich\",\"ip\":4,\"raddr\":\"10.0.0.2\",\"lport\":null,\"rport\":22,\"count\":1}]}\n"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["rows"][2]["lport"], json!(8080));
        let mut out = Vec::new();
        s.end(&mut out, true, now, 0);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["events"].clone(), v["skipped"].clone(), v["rows"].clone()),
            (json!(0), json!(0), json!([]))
        );
    }

    #[test]
    fn the_map_is_reused_not_regrown() {
        let mut s = Summary::new(1, Instant::now());
        for i in 0..1000u16 {
            s.record(&ev(Kind::Connect, 1, b"c", 4, &[10, 0, (i >> 8) as u8, i as u8], 1, 80));
        }
        let cap = s.counts.capacity();
        s.end(&mut Vec::new(), false, Instant::now(), 0);
        assert_eq!(s.counts.len(), 0);
        assert_eq!(s.counts.capacity(), cap);
    }

    #[test]
    fn seconds_are_checked() {
        assert_eq!(parse_seconds("1"), Ok(1));
        assert_eq!(parse_seconds("86400"), Ok(86400));
        for bad in ["0", "-1", "x", "", "1.5", "86401", "99999999999999999999999"] {
            let e = parse_seconds(bad).unwrap_err();
            assert!(e.starts_with("invalid interval"), "{bad}: {e}");
        }
    }
}
