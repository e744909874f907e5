//! Fuzzing support for tcptracer: the target bodies ([`targets`], shared with
//! `tests/fuzz_regressions.rs`), the BTF encoder they and the seed writer use,
//! and the seed writer ([`seeds`], run by `make fuzz` through `examples/seeds.rs`).

pub mod encoder;
pub mod seeds;
pub mod targets;
