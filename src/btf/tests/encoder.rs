//! Test-side BTF encoder: emits header + types + strings in host byte order.
//! Self-contained: the fuzz package and its regression test include it too.

use std::collections::HashMap;

pub type TypeId = u32;

pub struct Builder {
    types: Vec<u8>,
    strings: Vec<u8>,
    str_map: HashMap<String, u32>,
    next_id: TypeId,
    str_base: u32,
    /// 24 (classic) or 32 (2026 layout: layout_off/layout_len, left zero).
    pub hdr_len: u32,
}

/// Struct/union member: (name, type, bit offset, kflag bitfield size).
pub type M<'a> = (&'a str, TypeId, u32, u32);

impl Builder {
    pub fn new() -> Builder {
        Builder {
            types: Vec::new(),
            strings: vec![0],
            str_map: HashMap::from([(String::new(), 0)]),
            next_id: 1,
            str_base: 0,
            hdr_len: 24,
        }
    }

    /// A split BTF builder continuing `base`'s ids and string offsets; it
    /// reuses the base's strings where names match.
    pub fn split_of(base: &Builder) -> Builder {
        Builder {
            types: Vec::new(),
            strings: Vec::new(),
            str_map: base.str_map.clone(),
            next_id: base.next_id,
            str_base: base.str_base + base.strings.len() as u32,
            hdr_len: 24,
        }
    }

    pub fn next_id(&self) -> TypeId {
        self.next_id
    }

    pub fn str_len(&self) -> u32 {
        self.str_base + self.strings.len() as u32
    }

    pub fn str(&mut self, s: &str) -> u32 {
        if let Some(&off) = self.str_map.get(s) {
            return off;
        }
        let off = self.str_len();
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        self.str_map.insert(s.to_string(), off);
        off
    }

    /// Append a raw type record; returns its id.
    pub fn raw(&mut self, name_off: u32, info: u32, size_type: u32, extra: &[u32]) -> TypeId {
        for w in [name_off, info, size_type].iter().chain(extra) {
            self.types.extend_from_slice(&w.to_ne_bytes());
        }
        self.next_id += 1;
        self.next_id - 1
    }

    fn push(&mut self, name: &str, kind: u32, vlen: usize, kflag: bool, st: u32, extra: &[u32]) -> TypeId {
        let info = (u32::from(kflag) << 31) | (kind << 24) | vlen as u32;
        let off = self.str(name);
        self.raw(off, info, st, extra)
    }

    pub fn int(&mut self, name: &str, size: u32, bits: u32, bit_off: u32, signed: bool) -> TypeId {
        let enc = u32::from(signed);
        self.push(name, 1, 0, false, size, &[(enc << 24) | (bit_off << 16) | bits])
    }
    pub fn ptr(&mut self, t: TypeId) -> TypeId {
        self.push("", 2, 0, false, t, &[])
    }
    pub fn array(&mut self, elem: TypeId, index: TypeId, n: u32) -> TypeId {
        self.push("", 3, 0, false, 0, &[elem, index, n])
    }
    fn composite(&mut self, kind: u32, name: &str, size: u32, members: &[M]) -> TypeId {
        let kflag = members.iter().any(|m| m.3 != 0);
        let mut extra = Vec::new();
        for &(n, t, off, bits) in members {
            let off = if kflag { (bits << 24) | off } else { off };
            extra.extend([self.str(n), t, off]);
        }
        self.push(name, kind, members.len(), kflag, size, &extra)
    }
    /// kflag is set iff some member has a nonzero bitfield size.
    pub fn struct_(&mut self, name: &str, size: u32, members: &[M]) -> TypeId {
        self.composite(4, name, size, members)
    }
    pub fn union_(&mut self, name: &str, size: u32, members: &[M]) -> TypeId {
        self.composite(5, name, size, members)
    }
    pub fn enum_(&mut self, name: &str, size: u32, values: &[(String, i32)]) -> TypeId {
        let mut extra = Vec::with_capacity(values.len() * 2);
        for (n, v) in values {
            extra.extend([self.str(n), *v as u32]);
        }
        self.push(name, 6, values.len(), false, size, &extra)
    }
    pub fn fwd(&mut self, name: &str, is_union: bool) -> TypeId {
        self.push(name, 7, 0, is_union, 0, &[])
    }
    pub fn typedef(&mut self, name: &str, t: TypeId) -> TypeId {
        self.push(name, 8, 0, false, t, &[])
    }
    pub fn volatile(&mut self, t: TypeId) -> TypeId {
        self.push("", 9, 0, false, t, &[])
    }
    pub fn const_(&mut self, t: TypeId) -> TypeId {
        self.push("", 10, 0, false, t, &[])
    }
    pub fn restrict(&mut self, t: TypeId) -> TypeId {
        self.push("", 11, 0, false, t, &[])
    }
    pub fn func(&mut self, name: &str, proto: TypeId) -> TypeId {
        self.push(name, 12, 1, false, proto, &[])
    }
    pub fn func_proto(&mut self, ret: TypeId, params: &[(&str, TypeId)]) -> TypeId {
        let mut extra = Vec::new();
        for &(n, t) in params {
            extra.extend([self.str(n), t]);
        }
        self.push("", 13, params.len(), false, ret, &extra)
    }
    pub fn var(&mut self, name: &str, t: TypeId) -> TypeId {
        self.push(name, 14, 0, false, t, &[1])
    }
    pub fn datasec(&mut self, name: &str, size: u32, vars: &[(TypeId, u32, u32)]) -> TypeId {
        let extra: Vec<u32> = vars.iter().flat_map(|&(t, o, s)| [t, o, s]).collect();
        self.push(name, 15, vars.len(), false, size, &extra)
    }
    pub fn float(&mut self, name: &str, size: u32) -> TypeId {
        self.push(name, 16, 0, false, size, &[])
    }
    pub fn decl_tag(&mut self, name: &str, t: TypeId, component: i32) -> TypeId {
        self.push(name, 17, 0, false, t, &[component as u32])
    }
    pub fn type_tag(&mut self, name: &str, t: TypeId) -> TypeId {
        self.push(name, 18, 0, false, t, &[])
    }
    pub fn enum64(&mut self, name: &str, size: u32, values: &[(&str, u64)]) -> TypeId {
        let mut extra = Vec::new();
        for &(n, v) in values {
            extra.extend([self.str(n), v as u32, (v >> 32) as u32]);
        }
        self.push(name, 19, values.len(), false, size, &extra)
    }

    /// Header + types + strings.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xEB9Fu16.to_ne_bytes());
        out.extend([1, 0]);
        let (tl, sl) = (self.types.len() as u32, self.strings.len() as u32);
        for w in [self.hdr_len, 0, tl, tl, sl] {
            out.extend_from_slice(&w.to_ne_bytes());
        }
        out.resize(self.hdr_len as usize, 0);
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}
