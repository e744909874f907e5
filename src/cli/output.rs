//! Output in bcc `tcptracer.py`'s exact format, formatted by hand into one
//! buffer (no `fmt` machinery on the per-event path).
//!
//! bcc: header `%-2s %-6s %-16s %-2s %-16s %-16s %-6s %-6s`; rows `%-2s ` then
//! `%-6d %-16s %-2d %-16s %-16s %-6d %-6d`; with `-v` the type is `%-12s `, the
//! last header column `%-7s`, and NETNS (`%-8s` / ` %-8d`) follows unless
//! `-N` was given. IPv6 addresses are in brackets, formatted like glibc's
//! `inet_ntop` (which Python's `socket.inet_ntop` calls).
//!
//! Additions (off by default, so the default output stays bcc's): `-t`
//! prefixes bcc's TIME(s) `%-9.3f` (TIME(ns) `%-14d` with `-v`), seconds
//! since the first event; `-U` then a `%-6d ` UID column (libbpf-tools);
//! `--failed` appends ` %-12s` ERROR; `-w` appends ` EXE`.
//!
//! `-L`/`--lifetime` appends bcc tcplife's ` %5s %5s %s` TX_KB RX_KB MS
//! (before EXE): on X rows ` %5d %5d %.2f` (bytes / 1024, ms since the C or
//! A; `-` when the tracer did not see it start), `-` on the other rows.

use super::fmt::{errno_name, push_ipv4, push_ipv6, push_prefix, push_spaces, push_u32};
use tcptracer::tracer::event::{Event, Kind, UNKNOWN_ID};

#[derive(Clone, Copy, Debug, Default)]
pub struct Format {
    pub verbose: bool,
    /// Print the NETNS column (`-v` without `-N`).
    pub netns_column: bool,
    /// TIME column (`-t`).
    pub timestamp: bool,
    /// UID column (`-U`).
    pub uid: bool,
    /// ERROR column (`--failed`).
    pub error: bool,
    /// EXE column (`-w`).
    pub exe: bool,
    /// TX_KB RX_KB MS columns (`-L`).
    pub lifetime: bool,
}

impl Format {
    pub fn new(verbose: bool, netns_filter: bool) -> Format {
        Format { verbose, netns_column: verbose && !netns_filter, ..Format::default() }
    }
}

pub const BANNER: &str = "Tracing TCP established connections. Ctrl-C to end.";

/// The header line, with its trailing newline.
pub fn header(f: &Format) -> String {
    let mut s = String::new();
    if f.timestamp {
        s += &if f.verbose { format!("{:<14}", "TIME(ns)") } else { format!("{:<9}", "TIME(s)") };
    }
    if f.uid {
        s += &format!("{:<6} ", "UID");
    }
    s += &if f.verbose {
        format!(
            "{:<12} {:<6} {:<16} {:<2} {:<16} {:<16} {:<6} {:<7}",
            "TYPE", "PID", "COMM", "IP", "SADDR", "DADDR", "SPORT", "DPORT"
        )
    } else {
        format!(
            "{:<2} {:<6} {:<16} {:<2} {:<16} {:<16} {:<6} {:<6}",
            "T", "PID", "COMM", "IP", "SADDR", "DADDR", "SPORT", "DPORT"
        )
    };
    if f.netns_column {
        s.push_str(&format!("{:<8}", "NETNS"));
    }
    if f.error {
        s.push_str(&format!(" {:<12}", "ERROR"));
    }
    if f.lifetime {
        s.push_str(&format!(" {:>5} {:>5} {}", "TX_KB", "RX_KB", "MS"));
    }
    if f.exe {
        s.push_str(" EXE");
    }
    s.push('\n');
    s
}

