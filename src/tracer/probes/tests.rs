//! The generated programs, read back from their disassembly.

use super::owner::{DEFER_KNOWN, DEFER_UNKNOWN};
use super::*;
use crate::tracer::offsets::FdOffsets;
use crate::transport::{
    PerfMaps, RingMaps, SlotMaps, TransportMaps, SLOT_RESERVE_TRIES as RESERVE_TRIES, SLOT_SIZE,
};

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
    }
}

/// A disassembly's instructions without their `N: ` prefixes (labels kept).
fn ops(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|l| l.split(": ").nth(1).unwrap_or(l).trim())
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
    transport: TransportMaps::RingBuf(RingMaps { events: 5, wake_at: 1 << 20, wake_below: (1 << 20) + 112 }),
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
fn every_filter_reaches_the_code() {
    let f = all_filters();
    for hook in STATES {
        let text = state(hook, &f, &MAPS);
        let plain = state(hook, &Filters::default(), &MAPS);
        for (what, needle) in [
            ("pid", "0x1092"),
            ("netns", "0xf0000000"),
            ("uid", "0x4d2"),
            ("cgroup", "0x123456789abc"),
            ("port 8080 host order", "0x1f90"),
            ("port 443 network order", "0xbb01"),
            ("comm", "0x6c727563"),
            ("uid helper (implied by the uid filter)", "bpf_get_current_uid_gid"),
            ("cgroup helper", "bpf_get_current_cgroup_id"),
        ] {
            assert!(text.contains(needle), "{what} missing in {hook:?}:\n{text}");
            assert!(!plain.contains(needle), "{what} without the filter in {hook:?}");
        }
    }
}

#[test]
fn failed_connects_only_on_request() {
    // KIND_FAILED = 4 is moved into r8 only when failed connects are reported.
    for hook in STATES {
        let on = Filters { failed: true, ..Filters::default() };
        assert!(state(hook, &on, &MAPS).contains("r8 = 4"), "{hook:?}");
        assert!(!state(hook, &Filters::default(), &MAPS).contains("r8 = 4"), "{hook:?}");
    }
}

#[test]
fn current_cpu_flag_is_32_bit_all_ones() {
    let p = state_program(&offsets(), StateHook::TpBtf, &Filters::default(), &MAPS).unwrap();
    // mov32 r3, -1 = b4 03 00 00 ff ff ff ff, never the sign-extending b7.
    let bytes = p.to_bytes();
    assert!(bytes.chunks(8).any(|c| c == [0xb4, 0x03, 0, 0, 0xff, 0xff, 0xff, 0xff]));
    assert!(!bytes.chunks(8).any(|c| c == [0xb7, 0x03, 0, 0, 0xff, 0xff, 0xff, 0xff]));
}

#[test]
fn probe_backends_never_load_through_sk_directly() {
    // With Mem::Probe, r7 holds a plain number: any `*(rX)(r7 + off)` load
    // would be rejected by the verifier (kprobe) or read garbage.
    for text in [state(KP, &Filters::default(), &MAPS), accept(&Filters::default(), &MAPS)] {
        assert!(!text.contains("(r7 +"), "direct load through sk:\n{text}");
    }
    let tp = state(StateHook::TpBtf, &Filters::default(), &MAPS);
    assert!(tp.contains("(r7 +16)"), "tp_btf reads skc_family directly:\n{tp}");
}

#[test]
fn process_context_and_softirq_closes_take_their_paths() {
    // sk_lock.owned (140): with a task holding the lock the X is the
    // current task's (DEFER_KNOWN if no owner); else the owner's, or
    // unknown (DEFER_UNKNOWN).
    for hook in STATES {
        let text = state(hook, &Filters::default(), &MAPS);
        assert!(text.contains(&format!("*(u32 *)(r10 {FLAG}) = {DEFER_KNOWN}")), "{hook:?}: {text}");
        assert!(text.contains(&format!("*(u32 *)(r10 {FLAG}) = {DEFER_UNKNOWN}")), "{hook:?}");
    }
    let tp = state(StateHook::TpBtf, &Filters::default(), &MAPS);
    assert!(tp.contains("r1 = *(u32 *)(r7 +140)"), "{tp}");
    // Connects are recorded at CLOSE→SYN_SENT only with the tracepoint.
    let record = "if w9 == 0x2 goto";
    assert!(tp.contains(record));
    assert!(!state(StateHook::Fentry, &Filters::default(), &MAPS).contains(record));
}

