//! Helpers for the root integration tests: run the real `tcptracer` binary,
//! make real loopback TCP traffic, and compare exact output lines.
//! Over 500 lines: every test binary includes it as `mod common`; a split
//! would have each binary name more modules, for no reader's gain.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

pub const BANNER: &str = "Tracing TCP established connections. Ctrl-C to end.";

/// Tests share the kernel: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The binary under test: `TCPTRACER_BIN` (`make test` points it at the
/// static build users get), else cargo's build of this package.
pub fn bin() -> String {
    std::env::var("TCPTRACER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tcptracer").to_string())
}

/// `--backend X` when TCPTRACER_BACKEND=X is set (the VM matrix runs the
/// suite once per backend), else nothing: the tracer's default.
pub fn backend_args() -> Vec<String> {
    match std::env::var("TCPTRACER_BACKEND") {
        Ok(b) if !b.is_empty() => vec!["--backend".into(), b],
        _ => Vec::new(),
    }
}

pub fn require_root() {
    // SAFETY: trivial syscall.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the integration tests need root (CI runs as root)");
}

pub struct Tracer {
    pub child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    pub header: String,
    stopped: bool,
}

/// A test that fails midway still stops its tracer the normal way, so the
/// next test does not find its probes.
impl Drop for Tracer {
    fn drop(&mut self) {
        if !self.stopped && matches!(self.child.try_wait(), Ok(None)) {
            self.signal(libc::SIGINT);
            let _ = wait_timeout(&mut self.child, Duration::from_secs(10));
        }
    }
}

impl Tracer {
    /// Start the tracer and wait until it has printed its header (= attached).
    pub fn start(args: &[&str]) -> Tracer {
        let mut cmd = Command::new(bin());
        cmd.args(backend_args()).args(args);
        let t = Tracer::spawn(cmd);
        // -4/-6: one connect function probed (entry and return), not two;
        // then tcp_set_state and tcp_v4_destroy_sock.
        let one_family = args.iter().any(|a| *a == "-4" || *a == "-6");
        t.check_kprobe_mode(if one_family { 4 } else { 6 });
        t
    }

    /// Start a command that runs the tracer (e.g. under `unshare`).
    pub fn spawn(cmd: Command) -> Tracer {
        Tracer::spawn_mode(cmd, false)
    }

    /// Start the tracer with `--json` (and `args`).
    pub fn start_json(args: &[&str]) -> Tracer {
        let mut cmd = Command::new(bin());
        cmd.args(backend_args()).arg("--json").args(args);
        Tracer::spawn_mode(cmd, true)
    }

