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

// x86-64 only so far: the kprobe backend reads x86's `pt_regs`, and the slot
// rings and the owner/mark fence rely on x86's store order. Elsewhere the
// build fails rather than yield a tracer that is silently wrong.
#[cfg(not(target_arch = "x86_64"))]
compile_error!("tcptracer supports x86_64 only so far: its kprobes read x86 pt_regs and its rings rely on x86 store order");