/// Positions of the lines equal to `want`.
fn all(l: &[String], want: &str) -> Vec<usize> {
    (0..l.len()).filter(|&i| l[i] == want).collect()
}

#[test]
fn an_owner_is_believed_only_with_the_sockets_identity() {
    // Every conns lookup (map fd 6) compares the value's identity (+40) with
    // the socket's (IDENT, read through sk_socket at 272 and the inode at 192).
    for text in STATES.iter().map(|&h| state(h, &all_filters(), &MAPS)).chain([accept(&all_filters(), &MAPS)])
    {
        let l = lines(&text);
        let lookups: Vec<usize> = (1..l.len())
            .filter(|&i| l[i] == "call bpf_map_lookup_elem#1" && l[i - 4] == "r1 = map_fd(6) ll")
            .collect();
        for &i in &lookups {
            assert!(l[i + 1].starts_with("if r0 == 0x0 goto"), "{:?}", &l[i..i + 5]);
            assert_eq!(l[i + 2], "r1 = *(u64 *)(r0 +40)");
            assert_eq!(l[i + 3], format!("r2 = *(u64 *)(r10 {IDENT})"));
            assert!(l[i + 4].starts_with("if r1 != r2 goto"), "{:?}", &l[i..i + 5]);
        }
        // Every update stores the identity into the value first.
        let updates: Vec<usize> = (4..l.len())
            .filter(|&i| l[i] == "call bpf_map_update_elem#2" && l[i - 6] == "r1 = map_fd(6) ll")
            .collect();
        for &i in &updates {
            assert_eq!(l[i - 9], format!("r1 = *(u64 *)(r10 {IDENT})"), "{:?}", &l[i - 9..i]);
            assert_eq!(l[i - 8], format!("*(u64 *)(r10 {}) = r1", VAL + 40));
        }
    }
    // The identity: sk->sk_socket, then its inode number.
    let st = state(StateHook::TpBtf, &Filters::default(), &MAPS);
    assert!(st.contains("r3 += 272") && st.contains("r3 += 192"), "{st}");
}

#[test]
fn a_close_without_owner_is_marked_fenced_and_claimed_or_left_pending() {
    let fence = format!("lock *(u64 *)(r10 {TMP}) += r1");
    for f in [Filters::default(), Filters { pid: Some(4242), ..Filters::default() }] {
        for hook in STATES {
            let l = lines(&state(hook, &f, &MAPS));
            // marks[IDENT] = 1 (fd 9), fence, the owner looked up again,
            // then the mark deleted (the claim) before the X.
            let mark = (6..l.len())
                .find(|&i| l[i] == "call bpf_map_update_elem#2" && l[i - 7] == "r1 = map_fd(9) ll")
                .expect("marked");
            assert_eq!(l[mark - 5], format!("r2 += {IDENT}"), "keyed by the identity");
            let fe = mark + l[mark..].iter().position(|x| *x == fence).expect("fence after the mark");
            let calls: Vec<&str> =
                l[fe..].iter().map(|s| s.as_str()).filter(|x| x.starts_with("call")).take(3).collect();
            assert_eq!(
                calls,
                ["call bpf_map_lookup_elem#1", "call bpf_map_delete_elem#3", "call bpf_map_delete_elem#3"]
            );
            let claim = fe + l[fe..].iter().position(|x| x == "call bpf_map_delete_elem#3").unwrap();
            // 32-bit tests of map results (see count_failure).
            assert!(l[claim + 1].starts_with("if w0 != 0x0 goto"), "only the deleter reports");
            // Nobody recorded: the X goes out as KIND_PENDING.
            assert!(l.contains(&format!("*(u8 *)(r10 {}) = 5", EV + off::KIND)), "{hook:?}");
        }
    }
}

