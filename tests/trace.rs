//! Root integration tests: the real binary, the real kernel, real loopback
//! traffic, exact output lines. They fail (never skip) when the kernel lacks
//! what they need.
//! Over 500 lines: one test binary (see tests/features.rs).

mod common;

use common::*;
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const GRACE: Duration = Duration::from_millis(400);

fn check_flow(args: &[&str], listen: &str, connect: &str, ip: u8, close: Close) {
    let _g = serial();
    let t = Tracer::start(args);
    expect_flow(&t, listen, connect, ip, close);
    assert_eq!(conns_entries_for(t.child.id(), pid()), 0, "conns entries left behind");
    t.stop_clean();
}

#[test]
fn ipv4_connect_accept_close() {
    check_flow(&[], "127.0.0.1:0", "127.0.0.1", 4, Close::Fin);
}

/// The lines of FIN- and RST-closed IPv4 and IPv6 flows through the
/// transport `env` selects, whose program call `--debug` shows.
fn same_lines_through(env: Option<&str>, call: &str, not: &str) {
    let _g = serial();
    let mut cmd = Command::new(bin());
    cmd.args(backend_args()).arg("--debug");
    if let Some(var) = env {
        cmd.env(var, "1");
    }
    let t = Tracer::spawn(cmd);
    for rst in [false, true] {
        let close = || if rst { Close::Rst } else { Close::Fin };
        expect_flow(&t, "127.0.0.1:0", "127.0.0.1", 4, close());
        expect_flow(&t, "[::1]:0", "[::1]", 6, close());
    }
    assert_eq!(conns_entries_for(t.child.id(), pid()), 0, "conns entries left behind");
    let (status, err) = t.stop();
    assert!(status.success(), "{err}");
    assert!(err.contains(call), "the programs write through {call}:\n{err}");
    assert!(!err.contains(not), "{err}");
    assert_nothing_left();
}

#[test]
fn the_ring_buffer_carries_the_same_lines() {
    // TCPTRACER_RINGBUF=1: one BPF ring buffer instead of per-CPU rings.
    same_lines_through(Some("TCPTRACER_RINGBUF"), "call bpf_ringbuf_output#130", "bpf_perf_event_output");
}

#[test]
fn perf_rings_carry_the_same_lines() {
    // TCPTRACER_PERF_RINGS=1: per-CPU perf rings even where slot rings run.
    same_lines_through(Some("TCPTRACER_PERF_RINGS"), "call bpf_perf_event_output#25", "atomic64_cmpxchg");
}

#[test]
fn slot_rings_are_the_default_where_the_kernel_has_cmpxchg() {
    // 5.12+: reserve with cmpxchg, write the slot, commit; else perf rings.
    // arm64 never runs them (their plain-store commit needs x86's store
    // order): the ring buffer is its default.
    let arch = tcptracer::asm::Arch::HOST;
    if tcptracer::tracer::features::slot_rings() {
        same_lines_through(None, "atomic64_cmpxchg", "bpf_perf_event_output");
    } else if tcptracer::transport::slot_rings_arch_refusal(arch).is_some() {
        assert_eq!(arch, tcptracer::asm::Arch::Aarch64);
        same_lines_through(None, "call bpf_ringbuf_output#130", "atomic64_cmpxchg");
    } else {
        assert!(common::kernel_version() < (5, 12), "{:?}", common::kernel_version());
        same_lines_through(None, "call bpf_perf_event_output#25", "atomic64_cmpxchg");
    }
}

#[test]
fn ipv6_connect_accept_close() {
    check_flow(&[], "[::1]:0", "[::1]", 6, Close::Fin);
}

#[test]
fn ipv4_mapped_ipv6_is_shown_as_mapped_ipv6() {
    // An AF_INET6 listener on :: accepts IPv4; the client is an AF_INET6
    // socket connecting to ::ffff:127.0.0.1 (tcp_v6_connect → tcp_v4_connect).
    check_flow(&[], "[::]:0", "[::ffff:127.0.0.1]", 6, Close::Fin);
}

#[test]
fn rst_abort_reports_both_closes_with_the_owner() {
    // The server's side is closed by the RST in softirq (in the client's
    // context on loopback): X must name the server's owner, not the client.
    check_flow(&[], "127.0.0.1:0", "127.0.0.1", 4, Close::Rst);
}

