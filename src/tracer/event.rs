//! The event record the BPF programs write, and its decoder.
//!
//! [`RawEvent`] is the one description of the layout: the BPF side takes
//! its offsets from it (`off::*`), the decoder reads its fields.

use std::mem::{offset_of, size_of};

/// The record as the programs write it: 112 bytes, the kernel's byte order
/// (little-endian: x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawEvent {
    /// CLOCK_MONOTONIC, ns.
    pub ts_ns: u64,
    // tid..comm is the task block: copied as one block from the `conns`
    // value, whose layout is the same (pid_tgid, uid_gid, cgroup, comm);
    // pid 0 when unknown, uid/gid u32::MAX when unknown, uid/gid/cgroup 0
    // when not collected (`Filters::task_ids` off).
    pub tid: u32,
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup: u64,
    /// NUL-padded.
    pub comm: [u8; 16],
    /// A [`Kind`], or [`KIND_PENDING`].
    pub kind: u8,
    /// 4 or 6.
    pub ip: u8,
    /// Host order.
    pub sport: u16,
    /// Network order (skc_dport).
    pub dport: u16,
    /// sk_err of a failed connect (errno), else 0.
    pub error: u16,
    /// Inode number of the socket's network namespace.
    pub netns: u32,
    /// Bits 32..48 of the bytes sent (acked) and received: see `sent_lo`.
    pub sent_hi: u16,
    pub received_hi: u16,
    /// IPv4 in the first 4 bytes.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// The socket's inode number (`socket:[N]` in /proc/PID/fd), where the
    /// program read it, else 0.
    pub sock: u64,
    /// Bits 0..32 of the bytes sent (`tcp_sock.bytes_acked`) and received
    /// (`tcp_sock.bytes_received`) at an X, else 0. 48 bits each (256 TiB,
    /// saturated above): bits 32..48 in `sent_hi`/`received_hi` (where a
    /// pad was), so that a slot (commit word, event, clock) stays 128
    /// bytes, two cache lines (`transport::slots`).
    pub sent_lo: u32,
    pub received_lo: u32,
}

pub const EVENT_SIZE: usize = size_of::<RawEvent>();

// The layout is an ABI between the programs and every reader: pin it, and
// that it has no padding (every byte is a field, so any bytes are a valid
// `RawEvent` and a `RawEvent` is all initialised bytes).
const _: () = {
    assert!(EVENT_SIZE == 112);
    assert!(offset_of!(RawEvent, ts_ns) == 0);
    assert!(offset_of!(RawEvent, tid) == 8);
    assert!(offset_of!(RawEvent, pid) == 12);
    assert!(offset_of!(RawEvent, uid) == 16);
    assert!(offset_of!(RawEvent, gid) == 20);
    assert!(offset_of!(RawEvent, cgroup) == 24);
    assert!(offset_of!(RawEvent, comm) == 32);
    assert!(offset_of!(RawEvent, kind) == 48);
    assert!(offset_of!(RawEvent, ip) == 49);
    assert!(offset_of!(RawEvent, sport) == 50);
    assert!(offset_of!(RawEvent, dport) == 52);
    assert!(offset_of!(RawEvent, error) == 54);
    assert!(offset_of!(RawEvent, netns) == 56);
    assert!(offset_of!(RawEvent, sent_hi) == 60);
    assert!(offset_of!(RawEvent, received_hi) == 62);
    assert!(offset_of!(RawEvent, saddr) == 64);
    assert!(offset_of!(RawEvent, daddr) == 80);
    assert!(offset_of!(RawEvent, sock) == 96);
    assert!(offset_of!(RawEvent, sent_lo) == 104);
    assert!(offset_of!(RawEvent, received_lo) == 108);
};

