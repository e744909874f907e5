//! The fuzz target bodies, one `pub fn(&[u8])` each. The libFuzzer binaries in
//! `fuzz/fuzz_targets/` call them, and so does `tests/fuzz_regressions.rs` (which
//! includes this file and `encoder.rs` with `#[path]`), so every input kept under
//! `tests/fuzz_regressions/<target>/` runs in `cargo test` exactly as it ran here.
//!
//! Over 500 lines: the targets share their setup and checks; one file keeps
//! the `#[path]` includes of the two crates that run them simple.
//!
//! Each body must never panic (other than the invariant checks below) or hang.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use tcptracer::btf::{Btf, Kind, Member};
use tcptracer::tracer::event::{encode, Event, Kind as EventKind, EVENT_SIZE};
use tcptracer::tracer::offsets::{FdOffsets, SockOffsets};
use tcptracer::transport::{drain_buffer, PerfError, Record};

use crate::cli::fmt::{push_ipv4, push_ipv6};
use crate::cli::json;
use crate::cli::output::{row, Format};
use crate::encoder::Builder;

/// A target body.
pub type Target = fn(&[u8]);

/// Every target, by name (the directory names under `tests/fuzz_regressions/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("btf_parse", btf_parse),
    ("btf_elf", btf_elf),
    ("btf_member", btf_member),
    ("perf_ring", perf_ring),
    ("event_row", event_row),
];

/// Reads fields off the front of a fuzz input; past the end every read is 0.
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    pub fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    pub fn rest(self) -> &'a [u8] {
        self.0
    }
}

// ---------------------------------------------------------------- BTF ----

/// The member paths and prototypes the tracer itself looks up.
const PATHS: &[&str] = &[
    "sock.__sk_common.skc_dport",
    "sock.__sk_common.skc_num",
    "sock.__sk_common.skc_daddr",
    "sock.__sk_common.skc_rcv_saddr",
    "sock.__sk_common.skc_family",
    "sock.__sk_common.skc_state",
    "sock.__sk_common.skc_net.net",
    "sock.__sk_common.skc_v6_daddr",
    "sock.sk_protocol",
    "sock.sk_lock.owned",
    "inet_sock.inet_sport",
    "net.ns.inum",
    "task_struct.files",
    "fdtable.fd",
    "socket.sk",
];

/// Parse `data` as BTF (raw or ELF), as base BTF and as split BTF on top of
/// the fixed BTF, and run the lookups the tracer makes on whatever parses.
pub fn btf_parse(data: &[u8]) {
    if let Ok(btf) = Btf::from_bytes(data.to_vec()) {
        exercise(&btf);
        // prefetch (one pass for many names) must agree with find_all's own scan.
        let fresh = Btf::from_bytes(data.to_vec()).expect("parses twice");
        let wanted = some_names(&btf);
        let wanted: Vec<(&str, Kind)> = wanted.iter().map(|(n, k)| (n.as_str(), *k)).collect();
        btf.prefetch(&wanted);
        for (name, kind) in wanted {
            assert_eq!(btf.find_all(name, kind), fresh.find_all(name, kind), "{kind:?} {name}");
        }
    }
    // A fresh base each time: lookups fill its name cache.
    let base = Arc::new(Btf::from_bytes(fixed_btf().to_vec()).expect("fixed BTF parses"));
    if let Ok(btf) = Btf::split(base, data.to_vec()) {
        exercise(&btf);
    }
}

/// Up to 16 (name, kind) pairs of named types among the first ids.
fn some_names(btf: &Btf) -> Vec<(String, Kind)> {
    let n = btf.type_count();
    let mut names = Vec::new();
    for id in 1..n.min(256) {
        if let (Ok(kind), Ok(name)) = (btf.kind(id), btf.name(id)) {
            if !name.is_empty() && names.len() < 16 {
                names.push((name.to_string(), kind));
            }
        }
    }
    names.push(("sock".to_string(), Kind::Struct));
    names
}

