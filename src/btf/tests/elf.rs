//! ELF input: a hand-built ELF64 little-endian relocatable file.

use super::fixture_bytes;
use crate::btf::{Btf, BtfError};

/// ELF64 LE with sections: null, .shstrtab, and `name` holding `payload`.
fn elf64(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut shstrtab = b"\0.shstrtab\0".to_vec();
    let name_off = shstrtab.len() as u32;
    shstrtab.extend_from_slice(name.as_bytes());
    shstrtab.push(0);

    let shstr_off = 64u64;
    let payload_off = (shstr_off + shstrtab.len() as u64).next_multiple_of(8);
    let sh_off = (payload_off + payload.len() as u64).next_multiple_of(8);

    let mut f = Vec::new();
    f.extend_from_slice(b"\x7fELF");
    f.extend([2, 1, 1, 0]); // ELFCLASS64, ELFDATA2LSB, EV_CURRENT, SYSV
    f.resize(16, 0);
    f.extend(1u16.to_le_bytes()); // ET_REL
    f.extend(62u16.to_le_bytes()); // EM_X86_64
    f.extend(1u32.to_le_bytes()); // e_version
    f.extend(0u64.to_le_bytes()); // e_entry
    f.extend(0u64.to_le_bytes()); // e_phoff
    f.extend(sh_off.to_le_bytes()); // e_shoff
    f.extend(0u32.to_le_bytes()); // e_flags
    for h in [64u16, 0, 0, 64, 3, 1] {
        // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
        f.extend(h.to_le_bytes());
    }
    assert_eq!(f.len(), 64);
    f.extend_from_slice(&shstrtab);
    f.resize(payload_off as usize, 0);
    f.extend_from_slice(payload);
    f.resize(sh_off as usize, 0);
    let section = |f: &mut Vec<u8>, name: u32, ty: u32, off: u64, size: u64| {
        f.extend(name.to_le_bytes());
        f.extend(ty.to_le_bytes());
        f.extend(0u64.to_le_bytes()); // flags
        f.extend(0u64.to_le_bytes()); // addr
        f.extend(off.to_le_bytes());
        f.extend(size.to_le_bytes());
        f.extend(0u32.to_le_bytes()); // link
        f.extend(0u32.to_le_bytes()); // info
        f.extend(1u64.to_le_bytes()); // addralign
        f.extend(0u64.to_le_bytes()); // entsize
    };
    section(&mut f, 0, 0, 0, 0);
    section(&mut f, 1, 3, shstr_off, shstrtab.len() as u64); // SHT_STRTAB
    section(&mut f, name_off, 1, payload_off, payload.len() as u64); // SHT_PROGBITS
    f
}

#[cfg(target_endian = "little")]
#[test]
fn elf_with_btf_section() {
    let btf = Btf::from_bytes(elf64(".BTF", &fixture_bytes())).unwrap();
    let m = btf.member("sock.__sk_common.skc_num").unwrap();
    assert_eq!(m.plain_offset().unwrap(), 10);
}

#[cfg(target_endian = "little")]
#[test]
fn elf_without_btf_section() {
    let err = Btf::from_bytes(elf64(".data", &fixture_bytes())).unwrap_err();
    assert!(matches!(err, BtfError::NoBtfSection { .. }));
    assert!(err.to_string().contains("ELF file has no .BTF section"), "{err}");
}

#[cfg(target_endian = "little")]
#[test]
fn elf_with_bad_btf_and_truncated_elf() {
    let mut bad = fixture_bytes();
    bad[2] = 2;
    let err = Btf::from_bytes(elf64(".BTF", &bad)).unwrap_err().to_string();
    assert!(err.contains("(.BTF section): unsupported BTF version 2"), "{err}");
    let elf = elf64(".BTF", &fixture_bytes());
    for n in [4, 20, 64, 100, elf.len() - 10] {
        assert!(Btf::from_bytes(elf[..n].to_vec()).is_err(), "truncated at {n}");
    }
}
