//! The executable path of a process (`/proc/PID/exe`), cached per pid for
//! the `EXE` column and the JSON `exe` key.
//!
//! An entry lives [`TTL`]; failures are cached too, so a vanished process
//! costs one `readlink` per second. A `" (deleted)"` suffix is kept as the
//! kernel gives it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::time::{Duration, Instant};

/// How long a resolved (or failed) path is reused.
pub const TTL: Duration = Duration::from_secs(1);
/// Entries kept at most; the cache is emptied when full.
pub const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Default)]
pub struct ExeCache {
    /// pid → (when resolved, path or `None` on failure).
    map: HashMap<u32, (Instant, Option<Vec<u8>>)>,
}

impl ExeCache {
    pub fn new() -> ExeCache {
        ExeCache::default()
    }

    /// The executable of `pid` as of `now`; `None` for pid 0 or when it
    /// cannot be read (process gone, no permission).
    pub fn get(&mut self, pid: u32, now: Instant) -> Option<&[u8]> {
        if pid == 0 {
            return None;
        }
        let fresh = matches!(self.map.get(&pid), Some((t, _)) if now.saturating_duration_since(*t) < TTL);
        if !fresh {
            if self.map.len() >= MAX_ENTRIES && !self.map.contains_key(&pid) {
                self.map.clear();
            }
            self.map.insert(pid, (now, resolve(pid)));
        }
        self.map.get(&pid).and_then(|(_, p)| p.as_deref())
    }
}

/// `readlink /proc/PID/exe`.
fn resolve(pid: u32) -> Option<Vec<u8>> {
    let mut path = b"/proc/".to_vec();
    super::fmt::push_u32(&mut path, pid);
    path.extend_from_slice(b"/exe");
    let target = std::fs::read_link(OsStr::from_bytes(&path)).ok()?;
    Some(target.into_os_string().into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No such process: above the largest possible pid_max (2^22).
    const NO_PID: u32 = u32::MAX;

    #[test]
    fn own_pid_resolves_to_current_exe() {
        let mut c = ExeCache::new();
        let want = std::env::current_exe().unwrap().into_os_string().into_vec();
        assert_eq!(c.get(std::process::id(), Instant::now()), Some(&want[..]));
    }

    #[test]
    fn pid_0_and_missing_pids_are_none() {
        let mut c = ExeCache::new();
        let now = Instant::now();
        assert_eq!(c.get(0, now), None);
        assert!(c.map.is_empty(), "pid 0 is not cached");
        assert_eq!(c.get(NO_PID, now), None);
        assert!(c.map[&NO_PID].1.is_none(), "failures are cached");
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let mut c = ExeCache::new();
        let pid = std::process::id();
        let real = std::env::current_exe().unwrap().into_os_string().into_vec();
        let t0 = Instant::now();
        c.map.insert(pid, (t0, Some(b"/fake (deleted)".to_vec())));
        assert_eq!(c.get(pid, t0), Some(&b"/fake (deleted)"[..]));
        assert_eq!(c.get(pid, t0 + Duration::from_millis(999)), Some(&b"/fake (deleted)"[..]));
        // An earlier `now` (another thread's clock read) still hits.
        assert_eq!(
            c.get(pid, t0.checked_sub(Duration::from_millis(5)).unwrap_or(t0)),
            Some(&b"/fake (deleted)"[..])
        );
        let t1 = t0 + TTL;
        assert_eq!(c.get(pid, t1), Some(&real[..]));
        assert_eq!(c.map[&pid].0, t1);

        // A cached failure is retried after the TTL too.
        c.map.insert(pid, (t1, None));
        assert_eq!(c.get(pid, t1 + Duration::from_millis(500)), None);
        assert_eq!(c.get(pid, t1 + TTL), Some(&real[..]));
    }

    #[test]
    fn size_is_bounded() {
        let mut c = ExeCache::new();
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES as u32 {
            assert_eq!(c.get(NO_PID - i, t0), None);
        }
        assert_eq!(c.map.len(), MAX_ENTRIES);
        // Refreshing a cached pid when full keeps the rest.
        assert_eq!(c.get(NO_PID, t0 + TTL), None);
        assert_eq!(c.map.len(), MAX_ENTRIES);
        // A new pid when full empties the cache first.
        let me = std::process::id();
        assert!(c.get(me, t0).is_some());
        assert_eq!(c.map.len(), 1);
        assert!(c.map.contains_key(&me));
    }
}
