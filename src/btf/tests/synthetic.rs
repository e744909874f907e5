//! Lookups on synthetic BTF built with the test encoder.

use std::sync::Arc;

use super::encoder::Builder;
use super::{fixture, fixture_bytes};
use crate::btf::{Bitfield, Btf, BtfError, Kind, Member};

fn btf() -> Btf {
    Btf::from_bytes(fixture_bytes()).unwrap()
}

fn off(btf: &Btf, path: &str) -> u32 {
    btf.member(path).unwrap().plain_offset().unwrap()
}

#[test]
fn every_kind() {
    let mut b = Builder::new();
    let ids = fixture(&mut b);
    let btf = Btf::from_bytes(b.build()).unwrap();
    assert_eq!(btf.type_count(), b.next_id());
    let want = [
        (0, Kind::Void, ""),
        (ids.int, Kind::Int, "int"),
        (ids.sock, Kind::Struct, "sock"),
        (ids.enum_, Kind::Enum, "tcp_state"),
        (ids.enum64, Kind::Enum64, "big"),
        (ids.fwd, Kind::Fwd, "fwd_only"),
        (ids.volatile, Kind::Volatile, ""),
        (ids.restrict, Kind::Restrict, ""),
        (ids.func, Kind::Func, "tcp_v4_connect"),
        (ids.proto, Kind::FuncProto, ""),
        (ids.var, Kind::Var, "my_var"),
        (ids.datasec, Kind::Datasec, ".data"),
        (ids.float, Kind::Float, "double"),
        (ids.decl_tag, Kind::DeclTag, "tag"),
        (ids.type_tag, Kind::TypeTag, "rcu"),
        (ids.array, Kind::Array, ""),
        (ids.loop_a, Kind::Typedef, "loop_a"),
    ];
    for (id, kind, name) in want {
        assert_eq!(btf.kind(id).unwrap(), kind, "id {id}");
        assert_eq!(btf.name(id).unwrap(), name, "id {id}");
    }
    for k in [Kind::Ptr, Kind::Union, Kind::Const] {
        assert!(!btf.find_all("", k).is_empty(), "{k:?}");
    }
    assert_eq!(btf.find("sock", Kind::Struct).unwrap(), ids.sock);
    assert_eq!(btf.find("sock_common", Kind::Struct).unwrap(), ids.sock_common);
    assert!(btf.kind(btf.type_count()).is_err());
}

#[test]
fn sizes() {
    let mut b = Builder::new();
    let ids = fixture(&mut b);
    let btf = Btf::from_bytes(b.build()).unwrap();
    assert_eq!(btf.size_of(ids.array).unwrap(), 16);
    assert_eq!(btf.size_of(ids.volatile).unwrap(), 8);
    assert_eq!(btf.size_of(ids.sock).unwrap(), 72);
    assert_eq!(btf.size_of(ids.enum64).unwrap(), 8);
    assert_eq!(btf.size_of(ids.var).unwrap(), 4);
    assert_eq!(btf.size_of(ids.net).unwrap(), 24);
    assert!(btf.size_of(ids.func).is_err());
    assert!(btf.size_of(0).is_err());
    assert_eq!(btf.skip_mods(ids.volatile).unwrap(), ids.volatile + 1);
    assert_eq!(btf.skip_mods(ids.u32_).unwrap(), ids.u32_);
}