    /// Start the tracer writing to the file `path` (created anew), whose
    /// lines are followed as they are written.
    pub fn start_to_file(args: &[&str], path: &std::path::Path) -> Tracer {
        let mut cmd = Command::new(bin());
        cmd.args(backend_args()).args(args);
        let file = std::fs::File::create(path).unwrap();
        cmd.stdout(file);
        let (tx, lines) = mpsc::channel();
        let mut r = BufReader::new(std::fs::File::open(path).unwrap());
        thread::spawn(move || {
            let mut line = String::new();
            loop {
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => thread::sleep(Duration::from_millis(5)),
                    Ok(_) if line.ends_with('\n') => {
                        line.pop();
                        if tx.send(std::mem::take(&mut line)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {} // the rest of the line is still to come
                }
            }
        });
        let mut t = Tracer::with_output(cmd, lines);
        t.attached(false);
        t
    }

    fn spawn_mode(mut cmd: Command, json: bool) -> Tracer {
        cmd.stdout(Stdio::piped());
        let (tx, lines) = mpsc::channel();
        let mut t = Tracer::with_output(cmd, lines);
        let out = t.child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        t.attached(json);
        t
    }

    /// Spawn `cmd` (its stdout set up), its lines arriving on `lines`.
    fn with_output(mut cmd: Command, lines: Receiver<String>) -> Tracer {
        require_root();
        let mut child = cmd.stdin(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn tcptracer");
        let stderr = gather(child.stderr.take().unwrap());
        Tracer { child, lines, stderr, header: String::new(), stopped: false }
    }

    /// Wait until the tracer has printed its header (= attached).
    fn attached(&mut self, json: bool) {
        let t = self;
        if json {
            // JSON mode: the banner goes to stderr, stdout is JSON only.
            let t0 = Instant::now();
            while !t.stderr().contains(BANNER) {
                assert!(t0.elapsed() < Duration::from_secs(20), "no banner; stderr: {}", t.stderr());
                thread::sleep(Duration::from_millis(5));
            }
            return;
        }
        let banner = t.next_line(Duration::from_secs(20));
        assert_eq!(banner.as_deref(), Some(BANNER), "stderr: {}", t.stderr());
        t.header = t.next_line(Duration::from_secs(5)).expect("header line");
    }

    /// Under the kprobe backend, tracefs kprobe_events holds our `probes`
    /// exactly when TCPTRACER_KPROBE_TRACEFS=1 forces that path.
    fn check_kprobe_mode(&self, probes: usize) {
        if std::env::var("TCPTRACER_BACKEND").as_deref() != Ok("kprobe") {
            return;
        }
        let legacy = std::env::var("TCPTRACER_KPROBE_TRACEFS").as_deref() == Ok("1");
        let ours = format!("tcptracer/tcpt_{}_", self.child.id());
        let n = std::fs::read_to_string("/sys/kernel/tracing/kprobe_events")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&ours))
            .count();
        assert_eq!(
            n,
            if legacy { probes } else { 0 },
            "kprobe_events entries of this tracer (tracefs path: {legacy})"
        );
    }

    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Collect lines that `keep` accepts until `want` of them arrived (or
    /// 10 s passed), then keep listening `grace` longer for extra ones.
    pub fn collect(&self, want: usize, grace: Duration, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < want {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if keep(&l) => got.push(l),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let end = Instant::now() + grace;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if keep(&l) => got.push(l),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        got
    }

    /// SIGINT, wait for exit; returns the status and everything on stderr.
    pub fn stop(mut self) -> (ExitStatus, String) {
        self.stop_here()
    }

    /// [`Tracer::stop`], keeping the tracer's lines readable.
    pub fn stop_here(&mut self) -> (ExitStatus, String) {
        self.signal(libc::SIGINT);
        let status = wait_timeout(&mut self.child, Duration::from_secs(10)).expect("tracer did not exit");
        self.stopped = true;
        thread::sleep(Duration::from_millis(50));
        let err = self.stderr();
        (status, err)
    }

    pub fn signal(&self, sig: i32) {
        signal(&self.child, sig);
    }

    /// Stop and assert a clean exit with nothing on stderr (no loss, no
    /// error) and no program or map of ours left in the kernel.
    pub fn stop_clean(self) {
        let (status, err) = self.stop();
        assert!(status.success(), "exit status {status:?}, stderr: {err}");
        let err = expected_notes(&err);
        assert_eq!(err, "", "stderr should be empty");
        assert_nothing_left();
    }
}

/// An exit summary line that reports nothing lost, uncommitted or out of
/// order: only program runs or kprobe hits the kernel skipped.
pub fn only_skips(l: &str) -> bool {
    l.starts_with("tcptracer: lost 0 events in all: 0 in full buffers, 0 in the kernel")
        && l.ends_with(" 0 left uncommitted, 0 out of order")
}

/// Send `sig` to a child.
pub fn signal(child: &Child, sig: i32) {
    // SAFETY: plain kill(2) of our child.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Collect a stream (a child's stderr) in a thread, line by line.
pub fn gather(r: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let s = Arc::new(Mutex::new(String::new()));
    let s2 = s.clone();
    thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            s2.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    s
}

pub fn wait_timeout(child: &mut Child, t: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + t;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > end {
            let _ = child.kill();
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Set this thread's COMM.
pub fn set_comm(name: &str) {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid NUL-terminated name.
    unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr()) };
}

pub fn pid() -> u32 {
    std::process::id()
}

/// Inode number of this thread's network namespace.
pub fn netns_inum() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino() as u32
}

/// One bcc-format line, formatted independently of the crate's formatter
/// (Python's `%-Ns`/`%-Nd` are Rust's `{:<N}`).
#[allow(clippy::too_many_arguments)]
pub fn line(
    kind: char,
    pid: u32,
    comm: &str,
    ip: u8,
    saddr: &str,
    daddr: &str,
    sport: u16,
    dport: u16,
) -> String {
    let (sa, da) =
        if ip == 6 { (format!("[{saddr}]"), format!("[{daddr}]")) } else { (saddr.into(), daddr.into()) };
    format!("{kind:<2} {pid:<6} {comm:<16} {ip:<2} {sa:<16} {da:<16} {sport:<6} {dport:<6}")
}

/// The same with `-v`: long type names and (when `netns` is given) NETNS.
#[allow(clippy::too_many_arguments)]
pub fn vline(
    kind: char,
    pid: u32,
    comm: &str,
    ip: u8,
    saddr: &str,
    daddr: &str,
    sport: u16,
    dport: u16,
    netns: Option<u32>,
) -> String {
    let word = match kind {
        'C' => "connect",
        'A' => "accept",
        'X' => "close",
        _ => "unknown",
    };
    let short = line('C', pid, comm, ip, saddr, daddr, sport, dport);
    let mut s = format!("{word:<12} {}", &short[3..]);
    if let Some(ns) = netns {
        s.push_str(&format!(" {ns:<8}"));
    }
    s
}

/// Does a line mention this port pair as SPORT/DPORT (either order)?
pub fn ports_match(l: &str, a: u16, b: u16) -> bool {
    let f: Vec<&str> = l.split_whitespace().collect();
    if f.len() < 8 {
        return false;
    }
    let (s, d) = (f[6].parse::<u16>().ok(), f[7].parse::<u16>().ok());
    (s, d) == (Some(a), Some(b)) || (s, d) == (Some(b), Some(a))
}

pub fn any_port(l: &str, ports: &[u16]) -> bool {
    let f: Vec<&str> = l.split_whitespace().collect();
    f.len() >= 8 && ports.iter().any(|p| f[6] == p.to_string() || f[7] == p.to_string())
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A finished connection: who was where.
#[derive(Clone, Copy, Debug)]
pub struct Flow {
    pub client: SocketAddr,
    pub server: SocketAddr,
}

pub enum Close {
    /// Client closes first (FIN), server closes after reading EOF.
    Fin,
    /// Client aborts with SO_LINGER 0 (RST) after the server accepted.
    Rst,
}

/// Run one connect/accept/close between threads `tt-cli` and `tt-srv`.
pub fn flow(listen: &str, connect_host: &str, close: Close) -> Flow {
    flow_on(TcpListener::bind(listen).unwrap(), connect_host, close)
}

/// The same on a listener bound beforehand.
pub fn flow_on(listener: TcpListener, connect_host: &str, close: Close) -> Flow {
    let port = listener.local_addr().unwrap().port();
    let target: SocketAddr = format!("{connect_host}:{port}").parse().unwrap();
    let (accepted_tx, accepted_rx) = mpsc::channel();
    let server = thread::Builder::new()
        .name("tt-srv".into())
        .spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let local = s.local_addr().unwrap();
            accepted_tx.send(()).unwrap();
            let mut buf = [0u8; 16];
            let _ = s.read(&mut buf); // EOF or ECONNRESET
            drop(s);
            local
        })
        .unwrap();
    let client = thread::Builder::new()
        .name("tt-cli".into())
        .spawn(move || {
            let s = TcpStream::connect(target).unwrap();
            let local = s.local_addr().unwrap();
            accepted_rx.recv().unwrap();
            if let Close::Rst = close {
                set_linger0(&s);
            }
            drop(s);
            local
        })
        .unwrap();
    let client = client.join().unwrap();
    let server = server.join().unwrap();
    Flow { client, server }
}

pub fn set_linger0(s: &TcpStream) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: valid socket and option struct.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as u32,
        )
    };
    assert_eq!(r, 0);
}