fn exercise(btf: &Btf) {
    let n = btf.type_count();
    let ids = (0..n.min(256)).chain(n.saturating_sub(4)..n.saturating_add(2)).chain([u32::MAX]);
    let mut names = Vec::new();
    for id in ids {
        let kind = btf.kind(id);
        let _ = btf.skip_mods(id);
        let _ = btf.size_of(id);
        if let (Ok(kind), Ok(name)) = (kind, btf.name(id)) {
            if !name.is_empty() && names.len() < 16 {
                names.push((name.to_string(), kind));
            }
        }
    }
    for (name, kind) in &names {
        let _ = btf.find(name, *kind);
        if *kind == Kind::Func {
            let _ = btf.func_proto(name);
        }
        if *kind == Kind::Typedef {
            let _ = btf.typedef_proto(name);
        }
    }
    // Paths between the names found: "a.b", "a.b.a".
    for w in names.windows(2) {
        check_member(btf, &format!("{}.{}", w[0].0, w[1].0));
        check_member(btf, &format!("{}.{}.{}", w[0].0, w[1].0, w[0].0));
    }
    let wanted: Vec<(&str, Kind)> = names.iter().map(|(n, k)| (n.as_str(), *k)).collect();
    btf.prefetch(&wanted);
    btf.prefetch(tcptracer::tracer::backend::BTF_NAMES);
    for p in PATHS {
        check_member(btf, p);
    }
    let _ = btf.func_proto("tcp_v4_connect");
    let _ = btf.typedef_proto("btf_trace_inet_sock_set_state");
    let _ = btf.has_func("tcp_set_state");
    let _ = SockOffsets::from_btf(btf);
    let _ = FdOffsets::from_btf(btf);
}

/// Resolve `path`; a result must be self-consistent and stable (the second
/// lookup hits the name cache).
fn check_member(btf: &Btf, path: &str) -> Option<Member> {
    let r = btf.member(path);
    let again = btf.member(path);
    match (&r, &again) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{path}: second lookup differs"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{path}: second lookup differs"),
        _ => panic!("{path}: {r:?} then {again:?}"),
    }
    let m = r.ok()?;
    assert_eq!(m.path, path);
    match m.bitfield {
        None => assert_eq!(m.plain_offset().ok(), Some(m.offset)),
        Some(bf) => {
            assert!(m.plain_offset().is_err());
            assert_eq!(m.offset, bf.bit_offset / 8, "{path}: {m:?}");
        }
    }
    assert_ne!(m.kind, Kind::Void, "{path}: void member {m:?}");
    Some(m)
}

/// ELF input: the first byte picks the ELF shape (class, byte order, section
/// name and type, a bad offset/size, a duplicate section), the next four a
/// tweak, the rest is the `.BTF` payload; then as [`btf_parse`].
pub fn btf_elf(data: &[u8]) {
    let mut inp = Input(data);
    let flags = inp.u8();
    let tweak = inp.u32();
    let payload = inp.rest();
    let elf = elf(flags, tweak, payload);
    if let Ok(btf) = Btf::from_bytes(elf) {
        exercise(&btf);
    }
}