#[test]
fn a_close_whose_run_the_kernel_skipped_comes_when_the_socket_is_destroyed() {
    // TCPTRACER_TEST_SKIP_CLOSE_PORT makes the state program ignore the
    // closing moves in softirq of one port's connections, as when the
    // kernel skips a run (a softirq on a CPU where the program already
    // runs). The server's socket, reset by the client while nobody touches
    // it, closes in softirq: its X must still come, with its owner, when
    // the server closes it and it is destroyed.
    let _g = serial();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cmd = Command::new(bin());
    cmd.args(backend_args()).arg("--debug").env("TCPTRACER_TEST_SKIP_CLOSE_PORT", port.to_string());
    let t = Tracer::spawn(cmd);
    let (c, s) = thread::Builder::new()
        .name("tt-flow".into())
        .spawn(move || {
            let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let (s, _) = listener.accept().unwrap();
            let (c_addr, s_addr) = (c.local_addr().unwrap(), s.local_addr().unwrap());
            set_linger0(&c);
            drop(c);
            thread::sleep(Duration::from_millis(100));
            drop(s);
            (c_addr.port(), s_addr.port())
        })
        .unwrap()
        .join()
        .unwrap();
    let got = t.collect(4, GRACE, |l| ports_match(l, c, s));
    let ip = "127.0.0.1";
    let want = [
        line('C', pid(), "tt-flow", 4, ip, ip, c, s),
        line('A', pid(), "tt-flow", 4, ip, ip, s, c),
        line('X', pid(), "tt-flow", 4, ip, ip, c, s),
        line('X', pid(), "tt-flow", 4, ip, ip, s, c),
    ];
    assert_eq!(
        got.iter().map(|l| l.trim_end()).collect::<Vec<_>>(),
        want.iter().map(|l| l.trim_end()).collect::<Vec<_>>()
    );
    let (st, err) = t.stop();
    assert!(st.success(), "{st:?}: {err}");
    assert!(err.contains("closes reported at destroy: 1"), "{err}");
    assert_nothing_left();
}

#[test]
fn header_and_rows_verbose_with_netns_column() {
    let _g = serial();
    let t = Tracer::start(&["-v"]);
    assert_eq!(
        t.header,
        "TYPE         PID    COMM             IP SADDR            DADDR            SPORT  DPORT  NETNS   "
    );
    let f = flow("127.0.0.1:0", "127.0.0.1", Close::Fin);
    let (cp, sp) = (f.client.port(), f.server.port());
    let ns = Some(netns_inum());
    let want = vec![
        vline('C', pid(), "tt-cli", 4, "127.0.0.1", "127.0.0.1", cp, sp, ns),
        vline('A', pid(), "tt-srv", 4, "127.0.0.1", "127.0.0.1", sp, cp, ns),
        vline('X', pid(), "tt-cli", 4, "127.0.0.1", "127.0.0.1", cp, sp, ns),
        vline('X', pid(), "tt-srv", 4, "127.0.0.1", "127.0.0.1", sp, cp, ns),
    ];
    let got = t.collect(4, GRACE, |l| ports_match(l, cp, sp));
    assert_eq!(sorted(got), sorted(want));
    t.stop_clean();
}

#[test]
fn default_header_is_bccs() {
    let _g = serial();
    let t = Tracer::start(&[]);
    assert_eq!(t.header, "T  PID    COMM             IP SADDR            DADDR            SPORT  DPORT ");
    t.stop_clean();
}

#[test]
fn refused_connect_emits_nothing_and_leaves_no_entry() {
    let _g = serial();
    let t = Tracer::start(&[]);
    let mut ports = Vec::new();
    for _ in 0..20 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let err = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        ports.push(port);
    }
    // A real flow afterwards proves the tracer was live meanwhile.
    let f = flow("127.0.0.1:0", "127.0.0.1", Close::Fin);
    let (cp, sp) = (f.client.port(), f.server.port());
    let got = t.collect(4, GRACE, |l| any_port(l, &ports) || ports_match(l, cp, sp));
    assert_eq!(sorted(got), sorted(flow_lines(&f, 4, pid())));
    assert_eq!(conns_entries_for(t.child.id(), pid()), 0, "a refused connect left a conns entry");
    t.stop_clean();
}

#[test]
fn accept_blocked_before_start_is_reported() {
    let _g = serial();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sp = listener.local_addr().unwrap().port();
    let server = thread::Builder::new()
        .name("tt-srv".into())
        .spawn(move || {
            let (mut s, peer) = listener.accept().unwrap();
            let mut b = [0u8; 1];
            let _ = std::io::Read::read(&mut s, &mut b);
            peer.port()
        })
        .unwrap();
    thread::sleep(Duration::from_millis(200)); // the server is now blocked in accept()
    let t = Tracer::start(&[]);
    let client = thread::Builder::new()
        .name("tt-cli".into())
        .spawn(move || {
            let s = TcpStream::connect(("127.0.0.1", sp)).unwrap();
            s.local_addr().unwrap().port()
        })
        .unwrap();
    let cp = client.join().unwrap();
    assert_eq!(server.join().unwrap(), cp);
    let l = "127.0.0.1";
    let want = vec![
        line('C', pid(), "tt-cli", 4, l, l, cp, sp),
        line('A', pid(), "tt-srv", 4, l, l, sp, cp),
        line('X', pid(), "tt-cli", 4, l, l, cp, sp),
        line('X', pid(), "tt-srv", 4, l, l, sp, cp),
    ];
    assert_eq!(sorted(t.collect(4, GRACE, |x| ports_match(x, cp, sp))), sorted(want));
    t.stop_clean();
}

