//! Tests: a test-side encoder, a synthetic kernel-like fixture, bad input,
//! ELF input and the live kernel's BTF.

mod bad_input;
mod elf;
pub(crate) mod encoder;
mod live;
mod synthetic;

use encoder::Builder;

use crate::btf::TypeId;

/// Ids of interesting fixture types.
pub struct Ids {
    pub int: TypeId,
    pub u32_: TypeId,
    pub sock: TypeId,
    pub sock_common: TypeId,
    pub net: TypeId,
    pub enum_: TypeId,
    pub enum64: TypeId,
    pub fwd: TypeId,
    pub volatile: TypeId,
    pub restrict: TypeId,
    pub func: TypeId,
    pub proto: TypeId,
    pub var: TypeId,
    pub datasec: TypeId,
    pub float: TypeId,
    pub decl_tag: TypeId,
    pub type_tag: TypeId,
    pub array: TypeId,
    pub loop_a: TypeId,
}

/// A small kernel-like type graph using every kind:
/// - `struct sock_common` with `skc_daddr`/`skc_rcv_saddr` in an anonymous
///   struct in an anonymous union (and `skc_dport`/`skc_num` likewise),
///   `skc_family` at 16, `skc_net` a typedef'd anonymous struct `{ net * }`;
/// - `struct sock` (kflag bitfields) whose `__sk_common` is
///   `const sock_common_t` (typedef);
/// - `struct legacy` with legacy INT-encoded bitfields;
/// - `struct outer.b.c` nesting, `struct cyc` with a typedef cycle,
///   `tcp_v4_connect` FUNC, `btf_trace_inet_sock_set_state` typedef.
pub fn fixture(b: &mut Builder) -> Ids {
    let int = b.int("int", 4, 32, 0, true);
    let u32_ = b.int("unsigned int", 4, 32, 0, false);
    let u16_ = b.int("unsigned short", 2, 16, 0, false);
    let u64_ = b.int("long long unsigned int", 8, 64, 0, false);
    let u8_ = b.int("unsigned char", 1, 8, 0, false);
    let be32 = b.typedef("__be32", u32_);
    let be16 = b.typedef("__be16", u16_);
    let addrpair = b.typedef("__addrpair", u64_);
    let portpair = b.typedef("__portpair", u32_);

    let ns_common = b.struct_("ns_common", 16, &[("stashed", b.next_id() + 1, 0, 0), ("inum", u32_, 64, 0)]);
    let _void_ptr = b.ptr(0);
    let net = b.struct_("net", 24, &[("passive", int, 0, 0), ("ns", ns_common, 64, 0)]);
    let net_ptr = b.ptr(net);
    let possible = b.struct_("", 8, &[("net", net_ptr, 0, 0)]);
    let possible_t = b.typedef("possible_net_t", possible);

    let addrs = b.struct_("", 8, &[("skc_daddr", be32, 0, 0), ("skc_rcv_saddr", be32, 32, 0)]);
    let addr_u = b.union_("", 8, &[("skc_addrpair", addrpair, 0, 0), ("", addrs, 0, 0)]);
    let ports = b.struct_("", 4, &[("skc_dport", be16, 0, 0), ("skc_num", u16_, 16, 0)]);
    let ports_u = b.union_("", 4, &[("skc_portpair", portpair, 0, 0), ("", ports, 0, 0)]);
    let sock_common = b.struct_(
        "sock_common",
        32,
        &[
            ("", addr_u, 0, 0),
            ("", ports_u, 64, 0),
            ("skc_family", u16_, 128, 0),
            ("skc_state", u8_, 144, 0),
            ("skc_net", possible_t, 192, 0),
        ],
    );
    let sc_t = b.typedef("sock_common_t", sock_common);
    let sc_const = b.const_(sc_t);
    let lock = b.struct_("", 8, &[("slock", int, 0, 0), ("owned", int, 32, 0)]);
    let lock_t = b.typedef("socket_lock_t", lock);
    let array = b.array(be32, int, 4);
    let sock_fwd_ptr = b.next_id() + 1; // volatile -> ptr (next) -> struct sock
    let volatile = b.volatile(sock_fwd_ptr);
    let sock_ptr = b.ptr(b.next_id() + 1);
    let sock = b.struct_(
        "sock",
        72,
        &[
            ("__sk_common", sc_const, 0, 0),
            ("sk_lock", lock_t, 256, 0),
            ("sk_flag_a", u32_, 320, 1),
            ("sk_flag_b", u32_, 321, 3),
            ("sk_protocol", u16_, 336, 0),
            ("sk_next", volatile, 384, 0),
            ("sk_addrs", array, 448, 0),
        ],
    );
    assert_eq!(sock_ptr + 1, sock);
    let bf3 = b.int("unsigned int", 4, 3, 0, false);
    let bf5 = b.int("unsigned int", 4, 5, 2, false);
    b.struct_("legacy", 8, &[("x", u32_, 0, 0), ("bf3", bf3, 35, 0), ("bf5", bf5, 40, 0)]);

    let c_t = b.struct_("c_t", 8, &[("pad", int, 0, 0), ("c", u16_, 32, 0)]);
    let c_td = b.typedef("c_td", c_t);
    let b_t = b.struct_("b_t", 16, &[("pad", u64_, 0, 0), ("b", c_td, 64, 0)]);
    b.struct_("outer", 32, &[("first", int, 0, 0), ("a", b_t, 128, 0)]);
    b.union_("u_only", 8, &[("lo", u32_, 0, 0), ("whole", u64_, 0, 0)]);
    b.union_("dual", 4, &[("m", u16_, 0, 0)]);
    b.struct_("dual", 8, &[("m", u16_, 32, 0)]);

    let loop_a = b.typedef("loop_a", b.next_id() + 1);
    b.typedef("loop_b", loop_a);
    b.struct_("cyc", 4, &[("m", loop_a, 0, 0)]);

    let enum_ = b.enum_("tcp_state", 4, &[("TCP_ESTABLISHED".into(), 1), ("TCP_CLOSE".into(), 7)]);
    let enum64 = b.enum64("big", 8, &[("BIG", 1 << 40)]);
    let fwd = b.fwd("fwd_only", false);
    let restrict = b.restrict(sock_ptr);
    let proto = b.func_proto(int, &[("sk", sock_ptr), ("uaddr", b.next_id() - 1), ("addr_len", int)]);
    let func = b.func("tcp_v4_connect", proto);
    let tp_proto =
        b.func_proto(0, &[("__data", _void_ptr), ("sk", sock_ptr), ("oldstate", int), ("newstate", int)]);
    let tp_ptr = b.ptr(tp_proto);
    b.typedef("btf_trace_inet_sock_set_state", tp_ptr);
    let var = b.var("my_var", int);
    let datasec = b.datasec(".data", 4, &[(var, 0, 4)]);
    let float = b.float("double", 8);
    let decl_tag = b.decl_tag("tag", func, -1);
    let type_tag = b.type_tag("rcu", sock_ptr);
    b.struct_("tagged", 8, &[("p", type_tag, 0, 0)]);
    Ids {
        int,
        u32_,
        sock,
        sock_common,
        net,
        enum_,
        enum64,
        fwd,
        volatile,
        restrict,
        func,
        proto,
        var,
        datasec,
        float,
        decl_tag,
        type_tag,
        array,
        loop_a,
    }
}

/// The fixture encoded as raw BTF.
pub fn fixture_bytes() -> Vec<u8> {
    let mut b = Builder::new();
    fixture(&mut b);
    b.build()
}