#[test]
fn the_accept_checks_its_socket_and_claims_a_deferred_close_after_its_a() {
    let fence = format!("lock *(u64 *)(r10 {TMP}) += r1");
    for f in [Filters::default(), Filters { pid: Some(4242), ..Filters::default() }] {
        let l = lines(&accept(&f, &MAPS));
        // socket->file (16) and ->sk (24) in one read; the file must be the
        // one found in the fd table (KEY).
        let both = l.iter().position(|x| x == "r3 += 16").unwrap();
        assert_eq!(l[both + 3], "r2 = 16", "{:?}", &l[both..both + 5]);
        assert!(l.contains(&format!("r2 = *(u64 *)(r10 {KEY})")));
        assert!(l.iter().any(|x| x.starts_with("if r1 != r2 goto")));
        // Identity from the socket's inode (192).
        assert!(l.contains(&"r3 += 192".to_string()));
        // A, then the owner recorded, fence, the mark deleted, then X.
        let outputs = all(&l, "call bpf_perf_event_output#25");
        assert_eq!(outputs.len(), 2);
        let fe = l.iter().position(|x| *x == fence).expect("fence");
        let rec = (0..fe).rfind(|&i| l[i] == "call bpf_map_update_elem#2").unwrap();
        assert!(outputs[0] < rec && rec < fe && fe < outputs[1], "A, record, fence, X");
        let claim = fe + l[fe..].iter().position(|x| x == "call bpf_map_delete_elem#3").unwrap();
        assert_eq!(l[claim - 3], "r1 = map_fd(9) ll", "the mark is deleted first");
        assert!(l[claim + 1].starts_with("if w0 != 0x0 goto"), "32-bit test of the result");
        // No back-edge: the X is the second output written out.
        let insns = accept_program(&offsets(), &fd_offsets(), 16, &f, &MAPS).unwrap();
        for (i, insn) in insns.insns().iter().enumerate() {
            let class = insn.code & 0x07;
            if (class == 0x05 || class == 0x06) && insn.code != 0x85 && insn.code != 0x95 {
                assert!(insn.off >= 0, "back-edge at insn {i}");
            }
        }
    }
}

#[test]
fn counters_are_added_atomically_per_cpu() {
    for text in STATES
        .iter()
        .map(|&h| state(h, &Filters::default(), &SLOT_MAPS))
        .chain([accept(&Filters::default(), &MAPS)])
    {
        let l = lines(&text);
        // stats (fd 8) looked up by the CPU's id, then a locked add.
        let at: Vec<usize> = (2..l.len()).filter(|&i| l[i] == "r1 = map_fd(8) ll").collect();
        assert!(!at.is_empty(), "{text}");
        for &i in &at {
            assert_eq!(l[i - 2], "call bpf_get_smp_processor_id#8", "{:?}", &l[i - 2..]);
            let add = &l[i + 4..(i + 9).min(l.len())];
            assert!(add.iter().any(|x| x.starts_with("lock *(u64 *)(r0 +")), "{add:?}");
        }
        assert!(!text.contains("r1 += 1\n*(u64 *)(r0"), "no load-add-store count:\n{text}");
    }
}

#[test]
fn map_results_are_tested_on_their_low_32_bits() {
    // Before 6.5 a map's update/delete returns an int into r0 (upper half
    // unset): a 64-bit test saw -E2BIG as a large positive number.
    for text in STATES.iter().map(|&h| state(h, &all_filters(), &MAPS)).chain([accept(&all_filters(), &MAPS)])
    {
        let l = lines(&text);
        for (i, x) in l.iter().enumerate() {
            if x == "call bpf_map_update_elem#2" || x == "call bpf_map_delete_elem#3" {
                let next = &l[i + 1];
                assert!(!next.starts_with("if r0"), "64-bit test of a map result at {i}: {next}");
            }
        }
    }
}

#[test]
fn output_failures_are_counted() {
    // After perf_event_output: `if r0 s>= 0 goto done`, -ENOSPC skipped,
    // then stats[cpu].output_failed += 1.
    let text = state(StateHook::TpBtf, &Filters::default(), &MAPS);
    let after = text.split("call bpf_perf_event_output#25").nth(1).unwrap();
    let l: Vec<&str> = ops(after).skip(1).take(12).collect();
    assert_eq!(l[0].split(" goto").next().unwrap(), "if w0 s>= 0x0", "{after}");
    assert_eq!(l[1].split(" goto").next().unwrap(), "if w0 == 0xffffffe4", "{after}");
    assert_eq!(l[2], "call bpf_get_smp_processor_id#8", "{after}");
    assert!(l.contains(&"lock *(u64 *)(r0 +0) += r1"), "{after}");
}

