//! The event record the BPF programs write, and its decoder.
//!
//! Layout (104 bytes, little-endian, written by `probes/`):
//! ```text
//!  0 u64 ts_ns      CLOCK_MONOTONIC
//!  8 u32 tid        } the task: copied as one block from the `conns`
//! 12 u32 pid        } value, whose layout is the same (pid_tgid, uid_gid,
//! 16 u32 uid        } cgroup, comm); pid 0 when unknown, uid/gid
//! 20 u32 gid        } u32::MAX when unknown, uid/gid/cgroup 0 when
//! 24 u64 cgroup     } not collected (Config::task_ids off)
//! 32 [u8;16] comm   NUL-padded
//! 48 u8  kind       1 connect, 2 accept, 3 close, 4 failed connect
//! 49 u8  ip         4 or 6
//! 50 u16 sport      host order
//! 52 u16 dport      network order (skc_dport)
//! 54 u16 error      sk_err of a failed connect (errno), else 0
//! 56 u32 netns      inode number of the socket's network namespace
//! 60 u32 (zero)
//! 64 [u8;16] saddr  IPv4 in the first 4 bytes
//! 80 [u8;16] daddr
//! 96 u64 sock       the socket's inode number (`socket:[N]` in
//!                   /proc/PID/fd), where the program read it, else 0
//! ```

pub const EVENT_SIZE: usize = 104;

/// Kind byte of a deferred X (see `probes/owner.rs`): the tracer holds it
/// until an accept claims the close, or prints it as an X.
pub(crate) const KIND_PENDING: u8 = 5;

pub mod off {
    pub const TS: i16 = 0;
    pub const TID: i16 = 8;
    pub const PID: i16 = 12;
    pub const UID: i16 = 16;
    pub const CGROUP: i16 = 24;
    pub const COMM: i16 = 32;
    /// Bytes [TASK, KIND) are the task block (same layout as `conns` values).
    pub const TASK: i16 = 8;
    pub const KIND: i16 = 48;
    pub const IP: i16 = 49;
    pub const SPORT: i16 = 50;
    pub const DPORT: i16 = 52;
    pub const ERROR: i16 = 54;
    pub const NETNS: i16 = 56;
    pub const SADDR: i16 = 64;
    pub const DADDR: i16 = 80;
    pub const SOCK: i16 = 96;
}

/// uid/gid of an event whose task is unknown.
pub const UNKNOWN_ID: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Connect = 1,
    Accept = 2,
    Close = 3,
    /// A connect that never established (only with `Filters::failed`).
    Failed = 4,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::Connect),
            2 => Some(Kind::Accept),
            3 => Some(Kind::Close),
            4 => Some(Kind::Failed),
            _ => None,
        }
    }

    /// The long name: `connect`, `accept`, `close`, `failed`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Accept => "accept",
            Kind::Close => "close",
            Kind::Failed => "failed",
        }
    }
}

/// One traced event, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_MONOTONIC, ns.
    pub ts_ns: u64,
    /// Process id (tgid); 0 when the owner is unknown (a connection that
    /// predates tracing, closed from softirq).
    pub pid: u32,
    pub tid: u32,
    /// [`UNKNOWN_ID`] when the owner is unknown; 0 when not collected.
    pub uid: u32,
    pub gid: u32,
    /// cgroup v2 id of the task (0 when unknown or not collected).
    pub cgroup: u64,
    /// The task's COMM (thread name), NUL-padded.
    pub comm: [u8; 16],
    /// `None` for a kind this build does not know (printed as `U`).
    pub kind: Option<Kind>,
    pub ip: u8,
    pub sport: u16,
    pub dport: u16,
    /// errno of a failed connect (e.g. `ECONNREFUSED`), else 0.
    pub error: u16,
    pub netns: u32,
    /// IPv4 addresses in the first 4 bytes.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// The socket's inode number (as in `socket:[N]` of /proc/PID/fd), when
    /// the program read it (an A always; C, X and F when the owner was
    /// looked up), else 0.
    pub sock: u64,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

impl Event {
    /// Decode a sample; `None` if it is too short or not IPv4/IPv6.
    pub fn decode(b: &[u8]) -> Option<Event> {
        if b.len() < EVENT_SIZE {
            return None;
        }
        let ip = b[49];
        if ip != 4 && ip != 6 {
            return None;
        }
        Some(Event {
            ts_ns: u64_at(b, 0),
            tid: u32_at(b, 8),
            pid: u32_at(b, 12),
            uid: u32_at(b, 16),
            gid: u32_at(b, 20),
            cgroup: u64_at(b, 24),
            comm: b[32..48].try_into().unwrap(),
            kind: Kind::from_u8(b[48]),
            ip,
            sport: u16_at(b, 50),
            dport: u16::from_be(u16_at(b, 52)),
            error: u16_at(b, 54),
            netns: u32_at(b, 56),
            saddr: b[64..80].try_into().unwrap(),
            daddr: b[80..96].try_into().unwrap(),
            sock: u64_at(b, 96),
        })
    }

    /// Whether a sample is a deferred X (`KIND_PENDING`).
    pub(crate) fn is_pending(b: &[u8]) -> bool {
        b.len() > 48 && b[48] == KIND_PENDING
    }