pub fn ip_str(a: &SocketAddr) -> String {
    a.ip().to_string()
}

/// The four lines of a finished flow (client and server in this process).
pub fn flow_lines(f: &Flow, ip: u8, pid: u32) -> Vec<String> {
    let (c, s) = (ip_str(&f.client), ip_str(&f.server));
    let (cp, sp) = (f.client.port(), f.server.port());
    vec![
        line('C', pid, "tt-cli", ip, &c, &s, cp, sp),
        line('A', pid, "tt-srv", ip, &s, &c, sp, cp),
        line('X', pid, "tt-cli", ip, &c, &s, cp, sp),
        line('X', pid, "tt-srv", ip, &s, &c, sp, cp),
    ]
}

/// The tracer's BPF maps as (map_type, key_size, value_size, map_id), from
/// /proc/PID/fdinfo.
fn maps_of(tracer_pid: u32) -> Vec<(u32, u32, u32, u32)> {
    let mut maps = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{tracer_pid}/fdinfo")).unwrap() {
        let Ok(text) = std::fs::read_to_string(e.unwrap().path()) else { continue };
        let field = |k: &str| {
            text.lines().find_map(|l| l.strip_prefix(k).map(|v| v.trim().parse::<u32>().unwrap_or(0)))
        };
        if let (Some(t), Some(k), Some(v), Some(id)) =
            (field("map_type:"), field("key_size:"), field("value_size:"), field("map_id:"))
        {
            maps.push((t, k, v, id));
        }
    }
    maps
}