#[test]
fn anonymous_members_through_typedef_and_const() {
    let btf = btf();
    assert_eq!(off(&btf, "sock_common.skc_daddr"), 0);
    assert_eq!(off(&btf, "sock_common.skc_rcv_saddr"), 4);
    assert_eq!(off(&btf, "sock.__sk_common.skc_rcv_saddr"), 4);
    let dport = btf.member("sock.__sk_common.skc_dport").unwrap();
    let num = btf.member("sock.__sk_common.skc_num").unwrap();
    assert_eq!((dport.offset, dport.size, num.offset), (8, 2, 10));
    assert_eq!(btf.kind(dport.type_id).unwrap(), Kind::Int, "typedef skipped");
    let fam = btf.member("sock.__sk_common.skc_family").unwrap();
    assert_eq!((fam.offset, fam.size, fam.kind), (16, 2, Kind::Int));
    let net = btf.member("sock.__sk_common.skc_net.net").unwrap();
    assert_eq!((net.offset, net.size, net.kind), (24, 8, Kind::Ptr));
    let pair = btf.member("sock_common.skc_addrpair").unwrap();
    assert_eq!((pair.offset, pair.size), (0, 8));
    assert_eq!(off(&btf, "net.ns.inum"), 16);
    assert_eq!(off(&btf, "sock.sk_lock.owned"), 36);
    let arr = btf.member("sock.sk_addrs").unwrap();
    assert_eq!((arr.offset, arr.size, arr.kind), (56, 16, Kind::Array));
    let next = btf.member("sock.sk_next").unwrap();
    assert_eq!((next.offset, next.kind), (48, Kind::Ptr), "volatile skipped");
    assert_eq!(btf.member("tagged.p").unwrap().kind, Kind::Ptr, "type_tag skipped");
}

#[test]
fn nested_paths_unions_and_duplicates() {
    let btf = btf();
    let c = btf.member("outer.a.b.c").unwrap();
    assert_eq!((c.offset, c.size), (16 + 8 + 4, 2));
    assert_eq!(c.path, "outer.a.b.c");
    assert_eq!(off(&btf, "u_only.whole"), 0);
    assert_eq!(off(&btf, "dual.m"), 4, "struct preferred over union");
}

#[test]
fn bitfields() {
    let btf = btf();
    let a = btf.member("sock.sk_flag_a").unwrap();
    assert_eq!(a.bitfield, Some(Bitfield { bit_offset: 320, bits: 1 }));
    let b = btf.member("sock.sk_flag_b").unwrap();
    assert_eq!(b.bitfield, Some(Bitfield { bit_offset: 321, bits: 3 }));
    assert_eq!((b.offset, b.size), (40, 4));
    let err = b.plain_offset().unwrap_err().to_string();
    assert!(err.contains("sock.sk_flag_b") && err.contains("bitfield"), "{err}");
    let proto = btf.member("sock.sk_protocol").unwrap();
    assert_eq!((proto.plain_offset().unwrap(), proto.size), (42, 2));

    assert_eq!(off(&btf, "legacy.x"), 0);
    let bf3 = btf.member("legacy.bf3").unwrap();
    assert_eq!(bf3.bitfield, Some(Bitfield { bit_offset: 35, bits: 3 }));
    assert_eq!(bf3.offset, 4);
    assert!(bf3.plain_offset().is_err());
    let bf5 = btf.member("legacy.bf5").unwrap();
    assert_eq!(bf5.bitfield, Some(Bitfield { bit_offset: 42, bits: 5 }));
    assert_eq!(bf5.offset, 5);
}

#[test]
fn lookup_errors_name_the_problem() {
    let btf = btf();
    let e = btf.member("sock.__sk_common.skc_foo").unwrap_err().to_string();
    assert_eq!(e, "BTF: struct sock_common has no member skc_foo (path sock.__sk_common.skc_foo)");
    let e = btf.member("nosuch.x").unwrap_err().to_string();
    assert_eq!(e, "BTF: no struct named nosuch");
    let e = btf.member("sock.sk_next.x").unwrap_err().to_string();
    assert!(e.contains("sock.sk_next is a pointer"), "{e}");
    assert!(matches!(btf.member("sock"), Err(BtfError::BadPath { .. })));
    assert!(matches!(btf.member("sock..x"), Err(BtfError::BadPath { .. })));
    let e = btf.member("cyc.m").unwrap_err().to_string();
    assert!(e.contains("cycle"), "{e}");
    assert!(btf.skip_mods(btf.find("loop_b", Kind::Typedef).unwrap()).is_err());
    assert!(matches!(btf.find("int", Kind::Struct), Err(BtfError::NotFound { .. })));
    let e = btf.find("unsigned int", Kind::Int).unwrap_err().to_string();
    assert!(e.starts_with("BTF: int unsigned int is ambiguous: 3 matches"), "{e}");
}

