//! Seed corpora for every target, written into a cache directory (never git):
//! small synthetic blobs, and small BTF cut out of real kernel BTF (a prefix of
//! the types, and the types `struct sock` & co. need, re-encoded with their own
//! string table), so libFuzzer starts from real shapes without 5 MB inputs.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io;
use std::path::Path;

use crate::encoder::Builder;
use crate::targets::{elf, fixed_btf, NAMES, PAGE};

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

/// Bytes after the 12-byte record (as the parser's `extra_len`).
fn extra_len(kind: u32, vlen: usize) -> Option<usize> {
    Some(match kind {
        1 | 14 | 17 => 4,
        3 => 12,
        4 | 5 | 15 | 19 => 12 * vlen,
        6 | 13 => 8 * vlen,
        2 | 7..=12 | 16 | 18 => 0,
        _ => return None,
    })
}

/// One decoded type record: words as stored.
#[derive(Clone)]
struct Rec {
    words: Vec<u32>,
}

impl Rec {
    fn kind(&self) -> u32 {
        (self.words[1] >> 24) & 0x7f
    }
    fn vlen(&self) -> usize {
        (self.words[1] & 0xff_ffff) as usize
    }
    /// Indices (into `words`) of string offsets.
    fn name_slots(&self) -> Vec<usize> {
        let mut v = vec![0];
        let n = self.vlen();
        match self.kind() {
            4 | 5 | 19 => v.extend((0..n).map(|i| 3 + 3 * i)),
            6 | 13 => v.extend((0..n).map(|i| 3 + 2 * i)),
            _ => {}
        }
        v
    }
    /// Indices of type references; the bool marks a pointer target.
    fn type_slots(&self) -> Vec<(usize, bool)> {
        let n = self.vlen();
        match self.kind() {
            2 => vec![(2, true)],
            8..=12 | 14 | 17 | 18 => vec![(2, false)],
            3 => vec![(3, false), (4, false)],
            4 | 5 => (0..n).map(|i| (4 + 3 * i, false)).collect(),
            13 => std::iter::once((2, false)).chain((0..n).map(|i| (4 + 2 * i, false))).collect(),
            15 => (0..n).map(|i| (3 + 3 * i, false)).collect(),
            _ => vec![],
        }
    }
}

/// A raw BTF blob's types and strings (host byte order, base BTF only).
struct Parsed {
    recs: Vec<Rec>,
    strings: Vec<u8>,
}

fn parse(d: &[u8]) -> Option<Parsed> {
    if u16::from_ne_bytes(d.get(..2)?.try_into().ok()?) != 0xEB9F {
        return None;
    }
    let hdr = u32_at(d, 4)? as usize;
    let (toff, tlen, soff, slen) = (u32_at(d, 8)?, u32_at(d, 12)?, u32_at(d, 16)?, u32_at(d, 20)?);
    let types = d.get(hdr + toff as usize..hdr + (toff + tlen) as usize)?;
    let strings = d.get(hdr + soff as usize..hdr + (soff + slen) as usize)?.to_vec();
    let mut recs = Vec::new();
    let mut pos = 0;
    while pos + 12 <= types.len() {
        let info = u32_at(types, pos + 4)?;
        let extra = extra_len((info >> 24) & 0x7f, (info & 0xff_ffff) as usize)?;
        let end = pos + 12 + extra;
        let words = types.get(pos..end)?.chunks_exact(4).map(|c| u32::from_ne_bytes(c.try_into().unwrap()));
        recs.push(Rec { words: words.collect() });
        pos = end;
    }
    Some(Parsed { recs, strings })
}

impl Parsed {
    fn name(&self, off: u32) -> &[u8] {
        let s = self.strings.get(off as usize..).unwrap_or(&[]);
        &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
    }
    fn find(&self, name: &str, kind: u32) -> Option<u32> {
        let i =
            self.recs.iter().position(|r| r.kind() == kind && self.name(r.words[0]) == name.as_bytes())?;
        Some(i as u32 + 1)
    }

    /// Re-encode the types `ids` (in order) as a new blob: ids renumbered,
    /// strings rebuilt. A reference to a type not kept becomes `dangling(old)`.
    fn encode(&self, ids: &[u32], dangling: impl Fn(u32, bool) -> u32) -> Vec<u8> {
        let new_id: BTreeMap<u32, u32> = ids.iter().enumerate().map(|(i, &id)| (id, i as u32 + 1)).collect();
        let mut b = Builder::new();
        for &id in ids {
            let mut r = self.recs[id as usize - 1].clone();
            for slot in r.name_slots() {
                let s = String::from_utf8_lossy(self.name(r.words[slot])).into_owned();
                r.words[slot] = b.str(&s);
            }
            for (slot, ptr) in r.type_slots() {
                let old = r.words[slot];
                r.words[slot] = if old == 0 {
                    0
                } else {
                    new_id.get(&old).copied().unwrap_or_else(|| dangling(old, ptr))
                };
            }
            b.raw(r.words[0], r.words[1], r.words[2], &r.words[3..]);
        }
        b.build()
    }

