//! `make static` builds a static musl binary: no interpreter, no shared
//! libraries, no dynamic section at all. `make test` passes its path in
//! TCPTRACER_STATIC_BIN.

use object::elf::{DT_NEEDED, PT_INTERP};
use object::read::elf::{Dyn, ElfFile64, FileHeader, ProgramHeader};
use object::Endianness;

#[test]
fn static_build_has_no_interpreter_and_no_needed_libraries() {
    let path = std::env::var("TCPTRACER_STATIC_BIN")
        .expect("TCPTRACER_STATIC_BIN is not set: run `make test` (it builds the static binary first)");
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let elf = ElfFile64::<Endianness>::parse(&*data).unwrap();
    let e = elf.endian();
    let mut needed = 0;
    for ph in elf.elf_program_headers() {
        assert_ne!(ph.p_type(e), PT_INTERP, "{path} has an ELF interpreter: it is dynamically linked");
        if let Ok(Some(dyns)) = ph.dynamic(e, &*data) {
            needed += dyns.iter().filter(|d| d.d_tag(e) == DT_NEEDED).count();
        }
    }
    assert_eq!(needed, 0, "{path} needs shared libraries");
    let dynamic = elf.elf_program_headers().iter().any(|ph| ph.p_type(e) == object::elf::PT_DYNAMIC);
    assert!(!dynamic, "{path} has a dynamic section (static-pie or dynamic): not the musl build");
    assert_eq!(elf.elf_header().e_type(e), object::elf::ET_EXEC, "a plain static executable");
    // And it runs.
    let out = std::process::Command::new(&path).arg("--help").output().unwrap();
    assert!(out.status.success());
}
