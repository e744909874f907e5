//! `--json` output: one object per line, keys in the order of the spec,
//! formatted by hand into one buffer (no `fmt` machinery on the per-event
//! path).
//!
//! ```text
//! {"type":"connect","time":"2026-11-27T05:14:27.123456789Z","mono_ns":123456789,"pid":1234,
//!  "tid":1235,"comm":"curl","exe":"/usr/bin/curl","uid":1000,"gid":1000,"ip":4,
//!  "saddr":"127.0.0.1","daddr":"10.0.0.1","sport":55758,"dport":80,"netns":4026531840,"cgroup":1234}
//! ```
//! Failed connects add `"error":"ECONNREFUSED","errno":111` after `cgroup`
//! (`"error":null,"errno":0` when the task closed the socket first).
//! Closes add `"duration_ns":N,"bytes_sent":N,"bytes_received":N` after
//! `cgroup` (`duration_ns` null when the tracer did not see the C or A).

use super::fmt::{errno_name, push_ipv4, push_ipv6, push_u32, push_u64, rfc3339};
use tcptracer::tracer::event::{Event, Kind, UNKNOWN_ID};

/// Append `s` as a JSON string with its quotes. Valid UTF-8 passes
/// through; each invalid sequence becomes U+FFFD (as
/// `String::from_utf8_lossy` does).
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        for &b in chunk.valid().as_bytes() {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0..=0x1f | 0x7f => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 0xf) as usize]);
                }
                _ => out.push(b),
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    out.push(b'"');
}

/// Append `,"name":`.
fn key(out: &mut Vec<u8>, name: &[u8]) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name);
    out.extend_from_slice(b"\":");
}

/// A uid/gid, `null` when unknown.
fn id(out: &mut Vec<u8>, v: u32) {
    if v == UNKNOWN_ID {
        out.extend_from_slice(b"null");
    } else {
        push_u32(out, v);
    }
}

fn addr(out: &mut Vec<u8>, ip: u8, a: &[u8; 16]) {
    out.push(b'"');
    if ip == 4 {
        push_ipv4(out, &a[..4]);
    } else {
        push_ipv6(out, a);
    }
    out.push(b'"');
}

/// Append one event's line (with newline). `realtime_offset_ns` turns the
/// monotonic timestamp into wall-clock time (see [`realtime_offset_ns`]);
/// `exe` is the resolved executable, `null` when `None`.
pub fn event(out: &mut Vec<u8>, e: &Event, realtime_offset_ns: i64, exe: Option<&[u8]>) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(e.kind.map_or("unknown", Kind::name).as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    let mono = e.ts_ns.min(i64::MAX as u64) as i64;
    rfc3339(out, mono.saturating_add(realtime_offset_ns));
    out.push(b'"');
    key(out, b"mono_ns");
    push_u64(out, e.ts_ns);
    key(out, b"pid");
    push_u32(out, e.pid);
    key(out, b"tid");
    push_u32(out, e.tid);
    key(out, b"comm");
    string(out, e.comm());
    key(out, b"exe");
    match exe {
        Some(p) => string(out, p),
        None => out.extend_from_slice(b"null"),
    }
    key(out, b"uid");
    id(out, e.uid);
    key(out, b"gid");
    id(out, e.gid);
    key(out, b"ip");
    push_u32(out, e.ip as u32);
    key(out, b"saddr");
    addr(out, e.ip, &e.saddr);
    key(out, b"daddr");
    addr(out, e.ip, &e.daddr);
    key(out, b"sport");
    push_u32(out, e.sport as u32);
    key(out, b"dport");
    push_u32(out, e.dport as u32);
    key(out, b"netns");
    push_u32(out, e.netns);
    key(out, b"cgroup");
    push_u64(out, e.cgroup);
    if e.kind == Some(Kind::Failed) {
        // errno 0: the connecting task closed the socket first (no error).
        key(out, b"error");
        match errno_name(e.error) {
            _ if e.error == 0 => out.extend_from_slice(b"null"),
            Some(n) => string(out, n.as_bytes()),
            None => {
                out.push(b'"');
                push_u32(out, e.error as u32);
                out.push(b'"');
            }
        }
        key(out, b"errno");
        push_u32(out, e.error as u32);
    }
    if e.kind == Some(Kind::Close) {
        key(out, b"duration_ns");
        match e.duration_ns {
            Some(ns) => push_u64(out, ns),
            None => out.extend_from_slice(b"null"),
        }
        key(out, b"bytes_sent");
        push_u64(out, e.bytes_sent);
        key(out, b"bytes_received");
        push_u64(out, e.bytes_received);
    }
    out.extend_from_slice(b"}\n");
}