    /// The first `k` types, references past them left dangling.
    fn prefix(&self, k: usize) -> Vec<u8> {
        let ids: Vec<u32> = (1..=k.min(self.recs.len()) as u32).collect();
        self.encode(&ids, |old, _| old)
    }

    /// The types reachable from `roots` without following pointers (pointer
    /// targets not otherwise kept become void), in their original order.
    fn closure(&self, roots: &[(&str, u32)]) -> Vec<u8> {
        let mut keep = std::collections::BTreeSet::new();
        let mut queue: VecDeque<u32> = roots.iter().filter_map(|&(n, k)| self.find(n, k)).collect();
        while let Some(id) = queue.pop_front() {
            if id == 0 || id as usize > self.recs.len() || !keep.insert(id) {
                continue;
            }
            let r = &self.recs[id as usize - 1];
            for (slot, ptr) in r.type_slots() {
                let t = r.words[slot];
                // Follow pointers only to function prototypes (tracepoint typedefs).
                let proto = t != 0 && self.recs.get(t as usize - 1).is_some_and(|p| p.kind() == 13);
                if !ptr || proto {
                    queue.push_back(t);
                }
            }
        }
        let ids: Vec<u32> = keep.into_iter().collect();
        self.encode(&ids, |_, _| 0)
    }
}

/// The roots whose closure makes a realistic small kernel BTF.
const ROOTS: &[(&str, u32)] = &[
    ("sock", 4),
    ("inet_sock", 4),
    ("net", 4),
    ("task_struct", 7),
    ("files_struct", 4),
    ("fdtable", 4),
    ("file", 7),
    ("socket", 4),
    ("tcp_v4_connect", 12),
    ("tcp_set_state", 12),
    ("btf_trace_inet_sock_set_state", 8),
];

fn put(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(name), data)
}

/// Small synthetic BTF blobs: one per kind, a header-only blob, a 32-byte header.
fn synthetic() -> Vec<(String, Vec<u8>)> {
    let mut v = vec![("fixed".to_string(), fixed_btf().to_vec())];
    v.push(("empty".to_string(), Builder::new().build()));
    let mut b = Builder::new();
    b.hdr_len = 32;
    let int = b.int("int", 4, 32, 0, true);
    b.struct_("s", 4, &[("m", int, 0, 0)]);
    v.push(("hdr32".to_string(), b.build()));
    let mut b = Builder::new();
    let int = b.int("int", 4, 32, 0, true);
    let p = b.ptr(int);
    let a = b.array(int, int, 4);
    let s = b.struct_("s", 24, &[("a", a, 0, 0), ("p", p, 128, 0), ("bits", int, 192, 3)]);
    b.union_("u", 24, &[("s", s, 0, 0)]);
    b.typedef("t", s);
    let proto = b.func_proto(int, &[("x", p)]);
    b.func("f", proto);
    v.push(("kinds".to_string(), b.build()));
    v
}