#[test]
fn connection_established_before_start_gets_its_closes() {
    let _g = serial();
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let sp = listener.local_addr().unwrap().port();
    let c = TcpStream::connect(("::1", sp)).unwrap();
    let cp = c.local_addr().unwrap().port();
    let (s, _) = listener.accept().unwrap();
    let t = Tracer::start(&[]);
    let closer = thread::Builder::new()
        .name("tt-old".into())
        .spawn(move || {
            drop(c);
            thread::sleep(Duration::from_millis(50));
            drop(s);
        })
        .unwrap();
    closer.join().unwrap();
    let want = vec![
        line('X', pid(), "tt-old", 6, "::1", "::1", cp, sp),
        line('X', pid(), "tt-old", 6, "::1", "::1", sp, cp),
    ];
    assert_eq!(sorted(t.collect(2, GRACE, |x| ports_match(x, cp, sp))), sorted(want));
    t.stop_clean();
}

#[test]
fn burst_of_1000_connections_each_line_exactly_once() {
    let _g = serial();
    const N: usize = 1000;
    let t = Tracer::start(&[]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sp = listener.local_addr().unwrap().port();
    let server = thread::Builder::new()
        .name("tt-srv".into())
        .spawn(move || {
            for _ in 0..N {
                drop(listener.accept().unwrap());
            }
        })
        .unwrap();
    let client = thread::Builder::new()
        .name("tt-cli".into())
        .spawn(move || {
            (0..N)
                .map(|_| TcpStream::connect(("127.0.0.1", sp)).unwrap().local_addr().unwrap().port())
                .collect::<Vec<u16>>()
        })
        .unwrap();
    let cports = client.join().unwrap();
    server.join().unwrap();
    let l = "127.0.0.1";
    let mut want = Vec::new();
    for &cp in &cports {
        want.push(line('C', pid(), "tt-cli", 4, l, l, cp, sp));
        want.push(line('A', pid(), "tt-srv", 4, l, l, sp, cp));
        want.push(line('X', pid(), "tt-cli", 4, l, l, cp, sp));
        want.push(line('X', pid(), "tt-srv", 4, l, l, sp, cp));
    }
    let got = t.collect(4 * N, GRACE, |x| {
        let f: Vec<&str> = x.split_whitespace().collect();
        f.len() >= 8 && (f[6] == sp.to_string() || f[7] == sp.to_string())
    });
    assert_eq!(got.len(), 4 * N, "line count");
    assert_eq!(sorted(got), sorted(want));
    assert_eq!(conns_entries_for(t.child.id(), pid()), 0);
    t.stop_clean(); // empty stderr: no "Possibly lost" line
}

/// Not a test: the child process the `-p` test runs (the test binary
/// re-executed). Connects to TT_CHILD_PORT when told "go" on stdin.
#[test]
#[ignore]
fn child_connector() {
    child_connector_main();
}

#[test]
fn pid_filter_keeps_only_that_process() {
    let _g = serial();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sp = listener.local_addr().unwrap().port();
    let mut child = spawn_child(sp, &[]);
    let cpid = child.id();
    let t = Tracer::start(&["-p", &cpid.to_string()]);
    let server = thread::Builder::new()
        .name("tt-srv".into())
        .spawn(move || {
            let (mut s, peer) = listener.accept().unwrap();
            let mut b = [0u8; 1];
            let _ = std::io::Read::read(&mut s, &mut b);
            peer.port()
        })
        .unwrap();
    tell(&mut child, "go\n");
    let cp = server.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("PORT {cp}")));
    // Our own flow at the same time must not show.
    let own = flow("127.0.0.1:0", "127.0.0.1", Close::Fin);
    let l = "127.0.0.1";
    let want =
        vec![line('C', cpid, "tt-child", 4, l, l, cp, sp), line('X', cpid, "tt-child", 4, l, l, cp, sp)];
    let got = t.collect(2, GRACE, |x| {
        ports_match(x, cp, sp)
            || ports_match(x, own.client.port(), own.server.port())
            || x.contains(&pid().to_string())
    });
    assert_eq!(sorted(got), sorted(want));
    t.stop_clean();
}