/// Counts for the final `summary` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    pub connect: u64,
    pub accept: u64,
    pub close: u64,
    pub failed: u64,
    /// Lost in the perf rings (lost records).
    pub lost_perf: u64,
    /// Lost in the kernel ([`KernelLosses::total`](tcptracer::tracer::KernelLosses::total)).
    pub lost_kernel: u64,
    /// Dropped because the output queue was full (stdout too slow).
    pub lost_queue: u64,
    /// Program runs the kernel skipped ([`KernelLosses::skipped`](tcptracer::tracer::KernelLosses::skipped)).
    pub skipped: u64,
    /// Outputs reserved or stamped and never committed, at exit.
    pub uncommitted: u64,
    /// Events handed out after a newer one.
    pub late: u64,
}

/// Append the `summary` line (with newline); `unix_ns` is the wall-clock time.
pub fn summary(out: &mut Vec<u8>, s: &Summary, unix_ns: i64) {
    out.extend_from_slice(b"{\"type\":\"summary\",\"time\":\"");
    rfc3339(out, unix_ns);
    out.push(b'"');
    for (name, v) in [
        (&b"events"[..], s.events),
        (b"connect", s.connect),
        (b"accept", s.accept),
        (b"close", s.close),
        (b"failed", s.failed),
        (b"lost", s.lost_perf.saturating_add(s.lost_kernel).saturating_add(s.lost_queue)),
        (b"lost_perf", s.lost_perf),
        (b"lost_kernel", s.lost_kernel),
        (b"lost_queue", s.lost_queue),
        (b"skipped", s.skipped),
        (b"uncommitted", s.uncommitted),
        (b"late", s.late),
    ] {
        key(out, name);
        push_u64(out, v);
    }
    out.extend_from_slice(b"}\n");
}

/// `clock`'s time in ns (CLOCK_MONOTONIC is what the events' stamps use).
#[allow(clippy::unnecessary_cast)] // time_t and c_long are i32 on some targets
fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64
}

