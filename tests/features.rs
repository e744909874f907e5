//! The options beyond bcc's (issue 6) on real loopback traffic: JSON lines,
//! timestamps, UID/EXE columns, family/uid/cgroup/port/comm filters in the
//! kernel, failed connects, and time order across CPUs. Root only.
//! Over 500 lines: each test file is one binary the VM matrix runs per
//! backend; splitting it would add binaries (and guest boots) to that matrix.

mod common;

use common::*;
use serde_json::Value;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const GRACE: Duration = Duration::from_millis(400);

/// JSON lines with one of `ports` on either side, parsed.
fn json_lines(t: &Tracer, want: usize, ports: &[u16]) -> Vec<(String, Value)> {
    let mentions = |l: &str| {
        ports.iter().any(|p| l.contains(&format!("\"sport\":{p},")) || l.contains(&format!("\"dport\":{p},")))
    };
    t.collect(want, GRACE, mentions)
        .into_iter()
        .map(|l| {
            let v = serde_json::from_str::<Value>(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (l, v)
        })
        .collect()
}

/// The top-level keys of a flat JSON object line, in order.
fn keys_in_order(line: &str, v: &Value) -> Vec<String> {
    let mut keys: Vec<(usize, String)> = v
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (line.find(&format!("\"{k}\":")).unwrap(), k.clone()))
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`
/// (days from the civil date, written independently of the crate's).
fn rfc3339_secs(t: &str) -> i64 {
    assert!(t.len() == 30 && t.ends_with('Z') && &t[10..11] == "T" && &t[19..20] == ".", "{t}");
    let n = |a: usize, b: usize| t[a..b].parse::<i64>().unwrap();
    let (mut y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let mut days = 0;
    // Count days from 1970-01-01, year by year then month by month.
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    while y > 1970 {
        y -= 1;
        days += if leap(y) { 366 } else { 365 };
    }
    let len = [31, if leap(n(0, 4)) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    days += len[..(m - 1) as usize].iter().sum::<i64>() + d - 1;
    days * 86400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)
}

/// This process's cgroup v2 id (the inode of its cgroup directory).
fn own_cgroup_id() -> u64 {
    use std::os::unix::fs::MetadataExt;
    let rel = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        .expect("a cgroup v2 line");
    let root = cgroup2_root().expect("cgroup2 mounted");
    std::fs::metadata(format!("{root}{rel}")).unwrap().ino()
}

/// Where cgroup2 is mounted (mounting it if nowhere).
fn cgroup2_root() -> Option<String> {
    let find = || {
        std::fs::read_to_string("/proc/self/mountinfo").ok()?.lines().find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            (post.starts_with("cgroup2 ")).then(|| pre.split(' ').nth(4).unwrap().to_string())
        })
    };
    if let Some(r) = find() {
        return Some(r);
    }
    let _ = std::fs::create_dir_all("/sys/fs/cgroup");
    Command::new("mount").args(["-t", "cgroup2", "cgroup2", "/sys/fs/cgroup"]).status().ok()?;
    find()
}

/// Not a test of its own: the process `child_flow` starts (see common).
#[test]
#[ignore]
fn child_connector() {
    child_connector_main();
}

/// Run `child_connector` against `listener` with `env`; the parent accepts
/// (thread `tt-srv`) and closes after EOF. Returns (child pid, client port).
fn child_flow(listener: &TcpListener, env: &[(&str, &str)]) -> (u32, u16) {
    let srv = listener.try_clone().unwrap();
    let server = thread::Builder::new()
        .name("tt-srv".into())
        .spawn(move || {
            let (mut s, _) = srv.accept().unwrap();
            let mut b = [0u8; 8];
            let _ = s.read(&mut b);
        })
        .unwrap();
    let mut child = spawn_child(port(listener), env);
    let cpid = child.id();
    tell(&mut child, "go\n");
    let cport = child_port(child);
    server.join().unwrap();
    (cpid, cport)
}

#[test]
fn json_lines_carry_every_field_and_a_summary() {
    let _g = serial();
    let me = pid().to_string();
    let t = Tracer::start_json(&["-p", &me]);
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
    let f4 = flow("127.0.0.1:0", "127.0.0.1", Close::Fin);
    let f6 = flow("[::1]:0", "[::1]", Close::Fin);
    let ports = [f4.server.port(), f6.server.port()];
    let lines = json_lines(&t, 8, &ports);
    assert_eq!(lines.len(), 8, "{lines:#?}");
    let got: Vec<Value> = lines.iter().map(|(_, v)| v.clone()).collect();
    let exe = std::env::current_exe().unwrap().to_string_lossy().into_owned();
    let cgroup = own_cgroup_id();
    let mut last_mono = 0;
    for (line, v) in &lines {
        let keys = keys_in_order(line, v);
        let mut want = vec![
            "type", "time", "mono_ns", "pid", "tid", "comm", "exe", "uid", "gid", "ip", "saddr", "daddr",
            "sport", "dport", "netns", "cgroup",
        ];
        if v["type"] == "close" {
            // (tests/trace.rs checks their values.)
            want.extend(["duration_ns", "bytes_sent", "bytes_received"]);
        }
        assert_eq!(keys, want, "{v}");
        assert_eq!(v["pid"], pid());
        assert!(v["tid"].as_u64().unwrap() != pid() as u64, "a test thread, not the main one: {v}");
        assert_eq!(v["exe"], exe.as_str());
        assert_eq!((&v["uid"], &v["gid"]), (&Value::from(0), &Value::from(0)));
        assert_eq!(v["netns"], netns_inum());
        assert_eq!(v["cgroup"], cgroup, "{v}");
        let mono = v["mono_ns"].as_u64().unwrap();
        assert!(mono >= last_mono, "out of time order: {v}");
        last_mono = mono;
        // Wall clock: within a minute of when the flows ran.
        let secs = rfc3339_secs(v["time"].as_str().unwrap());
        assert!((secs - before / 1_000_000_000).abs() < 60, "{v}");
    }
    let by = |ty: &str, comm: &str, ip: u64, sport: u16, dport: u16| {
        got.iter().any(|v| {
            v["type"] == ty
                && v["comm"] == comm
                && v["ip"] == ip
                && v["sport"] == sport
                && v["dport"] == dport
        })
    };
    for (f, ip, host) in [(f4, 4, "127.0.0.1"), (f6, 6, "::1")] {
        let (c, s) = (f.client.port(), f.server.port());
        assert!(by("connect", "tt-cli", ip, c, s), "{got:#?}");
        assert!(by("accept", "tt-srv", ip, s, c), "{got:#?}");
        assert!(by("close", "tt-cli", ip, c, s), "{got:#?}");
        assert!(by("close", "tt-srv", ip, s, c), "{got:#?}");
        assert!(got.iter().filter(|v| v["ip"] == ip).all(|v| v["saddr"] == host && v["daddr"] == host));
    }
    // The summary comes last, after SIGINT.
    t.signal(libc::SIGINT);
    let rest = t.collect(1, Duration::from_secs(5), |l| l.contains("\"summary\""));
    assert_eq!(rest.len(), 1, "no summary line");
    let s: Value = serde_json::from_str(&rest[0]).unwrap();
    for (k, n) in [("events", 8), ("connect", 2), ("accept", 2), ("close", 4), ("failed", 0), ("lost", 0)] {
        assert_eq!(s[k], n, "{k} in {s}");
    }
    let (status, _) = t.stop();
    assert!(status.success());
}

#[test]
fn timestamps_uid_and_exe_columns() {
    let _g = serial();
    let me = pid().to_string();
    let exe = std::env::current_exe().unwrap().to_string_lossy().into_owned();
    // -t -U -w: TIME(s) %-9.3f, UID %-6d, the bcc columns, EXE.
    let t = Tracer::start(&["-t", "-U", "-w", "-p", &me]);
    assert_eq!(t.header, format!("{:<9}{:<6} {} EXE", "TIME(s)", "UID", &line_header()), "header");
    let f = flow("127.0.0.1:0", "127.0.0.1", Close::Fin);
    let got = t.collect(4, GRACE, |l| ports_match(&l[16..], f.client.port(), f.server.port()));
    assert_eq!(got.len(), 4, "{got:?}");
    let want = flow_lines(&f, 4, pid());
    let mut rest: Vec<String> = Vec::new();
    for (i, l) in got.iter().enumerate() {
        let secs: f64 = l[..9].trim_end().parse().unwrap_or_else(|_| panic!("TIME in {l:?}"));
        assert!(l[..9].trim_end().split('.').nth(1).unwrap().len() == 3, "{l:?}");
        assert!((0.0..5.0).contains(&secs), "{l:?}");
        if i == 0 {
            assert_eq!(&l[..9], "0.000    ", "the first event is time 0");
        }
        assert_eq!(&l[9..16], "0      ", "UID column: {l:?}");
        let (body, path) = l[16..].rsplit_once(' ').unwrap();
        assert_eq!(path, exe, "EXE column: {l:?}");
        rest.push(body.trim_end().to_string());
    }
    assert_eq!(sorted(rest), sorted(want.iter().map(|w| w.trim_end().to_string()).collect()));
    t.stop_clean();

    // -t -v: TIME(ns) %-14d, ns since the first event.
    let t = Tracer::start(&["-t", "-v", "-p", &me]);
    assert!(t.header.starts_with("TIME(ns)      TYPE         PID"), "{:?}", t.header);
    let f = flow("127.0.0.1:0", "127.0.0.1", Close::Fin);
    let got = t.collect(4, GRACE, |l| ports_match(&l[14..], f.client.port(), f.server.port()));
    assert_eq!(got.len(), 4, "{got:?}");
    let ns: Vec<u64> = got.iter().map(|l| l[..14].trim_end().parse().unwrap()).collect();
    assert_eq!(ns[0], 0);
    assert!(ns.windows(2).all(|w| w[0] <= w[1]) && ns[3] < 5_000_000_000, "{ns:?}");
    t.stop_clean();
}

/// bcc's default header without its trailing space.
fn line_header() -> String {
    format!(
        "{:<2} {:<6} {:<16} {:<2} {:<16} {:<16} {:<6} {:<6}",
        "T", "PID", "COMM", "IP", "SADDR", "DADDR", "SPORT", "DPORT"
    )
}

#[test]
fn family_filters() {
    let _g = serial();
    let me = pid().to_string();
    for (flag, shown) in [("-4", 4u8), ("-6", 6u8)] {
        let t = Tracer::start(&[flag, "-p", &me]);
        // One flow of each family, then the one that must show.
        let f4 = flow("127.0.0.1:0", "127.0.0.1", Close::Fin);
        let f6 = flow("[::1]:0", "[::1]", Close::Fin);
        let mapped = flow("[::]:0", "[::ffff:127.0.0.1]", Close::Fin);
        let all = [f4, f6, mapped];
        let ports: Vec<u16> = all.iter().map(|f| f.server.port()).collect();
        let want = if shown == 4 { 4 } else { 8 };
        let got = t.collect(want, GRACE, |l| any_port(l, &ports));
        let mut expect = Vec::new();
        if shown == 4 {
            expect.extend(flow_lines(&f4, 4, pid()));
        } else {
            expect.extend(flow_lines(&f6, 6, pid()));
            expect.extend(flow_lines(&mapped, 6, pid()));
        }
        assert_eq!(sorted(got), sorted(expect), "{flag}");
        t.stop_clean();
    }
    let out = Command::new(bin()).args(["-4", "-6"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-4 and -6 exclude each other"));
}

#[test]
fn port_filter_either_side_repeatable() {
    let _g = serial();
    let me = pid().to_string();
    let (l1, l2, l3) = (bind4(), bind4(), bind4());
    let (p1, p2, p3) = (port(&l1), port(&l2), port(&l3));
    let t = Tracer::start(&["--port", &p1.to_string(), "--port", &p3.to_string(), "-p", &me]);
    let f1 = flow_on(l1, "127.0.0.1", Close::Fin);
    let f2 = flow_on(l2, "127.0.0.1", Close::Fin);
    let f3 = flow_on(l3, "127.0.0.1", Close::Fin);
    let got = t.collect(8, GRACE, |l| any_port(l, &[p1, p2, p3]));
    let mut want = flow_lines(&f1, 4, pid());
    want.extend(flow_lines(&f3, 4, pid()));
    assert_eq!(sorted(got), sorted(want), "port {p2} (flow {:?}) must not show", f2.client);
    t.stop_clean();
}

fn bind4() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

fn port(l: &TcpListener) -> u16 {
    l.local_addr().unwrap().port()
}

#[test]
fn comm_filter() {
    let _g = serial();
    let me = pid().to_string();
    let t = Tracer::start(&["--comm", "tt-cli", "-p", &me]);
    let f = flow("127.0.0.1:0", "127.0.0.1", Close::Fin);
    let got = t.collect(2, GRACE, |l| ports_match(l, f.client.port(), f.server.port()));
    let all = flow_lines(&f, 4, pid());
    assert_eq!(sorted(got), sorted(vec![all[0].clone(), all[2].clone()]), "only tt-cli's C and X");
    t.stop_clean();
    let out = Command::new(bin()).args(["--comm", "0123456789abcdefg"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 to 15 bytes"));
}

#[test]
fn uid_filter_and_column() {
    let _g = serial();
    let l = bind4();
    let sp = port(&l);
    let t = Tracer::start(&["-u", "4321", "-U"]);
    let (child, cport) = child_flow(&l, &[("TT_CHILD_UID", "4321")]);
    // Our own (root) flow on the same listener must not show.
    let srv = l.try_clone().unwrap();
    let own = thread::spawn(move || {
        let (s, _) = srv.accept().unwrap();
        drop(s);
    });
    drop(TcpStream::connect(("127.0.0.1", sp)).unwrap());
    own.join().unwrap();
    let got = t.collect(2, GRACE, |l| l.split_whitespace().any(|w| w == sp.to_string()));
    let c = line('C', child, "tt-child", 4, "127.0.0.1", "127.0.0.1", cport, sp);
    let x = line('X', child, "tt-child", 4, "127.0.0.1", "127.0.0.1", cport, sp);
    let uid = format!("{:<6} ", 4321);
    assert_eq!(sorted(got), sorted(vec![format!("{uid}{c}"), format!("{uid}{x}")]));
    t.stop_clean();
}

#[test]
fn cgroup_filter() {
    let _g = serial();
    let Some(root) = cgroup2_root() else {
        panic!("cgroup2 is neither mounted nor mountable");
    };
    let dir = format!("{root}/tcpt-test-{}", pid());
    let _ = std::fs::remove_dir(&dir);
    std::fs::create_dir(&dir).unwrap();
    let l = bind4();
    let sp = port(&l);
    let t = Tracer::start(&["--cgroup", &dir]);
    let (child, cport) = child_flow(&l, &[("TT_CHILD_CGROUP", &dir)]);
    let got = t.collect(2, GRACE, |l| l.split_whitespace().any(|w| w == sp.to_string()));
    let c = line('C', child, "tt-child", 4, "127.0.0.1", "127.0.0.1", cport, sp);
    let x = line('X', child, "tt-child", 4, "127.0.0.1", "127.0.0.1", cport, sp);
    assert_eq!(sorted(got), sorted(vec![c, x]), "only the child in {dir}; not the server here");
    t.stop_clean();
    // The exited child leaves the cgroup a moment later.
    let t0 = std::time::Instant::now();
    while std::fs::remove_dir(&dir).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(5), "cannot remove {dir}");
        thread::sleep(Duration::from_millis(20));
    }
    let out = Command::new(bin()).args(["--cgroup", "/proc"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a cgroup v2 directory"));
}

/// A raw socket bound to 127.0.0.1 (so its port is known before connect).
fn bound_socket() -> (OwnedFd, u16) {
    // SAFETY: plain syscalls on a fresh socket; results checked.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let fd = OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        assert_eq!(libc::bind(fd.as_raw_fd(), &sa as *const _ as *const libc::sockaddr, len), 0);
        let mut l = len;
        libc::getsockname(fd.as_raw_fd(), &mut sa as *mut _ as *mut libc::sockaddr, &mut l);
        (fd, u16::from_be(sa.sin_port))
    }
}

/// connect(2) to 127.0.0.1:port; the errno (0 on success).
fn connect_errno(fd: &OwnedFd, port: u16) -> i32 {
    // SAFETY: valid socket and address.
    unsafe {
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        sa.sin_port = port.to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        if libc::connect(fd.as_raw_fd(), &sa as *const _ as *const libc::sockaddr, len) == 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap()
        }
    }
}

fn setsockopt_int(fd: &OwnedFd, level: i32, opt: i32, v: i32) {
    // SAFETY: valid socket and int option.
    let r =
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, opt, &v as *const i32 as *const libc::c_void, 4) };
    assert_eq!(r, 0);
}

#[test]
fn failed_connects_with_their_error() {
    let _g = serial();
    let me = pid().to_string();
    let t = Tracer::start(&["--failed", "-p", &me]);
    assert!(t.header.ends_with(" ERROR       "), "{:?}", t.header);
    set_comm("tt-fail");
    // Refused: nothing listens on a port just freed.
    let closed = port(&bind4());
    let (s, refused_port) = bound_socket();
    assert_eq!(connect_errno(&s, closed), libc::ECONNREFUSED);
    drop(s);
    // Timed out: a listener whose accept queue is full drops the SYN; one
    // retry (TCP_SYNCNT 1) and the connect gives up after ~3 s.
    let full = bind4();
    let fp = port(&full);
    // SAFETY: listen on a bound listening socket changes its backlog.
    assert_eq!(unsafe { libc::listen(full.as_raw_fd(), 0) }, 0);
    let queued = TcpStream::connect(("127.0.0.1", fp)).unwrap();
    thread::sleep(Duration::from_millis(50));
    let (s, timeout_port) = bound_socket();
    setsockopt_int(&s, libc::IPPROTO_TCP, libc::TCP_SYNCNT, 1);
    assert_eq!(connect_errno(&s, fp), libc::ETIMEDOUT);
    drop(s);
    // Abandoned: a non-blocking connect closed while still in SYN_SENT.
    let (s, abandoned_port) = bound_socket();
    // SAFETY: fcntl on a valid fd.
    unsafe { libc::fcntl(s.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    assert_eq!(connect_errno(&s, fp), libc::EINPROGRESS);
    drop(s);
    let got = t.collect(3, GRACE, |l| l.starts_with("F "));
    let me = pid();
    let f = |sport: u16, dport: u16, err: &str| {
        format!("{} {err:<12}", line('F', me, "tt-fail", 4, "127.0.0.1", "127.0.0.1", sport, dport))
    };
    assert_eq!(
        sorted(got),
        sorted(vec![
            f(refused_port, closed, "ECONNREFUSED"),
            f(timeout_port, fp, "ETIMEDOUT"),
            f(abandoned_port, fp, "-"),
        ])
    );
    drop(queued);
    // A normal flow keeps its four lines, with "-" in ERROR.
    let fl = flow("127.0.0.1:0", "127.0.0.1", Close::Fin);
    let got = t.collect(4, GRACE, |l| ports_match(l, fl.client.port(), fl.server.port()));
    let want: Vec<String> =
        flow_lines(&fl, 4, pid()).into_iter().map(|l| format!("{l} {:<12}", "-")).collect();
    assert_eq!(sorted(got), sorted(want));
    t.stop_clean();
}

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t with one bit set; 0 = this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set), 0);
    }
}

#[test]
fn events_are_in_time_order_across_cpus() {
    let _g = serial();
    let cpus = tcptracer::transport::online_cpus().unwrap();
    if cpus.len() < 2 {
        eprintln!("skipping: one CPU, nothing to order across");
        return;
    }
    let (a, b) = (cpus[0] as usize, cpus[1] as usize);
    let me = pid().to_string();
    let t = Tracer::start(&["-t", "-v", "-p", &me]);
    // Connect on CPU b (C is stamped there, in the SYN-ACK's softirq),
    // close on CPU a: the ring of a is drained first, so without ordering
    // the X would print before its C.
    let l = bind4();
    let sp = port(&l);
    let server = thread::spawn(move || {
        pin_to(a);
        for _ in 0..100 {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1];
            let _ = s.read(&mut buf);
        }
    });
    let mut clients = Vec::new();
    for _ in 0..100 {
        pin_to(b);
        let s = TcpStream::connect(("127.0.0.1", sp)).unwrap();
        clients.push(s.local_addr().unwrap().port());
        pin_to(a);
        drop(s);
    }
    server.join().unwrap();
    pin_to_all(&cpus);
    let got = t.collect(400, Duration::from_secs(2), |l| l.split_whitespace().any(|w| w == sp.to_string()));
    assert_eq!(got.len(), 400);
    let ns: Vec<u64> = got.iter().map(|l| l[..14].trim_end().parse().unwrap()).collect();
    assert!(ns.windows(2).all(|w| w[0] <= w[1]), "timestamps out of order");
    for cp in clients {
        let pos = |kind: &str| {
            got.iter().position(|l| l[14..].starts_with(kind) && ports_match(&l[14..], cp, sp)).unwrap()
        };
        assert!(pos("connect") < pos("close"), "X before C for client port {cp}");
    }
    t.stop_clean();
}

fn pin_to_all(cpus: &[u32]) {
    // SAFETY: as in pin_to.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c as usize, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