/// Write seed corpora for every target under `out/<target>/`, from the real
/// BTF files given (raw BTF) plus synthetic inputs.
pub fn write_all(out: &Path, real_btf: &[&Path]) -> io::Result<()> {
    let mut btfs = synthetic();
    for path in real_btf {
        let data = fs::read(path)?;
        let stem = path.file_stem().map_or("btf".into(), |s| s.to_string_lossy().into_owned());
        let Some(p) = parse(&data) else {
            eprintln!("seeds: {}: not raw BTF, skipped", path.display());
            continue;
        };
        for k in [16, 200, 2000] {
            btfs.push((format!("{stem}-prefix{k}"), p.prefix(k)));
        }
        btfs.push((format!("{stem}-sock"), p.closure(ROOTS)));
        // Plain truncations: header and first types, string section cut off.
        btfs.push((format!("{stem}-trunc4k"), data[..data.len().min(4096)].to_vec()));
    }
    for (name, blob) in &btfs {
        put(&out.join("btf_parse"), name, blob)?;
        put(&out.join("btf_parse"), &format!("{name}.elf"), &elf(0, 0, blob))?;
        put(&out.join("btf_elf"), name, &[&[0u8, 0, 0, 0, 0][..], blob].concat())?;
        put(&out.join("btf_elf"), &format!("{name}.elf32"), &[&[1u8, 0, 0, 0, 0][..], blob].concat())?;
        // Member paths over the tracer's names, against this blob.
        let mut m = vec![0u8, 3, 0, 1, 2]; // sock.__sk_common.skc_dport
        m.extend_from_slice(blob);
        put(&out.join("btf_member"), name, &m)?;
    }
    // Member paths in the fixed BTF: each name after sock.__sk_common, and a few others.
    let names = |want: &[&str]| -> Vec<u8> {
        want.iter().map(|w| NAMES.iter().position(|n| n == w).unwrap() as u8).collect()
    };
    for (i, path) in [
        &["sock", "__sk_common", "skc_num"][..],
        &["sock", "skc_net", "net"],
        &["sock", "__sk_common", "skc_v6_daddr", "in6_u", "u6_addr8"],
        &["inet_sock", "sk", "__sk_common", "skc_reuse"],
        &["skc_legacy_bits", "x"],
        &["cyc", "loop_a", "x"],
        &["selfish", "me"],
        &["deep", "far", "un"],
        &["dup", "x"],
        &["un", "arr"],
        &["grid", "grid"],
        &["x", "fp"],
        &["x", "v"],
        &["net", "ns", "inum"],
    ]
    .iter()
    .enumerate()
    {
        let spec = names(path);
        put(&out.join("btf_member"), &format!("path{i}"), &[&[0, spec.len() as u8][..], &spec].concat())?;
    }
    put(&out.join("btf_member"), "raw", b"\x01\x1csock.__sk_common.skc_dport..")?;

    // Rings: records as the kernel writes them, some wrapping.
    let events = sample_events();
    for (i, size_log) in [0u8, 3, 4, 7].into_iter().enumerate() {
        let size = 8usize << size_log;
        let mut body = Vec::new();
        let mut used = 0;
        for (j, ev) in events.iter().enumerate() {
            let rec = if j % 3 == 2 { lost_record(7) } else { sample_record(ev) };
            if used + rec.len() > size {
                break;
            }
            used += rec.len();
            body.extend(rec);
        }
        if body.is_empty() {
            body.extend(lost_record(1));
            body.truncate(size);
        }
        let tail = (size as u64) * 3 - 40 + i as u64 * 8; // starts near the end: records wrap
        let mut seed = vec![size_log]; // mode 0: head = tail + n % (size + 1)
        seed.extend(tail.to_le_bytes());
        seed.extend((body.len() as u16).to_le_bytes());
        seed.extend(&body);
        put(&out.join("perf_ring"), &format!("ring{i}"), &seed)?;
        // Same with an explicit data_offset/data_size and with the legacy layout.
        let mut s2 = vec![size_log | 8];
        s2.extend(((PAGE - 1024) as u16).to_le_bytes());
        s2.push(3 + size_log);
        s2.extend(&seed[1..]);
        put(&out.join("perf_ring"), &format!("ring{i}-layout"), &s2)?;
        let mut s3 = seed.clone();
        s3[0] |= 16;
        put(&out.join("perf_ring"), &format!("ring{i}-legacy"), &s3)?;
    }
    for (i, ev) in events.iter().enumerate() {
        put(&out.join("event_row"), &format!("event{i}"), ev)?;
    }
    Ok(())
}

/// A perf sample record carrying `data` (u32 size + data, padded to 8).
fn sample_record(data: &[u8]) -> Vec<u8> {
    let raw = (data.len() + 4).next_multiple_of(8) - 4;
    let mut r = 9u32.to_ne_bytes().to_vec();
    r.extend(0u16.to_ne_bytes());
    r.extend(((12 + raw) as u16).to_ne_bytes());
    r.extend((raw as u32).to_ne_bytes());
    r.extend(data);
    r.resize(12 + raw, 0);
    r
}

fn lost_record(n: u64) -> Vec<u8> {
    let mut r = 2u32.to_ne_bytes().to_vec();
    r.extend(0u16.to_ne_bytes());
    r.extend(24u16.to_ne_bytes());
    r.extend(77u64.to_ne_bytes());
    r.extend(n.to_ne_bytes());
    r
}

/// Events like the BPF programs write them (see src/tracer/event.rs).
fn sample_events() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let addrs: [[u8; 16]; 4] = [
        [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3],
        [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
    ];
    for (i, kind) in [1u8, 2, 3, 9].into_iter().enumerate() {
        let mut b = vec![0u8; 80];
        b[0..8].copy_from_slice(&(1_000_000u64 * i as u64).to_le_bytes());
        b[8..12].copy_from_slice(&(1234 + i as u32).to_le_bytes());
        b[12..16].copy_from_slice(&(1240 + i as u32).to_le_bytes());
        b[16..16 + 6].copy_from_slice(b"telnet");
        b[32] = kind;
        b[33] = if i == 0 { 4 } else { 6 };
        b[34..36].copy_from_slice(&55758u16.to_le_bytes());
        b[36..38].copy_from_slice(&80u16.to_be_bytes());
        b[40..44].copy_from_slice(&4026531840u32.to_le_bytes());
        b[48..64].copy_from_slice(&addrs[i]);
        b[64..80].copy_from_slice(&addrs[(i + 1) % 4]);
        v.push(b);
    }
    v
}