/// CLOCK_REALTIME − CLOCK_MONOTONIC in ns: add it to a monotonic timestamp
/// to get Unix time. Of 3 tries, the one with the tightest bracket wins.
pub fn realtime_offset_ns() -> i64 {
    let mut best = (i64::MAX, 0);
    for _ in 0..3 {
        let m0 = clock_ns(libc::CLOCK_MONOTONIC);
        let real = clock_ns(libc::CLOCK_REALTIME);
        let m1 = clock_ns(libc::CLOCK_MONOTONIC);
        let gap = m1 - m0;
        if gap < best.0 {
            best = (gap, real - (m0 + gap / 2));
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn js(s: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        string(&mut v, s);
        v
    }

    #[test]
    fn string_escapes() {
        for (input, want) in [
            (&b""[..], r#""""#),
            (b"curl", r#""curl""#),
            (b"a\"b\\c/d", r#""a\"b\\c/d""#),
            (b"\n\r\t", r#""\n\r\t""#),
            (b"\x00\x01\x08\x0c\x1f\x20\x7f", r#""\u0000\u0001\u0008\u000c\u001f \u007f""#),
            ("zürich ☃ 🦀".as_bytes(), r#""zürich ☃ 🦀""#),
            ("\u{80}\u{2028}".as_bytes(), "\"\u{80}\u{2028}\""),
            (b"a\xffb", "\"a\u{fffd}b\""),
            (b"\xe2\x82", "\"\u{fffd}\""),         // truncated sequence: one
            (b"\xc0\xaf", "\"\u{fffd}\u{fffd}\""), // overlong: each byte
            (b"\xed\xa0\x80", "\"\u{fffd}\u{fffd}\u{fffd}\""), // surrogate
            (b"thread-\xe2\x98", "\"thread-\u{fffd}\""), // comm cut mid-character
        ] {
            assert_eq!(String::from_utf8(js(input)).unwrap(), want, "{input:?}");
        }
    }

    #[test]
    fn string_parses_back_as_lossy_utf8() {
        let mut inputs: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        for a in [0x00, 0x22, 0x5c, 0x7f, 0x80, 0xc3, 0xe2, 0xf0, 0xff] {
            for b in 0..=255u8 {
                inputs.push(vec![a, b, b'x']);
            }
        }
        inputs.push(b"\xf0\x9f\xa6\x80\xf0\x9f\xa6".to_vec());
        for s in inputs {
            let out = js(&s);
            let v: Value = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert_eq!(v, Value::String(String::from_utf8_lossy(&s).into_owned()), "{s:?}");
        }
    }

    fn ev(kind: Option<Kind>, ip: u8) -> Event {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"curl");
        let (mut saddr, mut daddr) = ([0u8; 16], [0u8; 16]);
        saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        daddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        Event {
            ts_ns: 123456789,
            pid: 1234,
            tid: 1235,
            uid: 1000,
            gid: 1000,
            cgroup: 1234,
            comm,
            kind,
            ip,
            sport: 55758,
            dport: 80,
            error: 0,
            netns: 4026531840,
            saddr,
            daddr,
            sock: 0,
            bytes_sent: 0,
            bytes_received: 0,
            duration_ns: None,
        }
    }

    /// 2026-11-27T05:14:27.123456789Z at mono 123456789.
    const OFFSET: i64 = 1_795_756_467_000_000_000;

    /// The line, checked to be one JSON object equal to `want`.
    fn line(e: &Event, offset: i64, exe: Option<&[u8]>, want: Value) -> String {
        let mut out = b"previous\n".to_vec();
        event(&mut out, e, offset, exe);
        let s = String::from_utf8(out).unwrap().strip_prefix("previous\n").unwrap().to_string();
        assert!(s.ends_with("}\n") && s.matches('\n').count() == 1, "{s}");
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), want, "{s}");
        s
    }

    #[test]
    fn event_connect_matches_spec_example() {
        let e = ev(Some(Kind::Connect), 4);
        let want = json!({"type":"connect","time":"2026-11-27T05:14:27.123456789Z","mono_ns":123456789,
            "pid":1234,"tid":1235,"comm":"curl","exe":"/usr/bin/curl","uid":1000,"gid":1000,"ip":4,
            "saddr":"127.0.0.1","daddr":"10.0.0.1","sport":55758,"dport":80,"netns":4026531840u32,"cgroup":1234});
        assert_eq!(
            line(&e, OFFSET, Some(b"/usr/bin/curl"), want),
            "{\"type\":\"connect\",\"time\":\"2026-11-27T05:14:27.123456789Z\",\"mono_ns\":123456789,\
             \"pid\":1234,\"tid\":1235,\"comm\":\"curl\",\"exe\":\"/usr/bin/curl\",\"uid\":1000,\"gid\":1000,\
             \"ip\":4,\"saddr\":\"127.0.0.1\",\"daddr\":\"10.0.0.1\",\"sport\":55758,\"dport\":80,\
             \"netns\":4026531840,\"cgroup\":1234}\n"
        );
    }

    #[test]
    fn event_failed_ipv6() {
        let mut e = ev(Some(Kind::Failed), 6);
        e.saddr = "::ffff:127.0.0.1".parse::<std::net::Ipv6Addr>().unwrap().octets();
        e.daddr = "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
        e.error = libc::ECONNREFUSED as u16;
        let want = json!({"type":"failed","time":"2026-11-27T05:14:27.123456789Z","mono_ns":123456789,
            "pid":1234,"tid":1235,"comm":"curl","exe":null,"uid":1000,"gid":1000,"ip":6,
            "saddr":"::ffff:127.0.0.1","daddr":"2001:db8::1","sport":55758,"dport":80,"netns":4026531840u32,
            "cgroup":1234,"error":"ECONNREFUSED","errno":libc::ECONNREFUSED});
        let s = line(&e, OFFSET, None, want);
        assert!(s.ends_with(",\"cgroup\":1234,\"error\":\"ECONNREFUSED\",\"errno\":111}\n"), "{s}");
        assert!(s.contains("\"exe\":null,"));

        e.error = 999;
        let s = line(&e, OFFSET, None, {
            let mut v = serde_json::from_str::<Value>(&s).unwrap();
            v["error"] = json!("999");
            v["errno"] = json!(999);
            v
        });
        assert!(s.ends_with(",\"error\":\"999\",\"errno\":999}\n"), "{s}");

        // Abandoned by the task itself: no error.
        e.error = 0;
        let s = line(&e, OFFSET, None, {
            let mut v = serde_json::from_str::<Value>(&s).unwrap();
            v["error"] = Value::Null;
            v["errno"] = json!(0);
            v
        });
        assert!(s.ends_with(",\"error\":null,\"errno\":0}\n"), "{s}");
    }

    #[test]
    fn event_close_carries_its_lifetime() {
        let mut e = ev(Some(Kind::Close), 4);
        (e.duration_ns, e.bytes_sent, e.bytes_received) = (Some(300_000_123), 1 << 20, 3 << 20);
        let want = json!({"type":"close","time":"2026-11-27T05:14:27.123456789Z","mono_ns":123456789,
            "pid":1234,"tid":1235,"comm":"curl","exe":null,"uid":1000,"gid":1000,"ip":4,
            "saddr":"127.0.0.1","daddr":"10.0.0.1","sport":55758,"dport":80,"netns":4026531840u32,"cgroup":1234,
            "duration_ns":300_000_123,"bytes_sent":1048576,"bytes_received":3145728});
        let s = line(&e, OFFSET, None, want);
        assert!(
            s.ends_with(",\"cgroup\":1234,\"duration_ns\":300000123,\"bytes_sent\":1048576,\"bytes_received\":3145728}\n"),
            "{s}"
        );
        e.duration_ns = None;
        let s = line(&e, OFFSET, None, {
            let mut v = serde_json::from_str::<Value>(&s).unwrap();
            v["duration_ns"] = Value::Null;
            v
        });
        assert!(s.contains(",\"duration_ns\":null,"), "{s}");
        // Other kinds carry none (the bytes are X-only).
        for k in [Kind::Connect, Kind::Accept, Kind::Failed] {
            let mut out = Vec::new();
            event(&mut out, &Event { kind: Some(k), ..e }, OFFSET, None);
            assert!(!String::from_utf8(out).unwrap().contains("bytes"), "{k:?}");
        }
    }

    #[test]
    fn event_unknown_owner_and_kind() {
        let mut e = ev(Some(Kind::Close), 4);
        (e.pid, e.tid, e.uid, e.gid, e.cgroup, e.comm) = (0, 0, UNKNOWN_ID, UNKNOWN_ID, 0, [0; 16]);
        let want = json!({"type":"close","time":"2026-11-27T05:14:27.123456789Z","mono_ns":123456789,
            "pid":0,"tid":0,"comm":"","exe":null,"uid":null,"gid":null,"ip":4,
            "saddr":"127.0.0.1","daddr":"10.0.0.1","sport":55758,"dport":80,"netns":4026531840u32,"cgroup":0,
            "duration_ns":null,"bytes_sent":0,"bytes_received":0});
        let s = line(&e, OFFSET, None, want);
        assert!(s.contains(",\"comm\":\"\",\"exe\":null,\"uid\":null,\"gid\":null,\"ip\":4,"), "{s}");

        e.kind = None;
        let s = line(&e, OFFSET, None, {
            let mut v = serde_json::from_str::<Value>(&s).unwrap();
            v["type"] = json!("unknown");
            for k in ["duration_ns", "bytes_sent", "bytes_received"] {
                v.as_object_mut().unwrap().remove(k);
            }
            v
        });
        assert!(s.starts_with("{\"type\":\"unknown\",\"time\":"), "{s}");
    }

    #[test]
    fn event_odd_strings_and_extremes() {
        let mut e = ev(Some(Kind::Accept), 6);
        e.comm = *b"a\"b\\c\td\xe2\x98\x83e\xff!!\xe2\x98";
        (e.pid, e.tid, e.uid, e.gid) = (u32::MAX, u32::MAX, 0, u32::MAX - 1);
        (e.ts_ns, e.cgroup, e.sport, e.dport, e.netns) = (u64::MAX, u64::MAX, 0, 65535, u32::MAX);
        (e.saddr, e.daddr) = ([0; 16], [0xff; 16]);
        let exe = b"/tmp/x\n\xff (deleted)";
        let want = json!({"type":"accept","time":"2262-04-11T23:47:16.854775807Z","mono_ns":u64::MAX,
            "pid":u32::MAX,"tid":u32::MAX,"comm":"a\"b\\c\td\u{2603}e\u{fffd}!!\u{fffd}",
            "exe":"/tmp/x\n\u{fffd} (deleted)","uid":0,"gid":u32::MAX - 1,"ip":6,"saddr":"::",
            "daddr":"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff","sport":0,"dport":65535,"netns":u32::MAX,
            "cgroup":u64::MAX});
        let s = line(&e, OFFSET, Some(exe), want);
        assert!(s.contains(r#""comm":"a\"b\\c\td☃e�!!�","exe":"/tmp/x\n� (deleted)""#), "{s}");

        // Time before the epoch (a bad offset) clamps to it.
        e.ts_ns = 5;
        let s = line(&e, -10, Some(exe), {
            let mut v = serde_json::from_str::<Value>(&s).unwrap();
            (v["time"], v["mono_ns"]) = (json!("1970-01-01T00:00:00.000000000Z"), json!(5));
            v
        });
        assert!(s.contains("\"time\":\"1970-01-01T00:00:00.000000000Z\",\"mono_ns\":5,"));
    }

    #[test]
    fn summary_line() {
        let s = Summary {
            events: 10,
            connect: 4,
            accept: 3,
            close: 2,
            failed: 1,
            lost_perf: 7,
            lost_kernel: 5,
            lost_queue: 2,
            skipped: 3,
            uncommitted: 2,
            late: 1,
        };
        let mut out = Vec::new();
        summary(&mut out, &s, 1_795_756_467_123_456_789);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "{\"type\":\"summary\",\"time\":\"2026-11-27T05:14:27.123456789Z\",\"events\":10,\"connect\":4,\
             \"accept\":3,\"close\":2,\"failed\":1,\"lost\":14,\"lost_perf\":7,\"lost_kernel\":5,\
             \"lost_queue\":2,\"skipped\":3,\"uncommitted\":2,\"late\":1}\n"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["lost"], json!(14));

        let mut out = Vec::new();
        summary(&mut out, &Summary::default(), 0);
        assert_eq!(
            out,
            b"{\"type\":\"summary\",\"time\":\"1970-01-01T00:00:00.000000000Z\",\"events\":0,\"connect\":0,\
              \"accept\":0,\"close\":0,\"failed\":0,\"lost\":0,\"lost_perf\":0,\"lost_kernel\":0,\
              \"lost_queue\":0,\"skipped\":0,\"uncommitted\":0,\"late\":0}\n"
        );
    }

    #[test]
    fn realtime_offset_is_wall_clock_minus_monotonic() {
        let off = realtime_offset_ns();
        let wall = clock_ns(libc::CLOCK_MONOTONIC) + off;
        let sys = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        assert!((sys.as_nanos() as i64 - wall).abs() < 50_000_000, "{off}");
        assert!((realtime_offset_ns() - off).abs() < 10_000_000);
    }
}
