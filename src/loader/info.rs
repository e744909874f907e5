//! What the kernel has loaded: program and map ids, names and run stats
//! (BPF_*_GET_NEXT_ID, *_GET_FD_BY_ID, OBJ_GET_INFO_BY_FD). Needs root.

use super::map::IdAttr;
use super::sys::{self, Cmd};
use super::LoadError;
use std::os::fd::{AsRawFd, BorrowedFd};

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// A loaded program as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgInfo {
    pub id: u32,
    pub name: String,
    /// Cumulative run time and count; non-zero only while
    /// `kernel.bpf_stats_enabled` is 1.
    pub run_time_ns: u64,
    pub run_cnt: u64,
    /// Runs skipped because the program was already running on that CPU (5.12+).
    pub recursion_misses: u64,
}

fn next_ids(cmd: Cmd) -> Result<Vec<u32>, LoadError> {
    let mut ids = Vec::new();
    let mut attr = IdAttr::default();
    loop {
        match sys::bpf(cmd, &mut attr) {
            Ok(_) => {
                ids.push(attr.next_id);
                attr.id = attr.next_id;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(ids),
            Err(e) => return Err(LoadError::call(format!("{cmd:?}"), e)),
        }
    }
}

fn obj_info(fd: BorrowedFd, buf: &mut [u8]) -> Result<(), LoadError> {
    let mut attr =
        InfoAttr { bpf_fd: fd.as_raw_fd() as u32, info_len: buf.len() as u32, info: buf.as_mut_ptr() as u64 };
    sys::bpf(Cmd::ObjGetInfoByFd, &mut attr)
        .map(drop)
        .map_err(|e| LoadError::call("BPF_OBJ_GET_INFO_BY_FD", e))
}

fn name_at(buf: &[u8], off: usize) -> String {
    let raw = &buf[off..off + 16];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(16);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

fn u64_at(buf: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(buf[off..off + 8].try_into().unwrap())
}

/// Info of one program fd (`struct bpf_prog_info`: name at 64, run_time_ns at 192, run_cnt at 200).
pub fn prog_info(fd: BorrowedFd) -> Result<ProgInfo, LoadError> {
    let mut buf = [0u8; 256];
    obj_info(fd, &mut buf)?;
    Ok(ProgInfo {
        id: u32::from_ne_bytes(buf[4..8].try_into().unwrap()),
        name: name_at(&buf, 64),
        run_time_ns: u64_at(&buf, 192),
        run_cnt: u64_at(&buf, 200),
        recursion_misses: u64_at(&buf, 208),
    })
}

/// Every loaded program (those that vanish while we look are skipped).
pub fn programs() -> Result<Vec<ProgInfo>, LoadError> {
    let mut out = Vec::new();
    for id in next_ids(Cmd::ProgGetNextId)? {
        let mut attr = IdAttr { id, ..Default::default() };
        let Ok(fd) = sys::bpf_fd(Cmd::ProgGetFdById, &mut attr) else { continue };
        out.push(prog_info(std::os::fd::AsFd::as_fd(&fd))?);
    }
    Ok(out)
}

/// A map as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapInfo {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub name: String,
}

/// Info of one map fd (`struct bpf_map_info`: type, id, key and value
/// size at 0, 4, 8, 12; name at 24).
pub fn map_info(fd: BorrowedFd) -> Result<MapInfo, LoadError> {
    let mut buf = [0u8; 88];
    obj_info(fd, &mut buf)?;
    let u32_at = |o: usize| u32::from_ne_bytes(buf[o..o + 4].try_into().unwrap());
    Ok(MapInfo { map_type: u32_at(0), key_size: u32_at(8), value_size: u32_at(12), name: name_at(&buf, 24) })
}

/// Names of every loaded map.
pub fn map_names() -> Result<Vec<String>, LoadError> {
    let mut out = Vec::new();
    for id in next_ids(Cmd::MapGetNextId)? {
        let mut attr = IdAttr { id, ..Default::default() };
        let Ok(fd) = sys::bpf_fd(Cmd::MapGetFdById, &mut attr) else { continue };
        out.push(map_info(std::os::fd::AsFd::as_fd(&fd))?.name);
    }
    Ok(out)
}

/// `struct bpf_link_info` of a perf-event link to a kprobe: type 7
/// (BPF_LINK_TYPE_PERF_EVENT) at 0, perf event type at 16 (3 kprobe, 4
/// kretprobe; filled since 6.6), `kprobe.missed` at 48 (6.7+).
pub fn perf_link_kprobe_missed(fd: BorrowedFd) -> Option<u64> {
    let mut buf = [0u8; 64];
    obj_info(fd, &mut buf).ok()?;
    let u32_at = |o: usize| u32::from_ne_bytes(buf[o..o + 4].try_into().unwrap());
    (u32_at(0) == 7 && matches!(u32_at(16), 3 | 4)).then(|| u64_at(&buf, 48))
}
