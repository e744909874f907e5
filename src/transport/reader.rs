//! The transport the tracer runs, chosen at setup: its maps, rings and
//! epoll set, behind one type.

use std::fmt;
use std::os::fd::BorrowedFd;

use crate::asm::Arch;
use crate::transport::cpus::possible_cpu_count;
use crate::transport::error::{PerfError, SetupError};
use crate::transport::maps::TransportMaps;
use crate::transport::mmap::page_size;
use crate::transport::options::Options;
use crate::transport::perfbuf::PerfRings;
use crate::transport::poll::Poll;
use crate::transport::record::{Drained, Record, Wake};
use crate::transport::ringbuf::RingBuf;
use crate::transport::slots::{self, Slots, SLOT_SIZE};

/// Which transport runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Slots,
    PerfBuf,
    RingBuf,
}

/// The transport the tracer runs. Typical loop: `wait`, then drain each
/// ring (on `Data` and on `Timeout` too: the rings only wake the reader
/// past a watermark, so a trickle is found by draining after a timeout).
pub enum Transport {
    Slots(Slots),
    PerfBuf(PerfRings),
    RingBuf(RingBuf),
}

/// What [`Transport::open`] set up.
pub struct Chosen {
    pub transport: Transport,
    /// Why slot rings could not be had, where perf rings run in their place.
    pub slot_fallback: Option<String>,
}

/// The transport [`Transport::open`] tries first; perf rings are the last
/// resort of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum First {
    RingBuf,
    Slots,
    PerfBuf,
}

/// The ring buffer if asked for; perf rings if asked for; else slot rings,
/// or, where the architecture cannot run them (arm64), the ring buffer.
fn first(o: &Options, arch: Arch) -> First {
    if o.ringbuf {
        First::RingBuf
    } else if o.perf_rings {
        First::PerfBuf
    } else if slots::arch_refusal(arch).is_some() {
        First::RingBuf
    } else {
        First::Slots
    }
}

impl Transport {
    /// The ring buffer if asked for and the kernel has one; else slot
    /// rings unless perf rings are asked for or the kernel cannot run them;
    /// else (or where the slot array cannot be had: memory) perf rings.
    /// On arm64 the ring buffer takes the slot rings' place.
    /// `cpus`: the CPUs that can run programs.
    pub fn open(o: &Options, cpus: u32) -> Result<Chosen, SetupError> {
        let mut slot_fallback = None;
        let chosen = match first(o, Arch::HOST) {
            First::RingBuf => RingBuf::setup(o, cpus)?.map(Transport::RingBuf),
            First::Slots if slots::supported() => match Slots::setup(o, cpus) {
                Ok(s) => Some(Transport::Slots(s)),
                Err(e) => {
                    slot_fallback = Some(e.to_string());
                    None
                }
            },
            First::Slots | First::PerfBuf => None,
        };
        let transport = match chosen {
            Some(t) => t,
            None => Transport::PerfBuf(PerfRings::setup(o, possible_cpu_count()?)?),
        };
        Ok(Chosen { transport, slot_fallback })
    }

    pub fn kind(&self) -> Kind {
        match self {
            Transport::Slots(_) => Kind::Slots,
            Transport::PerfBuf(_) => Kind::PerfBuf,
            Transport::RingBuf(_) => Kind::RingBuf,
        }
    }

    /// What the programs write to.
    pub fn maps(&self) -> TransportMaps {
        match self {
            Transport::Slots(s) => TransportMaps::Slots(s.maps()),
            Transport::PerfBuf(p) => TransportMaps::PerfBuf(p.maps()),
            Transport::RingBuf(r) => TransportMaps::RingBuf(r.maps()),
        }
    }

    /// Ring memory in pages: per perf ring (fewer than asked where locked
    /// memory was short), of the ring buffer, or asked per CPU for slot
    /// rings (which round it down to whole slots).
    pub fn pages(&self) -> usize {
        match self {
            Transport::Slots(s) => s.pages,
            Transport::PerfBuf(p) => p.pages,
            Transport::RingBuf(r) => r.pages,
        }
    }

    /// Slots per CPU, with slot rings.
    pub fn slots_per_cpu(&self) -> Option<u32> {
        match self {
            Transport::Slots(s) => Some(s.maps().n),
            _ => None,
        }
    }

