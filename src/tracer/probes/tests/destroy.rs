//! Owners open at their C or A; the destroy program reports an open one.

use super::*;
use crate::tracer::probes::frame::{CONN_OPEN, EV, OPEN, VAL};

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
    let store = format!("*(u64 *)(r10 {}) = r1", VAL + CONN_OPEN);
    in_order(&l[..next_call(&l, at)], at, &[&store]);
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