/// Ids of the tracer's maps of this type.
pub fn map_ids_of(tracer_pid: u32, map_type: u32) -> Vec<u32> {
    maps_of(tracer_pid).into_iter().filter(|m| m.0 == map_type).map(|m| m.3).collect()
}

/// Run one flow and assert the tracer printed exactly its four lines.
pub fn expect_flow(t: &Tracer, listen: &str, connect: &str, ip: u8, close: Close) -> Flow {
    let f = flow(listen, connect, close);
    let got = t.collect(4, Duration::from_millis(400), |l| ports_match(l, f.client.port(), f.server.port()));
    assert_eq!(sorted(got), sorted(flow_lines(&f, ip, pid())));
    f
}

/// Entries in the tracer's `tcpt_conns` map whose owner is `pid`.
pub fn conns_entries_for(tracer_pid: u32, pid: u32) -> usize {
    use tcptracer::loader::Map;
    use tcptracer::tracer::probes::CONN_VALUE_SIZE as VAL;
    // Hash (1) with 8-byte keys and task-block values: tcpt_conns.
    let ids: Vec<u32> =
        maps_of(tracer_pid).into_iter().filter(|m| (m.0, m.1, m.2) == (1, 8, VAL)).map(|m| m.3).collect();
    assert_eq!(ids.len(), 1, "expected one conns map among the tracer's fds");
    let map = Map::from_id(ids[0]).unwrap();
    let mut n = 0;
    for k in map.keys().unwrap() {
        let mut v = [0u8; VAL as usize];
        if map.lookup(&k, &mut v).unwrap()
            && u64::from_ne_bytes(v[..8].try_into().unwrap()) >> 32 == pid as u64
        {
            n += 1;
        }
    }
    n
}

/// Write to a child's stdin and flush.
pub fn tell(child: &mut Child, msg: &str) {
    let stdin = child.stdin.as_mut().unwrap();
    stdin.write_all(msg.as_bytes()).unwrap();
    stdin.flush().unwrap();
}