    /// Whether drains report the positions that order events exactly
    /// ([`Drained::positions`]: slot rings); the others need a window.
    pub fn exact_order(&self) -> bool {
        matches!(self, Transport::Slots(_))
    }

    /// How many rings there are (one slot ring per present CPU, one perf
    /// ring per online CPU, or the one ring buffer).
    pub fn ring_count(&self) -> usize {
        match self {
            Transport::Slots(s) => s.ring_count(),
            Transport::PerfBuf(p) => p.reader.ring_count(),
            Transport::RingBuf(_) => 1,
        }
    }

    /// Hand up to `limit` records of ring `i` to `f`. A corrupt ring (perf
    /// rings, ring buffer) is resynchronised and reported.
    pub fn drain(
        &mut self,
        i: usize,
        limit: usize,
        f: &mut dyn FnMut(Record<'_>),
    ) -> Result<Drained, PerfError> {
        match self {
            Transport::Slots(s) => Ok(s.drain(i, limit, f)),
            Transport::PerfBuf(p) => p.reader.drain_ring(i, limit, f),
            Transport::RingBuf(r) => r.drain(limit, f),
        }
    }

    /// Slot rings: positions reserved on all CPUs and not yet read
    /// (records being written, or left by a drain's limit). `None` for
    /// the others: their counters say what is in flight.
    pub fn unread(&self) -> Option<u64> {
        match self {
            Transport::Slots(s) => Some(s.unread()),
            _ => None,
        }
    }

    /// One `epoll_wait` (timeout in ms, -1 = forever). Reads no records.
    pub fn wait(&mut self, timeout_ms: i32) -> Result<Wake, PerfError> {
        match self {
            Transport::Slots(s) => s.wait(timeout_ms),
            Transport::PerfBuf(p) => p.reader.wait(timeout_ms),
            Transport::RingBuf(r) => r.wait(timeout_ms),
        }
    }

    fn poll(&mut self) -> &mut Poll {
        match self {
            Transport::Slots(s) => s.poll(),
            Transport::PerfBuf(p) => p.reader.poll(),
            Transport::RingBuf(r) => r.poll(),
        }
    }

    /// Make `wait` return `Wake::Woken` when `fd` is readable (e.g. an
    /// eventfd written on shutdown). The fd is not read here: reset it
    /// yourself, and keep it open while waiting (closing it unregisters it).
    pub fn add_wake_fd(&mut self, fd: BorrowedFd<'_>) -> Result<(), PerfError> {
        self.poll().add_wake_fd(fd)
    }

    /// Make `wait` return `Wake::Woken` when `fd` reports an error or a
    /// hang-up (e.g. a pipe's write end whose reader went away). Fails for
    /// fds epoll cannot watch (files).
    pub fn add_error_fd(&mut self, fd: BorrowedFd<'_>) -> Result<(), PerfError> {
        self.poll().add_error_fd(fd)
    }
}

/// For --debug: what carries the events and its size.
impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kib = |pages: usize| pages * page_size() / 1024;
        match self {
            Transport::Slots(s) => {
                let m = s.maps();
                let per_cpu = m.n as usize * SLOT_SIZE as usize / 1024;
                write!(f, "slot rings, {} slots ({per_cpu} KiB) per CPU, {} CPUs", m.n, m.cpus)
            }
            Transport::RingBuf(r) => write!(f, "one ring buffer of {} KiB", kib(r.pages)),
            Transport::PerfBuf(p) => write!(f, "perf rings of {} KiB per online CPU", kib(p.pages)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{first, First};
    use crate::asm::Arch;
    use crate::transport::options::Options;

    #[test]
    fn slot_rings_are_never_first_on_arm64() {
        let o = |ringbuf, perf_rings| Options {
            ring_pages: 64,
            watermark: 0,
            ringbuf,
            perf_rings,
            event_size: 112,
        };
        assert_eq!(first(&o(false, false), Arch::X86_64), First::Slots);
        assert_eq!(first(&o(false, false), Arch::Aarch64), First::RingBuf);
        for arch in [Arch::X86_64, Arch::Aarch64] {
            assert_eq!(first(&o(true, false), arch), First::RingBuf);
            assert_eq!(first(&o(false, true), arch), First::PerfBuf);
        }
        assert!(crate::transport::slot_rings_arch_refusal(Arch::X86_64).is_none());
        assert!(crate::transport::slot_rings_arch_refusal(Arch::Aarch64).is_some());
    }
}
