//! The transports' write side and the counters (`probes/output.rs`).

use super::*;
use crate::tracer::probes::frame::{FLIGHT, PRE, TMP};
use crate::transport::{TransportMaps, SLOT_RESERVE_TRIES as RESERVE_TRIES, SLOT_SIZE};

#[test]
fn current_cpu_flag_is_32_bit_all_ones() {
    let p = state_program(&offsets(), StateHook::TpBtf, &Filters::default(), &MAPS).unwrap();
    // mov32 r3, -1 = b4 03 00 00 ff ff ff ff, never the sign-extending b7.
    let bytes = p.to_bytes();
    assert!(bytes.chunks(8).any(|c| c == [0xb4, 0x03, 0, 0, 0xff, 0xff, 0xff, 0xff]));
    assert!(!bytes.chunks(8).any(|c| c == [0xb7, 0x03, 0, 0, 0xff, 0xff, 0xff, 0xff]));
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
        let at: Vec<usize> = (0..l.len()).filter(|&i| l[i] == "r1 = map_fd(8) ll").collect();
        assert!(!at.is_empty(), "{text}");
        for &i in &at {
            assert_eq!(l[prev_call(&l, i)], "call bpf_get_smp_processor_id#8", "{:?}", &l[i..]);
            let lookup = in_order(&l, i, &["call bpf_map_lookup_elem#1"])[0];
            assert_eq!(lookup, next_call(&l, i));
            in_order(&l[..next_call(&l, lookup)], lookup, &["lock *(u64 *)(r0 +*"]);
        }
        assert!(!text.contains("r1 += 1\n*(u64 *)(r0"), "no load-add-store count:\n{text}");
    }
}

#[test]
fn output_failures_are_counted() {
    // After perf_event_output: `if r0 s>= 0 goto done`, -ENOSPC skipped,
    // then stats[cpu].output_failed += 1.
    let l = lines(&state(StateHook::TpBtf, &Filters::default(), &MAPS));
    let out = in_order(&l, 0, &["call bpf_perf_event_output#25"])[0];
    let at = in_order(
        &l,
        out,
        &[
            "if w0 s>= 0x0 goto*",
            "if w0 == 0xffffffe4 goto*",
            "call bpf_get_smp_processor_id#8",
            "lock *(u64 *)(r0 +0) += r1",
        ],
    );
    assert_eq!(at[2], next_call(&l, out), "counted next:\n{}", l[out..].join("\n"));
}

