//! Why a tracer could not start or run.

use super::config::Backend;
use crate::asm::AsmError;
use crate::btf::BtfError;
use crate::loader::LoadError;
use crate::transport::{PerfError, SetupError};
use std::fmt;

#[derive(Debug)]
pub enum Error {
    Btf(BtfError),
    Asm(AsmError),
    Load {
        source: LoadError,
        disasm: Option<String>,
    },
    Perf(PerfError),
    /// A value in the configuration that cannot work.
    Config(String),
    /// The kernel cannot run the chosen backend.
    Unsupported {
        backend: Backend,
        why: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Error::Btf(e) => write!(f, "{e}"),
            Error::Asm(e) => write!(f, "assembling BPF program: {e}"),
            Error::Load { source, .. } => write!(f, "{source}"),
            Error::Perf(e) => write!(f, "{e}"),
            Error::Config(msg) => write!(f, "{msg}"),
            Error::Unsupported { backend, why } => {
                write!(f, "the {} backend cannot run on this kernel: {why}", backend.name())
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<BtfError> for Error {
    fn from(e: BtfError) -> Error {
        Error::Btf(e)
    }
}
impl From<AsmError> for Error {
    fn from(e: AsmError) -> Error {
        Error::Asm(e)
    }
}
impl From<LoadError> for Error {
    fn from(e: LoadError) -> Error {
        Error::Load { source: e, disasm: None }
    }
}
impl From<PerfError> for Error {
    fn from(e: PerfError) -> Error {
        Error::Perf(e)
    }
}

impl From<SetupError> for Error {
    fn from(e: SetupError) -> Error {
        match e {
            SetupError::Map(e) => e.into(),
            SetupError::Perf(e) => Error::Perf(e),
            SetupError::Config(msg) => Error::Config(msg),
        }
    }
}