/// Append one event's line (with newline) to `out`. `since_first`: ns
/// since the first event (TIME column); `exe`: the EXE column.
pub fn row(out: &mut Vec<u8>, f: &Format, e: &Event, since_first: u64, exe: Option<&[u8]>) {
    if f.timestamp {
        use std::io::Write;
        let _ = if f.verbose {
            write!(out, "{since_first:<14}")
        } else {
            write!(out, "{:<9.3}", since_first as f64 / 1e9)
        };
    }
    if f.uid {
        let start = out.len();
        if e.uid == UNKNOWN_ID {
            out.push(b'-');
        } else {
            push_u32(out, e.uid);
        }
        pad_to(out, start, 6);
        out.push(b' ');
    }
    let (short, long) = match e.kind {
        Some(Kind::Connect) => (b"C", word(b"connect")),
        Some(Kind::Accept) => (b"A", word(b"accept")),
        Some(Kind::Close) => (b"X", word(b"close")),
        Some(Kind::Failed) => (b"F", word(b"failed")),
        None => (b"U", word(b"unknown")),
    };
    if f.verbose {
        padded(out, &long, 12);
    } else {
        out.push(short[0]);
        out.push(b' ');
    }
    out.push(b' ');
    let start = out.len();
    push_u32(out, e.pid);
    pad_to(out, start, 6);
    out.push(b' ');
    padded(out, &e.comm, 16);
    out.push(b' ');
    let start = out.len();
    push_u32(out, e.ip as u32);
    pad_to(out, start, 2);
    out.push(b' ');
    for addr in [&e.saddr, &e.daddr] {
        let start = out.len();
        if e.ip == 4 {
            push_ipv4(out, &addr[..4]);
        } else {
            out.push(b'[');
            push_ipv6(out, addr);
            out.push(b']');
        }
        pad_to(out, start, 16);
        out.push(b' ');
    }
    let start = out.len();
    push_u32(out, e.sport as u32);
    pad_to(out, start, 6);
    out.push(b' ');
    let start = out.len();
    push_u32(out, e.dport as u32);
    pad_to(out, start, 6);
    if f.netns_column {
        out.push(b' ');
        let start = out.len();
        push_u32(out, e.netns);
        pad_to(out, start, 8);
    }
    if f.error {
        out.push(b' ');
        let start = out.len();
        match (e.kind, errno_name(e.error)) {
            (Some(Kind::Failed), Some(name)) => out.extend_from_slice(name.as_bytes()),
            (Some(Kind::Failed), None) if e.error != 0 => push_u32(out, e.error as u32),
            _ => out.push(b'-'),
        }
        pad_to(out, start, 12);
    }
    if f.lifetime {
        lifetime(out, e);
    }
    if f.exe {
        out.push(b' ');
        out.extend_from_slice(exe.unwrap_or(b"-"));
    }
    out.push(b'\n');
}

/// ` TX_KB RX_KB MS` (`%5d %5d %.2f`) of an X, dashes on other rows.
fn lifetime(out: &mut Vec<u8>, e: &Event) {
    use std::io::Write;
    if e.kind != Some(Kind::Close) {
        out.extend_from_slice(b"     -     - -");
        return;
    }
    let _ = write!(out, " {:>5} {:>5} ", e.bytes_sent / 1024, e.bytes_received / 1024);
    match e.duration_ns {
        // (ns / 1e6 in f64: exact to 2 decimals below 2^53 ns, 104 days.)
        Some(ns) => {
            let _ = write!(out, "{:.2}", ns as f64 / 1e6);
        }
        None => out.push(b'-'),
    }
}

/// A NUL-padded 16-byte field of a short word.
const fn word(s: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    let mut i = 0;
    while i < s.len() {
        a[i] = s[i];
        i += 1;
    }
    a
}

/// `%-Ns` of a NUL-padded field: pads by characters as Python does for
/// UTF-8 text. Fixed-size copies only (no `memcpy` calls: see `fmt`).
fn padded(out: &mut Vec<u8>, a: &[u8; 16], width: usize) {
    let n = a.iter().position(|&c| c == 0).unwrap_or(16);
    push_prefix(out, a, n);
    let chars = a[..n].iter().filter(|&&b| b & 0xc0 != 0x80).count();
    push_spaces(out, width.saturating_sub(chars));
}