#[test]
fn every_output_is_counted_in_flight_from_stamp_to_commit() {
    // Fully ordered adds (transport::emit::ordered_add): arm64's is the fetching one.
    let (inc, dec) = match crate::asm::Arch::HOST {
        crate::asm::Arch::X86_64 => (
            format!("lock *(u64 *)(r0 +{}) += r1", STAT_IN_FLIGHT * 8),
            format!("lock *(u64 *)(r1 +{}) += r2", STAT_IN_FLIGHT * 8),
        ),
        crate::asm::Arch::Aarch64 => (
            format!("r1 = atomic64_fetch_add((u64 *)(r0 +{}), r1)", STAT_IN_FLIGHT * 8),
            format!("r2 = atomic64_fetch_add((u64 *)(r1 +{}), r2)", STAT_IN_FLIGHT * 8),
        ),
    };
    let keep = format!("*(u64 *)(r10 {FLIGHT}) = r0");
    let kept = format!("r1 = *(u64 *)(r10 {FLIGHT})");
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
                // Before the stamp, since this CPU's element was looked up:
                // += 1, the element's pointer kept in FLIGHT.
                let lookup = prev_call(&l, at);
                assert_eq!(l[lookup], "call bpf_map_lookup_elem#1", "{:?}", &l[..at]);
                in_order(&l[..at], lookup, &[&keep, &inc]);
                // After the commit (and its failure count): -= 1 through the kept pointer.
                let c = at + l[at..].iter().position(|x| x == commit).expect("committed");
                let load = in_order(&l, c, &[&kept])[0];
                in_order(&l[..next_call(&l, load)], load, &["r2 = -1", &dec]);
                assert!(!l[c..load].contains(&"call bpf_ktime_get_ns#5".to_string()));
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
        let l = lines(&text);
        let query = in_order(&l, 0, &["call bpf_ringbuf_query*"])[0];
        // NO_WAKEUP unless 1 MiB - 120 <= queued < 1 MiB + 120, then FORCE_WAKEUP.
        let at = in_order(
            &l,
            query,
            &[
                "r5 = 1",
                "if r0 < 0xfff88 goto*",
                "if r0 >= 0x100078 goto*",
                "r5 = 2",
                "r4 = r5",
                "call bpf_ringbuf_output#130",
            ],
        );
        let output = at[5];
        assert_eq!(output, next_call(&l, query), "{text}");
        // A failed output is counted (STAT_RING_FULL), -ENOSPC included.
        let after = l[output..].join("\n");
        assert!(after.contains(&format!("lock *(u64 *)(r0 +{}) += r1", STAT_RING_FULL * 8)), "{after}");
        let tests = &l[output + 1..next_call(&l, output)];
        assert!(!tests.iter().any(|x| x.contains("0xffffffe4")), "{after}");
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
                let pre = format!("*(u64 *)(r10 {PRE}) = r0");
                in_order(&l[..next_call(&l, at)], at, &[&pre]);
            }
        }
        for &at in &stamps {
            let before = &l[..at];
            let res = before.iter().rposition(|x| x == cas).unwrap();
            // This CPU's control element (after 2 CPUs x 1024 slots); full at 1024 queued.
            let start = before[..res].iter().rposition(|x| x == "call bpf_get_smp_processor_id#8").unwrap();
            in_order(&before[..next_call(before, start)], start, &["r0 += 2048"]);
            let tried = before[..res].iter().rposition(|x| x == cas || x.starts_with("call ")).unwrap();
            in_order(&before[..res], tried, &["if r3 >= 0x400 goto*"]);
            // The position is kept in FLIGHT before the stamp.
            assert!(before[res..].contains(&format!("*(u64 *)(r10 {FLIGHT}) = r1")));
            let after = &l[at..];
            // The slot: cpu << 10 | position & 1023, before it is looked up.
            let lookup = next_call(after, next_call(after, 0));
            assert_eq!(after[lookup], "call bpf_map_lookup_elem#1", "{after:?}");
            in_order(&after[..lookup], 0, &["call bpf_get_smp_processor_id#8", "r0 <<= 10", "r1 &= 1023"]);
            // The 112-byte event after the commit word, then the commit (position + 1) last.
            let body: Vec<usize> = (1..=EVENT_SIZE / 8)
                .map(|k| after.iter().position(|x| *x == format!("*(u64 *)(r0 +{}) = r1", 8 * k)).unwrap())
                .collect();
            assert!(body.windows(2).all(|w| w[0] < w[1]), "{after:?}");
            let commit = after.iter().position(|x| x == "*(u64 *)(r0 +0) = r1").unwrap();
            assert!(commit > *body.last().unwrap(), "{after:?}");
            let pre_store = format!("*(u64 *)(r10 {PRE})");
            let pre = in_order(
                &after[..=commit],
                *body.last().unwrap(),
                &[&format!("r1 = {pre_store}"), &format!("*(u64 *)(r0 +{}) = r1", SLOT_SIZE - 8)],
            )[1];
            // The commit word: the kept position + 1, stored last.
            let flight = format!("r1 = *(u64 *)(r10 {FLIGHT})");
            in_order(&after[..=commit], pre, &[&flight, "r1 += 1", "*(u64 *)(r0 +0) = r1"]);
            // Woken at 128 or 512 queued, through the wake ring, forced.
            let tmp = format!("r1 = *(u64 *)(r10 {TMP})");
            let wake = in_order(
                after,
                commit,
                &[
                    &tmp,
                    "if r1 == 0x80 goto*",
                    "if r1 != 0x200 goto*",
                    "r1 = map_fd(11) ll",
                    "r4 = 2",
                    "call bpf_ringbuf_output#130",
                ],
            );
            assert_eq!(wake[5], next_call(after, commit), "{after:?}");
        }
        // A full ring is counted in STAT_RING_FULL.
        assert!(text.contains(&format!("lock *(u64 *)(r0 +{}) += r1", STAT_RING_FULL * 8)), "{text}");
    }
}

#[test]
fn a_socket_without_a_port_is_counted_not_dropped_silently() {
    let add = format!("lock *(u64 *)(r0 +{}) += r1", crate::tracer::probes::STAT_NO_PORT * 8);
    let f = Filters::default();
    for text in STATES.iter().map(|&h| state(h, &f, &MAPS)).chain([accept(&f, &MAPS)]) {
        let l = lines(&text);
        let at = all(&l, &add);
        assert_eq!(at.len(), 1, "one no-port count:\n{text}");
        // Reached by a jump only (a label after an unconditional goto),
        // then out (past its own lookup-failed label).
        let i = at[0];
        let smp = prev_call(&l, prev_call(&l, i));
        assert_eq!(l[smp], "call bpf_get_smp_processor_id#8");
        let (label, before) = (&l[smp - 1], &l[smp - 2]);
        assert!(
            label.ends_with(':') && before.starts_with("goto "),
            "only jumped to:\n{}",
            l[smp - 2..=i].join("\n")
        );
        assert!(l[i + 1].ends_with(':') && l[i + 2].starts_with("goto "), "then out:\n{}", l[i..].join("\n"));
    }
}