impl RawEvent {
    /// The record at the start of `b`, if it is long enough.
    pub fn from_bytes(b: &[u8]) -> Option<RawEvent> {
        let b: [u8; EVENT_SIZE] = b.get(..EVENT_SIZE)?.try_into().ok()?;
        // SAFETY: every field is an integer or a byte array and there is no
        // padding (checked above): any 112 bytes are a valid RawEvent.
        Some(unsafe { std::mem::transmute::<[u8; EVENT_SIZE], RawEvent>(b) })
    }

    pub fn to_bytes(self) -> [u8; EVENT_SIZE] {
        // SAFETY: no padding (checked above): all 112 bytes are initialised.
        unsafe { std::mem::transmute::<RawEvent, [u8; EVENT_SIZE]>(self) }
    }
}

/// Kind byte of a deferred X (see `probes/owner.rs`): the tracer holds it
/// until an accept claims the close, or prints it as an X.
pub(crate) const KIND_PENDING: u8 = 5;

/// Field offsets for the BPF side (stack offsets are i16).
pub mod off {
    use super::RawEvent;
    use std::mem::offset_of;

    pub const TS: i16 = offset_of!(RawEvent, ts_ns) as i16;
    pub const TID: i16 = offset_of!(RawEvent, tid) as i16;
    pub const PID: i16 = offset_of!(RawEvent, pid) as i16;
    pub const UID: i16 = offset_of!(RawEvent, uid) as i16;
    pub const CGROUP: i16 = offset_of!(RawEvent, cgroup) as i16;
    pub const COMM: i16 = offset_of!(RawEvent, comm) as i16;
    /// Bytes [TASK, KIND) are the task block (same layout as `conns` values).
    pub const TASK: i16 = TID;
    pub const KIND: i16 = offset_of!(RawEvent, kind) as i16;
    pub const IP: i16 = offset_of!(RawEvent, ip) as i16;
    pub const SPORT: i16 = offset_of!(RawEvent, sport) as i16;
    pub const DPORT: i16 = offset_of!(RawEvent, dport) as i16;
    pub const ERROR: i16 = offset_of!(RawEvent, error) as i16;
    pub const NETNS: i16 = offset_of!(RawEvent, netns) as i16;
    pub const SADDR: i16 = offset_of!(RawEvent, saddr) as i16;
    pub const DADDR: i16 = offset_of!(RawEvent, daddr) as i16;
    pub const SOCK: i16 = offset_of!(RawEvent, sock) as i16;
    pub const SENT_HI: i16 = offset_of!(RawEvent, sent_hi) as i16;
    pub const RECEIVED_HI: i16 = offset_of!(RawEvent, received_hi) as i16;
    pub const SENT_LO: i16 = offset_of!(RawEvent, sent_lo) as i16;
    pub const RECEIVED_LO: i16 = offset_of!(RawEvent, received_lo) as i16;
}

/// The largest byte count an event carries (48 bits): larger ones are
/// saturated to it.
pub const MAX_BYTES: u64 = (1 << 48) - 1;

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
    const ALL: [Kind; 4] = [Kind::Connect, Kind::Accept, Kind::Close, Kind::Failed];

    pub fn from_u8(v: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|&k| k as u8 == v)
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
    /// X only (0 on the others): the bytes the connection sent that the
    /// peer acked (`tcp_sock.bytes_acked`) and the bytes it received
    /// (`tcp_sock.bytes_received`), read at the X (the first closing move),
    /// without the peer's FIN. The kernel counts the SYN of a connect as
    /// one byte acked: [`Lifetimes`](super::lifetime::Lifetimes) takes it
    /// off for connections it saw connect. At most [`MAX_BYTES`].
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// X only: ns since the connection's C or A, when
    /// [`Lifetimes`](super::lifetime::Lifetimes) saw it (`None` from the
    /// decoder).
    pub duration_ns: Option<u64>,
}

