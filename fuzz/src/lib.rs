//! Fuzzing support for tcptracer: the target bodies ([`targets`], shared with
//! `tests/fuzz_regressions.rs`), the BTF encoder they and the seed writer use,
//! and the seed writer ([`seeds`], run by `make fuzz` through `examples/seeds.rs`).

#[path = "../../src/btf/tests/encoder.rs"]
#[allow(dead_code, clippy::new_without_default)]
pub mod encoder;
pub mod seeds;
pub mod targets;
