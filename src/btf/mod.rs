//! Minimal, lazy BTF parser: just enough to read kernel struct offsets and
//! function prototypes from `/sys/kernel/btf/vmlinux` (or a vmlinux ELF's
//! `.BTF` section, or module split BTF).
//!
//! Design:
//! - Loading does one linear pass over the type section that records the byte
//!   offset of every type (`Vec<u32>`) and checks that each type's trailing
//!   data fits. Nothing else is decoded up front; no name map is built.
//! - Lookups (`find`, `member`, ...) decode only the types they touch, reading
//!   names straight from the string section without allocating.
//! - Only the host byte order is supported (BTF is produced for the running
//!   kernel); a byte-swapped magic gives a clear error.
//! - The info word is decoded with the widened 2026 layout: kind = bits 24..31
//!   (7 bits), vlen = bits 0..24, kflag = bit 31. Older blobs have the extra bits
//!   zero, so this is backward compatible. `hdr_len` is honoured (24 or 32+).
//!
//! Files: `load.rs` (header, index, ELF, files, kernel), `types.rs` (raw type
//! access, names, find, modifiers, sizes, prototypes), `member.rs` (member
//! paths, anonymous members, bitfields), `error.rs`.

mod error;
mod kind;
mod load;
mod member;
mod types;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

pub use error::BtfError;
pub use kind::{Kind, TypeId};

/// A resolved struct/union member (see [`Btf::member`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Bytes from the start of the outermost type. For a bitfield: the bit
    /// offset rounded down to a byte.
    pub offset: u32,
    /// Size in bytes of the member's type, resolved past modifiers.
    pub size: u32,
    /// The member's type, resolved past typedef/const/volatile/restrict/type_tag.
    pub type_id: TypeId,
    /// Kind of `type_id`.
    pub kind: Kind,
    /// Set if the member is a bitfield (kflag encoding or legacy INT encoding).
    pub bitfield: Option<Bitfield>,
    /// The path that was looked up, e.g. `sock.__sk_common.skc_dport`.
    pub path: String,
}

/// Bit position of a bitfield member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bitfield {
    /// Bits from the start of the outermost type.
    pub bit_offset: u32,
    /// Width in bits.
    pub bits: u32,
}

impl Member {
    /// The byte offset, for a plain load of `size` bytes. Errors (naming the
    /// member) if it is a bitfield: a plain load would read the wrong bits.
    pub fn plain_offset(&self) -> Result<u32, BtfError> {
        match self.bitfield {
            None => Ok(self.offset),
            Some(bf) => {
                Err(BtfError::Bitfield { path: self.path.clone(), bit_offset: bf.bit_offset, bits: bf.bits })
            }
        }
    }
}

/// A function prototype: return type and `(name, type)` parameters, with the
/// type ids exactly as stored (not resolved past modifiers).
///
/// - A varargs prototype ends with a parameter of type 0 and an empty name; it
///   is kept as-is.
/// - For a raw tracepoint typedef (`btf_trace_<name>`, see
///   [`Btf::typedef_proto`]) the first parameter is the hidden `void *__data`
///   context that the kernel passes to every probe; it is included as-is, so
///   the tracepoint's own arguments start at `params[1]`.
#[derive(Clone, Debug)]
pub struct Proto {
    pub ret: TypeId,
    pub params: Vec<(String, TypeId)>,
}

/// The bytes behind a [`Btf`]: owned, or a read-only file mapping.
enum Bytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Mapped(m) => m,
        }
    }
}

/// Parsed (indexed) BTF. Cheap to share through `Arc` (for split BTF bases).
pub struct Btf {
    data: Bytes,
    /// Absolute byte range of the type section in `data`.
    types: Range<usize>,
    /// Absolute byte range of the string section in `data`.
    strings: Range<usize>,
    /// Absolute byte offset in `data` of each local type; entry i is type id
    /// `first_id + i`.
    offsets: Vec<u32>,
    /// First local type id: 1 for base BTF, the base's `type_count()` for split.
    first_id: TypeId,
    /// First local string offset: 0 for base BTF, the base's total string length for split.
    str_base: u32,
    base: Option<Arc<Btf>>,
    /// File path or `<bytes>`, for error messages.
    origin: String,
    /// Cache of `find_all` results: kind → name → ids.
    found: FoundCache,
}

pub(crate) type FoundCache = Mutex<HashMap<Kind, HashMap<String, Vec<TypeId>>>>;

impl std::fmt::Debug for Btf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Btf")
            .field("origin", &self.origin)
            .field("first_id", &self.first_id)
            .field("types", &self.offsets.len())
            .field("type_bytes", &self.types.len())
            .field("string_bytes", &self.strings.len())
            .field("split", &self.base.is_some())
            .finish()
    }
}

impl Btf {
    /// Number of type ids, including void (id 0) and, for split BTF, the base's types.
    pub fn type_count(&self) -> u32 {
        self.first_id + self.offsets.len() as u32
    }

    /// Total string length including the base's (where a split BTF built on
    /// this one starts its string offsets).
    pub fn str_len(&self) -> u32 {
        self.str_base + self.strings.len() as u32
    }

    /// The base BTF, for split BTF.
    pub fn base(&self) -> Option<&Arc<Btf>> {
        self.base.as_ref()
    }
}
