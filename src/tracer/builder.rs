//! `Tracer::builder()`: the library's way in.
//!
//! ```no_run
//! use tcptracer::tracer::{event::Kind, Tracer};
//! let mut t = Tracer::builder().port(443).failed(true).start()?;
//! loop {
//!     t.poll(100, &mut |e| {
//!         if e.kind == Some(Kind::Connect) {
//!             println!("{} connected to {}:{}", e.pid, e.daddr(), e.dport);
//!         }
//!     })?;
//! }
//! # Ok::<(), tcptracer::tracer::Error>(())
//! ```

use super::config::{Backend, Config};
use super::error::Error;
use super::Tracer;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

impl Tracer {
    /// Configure and start a tracer (see [`Builder`]).
    pub fn builder() -> Builder {
        Builder::default()
    }
}

/// Collects a [`Config`]; [`Builder::start`] checks it and starts tracing.
#[derive(Clone, Debug)]
pub struct Builder {
    cfg: Config,
    cgroup_path: Option<PathBuf>,
    comm: Option<Vec<u8>>,
}

impl Default for Builder {
    fn default() -> Builder {
        let mut cfg = Config::default();
        cfg.filters.task_ids = true;
        Builder { cfg, cgroup_path: None, comm: None }
    }
}

impl Builder {
    pub fn backend(mut self, b: Backend) -> Self {
        self.cfg.backend = b;
        self
    }
    /// Read BTF from this file instead of /sys/kernel/btf/vmlinux.
    pub fn btf(mut self, path: impl Into<PathBuf>) -> Self {
        self.cfg.btf = Some(path.into());
        self
    }
    pub fn pid(mut self, pid: u32) -> Self {
        self.cfg.filters.pid = Some(pid);
        self
    }
    /// Network namespace inode number (`ls -Li /proc/PID/ns/net`).
    pub fn netns(mut self, inum: u32) -> Self {
        self.cfg.filters.netns = Some(inum);
        self
    }
    /// 4 or 6: sockets of that family only.
    pub fn family(mut self, ip: u8) -> Self {
        self.cfg.filters.family = Some(ip);
        self
    }
    pub fn uid(mut self, uid: u32) -> Self {
        self.cfg.filters.uid = Some(uid);
        self
    }
    /// Tasks in this cgroup v2 (by id).
    pub fn cgroup_id(mut self, id: u64) -> Self {
        self.cfg.filters.cgroup = Some(id);
        self
    }
    /// Tasks in this cgroup v2 directory (its id is resolved at start).
    pub fn cgroup_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.cgroup_path = Some(path.into());
        self
    }
    /// Connections with this port on either side (may be given up to 16 times).
    pub fn port(mut self, port: u16) -> Self {
        self.cfg.filters.ports.push(port);
        self
    }
    /// Tasks with this COMM (thread name, at most 15 bytes).
    pub fn comm(mut self, name: impl AsRef<[u8]>) -> Self {
        self.comm = Some(name.as_ref().to_vec());
        self
    }
    /// Also report connects that never established ([`super::event::Kind::Failed`]).
    pub fn failed(mut self, on: bool) -> Self {
        self.cfg.filters.failed = on;
        self
    }
    /// Fill uid, gid and cgroup in events (on by default here; costs two
    /// helper calls per recorded task).
    pub fn task_ids(mut self, on: bool) -> Self {
        self.cfg.filters.task_ids = on;
        self
    }
    /// Fill the network namespace in events (on by default; two kernel
    /// reads per event). The netns filter reads it regardless.
    pub fn netns_ids(mut self, on: bool) -> Self {
        self.cfg.filters.no_netns = !on;
        self
    }
    /// Tests only: ignore the closing moves outside process context of
    /// connections with this port, as if the kernel had skipped those runs.
    #[doc(hidden)]
    pub fn skip_close_port(mut self, port: Option<u16>) -> Self {
        self.cfg.filters.skip_close_port = port;
        self
    }
    /// Sockets tracked at once (see [`Config::max_conns`]).
    pub fn max_conns(mut self, n: u32) -> Self {
        self.cfg.max_conns = Some(n);
        self
    }
    /// Ring memory per CPU in bytes (rounded down to a power of two of
    /// pages; see [`Config::ring_pages`]).
    pub fn buffer(mut self, bytes: usize) -> Self {
        let pages = bytes / crate::transport::page_size();
        self.cfg.ring_pages = if pages == 0 { 0 } else { 1 << (usize::BITS - 1 - pages.leading_zeros()) };
        self
    }
    /// Ring pages per CPU (a power of two; see [`Config::ring_pages`]).
    pub fn ring_pages(mut self, pages: usize) -> Self {
        self.cfg.ring_pages = pages;
        self
    }
    /// Queued bytes that wake the reader (0: an eighth of the ring).
    pub fn watermark(mut self, bytes: u32) -> Self {
        self.cfg.watermark = bytes;
        self
    }
    /// The BPF ring buffer (5.8+) instead of per-CPU perf rings.
    pub fn ringbuf(mut self, on: bool) -> Self {
        self.cfg.ringbuf = on;
        self
    }
    /// Per-CPU perf rings even where slot rings could run (5.12+).
    pub fn perf_rings(mut self, on: bool) -> Self {
        self.cfg.perf_rings = on;
        self
    }
    /// How long events are held to come out in time order (0: per drain only).
    pub fn reorder_ns(mut self, ns: u64) -> Self {
        self.cfg.reorder_ns = ns;
        self
    }
    /// Phase timings, disassembly and verifier logs on stderr.
    pub fn debug(mut self, on: bool) -> Self {
        self.cfg.debug = on;
        self
    }
    /// Force tracefs `kprobe_events` for the kprobe backend.
    pub fn kprobe_tracefs(mut self, on: bool) -> Self {
        self.cfg.kprobe_tracefs = on;
        self
    }

    /// The checked configuration (cgroup path and COMM resolved).
    pub fn config(&self) -> Result<Config, Error> {
        let mut cfg = self.cfg.clone();
        if let Some(p) = &self.cgroup_path {
            cfg.filters.cgroup = Some(cgroup_id(p)?);
        }
        if let Some(name) = &self.comm {
            cfg.filters.comm = Some(comm(name)?);
        }
        cfg.check().map_err(Error::Config)?;
        Ok(cfg)
    }

    pub fn start(self) -> Result<Tracer, Error> {
        Tracer::start(&self.config()?)
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

/// A size such as `512K`, `2M`, `1G` or `65536` (bytes; K, M, G are
/// binary, upper or lower case, an `iB` or `B` after them allowed).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: usize =
        num.parse().map_err(|_| format!("invalid size {s:?}: give a number of bytes, e.g. 512K or 2M"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("invalid size {s:?}: the unit must be K, M or G")),
    };
    n.checked_mul(1 << shift).ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// COMM as the kernel stores it: at most 15 bytes, NUL-padded.
pub fn comm(name: &[u8]) -> Result<[u8; 16], Error> {
    if name.is_empty() || name.len() > 15 || name.contains(&0) {
        return Err(bad(format!(
            "invalid COMM {:?}: a COMM is 1 to 15 bytes (the kernel truncates thread names to 15)",
            String::from_utf8_lossy(name)
        )));
    }
    let mut c = [0u8; 16];
    c[..name.len()].copy_from_slice(name);
    Ok(c)
}

/// The cgroup v2 id of a cgroup directory: its inode number.
pub fn cgroup_id(path: &Path) -> Result<u64, Error> {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cgroup {}: {e}", path.display())))?;
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| bad(format!("cgroup {}: NUL in path", path.display())))?;
    // SAFETY: valid C string and statfs buffer.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut sfs) };
    if r != 0 || !meta.is_dir() || sfs.f_type as i64 != CGROUP2_SUPER_MAGIC {
        return Err(bad(format!(
            "cgroup {}: not a cgroup v2 directory (e.g. /sys/fs/cgroup/system.slice)",
            path.display()
        )));
    }
    Ok(meta.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(b: Builder) -> String {
        b.config().unwrap_err().to_string()
    }

    #[test]
    fn bad_values_are_refused() {
        let b = Builder::default;
        assert!(err(b().pid(0)).contains("invalid PID 0"));
        assert!(err(b().pid(4_194_305)).contains("invalid PID"));
        assert!(err(b().netns(0)).contains("invalid NETNS 0"));
        assert!(err(b().family(5)).contains("must be 4 or 6"));
        assert!(err(b().port(0)).contains("invalid port 0"));
        let many = (1..=17).fold(b(), |b, p| b.port(p));
        assert!(err(many).contains("at most 16"));
        assert!(err(b().comm("")).contains("1 to 15 bytes"));
        assert!(err(b().comm("0123456789abcdef")).contains("1 to 15 bytes"));
        assert!(err(b().cgroup_path("/nonexistent")).contains("/nonexistent"));
        assert!(err(b().cgroup_path("/proc")).contains("not a cgroup v2 directory"));
        assert!(err(b().uid(u32::MAX)).contains("no user"));
    }

    #[test]
    fn good_values_reach_the_filters() {
        let cfg = Builder::default().pid(7).port(80).port(443).comm("curl").family(6).config().unwrap();
        let f = &cfg.filters;
        assert_eq!((f.pid, f.family, &f.ports[..]), (Some(7), Some(6), &[80, 443][..]));
        assert_eq!(&f.comm.unwrap()[..5], b"curl\0");
        assert!(f.task_ids, "the library collects uid/gid/cgroup by default");
        assert_eq!(comm(b"0123456789abcde").unwrap()[15], 0);
    }

    #[test]
    fn cgroup_root_resolves_where_cgroup2_is_mounted() {
        let root = Path::new("/sys/fs/cgroup");
        match cgroup_id(root) {
            Ok(id) => assert_eq!(id, std::fs::metadata(root).unwrap().ino()),
            Err(e) => assert!(e.to_string().contains("not a cgroup v2"), "{e}"),
        }
    }
}

#[cfg(test)]
mod size_tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("2m"), Ok(2 << 20));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        for bad in ["", "K", "2X", "-1M", "1.5M", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert!(parse_size("99999999999G").unwrap_err().contains("too large"));
    }
}
