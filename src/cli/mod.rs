//! The command line's side: its arguments, the table rows and JSON lines
//! it prints (with the exe cache), the output thread, and what it says on
//! stderr when starting, checking and ending.

pub mod args;
pub mod check;
pub mod exe;
pub mod exit;
pub mod fmt;
pub mod json;
pub mod output;
pub mod printer;
pub mod signals;
pub mod start;
pub mod summary;
pub mod writer;

/// Say `tcptracer: {msg}` on stderr and exit with status 1.
pub fn die(msg: impl std::fmt::Display) -> ! {
    tcptracer::tracer::io::say(&format!("tcptracer: {msg}"));
    std::process::exit(1);
}
