//! Byte writers shared by the table rows and the JSON lines: decimal
//! numbers, IPv4 and IPv6 addresses (as glibc's `inet_ntop` prints them),
//! RFC 3339 times, errno names. No `fmt` machinery: these run once per
//! event field.

pub fn push_u32(out: &mut Vec<u8>, v: u32) {
    push_u64(out, v as u64)
}

/// Append `v` in decimal. Byte by byte: a copy of a variable length is a
/// `memcpy` call, which musl does not make cheap for a few bytes.
pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.reserve(tmp.len());
    for &d in &tmp[i..] {
        out.push(d);
    }
}

/// Append the first `n` (≤ 16) bytes of `a`: a fixed-size copy, then cut
/// back (no `memcpy` call).
pub fn push_prefix(out: &mut Vec<u8>, a: &[u8; 16], n: usize) {
    let start = out.len();
    out.extend_from_slice(a);
    out.truncate(start + n.min(16));
}

/// Append `n` spaces, `n` ≤ 16 (a fixed-size copy, then cut back).
pub fn push_spaces(out: &mut Vec<u8>, n: usize) {
    let start = out.len();
    out.extend_from_slice(&[b' '; 16]);
    out.truncate(start + n.min(16));
    if n > 16 {
        out.resize(start + n, b' ');
    }
}

pub fn push_ipv4(out: &mut Vec<u8>, a: &[u8]) {
    for (i, &b) in a.iter().take(4).enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        push_u32(out, b as u32);
    }
}

fn push_hex(out: &mut Vec<u8>, v: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [12, 8, 4, 0] {
        let d = (v >> shift) & 0xf;
        if d != 0 || started || shift == 0 {
            out.push(HEX[d as usize]);
            started = true;
        }
    }
}

/// glibc `inet_ntop(AF_INET6)`: the first longest run of ≥2 zero groups
/// becomes `::`; `::ffff:a.b.c.d` and `::a.b.c.d` keep a dotted IPv4 tail.
pub fn push_ipv6(out: &mut Vec<u8>, a: &[u8; 16]) {
    let mut w = [0u16; 8];
    for (i, g) in w.iter_mut().enumerate() {
        *g = u16::from_be_bytes([a[2 * i], a[2 * i + 1]]);
    }
    let (mut best, mut best_len) = (usize::MAX, 0);
    let mut i = 0;
    while i < 8 {
        if w[i] == 0 {
            let s = i;
            while i < 8 && w[i] == 0 {
                i += 1;
            }
            if i - s > best_len {
                (best, best_len) = (s, i - s);
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best = usize::MAX;
    }
    let mut i = 0;
    while i < 8 {
        if i == best {
            out.push(b':');
            i += best_len;
            if i == 8 {
                out.push(b':');
            }
            continue;
        }
        if i != 0 {
            out.push(b':');
        }
        if i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
            push_ipv4(out, &a[12..16]);
            return;
        }
        push_hex(out, w[i]);
        i += 1;
    }
}

/// Append `v` in decimal, zero-padded to `width` digits.
fn push_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let start = out.len();
    push_u64(out, v);
    let n = out.len() - start;
    if n < width {
        out.splice(start..start, std::iter::repeat_n(b'0', width - n));
    }
}

/// Append `unix_ns` as RFC 3339 UTC, `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`
/// (no quotes). Negative times print as the epoch; an `i64` reaches
/// 2262-04-11, so the year always has 4 digits.
pub fn rfc3339(out: &mut Vec<u8>, unix_ns: i64) {
    let ns = unix_ns.max(0) as u64;
    let (secs, frac) = (ns / 1_000_000_000, ns % 1_000_000_000);
    let (days, sod) = (secs / 86400, secs % 86400);
    // Howard Hinnant's civil_from_days, for days >= 0.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as u64;
    push_padded(out, year, 4);
    out.push(b'-');
    push_padded(out, month, 2);
    out.push(b'-');
    push_padded(out, day, 2);
    out.push(b'T');
    push_padded(out, sod / 3600, 2);
    out.push(b':');
    push_padded(out, sod / 60 % 60, 2);
    out.push(b':');
    push_padded(out, sod % 60, 2);
    out.push(b'.');
    push_padded(out, frac, 9);
    out.push(b'Z');
}