/// An ELF file with sections null, .shstrtab, a BTF-ish section holding
/// `payload`, shaped by `flags` (see [`btf_elf`]).
pub fn elf(flags: u8, tweak: u32, payload: &[u8]) -> Vec<u8> {
    let is64 = flags & 1 == 0;
    let big = flags & 0x80 != 0;
    let name: &[u8] = match (flags >> 1) & 3 {
        0 => b".BTF",
        1 => b".BTF.ext",
        2 => b".btf",
        _ => b".BTF\xff",
    };
    let nobits = flags & 8 != 0;
    let (bad_size, bad_off, dup) = (flags & 0x10 != 0, flags & 0x20 != 0, flags & 0x40 != 0);

    let mut shstrtab = b"\0.shstrtab\0".to_vec();
    let name_off = shstrtab.len() as u32;
    shstrtab.extend_from_slice(name);
    shstrtab.push(0);
    let (ehsize, shentsize) = if is64 { (64u64, 64u64) } else { (52, 40) };
    let shstr_off = ehsize;
    let payload_off = (shstr_off + shstrtab.len() as u64).next_multiple_of(8);
    let sh_off = (payload_off + payload.len() as u64).next_multiple_of(8);
    let shnum: u16 = if dup { 4 } else { 3 };

    let mut f = Vec::new();
    let p16 = |f: &mut Vec<u8>, v: u16| f.extend(if big { v.to_be_bytes() } else { v.to_le_bytes() });
    let p32 = |f: &mut Vec<u8>, v: u32| f.extend(if big { v.to_be_bytes() } else { v.to_le_bytes() });
    let p64 = |f: &mut Vec<u8>, v: u64| f.extend(if big { v.to_be_bytes() } else { v.to_le_bytes() });
    // Address-sized field: 8 bytes in ELF64, 4 (truncated) in ELF32.
    let pa = |f: &mut Vec<u8>, v: u64| if is64 { p64(f, v) } else { p32(f, v as u32) };
    f.extend_from_slice(b"\x7fELF");
    f.extend([if is64 { 2 } else { 1 }, if big { 2 } else { 1 }, 1, 0]);
    f.resize(16, 0);
    p16(&mut f, 1); // ET_REL
    p16(&mut f, if is64 { 62 } else { 3 }); // EM_X86_64 / EM_386
    p32(&mut f, 1);
    pa(&mut f, 0); // e_entry
    pa(&mut f, 0); // e_phoff
    pa(&mut f, sh_off); // e_shoff
    p32(&mut f, 0); // e_flags
    for h in [ehsize as u16, 0, 0, shentsize as u16, shnum, 1] {
        p16(&mut f, h);
    }
    assert_eq!(f.len() as u64, ehsize);
    f.extend_from_slice(&shstrtab);
    f.resize(payload_off as usize, 0);
    f.extend_from_slice(payload);
    f.resize(sh_off as usize, 0);
    let section = |f: &mut Vec<u8>, name: u32, ty: u32, off: u64, size: u64| {
        p32(f, name);
        p32(f, ty);
        pa(f, 0); // flags
        pa(f, 0); // addr
        pa(f, off);
        pa(f, size);
        p32(f, 0); // link
        p32(f, 0); // info
        pa(f, 1); // addralign
        pa(f, 0); // entsize
    };
    let mut size = payload.len() as u64;
    let mut off = payload_off;
    if bad_size {
        size = size.wrapping_add(u64::from(tweak)) | if is64 { u64::from(tweak) << 32 } else { 0 };
    }
    if bad_off {
        off = off.wrapping_add(u64::from(tweak.rotate_left(16)));
    }
    section(&mut f, 0, 0, 0, 0);
    section(&mut f, 1, 3, shstr_off, shstrtab.len() as u64); // SHT_STRTAB
    section(&mut f, name_off, if nobits { 8 } else { 1 }, off, size); // SHT_NOBITS / SHT_PROGBITS
    if dup {
        section(&mut f, name_off, 1, payload_off, payload.len() as u64);
    }
    f
}

/// Names in the fixed BTF (and some that are not), for building member paths.
pub const NAMES: &[&str] = &[
    "sock",
    "__sk_common",
    "skc_dport",
    "skc_num",
    "skc_daddr",
    "skc_rcv_saddr",
    "skc_family",
    "skc_state",
    "skc_net",
    "net",
    "ns",
    "inum",
    "skc_v6_daddr",
    "in6_u",
    "u6_addr8",
    "sk_protocol",
    "sk_lock",
    "owned",
    "inet_sock",
    "sk",
    "inet_sport",
    "sock_common",
    "skc_reuse",
    "skc_legacy_bits",
    "loop_a",
    "loop_b",
    "cyc",
    "selfish",
    "me",
    "deep",
    "far",
    "dup",
    "x",
    "un",
    "arr",
    "grid",
    "fp",
    "e",
    "e64",
    "f",
    "tag",
    "anon_loop",
    "v",
    "missing",
    "",
];