#[test]
fn duplicate_root_structs() {
    let mut b = Builder::new();
    let int = b.int("int", 4, 32, 0, true);
    b.struct_("dup", 8, &[("a", int, 0, 0), ("b", int, 32, 0)]);
    b.struct_("dup", 8, &[("a", int, 0, 0), ("b", int, 32, 0)]);
    b.struct_("dup", 4, &[("a", int, 0, 0)]);
    b.struct_("dup2", 8, &[("a", int, 0, 0)]);
    b.struct_("dup2", 8, &[("a", int, 32, 0)]);
    let btf = Btf::from_bytes(b.build()).unwrap();
    assert_eq!(btf.find_all("dup", Kind::Struct).len(), 3);
    assert!(matches!(btf.find("dup", Kind::Struct), Err(BtfError::Ambiguous { .. })));
    assert_eq!(off(&btf, "dup.b"), 4, "the structs that have b agree");
    assert!(matches!(btf.member("dup2.a"), Err(BtfError::Ambiguous { .. })));
}

/// Names looked up while loading (and by `prefetch`) agree with plain scans:
/// duplicates, prefixes of other names, a kind with no such name, void.
#[test]
fn names_found_while_loading() {
    let mut b = Builder::new();
    let int = b.int("int", 4, 32, 0, true);
    b.struct_("dup", 4, &[("a", int, 0, 0)]);
    b.struct_("dupe", 4, &[("a", int, 0, 0)]);
    b.typedef("dup", int);
    b.struct_("du", 4, &[("a", int, 0, 0)]);
    b.struct_("dup", 4, &[("a", int, 0, 0)]);
    let proto = b.func_proto(int, &[]);
    b.func("dup", proto);
    let data = b.build();
    let wanted = [
        ("dup", Kind::Struct),
        ("du", Kind::Struct),
        ("dup", Kind::Typedef),
        ("dup", Kind::Func),
        ("dup", Kind::Union),
        ("", Kind::Void),
        ("int", Kind::Int),
        ("nosuch", Kind::Struct),
    ];
    let path = std::env::temp_dir().join(format!("tcpt-btf-finding-{}", std::process::id()));
    std::fs::write(&path, &data).unwrap();
    let loaded = Btf::from_file_finding(&path, &wanted).unwrap();
    std::fs::remove_file(&path).unwrap();
    let prefetched = Btf::from_bytes(data.clone()).unwrap();
    prefetched.prefetch(&wanted);
    let fresh = Btf::from_bytes(data).unwrap();
    for (name, kind) in wanted {
        let want = fresh.find_all(name, kind);
        assert_eq!(loaded.find_all(name, kind), want, "{name:?} {kind:?}");
        assert_eq!(prefetched.find_all(name, kind), want, "{name:?} {kind:?}");
    }
    assert_eq!(fresh.find_all("dup", Kind::Struct), [2, 6]);
    assert_eq!(fresh.find_all("du", Kind::Struct), [5]);
    assert_eq!(fresh.find_all("dup", Kind::Func), [8]);
    assert!(fresh.find_all("", Kind::Void).is_empty());
}

