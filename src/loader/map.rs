//! BPF maps: create, update, look up, delete, walk keys.

use super::error::LoadError;
use super::sys::{self, Cmd};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MapType {
    Hash = 1,
    Array = 2,
    PerfEventArray = 4,
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

/// A map whose keys and values are read and written whole: every access
/// is checked against the sizes the kernel knows it by (per-CPU maps,
/// whose lookups write one value per possible CPU, are not handled).
#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
    name: String,
    key_size: u32,
    value_size: u32,
}

/// Map types whose lookups fill one value per possible CPU.
const PER_CPU_TYPES: [u32; 4] = [5, 6, 10, 15];

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

    /// Open an existing map by its kernel id (needs CAP_SYS_ADMIN); its
    /// key and value sizes are the kernel's (`struct bpf_map_info`).
    pub fn from_id(id: u32) -> Result<Map, LoadError> {
        let mut attr = IdAttr { id, ..Default::default() };
        let fd = sys::bpf_fd(Cmd::MapGetFdById, &mut attr)
            .map_err(|e| LoadError::call(format!("BPF_MAP_GET_FD_BY_ID {id}"), e))?;
        let i = super::info::map_info(fd.as_fd())?;
        if PER_CPU_TYPES.contains(&i.map_type) {
            let e = std::io::Error::from_raw_os_error(libc::EOPNOTSUPP);
            return Err(LoadError::call(format!("opening per-CPU map {} (id {id})", i.name), e));
        }
        Ok(Map { fd, name: i.name, key_size: i.key_size, value_size: i.value_size })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A bpf(2) call on one element; `value`: a buffer of `value_len`
    /// bytes, checked against the map's value size.
    fn elem(&self, cmd: Cmd, key: &[u8], value: u64, value_len: usize, flags: u64) -> std::io::Result<i64> {
        let want = if value == 0 { 0 } else { self.value_size as usize };
        if key.len() != self.key_size as usize || value_len != want {
            let (k, v) = (self.key_size, self.value_size);
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("key of {} bytes, value of {value_len}: the map's are {k} and {v}", key.len()),
            ));
        }
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
        self.elem(Cmd::MapUpdateElem, key, value.as_ptr() as u64, value.len(), flags)
            .map(drop)
            .map_err(|e| LoadError::call(format!("BPF_MAP_UPDATE_ELEM {}", self.name), e))
    }

    /// Look a key up into `value` (the map's value size); `Ok(false)` when
    /// it is absent.
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<bool, LoadError> {
        match self.elem(Cmd::MapLookupElem, key, value.as_mut_ptr() as u64, value.len(), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(LoadError::call(format!("BPF_MAP_LOOKUP_ELEM {}", self.name), e)),
        }
    }

    /// Delete a key; `Ok(false)` when it was absent.
    pub fn delete(&self, key: &[u8]) -> Result<bool, LoadError> {
        match self.elem(Cmd::MapDeleteElem, key, 0, 0, 0) {
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
    fn buffers_of_the_wrong_size_never_reach_the_kernel() {
        override_syscall(|_| panic!("no syscall expected"));
        let m = Map {
            fd: sys::owned_fd(unsafe { libc::dup(0).max(3) }),
            name: "m".into(),
            key_size: 8,
            value_size: 16,
        };
        let e = m.lookup(&[0; 8], &mut [0; 8]).unwrap_err().to_string();
        assert_eq!(e, "BPF_MAP_LOOKUP_ELEM m: key of 8 bytes, value of 8: the map's are 8 and 16");
        assert!(m.lookup(&[0; 4], &mut [0; 16]).is_err());
        assert!(m.update(&[0; 8], &[0; 17], 0).is_err());
        assert!(m.delete(&[0; 9]).is_err());
    }

    #[test]
    fn a_map_opened_by_id_has_the_kernels_sizes_and_no_per_cpu_type() {
        for (map_type, ok) in [(1u32, true), (6, false)] {
            override_syscall(move |c| match c {
                Call::Bpf { cmd: Cmd::MapGetFdById, .. } => Ok(unsafe { libc::dup(0).max(3) } as i64),
                Call::Bpf { cmd: Cmd::ObjGetInfoByFd, attr, .. } => {
                    // SAFETY: InfoAttr: fd, len, then the buffer's address.
                    let info = unsafe { *(attr.add(8) as *const u64) } as *mut u32;
                    // SAFETY: the buffer is 88 bytes.
                    unsafe {
                        *info = map_type;
                        *info.add(2) = 8;
                        *info.add(3) = 56;
                        *info.add(6) = u32::from_ne_bytes(*b"cons")
                    };
                    Ok(0)
                }
                _ => Err(io::Error::from_raw_os_error(libc::EPERM)),
            });
            match Map::from_id(5) {
                Ok(m) => {
                    assert!(ok);
                    assert_eq!((m.name(), m.key_size, m.value_size), ("cons", 8, 56));
                }
                Err(e) => {
                    assert!(!ok);
                    // The errno's text is the libc's (musl: "Not supported").
                    let text = io::Error::from_raw_os_error(libc::EOPNOTSUPP);
                    assert_eq!(e.to_string(), format!("opening per-CPU map cons (id 5): {text}"));
                }
            }
        }
    }

    #[test]
    fn names_are_sanitized_and_truncated() {
        assert_eq!(&obj_name("a.b-c"), b"a_b_c\0\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(obj_name("0123456789abcdefXYZ")[15], 0);
        assert_eq!(&obj_name("0123456789abcdefXYZ")[..15], b"0123456789abcde");
    }
}