/// A small kernel-like BTF with every kind and the nasty shapes: anonymous
/// unions/structs, both bitfield encodings, typedef cycles, an anonymous
/// struct that contains itself, duplicate struct names, deep arrays, offsets
/// near 4 GiB.
pub fn fixed_btf() -> &'static [u8] {
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    BLOB.get_or_init(|| {
        let mut b = Builder::new();
        let u8_ = b.int("unsigned char", 1, 8, 0, false);
        let u16_ = b.int("unsigned short", 2, 16, 0, false);
        let u32_ = b.int("unsigned int", 4, 32, 0, false);
        let int = b.int("int", 4, 32, 0, true);
        let be16 = b.typedef("__be16", u16_);
        let be32 = b.typedef("__be32", u32_);
        let vu8 = b.volatile(u8_);
        let legacy = b.int("legacy3", 4, 3, 5, false); // legacy bitfield: 3 bits at 5
        let ns_common = b.struct_("ns_common", 8, &[("stashed", u32_, 0, 0), ("inum", u32_, 32, 0)]);
        let net = b.struct_("net", 64, &[("passive", u32_, 0, 0), ("ns", ns_common, 128, 0)]);
        let pnet = b.ptr(net);
        let anon_net = b.struct_("", 8, &[("net", pnet, 0, 0)]);
        let possible_net = b.typedef("possible_net_t", anon_net);
        let arr16 = b.array(u8_, u32_, 16);
        let in6_u = b.union_("", 16, &[("u6_addr8", arr16, 0, 0)]);
        let in6 = b.struct_("in6_addr", 16, &[("in6_u", in6_u, 0, 0)]);
        let addrs = b.struct_("", 8, &[("skc_daddr", be32, 0, 0), ("skc_rcv_saddr", be32, 32, 0)]);
        let u_addrs = b.union_("", 8, &[("skc_addrpair", u32_, 0, 0), ("", addrs, 0, 0)]);
        let ports = b.struct_("", 4, &[("skc_dport", be16, 0, 0), ("skc_num", u16_, 16, 0)]);
        let u_ports = b.union_("", 4, &[("skc_portpair", u32_, 0, 0), ("", ports, 0, 0)]);
        let sock_common = b.struct_(
            "sock_common",
            136,
            &[
                ("", u_addrs, 0, 0),
                ("", u_ports, 96, 0),
                ("skc_family", u16_, 128, 0),
                ("skc_state", vu8, 144, 0),
                ("skc_reuse", u8_, 152, 4), // kflag bitfield
                ("skc_net", possible_net, 384, 0),
                ("skc_v6_daddr", in6, 448, 0),
                ("skc_v6_rcv_saddr", in6, 576, 0),
            ],
        );
        let lock = b.struct_("", 8, &[("slock", u32_, 0, 0), ("owned", int, 32, 0)]);
        let lock_t = b.typedef("socket_lock_t", lock);
        let sock = b.struct_(
            "sock",
            776,
            &[
                ("__sk_common", sock_common, 0, 0),
                ("sk_lock", lock_t, 1088, 0),
                ("sk_protocol", u16_, 4096, 0),
            ],
        );
        b.struct_("inet_sock", 1000, &[("sk", sock, 0, 0), ("inet_sport", be16, 6448, 0)]);
        // Legacy INT bitfield member.
        b.struct_("skc_legacy_bits", 4, &[("x", legacy, 0, 0)]);
        // Typedef cycle loop_a -> loop_b -> loop_a, used as a member type.
        let next = b.next_id();
        let la = b.typedef("loop_a", next + 1);
        b.typedef("loop_b", la);
        b.struct_("cyc", 4, &[("loop_a", la, 0, 0)]);
        // An anonymous struct whose anonymous member is itself (through a typedef).
        let next = b.next_id();
        let me = b.struct_("", 4, &[("", next + 1, 0, 0), ("me", u32_, 0, 0)]);
        b.typedef("anon_loop", me);
        b.struct_("selfish", 4, &[("", me, 0, 0)]);
        // A member at the far end of u32 bit offsets, and one past 4 GiB in bytes.
        let far = b.struct_("far", u32::MAX, &[("x", u32_, u32::MAX - 31, 0), ("un", u8_, 0xff_fff8, 0)]);
        b.struct_("deep", 8, &[("far", far, u32::MAX - 7, 0)]);
        // Two structs named dup that disagree; a union named un.
        b.struct_("dup", 4, &[("x", u32_, 0, 0)]);
        b.struct_("dup", 8, &[("x", u32_, 32, 0)]);
        b.union_("un", 4, &[("x", u32_, 0, 0), ("arr", arr16, 0, 0)]);
        // Arrays of arrays, one whose size overflows u32.
        let row = b.array(u32_, u32_, 1 << 20);
        let grid = b.array(row, u32_, 1 << 20);
        b.struct_("grid", 8, &[("grid", grid, 0, 0), ("arr", row, 0, 0)]);
        // The other kinds.
        let fwd = b.fwd("missing", false);
        let psock = b.ptr(sock);
        let proto = b.func_proto(int, &[("sk", psock), ("", 0)]);
        b.func("tcp_v4_connect", proto);
        let pproto = b.ptr(proto);
        b.typedef("btf_trace_inet_sock_set_state", pproto);
        let e = b.enum_("e", 4, &[("A".to_string(), 1), ("B".to_string(), -1)]);
        let e64 = b.enum64("e64", 8, &[("C", u64::MAX)]);
        let f = b.float("f", 8);
        let tag = b.type_tag("tag", int);
        let cint = b.const_(tag);
        let rint = b.restrict(cint);
        let v = b.var("v", rint);
        b.datasec(".data", 8, &[(v, 0, 4)]);
        b.decl_tag("tag", v, -1);
        b.struct_(
            "x",
            40,
            &[("e", e, 0, 0), ("e64", e64, 64, 0), ("f", f, 128, 0), ("fp", fwd, 192, 0), ("v", v, 256, 0)],
        );
        b.build()
    })
}

