//! Loading: header checks, the one-pass type offset index, `.BTF` from ELF,
//! files (mmap with a read fallback), the kernel's BTF and split BTF.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use object::read::elf::{FileHeader, SectionHeader};
use object::{Endianness, FileKind};

use super::types::{extra_len, u32_at, Finder};
use super::{Btf, BtfError, Bytes, FoundCache, Kind, TypeId};

const MAGIC: u16 = 0xEB9F;
const MIN_HDR_LEN: u64 = 24;
const TYPE_HDR_LEN: usize = 12;

/// Where to look for a vmlinux ELF when `/sys/kernel/btf/vmlinux` is missing
/// (libbpf / cilium list); `%s` is the kernel release (`uname -r`).
const VMLINUX_PATHS: &[&str] = &[
    "/boot/vmlinux-%s",
    "/lib/modules/%s/vmlinux-%s",
    "/lib/modules/%s/build/vmlinux",
    "/usr/lib/modules/%s/kernel/vmlinux",
    "/usr/lib/debug/boot/vmlinux-%s",
    "/usr/lib/debug/boot/vmlinux-%s.debug",
    "/usr/lib/debug/lib/modules/%s/vmlinux",
];

const SYSFS_VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// The split-BTF context of a blob being parsed.
struct Parent {
    first_id: TypeId,
    str_base: u32,
    base: Option<Arc<Btf>>,
}

impl Parent {
    fn none() -> Parent {
        Parent { first_id: 1, str_base: 0, base: None }
    }
    fn of(base: Arc<Btf>) -> Parent {
        Parent { first_id: base.type_count(), str_base: base.str_len(), base: Some(base) }
    }
}

impl Btf {
    /// Parse raw BTF (magic 0xEB9F) or an ELF file whose `.BTF` section is used.
    pub fn from_bytes(data: Vec<u8>) -> Result<Btf, BtfError> {
        parse(Bytes::Owned(data), "<bytes>".to_string(), Parent::none(), &[])
    }

    /// Parse a raw BTF or ELF file. The file is mapped read-only (private)
    /// when possible; where mapping is refused (older sysfs) it is read.
    pub fn from_file(path: &Path) -> Result<Btf, BtfError> {
        Btf::from_file_finding(path, &[])
    }

    /// [`Btf::from_file`], looking up `wanted` as [`Btf::prefetch`] does, in
    /// the loading pass itself (cheaper than a second pass).
    pub fn from_file_finding(path: &Path, wanted: &[(&str, Kind)]) -> Result<Btf, BtfError> {
        parse(read_file(path)?, path.display().to_string(), Parent::none(), wanted)
    }

    /// The running kernel's BTF: `/sys/kernel/btf/vmlinux`, else a vmlinux
    /// ELF from the libbpf path list for `uname -r`. The error lists every
    /// path tried and why it failed.
    pub fn kernel() -> Result<Btf, BtfError> {
        Btf::kernel_finding(&[])
    }

    /// [`Btf::kernel`], looking up `wanted` in the loading pass (see
    /// [`Btf::from_file_finding`]).
    pub fn kernel_finding(wanted: &[(&str, Kind)]) -> Result<Btf, BtfError> {
        let mut tried = Vec::new();
        match Btf::from_file_finding(Path::new(SYSFS_VMLINUX), wanted) {
            Ok(btf) => return Ok(btf),
            Err(e) => tried.push((SYSFS_VMLINUX.to_string(), e.to_string())),
        }
        let release = match kernel_release() {
            Ok(r) => r,
            Err(e) => {
                tried.push(("uname".to_string(), e.to_string()));
                return Err(BtfError::KernelBtfNotFound { tried });
            }
        };
        for pattern in VMLINUX_PATHS {
            let path = pattern.replace("%s", &release);
            if !Path::new(&path).exists() {
                tried.push((path, "does not exist".to_string()));
                continue;
            }
            match Btf::from_file_finding(Path::new(&path), wanted) {
                Ok(btf) => return Ok(btf),
                Err(e) => tried.push((path, e.to_string())),
            }
        }
        Err(BtfError::KernelBtfNotFound { tried })
    }

    /// Split BTF (e.g. `/sys/kernel/btf/<module>`) on top of `base`: type ids
    /// continue after `base.type_count()`, string offsets after `base.str_len()`.
    pub fn split(base: Arc<Btf>, data: Vec<u8>) -> Result<Btf, BtfError> {
        parse(Bytes::Owned(data), "<bytes>".to_string(), Parent::of(base), &[])
    }

    /// [`Btf::split`] reading the split BTF from a file.
    pub fn split_file(base: Arc<Btf>, path: &Path) -> Result<Btf, BtfError> {
        let data = read_file(path)?;
        parse(data, path.display().to_string(), Parent::of(base), &[])
    }
}

