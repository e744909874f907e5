//! `BtfError`: every failure of the BTF parser, each rendered as one line that
//! names what is wrong (file, type, member path, byte offset).

use std::fmt;
use std::path::PathBuf;

use super::kind::{Kind, TypeId};

/// An error from parsing BTF or from a lookup in it.
#[derive(Debug)]
pub enum BtfError {
    /// Opening or reading a file failed.
    Io { path: PathBuf, err: std::io::Error },
    /// The blob (from `origin`: a file path or `<bytes>`) is not valid BTF.
    Malformed { origin: String, msg: String },
    /// The magic is 0xEB9F byte-swapped, or the ELF file has the other byte order.
    ForeignByteOrder { origin: String },
    /// An ELF file without a usable `.BTF` section.
    NoBtfSection { origin: String, msg: String },
    /// None of the kernel BTF locations could be loaded; `tried` holds (path, reason).
    KernelBtfNotFound { tried: Vec<(String, String)> },
    /// No type with this name and kind.
    NotFound { kind: Kind, name: String },
    /// More than one type with this name and kind.
    Ambiguous { kind: Kind, name: String, ids: Vec<TypeId> },
    /// A member path step failed to find a member.
    NoMember { ty: String, member: String, path: String },
    /// A plain (byte) access was requested for a bitfield member.
    Bitfield { path: String, bit_offset: u32, bits: u32 },
    /// A type id or type graph problem found while following types
    /// (id out of range, wrong kind, cycle, bad string...).
    BadType { id: TypeId, msg: String },
    /// A member path is syntactically bad (empty, single component...).
    BadPath { path: String, msg: String },
}

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BtfError::Io { path, err } => write!(f, "BTF: {}: {}", path.display(), err),
            BtfError::Malformed { origin, msg } => write!(f, "BTF: {origin}: {msg}"),
            BtfError::ForeignByteOrder { origin } => {
                write!(f, "BTF: {origin}: foreign byte order not supported")
            }
            BtfError::NoBtfSection { origin, msg } => write!(f, "BTF: {origin}: {msg}"),
            BtfError::KernelBtfNotFound { tried } => {
                write!(f, "BTF: no kernel BTF found; tried:")?;
                for (i, (path, why)) in tried.iter().enumerate() {
                    let sep = if i == 0 { " " } else { "; " };
                    write!(f, "{sep}{path} ({why})")?;
                }
                Ok(())
            }
            BtfError::NotFound { kind, name } => {
                write!(f, "BTF: no {} named {name}", kind_word(*kind))
            }
            BtfError::Ambiguous { kind, name, ids } => write!(
                f,
                "BTF: {} {name} is ambiguous: {} matches (type ids {ids:?})",
                kind_word(*kind),
                ids.len()
            ),
            BtfError::NoMember { ty, member, path } => {
                write!(f, "BTF: {ty} has no member {member} (path {path})")
            }
            BtfError::Bitfield { path, bit_offset, bits } => write!(
                f,
                "BTF: member {path} is a bitfield ({bits} bits at bit offset {bit_offset}): \
                 a plain load would read the wrong bits"
            ),
            BtfError::BadType { id, msg } => write!(f, "BTF: type id {id}: {msg}"),
            BtfError::BadPath { path, msg } => write!(f, "BTF: member path {path:?}: {msg}"),
        }
    }
}

impl std::error::Error for BtfError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BtfError::Io { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// The C-ish word for a kind, used in messages ("struct sock", "typedef u32").
pub(crate) fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Void => "void",
        Kind::Int => "int",
        Kind::Ptr => "pointer",
        Kind::Array => "array",
        Kind::Struct => "struct",
        Kind::Union => "union",
        Kind::Enum => "enum",
        Kind::Fwd => "forward declaration",
        Kind::Typedef => "typedef",
        Kind::Volatile => "volatile",
        Kind::Const => "const",
        Kind::Restrict => "restrict",
        Kind::Func => "func",
        Kind::FuncProto => "func_proto",
        Kind::Var => "var",
        Kind::Datasec => "datasec",
        Kind::Float => "float",
        Kind::DeclTag => "decl_tag",
        Kind::TypeTag => "type_tag",
        Kind::Enum64 => "enum64",
    }
}