/// The name of an errno a connect can fail with (`sk_err`).
pub fn errno_name(e: u16) -> Option<&'static str> {
    Some(match e as i32 {
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETRESET => "ENETRESET",
        libc::ENONET => "ENONET",
        libc::EPROTO => "EPROTO",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EPIPE => "EPIPE",
        libc::ENOMEM => "ENOMEM",
        libc::ENOBUFS => "ENOBUFS",
        libc::EINVAL => "EINVAL",
        libc::EINTR => "EINTR",
        libc::EAGAIN => "EAGAIN",
        libc::ENOTCONN => "ENOTCONN",
        libc::EISCONN => "EISCONN",
        libc::ESHUTDOWN => "ESHUTDOWN",
        libc::EKEYREJECTED => "EKEYREJECTED",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> String {
        let a: std::net::Ipv6Addr = s.parse().unwrap();
        let mut v = Vec::new();
        push_ipv6(&mut v, &a.octets());
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn ipv6_like_glibc_inet_ntop() {
        // Expected strings are what glibc 2.36 inet_ntop prints.
        for (input, want) in [
            ("::", "::"),
            ("::1", "::1"),
            ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
            ("::ffff:0:0", "::ffff:0.0.0.0"),
            ("::102:304", "::1.2.3.4"),
            ("fe80::1", "fe80::1"),
            ("2001:db8::", "2001:db8::"),
            ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"),
            ("2001:0:0:1:0:0:1:1", "2001::1:0:0:1:1"),
            ("1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"),
            ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
            ("ffff::", "ffff::"),
            ("0:0:0:0:0:1:0:0", "::1:0:0"),
            ("64:ff9b::7f00:1", "64:ff9b::7f00:1"),
        ] {
            assert_eq!(v6(input), want, "{input}");
        }
    }

    #[test]
    fn prefixes_and_spaces() {
        let a = *b"0123456789abcdef";
        for n in 0..=16 {
            let mut out = b"x".to_vec();
            push_prefix(&mut out, &a, n);
            push_spaces(&mut out, n);
            let mut want = b"x".to_vec();
            want.extend_from_slice(&a[..n]);
            want.resize(1 + 2 * n, b' ');
            assert_eq!(out, want);
        }
        let mut out = Vec::new();
        push_prefix(&mut out, &a, 99);
        push_spaces(&mut out, 40);
        assert_eq!(out.len(), 56);
        assert!(out[16..].iter().all(|&b| b == b' '));
    }

    #[test]
    fn integers_u32() {
        for v in [0u32, 7, 10, 99, 100, 65535, 4026531840, u32::MAX] {
            let mut out = Vec::new();
            push_u32(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
    }

    #[test]
    fn integers_u64() {
        for v in [0u64, 9, 10, 4026531840, u32::MAX as u64 + 1, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::ECONNREFUSED as u16), Some("ECONNREFUSED"));
        assert_eq!(errno_name(libc::ETIMEDOUT as u16), Some("ETIMEDOUT"));
        assert_eq!(errno_name(libc::EHOSTUNREACH as u16), Some("EHOSTUNREACH"));
        assert_eq!(errno_name(libc::ENETUNREACH as u16), Some("ENETUNREACH"));
        assert_eq!(errno_name(libc::EADDRNOTAVAIL as u16), Some("EADDRNOTAVAIL"));
        assert_eq!(errno_name(0), None);
        assert_eq!(errno_name(4095), None);
        assert_eq!(errno_name(u16::MAX), None);
        // Every name is distinct and names its own constant's value.
        let names: Vec<_> = (0..=u16::MAX).filter_map(errno_name).collect();
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(names.len(), dedup.len());
        assert!(names.len() >= 25);
    }

    fn time(ns: i64) -> String {
        let mut v = Vec::new();
        rfc3339(&mut v, ns);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn rfc3339_known_values() {
        const S: i64 = 1_000_000_000;
        for (ns, want) in [
            (0, "1970-01-01T00:00:00.000000000Z"),
            (1, "1970-01-01T00:00:00.000000001Z"),
            (-1, "1970-01-01T00:00:00.000000000Z"),
            (i64::MIN, "1970-01-01T00:00:00.000000000Z"),
            (946684799 * S + 999_999_999, "1999-12-31T23:59:59.999999999Z"),
            (946684800 * S, "2000-01-01T00:00:00.000000000Z"),
            (951782400 * S, "2000-02-29T00:00:00.000000000Z"),
            (951868800 * S, "2000-03-01T00:00:00.000000000Z"),
            (1709210096 * S + 789_000_000, "2024-02-29T12:34:56.789000000Z"),
            (1795756467 * S + 123_456_789, "2026-11-27T05:14:27.123456789Z"),
            (4107456000 * S, "2100-02-28T00:00:00.000000000Z"),
            (4107542400 * S, "2100-03-01T00:00:00.000000000Z"),
            (i64::MAX, "2262-04-11T23:47:16.854775807Z"),
        ] {
            assert_eq!(time(ns), want, "{ns}");
        }
    }

    #[test]
    fn rfc3339_every_day_until_2262() {
        // Walk the calendar naively and compare each day's date.
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for day in 0..(i64::MAX / 86_400_000_000_000) {
            let want = format!("{y:04}-{m:02}-{d:02}T23:59:59.000000000Z");
            assert_eq!(time((day * 86400 + 86399) * 1_000_000_000), want);
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let len =
                [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1];
            d += 1;
            if d > len {
                (d, m) = (1, m + 1);
                if m > 12 {
                    (m, y) = (1, y + 1);
                }
            }
        }
        assert_eq!((y, m, d), (2262, 4, 11));
    }
}
