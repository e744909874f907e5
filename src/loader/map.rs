//! BPF maps: create, update, look up, delete, walk keys.

use super::sys::{self, Cmd};
use super::LoadError;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MapType {
    Hash = 1,
    Array = 2,
    PerfEventArray = 4,
    PercpuArray = 6,
    LruHash = 9,
    RingBuf = 27,
}

/// `union bpf_attr` for BPF_MAP_CREATE.
#[repr(C)]
#[derive(Default)]
struct CreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    map_ifindex: u32,
    btf_fd: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
    btf_vmlinux_value_type_id: u32,
    map_extra: u64,
}
const _: () = assert!(std::mem::offset_of!(CreateAttr, map_name) == 28);
const _: () = assert!(std::mem::offset_of!(CreateAttr, map_extra) == 64);

/// `union bpf_attr` for the BPF_MAP_*_ELEM commands.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` for the *_GET_FD_BY_ID / *_GET_NEXT_ID commands.
#[repr(C)]
#[derive(Default)]
pub(crate) struct IdAttr {
    pub id: u32,
    pub next_id: u32,
    pub open_flags: u32,
}

pub const BPF_ANY: u64 = 0;
/// Hash maps: allocate elements on update instead of all at creation.
pub const BPF_F_NO_PREALLOC: u32 = 1;
/// An array user space can mmap (5.5+).
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
    name: String,
    key_size: u32,
    value_size: u32,
}

/// Copy a name into a 16-byte, NUL-terminated object name.
pub(crate) fn obj_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(name.bytes().take(15)) {
        *o = if b.is_ascii_alphanumeric() { b } else { b'_' };
    }
    out
}

impl Map {
    pub fn create(
        map_type: MapType,
        name: &str,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    ) -> Result<Map, LoadError> {
        Map::create_flags(map_type, name, key_size, value_size, max_entries, 0)
    }

    /// [`Map::create`] with `map_flags` (e.g. [`BPF_F_NO_PREALLOC`]).
    pub fn create_flags(
        map_type: MapType,
        name: &str,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
    ) -> Result<Map, LoadError> {
        let mut attr = CreateAttr {
            map_type: map_type as u32,
            key_size,
            value_size,
            max_entries,
            map_flags,
            map_name: obj_name(name),
            ..Default::default()
        };
        let fd = sys::bpf_fd(Cmd::MapCreate, &mut attr)
            .map_err(|e| LoadError::call(format!("BPF_MAP_CREATE {name}"), e))?;
        Ok(Map { fd, name: name.to_string(), key_size, value_size })
    }

    /// Open an existing map by its kernel id (needs CAP_SYS_ADMIN).
    pub fn from_id(id: u32, key_size: u32, value_size: u32) -> Result<Map, LoadError> {
        let mut attr = IdAttr { id, ..Default::default() };
        let fd = sys::bpf_fd(Cmd::MapGetFdById, &mut attr)
            .map_err(|e| LoadError::call(format!("BPF_MAP_GET_FD_BY_ID {id}"), e))?;
        Ok(Map { fd, name: format!("map#{id}"), key_size, value_size })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn elem(&self, cmd: Cmd, key: &[u8], value: u64, flags: u64) -> std::io::Result<i64> {
        assert_eq!(key.len(), self.key_size as usize, "key size of map {}", self.name);
        let mut attr = ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value,
            flags,
            ..Default::default()
        };
        sys::bpf(cmd, &mut attr)
    }

    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), LoadError> {
        assert_eq!(value.len(), self.value_size as usize, "value size of map {}", self.name);
        self.elem(Cmd::MapUpdateElem, key, value.as_ptr() as u64, flags)
            .map(drop)
            .map_err(|e| LoadError::call(format!("BPF_MAP_UPDATE_ELEM {}", self.name), e))
    }

    /// Look a key up; `Ok(false)` when it is absent.
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<bool, LoadError> {
        assert_eq!(value.len(), self.value_size as usize, "value size of map {}", self.name);
        match self.elem(Cmd::MapLookupElem, key, value.as_mut_ptr() as u64, 0) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(LoadError::call(format!("BPF_MAP_LOOKUP_ELEM {}", self.name), e)),
        }
    }

    /// Look a key up into a buffer of any size (per-CPU maps return one
    /// 8-byte-aligned value per possible CPU); `Ok(false)` when absent.
    pub fn lookup_raw(&self, key: &[u8], value: &mut [u8]) -> Result<bool, LoadError> {
        match self.elem(Cmd::MapLookupElem, key, value.as_mut_ptr() as u64, 0) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(LoadError::call(format!("BPF_MAP_LOOKUP_ELEM {}", self.name), e)),
        }
    }

    /// Delete a key; `Ok(false)` when it was absent.
    pub fn delete(&self, key: &[u8]) -> Result<bool, LoadError> {
        match self.elem(Cmd::MapDeleteElem, key, 0, 0) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(LoadError::call(format!("BPF_MAP_DELETE_ELEM {}", self.name), e)),
        }
    }

    /// Every key in the map (a snapshot; the map may change meanwhile).
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, LoadError> {
        let mut keys = Vec::new();
        let mut next = vec![0u8; self.key_size as usize];
        let mut cur: Option<Vec<u8>> = None;
        loop {
            let mut attr = ElemAttr {
                map_fd: self.fd.as_raw_fd() as u32,
                key: cur.as_ref().map_or(0, |k| k.as_ptr() as u64),
                value: next.as_mut_ptr() as u64,
                ..Default::default()
            };
            match sys::bpf(Cmd::MapGetNextKey, &mut attr) {
                Ok(_) => {
                    keys.push(next.clone());
                    cur = Some(next.clone());
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(keys),
                Err(e) => return Err(LoadError::call(format!("BPF_MAP_GET_NEXT_KEY {}", self.name), e)),
            }
        }
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Map {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::sys::{override_syscall, Call};
    use std::io;

    #[test]
    fn create_passes_attr_and_names_failures() {
        override_syscall(|c| match c {
            Call::Bpf { cmd: Cmd::MapCreate, attr, size } => {
                assert_eq!(*size as usize, std::mem::size_of::<CreateAttr>());
                // SAFETY: the loader passed a CreateAttr.
                let a = unsafe { &*(*attr as *const CreateAttr) };
                assert_eq!((a.map_type, a.key_size, a.value_size, a.max_entries), (9, 8, 24, 100));
                assert_eq!(&a.map_name[..9], b"tcpt_conn");
                assert_eq!(a.map_name[9], 0);
                Ok(7)
            }
            _ => Err(io::Error::from_raw_os_error(libc::EPERM)),
        });
        let m = Map::create(MapType::LruHash, "tcpt_conn", 8, 24, 100).unwrap();
        assert_eq!(m.raw_fd(), 7);
        std::mem::forget(m); // fd 7 is not ours
        let err = m_err();
        assert_eq!(err, "BPF_MAP_UPDATE_ELEM x: Operation not permitted (os error 1)");
    }

    fn m_err() -> String {
        let m = Map {
            fd: sys::owned_fd(unsafe { libc::dup(0).max(3) }),
            name: "x".into(),
            key_size: 4,
            value_size: 4,
        };
        m.update(&[0; 4], &[0; 4], 0).unwrap_err().to_string()
    }

    #[test]
    fn names_are_sanitized_and_truncated() {
        assert_eq!(&obj_name("a.b-c"), b"a_b_c\0\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(obj_name("0123456789abcdefXYZ")[15], 0);
        assert_eq!(&obj_name("0123456789abcdefXYZ")[..15], b"0123456789abcde");
    }
}
