//! What a drain hands out and returns, and why a wait returned.

/// One record taken from a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// The bytes a BPF program wrote (perf rings: followed by 0–7 bytes of
    /// padding; slot rings: the whole slot after its commit word): decode
    /// by the event's own length.
    Sample(&'a [u8]),
    /// The kernel dropped this many samples because the ring was full
    /// (perf rings only).
    Lost(u64),
}

/// Records handed out by a drain.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DrainStats {
    /// Samples handed to the callback.
    pub samples: u64,
    /// Sum of the counts of all `Lost` records.
    pub lost: u64,
}

impl std::ops::AddAssign for DrainStats {
    fn add_assign(&mut self, o: Self) {
        self.samples += o.samples;
        self.lost = self.lost.saturating_add(o.lost);
    }
}

/// What draining one ring did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub stats: DrainStats,
    /// The limit stopped it with records left (perf rings and the ring
    /// buffer: or records came meanwhile).
    pub more: bool,
    /// Slot rings: the positions that bound the stamps still unread.
    pub positions: Option<Positions>,
}

/// What one perf ring's or the ring buffer's view drained: as [`Drained`],
/// or where a header that cannot be right stopped it (the tail was then
/// resynchronised to the head, dropping the rest).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ViewDrain {
    pub stats: DrainStats,
    /// The limit stopped it with records left.
    pub more: bool,
    pub corrupt: Option<Corrupt>,
}

impl ViewDrain {
    /// The drain's result, a corrupt header made an error by `err`.
    pub(crate) fn result<E>(self, err: impl FnOnce(Corrupt) -> E) -> Result<Drained, E> {
        match self.corrupt {
            Some(c) => Err(err(c)),
            None => Ok(Drained { stats: self.stats, more: self.more, positions: None }),
        }
    }
}

/// Where a slot ring's drain began and ended (see `slots.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Positions {
    /// The next position to reserve when it began: positions from it on
    /// were reserved after that.
    pub head: u64,
    /// The first position not read.
    pub tail: u64,
    /// The clock its program read before reserving the last record read:
    /// positions after it were reserved later (so stamped later).
    pub reserved_after: Option<u64>,
}

impl Positions {
    /// Every position reserved when the drain began was read.
    pub fn clear(&self) -> bool {
        self.tail.wrapping_sub(self.head) as i64 >= 0
    }
}

/// Why a wait returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// At least one ring signalled data (call `drain`).
    Data,
    /// The timeout passed with nothing ready.
    Timeout,
    /// A fd added with `add_wake_fd` is readable (rings may also hold data).
    Woken,
    /// `epoll_wait` was interrupted by a signal (EINTR).
    Interrupted,
}

/// A record header that cannot be right. `size` is the header's size field
/// (0 when no header could be read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Corrupt {
    pub pos: u64,
    pub size: u64,
    pub avail: u64,
}

/// A record split by the end of a ring as one slice: `a` itself when `b` is
/// empty, else both copied into `scratch` (which keeps its capacity).
pub(crate) fn contiguous<'s>(a: &'s [u8], b: &[u8], scratch: &'s mut Vec<u8>) -> &'s [u8] {
    if b.is_empty() {
        return a;
    }
    scratch.clear();
    scratch.extend_from_slice(a);
    scratch.extend_from_slice(b);
    scratch
}
