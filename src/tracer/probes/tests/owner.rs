//! Owners and their identity, deferred closes, map results.

use super::*;
use crate::tracer::probes::frame::{EV, IDENT, TMP, VAL};

#[test]
fn an_owner_is_believed_only_with_the_sockets_identity() {
    // Every conns lookup (map fd 6) compares the value's identity (+40) with
    // the socket's (IDENT, read through sk_socket at 272 and the inode at 192).
    let ident = format!("r2 = *(u64 *)(r10 {IDENT})");
    let store = format!("*(u64 *)(r10 {}) = r1", VAL + 40);
    for text in STATES.iter().map(|&h| state(h, &all_filters(), &MAPS)).chain([accept(&all_filters(), &MAPS)])
    {
        let l = lines(&text);
        let conns = |i: usize| map_of(&l, i) == Some("r1 = map_fd(6) ll");
        let lookups: Vec<usize> =
            (0..l.len()).filter(|&i| l[i] == "call bpf_map_lookup_elem#1" && conns(i)).collect();
        for &i in &lookups {
            // Null test, then the identities compared, before anything else is called.
            in_order(
                &l[..next_call(&l, i)],
                i,
                &["if r0 == 0x0 goto*", "r1 = *(u64 *)(r0 +40)", &ident, "if r1 != r2 goto*"],
            );
        }
        // Every update stores the identity into the value first.
        let updates: Vec<usize> =
            (0..l.len()).filter(|&i| l[i] == "call bpf_map_update_elem#2" && conns(i)).collect();
        for &i in &updates {
            let ident = format!("r1 = *(u64 *)(r10 {IDENT})");
            in_order(&l[..i], prev_call(&l, i), &[&ident, &store]);
        }
    }
    // The identity: sk->sk_socket, then its inode number.
    let st = state(StateHook::TpBtf, &Filters::default(), &MAPS);
    assert!(st.contains("r3 += 272") && st.contains("r3 += 192"), "{st}");
}

#[test]
fn a_close_without_owner_is_marked_fenced_and_claimed_or_left_pending() {
    let fence = fence_line();
    for f in [Filters::default(), Filters { pid: Some(4242), ..Filters::default() }] {
        for hook in STATES {
            let l = lines(&state(hook, &f, &MAPS));
            // marks[IDENT] = 1 (fd 9), fence, the owner looked up again,
            // then the mark deleted (the claim) before the X.
            let mark = (0..l.len())
                .find(|&i| l[i] == "call bpf_map_update_elem#2" && map_of(&l, i) == Some("r1 = map_fd(9) ll"))
                .expect("marked");
            in_order(&l[..mark], prev_call(&l, mark), &["r2 = r10", &format!("r2 += {IDENT}")]);
            let fe = mark + l[mark..].iter().position(|x| *x == fence).expect("fence after the mark");
            let calls: Vec<&str> =
                l[fe..].iter().map(|s| s.as_str()).filter(|x| x.starts_with("call")).take(2).collect();
            assert_eq!(calls, ["call bpf_map_lookup_elem#1", "call bpf_map_delete_elem#3"]);
            let claim = fe + l[fe..].iter().position(|x| x == "call bpf_map_delete_elem#3").unwrap();
            assert_eq!(map_of(&l, claim), Some("r1 = map_fd(9) ll"), "the mark is deleted");
            // 32-bit tests of map results (see count_failure). Only the
            // deleter reports; -ENOENT (0xfffffffe) means the accept did; any
            // other failure is counted (stats, fd 8) and the X goes out.
            let (deleted, enoent) = ("if w0 == 0x0 goto*", "if w0 == 0xfffffffe goto*");
            in_order(&l, claim, &[deleted, enoent, "r1 = map_fd(8) ll"]);
            let conns =
                claim + 1 + l[claim + 1..].iter().position(|x| x == "call bpf_map_delete_elem#3").unwrap();
            assert_eq!(map_of(&l, conns), Some("r1 = map_fd(6) ll"), "then the owner entry");
            assert!(is(r0_test(&l, claim).unwrap(), deleted));
            // Nobody recorded: the X goes out as KIND_PENDING.
            assert!(l.contains(&format!("*(u8 *)(r10 {}) = 5", EV + off::KIND)), "{hook:?}");
        }
    }
}

#[test]
fn the_fence_is_a_full_barrier_on_each_arch() {
    // x86: `lock add` (byte-identical to what 5.10 accepts, no BPF_FETCH);
    // arm64: a fetching add (LDADDAL), since a plain one is a relaxed STADD.
    let text = |arch| {
        let mut a = crate::asm::Asm::new();
        crate::tracer::probes::owner::fence_for(&mut a, arch);
        a.mov64_imm(crate::asm::Reg::R0, 0);
        a.exit();
        let p = a.finish().unwrap();
        (p.to_string(), p.to_bytes())
    };
    let (x86, x86_bytes) = text(crate::asm::Arch::X86_64);
    let (arm, arm_bytes) = text(crate::asm::Arch::Aarch64);
    let tmp = TMP.to_le_bytes();
    let store = [0x7a, 0x0a, tmp[0], tmp[1], 0, 0, 0, 0];
    let mov = [0xb7, 0x01, 0, 0, 0, 0, 0, 0];
    assert_eq!(&x86_bytes[..24], [store, mov, [0xdb, 0x1a, tmp[0], tmp[1], 0, 0, 0, 0]].concat(), "{x86}");
    assert_eq!(&arm_bytes[..24], [store, mov, [0xdb, 0x1a, tmp[0], tmp[1], 1, 0, 0, 0]].concat(), "{arm}");
    assert!(x86.contains(&format!("lock *(u64 *)(r10 {TMP}) += r1")), "{x86}");
    assert!(arm.contains(&format!("r1 = atomic64_fetch_add((u64 *)(r10 {TMP}), r1)")), "{arm}");
    assert!(lines(&accept(&Filters::default(), &MAPS)).contains(&fence_line()));
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
                let test = r0_test(&l, i);
                assert!(
                    !test.is_some_and(|t| t.starts_with("if r0")),
                    "64-bit test of a map result at {i}: {test:?}"
                );
            }
        }
    }
}