impl Event {
    /// Decode a sample; `None` if it is too short or not IPv4/IPv6.
    pub fn decode(b: &[u8]) -> Option<Event> {
        let r = RawEvent::from_bytes(b)?;
        if r.ip != 4 && r.ip != 6 {
            return None;
        }
        Some(Event {
            ts_ns: r.ts_ns,
            tid: r.tid,
            pid: r.pid,
            uid: r.uid,
            gid: r.gid,
            cgroup: r.cgroup,
            comm: r.comm,
            kind: Kind::from_u8(r.kind),
            ip: r.ip,
            sport: r.sport,
            dport: u16::from_be(r.dport),
            error: r.error,
            netns: r.netns,
            saddr: r.saddr,
            daddr: r.daddr,
            sock: r.sock,
            bytes_sent: u64::from(r.sent_lo) | u64::from(r.sent_hi) << 32,
            bytes_received: u64::from(r.received_lo) | u64::from(r.received_hi) << 32,
            duration_ns: None,
        })
    }

    /// Whether a sample is a deferred X (`KIND_PENDING`).
    pub(crate) fn is_pending(b: &[u8]) -> bool {
        b.get(off::KIND as usize) == Some(&KIND_PENDING)
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
    RawEvent {
        ts_ns: e.ts_ns,
        tid: e.tid,
        pid: e.pid,
        uid: e.uid,
        gid: e.gid,
        cgroup: e.cgroup,
        comm: e.comm,
        kind: e.kind.map_or(9, |k| k as u8),
        ip: e.ip,
        sport: e.sport,
        dport: e.dport.to_be(),
        error: e.error,
        netns: e.netns,
        sent_hi: (e.bytes_sent.min(MAX_BYTES) >> 32) as u16,
        received_hi: (e.bytes_received.min(MAX_BYTES) >> 32) as u16,
        saddr: e.saddr,
        daddr: e.daddr,
        sock: e.sock,
        sent_lo: e.bytes_sent.min(MAX_BYTES) as u32,
        received_lo: e.bytes_received.min(MAX_BYTES) as u32,
    }
    .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_golden_bytes() {
        let mut b = [0u8; 120]; // perf pads samples: extra bytes are ignored
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
        b[60..62].copy_from_slice(&0x1234u16.to_le_bytes()); // bytes sent, bits 32..48
        b[62..64].copy_from_slice(&0xffffu16.to_le_bytes());
        b[104..108].copy_from_slice(&0x89ab_cdefu32.to_le_bytes());
        b[108..112].copy_from_slice(&1048577u32.to_le_bytes());
        let e = Event::decode(&b).unwrap();
        assert_eq!(e.ts_ns, 0x10);
        assert_eq!((e.pid, e.tid, e.uid, e.gid, e.cgroup), (1234, 1240, 1000, 100, 0x1234_5678));
        assert_eq!(e.comm(), b"curl");
        assert_eq!(e.kind, Some(Kind::Failed));
        assert_eq!((e.ip, e.sport, e.dport, e.error, e.netns), (4, 55758, 80, 111, 4026531840));
        assert_eq!(e.saddr().to_string(), "127.0.0.1");
        assert_eq!(e.daddr().to_string(), "10.1.2.3");
        assert_eq!(e.sock, 987654);
        assert_eq!((e.bytes_sent, e.bytes_received), (0x1234_89ab_cdef, 0xffff_0010_0001));
        assert_eq!(e.duration_ns, None);
        assert_eq!(encode(&e)[..], b[..112]);
        // Counts above 48 bits saturate.
        let big = Event { bytes_sent: u64::MAX, bytes_received: 1 << 48, ..e };
        let d = Event::decode(&encode(&big)).unwrap();
        assert_eq!((d.bytes_sent, d.bytes_received), (MAX_BYTES, MAX_BYTES));
    }

    #[test]
    fn decode_rejects_short_and_bad_family() {
        assert!(Event::decode(&[0u8; 111]).is_none());
        let mut b = [0u8; 112];
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
        assert_eq!((off::SADDR, off::DADDR, off::SOCK, EVENT_SIZE), (64, 80, 96, 112));
        assert_eq!((off::SENT_HI, off::RECEIVED_HI, off::SENT_LO, off::RECEIVED_LO), (60, 62, 104, 108));
    }
}
