//! The CPU the programs are JIT-compiled for and this binary runs on: what
//! differs between them for tcptracer is the kprobe `pt_regs` layout and the
//! memory order (which BPF instruction is a full barrier; whether a plain
//! store publishes what was written before it). src/lib.rs refuses others.

/// The architectures tcptracer is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86-64: total store order; any locked instruction is a full barrier.
    X86_64,
    /// arm64: weakly ordered; only fully ordered atomics (LDADDAL, or an
    /// exclusive pair plus DMB) or DMB order stores before later loads.
    Aarch64,
}

impl Arch {
    /// The architecture this binary runs on.
    pub const HOST: Arch = if cfg!(target_arch = "aarch64") { Arch::Aarch64 } else { Arch::X86_64 };

    /// Its name as `uname -m` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}
