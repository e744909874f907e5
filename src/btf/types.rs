//! Raw type records and the lookups built directly on them: strings, names,
//! `find`, modifiers, sizes and function prototypes.

use super::error::kind_word;
use super::{Btf, BtfError, FoundCache, Kind, Proto, TypeId};

/// Longest typedef/const/volatile/restrict/type_tag chain followed (and the
/// array nesting depth for `size_of`); beyond it we assume a cycle.
const MAX_CHAIN: usize = 64;

/// Read a host-order u32. Callers only pass offsets that the header check or
/// the type index has proven to be in range.
pub(crate) fn u32_at(d: &[u8], at: usize) -> u32 {
    let b = &d[at..at + 4];
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

/// Bytes following the 12-byte type record for kind number `kind`, or None
/// for an unknown kind.
pub(crate) fn extra_len(kind: u32, vlen: u32) -> Option<usize> {
    let vlen = vlen as usize;
    Some(match kind {
        1 => 4,                    // INT
        3 => 12,                   // ARRAY
        4 | 5 => 12 * vlen,        // STRUCT, UNION
        6 => 8 * vlen,             // ENUM
        13 => 8 * vlen,            // FUNC_PROTO
        14 => 4,                   // VAR
        15 => 12 * vlen,           // DATASEC
        17 => 4,                   // DECL_TAG
        19 => 12 * vlen,           // ENUM64
        2 | 7..=12 | 16 | 18 => 0, // PTR, FWD, TYPEDEF..FUNC, FLOAT, TYPE_TAG
        _ => return None,
    })
}

fn kind_from_num(n: u32) -> Option<Kind> {
    use Kind::*;
    const KINDS: [Kind; 19] = [
        Int, Ptr, Array, Struct, Union, Enum, Fwd, Typedef, Volatile, Const, Restrict, Func, FuncProto, Var,
        Datasec, Float, DeclTag, TypeTag, Enum64,
    ];
    KINDS.get((n as usize).wrapping_sub(1)).copied()
}

fn kind_num(kind: Kind) -> u32 {
    match kind {
        Kind::Void => 0,
        k => (1..=19).find(|&n| kind_from_num(n) == Some(k)).unwrap_or(0),
    }
}

/// Whether `tail` (the string section from a name's offset) starts with
/// exactly `want`.
fn name_matches(tail: &[u8], want: &[u8]) -> bool {
    tail.len() > want.len() && tail[want.len()] == 0 && tail.starts_with(want)
}

/// (name, kind) pairs looked up in one pass over the types: by
/// [`Btf::prefetch`], or by the loading index pass itself.
pub(crate) struct Finder<'w> {
    /// Bit k set: some wanted name has kind number k.
    mask: u32,
    wanted: &'w [(&'w str, Kind)],
    kinds: Vec<u32>,
    found: Vec<Vec<TypeId>>,
}

impl<'w> Finder<'w> {
    /// The ids found in `base` (split BTF) come first.
    pub(crate) fn new(wanted: &'w [(&'w str, Kind)], base: Option<&Btf>) -> Finder<'w> {
        let kinds: Vec<u32> = wanted.iter().map(|(_, k)| kind_num(*k)).collect();
        let mask = kinds.iter().filter(|&&k| k != 0).fold(0, |m, &k| m | 1 << k);
        let found = wanted
            .iter()
            .map(|(name, kind)| base.map_or_else(Vec::new, |b| b.find_all(name, *kind)))
            .collect();
        Finder { mask, wanted, kinds, found }
    }

    #[inline]
    pub(crate) fn wants(&self, kind: u32) -> bool {
        self.mask >> kind & 1 != 0
    }

    /// Type `id` of kind number `kind`, whose name starts `tail`.
    pub(crate) fn visit(&mut self, id: TypeId, kind: u32, tail: &[u8]) {
        let Some(&first) = tail.first() else { return };
        for (j, (name, _)) in self.wanted.iter().enumerate() {
            let want = name.as_bytes();
            if self.kinds[j] == kind
                && want.first().copied().unwrap_or(0) == first
                && name_matches(tail, want)
            {
                self.found[j].push(id);
            }
        }
    }

    pub(crate) fn store(self, cache: &FoundCache) {
        if let Ok(mut cache) = cache.lock() {
            for ((name, kind), ids) in self.wanted.iter().zip(self.found) {
                cache.entry(*kind).or_default().insert(name.to_string(), ids);
            }
        }
    }
}

