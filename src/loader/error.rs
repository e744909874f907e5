//! Loader errors: each names the failing call and the object it was for.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum LoadError {
    /// A syscall or file operation failed: `call` says which and on what.
    Call { call: String, source: io::Error },
    /// The verifier refused a program; `log` is its full output.
    Verifier { prog: String, source: io::Error, log: String },
    /// tracefs, a tracepoint or its format could not be found or read.
    Tracefs(String),
}

impl LoadError {
    pub fn call(call: impl Into<String>, source: io::Error) -> LoadError {
        LoadError::Call { call: call.into(), source }
    }

    /// The errno behind the error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LoadError::Call { source, .. } | LoadError::Verifier { source, .. } => source.raw_os_error(),
            LoadError::Tracefs(_) => None,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            LoadError::Call { call, source } => write!(f, "{call}: {source}"),
            LoadError::Verifier { prog, source, log } => {
                write!(f, "loading BPF program {prog}: {source}")?;
                match verifier_reason(log) {
                    Some(reason) => write!(f, "; verifier: {reason}"),
                    None if source.raw_os_error() == Some(libc::EPERM) => {
                        write!(f, " (missing CAP_BPF/CAP_PERFMON, or RLIMIT_MEMLOCK too low)")
                    }
                    None => Ok(()),
                }
            }
            LoadError::Tracefs(msg) => write!(f, "{msg}"),
        }
    }
}

/// The verifier's reason: the last line of its log that is not a statistic.
pub fn verifier_reason(log: &str) -> Option<&str> {
    log.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("processed ") && !l.starts_with("verification time"))
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Call { source, .. } | LoadError::Verifier { source, .. } => Some(source),
            LoadError::Tracefs(_) => None,
        }
    }
}