#[test]
fn every_output_is_counted_in_flight_from_stamp_to_commit() {
    let inc = format!("lock *(u64 *)(r0 +{}) += r1", STAT_IN_FLIGHT * 8);
    let dec = format!("lock *(u64 *)(r1 +{}) += r2", STAT_IN_FLIGHT * 8);
    for maps in [MAPS, RB_MAPS] {
        let f = Filters::default();
        for text in [state(StateHook::TpBtf, &f, &maps), state(KP, &f, &maps), accept(&f, &maps)] {
            let l = lines(&text);
            let stamps = all(&l, "call bpf_ktime_get_ns#5");
            assert!(!stamps.is_empty(), "{text}");
            let commit = if matches!(maps.transport, TransportMaps::RingBuf(_)) {
                "call bpf_ringbuf_output#130"
            } else {
                "call bpf_perf_event_output#25"
            };
            for &at in &stamps {
                // Before the stamp: += 1, the element's pointer kept in FLIGHT.
                let before = &l[at.saturating_sub(8)..at];
                assert!(before.contains(&format!("*(u64 *)(r10 {FLIGHT}) = r0")), "{before:?}");
                assert!(before.contains(&inc), "{before:?}");
                // After the commit (and its failure count): -= 1 through the kept pointer.
                let c = at + l[at..].iter().position(|x| x == commit).expect("committed");
                let after = &l[c..];
                let load = after.iter().position(|x| *x == format!("r1 = *(u64 *)(r10 {FLIGHT})")).unwrap();
                assert_eq!(after[load + 2], "r2 = -1", "{after:?}");
                assert_eq!(after[load + 3], dec, "{after:?}");
                assert!(!after[..load].contains(&"call bpf_ktime_get_ns#5".to_string()));
            }
            assert_eq!((all(&l, &inc).len(), all(&l, &dec).len()), (stamps.len(), stamps.len()), "{text}");
        }
    }
}

#[test]
fn ring_buffer_output_wakes_only_around_the_watermark() {
    for text in
        [state(StateHook::TpBtf, &Filters::default(), &RB_MAPS), accept(&Filters::default(), &RB_MAPS)]
    {
        assert!(!text.contains("bpf_perf_event_output"), "{text}");
        let at = text.find("call bpf_ringbuf_query").expect("queried before output");
        let l: Vec<&str> = ops(&text[at..]).take(12).collect();
        // NO_WAKEUP unless 1 MiB - 112 <= queued < 1 MiB + 112, then FORCE_WAKEUP.
        assert_eq!(l[1], "r5 = 1", "{text}");
        assert!(l[2].starts_with("if r0 < 0xfff90 goto"), "{text}");
        assert!(l[3].starts_with("if r0 >= 0x100070 goto"), "{text}");
        assert_eq!(l[4], "r5 = 2", "{text}");
        assert!(l.contains(&"r4 = r5") && l.contains(&"call bpf_ringbuf_output#130"), "{text}");
        // A failed output is counted (STAT_RING_FULL), -ENOSPC included.
        let after = text.split("call bpf_ringbuf_output#130").nth(1).unwrap();
        assert!(after.contains(&format!("lock *(u64 *)(r0 +{}) += r1", STAT_RING_FULL * 8)), "{after}");
        assert!(!after.lines().nth(2).unwrap().contains("0xffffffe4"), "{after}");
    }
}