/// Bring `lo` up in the current network namespace.
fn lo_up() {
    // SAFETY: ioctl on a fresh socket with a zeroed ifreq naming "lo".
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        assert!(fd >= 0);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *s as libc::c_char;
        }
        assert_eq!(libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut ifr), 0);
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        assert_eq!(libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &mut ifr), 0);
        libc::close(fd);
    }
}

#[test]
fn netns_filter_keeps_only_that_namespace() {
    let _g = serial();
    require_root();
    // A thread in a fresh network namespace; threads it spawns share it.
    let (tx, rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let ns_thread = thread::spawn(move || {
        // SAFETY: unshare of this thread's network namespace.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare(CLONE_NEWNET)");
        lo_up();
        tx.send(netns_inum()).unwrap();
        go_rx.recv().unwrap();
        flow("127.0.0.1:0", "127.0.0.1", Close::Fin)
    });
    let ns = rx.recv().unwrap();
    assert_ne!(ns, netns_inum());
    let t = Tracer::start(&["-v", "-N", &ns.to_string()]);
    assert_eq!(
        t.header,
        "TYPE         PID    COMM             IP SADDR            DADDR            SPORT  DPORT  "
    );
    let root = flow("127.0.0.1:0", "127.0.0.1", Close::Fin);
    go_tx.send(()).unwrap();
    let f = ns_thread.join().unwrap();
    let (cp, sp) = (f.client.port(), f.server.port());
    let l = "127.0.0.1";
    let want = vec![
        vline('C', pid(), "tt-cli", 4, l, l, cp, sp, None),
        vline('A', pid(), "tt-srv", 4, l, l, sp, cp, None),
        vline('X', pid(), "tt-cli", 4, l, l, cp, sp, None),
        vline('X', pid(), "tt-srv", 4, l, l, sp, cp, None),
    ];
    let got = t.collect(4, GRACE, |x| {
        ports_match(x, cp, sp) || ports_match(x, root.client.port(), root.server.port())
    });
    assert_eq!(sorted(got), sorted(want));
    t.stop_clean();
}

#[test]
fn sigterm_exits_zero_and_leaves_nothing() {
    let _g = serial();
    let mut t = Tracer::start(&[]);
    t.signal(libc::SIGTERM);
    let st = wait_timeout(&mut t.child, Duration::from_secs(5)).expect("exit after SIGTERM");
    assert!(st.success(), "{st:?}");
    assert_nothing_left();
}

#[test]
fn buffer_size_is_honoured_and_shown_with_debug() {
    let _g = serial();
    let t = Tracer::start(&["-b", "256K", "--debug"]);
    expect_flow(&t, "127.0.0.1:0", "127.0.0.1", 4, Close::Fin);
    let (st, err) = t.stop();
    assert!(st.success(), "{st:?}: {err}");
    let rings = err.lines().find(|l| l.starts_with("rings: ")).unwrap_or("");
    assert!(
        rings.contains("2048 slots (256 KiB) per CPU")
            || rings.contains("perf rings of 256 KiB")
            || rings
                .strip_prefix("rings: one ring buffer of ")
                .and_then(|r| r.strip_suffix(" KiB"))
                .is_some_and(
                    |k| k.parse::<u64>().is_ok_and(|k| k > 0 && k % 256 == 0) // 256 KiB x online CPUs
                ),
        "{rings:?}"
    );
    assert!(err.contains("output queue: at most 16384 KiB"), "{err}");
    assert_nothing_left();
}

#[test]
fn mounts_tracefs_when_missing_and_unmounts_it_after_start() {
    let _g = serial();
    // A private mount namespace without tracefs, so the host is untouched.
    let script = format!(
        "for m in $(grep -w tracefs /proc/self/mountinfo | cut -d' ' -f5); do umount -l $m; done; \
         grep -qw tracefs /proc/self/mountinfo && exit 99; exec {} {}",
        bin(),
        backend_args().join(" ")
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    let t = Tracer::spawn(cmd);
    let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", t.child.id())).unwrap();
    // Legacy kprobe events must be removed at exit: tracefs stays until then.
    let legacy = std::env::var("TCPTRACER_BACKEND").as_deref() == Ok("kprobe")
        && std::env::var("TCPTRACER_KPROBE_TRACEFS").as_deref() == Ok("1");
    assert_eq!(
        mounts.contains(" - tracefs "),
        legacy,
        "tracefs mounted after start (legacy kprobes: {legacy})"
    );
    expect_flow(&t, "127.0.0.1:0", "127.0.0.1", 4, Close::Fin);
    t.stop_clean();
}

#[test]
fn check_reports_features_and_auto_follows_them() {
    let _g = serial();
    require_root();
    let out = Command::new(bin()).arg("--check").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("--check lacks {key}:\n{text}"))
    };
    assert!(value("BTF").starts_with("yes"), "{text}");
    assert!(value("tp_btf").starts_with("yes"), "{text}");
    assert!(value("tracepoints").starts_with("yes"), "{text}");
    let want = if value("fentry/fexit").starts_with("yes") {
        "fentry"
    } else if value("tp_btf").starts_with("yes") {
        "tracepoint"
    } else if value("kprobe PMU").starts_with("yes") || value("kprobe_events").starts_with("yes") {
        "kprobe"
    } else {
        "tracepoint"
    };
    assert_eq!(value("backend (auto)"), want, "{text}");
    // The tracer's own choice with --debug agrees.
    let t = Tracer::spawn({
        let mut c = Command::new(bin());
        c.arg("--debug");
        c
    });
    let (status, err) = t.stop();
    assert!(status.success());
    assert!(err.contains(&format!("backend {want};")), "{err}");
}