fn read_file(path: &Path) -> Result<Bytes, BtfError> {
    let io = |err| BtfError::Io { path: path.to_path_buf(), err };
    let mut file = File::open(path).map_err(io)?;
    // SAFETY: a private read-only mapping. BTF files (sysfs, vmlinux) are not
    // modified while we run; a concurrent truncation could fault, as for any
    // mmap reader. MAP_PRIVATE is required by sysfs (it refuses shared maps).
    if let Ok(map) = unsafe { memmap2::MmapOptions::new().map_copy_read_only(&file) } {
        if !map.is_empty() {
            return Ok(Bytes::Mapped(map));
        }
    }
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(io)?;
    Ok(Bytes::Owned(data))
}

fn kernel_release() -> Result<String, std::io::Error> {
    // SAFETY: utsname is plain old data; uname fills it and returns 0 on success.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel NUL-terminates release within the array.
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) };
    Ok(release.to_string_lossy().into_owned())
}

/// Find the BTF blob (raw, or the `.BTF` section of an ELF file), check the
/// header and index the types (looking up `wanted` on the way).
fn parse(data: Bytes, mut origin: String, parent: Parent, wanted: &[(&str, Kind)]) -> Result<Btf, BtfError> {
    let bad = |origin: &str, msg: String| BtfError::Malformed { origin: origin.to_string(), msg };
    if data.len() > u32::MAX as usize {
        return Err(bad(&origin, format!("{} bytes is too large", data.len())));
    }
    let blob = match data.get(..4) {
        None if data.len() < 2 => {
            return Err(bad(&origin, format!("empty or truncated: {} bytes", data.len())))
        }
        Some(b"\x7fELF") => {
            let range = elf_btf_range(&data, &origin)?;
            origin.push_str(" (.BTF section)");
            range
        }
        _ => 0..data.len(),
    };
    let (types, strings) = header(&data[blob.clone()], &origin, parent.base.is_none())?;
    let types = types.start + blob.start..types.end + blob.start;
    let strings = strings.start + blob.start..strings.end + blob.start;
    if u64::from(parent.str_base) + strings.len() as u64 > u64::from(u32::MAX) {
        return Err(bad(&origin, "string offsets overflow u32".to_string()));
    }
    let mut names = Names {
        finder: Finder::new(wanted, parent.base.as_deref()),
        local: &data[strings.clone()],
        str_base: parent.str_base,
        base: parent.base.as_deref(),
    };
    let offsets = index(&data, types.clone(), blob.start, parent.first_id, &origin, &mut names)?;
    let found = FoundCache::default();
    names.finder.store(&found);
    Ok(Btf {
        data,
        types,
        strings,
        offsets,
        first_id: parent.first_id,
        str_base: parent.str_base,
        base: parent.base,
        origin,
        found,
    })
}

/// Check the header of a raw blob; returns the type and string section
/// ranges relative to the blob's start.
fn header(blob: &[u8], origin: &str, is_base: bool) -> Result<(Range<usize>, Range<usize>), BtfError> {
    let bad = |msg: String| BtfError::Malformed { origin: origin.to_string(), msg };
    let len = blob.len() as u64;
    let magic = match blob.get(..2) {
        Some(m) => u16::from_ne_bytes([m[0], m[1]]),
        None => return Err(bad(format!("truncated: {len} bytes, no BTF header"))),
    };
    if magic == MAGIC.swap_bytes() {
        return Err(BtfError::ForeignByteOrder { origin: origin.to_string() });
    }
    if magic != MAGIC {
        return Err(bad(format!("bad magic 0x{magic:04x} (want 0xeb9f raw BTF or an ELF file)")));
    }
    if len < MIN_HDR_LEN {
        return Err(bad(format!("truncated: header needs {MIN_HDR_LEN} bytes but file has {len} bytes")));
    }
    let version = blob[2];
    if version != 1 {
        return Err(bad(format!("unsupported BTF version {version} (want 1)")));
    }
    let hdr_len = u64::from(u32_at(blob, 4));
    if hdr_len < MIN_HDR_LEN {
        return Err(bad(format!("header length {hdr_len} is below {MIN_HDR_LEN}")));
    }
    if hdr_len > len {
        return Err(bad(format!("truncated: header length {hdr_len} but file has {len} bytes")));
    }
    let section = |what: &str, off_at: usize| -> Result<Range<usize>, BtfError> {
        let start = hdr_len + u64::from(u32_at(blob, off_at));
        let end = start + u64::from(u32_at(blob, off_at + 4));
        if end > len {
            return Err(bad(format!("truncated: {what} section ends at {end} but file has {len} bytes")));
        }
        Ok(start as usize..end as usize)
    };
    let types = section("type", 8)?;
    let strings = section("string", 16)?;
    let s = &blob[strings.clone()];
    if is_base && s.first().is_some_and(|&b| b != 0) {
        return Err(bad("string section does not start with NUL".to_string()));
    }
    if s.last().is_some_and(|&b| b != 0) {
        return Err(bad("string section does not end with NUL".to_string()));
    }
    Ok((types, strings))
}