#[test]
fn slot_output_reserves_then_stamps_copies_and_commits_last() {
    let f = Filters::default();
    for text in [state(StateHook::TpBtf, &f, &SLOT_MAPS), state(KP, &f, &SLOT_MAPS), accept(&f, &SLOT_MAPS)] {
        let l: Vec<String> =
            lines(&text).into_iter().filter(|x| !(x.starts_with('L') && x.ends_with(':'))).collect();
        assert!(!text.contains("perf_event_output") && !text.contains("ringbuf_query"), "{text}");
        assert!(!text.contains("map_fd(5)"), "the perf map is not used:\n{text}");
        let cas = "r0 = atomic64_cmpxchg((u64 *)(r4 +0), r0, r3)";
        // The stamp follows the reservation; another clock precedes it.
        let clocks = all(&l, "call bpf_ktime_get_ns#5");
        let stamps: Vec<usize> = clocks
            .iter()
            .copied()
            .filter(|&i| {
                l[..i].iter().rposition(|x| x == cas)
                    > l[..i].iter().rposition(|x| x.starts_with("*(u64 *)(r0 +0) = r1"))
            })
            .collect();
        assert!(!stamps.is_empty(), "{text}");
        assert_eq!(clocks.len(), 2 * stamps.len(), "{text}");
        assert_eq!(all(&l, cas).len(), stamps.len() * RESERVE_TRIES, "{text}");
        for &at in &clocks {
            if !stamps.contains(&at) {
                assert_eq!(l[at + 1], format!("*(u64 *)(r10 {PRE}) = r0"), "the clock before reserving");
            }
        }
        for &at in &stamps {
            let before = &l[..at];
            let res = before.iter().rposition(|x| x == cas).unwrap();
            // This CPU's control element (after 2 CPUs x 1024 slots); full at 1024 queued.
            let start = before[..res].iter().rposition(|x| x == "call bpf_get_smp_processor_id#8").unwrap();
            assert_eq!(before[start + 1], "r0 += 2048", "{before:?}");
            assert!(before[res - 4].starts_with("if r3 >= 0x400 goto"), "{:?}", &before[res - 6..]);
            // The position is kept in FLIGHT before the stamp.
            assert!(before[res..].contains(&format!("*(u64 *)(r10 {FLIGHT}) = r1")));
            let after = &l[at..];
            // The slot: cpu << 10 | position & 1023.
            assert!(after[..8].contains(&"r0 <<= 10".into()) && after[..8].contains(&"r1 &= 1023".into()));
            // The 104-byte event after the commit word, then the commit (position + 1) last.
            let body: Vec<usize> = (1..=EVENT_SIZE / 8)
                .map(|k| after.iter().position(|x| *x == format!("*(u64 *)(r0 +{}) = r1", 8 * k)).unwrap())
                .collect();
            assert!(body.windows(2).all(|w| w[0] < w[1]), "{after:?}");
            let commit = after.iter().position(|x| x == "*(u64 *)(r0 +0) = r1").unwrap();
            assert!(commit > *body.last().unwrap(), "{after:?}");
            let pre =
                after.iter().position(|x| *x == format!("*(u64 *)(r0 +{}) = r1", SLOT_SIZE - 8)).unwrap();
            assert!(pre < commit && after[pre - 1] == format!("r1 = *(u64 *)(r10 {PRE})"), "{after:?}");
            assert_eq!(after[commit - 2], format!("r1 = *(u64 *)(r10 {FLIGHT})"));
            assert_eq!(after[commit - 1], "r1 += 1");
            // Woken at 128 or 512 queued, through the wake ring, forced.
            assert!(after[commit + 2].starts_with("if r1 == 0x80 goto"), "{after:?}");
            assert!(after[commit + 3].starts_with("if r1 != 0x200 goto"), "{after:?}");
            assert_eq!(after[commit + 4], "r1 = map_fd(11) ll");
            assert_eq!(after[commit + 8], "r4 = 2");
            assert_eq!(after[commit + 9], "call bpf_ringbuf_output#130");
        }
        // A full ring is counted in STAT_RING_FULL.
        assert!(text.contains(&format!("lock *(u64 *)(r0 +{}) += r1", STAT_RING_FULL * 8)), "{text}");
    }
}

#[test]
fn one_output_per_state_program() {
    // Every path ends in the same output (the programs stay small).
    for hook in STATES {
        let l = lines(&state(hook, &all_filters(), &MAPS));
        assert_eq!(all(&l, "call bpf_perf_event_output#25").len(), 1, "{hook:?}");
    }
}

#[test]
fn sport_is_read_as_inet_sport_only_for_close() {
    let text = state(StateHook::TpBtf, &Filters::default(), &MAPS);
    // skc_num (14) directly; inet_sport (814) through a probe read, after `if r9 != 7`.
    assert!(text.contains("*(u16 *)(r7 +14)"), "{text}");
    assert!(text.contains("r3 += 814"), "{text}");
    assert!(text.contains("if r9 == 0x7 goto"), "{text}");
}

