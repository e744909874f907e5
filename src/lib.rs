//! tcptracer: trace TCP connect, accept and close of established connections.
//!
//! The BPF programs are assembled at run time ([`asm`]) with struct offsets
//! from the kernel's BTF ([`btf`]), loaded with raw syscalls ([`loader`]) and
//! their events drained from rings shared with the kernel ([`transport`]).

pub mod asm;
pub mod btf;
pub mod loader;
pub mod tracer;
pub mod transport;

// x86-64 and arm64. What differs between them is explicit: the kprobe
// backend's `pt_regs` (tracer/backend.rs), the owner/mark fence
// (tracer/probes/owner.rs), and the slot rings, which rely on x86's store
// order and are never chosen on arm64 (transport). Elsewhere the build fails
// rather than yield a tracer that is silently wrong.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("tcptracer supports x86_64 and aarch64 only: its kprobes read the architecture's pt_regs and its rings rely on its memory order");