    /// The command name up to its first NUL.
    pub fn comm(&self) -> &[u8] {
        let n = self.comm.iter().position(|&c| c == 0).unwrap_or(16);
        &self.comm[..n]
    }

    /// The source address (4 or 16 bytes).
    pub fn saddr(&self) -> std::net::IpAddr {
        ip_addr(self.ip, &self.saddr)
    }

    /// The destination address (4 or 16 bytes).
    pub fn daddr(&self) -> std::net::IpAddr {
        ip_addr(self.ip, &self.daddr)
    }
}

fn ip_addr(ip: u8, a: &[u8; 16]) -> std::net::IpAddr {
    if ip == 4 {
        std::net::IpAddr::from([a[0], a[1], a[2], a[3]])
    } else {
        std::net::IpAddr::from(*a)
    }
}

/// The encoder matching [`Event::decode`] (tests and fuzzing).
#[doc(hidden)]
pub fn encode(e: &Event) -> [u8; EVENT_SIZE] {
    let mut b = [0u8; EVENT_SIZE];
    b[0..8].copy_from_slice(&e.ts_ns.to_le_bytes());
    b[8..12].copy_from_slice(&e.tid.to_le_bytes());
    b[12..16].copy_from_slice(&e.pid.to_le_bytes());
    b[16..20].copy_from_slice(&e.uid.to_le_bytes());
    b[20..24].copy_from_slice(&e.gid.to_le_bytes());
    b[24..32].copy_from_slice(&e.cgroup.to_le_bytes());
    b[32..48].copy_from_slice(&e.comm);
    b[48] = e.kind.map_or(9, |k| k as u8);
    b[49] = e.ip;
    b[50..52].copy_from_slice(&e.sport.to_le_bytes());
    b[52..54].copy_from_slice(&e.dport.to_be_bytes());
    b[54..56].copy_from_slice(&e.error.to_le_bytes());
    b[56..60].copy_from_slice(&e.netns.to_le_bytes());
    b[64..80].copy_from_slice(&e.saddr);
    b[80..96].copy_from_slice(&e.daddr);
    b[96..104].copy_from_slice(&e.sock.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_golden_bytes() {
        let mut b = [0u8; 112]; // perf pads samples: extra bytes are ignored
        b[0] = 0x10; // ts
        b[8..12].copy_from_slice(&1240u32.to_le_bytes());
        b[12..16].copy_from_slice(&1234u32.to_le_bytes());
        b[16..20].copy_from_slice(&1000u32.to_le_bytes());
        b[20..24].copy_from_slice(&100u32.to_le_bytes());
        b[24..32].copy_from_slice(&0x1234_5678u64.to_le_bytes());
        b[32..36].copy_from_slice(b"curl");
        b[48] = 4;
        b[49] = 4;
        b[50..52].copy_from_slice(&55758u16.to_le_bytes());
        b[52..54].copy_from_slice(&[0x00, 0x50]); // port 80, network order
        b[54..56].copy_from_slice(&111u16.to_le_bytes());
        b[56..60].copy_from_slice(&4026531840u32.to_le_bytes());
        b[64..68].copy_from_slice(&[127, 0, 0, 1]);
        b[80..84].copy_from_slice(&[10, 1, 2, 3]);
        b[96..104].copy_from_slice(&987654u64.to_le_bytes());
        let e = Event::decode(&b).unwrap();
        assert_eq!(e.ts_ns, 0x10);
        assert_eq!((e.pid, e.tid, e.uid, e.gid, e.cgroup), (1234, 1240, 1000, 100, 0x1234_5678));
        assert_eq!(e.comm(), b"curl");
        assert_eq!(e.kind, Some(Kind::Failed));
        assert_eq!((e.ip, e.sport, e.dport, e.error, e.netns), (4, 55758, 80, 111, 4026531840));
        assert_eq!(e.saddr().to_string(), "127.0.0.1");
        assert_eq!(e.daddr().to_string(), "10.1.2.3");
        assert_eq!(e.sock, 987654);
        assert_eq!(encode(&e)[..], b[..104]);
    }

    #[test]
    fn decode_rejects_short_and_bad_family() {
        assert!(Event::decode(&[0u8; 103]).is_none());
        let mut b = [0u8; 104];
        b[49] = 5;
        assert!(Event::decode(&b).is_none());
        b[49] = 6;
        b[48] = 77;
        assert_eq!(Event::decode(&b).unwrap().kind, None);
        b[32..48].copy_from_slice(b"0123456789abcdef");
        assert_eq!(Event::decode(&b).unwrap().comm().len(), 16);
    }

    #[test]
    fn layout_offsets_match_the_decoder() {
        assert_eq!(off::KIND - off::TASK, 40, "task block = conns value size");
        assert_eq!((off::TID, off::PID, off::UID, off::CGROUP, off::COMM), (8, 12, 16, 24, 32));
        assert_eq!((off::IP, off::SPORT, off::DPORT, off::ERROR, off::NETNS), (49, 50, 52, 54, 56));
        assert_eq!((off::SADDR, off::DADDR, off::SOCK, EVENT_SIZE), (64, 80, 96, 104));
    }
}
