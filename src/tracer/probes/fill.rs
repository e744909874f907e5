//! The event's tuple and kind, and the filters on them.

use super::filters::{port_filter, task_filters};
use super::frame::{EV, IDENT, KIND, SK, TMP};
use super::kernel::{AF_INET, AF_INET6, CLOSE};
use super::maps::MapFds;
use super::output::count;
use super::read::{probe_read, read_sk, Access};
use super::stats::STAT_NO_PORT;
use crate::asm::{Alu, Asm, Jmp, Label, Reg, Size};
use crate::tracer::config::Filters;
use crate::tracer::event::{off, Kind, KIND_PENDING};
use crate::tracer::offsets::{Field, SockOffsets};

pub const KIND_CONNECT: i32 = Kind::Connect as i32;
pub const KIND_ACCEPT: i32 = Kind::Accept as i32;
pub const KIND_CLOSE: i32 = Kind::Close as i32;
pub const KIND_FAILED: i32 = Kind::Failed as i32;
/// A deferred X: `KIND_PENDING` instead of `KIND_CLOSE`.
const _: () = assert!(KIND_PENDING as i32 > KIND_FAILED);

/// Where the source port comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sport {
    /// `skc_num` (host order), read with the other sock_common fields.
    Num,
    /// `skc_num`, unless the TCP state in this register is CLOSE or
    /// `skc_num` is 0: then `inet_sock.inet_sport` (network order) through
    /// probe_read_kernel, as `inet_put_port()` zeroes `skc_num` before the
    /// state becomes CLOSE (a copy of sock_common may see both).
    NumUnlessClose(Reg),
}

/// How `fill_event` reads the sock and whom it filters.
#[derive(Clone, Copy)]
pub(super) struct Tail {
    pub(super) acc: Access,
    pub(super) sport: Sport,
    /// Apply the task filters (not while the event's task is unknown).
    pub(super) task_filters: bool,
}

/// Fill the event's tuple from the sock in `SK`, kind in `KIND` (the task
/// block already in place; IDENT as the socket's identity), and go to
/// `out` unless it passes the filters (a socket without a port: counted,
/// then `out`). Clobbers r0–r5.
pub(super) fn fill_event(a: &mut Asm, so: &SockOffsets, tail: Tail, f: &Filters, maps: &MapFds, out: Label) {
    let Tail { acc, sport, task_filters: tasks } = tail;
    let (v4, ports, no_port, done) = (a.label(), a.label(), a.label(), a.label());
    for o in (off::KIND..off::SOCK).step_by(8) {
        a.st(Size::DW, Reg::R10, EV + o, 0);
    }
    const _: () = assert!(off::RECEIVED_LO == off::SENT_LO + 4);
    a.st(Size::DW, Reg::R10, EV + off::SENT_LO, 0);
    a.ldx(Size::DW, Reg::R1, Reg::R10, IDENT);
    a.stx(Size::DW, Reg::R10, EV + off::SOCK, Reg::R1);
    a.stx(Size::B, Reg::R10, EV + off::KIND, KIND);
    if tasks {
        task_filters(a, f, out);
    }
    acc.load(a, Size::H, Reg::R1, so.family);
    match f.family {
        Some(4) => a.jmp_imm(Jmp::Ne, Reg::R1, AF_INET, out),
        Some(_) => a.jmp_imm(Jmp::Ne, Reg::R1, AF_INET6, out),
        None => {}
    }
    a.jmp_imm(Jmp::Eq, Reg::R1, AF_INET, v4);
    match so.v6 {
        Some((daddr, saddr)) => {
            a.jmp_imm(Jmp::Ne, Reg::R1, AF_INET6, out);
            a.st(Size::B, Reg::R10, EV + off::IP, 6);
            for (field, dst) in [(saddr, off::SADDR), (daddr, off::DADDR)] {
                for half in [0, 8] {
                    acc.load(a, Size::DW, Reg::R1, field + half as u32);
                    a.stx(Size::DW, Reg::R10, EV + dst + half, Reg::R1);
                }
            }
            a.ja(ports);
        }
        None => a.ja(out),
    }
    a.bind(v4);
    a.st(Size::B, Reg::R10, EV + off::IP, 4);
    acc.load(a, Size::W, Reg::R1, so.rcv_saddr);
    a.stx(Size::W, Reg::R10, EV + off::SADDR, Reg::R1);
    acc.load(a, Size::W, Reg::R1, so.daddr);
    a.stx(Size::W, Reg::R10, EV + off::DADDR, Reg::R1);
    a.bind(ports);
    match sport {
        Sport::Num => acc.load(a, Size::H, Reg::R1, so.num),
        Sport::NumUnlessClose(state) => {
            let (inet, done) = (a.label(), a.label());
            a.jmp_imm(Jmp::Eq, state, CLOSE, inet);
            acc.load(a, Size::H, Reg::R1, so.num);
            a.jmp_imm(Jmp::Ne, Reg::R1, 0, done);
            a.bind(inet);
            probe_read(a, TMP, 2, SK, so.inet_sport, out);
            a.ldx(Size::H, Reg::R1, Reg::R10, TMP);
            a.to_be(Reg::R1, 16);
            a.bind(done);
        }
    }
    a.jmp_imm(Jmp::Eq, Reg::R1, 0, no_port);
    a.stx(Size::H, Reg::R10, EV + off::SPORT, Reg::R1);
    acc.load(a, Size::H, Reg::R1, so.dport);
    a.jmp_imm(Jmp::Eq, Reg::R1, 0, no_port);
    a.stx(Size::H, Reg::R10, EV + off::DPORT, Reg::R1);
    port_filter(a, f, out);
    if let (Some((net, inum)), true) = (so.netns, f.reads_netns()) {
        let no_net = a.label();
        match acc {
            // A typed load of the pointer would cost the verifier a scan of
            // the kernel's BTF at load: read it as a number. See
            // docs/decisions.md (netns pointer).
            Access::Direct => {
                probe_read(a, TMP, 8, SK, net, no_net);
                a.ldx(Size::DW, Reg::R1, Reg::R10, TMP);
            }
            Access::Copied { .. } => acc.load(a, Size::DW, Reg::R1, net),
        }
        a.jmp_imm(Jmp::Eq, Reg::R1, 0, no_net);
        probe_read(a, TMP, 4, Reg::R1, inum, no_net);
        a.ldx(Size::W, Reg::R1, Reg::R10, TMP);
        a.stx(Size::W, Reg::R10, EV + off::NETNS, Reg::R1);
        a.bind(no_net);
    }
    if let Some(ns) = f.netns {
        a.ldx(Size::W, Reg::R1, Reg::R10, EV + off::NETNS);
        a.jmp32_imm(Jmp::Ne, Reg::R1, ns as i32, out);
    }
    if f.failed {
        // A failed connect carries its error (sk_err, set before the CLOSE).
        let not_failed = a.label();
        a.jmp_imm(Jmp::Ne, KIND, KIND_FAILED, not_failed);
        read_sk(a, acc.mem(), Reg::R1, Field { off: so.sk_err, size: 4, bits: None }, out);
        a.stx(Size::H, Reg::R10, EV + off::ERROR, Reg::R1);
        a.bind(not_failed);
    }
    a.ja(done);
    a.bind(no_port);
    count(a, maps, STAT_NO_PORT);
    a.ja(out);
    a.bind(done);
}

