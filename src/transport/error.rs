//! Errors of the transports' readers (each names the failing call and,
//! for perf rings, the CPU) and of their setup.

use std::fmt;
use std::io;

use crate::loader::LoadError;

#[derive(Debug)]
pub enum PerfError {
    /// `pages` must be a non-zero power of two.
    BadPages(usize),
    /// No CPU in the list could be opened (all returned ENODEV, or the list was empty).
    NoCpus,
    Open {
        cpu: u32,
        source: io::Error,
    },
    Mmap {
        cpu: u32,
        pages: usize,
        source: io::Error,
    },
    /// The kernel's `data_offset`/`data_size` don't fit the mapping.
    Layout {
        cpu: u32,
        data_offset: u64,
        data_size: u64,
    },
    Ioctl {
        cpu: u32,
        request: &'static str,
        source: io::Error,
    },
    /// An epoll or eventfd call; `cpu` is set when registering a ring.
    Epoll {
        call: &'static str,
        cpu: Option<u32>,
        source: io::Error,
    },
    /// A ring held a record header that cannot be right; the ring was
    /// resynchronised to its head (the bytes in between are dropped).
    Corrupt {
        cpu: u32,
        pos: u64,
        size: u64,
        avail: u64,
    },
    /// The ring buffer's size must be a power of two of at least a page.
    BadRingSize(usize),
    /// Slot rings of `n` (a power of two) slots of `slot` bytes (a
    /// multiple of 8, at least `MIN_SLOT`) per CPU that cannot be.
    BadSlots {
        cpus: u32,
        n: u64,
        slot: usize,
    },
    /// mmap of the BPF ring buffer (`what`: which part).
    RingMmap {
        what: &'static str,
        len: usize,
        source: io::Error,
    },
    /// A BPF ring buffer record header that cannot be right (resynchronised).
    RingCorrupt {
        pos: u64,
        size: u64,
        avail: u64,
    },
    Read {
        path: &'static str,
        source: io::Error,
    },
    CpuList {
        path: Option<&'static str>,
        input: String,
        reason: &'static str,
    },
}

impl fmt::Display for PerfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadPages(n) => write!(f, "perf ring size {n} pages: not a power of two"),
            Self::NoCpus => write!(f, "perf_event_open: no usable CPU"),
            Self::Open { cpu, source } => write!(f, "perf_event_open(cpu {cpu}): {source}"),
            Self::Mmap { cpu, pages, source } => {
                write!(f, "mmap perf ring (cpu {cpu}, {pages} pages): {source}")
            }
            Self::Layout { cpu, data_offset, data_size } => write!(
                f,
                "perf ring (cpu {cpu}): bad layout data_offset={data_offset} data_size={data_size}"
            ),
            Self::Ioctl { cpu, request, source } => write!(f, "ioctl({request}, cpu {cpu}): {source}"),
            Self::Epoll { call, cpu: Some(cpu), source } => write!(f, "{call}(cpu {cpu}): {source}"),
            Self::Epoll { call, cpu: None, source } => write!(f, "{call}: {source}"),
            Self::Corrupt { cpu, pos, size, avail } => write!(
                f,
                "perf ring (cpu {cpu}): corrupt record at position {pos} (size {size}, {avail} bytes available)"
            ),
            Self::BadSlots { cpus, n, slot } => {
                write!(f, "slot rings of {n} slots of {slot} bytes on {cpus} CPUs cannot be laid out")
            }
            Self::BadRingSize(n) => write!(f, "ring buffer size {n} bytes: not a power of two of at least a page"),
            Self::RingMmap { what, len, source } => write!(f, "mmap ring buffer ({what}, {len} bytes): {source}"),
            Self::RingCorrupt { pos, size, avail } => write!(
                f,
                "ring buffer: corrupt record at position {pos} (size {size}, {avail} bytes available)"
            ),
            Self::Read { path, source } => write!(f, "read {path}: {source}"),
            Self::CpuList { path, input, reason } => {
                if let Some(p) = path {
                    write!(f, "{p}: ")?;
                }
                write!(f, "bad CPU list {input:?}: {reason}")
            }
        }
    }
}

impl std::error::Error for PerfError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Open { source, .. }
            | Self::Mmap { source, .. }
            | Self::RingMmap { source, .. }
            | Self::Ioctl { source, .. }
            | Self::Epoll { source, .. }
            | Self::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why a transport could not be set up.
#[derive(Debug)]
pub enum SetupError {
    /// Creating or filling a map.
    Map(LoadError),
    Perf(PerfError),
    /// Rings of the configured size cannot be.
    Config(String),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Map(e) => write!(f, "{e}"),
            Self::Perf(e) => write!(f, "{e}"),
            Self::Config(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for SetupError {}

impl From<LoadError> for SetupError {
    fn from(e: LoadError) -> SetupError {
        SetupError::Map(e)
    }
}

impl From<PerfError> for SetupError {
    fn from(e: PerfError) -> SetupError {
        SetupError::Perf(e)
    }
}