#[test]
fn protos() {
    let btf = btf();
    assert!(btf.has_func("tcp_v4_connect"));
    assert!(!btf.has_func("tcp_v6_connect"));
    assert!(!btf.has_func("sock"));
    let p = btf.func_proto("tcp_v4_connect").unwrap();
    let names: Vec<&str> = p.params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["sk", "uaddr", "addr_len"]);
    assert_eq!(btf.name(p.ret).unwrap(), "int");
    let sk = btf.skip_mods(p.params[0].1).unwrap();
    assert_eq!(btf.kind(sk).unwrap(), Kind::Ptr);
    let tp = btf.typedef_proto("btf_trace_inet_sock_set_state").unwrap();
    let names: Vec<&str> = tp.params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["__data", "sk", "oldstate", "newstate"]);
    assert_eq!(tp.ret, 0);
    assert!(btf.typedef_proto("__be32").is_err());
    assert!(btf.func_proto("nosuch").is_err());
}

#[test]
fn hdr_len_32() {
    let mut b = Builder::new();
    b.hdr_len = 32;
    fixture(&mut b);
    let data = b.build();
    assert_eq!(u32::from_ne_bytes(data[4..8].try_into().unwrap()), 32);
    let btf = Btf::from_bytes(data).unwrap();
    assert_eq!(off(&btf, "sock.__sk_common.skc_num"), 10);
}

#[test]
fn vlen_above_16_bits() {
    let mut b = Builder::new();
    let values: Vec<(String, i32)> = (0..70_000).map(|i| (format!("V{i}"), i)).collect();
    let e = b.enum_("huge", 4, &values);
    let int = b.int("int", 4, 32, 0, true);
    b.struct_("after", 8, &[("x", int, 32, 0)]);
    let btf = Btf::from_bytes(b.build()).unwrap();
    assert_eq!(btf.kind(e).unwrap(), Kind::Enum);
    assert_eq!(btf.raw(e).unwrap().vlen(), 70_000);
    assert_eq!(btf.type_count(), 4);
    assert_eq!(off(&btf, "after.x"), 4);
}

#[test]
fn split_btf_continues_ids_and_strings() {
    let mut base_b = Builder::new();
    let ids = fixture(&mut base_b);
    let base = Arc::new(Btf::from_bytes(base_b.build()).unwrap());
    assert_eq!(base.str_len(), base_b.str_len());

    let mut sb = Builder::split_of(&base_b);
    let first_new_str = sb.str("mod_only_name");
    assert_eq!(first_new_str, base.str_len(), "split strings start after base");
    let sock_ptr = sb.ptr(ids.sock);
    let m = sb.struct_(
        "mod_struct",
        16,
        &[("sk", sock_ptr, 0, 0), ("mod_only_name", ids.u32_, 64, 0), ("common", ids.sock_common, 0, 0)],
    );
    let tdef = sb.typedef("sock", ids.sock); // same name as a base struct, other kind
    let split = Btf::split(base.clone(), sb.build()).unwrap();

    assert_eq!(sock_ptr, base.type_count(), "split ids start at the base count");
    assert_eq!(split.type_count(), base.type_count() + 3);
    assert_eq!(split.find("mod_struct", Kind::Struct).unwrap(), m);
    assert_eq!(split.find("sock", Kind::Struct).unwrap(), ids.sock);
    assert_eq!(split.find("sock", Kind::Typedef).unwrap(), tdef);
    assert_eq!(split.name(ids.sock).unwrap(), "sock");
    assert_eq!(split.kind(sock_ptr).unwrap(), Kind::Ptr);
    assert_eq!(off(&split, "mod_struct.mod_only_name"), 8);
    assert_eq!(off(&split, "sock.__sk_common.skc_num"), 10);
    let m = split.member("mod_struct.common.skc_dport").unwrap();
    assert_eq!(
        m,
        Member {
            offset: 8,
            size: 2,
            type_id: split.member("sock_common.skc_dport").unwrap().type_id,
            kind: Kind::Int,
            bitfield: None,
            path: "mod_struct.common.skc_dport".into(),
        }
    );
    assert!(base.find_all("mod_struct", Kind::Struct).is_empty());
    assert!(split.base().is_some());
}
