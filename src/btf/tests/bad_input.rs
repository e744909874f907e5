//! Malformed input must give errors (with useful messages), never panics.

use super::encoder::Builder;
use super::fixture_bytes;
use crate::btf::{Btf, BtfError, Kind};

fn err(data: Vec<u8>) -> String {
    Btf::from_bytes(data).unwrap_err().to_string()
}

fn put_u32(data: &mut [u8], at: usize, v: u32) {
    data[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

#[test]
fn header_errors() {
    let good = fixture_bytes();
    assert!(err(vec![]).contains("empty"));
    assert!(err(good[..10].to_vec()).contains("truncated: header needs 24 bytes but file has 10"));
    let mut d = good.clone();
    d[..2].copy_from_slice(&0x1234u16.to_ne_bytes());
    assert!(err(d).contains("bad magic 0x1234"));
    let mut d = good.clone();
    d[..2].copy_from_slice(&0x9FEBu16.to_ne_bytes());
    assert_eq!(err(d), "BTF: <bytes>: foreign byte order not supported");
    let mut d = good.clone();
    d[2] = 2;
    assert!(err(d).contains("unsupported BTF version 2"));
    let mut d = good.clone();
    put_u32(&mut d, 4, 12);
    assert!(err(d).contains("header length 12 is below 24"));
    let mut d = good.clone();
    put_u32(&mut d, 4, 1 << 30);
    assert!(err(d).contains("truncated: header length"));
    let mut d = good.clone();
    put_u32(&mut d, 12, u32::MAX); // type_len
    let e = err(d);
    assert!(e.starts_with("BTF: <bytes>: truncated: type section ends at "), "{e}");
    let mut d = good.clone();
    put_u32(&mut d, 16, u32::MAX); // str_off
    assert!(err(d).contains("string section ends at"));
    let mut d = good.clone();
    let n = d.len();
    d[n - 1] = b'x';
    assert!(err(d).contains("does not end with NUL"));
}

#[test]
fn type_errors() {
    let mut b = Builder::new();
    b.int("int", 4, 32, 0, true);
    b.raw(0, 25 << 24, 0, &[]);
    let e = err(b.build());
    assert!(e.contains("type id 2 at byte offset 40: unknown kind 25"), "{e}");

    // A struct whose trailing members run past the type section.
    let mut b = Builder::new();
    b.raw(0, (4 << 24) | 1000, 8, &[0, 1, 0]);
    assert!(err(b.build()).contains("truncated: type id 1 (kind 4)"));

    // Bad string offset, bad member type, bad UTF-8, self-referencing typedef.
    let mut b = Builder::new();
    let m = b.str("m");
    b.raw(100_000, 4 << 24 | 1, 4, &[m, 999, 0]); // 1: bad name
    b.struct_("s", 4, &[("m", 999, 0, 0)]); // 2: bad member type
    let bad_utf8 = b.str("x");
    b.raw(bad_utf8, 1 << 24, 4, &[32]); // 3: name patched below
    b.typedef("selfref", 4); // 4
    b.struct_("t", 4, &[("m", 4, 0, 0)]); // 5
    let mut data = b.build();
    let x_at = 24 + u32::from_ne_bytes(data[16..20].try_into().unwrap()) as usize + bad_utf8 as usize;
    data[x_at] = 0xff;
    let btf = Btf::from_bytes(data).unwrap();
    assert!(btf.name(1).unwrap_err().to_string().contains("string offset 100000"));
    assert!(btf.name(3).unwrap_err().to_string().contains("not valid UTF-8"));
    let e = btf.member("s.m").unwrap_err().to_string();
    assert!(e.contains("type id 999: out of range (type count 6)"), "{e}");
    assert!(btf.member("t.m").unwrap_err().to_string().contains("cycle"));
    assert!(btf.skip_mods(4).is_err());
    assert!(btf.size_of(4).is_err());
    assert!(matches!(btf.kind(6), Err(BtfError::BadType { id: 6, .. })));
    assert_eq!(btf.find_all("m", Kind::Struct), Vec::<u32>::new());
}

/// Deterministic mutation fuzzing: mutated / truncated copies of a valid blob
/// go through parsing and lookups; only errors are allowed, no panics or hangs.
#[test]
fn mutated_blobs_do_not_panic() {
    let good = fixture_bytes();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let paths = [
        "sock.__sk_common.skc_num",
        "sock.__sk_common.skc_net.net",
        "sock.sk_flag_b",
        "legacy.bf5",
        "outer.a.b.c",
        "cyc.m",
        "sock.sk_addrs",
    ];
    let mut parsed = 0;
    for round in 0..4000 {
        let mut d = good.clone();
        for _ in 0..1 + rand(6) {
            let at = if rand(2) == 0 { rand(64.min(d.len())) } else { rand(d.len()) };
            d[at] = match rand(4) {
                0 => 0,
                1 => 0xff,
                _ => rand(256) as u8,
            };
        }
        if round % 5 == 0 {
            d.truncate(rand(d.len() + 1));
        }
        let Ok(btf) = Btf::from_bytes(d) else {
            continue;
        };
        parsed += 1;
        for id in 0..btf.type_count() + 2 {
            let _ = (btf.kind(id), btf.name(id), btf.size_of(id), btf.skip_mods(id));
        }
        for p in paths {
            if let Ok(m) = btf.member(p) {
                let _ = m.plain_offset();
            }
        }
        let _ = btf.func_proto("tcp_v4_connect");
        let _ = btf.typedef_proto("btf_trace_inet_sock_set_state");
        let _ = btf.find("sock", Kind::Struct);
    }
    assert!(parsed > 100, "only {parsed} mutated blobs parsed");
}

#[test]
fn files_and_kernel_error_text() {
    let path = std::env::temp_dir().join(format!("btf-test-{}.btf", std::process::id()));
    std::fs::write(&path, fixture_bytes()).unwrap();
    let btf = Btf::from_file(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(btf.unwrap().member("sock.sk_protocol").unwrap().offset, 42);
    let e = Btf::from_file(std::path::Path::new("/nonexistent/vmlinux")).unwrap_err();
    assert!(e.to_string().starts_with("BTF: /nonexistent/vmlinux: "), "{e}");
    let e = BtfError::KernelBtfNotFound {
        tried: vec![("/a".into(), "gone".into()), ("/b".into(), "bad".into())],
    };
    assert_eq!(e.to_string(), "BTF: no kernel BTF found; tried: /a (gone); /b (bad)");
}