#[test]
fn kernel_side_losses_are_reported_as_they_happen_and_at_exit() {
    use tcptracer::loader::Map;
    let _g = serial();
    // Per-CPU perf rings (the ring buffer's and the slot rings' loss, a
    // full ring, is in tests/library.rs).
    let mut cmd = Command::new(bin());
    cmd.args(backend_args()).env("TCPTRACER_PERF_RINGS", "1");
    let t = Tracer::spawn(cmd);
    // Empty the perf event array: bpf_perf_event_output then fails (-ENOENT)
    // in the kernel, where no perf LOST record can see it.
    let id = map_ids_of(t.child.id(), 4).pop().expect("the tracer's perf event array");
    let events = Map::from_id(id).unwrap();
    for cpu in 0..tcptracer::transport::possible_cpu_count().unwrap() {
        events.delete(&cpu.to_ne_bytes()).unwrap();
    }
    drop(events);
    let f = flow("127.0.0.1:0", "127.0.0.1", Close::Fin);
    // Nothing may arrive; meanwhile the tracer checks its counters (about
    // every second; later under a slow emulated CPU, and the 4 may be split
    // over two checks).
    let got = t.collect(0, Duration::from_millis(1300), |l| ports_match(l, f.client.port(), f.server.port()));
    assert!(got.is_empty(), "events arrived through an empty perf event array: {got:?}");
    let reported = |err: &str| -> u64 {
        err.lines()
            .filter_map(|l| l.strip_prefix("Possibly lost ")?.strip_suffix(" events: BPF output failed"))
            .map(|n| n.parse::<u64>().unwrap())
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while reported(&t.stderr()) < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let live = t.stderr();
    assert_eq!(reported(&live), 4, "reported while running: {live}");
    let (status, err) = t.stop();
    assert!(status.success());
    assert!(err.contains("tcptracer: lost 4 events in all: 0 in full buffers, 4 in the kernel"), "{err}");
    assert_nothing_left();
}

#[test]
fn sighup_exits_zero_and_leaves_nothing() {
    let _g = serial();
    let mut t = Tracer::start(&[]);
    t.signal(libc::SIGHUP);
    let st = wait_timeout(&mut t.child, Duration::from_secs(5)).expect("exit after SIGHUP");
    assert!(st.success(), "{st:?}");
    assert_nothing_left();
}

#[test]
fn kill_9_then_a_new_start_leaves_nothing() {
    let _g = serial();
    let mut t = Tracer::start(&[]);
    let dead = t.child.id();
    t.signal(libc::SIGKILL);
    wait_timeout(&mut t.child, Duration::from_secs(5)).expect("killed");
    // The kernel frees fds (programs, maps, perf events) with the process;
    // legacy kprobe events outlive it: the next start removes them.
    let t2 = Tracer::start(&[]);
    let stale = format!("tcptracer/tcpt_{dead}_");
    let events = std::fs::read_to_string("/sys/kernel/tracing/kprobe_events").unwrap_or_default();
    assert!(!events.contains(&stale), "kprobe events of the killed tracer remain:\n{events}");
    expect_flow(&t2, "127.0.0.1:0", "127.0.0.1", 4, Close::Fin);
    t2.stop_clean();
}

/// `n` connections from thread `tt-cli` to a new listener on 127.0.0.1
/// (thread `tt-srv`), each closed by both sides; returns the port.
fn connections(n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sp = listener.local_addr().unwrap().port();
    let server = thread::Builder::new()
        .name("tt-srv".into())
        .spawn(move || {
            for _ in 0..n {
                let (mut s, _) = listener.accept().unwrap();
                let _ = std::io::Read::read(&mut s, &mut [0u8; 1]); // EOF
            }
        })
        .unwrap();
    thread::Builder::new()
        .name("tt-cli".into())
        .spawn(move || {
            for _ in 0..n {
                drop(TcpStream::connect(("127.0.0.1", sp)).unwrap());
            }
        })
        .unwrap()
        .join()
        .unwrap();
    server.join().unwrap();
    sp
}

/// A summary row's key: (T, PID, COMM, RADDR, LPORT, RPORT), `-` for no port.
type RowKey = (String, u32, String, String, String, String);

/// What `n` connections to each port count: C and X of tt-cli under the
/// remote port, A and X of tt-srv under the local port.
fn summary_want(ports: &[(u16, u64)]) -> std::collections::BTreeMap<RowKey, u64> {
    let mut want = std::collections::BTreeMap::new();
    let l = "127.0.0.1".to_string();
    for &(p, n) in ports {
        for (t, comm, local) in
            [("C", "tt-cli", false), ("A", "tt-srv", true), ("X", "tt-cli", false), ("X", "tt-srv", true)]
        {
            let (lp, rp) = if local { (p.to_string(), "-".into()) } else { ("-".into(), p.to_string()) };
            want.insert((t.to_string(), pid(), comm.to_string(), l.clone(), lp, rp), n);
        }
    }
    want
}

/// One interval's table: (events, lost, seconds, rows).
type Table = (u64, u64, f64, Vec<(RowKey, u64)>);

/// The next table the tracer prints, within `wait`.
fn next_table(t: &Tracer, wait: Duration) -> Option<Table> {
    let head = t.next_line(wait)?;
    // [HH:MM:SS] N events in S s, L lost[, K probe runs skipped by the kernel]
    let rest =
        head.strip_prefix('[').and_then(|h| h.split_once("] ")).unwrap_or_else(|| panic!("{head:?}")).1;
    let w: Vec<&str> = rest.split(' ').collect();
    let lost = if w.len() == 7 { "lost" } else { "lost," };
    assert!(w.len() >= 7 && w[1] == "events" && w[2] == "in" && w[4] == "s," && w[6] == lost, "{head:?}");
    // Runs the kernel skipped (nesting: seen under TCG) are no loss of ours.
    assert!(
        w.len() == 7
            || (w.len() == 13
                && w[7].parse::<u64>().is_ok()
                && w[8..].join(" ") == "probe runs skipped by the kernel"),
        "{head:?}"
    );
    let (events, seconds, lost) = (w[0].parse().unwrap(), w[3].parse().unwrap(), w[5].parse().unwrap());
    let header = t.next_line(Duration::from_secs(5)).expect("table header");
    assert_eq!(header, "T  PID    COMM             RADDR            LPORT  RPORT  COUNT");
    let mut rows = Vec::new();
    loop {
        let l = t.next_line(Duration::from_secs(5)).expect("a row or the blank line");
        if l.is_empty() {
            return Some((events, lost, seconds, rows));
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f.len(), 7, "{l:?}");
        let key = (f[0].into(), f[1].parse().unwrap(), f[2].into(), f[3].into(), f[4].into(), f[5].into());
        rows.push((key, f[6].parse().unwrap()));
    }
}

/// Add a table's rows to `sums`, checking it: its events are its rows'
/// sum, nothing lost, busiest first.
fn add_table(sums: &mut std::collections::BTreeMap<RowKey, u64>, (events, lost, _, rows): &Table) {
    assert_eq!(*lost, 0, "{rows:?}");
    assert_eq!(rows.iter().map(|r| r.1).sum::<u64>(), *events, "{rows:?}");
    assert!(rows.windows(2).all(|w| w[0].1 >= w[1].1), "busiest first: {rows:?}");
    for (k, n) in rows {
        *sums.entry(k.clone()).or_insert(0) += n;
    }
}

#[test]
fn summary_counts_a_known_workload_exactly_across_intervals() {
    let _g = serial();
    let me = pid().to_string();
    let mut t = Tracer::start(&["--summary", "1", "-p", &me]);
    assert_eq!(
        t.header,
        "Counting events per type, process, remote address and port: a table every 1 s, busiest first."
    );
    let mut sums = std::collections::BTreeMap::new();
    let mut seen = 0u64;
    let p1 = connections(7);
    // 28 events, in one interval or split over two.
    while seen < 28 {
        let tb = next_table(&t, Duration::from_secs(3)).expect("a table every second");
        seen += tb.0;
        add_table(&mut sums, &tb);
    }
    let p2 = connections(3);
    while seen < 40 {
        let tb = next_table(&t, Duration::from_secs(3)).expect("a table every second");
        seen += tb.0;
        add_table(&mut sums, &tb);
    }
    // Idle: the tables still come on time, empty.
    for _ in 0..2 {
        let t0 = Instant::now();
        let tb = next_table(&t, Duration::from_secs(3)).expect("a table every second, events or not");
        assert!(t0.elapsed() < Duration::from_millis(1500), "{:?}", t0.elapsed());
        assert!(tb.0 == 0 && tb.3.is_empty() && (0.5..2.0).contains(&tb.2), "{tb:?}");
    }
    // At exit the partial interval is printed too.
    let (status, err) = t.stop_here();
    assert!(status.success(), "{status:?}: {err}");
    assert_eq!(expected_notes(&err), "", "stderr");
    let last = next_table(&t, Duration::from_secs(2)).expect("the last, partial interval");
    assert!(last.0 == 0 && last.2 < 1.5, "{last:?}");
    assert_eq!(t.next_line(Duration::from_millis(200)), None, "nothing after it");
    assert_eq!(sums, summary_want(&[(p1, 7), (p2, 3)]));
    assert_nothing_left();
}

#[test]
fn summary_json_one_object_per_interval_exact_counts() {
    use serde_json::Value;
    let _g = serial();
    let me = pid().to_string();
    let mut t = Tracer::start_json(&["--summary", "1", "-p", &me]);
    let p1 = connections(7);
    thread::sleep(Duration::from_millis(1100)); // over a boundary
    let p2 = connections(3);
    let mut objects: Vec<Value> = Vec::new();
    let mut seen = 0;
    while seen < 40 {
        let l = t.next_line(Duration::from_secs(3)).expect("an object every second");
        let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
        seen += v["events"].as_u64().unwrap();
        objects.push(v);
    }
    let (status, err) = t.stop_here();
    assert!(status.success(), "{status:?}: {err}");
    assert_eq!(expected_notes(&err), format!("{BANNER}\n"), "stderr: the banner only");
    while let Some(l) = t.next_line(Duration::from_secs(2)) {
        objects.push(serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l:?}: {e}")));
    }
    let (end, intervals) = objects.split_last().unwrap();
    assert_eq!(end["type"], "summary", "the exit summary comes last: {end}");
    assert_eq!(
        (end["events"].as_u64(), end["connect"].as_u64(), end["lost"].as_u64()),
        (Some(40), Some(10), Some(0))
    );
    assert!(intervals.len() >= 3, "at least two intervals and the partial last: {intervals:?}");
    let mut sums = std::collections::BTreeMap::new();
    for v in intervals {
        assert_eq!(v["type"], "interval", "{v}");
        assert!(v["time"].as_str().is_some_and(|s| s.ends_with('Z')), "{v}");
        assert!(v["interval_s"].as_f64().is_some_and(|s| (0.0..2.0).contains(&s)), "{v}");
        let rows: Vec<(RowKey, u64)> = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let t = match r["type"].as_str().unwrap() {
                    "connect" => "C",
                    "accept" => "A",
                    "close" => "X",
                    other => panic!("{other}"),
                };
                let port = |p: &Value| p.as_u64().map_or("-".to_string(), |n| n.to_string());
                assert_eq!(r["ip"], 4);
                let key = (
                    t.to_string(),
                    r["pid"].as_u64().unwrap() as u32,
                    r["comm"].as_str().unwrap().to_string(),
                    r["raddr"].as_str().unwrap().to_string(),
                    port(&r["lport"]),
                    port(&r["rport"]),
                );
                (key, r["count"].as_u64().unwrap())
            })
            .collect();
        add_table(&mut sums, &(v["events"].as_u64().unwrap(), v["lost"].as_u64().unwrap(), 0.0, rows));
    }
    assert_eq!(sums, summary_want(&[(p1, 7), (p2, 3)]));
    assert_nothing_left();
}