#[test]
fn accept_reads_max_fds_and_fd_together() {
    let reads = |fo: &FdOffsets| {
        let text = accept_program(&offsets(), fo, 16, &Filters::default(), &MAPS).unwrap().to_string();
        let l = lines(&text);
        l.windows(2)
            .filter(|w| w[1].starts_with("call bpf_probe_read_kernel"))
            .map(|w| w[0].clone())
            .collect::<Vec<_>>()
    };
    // fdtable: max_fds at 0, fd at 8: one 16-byte read; socket file+sk: another.
    let together = reads(&fd_offsets());
    assert_eq!(together.iter().filter(|s| *s == "r2 = 16").count(), 2, "{together:?}");
    let apart = reads(&FdOffsets { fdt_fd: 64, socket_sk: 48, ..fd_offsets() });
    assert_eq!(apart.iter().filter(|s| *s == "r2 = 16").count(), 0, "{apart:?}");
    assert_eq!(apart.len(), together.len() + 2, "one read more for each pair apart");
}

#[test]
fn netns_is_read_only_when_shown_or_filtered() {
    // skc_net at 48, then net->ns.inum at 176 (two probe reads).
    let reads_ns = |f: &Filters| {
        [state(StateHook::TpBtf, f, &MAPS), state(KP, f, &MAPS), accept(f, &MAPS)]
            .map(|t| t.contains("r3 += 176"))
    };
    assert_eq!(reads_ns(&Filters::default()), [true; 3]);
    let hidden = Filters { no_netns: true, ..Filters::default() };
    assert_eq!(reads_ns(&hidden), [false; 3]);
    assert_eq!(reads_ns(&Filters { netns: Some(4026531840), ..hidden }), [true; 3]);
}

#[test]
fn copied_access_fits_the_stack() {
    let (lo, hi) = offsets().common_span();
    assert_eq!((lo, hi), (0, 88));
    let acc = Access::Copied { lo, hi };
    assert_eq!(acc.base(), TMP - 88);
    assert!(acc.base() - 8 >= IDENT, "the copy stays above IDENT");
}

#[test]
fn an_owner_opens_at_its_c_or_a_and_an_open_one_gets_its_x_at_destroy() {
    let open = format!("r1 |= {OPEN}");
    // C: the owner value's `open` (+48) becomes OPEN | skc_dport (12).
    for hook in STATES {
        let l = lines(&state(hook, &Filters::default(), &MAPS));
        let at = l.iter().position(|x| *x == open).expect("C sets open");
        assert!(l[at + 1..].contains(&format!("*(u32 *)(r0 +{CONN_OPEN}) = r1")), "{hook:?}");
    }
    // A: recorded open.
    let l = lines(&accept(&Filters::default(), &MAPS));
    let at = l.iter().position(|x| *x == open).expect("A records open");
    assert_eq!(l[at + 1], format!("*(u64 *)(r10 {}) = r1", VAL + CONN_OPEN));
    // Destroy: the entry goes; an open one whose remote port is the
    // socket's is counted and reported as X (kind 3), once.
    for hook in STATES {
        let text = destroy_program(&offsets(), hook, &all_filters(), &MAPS).unwrap().to_string();
        let l = lines(&text);
        let del = all(&l, "call bpf_map_delete_elem#3");
        assert_eq!(del.len(), 1, "{hook:?}: {text}");
        let test = l.iter().position(|x| *x == format!("r1 &= {OPEN}")).expect("open tested");
        assert!(del[0] < test, "deleted whatever it holds");
        assert!(l[test..].contains(&"r1 &= 65535".to_string()), "remote port compared");
        let count = format!("lock *(u64 *)(r0 +{}) += r1", STAT_CLOSE_AT_DESTROY * 8);
        assert!(l.contains(&count), "{hook:?}: counted");
        assert!(l.contains(&format!("*(u8 *)(r10 {}) = r8", EV + off::KIND)));
        assert!(l.contains(&"r8 = 3".to_string()));
        if hook == KP {
            assert!(!text.contains("(r7 +"), "direct load through sk:\n{text}");
        }
    }
}