/// The bytes an X's connection carried, into the event (filled, so zero
/// there): `tcp_sock.bytes_acked` and `bytes_received`, less one when the
/// u32 at r10 + `fin_in` is 1 (the peer's FIN, which the kernel counts).
/// Read with probe_read_kernel in every backend: the fields lie beyond
/// `struct sock`, where a BTF pointer's direct load may not go. A count
/// that cannot be read stays 0. Clobbers r0–r5.
pub(super) fn read_bytes(a: &mut Asm, so: &SockOffsets, fin_in: Option<i16>) {
    for (field, lo, hi) in [
        (so.bytes_acked, off::SENT_LO, off::SENT_HI),
        (so.bytes_received, off::RECEIVED_LO, off::RECEIVED_HI),
    ] {
        let (skip, fits) = (a.label(), a.label());
        probe_read(a, TMP, 8, SK, field, skip);
        a.ldx(Size::DW, Reg::R1, Reg::R10, TMP);
        if let (Some(fin), true) = (fin_in, lo == off::RECEIVED_LO) {
            let kept = a.label();
            a.ldx(Size::W, Reg::R2, Reg::R10, fin);
            a.jmp_imm(Jmp::Eq, Reg::R2, 0, kept);
            a.jmp_imm(Jmp::Eq, Reg::R1, 0, kept);
            a.alu64_imm(Alu::Sub, Reg::R1, 1);
            a.bind(kept);
        }
        // 48 bits: bits 0..32 at `lo`, 32..48 at `hi`; more saturates.
        a.mov64_reg(Reg::R2, Reg::R1);
        a.alu64_imm(Alu::Rsh, Reg::R2, 48);
        a.jmp_imm(Jmp::Eq, Reg::R2, 0, fits);
        a.mov64_imm(Reg::R1, -1);
        a.bind(fits);
        a.stx(Size::W, Reg::R10, EV + lo, Reg::R1);
        a.alu64_imm(Alu::Rsh, Reg::R1, 32);
        a.stx(Size::H, Reg::R10, EV + hi, Reg::R1);
        a.bind(skip);
    }
}

/// Set the event's kind byte.
pub(super) fn set_kind(a: &mut Asm, kind: i32) {
    a.st(Size::B, Reg::R10, EV + off::KIND, kind);
}