/// `-L` and `--json`: each X carries the bytes its connection carried
/// (exactly: all data acked before either side closes) and its duration
/// (at least the sleep, at most the span the test measured around it).
#[test]
fn lifetime_bytes_and_duration_on_x() {
    const UP: usize = 1 << 20;
    const DOWN: usize = 3 << 20;
    const SLEEP: Duration = Duration::from_millis(300);
    /// One connection: the client sends UP, the server reads it all and
    /// sends DOWN, the client reads it all; both sleep, the client closes,
    /// the server closes at its EOF. Returns the ports and each side's
    /// span (from before its connect/accept to after its close).
    fn transfer(ip: &str) -> (u16, u16, Duration, Duration) {
        use std::io::{Read, Write};
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::Builder::new()
            .name("tt-life-srv".into())
            .spawn(move || {
                let t0 = Instant::now();
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = vec![0u8; UP];
                s.read_exact(&mut buf).unwrap();
                s.write_all(&vec![7u8; DOWN]).unwrap();
                thread::sleep(SLEEP);
                assert_eq!(s.read(&mut buf).unwrap(), 0, "EOF after the client's data");
                drop(s);
                t0.elapsed()
            })
            .unwrap();
        let ip = ip.to_string();
        let client = thread::Builder::new()
            .name("tt-life-cli".into())
            .spawn(move || {
                let t0 = Instant::now();
                let mut c = TcpStream::connect((ip.as_str(), port)).unwrap();
                let cport = c.local_addr().unwrap().port();
                c.write_all(&vec![1u8; UP]).unwrap();
                let mut buf = vec![0u8; DOWN];
                c.read_exact(&mut buf).unwrap();
                thread::sleep(SLEEP);
                drop(c);
                (cport, t0.elapsed())
            })
            .unwrap();
        let (cport, cspan) = client.join().unwrap();
        let sspan = server.join().unwrap();
        (cport, port, cspan, sspan)
    }
    let check_ms = |what: &str, ns: f64, span: Duration| {
        // The stamps lie within the span measured around them.
        assert!(ns >= SLEEP.as_nanos() as f64, "{what}: {ns} ns < {SLEEP:?}");
        assert!(ns <= span.as_nanos() as f64 + 1e6, "{what}: {ns} ns > {span:?}");
    };
    let _g = serial();
    let me = pid().to_string();

    // JSON: exact byte counts, durations in ns.
    let t = Tracer::start_json(&["-p", &me]);
    for host in ["127.0.0.1", "::1"] {
        let (c, s, cspan, sspan) = transfer(host);
        let got = t.collect(4, GRACE, |l| {
            l.contains(&format!("\"sport\":{c},")) || l.contains(&format!("\"dport\":{c},"))
        });
        let v: Vec<serde_json::Value> = got.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        let x = |sport: u16| {
            v.iter()
                .find(|v| v["type"] == "close" && v["sport"] == sport)
                .unwrap_or_else(|| panic!("{got:#?}"))
        };
        for (x, sent, received, span) in [(x(c), UP, DOWN, cspan), (x(s), DOWN, UP, sspan)] {
            assert_eq!((&x["bytes_sent"], &x["bytes_received"]), (&sent.into(), &received.into()), "{x}");
            check_ms(&x.to_string(), x["duration_ns"].as_u64().unwrap() as f64, span);
        }
        for v in v.iter().filter(|v| v["type"] != "close") {
            assert!(v.get("bytes_sent").is_none() && v.get("duration_ns").is_none(), "{v}");
        }
    }
    let (status, err) = t.stop();
    assert!(status.success() && expected_notes(&err).trim() == BANNER, "{status:?}: {err}");

    // -L: TX_KB RX_KB MS after bcc's columns.
    let t = Tracer::start(&["-L", "-4", "-p", &me]);
    assert!(t.header.ends_with("SPORT  DPORT  TX_KB RX_KB MS"), "{}", t.header);
    let (c, s, cspan, sspan) = transfer("127.0.0.1");
    let got = t.collect(4, GRACE, |l| ports_match(l, c, s));
    let ip = "127.0.0.1";
    let row = |l: &str, want: &str| {
        let (head, tail) = l.split_at(want.len().min(l.len()));
        assert_eq!(head.trim_end(), want.trim_end(), "{l}");
        tail.to_string()
    };
    assert_eq!(got.len(), 4, "{got:#?}");
    assert_eq!(row(&got[0], &line('C', pid(), "tt-life-cli", 4, ip, ip, c, s)), "     -     - -");
    assert_eq!(row(&got[1], &line('A', pid(), "tt-life-srv", 4, ip, ip, s, c)), "     -     - -");
    let mut xs = got[2..].to_vec();
    xs.sort_by_key(|l| !l.contains("tt-life-cli"));
    for (l, want, kb, span) in [
        (&xs[0], line('X', pid(), "tt-life-cli", 4, ip, ip, c, s), "  1024  3072 ", cspan),
        (&xs[1], line('X', pid(), "tt-life-srv", 4, ip, ip, s, c), "  3072  1024 ", sspan),
    ] {
        let tail = row(l, &want);
        let ms = tail.strip_prefix(kb).unwrap_or_else(|| panic!("{l:?}: want {kb:?}"));
        let (int, frac) = ms.split_once('.').unwrap_or_else(|| panic!("{l:?}"));
        assert_eq!(frac.len(), 2, "{l:?}: two decimals");
        assert!(int.bytes().all(|b| b.is_ascii_digit()), "{l:?}");
        check_ms(l, ms.parse::<f64>().unwrap() * 1e6, span + Duration::from_millis(10));
    }
    t.stop_clean();
}
