//! The tracer: build the probes for a backend, load and attach them, and
//! hand out decoded events.

pub mod backend;
pub mod builder;
pub mod check;
pub mod config;
pub mod deferred;
mod drain;
pub mod error;
pub mod event;
pub mod features;
mod handle;
pub mod io;
pub mod lifetime;
pub mod offsets;
pub mod order;
pub mod probes;
mod start;

pub use config::{Backend, Config, Filters, CONNS_MIN, DEFAULT_RING_BYTES};
pub use drain::HELD_WAIT_MS;
pub use error::Error;
pub use handle::{KernelLosses, Tracer};
pub use start::{INFLIGHT_MAX, MARKS_MAX};
