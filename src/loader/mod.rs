//! Talking to the kernel: maps, program loading, attaching, tracefs.
//! Every syscall goes through [`sys`].

pub mod attach;
mod error;
pub mod info;
pub mod kprobe;
pub mod map;
pub mod prog;
pub(crate) mod sys;
pub mod tracefs;

pub use error::{verifier_reason, LoadError};
pub use map::{Map, MapType};
pub use prog::{Prog, ProgSpec, ProgType};

/// Lift RLIMIT_MEMLOCK: kernels before 5.11 charge BPF maps and programs
/// against it (64 KiB by default on 5.10). Best effort: failure is reported
/// only if a later load fails with EPERM.
pub fn raise_memlock() -> bool {
    let inf = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain syscall with a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &inf) == 0 }
}
