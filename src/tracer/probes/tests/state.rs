//! The state program: filters, paths by context, the event's fields.

use super::*;
use crate::tracer::probes::frame::FLAG;
use crate::tracer::probes::owner::{DEFER_KNOWN, DEFER_UNKNOWN};

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
