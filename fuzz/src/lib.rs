//! Fuzzing support for tcptracer: the target bodies ([`targets`], shared with
//! `tests/fuzz_regressions.rs`), the BTF encoder they and the seed writer use,
//! the command line's writers ([`cli`]),
//! and the seed writer ([`seeds`], run by `make fuzz` through `examples/seeds.rs`).

#[path = "../../src/btf/tests/encoder.rs"]
#[allow(dead_code, clippy::new_without_default)]
pub mod encoder;
/// The command line's table and JSON writers (`src/cli/`), which the
/// `event_row` target runs.
#[allow(dead_code)]
#[path = "../../src/cli"]
pub mod cli {
    pub mod fmt;
    pub mod json;
    pub mod output;
}
pub mod seeds;
pub mod targets;
