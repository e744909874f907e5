//! Type ids and kinds.

/// A BTF type id. 0 is `void`; real types are numbered from 1 in file order
/// (split BTF continues after its base's count).
pub type TypeId = u32;

/// A BTF type kind. `Void` is only ever returned for type id 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Void,
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    Datasec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
}
