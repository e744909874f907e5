//! The crate as a library: `Tracer::builder()` in this process, typed
//! events from real loopback traffic. Root only.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tcptracer::tracer::event::{Event, Kind};
use tcptracer::tracer::{Backend, Tracer};

fn backend() -> Backend {
    std::env::var("TCPTRACER_BACKEND").ok().and_then(|b| Backend::from_name(&b)).unwrap_or(Backend::Auto)
}

#[test]
fn builder_yields_typed_events() {
    let _g = serial();
    require_root();
    let mut t = Tracer::builder().backend(backend()).pid(pid()).start().expect("start");
    let f = flow("[::1]:0", "[::1]", Close::Fin);
    let (cp, sp) = (f.client.port(), f.server.port());
    let mut got: Vec<Event> = Vec::new();
    let t0 = Instant::now();
    while got.len() < 4 && t0.elapsed() < Duration::from_secs(10) {
        let lost = t
            .poll(50, &mut |e| {
                if (e.sport, e.dport) == (cp, sp) || (e.sport, e.dport) == (sp, cp) {
                    got.push(*e)
                }
            })
            .unwrap();
        assert_eq!(lost, 0);
    }
    t.flush(&mut |e| got.push(*e));
    assert_eq!(got.len(), 4, "{got:#?}");
    assert_eq!(t.outputs_in_flight(), Some(0), "every output counted in flight was counted out");
    assert!(got.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns), "time order");
    let kinds: Vec<Option<Kind>> = got.iter().map(|e| e.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == Some(Kind::Close)).count(), 2);
    assert!(kinds.contains(&Some(Kind::Connect)) && kinds.contains(&Some(Kind::Accept)));
    for e in &got {
        assert_eq!((e.pid, e.ip, e.uid, e.gid), (pid(), 6, 0, 0));
        assert!(e.cgroup != 0, "the builder collects cgroup ids by default");
        assert_eq!(e.saddr().to_string(), "::1");
        let comm = if (e.kind == Some(Kind::Connect)) || (e.kind == Some(Kind::Close) && e.sport == cp) {
            "tt-cli"
        } else {
            "tt-srv"
        };
        assert_eq!(e.comm(), comm.as_bytes(), "{e:?}");
    }
    drop(t);
    assert_nothing_left();
}

/// `poll(-1)` hands out a trickle (4 events, far below any ring's
/// watermark) without waiting for more; an eventfd written after 5 s ends a
/// poll that would wait for ever.
#[test]
fn poll_without_timeout_hands_out_a_trickle() {
    let _g = serial();
    require_root();
    let mut t = Tracer::builder().backend(backend()).pid(pid()).start().expect("start");
    // SAFETY: eventfd(2); the fd is owned below.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    assert!(efd >= 0);
    // SAFETY: a fresh fd of ours.
    let efd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(efd) };
    t.add_wake_fd(std::os::fd::AsFd::as_fd(&efd)).unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&efd);
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(5));
        // SAFETY: 8 bytes to an eventfd that outlives this thread (joined below).
        unsafe { libc::write(raw, 1u64.to_ne_bytes().as_ptr().cast(), 8) };
    });
    let t0 = Instant::now();
    let f = flow("127.0.0.1:0", "127.0.0.1", Close::Fin);
    let ports = [f.client.port(), f.server.port()];
    let mut got = 0;
    while got < 4 && t0.elapsed() < Duration::from_secs(5) {
        t.poll(-1, &mut |e| got += usize::from(ports.contains(&e.sport) && ports.contains(&e.dport)))
            .unwrap();
    }
    assert_eq!(got, 4, "the 4 events within {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(4), "handed out only after {:?}", t0.elapsed());
    waker.join().unwrap();
    drop(t);
    assert_nothing_left();
}

/// A ring of a page per CPU, far fewer slots than events; only this
/// port's events reach it (filtered in the kernel): every event is
/// delivered or counted in `ring_full`.
fn a_full_ring_counts_every_lost_event(ringbuf: bool) {
    let _g = serial();
    require_root();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut t = Tracer::builder()
        .backend(backend())
        .port(port)
        .ring_pages(1)
        .ringbuf(ringbuf)
        .start()
        .expect("start");
    use tcptracer::transport::Kind as T;
    let kind = if ringbuf { T::RingBuf } else { T::Slots };
    assert_eq!(t.transport(), kind, "every kernel tested has the BPF ring buffer");
    const N: u64 = 300;
    for _ in 0..N {
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (s, _) = listener.accept().unwrap();
        drop(s); // X (FIN_WAIT1), then the client's X (LAST_ACK)
        drop(c);
    }
    let mut got = 0u64;
    let t0 = Instant::now();
    loop {
        let before = got;
        let lost = t.poll(50, &mut |_| got += 1).unwrap();
        assert_eq!(lost, 0, "no perf LOST records from a ring buffer or slot rings");
        if got == before && t0.elapsed() > Duration::from_millis(300) {
            break;
        }
    }
    t.flush(&mut |_| got += 1);
    let k = t.kernel_losses();
    assert!(got > 0 && k.ring_full > 0, "delivered {got}, ring full {}", k.ring_full);
    assert_eq!(got + k.ring_full, 4 * N, "every event delivered or counted lost: {k:?}");
    assert_eq!(k.total(), 0, "{k:?}");
    assert_eq!(t.outputs_in_flight(), Some(0), "failed outputs are counted out too");
    drop(t);
    assert_nothing_left();
}

#[test]
fn a_full_ring_buffer_counts_every_lost_event() {
    a_full_ring_counts_every_lost_event(true);
}

#[test]
fn full_slot_rings_count_every_lost_event() {
    if !tcptracer::tracer::features::slot_rings() {
        // arm64 never runs them (see slot_rings_arch_refusal).
        let arch = tcptracer::asm::Arch::HOST;
        if tcptracer::transport::slot_rings_arch_refusal(arch).is_some() {
            assert_eq!(arch, tcptracer::asm::Arch::Aarch64);
            return;
        }
        // Before 5.12 (no BPF cmpxchg) the tracer uses perf rings.
        assert!(common::kernel_version() < (5, 12), "{:?}", common::kernel_version());
        return;
    }
    a_full_ring_counts_every_lost_event(false);
}

#[test]
fn builder_refuses_bad_values_before_touching_the_kernel() {
    let e = Tracer::builder().port(0).start().err().unwrap();
    assert_eq!(e.to_string(), "invalid port 0: must be between 1 and 65535");
    let e = Tracer::builder().comm("a-name-that-is-too-long").start().err().unwrap();
    assert!(e.to_string().contains("1 to 15 bytes"), "{e}");
}
