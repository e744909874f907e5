//! The loader against the real kernel: verifier rejections carry the log,
//! a missing tracepoint is named. Root only.

mod common;

use tcptracer::asm::{Asm, Reg};
use tcptracer::loader::prog::{load, ProgSpec, ProgType};
use tcptracer::loader::tracefs::Tracefs;
use tcptracer::loader::{attach, LoadError};

fn bad_program() -> tcptracer::asm::Program {
    let mut a = Asm::new();
    a.mov64_reg(Reg::R0, Reg::R2); // r2 is not initialized: the verifier refuses
    a.exit();
    a.finish().unwrap()
}

fn good_program() -> tcptracer::asm::Program {
    let mut a = Asm::new();
    a.mov64_imm(Reg::R0, 0);
    a.exit();
    a.finish().unwrap()
}

fn spec<'a>(p: &'a tcptracer::asm::Program, want_log: bool) -> ProgSpec<'a> {
    ProgSpec {
        name: "tcpt_test",
        prog_type: ProgType::Tracepoint,
        expected_attach_type: 0,
        attach_btf_id: 0,
        insns: p.insns(),
        want_log,
    }
}

#[test]
fn verifier_rejection_carries_the_log() {
    common::require_root();
    let p = bad_program();
    let err = load(&spec(&p, false)).unwrap_err();
    match &err {
        LoadError::Verifier { log, source, prog } => {
            assert_eq!(prog, "tcpt_test");
            assert_eq!(source.raw_os_error(), Some(libc::EACCES));
            assert!(log.contains("R2 !read_ok"), "log: {log}");
        }
        e => panic!("not a verifier error: {e:?}"),
    }
    let line = err.to_string();
    assert_eq!(line.lines().count(), 1);
    assert!(line.starts_with("loading BPF program tcpt_test: Permission denied"), "{line}");
    assert!(line.ends_with("verifier: R2 !read_ok"), "{line}");
}

#[test]
fn a_good_program_loads_and_debug_gets_the_log() {
    common::require_root();
    let p = good_program();
    let prog = load(&spec(&p, true)).unwrap();
    assert!(prog.log.contains("processed 2 insns"), "log: {}", prog.log);
    let prog = load(&spec(&p, false)).unwrap();
    assert_eq!(prog.log, "");
}

#[test]
fn missing_tracepoint_is_named() {
    common::require_root();
    let tracefs = Tracefs::open().unwrap();
    let prog = load(&spec(&good_program(), false)).unwrap();
    let err = attach::tracepoint(&tracefs, &prog, "syscalls", "sys_exit_no_such_call").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("tracepoint syscalls:sys_exit_no_such_call is not available"), "{msg}");
    // And a real one attaches.
    attach::tracepoint(&tracefs, &prog, "syscalls", "sys_exit_accept4").unwrap();
}