/// Kinds that `skip_mods` walks through.
fn is_modifier(kind: Kind) -> bool {
    matches!(kind, Kind::Typedef | Kind::Const | Kind::Volatile | Kind::Restrict | Kind::TypeTag)
}

/// One undecoded type record.
pub(crate) struct RawType<'a> {
    pub name_off: u32,
    pub info: u32,
    /// `size` for INT/STRUCT/UNION/ENUM/ENUM64/FLOAT/DATASEC, else `type`.
    pub size_type: u32,
    /// Trailing data (members, params, INT encoding, ...).
    pub extra: &'a [u8],
}

impl RawType<'_> {
    pub fn kind(&self) -> Kind {
        // The index rejected unknown kinds.
        kind_from_num((self.info >> 24) & 0x7f).unwrap_or(Kind::Void)
    }
    pub fn vlen(&self) -> usize {
        (self.info & 0xff_ffff) as usize
    }
    pub fn kflag(&self) -> bool {
        self.info >> 31 != 0
    }
    /// Word `i` of the trailing data (in range by construction of `extra`).
    pub fn word(&self, i: usize) -> u32 {
        u32_at(self.extra, i * 4)
    }
}

impl Btf {
    /// The record of type `id` (not void), from this BTF or its base.
    pub(crate) fn raw(&self, id: TypeId) -> Result<RawType<'_>, BtfError> {
        if id < self.first_id {
            return match &self.base {
                Some(base) => base.raw(id),
                None => Err(BtfError::BadType { id, msg: "void has no type record".to_string() }),
            };
        }
        let Some(&off) = self.offsets.get((id - self.first_id) as usize) else {
            return Err(BtfError::BadType {
                id,
                msg: format!("out of range (type count {})", self.type_count()),
            });
        };
        let off = off as usize;
        let info = u32_at(&self.data, off + 4);
        let extra = extra_len((info >> 24) & 0x7f, info & 0xff_ffff).unwrap_or(0);
        Ok(RawType {
            name_off: u32_at(&self.data, off),
            info,
            size_type: u32_at(&self.data, off + 8),
            extra: &self.data[off + 12..off + 12 + extra],
        })
    }

    /// The string at offset `off` up to (without) its NUL, bounds-checked.
    fn str_bytes(&self, off: u32) -> Result<&[u8], String> {
        if off < self.str_base {
            return match &self.base {
                Some(base) => base.str_bytes(off),
                None => Err(format!("string offset {off} has no base BTF")),
            };
        }
        let s = &self.data[self.strings.clone()];
        let rest = s
            .get((off - self.str_base) as usize..)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| format!("string offset {off} is past the string section end"))?;
        match rest.iter().position(|&b| b == 0) {
            Some(n) => Ok(&rest[..n]),
            None => Err(format!("string at offset {off} is not NUL-terminated")),
        }
    }

    /// The string at `off`, as UTF-8; errors name the type `id` using it.
    pub(crate) fn str_at(&self, off: u32, id: TypeId) -> Result<&str, BtfError> {
        let bytes = self.str_bytes(off).map_err(|msg| BtfError::BadType { id, msg })?;
        std::str::from_utf8(bytes).map_err(|_| BtfError::BadType {
            id,
            msg: format!("name at string offset {off} is not valid UTF-8"),
        })
    }

    /// The string section from offset `off` on (empty when out of range).
    pub(crate) fn str_tail(&self, off: u32) -> &[u8] {
        if off < self.str_base {
            return self.base.as_ref().map_or(&[], |b| b.str_tail(off));
        }
        self.data[self.strings.clone()].get((off - self.str_base) as usize..).unwrap_or(&[])
    }

    /// Whether the string at `off` equals `want`, without allocating.
    pub(crate) fn name_is(&self, off: u32, want: &[u8]) -> bool {
        name_matches(self.str_tail(off), want)
    }

    /// All type ids with this name and kind, ascending (base BTF first).
    /// Scans the type index (about 0.25 ms on a 6.18 vmlinux); results are
    /// cached per (name, kind).
    pub fn find_all(&self, name: &str, kind: Kind) -> Vec<TypeId> {
        let cached = self.found.lock().ok().and_then(|c| c.get(&kind)?.get(name).cloned());
        if let Some(ids) = cached {
            return ids;
        }
        let ids = self.scan(name, kind);
        if let Ok(mut cache) = self.found.lock() {
            let per_kind = cache.entry(kind).or_default();
            per_kind.insert(name.to_string(), ids.clone());
        }
        ids
    }

    /// Look up many (name, kind) pairs in one pass over the types and cache
    /// the answers, so later `find`/`member` calls for them cost no scan.
    /// (Loading can do this in its own pass: [`Btf::kernel_finding`].)
    pub fn prefetch(&self, wanted: &[(&str, Kind)]) {
        let mut finder = Finder::new(wanted, self.base.as_deref());
        self.pass(&mut finder);
        finder.store(&self.found);
    }

    /// The uncached linear scan behind `find_all`.
    fn scan(&self, name: &str, kind: Kind) -> Vec<TypeId> {
        let wanted = [(name, kind)];
        let mut finder = Finder::new(&wanted, self.base.as_deref());
        self.pass(&mut finder);
        finder.found.pop().unwrap_or_default()
    }

    /// One pass over the indexed types for `finder`.
    fn pass(&self, finder: &mut Finder) {
        let data: &[u8] = &self.data;
        for (i, &off) in self.offsets.iter().enumerate() {
            let off = off as usize;
            let kind = (u32_at(data, off + 4) >> 24) & 0x7f;
            if finder.wants(kind) {
                finder.visit(self.first_id + i as u32, kind, self.str_tail(u32_at(data, off)));
            }
        }
    }

    /// The one type with this name and kind; NotFound or Ambiguous otherwise.
    pub fn find(&self, name: &str, kind: Kind) -> Result<TypeId, BtfError> {
        let ids = self.find_all(name, kind);
        match ids.len() {
            0 => Err(BtfError::NotFound { kind, name: name.to_string() }),
            1 => Ok(ids[0]),
            _ => Err(BtfError::Ambiguous { kind, name: name.to_string(), ids }),
        }
    }

    /// Whether a FUNC with this name exists.
    pub fn has_func(&self, name: &str) -> bool {
        !self.find_all(name, Kind::Func).is_empty()
    }

    pub fn kind(&self, id: TypeId) -> Result<Kind, BtfError> {
        if id == 0 {
            return Ok(Kind::Void);
        }
        Ok(self.raw(id)?.kind())
    }

    /// The type's name ("" for void and anonymous types).
    pub fn name(&self, id: TypeId) -> Result<&str, BtfError> {
        if id == 0 {
            return Ok("");
        }
        let t = self.raw(id)?;
        self.str_at(t.name_off, id)
    }

    /// "struct sock", "anonymous union (type id 42)", for messages.
    pub(crate) fn describe(&self, id: TypeId) -> String {
        if id == 0 {
            return "void".to_string();
        }
        let kind = self.kind(id).unwrap_or(Kind::Void);
        match self.name(id) {
            Ok(n) if !n.is_empty() => format!("{} {n}", kind_word(kind)),
            _ => format!("anonymous {} (type id {id})", kind_word(kind)),
        }
    }

    /// Follow typedef/const/volatile/restrict/type_tag to the underlying type.
    /// Errors on a chain longer than 64 (a cycle) or a bad id.
    pub fn skip_mods(&self, id: TypeId) -> Result<TypeId, BtfError> {
        let mut cur = id;
        for _ in 0..MAX_CHAIN {
            if cur == 0 {
                return Ok(0);
            }
            let t = self.raw(cur)?;
            if !is_modifier(t.kind()) {
                return Ok(cur);
            }
            cur = t.size_type;
        }
        Err(BtfError::BadType { id, msg: format!("modifier chain longer than {MAX_CHAIN} types (cycle?)") })
    }

    /// An array's element type (through modifiers) and element count; `id`
    /// itself may sit behind modifiers. Errors if it is not an array.
    pub fn array_of(&self, id: TypeId) -> Result<(TypeId, u32), BtfError> {
        let ty = self.skip_mods(id)?;
        let kind = self.kind(ty)?;
        if kind != Kind::Array {
            return Err(BtfError::BadType { id: ty, msg: format!("{} is not an array", self.describe(ty)) });
        }
        let t = self.raw(ty)?;
        Ok((self.skip_mods(t.word(0))?, t.word(2)))
    }

    /// Size in bytes, through modifiers: int/struct/union/enum/enum64/float
    /// (and datasec) size, pointers 8, arrays n·elem, var the size of its type.
    pub fn size_of(&self, id: TypeId) -> Result<u32, BtfError> {
        self.size_of_depth(id, 0)
    }

    fn size_of_depth(&self, id: TypeId, depth: usize) -> Result<u32, BtfError> {
        if depth > MAX_CHAIN {
            return Err(BtfError::BadType { id, msg: "array/var nesting too deep (cycle?)".to_string() });
        }
        let id = self.skip_mods(id)?;
        if id == 0 {
            return Err(BtfError::BadType { id, msg: "void has no size".to_string() });
        }
        let t = self.raw(id)?;
        match t.kind() {
            Kind::Int
            | Kind::Struct
            | Kind::Union
            | Kind::Enum
            | Kind::Enum64
            | Kind::Float
            | Kind::Datasec => Ok(t.size_type),
            Kind::Ptr => Ok(8),
            Kind::Array => {
                let (elem, n) = (t.word(0), t.word(2));
                let elem_size = self.size_of_depth(elem, depth + 1)?;
                n.checked_mul(elem_size).ok_or_else(|| BtfError::BadType {
                    id,
                    msg: format!("array size {n} x {elem_size} overflows u32"),
                })
            }
            Kind::Var => self.size_of_depth(t.size_type, depth + 1),
            k => Err(BtfError::BadType { id, msg: format!("{} has no size", self.describe_kind(id, k)) }),
        }
    }

    fn describe_kind(&self, id: TypeId, k: Kind) -> String {
        match self.name(id) {
            Ok(n) if !n.is_empty() => format!("{} {n}", kind_word(k)),
            _ => kind_word(k).to_string(),
        }
    }

    /// Decode FUNC_PROTO `id`.
    fn proto(&self, id: TypeId, what: &str) -> Result<Proto, BtfError> {
        let t = match self.kind(id)? {
            Kind::FuncProto => self.raw(id)?,
            k => {
                return Err(BtfError::BadType {
                    id,
                    msg: format!("{what}: expected func_proto, found {}", kind_word(k)),
                })
            }
        };
        let mut params = Vec::with_capacity(t.vlen());
        for i in 0..t.vlen() {
            let name = self.str_at(t.word(2 * i), id)?;
            params.push((name.to_string(), t.word(2 * i + 1)));
        }
        Ok(Proto { ret: t.size_type, params })
    }

    /// The prototype of FUNC `func` (e.g. a kprobe / fentry target).
    pub fn func_proto(&self, func: &str) -> Result<Proto, BtfError> {
        let id = self.find(func, Kind::Func)?;
        self.proto(self.raw(id)?.size_type, &format!("func {func}"))
    }

    /// TYPEDEF `name` → PTR → FUNC_PROTO, as for raw tracepoints
    /// (`btf_trace_<tp>`); the hidden first `void *` parameter is included.
    pub fn typedef_proto(&self, name: &str) -> Result<Proto, BtfError> {
        let what = format!("typedef {name}");
        let id = self.find(name, Kind::Typedef)?;
        let ptr = self.skip_mods(self.raw(id)?.size_type)?;
        if self.kind(ptr)? != Kind::Ptr {
            return Err(BtfError::BadType {
                id: ptr,
                msg: format!("{what}: expected pointer to func_proto, found {}", self.describe(ptr)),
            });
        }
        let target = self.skip_mods(self.raw(ptr)?.size_type)?;
        self.proto(target, &what)
    }
}