/// No `tcpt_*` program or map remains loaded. The kernel frees them from a
/// work queue after the last fd closes, so allow it a moment.
pub fn assert_nothing_left() {
    use tcptracer::loader::info;
    let ours = || {
        let progs: Vec<String> = info::programs()
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .filter(|n| n.starts_with("tcpt_"))
            .collect();
        let maps: Vec<String> =
            info::map_names().unwrap().into_iter().filter(|n| n.starts_with("tcpt_")).collect();
        (progs, maps)
    };
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        let (progs, maps) = ours();
        // Legacy kprobe events of ours (tracefs at its usual place, if mounted).
        let kprobes: Vec<String> = std::fs::read_to_string("/sys/kernel/tracing/kprobe_events")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("tcptracer/"))
            .map(String::from)
            .collect();
        if progs.is_empty() && maps.is_empty() && kprobes.is_empty() {
            return;
        }
        assert!(Instant::now() < end, "left behind: programs {progs:?}, maps {maps:?}, kprobes {kprobes:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The body of each test binary's `#[ignore]`d `child_connector` test,
/// which tests re-execute as a separate process (see `child_flow`). With
/// TT_CHILD_PORT set: join the cgroup v2 directory TT_CHILD_CGROUP, take
/// the uid TT_CHILD_UID, COMM `tt-child`; on a line from stdin connect to
/// 127.0.0.1:TT_CHILD_PORT, print `PORT <local port>` and close. Without
/// it: return at once.
pub fn child_connector_main() {
    let Ok(port) = std::env::var("TT_CHILD_PORT") else { return };
    if let Ok(dir) = std::env::var("TT_CHILD_CGROUP") {
        std::fs::write(format!("{dir}/cgroup.procs"), "0").unwrap();
    }
    if let Ok(uid) = std::env::var("TT_CHILD_UID") {
        let uid: u32 = uid.parse().unwrap();
        // SAFETY: plain syscall.
        assert_eq!(unsafe { libc::setresuid(uid, uid, uid) }, 0);
    }
    set_comm("tt-child");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let s = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    println!("PORT {}", s.local_addr().unwrap().port());
    drop(s);
}

/// Start this test binary's `child_connector` aimed at `port` (with extra
/// TT_CHILD_* settings in `env`); it connects when told (`tell(.., "go\n")`).
pub fn spawn_child(port: u16, env: &[(&str, &str)]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_connector", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env("TT_CHILD_PORT", port.to_string())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The local port a finished child printed.
pub fn child_port(child: Child) -> u16 {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let port = text.lines().find_map(|l| l.split_once("PORT ").map(|(_, p)| p.trim().to_string()));
    port.and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("child said: {text}"))
}

/// The running kernel's (major, minor).
pub fn kernel_version() -> (u32, u32) {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut it = r.trim().split(|c: char| !c.is_ascii_digit()).map(|n| n.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Check and remove the start-up note a run must print: PMU kprobes
/// (the kprobe backend without TCPTRACER_KPROBE_TRACEFS=1) before 6.6,
/// whose missed hits the kernel does not count. Also remove what a run
/// may print about runs the kernel skipped (kprobes miss hits that fire
/// inside another kprobe; the notes and an exit summary with nothing
/// lost): the tests' exact lines show whether any of them cost an event.
pub fn expected_notes(stderr: &str) -> String {
    let pmu_kprobes = std::env::var("TCPTRACER_BACKEND").as_deref() == Ok("kprobe")
        && std::env::var("TCPTRACER_KPROBE_TRACEFS").as_deref() != Ok("1");
    let want = pmu_kprobes && kernel_version() < (6, 6);
    let note = "Note: this kernel does not count missed hits of kprobes";
    assert_eq!(stderr.contains(note), want, "the uncounted-kprobe-misses note: {stderr}");
    stderr
        .lines()
        .filter(|l| !l.starts_with(note) && !l.starts_with("Note: the kernel skipped") && !only_skips(l))
        .map(|l| format!("{l}\n"))
        .collect()
}
