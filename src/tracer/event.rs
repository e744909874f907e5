//! The event record the BPF programs write, and its decoder.
//!
//! Layout (80 bytes, little-endian, written by `probes.rs`):
//! ```text
//!  0 u64 ts_ns      CLOCK_MONOTONIC
//!  8 u32 pid        tgid (0 when unknown)
//! 12 u32 tid
//! 16 [u8;16] comm   NUL-padded
//! 32 u8  kind       1 connect, 2 accept, 3 close
//! 33 u8  ip         4 or 6
//! 34 u16 sport      host order (skc_num)
//! 36 u16 dport      network order (skc_dport)
//! 38 u16 (zero)
//! 40 u32 netns      inode number of the socket's network namespace
//! 44 u32 (zero)
//! 48 [u8;16] saddr  IPv4 in the first 4 bytes
//! 64 [u8;16] daddr
//! ```

pub const EVENT_SIZE: usize = 80;

pub mod off {
    pub const TS: i16 = 0;
    pub const PID: i16 = 8;
    pub const TID: i16 = 12;
    pub const COMM: i16 = 16;
    pub const KIND: i16 = 32;
    pub const IP: i16 = 33;
    pub const SPORT: i16 = 34;
    pub const DPORT: i16 = 36;
    pub const NETNS: i16 = 40;
    pub const SADDR: i16 = 48;
    pub const DADDR: i16 = 64;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Connect = 1,
    Accept = 2,
    Close = 3,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::Connect),
            2 => Some(Kind::Accept),
            3 => Some(Kind::Close),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub comm: [u8; 16],
    /// `None` for a kind this build does not know (printed as `U`).
    pub kind: Option<Kind>,
    pub ip: u8,
    pub sport: u16,
    pub dport: u16,
    pub netns: u32,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

impl Event {
    /// Decode a sample; `None` if it is too short or not IPv4/IPv6.
    pub fn decode(b: &[u8]) -> Option<Event> {
        if b.len() < EVENT_SIZE {
            return None;
        }
        let ip = b[33];
        if ip != 4 && ip != 6 {
            return None;
        }
        Some(Event {
            ts_ns: u64::from_le_bytes(b[0..8].try_into().unwrap()),
            pid: u32_at(b, 8),
            tid: u32_at(b, 12),
            comm: b[16..32].try_into().unwrap(),
            kind: Kind::from_u8(b[32]),
            ip,
            sport: u16_at(b, 34),
            dport: u16::from_be(u16_at(b, 36)),
            netns: u32_at(b, 40),
            saddr: b[48..64].try_into().unwrap(),
            daddr: b[64..80].try_into().unwrap(),
        })
    }

    /// The command name up to its first NUL.
    pub fn comm(&self) -> &[u8] {
        let n = self.comm.iter().position(|&c| c == 0).unwrap_or(16);
        &self.comm[..n]
    }
}

#[cfg(test)]
pub(crate) fn encode(e: &Event) -> [u8; EVENT_SIZE] {
    let mut b = [0u8; EVENT_SIZE];
    b[0..8].copy_from_slice(&e.ts_ns.to_le_bytes());
    b[8..12].copy_from_slice(&e.pid.to_le_bytes());
    b[12..16].copy_from_slice(&e.tid.to_le_bytes());
    b[16..32].copy_from_slice(&e.comm);
    b[32] = e.kind.map_or(9, |k| k as u8);
    b[33] = e.ip;
    b[34..36].copy_from_slice(&e.sport.to_le_bytes());
    b[36..38].copy_from_slice(&e.dport.to_be_bytes());
    b[40..44].copy_from_slice(&e.netns.to_le_bytes());
    b[48..64].copy_from_slice(&e.saddr);
    b[64..80].copy_from_slice(&e.daddr);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_golden_bytes() {
        let mut b = [0u8; 88]; // perf pads samples: extra bytes are ignored
        b[0] = 0x10; // ts
        b[8..12].copy_from_slice(&1234u32.to_le_bytes());
        b[12..16].copy_from_slice(&1240u32.to_le_bytes());
        b[16..20].copy_from_slice(b"curl");
        b[32] = 1;
        b[33] = 4;
        b[34..36].copy_from_slice(&55758u16.to_le_bytes());
        b[36..38].copy_from_slice(&[0x00, 0x50]); // port 80, network order
        b[40..44].copy_from_slice(&4026531840u32.to_le_bytes());
        b[48..52].copy_from_slice(&[127, 0, 0, 1]);
        b[64..68].copy_from_slice(&[10, 1, 2, 3]);
        let e = Event::decode(&b).unwrap();
        assert_eq!(e.ts_ns, 0x10);
        assert_eq!((e.pid, e.tid), (1234, 1240));
        assert_eq!(e.comm(), b"curl");
        assert_eq!(e.kind, Some(Kind::Connect));
        assert_eq!((e.ip, e.sport, e.dport, e.netns), (4, 55758, 80, 4026531840));
        assert_eq!(&e.saddr[..4], &[127, 0, 0, 1]);
        assert_eq!(&e.daddr[..4], &[10, 1, 2, 3]);
        assert_eq!(encode(&e)[..], b[..80]);
    }

    #[test]
    fn decode_rejects_short_and_bad_family() {
        assert!(Event::decode(&[0u8; 79]).is_none());
        let mut b = [0u8; 80];
        b[33] = 5;
        assert!(Event::decode(&b).is_none());
        b[33] = 6;
        b[32] = 77;
        assert_eq!(Event::decode(&b).unwrap().kind, None);
        b[16..32].copy_from_slice(b"0123456789abcdef");
        assert_eq!(Event::decode(&b).unwrap().comm().len(), 16);
    }
}
