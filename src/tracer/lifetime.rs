//! Connection lifetimes (`--lifetime`, and `duration_ns` in JSON): the
//! stamp of each live connection's C or A, remembered in user space until
//! its X, whose duration it gives.
//!
//! The key is the connection as its events name it: network namespace,
//! family, local and remote address and port (an X from softirq carries no
//! socket identity, so the socket's inode number cannot be the key). The
//! two ends of a loopback connection have mirrored tuples: two keys. A new
//! C or A with the key of a connection still remembered replaces it (the
//! tuple was reused; its X was lost or filtered). The table is bounded:
//! past [`Lifetimes::cap`] entries (connections whose X never comes: lost,
//! filtered, still open) the oldest is forgotten, counted in
//! [`Lifetimes::evicted`]; its X then has no duration.
//!
//! Connections that predate the tracer (first seen at their X) have no
//! duration (`None`): no C or A was seen, and the kernel keeps no birth
//! time a probe could read cheaply.
//!
//! Bytes: the kernel counts the SYN of a connect as one byte acked
//! (`tcp_sock.bytes_acked` is 1 once the handshake ends, as `ss -i` and
//! TCP_INFO show); for a connection seen at its C that byte is taken off
//! here, so `bytes_sent` is data only. (The programs already leave the
//! peer's FIN out of `bytes_received`; our own FIN is not acked yet at the
//! first closing move.)

use super::event::{Event, Kind};
use std::collections::{BTreeMap, HashMap};

/// Default bound of the table: 256 Ki connections (about 30 MB at most).
pub const DEFAULT_CAP: usize = 1 << 18;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    netns: u32,
    ip: u8,
    sport: u16,
    dport: u16,
    saddr: [u8; 16],
    daddr: [u8; 16],
}

impl Key {
    fn of(e: &Event) -> Key {
        Key { netns: e.netns, ip: e.ip, sport: e.sport, dport: e.dport, saddr: e.saddr, daddr: e.daddr }
    }
}

#[derive(Clone, Copy, Debug)]
struct Start {
    ts_ns: u64,
    /// Order of insertion (the eviction order's key, with `ts_ns`).
    seq: u64,
    /// Seen at its C: the SYN is in `bytes_acked`.
    connect: bool,
}

#[derive(Debug)]
pub struct Lifetimes {
    live: HashMap<Key, Start>,
    /// (stamp, seq) → key: the oldest first.
    by_age: BTreeMap<(u64, u64), Key>,
    seq: u64,
    cap: usize,
    evicted: u64,
}

impl Default for Lifetimes {
    fn default() -> Lifetimes {
        Lifetimes::new(DEFAULT_CAP)
    }
}