/// The one linear pass: record each type's absolute byte offset and check
/// that its trailing data fits in the type section, looking up `names` on
/// the way. (~1.1 ms for a 6.18 vmlinux's 126k records here: a serial
/// chain of loads; a table instead of `extra_len` made no difference.)
fn index(
    data: &[u8],
    types: Range<usize>,
    blob_start: usize,
    first_id: TypeId,
    origin: &str,
    names: &mut Names,
) -> Result<Vec<u32>, BtfError> {
    // A vmlinux averages ~26 bytes per type.
    let mut offsets = Vec::with_capacity(types.len() / 24 + 1);
    let section = &data[types.clone()];
    let end = section.len();
    let mut pos = 0usize;
    while pos < end {
        let Some(hdr) = section.get(pos..pos + TYPE_HDR_LEN) else {
            return Err(index_error(origin, first_id, &offsets, types.start + pos - blob_start, |id, at| {
                format!(
                    "truncated: type id {id} at byte offset {at} needs {TYPE_HDR_LEN} bytes, \
                     type section ends at {}",
                    types.end - blob_start
                )
            }));
        };
        let info = u32::from_ne_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        let kind = (info >> 24) & 0x7f;
        let Some(extra) = extra_len(kind, info & 0xff_ffff) else {
            return Err(index_error(origin, first_id, &offsets, types.start + pos - blob_start, |id, at| {
                format!("type id {id} at byte offset {at}: unknown kind {kind}")
            }));
        };
        let next = pos as u64 + TYPE_HDR_LEN as u64 + extra as u64;
        if next > end as u64 {
            return Err(index_error(origin, first_id, &offsets, types.start + pos - blob_start, |id, at| {
                format!(
                    "truncated: type id {id} (kind {kind}) at byte offset {at} ends at {} \
                     but type section ends at {}",
                    next + (types.start - blob_start) as u64,
                    types.end - blob_start
                )
            }));
        }
        if names.finder.wants(kind) {
            let id = first_id + offsets.len() as u32;
            names.visit(id, kind, u32::from_ne_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]));
        }
        offsets.push((types.start + pos) as u32);
        pos = next as usize;
    }
    Ok(offsets)
}

/// The names looked up while indexing, and the strings to read them from.
struct Names<'a> {
    finder: Finder<'a>,
    /// This blob's string section; offsets below `str_base` are the base's.
    local: &'a [u8],
    str_base: u32,
    base: Option<&'a Btf>,
}

impl Names<'_> {
    fn visit(&mut self, id: TypeId, kind: u32, name_off: u32) {
        let tail = match name_off.checked_sub(self.str_base) {
            Some(off) => self.local.get(off as usize..).unwrap_or(&[]),
            None => self.base.map_or(&[][..], |b| b.str_tail(name_off)),
        };
        self.finder.visit(id, kind, tail);
    }
}

/// A malformed-index error for the type after `offsets`, at blob offset `at`.
fn index_error(
    origin: &str,
    first_id: TypeId,
    offsets: &[u32],
    at: usize,
    msg: impl FnOnce(u64, usize) -> String,
) -> BtfError {
    let id = first_id as u64 + offsets.len() as u64;
    BtfError::Malformed { origin: origin.to_string(), msg: msg(id, at) }
}

/// Byte range of the `.BTF` section of an ELF file (32 or 64 bit), reading
/// only the ELF header and section headers.
fn elf_btf_range(data: &[u8], origin: &str) -> Result<Range<usize>, BtfError> {
    match FileKind::parse(data) {
        Ok(FileKind::Elf32) => elf_range::<object::elf::FileHeader32<Endianness>>(data, origin),
        Ok(FileKind::Elf64) => elf_range::<object::elf::FileHeader64<Endianness>>(data, origin),
        _ => Err(BtfError::Malformed { origin: origin.to_string(), msg: "not a valid ELF file".to_string() }),
    }
}

fn elf_range<H: FileHeader<Endian = Endianness>>(
    data: &[u8],
    origin: &str,
) -> Result<Range<usize>, BtfError> {
    let elf_err = |e: object::read::Error| BtfError::Malformed {
        origin: origin.to_string(),
        msg: format!("bad ELF file: {e}"),
    };
    let no_btf = |msg: &str| BtfError::NoBtfSection { origin: origin.to_string(), msg: msg.to_string() };
    let hdr = H::parse(data).map_err(elf_err)?;
    let endian = hdr.endian().map_err(elf_err)?;
    if endian != Endianness::default() {
        return Err(BtfError::ForeignByteOrder { origin: origin.to_string() });
    }
    let sections = hdr.sections(endian, data).map_err(elf_err)?;
    let (_, sh) = sections.section_by_name(endian, b".BTF").ok_or_else(|| {
        no_btf("ELF file has no .BTF section (kernel built without CONFIG_DEBUG_INFO_BTF?)")
    })?;
    let (off, size) =
        sh.file_range(endian).ok_or_else(|| no_btf(".BTF section has no data in the file (SHT_NOBITS)"))?;
    let end = off.checked_add(size).filter(|&e| e <= data.len() as u64);
    match end {
        Some(end) => Ok(off as usize..end as usize),
        None => Err(no_btf(&format!(
            ".BTF section at {off}+{size} is past the end of the file ({} bytes)",
            data.len()
        ))),
    }
}
