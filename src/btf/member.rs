//! Member paths: `sock.__sk_common.skc_dport` → byte offset, size, type and
//! bitfield position, searching anonymous struct/union members breadth-first
//! (as cilium's `coreFindMember`).

use std::collections::VecDeque;

use super::error::kind_word;
use super::{Bitfield, Btf, BtfError, Kind, Member, TypeId};

/// How many anonymous struct/union levels are searched below one step.
const MAX_ANON_DEPTH: usize = 32;

/// A member found in one step of a path.
struct Hit {
    /// The member's declared type (not resolved).
    type_id: TypeId,
    /// Bit offset from the start of the type searched (anonymous levels summed).
    bit_offset: u64,
    /// Bitfield size from the kflag encoding, 0 if none.
    kflag_bits: u32,
    /// The containing struct/union uses the kflag encoding.
    kflag: bool,
}

impl Btf {
    /// Resolve a member path. The first component names a STRUCT (or, if no
    /// struct has that name, a UNION); the rest are member names, each of
    /// which may sit inside anonymous struct/union members. Every step goes
    /// through typedef/const/volatile/restrict/type_tag. Offsets are summed
    /// from the outermost type. Paths never follow pointers.
    ///
    /// If several structs share the root name, the path is resolved in each;
    /// the result is returned if all that resolve agree, else Ambiguous.
    pub fn member(&self, path: &str) -> Result<Member, BtfError> {
        let bad = |msg: &str| BtfError::BadPath { path: path.to_string(), msg: msg.to_string() };
        let comps: Vec<&str> = path.split('.').collect();
        if comps.len() < 2 {
            return Err(bad("need a type name and at least one member, e.g. sock.sk_protocol"));
        }
        if comps.iter().any(|c| c.is_empty()) {
            return Err(bad("empty component"));
        }
        let mut roots = self.find_all(comps[0], Kind::Struct);
        if roots.is_empty() {
            roots = self.find_all(comps[0], Kind::Union);
        }
        let mut results = Vec::new();
        let mut first_err = None;
        for &root in &roots {
            match self.member_in(root, path, &comps[1..]) {
                Ok(m) => results.push(m),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match (results.first(), first_err) {
            (Some(m), _) if results.iter().all(|r| r == m) => Ok(m.clone()),
            (Some(_), _) => {
                Err(BtfError::Ambiguous { kind: Kind::Struct, name: comps[0].to_string(), ids: roots })
            }
            (None, Some(e)) => Err(e),
            (None, None) => Err(BtfError::NotFound { kind: Kind::Struct, name: comps[0].to_string() }),
        }
    }

    fn member_in(&self, root: TypeId, path: &str, names: &[&str]) -> Result<Member, BtfError> {
        let mut cur = root;
        let mut bits: u64 = 0;
        let mut last = None;
        for (i, name) in names.iter().enumerate() {
            let ty = self.skip_mods(cur)?;
            let kind = self.kind(ty)?;
            if !matches!(kind, Kind::Struct | Kind::Union) {
                let prefix = path.split('.').take(i + 1).collect::<Vec<_>>().join(".");
                return Err(BtfError::BadType {
                    id: ty,
                    msg: format!(
                        "{prefix} is a {} (not a struct or union), so it has no member {name} \
                         (path {path})",
                        kind_word(kind)
                    ),
                });
            }
            let hit = self.find_member(ty, name)?.ok_or_else(|| BtfError::NoMember {
                ty: self.describe(ty),
                member: name.to_string(),
                path: path.to_string(),
            })?;
            bits += hit.bit_offset;
            cur = hit.type_id;
            last = Some(hit);
        }
        let hit =
            last.ok_or_else(|| BtfError::BadPath { path: path.to_string(), msg: "no member".to_string() })?;
        let type_id = self.skip_mods(hit.type_id)?;
        let kind = self.kind(type_id)?;
        let size = self.size_of(type_id)?;
        let mut bitfield = None;
        if hit.kflag_bits != 0 {
            bitfield = Some((bits, hit.kflag_bits));
        } else if !hit.kflag && kind == Kind::Int {
            // Legacy encoding: the INT itself carries a bit offset and width.
            let enc = self.raw(type_id)?.word(0);
            let (int_off, int_bits) = ((enc >> 16) & 0xff, enc & 0xff);
            if int_off != 0 || u64::from(int_bits) < u64::from(size) * 8 {
                bitfield = Some((bits + u64::from(int_off), int_bits));
            }
        }
        let too_far = || BtfError::BadType {
            id: root,
            msg: format!("member {path} is at bit offset {bits}, beyond 4 GiB"),
        };
        let bitfield = match bitfield {
            Some((bit_offset, bits)) => {
                Some(Bitfield { bit_offset: u32::try_from(bit_offset).map_err(|_| too_far())?, bits })
            }
            None if !bits.is_multiple_of(8) => {
                return Err(BtfError::BadType {
                    id: root,
                    msg: format!(
                        "member {path} is at bit offset {bits}, not byte aligned, yet not a bitfield"
                    ),
                })
            }
            None => None,
        };
        let start = bitfield.map_or(bits, |b| u64::from(b.bit_offset));
        Ok(Member {
            offset: u32::try_from(start / 8).map_err(|_| too_far())?,
            size,
            type_id,
            kind,
            bitfield,
            path: path.to_string(),
        })
    }

    /// Find member `name` in struct/union `ty`, searching anonymous
    /// struct/union members breadth-first (each anonymous type once, at most
    /// `MAX_ANON_DEPTH` levels down).
    fn find_member(&self, ty: TypeId, name: &str) -> Result<Option<Hit>, BtfError> {
        let mut queue = VecDeque::from([(ty, 0u64, 0usize)]);
        let mut visited = std::collections::HashSet::from([ty]);
        while let Some((t, base, depth)) = queue.pop_front() {
            let raw = self.raw(t)?;
            let kflag = raw.kflag();
            for i in 0..raw.vlen() {
                let (name_off, mtype, moff) = (raw.word(3 * i), raw.word(3 * i + 1), raw.word(3 * i + 2));
                let (bit_off, kflag_bits) = if kflag { (moff & 0xff_ffff, moff >> 24) } else { (moff, 0) };
                let bit_offset = base + u64::from(bit_off);
                if name_off == 0 {
                    let inner = self.skip_mods(mtype)?;
                    let composite = matches!(self.kind(inner)?, Kind::Struct | Kind::Union);
                    if composite && depth < MAX_ANON_DEPTH && visited.insert(inner) {
                        queue.push_back((inner, bit_offset, depth + 1));
                    }
                } else if self.name_is(name_off, name.as_bytes()) {
                    return Ok(Some(Hit { type_id: mtype, bit_offset, kflag_bits, kflag }));
                }
            }
        }
        Ok(None)
    }
}