impl Lifetimes {
    /// A table of at most `cap` (at least 1) connections.
    pub fn new(cap: usize) -> Lifetimes {
        Lifetimes { live: HashMap::new(), by_age: BTreeMap::new(), seq: 0, cap: cap.max(1), evicted: 0 }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Connections remembered now.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Connections forgotten to keep within the cap.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Track one event (in time order): a C or A starts a lifetime; an X
    /// ends its own, getting its `duration_ns` (`None`: not seen start)
    /// and, after a C, its `bytes_sent` without the SYN.
    pub fn track(&mut self, e: &mut Event) {
        match e.kind {
            Some(Kind::Connect) | Some(Kind::Accept) => {
                let key = Key::of(e);
                self.seq += 1;
                let start = Start { ts_ns: e.ts_ns, seq: self.seq, connect: e.kind == Some(Kind::Connect) };
                if let Some(old) = self.live.insert(key, start) {
                    self.by_age.remove(&(old.ts_ns, old.seq));
                }
                self.by_age.insert((start.ts_ns, start.seq), key);
                while self.live.len() > self.cap {
                    let Some((_, k)) = self.by_age.pop_first() else { break };
                    self.live.remove(&k);
                    self.evicted += 1;
                }
            }
            Some(Kind::Close) => {
                e.duration_ns = None;
                if let Some(s) = self.live.remove(&Key::of(e)) {
                    self.by_age.remove(&(s.ts_ns, s.seq));
                    e.duration_ns = Some(e.ts_ns.saturating_sub(s.ts_ns));
                    if s.connect {
                        e.bytes_sent = e.bytes_sent.saturating_sub(1);
                    }
                }
            }
            Some(Kind::Failed) | None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracer::event::{encode, EVENT_SIZE};

    fn ev(kind: Kind, ts: u64, sport: u16, dport: u16) -> Event {
        let mut b = [0u8; EVENT_SIZE];
        b[49] = 4;
        let mut e = Event::decode(&b).unwrap();
        (e.kind, e.ts_ns, e.sport, e.dport, e.netns) = (Some(kind), ts, sport, dport, 7);
        e.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        e.daddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        Event::decode(&encode(&e)).unwrap()
    }

    fn close(l: &mut Lifetimes, ts: u64, sport: u16, dport: u16, sent: u64) -> Event {
        let mut x = ev(Kind::Close, ts, sport, dport);
        (x.bytes_sent, x.bytes_received) = (sent, 3 << 20);
        l.track(&mut x);
        x
    }

    #[test]
    fn durations_from_the_connect_or_accept_and_the_syn_taken_off() {
        let mut l = Lifetimes::default();
        l.track(&mut ev(Kind::Connect, 1_000, 40000, 80));
        l.track(&mut ev(Kind::Accept, 1_500, 80, 40000));
        assert_eq!(l.len(), 2);
        let x = close(&mut l, 301_000, 40000, 80, (1 << 20) + 1);
        assert_eq!((x.duration_ns, x.bytes_sent, x.bytes_received), (Some(300_000), 1 << 20, 3 << 20));
        let x = close(&mut l, 302_000, 80, 40000, 3 << 20);
        assert_eq!((x.duration_ns, x.bytes_sent), (Some(300_500), 3 << 20), "an A: nothing taken off");
        assert!(l.is_empty());
        // Seen only at its X (older than the tracer), or a second X.
        let x = close(&mut l, 400_000, 40000, 80, 5);
        assert_eq!((x.duration_ns, x.bytes_sent), (None, 5));
        // A connect whose SYN was not acked (no count): no underflow.
        l.track(&mut ev(Kind::Connect, 500_000, 40001, 80));
        assert_eq!(close(&mut l, 500_000, 40001, 80, 0).bytes_sent, 0);
    }

    #[test]
    fn other_kinds_and_other_namespaces_do_not_match() {
        let mut l = Lifetimes::default();
        l.track(&mut ev(Kind::Connect, 10, 40000, 80));
        let mut f = ev(Kind::Failed, 20, 40000, 80);
        l.track(&mut f);
        assert_eq!((l.len(), f.duration_ns), (1, None));
        let mut x = ev(Kind::Close, 30, 40000, 80);
        x.netns = 8;
        l.track(&mut x);
        assert_eq!((l.len(), x.duration_ns), (1, None));
        x.netns = 7;
        l.track(&mut x);
        assert_eq!((l.len(), x.duration_ns), (0, Some(20)));
    }

    #[test]
    fn a_reused_tuple_replaces_its_entry() {
        let mut l = Lifetimes::default();
        l.track(&mut ev(Kind::Connect, 10, 40000, 80));
        l.track(&mut ev(Kind::Connect, 50, 40000, 80));
        assert_eq!(l.len(), 1);
        assert_eq!(close(&mut l, 70, 40000, 80, 1).duration_ns, Some(20));
        assert!(l.is_empty() && l.by_age.is_empty());
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest() {
        let mut l = Lifetimes::new(3);
        for p in 0..5u16 {
            l.track(&mut ev(Kind::Accept, 100 + p as u64, 80, 1000 + p));
        }
        assert_eq!((l.len(), l.by_age.len(), l.evicted()), (3, 3, 2));
        assert_eq!(close(&mut l, 200, 80, 1000, 0).duration_ns, None, "forgotten");
        assert_eq!(close(&mut l, 200, 80, 1001, 0).duration_ns, None, "forgotten");
        assert_eq!(close(&mut l, 200, 80, 1002, 0).duration_ns, Some(98));
        assert_eq!(close(&mut l, 200, 80, 1004, 0).duration_ns, Some(96));
        assert_eq!(l.len(), 1);
        // Many more than the cap: memory stays bounded.
        for p in 0..10_000u16 {
            l.track(&mut ev(Kind::Connect, 300 + p as u64, p, 80));
        }
        assert_eq!((l.len(), l.by_age.len(), l.evicted()), (3, 3, 2 + 9_998));
        assert_eq!(Lifetimes::new(0).cap(), 1);
    }
}
