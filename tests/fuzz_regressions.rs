//! Fuzz regressions: every file under `tests/fuzz_regressions/<target>/` (crash
//! inputs that `make fuzz` found, and hand-made nasty inputs) is fed to the same
//! function the fuzz target `<target>` runs (`fuzz/src/targets.rs`, included
//! here). None may panic: the parsers must return errors, and the targets'
//! invariant checks must hold.

#[path = "../src/btf/tests/encoder.rs"]
#[allow(dead_code, clippy::new_without_default)]
mod encoder;
#[path = "../fuzz/src/targets.rs"]
mod targets;
/// The command line's table and JSON writers, which `event_row` runs.
#[allow(dead_code)]
#[path = "../src/cli"]
mod cli {
    pub mod fmt;
    pub mod json;
    pub mod output;
}

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use tcptracer::btf::Btf;

#[test]
fn every_regression_input() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut failed = Vec::new();
    for (name, run) in targets::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no inputs in {}", dir.display());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| run(&data))) {
                let msg =
                    e.downcast_ref::<String>().map(String::as_str).or(e.downcast_ref::<&str>().copied());
                failed.push(format!("{name}: {}: {}", file.display(), msg.unwrap_or("panic")));
            }
        }
    }
    assert!(failed.is_empty(), "{} inputs failed:\n{}", failed.len(), failed.join("\n"));
}

/// The fixed BTF that `btf_member` resolves paths in is what it claims to be.
#[test]
fn fixed_btf_shapes() {
    let btf = Btf::from_bytes(targets::fixed_btf().to_vec()).unwrap();
    let off = |p: &str| btf.member(p).map(|m| m.offset);
    assert_eq!(off("sock.__sk_common.skc_dport").unwrap(), 12);
    assert_eq!(off("sock.__sk_common.skc_num").unwrap(), 14);
    assert_eq!(off("sock.__sk_common.skc_rcv_saddr").unwrap(), 4);
    assert_eq!(off("sock.__sk_common.skc_net.net").unwrap(), 48);
    assert_eq!(off("inet_sock.inet_sport").unwrap(), 806);
    assert_eq!(off("net.ns.inum").unwrap(), 20);
    assert!(btf.member("sock.__sk_common.skc_reuse").unwrap().bitfield.is_some());
    assert!(btf.member("skc_legacy_bits.x").unwrap().bitfield.is_some());
    assert!(btf.member("cyc.loop_a").unwrap_err().to_string().contains("cycle"));
    assert_eq!(off("selfish.me").unwrap(), 0);
    // Bit offset (2^32 - 8) + (2^24 - 8): past u32 in bits, not in bytes.
    assert_eq!(off("deep.far.un").unwrap(), 538_968_062);
    assert!(off("dup.x").unwrap_err().to_string().contains("ambiguous"));
    assert!(off("grid.grid").unwrap_err().to_string().contains("overflows"));
    assert!(btf.func_proto("tcp_v4_connect").is_ok());
    assert_eq!(btf.typedef_proto("btf_trace_inet_sock_set_state").unwrap().params.len(), 2);
}