fn pad_to(out: &mut Vec<u8>, start: usize, width: usize) {
    let n = out.len() - start;
    if n < width {
        push_spaces(out, width - n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: Option<Kind>, ip: u8, comm: &[u8], s: &[u8], d: &[u8]) -> Event {
        let mut c = [0u8; 16];
        c[..comm.len()].copy_from_slice(comm);
        let mut sa = [0u8; 16];
        sa[..s.len()].copy_from_slice(s);
        let mut da = [0u8; 16];
        da[..d.len()].copy_from_slice(d);
        Event {
            ts_ns: 0,
            pid: 28943,
            tid: 28943,
            uid: 0,
            gid: 0,
            cgroup: 0,
            comm: c,
            kind,
            ip,
            sport: 59306,
            dport: 23,
            error: 0,
            netns: 4026531969,
            saddr: sa,
            daddr: da,
            sock: 0,
            bytes_sent: 0,
            bytes_received: 0,
            duration_ns: None,
        }
    }

    fn line(f: Format, e: &Event) -> String {
        let mut v = Vec::new();
        row(&mut v, &f, e, 0, None);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn headers_match_bcc_byte_for_byte() {
        assert_eq!(
            header(&Format::new(false, false)),
            "T  PID    COMM             IP SADDR            DADDR            SPORT  DPORT \n"
        );
        assert_eq!(
            header(&Format::new(true, false)),
            "TYPE         PID    COMM             IP SADDR            DADDR            SPORT  DPORT  NETNS   \n"
        );
        assert_eq!(
            header(&Format::new(true, true)),
            "TYPE         PID    COMM             IP SADDR            DADDR            SPORT  DPORT  \n"
        );
        assert_eq!(header(&Format::new(false, true)), header(&Format::new(false, false)));
    }

    #[test]
    fn rows_match_bcc_byte_for_byte() {
        let e = ev(Some(Kind::Connect), 4, b"telnet", &[192, 168, 1, 2], &[192, 168, 1, 1]);
        // The example in bcc's tcptracer_example.txt.
        assert_eq!(
            line(Format::new(false, false), &e),
            "C  28943  telnet           4  192.168.1.2      192.168.1.1      59306  23    \n"
        );
        assert_eq!(
            line(Format::new(true, false), &e),
            "connect      28943  telnet           4  192.168.1.2      192.168.1.1      59306  23     4026531969\n"
        );
        assert_eq!(
            line(Format::new(true, true), &e),
            "connect      28943  telnet           4  192.168.1.2      192.168.1.1      59306  23    \n"
        );
        let mut l6 = [0u8; 16];
        l6[15] = 1;
        let e6 = ev(Some(Kind::Close), 6, b"curl", &l6, &l6);
        assert_eq!(
            line(Format::new(false, false), &e6),
            "X  28943  curl             6  [::1]            [::1]            59306  23    \n"
        );
        let mut u = ev(None, 4, b"0123456789abcdef", &[1, 2, 3, 4], &[5, 6, 7, 8]);
        u.pid = 4194304;
        u.netns = 1;
        assert_eq!(
            line(Format::new(true, false), &u),
            "unknown      4194304 0123456789abcdef 4  1.2.3.4          5.6.7.8          59306  23     1       \n"
        );
    }

    #[test]
    fn lifetime_columns_like_tcplife() {
        let f = Format { lifetime: true, ..Format::new(false, false) };
        assert_eq!(
            header(&f),
            "T  PID    COMM             IP SADDR            DADDR            SPORT  DPORT  TX_KB RX_KB MS\n"
        );
        let c = ev(Some(Kind::Connect), 4, b"curl", &[127, 0, 0, 1], &[127, 0, 0, 1]);
        assert_eq!(
            line(f, &c),
            "C  28943  curl             4  127.0.0.1        127.0.0.1        59306  23         -     - -\n"
        );
        let mut x = Event { kind: Some(Kind::Close), ..c };
        (x.bytes_sent, x.bytes_received, x.duration_ns) = (1 << 20, (3 << 20) + 1023, Some(300_123_456));
        assert_eq!(
            line(f, &x),
            "X  28943  curl             4  127.0.0.1        127.0.0.1        59306  23      1024  3072 300.12\n"
        );
        (x.bytes_sent, x.bytes_received, x.duration_ns) = (1023, 123_456_789_012, None);
        let f = Format { exe: true, error: true, ..f };
        assert!(header(&f).ends_with(" ERROR        TX_KB RX_KB MS EXE\n"), "{}", header(&f));
        let mut v = Vec::new();
        row(&mut v, &f, &x, 0, Some(b"/bin/curl"));
        assert!(
            String::from_utf8(v).unwrap().ends_with("23     -                0 120563270 - /bin/curl\n"),
            "wider counts push on, unknown duration is -"
        );
        x.duration_ns = Some(5);
        assert!(line(Format { lifetime: true, ..Format::new(true, true) }, &x).ends_with(" 120563270 0.00\n"));
        // Off: bcc's row, byte for byte.
        assert_eq!(
            line(Format::new(false, false), &x),
            line(Format::new(false, false), &Event { bytes_sent: 0, ..x })
        );
        assert!(line(Format::new(false, false), &x).ends_with("59306  23    \n"));
    }

    #[test]
    fn long_fields_are_not_cut() {
        let mut s = [0u8; 16];
        s[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        s[4..].copy_from_slice(&[0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x11, 0x22, 0x33, 0x44]);
        let e = ev(Some(Kind::Accept), 6, "zürich".as_bytes(), &s, &s);
        assert_eq!(
            line(Format::new(false, false), &e),
            "A  28943  zürich           6  [2001:db8:1234:5678:9abc:def0:1122:3344] \
             [2001:db8:1234:5678:9abc:def0:1122:3344] 59306  23    \n"
        );
    }
}