/// Member-path resolution. Input: flags byte, path length byte, path spec,
/// then an optional BTF blob. The path spec is either raw text (flags bit 0)
/// or tokens: each byte < 0xe0 is a name from [`NAMES`] (joined by dots),
/// each byte >= 0xe0 a raw character. The path is resolved in the fixed BTF
/// and, if the blob parses, in the blob.
pub fn btf_member(data: &[u8]) {
    let mut inp = Input(data);
    let flags = inp.u8();
    let n = inp.u8() as usize;
    let spec = inp.bytes(n);
    let blob = inp.rest();
    let path = if flags & 1 != 0 {
        String::from_utf8_lossy(spec).into_owned()
    } else {
        let mut p = String::new();
        for (i, &b) in spec.iter().enumerate() {
            if b >= 0xe0 {
                p.push(char::from(b"._.x\0 \xff"[(b - 0xe0) as usize % 7]));
            } else {
                if i > 0 {
                    p.push('.');
                }
                p.push_str(NAMES[b as usize % NAMES.len()]);
            }
        }
        p
    };
    let fixed = Btf::from_bytes(fixed_btf().to_vec()).expect("fixed BTF parses");
    check_member(&fixed, &path);
    if !blob.is_empty() {
        if let Ok(btf) = Btf::from_bytes(blob.to_vec()) {
            check_member(&btf, &path);
        }
    }
}

// --------------------------------------------------------------- perf ----

/// Metadata page and page size of the synthetic rings.
pub const PAGE: usize = 4096;

