//! The running kernel's BTF (`/sys/kernel/btf/vmlinux` must exist: these
//! tests fail, not skip, without it). Expectations are for 6.x kernels.

use std::path::Path;
use std::time::Instant;

use crate::btf::{Btf, Kind};

fn kernel() -> Btf {
    assert!(Path::new("/sys/kernel/btf/vmlinux").exists(), "/sys/kernel/btf/vmlinux is missing");
    Btf::kernel().unwrap()
}

#[test]
fn live_kernel_members() {
    let btf = kernel();
    let m = |p: &str| btf.member(p).unwrap_or_else(|e| panic!("{e}"));
    let dport = m("sock_common.skc_dport").plain_offset().unwrap();
    let num = m("sock_common.skc_num").plain_offset().unwrap();
    assert_eq!(num, dport + 2);
    let fam = m("sock.__sk_common.skc_family");
    assert_eq!((fam.plain_offset().unwrap(), fam.size), (16, 2));
    assert_eq!(m("sock.__sk_common.skc_net.net").size, 8);
    assert_eq!(m("sock.__sk_common.skc_net.net").kind, Kind::Ptr);
    assert_eq!(m("net.ns.inum").size, 4);
    let proto = m("sock.sk_protocol");
    assert_eq!(proto.size, 2);
    assert_eq!(proto.bitfield, None);
    proto.plain_offset().unwrap();
    for p in [
        "sock.sk_lock.owned",
        "task_struct.files",
        "files_struct.fdt",
        "fdtable.fd",
        "fdtable.max_fds",
        "file.private_data",
        "socket.sk",
        "sock_common.skc_daddr",
        "sock_common.skc_rcv_saddr",
    ] {
        m(p);
    }
    let e = btf.member("sock.__sk_common.skc_foo").unwrap_err().to_string();
    assert!(e.contains("has no member skc_foo (path sock.__sk_common.skc_foo)"), "{e}");
}

#[test]
fn live_kernel_protos() {
    let btf = kernel();
    let tp = btf.typedef_proto("btf_trace_inet_sock_set_state").unwrap();
    // Function-pointer protos carry no parameter names in kernel BTF: check types.
    assert_eq!(tp.params.len(), 4, "{tp:?}");
    let ty = |i: usize| btf.skip_mods(tp.params[i].1).unwrap();
    assert_eq!(btf.kind(ty(0)).unwrap(), Kind::Ptr);
    assert_eq!(btf.raw(ty(0)).unwrap().size_type, 0, "void *__data");
    assert_eq!(btf.kind(ty(1)).unwrap(), Kind::Ptr);
    let sk = btf.skip_mods(btf.raw(ty(1)).unwrap().size_type).unwrap();
    assert_eq!(btf.name(sk).unwrap(), "sock");
    assert_eq!(btf.name(ty(2)).unwrap(), "int");
    assert_eq!(btf.name(ty(3)).unwrap(), "int");
    assert!(btf.has_func("tcp_v4_connect"));
    assert_eq!(btf.func_proto("inet_csk_accept").unwrap().params.len(), 2);
}

/// Timing for the lead: `cargo test --release -- --nocapture live`.
#[test]
fn live_kernel_timing() {
    let t0 = Instant::now();
    let btf = kernel();
    let load = t0.elapsed();
    let paths = [
        "sock.__sk_common.skc_family",
        "sock.__sk_common.skc_dport",
        "sock.__sk_common.skc_num",
        "sock.__sk_common.skc_daddr",
        "sock.__sk_common.skc_rcv_saddr",
        "sock.__sk_common.skc_net.net",
        "net.ns.inum",
        "sock.sk_protocol",
        "task_struct.files",
        "file.private_data",
    ];
    let t1 = Instant::now();
    for p in paths {
        btf.member(p).unwrap();
    }
    let lookups = t1.elapsed();
    let mapped = matches!(btf.data, crate::btf::Bytes::Mapped(_));
    eprintln!(
        "BTF timing: kernel() load+index {load:?} ({} types, mmap: {mapped}), \
         10 member lookups {lookups:?}",
        btf.type_count()
    );
}

#[test]
fn live_prefetch_agrees_with_scans() {
    let wanted = [
        ("sock", Kind::Struct),
        ("net", Kind::Struct),
        ("tcp_set_state", Kind::Func),
        ("btf_trace_inet_sock_set_state", Kind::Typedef),
        ("no_such_type_tcpt", Kind::Struct),
        ("sock", Kind::Union),
    ];
    let fresh = kernel();
    let prefetched = kernel();
    prefetched.prefetch(&wanted);
    let found_loading = Btf::kernel_finding(&wanted).unwrap();
    for (name, kind) in wanted {
        assert_eq!(prefetched.find_all(name, kind), fresh.find_all(name, kind), "{name} {kind:?}");
        assert_eq!(found_loading.find_all(name, kind), fresh.find_all(name, kind), "{name} {kind:?}");
    }
    assert_eq!(prefetched.find_all("sock", Kind::Struct).len(), 1);
    assert!(prefetched.find_all("no_such_type_tcpt", Kind::Struct).is_empty());
}
