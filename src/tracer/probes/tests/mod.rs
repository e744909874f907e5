//! The generated programs, read back from their disassembly: fixtures and
//! matching helpers here, the tests by program beside.

mod accept;
mod destroy;
mod output;
mod owner;
mod state;

use super::read::Access;
use super::*;
use crate::tracer::event::{off, EVENT_SIZE};
use crate::tracer::offsets::{FdOffsets, Field, SockOffsets};
use crate::transport::{PerfMaps, RingMaps, SlotMaps, TransportMaps};

pub fn offsets() -> SockOffsets {
    SockOffsets {
        daddr: 0,
        rcv_saddr: 4,
        dport: 12,
        num: 14,
        family: 16,
        state: 18,
        v6: Some((56, 72)),
        netns: Some((48, 176)),
        protocol: Field { off: 516, size: 2, bits: None },
        lock_owned: 140,
        inet_sport: 814,
        sk_socket: 272,
        sk_err: 280,
        socket_ino: 192,
        bytes_acked: 1576,
        bytes_received: 1488,
    }
}

/// A disassembly's instructions without their `N: ` prefixes (labels kept).
fn ops(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|l| l.split(": ").nth(1).unwrap_or(l).trim())
}

/// The disassembled line of the host's owner/mark fence.
fn fence_line() -> String {
    use crate::tracer::probes::frame::TMP;
    match crate::asm::Arch::HOST {
        crate::asm::Arch::X86_64 => format!("lock *(u64 *)(r10 {TMP}) += r1"),
        crate::asm::Arch::Aarch64 => format!("r1 = atomic64_fetch_add((u64 *)(r10 {TMP}), r1)"),
    }
}

fn lines(text: &str) -> Vec<String> {
    ops(text).map(str::to_string).collect()
}

pub fn fd_offsets() -> FdOffsets {
    FdOffsets {
        task_files: 2000,
        files_fdt: 32,
        fdt_max_fds: 0,
        fdt_fd: 8,
        file_private_data: 200,
        socket_file: 16,
        socket_sk: 24,
    }
}

pub const MAPS: MapFds = MapFds {
    transport: TransportMaps::PerfBuf(PerfMaps { events: 5 }),
    conns: 6,
    marks: 9,
    inflight: Some(7),
    stats: 8,
};
pub const RB_MAPS: MapFds = MapFds {
    transport: TransportMaps::RingBuf(RingMaps { events: 5, wake_at: 1 << 20, wake_below: (1 << 20) + 120 }),
    ..MAPS
};
pub const SLOT_MAPS: MapFds = MapFds {
    transport: TransportMaps::Slots(SlotMaps { fd: 10, wake: 11, n: 1024, cpus: 2 }),
    inflight: None,
    ..MAPS
};

const KP: StateHook = StateHook::Kprobe { arg0: 112, arg1: 104 };
/// Every state program a backend attaches.
const STATES: [StateHook; 3] = [StateHook::TpBtf, StateHook::Fentry, KP];

fn state(hook: StateHook, f: &Filters, maps: &MapFds) -> String {
    state_program(&offsets(), hook, f, maps).unwrap().to_string()
}

fn accept(f: &Filters, maps: &MapFds) -> String {
    accept_program(&offsets(), &fd_offsets(), 16, f, maps).unwrap().to_string()
}

fn all_filters() -> Filters {
    Filters {
        pid: Some(4242),
        netns: Some(4026531840),
        family: Some(6),
        uid: Some(0x4d2),
        cgroup: Some(0x1234_5678_9abc),
        ports: vec![8080, 443],
        comm: Some(*b"curl\0\0\0\0\0\0\0\0\0\0\0\0"),
        failed: true,
        task_ids: false,
        no_netns: true,
        skip_close_port: None,
    }
}

/// Positions of the lines equal to `want`.
fn all(l: &[String], want: &str) -> Vec<usize> {
    (0..l.len()).filter(|&i| l[i] == want).collect()
}

/// Whether `line` is `pat`; a `pat` ending in `*` matches any line it starts.
fn is(line: &str, pat: &str) -> bool {
    match pat.strip_suffix('*') {
        Some(prefix) => line.starts_with(prefix),
        None => line == pat,
    }
}

/// Where `pats` are found in `l`, in this order, from `from` on; panics
/// naming the first one missing.
fn in_order(l: &[String], from: usize, pats: &[&str]) -> Vec<usize> {
    let mut at = from;
    pats.iter()
        .map(|pat| {
            let i = at
                + l[at..].iter().position(|x| is(x, pat)).unwrap_or_else(|| {
                    panic!("`{pat}` not found in order {pats:?} after {from}:\n{}", l[from..].join("\n"))
                });
            at = i + 1;
            i
        })
        .collect()
}

/// The first helper call after `i` (or the end).
fn next_call(l: &[String], i: usize) -> usize {
    (i + 1..l.len()).find(|&j| l[j].starts_with("call ")).unwrap_or(l.len())
}

/// The last helper call before `i` (or the start).
fn prev_call(l: &[String], i: usize) -> usize {
    l[..i].iter().rposition(|x| x.starts_with("call ")).unwrap_or(0)
}

/// The map a helper call at `call` works on: the last `r1 = map_fd(N) ll`
/// before it, since the call before.
fn map_of(l: &[String], call: usize) -> Option<&str> {
    let from = prev_call(l, call);
    l[from..call].iter().rev().find(|x| x.starts_with("r1 = map_fd(")).map(String::as_str)
}

/// The first test of r0 after the call at `call`, before r0 changes.
fn r0_test(l: &[String], call: usize) -> Option<&str> {
    l[call + 1..]
        .iter()
        .take_while(|x| !x.starts_with("call ") && !x.starts_with("r0 =") && *x != "exit")
        .find(|x| x.starts_with("if r0 ") || x.starts_with("if w0 "))
        .map(String::as_str)
}

#[test]
fn programs_assemble_with_and_without_filters() {
    for f in [Filters::default(), all_filters()] {
        for maps in [MAPS, RB_MAPS, SLOT_MAPS] {
            for hook in STATES {
                let p = state_program(&offsets(), hook, &f, &maps).unwrap();
                assert!(p.len() < 720, "{hook:?} state program grew to {}", p.len());
            }
            let p = accept_program(&offsets(), &fd_offsets(), 16, &f, &maps).unwrap();
            assert!(p.len() < 720, "accept program grew to {}", p.len());
        }
        for hook in [ConnectHook::Fentry, ConnectHook::Kprobe { arg0: 112, ret: 80 }] {
            connect_entry_program(&offsets(), hook, &f, &MAPS).unwrap();
            connect_exit_program(hook, 3, &MAPS).unwrap();
        }
    }
}

#[test]
fn copied_access_fits_the_stack() {
    let (lo, hi) = offsets().common_span();
    assert_eq!((lo, hi), (0, 88));
    let acc = Access::Copied { lo, hi };
    assert_eq!(acc.base(), frame::TMP - 88);
    assert!(acc.base() - 8 >= frame::IDENT, "the copy stays above IDENT");
}