/// The ring reader over a synthetic mapping. Input:
/// - byte 0: bits 0-2 data size 2^(3+n) bytes (8..1024); bit 3 take
///   data_offset/data_size from the input (u16, u8); bit 4 legacy layout
///   (both 0: data one page in); bits 5-6 how head is set (tail + n mod
///   size+1, tail + raw u16, raw u64, or tail near the u64 wrap);
/// - data_tail u64, then the head fields, then the bytes written into the
///   data area from data_tail on (wrapping).
///
/// Every sample is also decoded and formatted as the tracer would.
pub fn perf_ring(data: &[u8]) {
    let mut inp = Input(data);
    let b0 = inp.u8();
    let size = 8usize << (b0 & 7);
    let mut mem = vec![0u64; (PAGE + size) / 8];
    let (mut data_off, mut data_size) = (PAGE as u64, size as u64);
    if b0 & 8 != 0 {
        data_off = 1024 + u64::from(inp.u16());
        data_size = 1 << (inp.u8() % 16);
    } else if b0 & 16 != 0 {
        (data_off, data_size) = (0, 0);
    }
    let mut tail = inp.u64();
    let head = match (b0 >> 5) & 3 {
        0 => tail.wrapping_add(u64::from(inp.u16()) % (size as u64 + 1)),
        1 => tail.wrapping_add(u64::from(inp.u16())),
        2 => inp.u64(),
        _ => {
            tail = u64::MAX - u64::from(inp.u16());
            tail.wrapping_add(u64::from(inp.u16()) % (size as u64 + 1))
        }
    };
    mem[1024 / 8] = head;
    mem[1032 / 8] = tail;
    mem[1040 / 8] = data_off;
    mem[1048 / 8] = data_size;
    // Where the reader will find the data area (if the layout is accepted).
    let (area, area_size) =
        if data_size == 0 { (PAGE, size) } else { (data_off as usize, data_size as usize) };
    let bytes = inp.rest();
    if area + area_size <= PAGE + size && area_size.is_power_of_two() {
        let mut raw: Vec<u8> = mem.iter().flat_map(|w| w.to_ne_bytes()).collect();
        for (i, &b) in bytes.iter().take(area_size).enumerate() {
            raw[area + (tail.wrapping_add(i as u64) & (area_size as u64 - 1)) as usize] = b;
        }
        // Keep the metadata words as set above.
        for (w, c) in mem.iter_mut().zip(raw.chunks_exact(8)).skip(1056 / 8) {
            *w = u64::from_ne_bytes(c.try_into().unwrap());
        }
    }

    let (mut samples, mut lost) = (0u64, 0u64);
    let mut out = Vec::new();
    let r = drain_buffer(&mut mem, PAGE, &mut |rec| match rec {
        Record::Sample(s) => {
            samples += 1;
            assert!(s.len() + 12 <= area_size, "sample of {} bytes from a {area_size}-byte ring", s.len());
            format_event(s, &mut out);
        }
        Record::Lost(n) => lost = lost.saturating_add(n),
    });
    match r {
        Err(PerfError::Layout { .. }) => {
            assert_eq!((mem[1024 / 8], mem[1032 / 8]), (head, tail), "layout error moved the tail");
            return;
        }
        Ok(stats) => assert_eq!((stats.samples, stats.lost), (samples, lost)),
        Err(PerfError::Corrupt { .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
    }
    assert_eq!(mem[1032 / 8], head, "tail not caught up with head after a drain");
    assert_eq!(mem[1024 / 8], head, "drain wrote data_head");
    // A second drain finds nothing.
    let r = drain_buffer(&mut mem, PAGE, &mut |rec| panic!("second drain got {rec:?}"));
    assert!(matches!(r, Ok(s) if s.samples == 0 && s.lost == 0), "{r:?}");
}

// -------------------------------------------------------------- event ----

/// The event decoder and the bcc-format row, with glibc `inet_ntop` and std's
/// IPv4 formatting as oracles for the address columns.
pub fn event_row(data: &[u8]) {
    let mut out = Vec::new();
    format_event(data, &mut out);
}

fn format_event(data: &[u8], out: &mut Vec<u8>) {
    let e = Event::decode(data);
    let valid = data.len() >= EVENT_SIZE && matches!(data[49], 4 | 6);
    assert_eq!(e.is_some(), valid, "decode of {} bytes, ip {:?}", data.len(), data.get(49));
    let Some(e) = e else { return };
    assert!(e.comm().len() <= 16 && !e.comm().contains(&0));
    assert_eq!(
        &encode(&e)[..],
        &data[..EVENT_SIZE]
            .iter()
            .enumerate()
            .map(|(i, &b)| match i {
                48 if e.kind.is_none() => 9,
                _ => b,
            })
            .collect::<Vec<u8>>()[..]
    );
    let exe: &[u8] = b"/usr/bin/x";
    for (verbose, netns_filter, extra) in
        [(false, false, false), (true, false, false), (true, true, true), (false, true, true)]
    {
        out.clear();
        let mut f = Format::new(verbose, netns_filter);
        (f.timestamp, f.uid, f.error, f.exe) = (extra, extra, extra, extra);
        row(out, &f, &e, e.ts_ns, Some(exe));
        assert_eq!(out.last(), Some(&b'\n'));
        let newlines = out.iter().filter(|&&c| c == b'\n').count();
        assert_eq!(newlines, 1 + e.comm().iter().filter(|&&c| c == b'\n').count());
        let want: &[u8] = match (e.kind, verbose) {
            (Some(EventKind::Connect), false) => b"C ",
            (Some(EventKind::Accept), false) => b"A ",
            (Some(EventKind::Close), false) => b"X ",
            (Some(EventKind::Failed), false) => b"F ",
            (None, false) => b"U ",
            (Some(EventKind::Connect), true) => b"connect ",
            (Some(EventKind::Accept), true) => b"accept ",
            (Some(EventKind::Close), true) => b"close ",
            (Some(EventKind::Failed), true) => b"failed ",
            (None, true) => b"unknown ",
        };
        if !extra {
            assert!(out.starts_with(want), "{:?}", String::from_utf8_lossy(out));
        }
    }
    // JSON: one line that a JSON parser reads back to the same values.
    out.clear();
    json::event(out, &e, 1_000_000_000, Some(exe));
    assert_eq!(out.iter().filter(|&&c| c == b'\n').count(), 1);
    let v: serde_json::Value = serde_json::from_slice(out).expect("valid JSON");
    assert_eq!(v["pid"], e.pid);
    assert_eq!(v["sport"], e.sport);
    assert_eq!(v["cgroup"], e.cgroup);
    assert_eq!(v["comm"], String::from_utf8_lossy(e.comm()).as_ref());
    for addr in [&e.saddr, &e.daddr] {
        let mut s = Vec::new();
        if e.ip == 4 {
            push_ipv4(&mut s, &addr[..4]);
            let want = std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string();
            assert_eq!(s, want.as_bytes());
        } else {
            push_ipv6(&mut s, addr);
            assert_eq!(String::from_utf8_lossy(&s), glibc_ntop6(addr), "{addr:02x?}");
        }
    }
}

extern "C" {
    fn inet_ntop(
        af: libc::c_int,
        src: *const libc::c_void,
        dst: *mut libc::c_char,
        size: libc::socklen_t,
    ) -> *const libc::c_char;
}

fn glibc_ntop6(a: &[u8; 16]) -> String {
    let mut buf = [0 as libc::c_char; 64];
    // SAFETY: a points to 16 bytes (an in6_addr); buf holds 64 > INET6_ADDRSTRLEN bytes.
    let p = unsafe { inet_ntop(libc::AF_INET6, a.as_ptr().cast(), buf.as_mut_ptr(), buf.len() as _) };
    assert!(!p.is_null());
    // SAFETY: inet_ntop NUL-terminated buf.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}
