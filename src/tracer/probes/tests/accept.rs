//! The accept program: its socket, its A, and the close it may claim.

use super::*;
use crate::tracer::probes::frame::KEY;

#[test]
fn the_accept_checks_its_socket_and_claims_a_deferred_close_after_its_a() {
    let fence = fence_line();
    for f in [Filters::default(), Filters { pid: Some(4242), ..Filters::default() }] {
        let l = lines(&accept(&f, &MAPS));
        // socket->file (16) and ->sk (24) in one read; the file must be the
        // one found in the fd table (KEY).
        let both = l.iter().position(|x| x == "r3 += 16").unwrap();
        in_order(&l[..next_call(&l, both)], both, &["r2 = 16"]);
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
        assert_eq!(map_of(&l, claim), Some("r1 = map_fd(9) ll"), "the mark is deleted first");
        assert!(is(r0_test(&l, claim).unwrap(), "if w0 != 0x0 goto*"), "32-bit test of the result");
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
fn accept_reads_max_fds_and_fd_together() {
    // The size (r2) of each probe read.
    let reads = |fo: &FdOffsets| {
        let text = accept_program(&offsets(), fo, 16, &Filters::default(), &MAPS).unwrap().to_string();
        let l = lines(&text);
        (0..l.len())
            .filter(|&i| l[i].starts_with("call bpf_probe_read_kernel"))
            .map(|i| l[prev_call(&l, i)..i].iter().rev().find(|x| x.starts_with("r2 = ")).unwrap().clone())
            .collect::<Vec<_>>()
    };
    // fdtable: max_fds at 0, fd at 8: one 16-byte read; socket file+sk: another.
    let together = reads(&fd_offsets());
    assert_eq!(together.iter().filter(|s| *s == "r2 = 16").count(), 2, "{together:?}");
    let apart = reads(&FdOffsets { fdt_fd: 64, socket_sk: 48, ..fd_offsets() });
    assert_eq!(apart.iter().filter(|s| *s == "r2 = 16").count(), 0, "{apart:?}");
    assert_eq!(apart.len(), together.len() + 2, "one read more for each pair apart");
}
