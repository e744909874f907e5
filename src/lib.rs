//! tcptracer: trace TCP connect, accept and close of established connections.
//!
//! The BPF programs are assembled at run time ([`asm`]) with struct offsets
//! from the kernel's BTF ([`btf`]), loaded with raw syscalls ([`loader`]) and
//! their events drained from per-CPU perf rings ([`perf`]).

pub mod asm;
pub mod btf;
pub mod loader;
pub mod perf;
pub mod tracer;
