//! Stopping: SIGINT, SIGTERM and SIGHUP end the tracer within a second and
//! release everything even while its stdout is blocked (a pipe nobody
//! reads, blocking or not); a reader that goes away ends it without another
//! event; a broken stderr never aborts it. Root only.

mod common;

use common::*;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A pipe: (read end, write end), both close-on-exec.
fn pipe() -> (File, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two fds, which we then own.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

/// Start the tracer writing to `stdout`; stderr is gathered.
fn spawn(args: &[&str], stdout: OwnedFd) -> (Child, Arc<Mutex<String>>) {
    require_root();
    let mut child = Command::new(bin())
        .args(backend_args())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = gather(child.stderr.take().unwrap());
    (child, err)
}

/// Read until the header line (the tracer is attached).
fn read_header(out: &mut File) {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&got).contains("DPORT") {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "no header: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

/// Bytes waiting in a pipe.
fn unread(f: &File) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n) };
    n as usize
}

/// User + system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Wait for the exit `sig` asked for: within a second, successful, with
/// nothing left in the kernel.
fn exits_within_a_second(child: &mut Child, what: &str) {
    let t = Instant::now();
    let st = wait_timeout(child, Duration::from_secs(5)).expect("exit");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(1), "{what}: exit took {took:?}");
    assert!(st.success(), "{what}: {st:?}");
    assert_nothing_left();
}

#[test]
fn a_signal_stops_within_a_second_while_stdout_is_blocked() {
    let _g = serial();
    for nonblock in [false, true] {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            let (mut out, w) = pipe();
            if nonblock {
                // The file description is shared: the tracer's stdout is non-blocking too.
                // SAFETY: fcntl on our fd.
                unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
            }
            let (mut child, err) = spawn(&[], w);
            read_header(&mut out);
            // Nobody reads on: connections until the pipe is full (it stops growing),
            // then as many again for the queue.
            let (mut n, mut last, mut same) = (0, 0, 0);
            while same < 100 {
                flow("127.0.0.1:0", "127.0.0.1", Close::Fin);
                n += 1;
                assert!(n < 20_000, "the pipe never filled: {} bytes", unread(&out));
                let now = unread(&out);
                (same, last) = if now == last && now > 16_384 { (same + 1, now) } else { (0, now) };
            }
            for _ in 0..n {
                flow("127.0.0.1:0", "127.0.0.1", Close::Fin);
            }
            thread::sleep(Duration::from_millis(300));
            // Blocked, not spinning.
            let before = cpu_ticks(child.id());
            thread::sleep(Duration::from_secs(1));
            let spent = cpu_ticks(child.id()) - before;
            assert!(spent <= 10, "nonblock {nonblock}: {spent} ticks of CPU in 1 s while stdout was full");
            signal(&child, sig);
            exits_within_a_second(&mut child, &format!("nonblock {nonblock}, signal {sig}"));
            thread::sleep(Duration::from_millis(50));
            let err = err.lock().unwrap().clone();
            // What the pipe could not take is accounted for.
            let summary = err.lines().find(|l| l.starts_with("tcptracer: lost")).unwrap_or("");
            let unwritten: u64 = summary
                .split(", ")
                .find_map(|p| p.strip_suffix(" not written at exit"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert!(unwritten > 0, "no unwritten events accounted for: {err}");
            drop(out);
        }
    }
}

#[test]
fn a_reader_going_away_ends_the_tracer_without_another_event() {
    let _g = serial();
    // `tcptracer | head -2`, on a host where nothing more happens.
    let (mut out, w) = pipe();
    let (mut child, err) = spawn(&[], w);
    read_header(&mut out);
    drop(out);
    exits_within_a_second(&mut child, "the reader left");
    thread::sleep(Duration::from_millis(50));
    assert_eq!(expected_notes(&err.lock().unwrap()), "");
}

#[test]
fn a_broken_stderr_does_not_abort() {
    let _g = serial();
    // stderr: a pipe whose reader is gone (every write fails with EPIPE).
    let (r, w) = pipe();
    drop(r);
    require_root();
    let mut child = Command::new(bin())
        .args(backend_args())
        .args(["--json", "--debug"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(w))
        .spawn()
        .unwrap();
    let out = gather(child.stdout.take().unwrap());
    // The banner goes to stderr: connect until an event shows it traces.
    let t = Instant::now();
    while !out.lock().unwrap().contains("\"type\":\"connect\"") {
        assert!(t.elapsed() < Duration::from_secs(20), "no event; status {:?}", child.try_wait());
        flow("127.0.0.1:0", "127.0.0.1", Close::Fin);
        thread::sleep(Duration::from_millis(20));
    }
    signal(&child, libc::SIGINT);
    exits_within_a_second(&mut child, "stderr broken");
    thread::sleep(Duration::from_millis(50));
    let out = out.lock().unwrap().clone();
    assert!(out.lines().last().unwrap_or("").starts_with("{\"type\":\"summary\""), "{out}");
}
