//! How events get from the BPF programs to user space. Three transports,
//! one file (or directory) each, holding both halves of its format: the
//! layout, the BPF code that writes it, the reader, the feature probe and
//! the setup (maps, mmap).
//!
//! - Slot rings (`slots.rs`, the default from 5.12): per-CPU rings of
//!   fixed-size slots in one mmap'able BPF array, written with plain stores
//!   after a cmpxchg reserves the slot; no helper call per event.
//! - Perf rings (`perfbuf/`): a per-CPU perf ring per online CPU, filled
//!   with `bpf_perf_event_output` through a `PERF_EVENT_ARRAY`; used where
//!   slot rings cannot run, or on request.
//! - The BPF ring buffer (`ringbuf.rs`, 5.8+, on request, and on arm64
//!   where slot rings never run): one ring for all CPUs, filled with
//!   `bpf_ringbuf_output`.
//!
//! Every reader hands out records in place (a record that wraps the end of
//! its ring is copied once into a scratch buffer) and publishes its
//! consumer position once per drain (`mmap.rs`). [`Transport`] is the one
//! the tracer runs and [`TransportMaps`] what its programs write to,
//! without knowing which; shared pieces: `mmap.rs`, `poll.rs` (epoll),
//! `emit.rs` (what an emitter needs of a program), `record.rs`, `cpus.rs`,
//! `error.rs`, `counters.rs` (per-CPU counters read through a mapping).

mod counters;
mod cpus;
mod emit;
mod error;
mod maps;
mod mmap;
mod options;
mod perfbuf;
mod poll;
mod reader;
mod record;
mod ringbuf;
mod slots;

pub use counters::Counters;
pub use cpus::{online_cpus, parse_cpu_list, possible_cpu_count, present_cpu_count};
pub use emit::{Frame, Stat, Stats};
pub use error::{PerfError, SetupError};
pub use maps::TransportMaps;
pub use mmap::page_size;
pub use options::Options;
#[doc(hidden)]
pub use perfbuf::drain_buffer;
pub use perfbuf::{PerfBuf, PerfMaps, PerfRings};
pub use reader::{Chosen, Kind, Transport};
pub use record::{DrainStats, Drained, Positions, Record, Wake};
pub use ringbuf::{supported as ringbuf_supported, RingBuf, RingMaps};
pub use slots::{
    arch_refusal as slot_rings_arch_refusal, supported as slot_rings_supported, SlotMaps, Slots, MIN_SLOT,
    RESERVE_TRIES as SLOT_RESERVE_TRIES, SLOT_SIZE,
};
