//! The loader against the real kernel: verifier rejections carry the log,
//! a missing tracepoint is named. Root only.

mod common;

use tcptracer::asm::{Asm, Reg};
use tcptracer::loader::prog::{load, ProgSpec, ProgType};
use tcptracer::loader::tracefs::Tracefs;
use tcptracer::loader::{attach, LoadError};

fn bad_program() -> tcptracer::asm::Program {
    let mut a = Asm::new();
    a.mov64_reg(Reg::R0, Reg::R2); // r2 is not initialized: the verifier refuses
    a.exit();
    a.finish().unwrap()
}

fn good_program() -> tcptracer::asm::Program {
    let mut a = Asm::new();
    a.mov64_imm(Reg::R0, 0);
    a.exit();
    a.finish().unwrap()
}

fn spec<'a>(p: &'a tcptracer::asm::Program, want_log: bool) -> ProgSpec<'a> {
    ProgSpec {
        name: "tcpt_test",
        prog_type: ProgType::Tracepoint,
        expected_attach_type: 0,
        attach_btf_id: 0,
        insns: p.insns(),
        want_log,
    }
}

#[test]
fn verifier_rejection_carries_the_log() {
    common::require_root();
    let p = bad_program();
    let err = load(&spec(&p, false)).unwrap_err();
    match &err {
        LoadError::Verifier { log, source, prog } => {
            assert_eq!(prog, "tcpt_test");
            assert_eq!(source.raw_os_error(), Some(libc::EACCES));
            assert!(log.contains("R2 !read_ok"), "log: {log}");
        }
        e => panic!("not a verifier error: {e:?}"),
    }
    let line = err.to_string();
    assert_eq!(line.lines().count(), 1);
    assert!(line.starts_with("loading BPF program tcpt_test: Permission denied"), "{line}");
    assert!(line.ends_with("verifier: R2 !read_ok"), "{line}");
}

#[test]
fn a_good_program_loads_and_debug_gets_the_log() {
    common::require_root();
    let p = good_program();
    let prog = load(&spec(&p, true)).unwrap();
    assert!(prog.log.contains("processed 2 insns"), "log: {}", prog.log);
    let prog = load(&spec(&p, false)).unwrap();
    assert_eq!(prog.log, "");
}

#[test]
fn missing_tracepoint_is_named() {
    common::require_root();
    let tracefs = Tracefs::open().unwrap();
    let prog = load(&spec(&good_program(), false)).unwrap();
    let err = attach::tracepoint(&tracefs, &prog, "syscalls", "sys_exit_no_such_call").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("tracepoint syscalls:sys_exit_no_such_call is not available"), "{msg}");
    // And a real one attaches.
    attach::tracepoint(&tracefs, &prog, "syscalls", "sys_exit_accept4").unwrap();
}

/// A KPROBE program that counts its hits in slot 0 of an array map.
fn counting_kprobe(map: &tcptracer::loader::Map) -> tcptracer::loader::Prog {
    use tcptracer::asm::{Helper, Jmp, Size};
    let mut a = Asm::new();
    let out = a.label();
    a.st(Size::W, Reg::R10, -4, 0);
    a.ld_map_fd(Reg::R1, map.raw_fd());
    a.mov64_reg(Reg::R2, Reg::R10);
    a.alu64_imm(tcptracer::asm::Alu::Add, Reg::R2, -4);
    a.call(Helper::MapLookupElem);
    a.jmp_imm(Jmp::Eq, Reg::R0, 0, out);
    a.mov64_imm(Reg::R1, 1);
    a.atomic_add(Size::DW, Reg::R0, 0, Reg::R1);
    a.bind(out);
    a.mov64_imm(Reg::R0, 0);
    a.exit();
    let p = a.finish().unwrap();
    load(&ProgSpec {
        name: "tcpt_test_kp",
        prog_type: ProgType::Kprobe,
        expected_attach_type: 0,
        attach_btf_id: 0,
        insns: p.insns(),
        want_log: false,
    })
    .unwrap()
}

fn hits(map: &tcptracer::loader::Map) -> u64 {
    let mut v = [0u8; 8];
    assert!(map.lookup(&0u32.to_ne_bytes(), &mut v).unwrap());
    u64::from_ne_bytes(v)
}

fn connect_once() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
}

fn kprobe_events() -> String {
    std::fs::read_to_string("/sys/kernel/tracing/kprobe_events").expect("tracefs kprobe_events")
}

#[test]
#[ignore = "needs kprobes: runs in the VM matrix (make vmtest)"]
fn kprobes_through_pmu_and_tracefs_fire_and_clean_up() {
    use std::sync::Arc;
    use tcptracer::loader::{kprobe, Map, MapType};
    common::require_root();
    let tracefs = Arc::new(Tracefs::open().unwrap());
    let map = Map::create(MapType::Array, "tcpt_test_hits", 4, 8, 1).unwrap();
    let prog = counting_kprobe(&map);
    assert!(kprobe::pmu_type().is_some(), "this test expects a kprobe PMU");
    for legacy in [false, true] {
        let before = hits(&map);
        let k = kprobe::attach(&prog, "tcp_v4_connect", false, &tracefs, legacy).unwrap();
        let r = kprobe::attach(&prog, "tcp_v4_connect", true, &tracefs, legacy).unwrap();
        let listed = kprobe_events().lines().filter(|l| l.contains("tcptracer/tcpt_")).count();
        assert_eq!(listed, if legacy { 2 } else { 0 }, "{}", kprobe_events());
        // Missed hits: tracefs kprobes in kprobe_profile; PMU kprobes in
        // their BPF link's info, which has kprobe fields from 6.6 on.
        let counted = legacy || common::kernel_version() >= (6, 6);
        assert_eq!(kprobe::counts_missed(&k), counted, "entry probe, legacy {legacy}");
        assert_eq!(kprobe::counts_missed(&r), counted, "return probe, legacy {legacy}");
        connect_once();
        assert_eq!(hits(&map) - before, 2, "entry and return each fired once (legacy: {legacy})");
        drop((k, r));
        assert!(!kprobe_events().contains("tcptracer/"), "legacy events left: {}", kprobe_events());
        connect_once();
        assert_eq!(hits(&map) - before, 2, "detached probes still fire");
    }
    let err = kprobe::attach(&prog, "no_such_function_tcpt", false, &tracefs, false).unwrap_err();
    assert!(err.to_string().contains("kprobe no_such_function_tcpt"), "{err}");
    let err = kprobe::attach(&prog, "no_such_function_tcpt", false, &tracefs, true).unwrap_err();
    assert!(err.to_string().contains("kprobe_events"), "{err}");
    assert!(!kprobe_events().contains("tcptracer/"), "failed attach left an event");
}

#[test]
#[ignore = "needs kprobes: runs in the VM matrix (make vmtest)"]
fn stale_kprobe_events_of_dead_tracers_are_removed() {
    use std::io::Write;
    use tcptracer::loader::kprobe;
    common::require_root();
    let tracefs = Tracefs::open().unwrap();
    let mut child = std::process::Command::new("/bin/sh").arg("-c").arg("exit 0").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open("/sys/kernel/tracing/kprobe_events").unwrap();
    // One write(2) per command: the kernel parses each write on its own.
    f.write_all(format!("p:tcptracer/tcpt_{dead}_0_tcp_v4_connect tcp_v4_connect\n").as_bytes()).unwrap();
    drop(f);
    assert!(kprobe_events().contains(&format!("tcpt_{dead}_0")));
    assert_eq!(kprobe::remove_stale(&tracefs), 1);
    assert!(!kprobe_events().contains("tcptracer/"), "{}", kprobe_events());
}

/// fexit's return slot follows the arguments of the running kernel's
/// prototype: `inet_csk_accept(sk, flags, err, kern)` before 6.10,
/// `inet_csk_accept(sk, arg)` since.
#[test]
fn fexit_return_slot_comes_from_the_kernels_prototype() {
    use tcptracer::tracer::backend::fexit_ret_slot;
    let btf = tcptracer::btf::Btf::kernel().unwrap();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut v = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap(), v.next().unwrap());
    let want = if (major, minor) >= (6, 10) { 2 } else { 4 };
    assert_eq!(fexit_ret_slot(&btf, "inet_csk_accept").unwrap(), want, "kernel {release}");
    assert_eq!(fexit_ret_slot(&btf, "tcp_v4_connect").unwrap(), 3);
    assert_eq!(fexit_ret_slot(&btf, "tcp_v6_connect").unwrap(), 3);
    assert!(fexit_ret_slot(&btf, "no_such_function_tcpt").is_err());
}

/// Start the tracer as uid 0 with only `caps` (SECBIT_NOROOT: exec grants
/// root nothing, the ambient set is all it gets) and RLIMIT_MEMLOCK of
/// `memlock` bytes; stop it after its header. (exit status, stderr, header seen)
/// `transport`: an env var set to 1 (TCPTRACER_RINGBUF, TCPTRACER_PERF_RINGS).
fn run_least_privilege(
    caps: &'static [u32],
    memlock: u64,
    transport: Option<&str>,
) -> (Option<i32>, String, bool) {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut cmd = Command::new(common::bin());
    cmd.args(common::backend_args()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(var) = transport {
        cmd.env(var, "1");
    }
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // A private mount namespace with tracefs mounted in it: the
            // tracer cannot mount it without CAP_SYS_ADMIN, and the host's
            // mounts stay as they were (a fresh machine has none; EBUSY:
            // it is mounted there already).
            let tracing = c"/sys/kernel/tracing".as_ptr();
            let fstype = c"tracefs".as_ptr();
            let private = libc::MS_REC | libc::MS_PRIVATE;
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(std::ptr::null(), c"/".as_ptr(), std::ptr::null(), private, std::ptr::null())
                    != 0
                || (libc::mount(fstype, tracing, fstype, 0, std::ptr::null()) != 0
                    && *libc::__errno_location() != libc::EBUSY)
            {
                return Err(std::io::Error::last_os_error());
            }
            let lim = libc::rlimit { rlim_cur: memlock, rlim_max: memlock };
            let mut hdr = CapHeader { version: 0x2008_0522, pid: 0 }; // _LINUX_CAPABILITY_VERSION_3
            let mut data = [CapData::default(); 2];
            let fail = libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) != 0
                || libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) != 0;
            if fail {
                return Err(std::io::Error::last_os_error());
            }
            for &c in caps {
                data[(c / 32) as usize].inheritable |= 1 << (c % 32);
            }
            if libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for &c in caps {
                if libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, c as u64, 0u64, 0u64) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // SECBIT_NOROOT | SECBIT_NOROOT_LOCKED
            if libc::prctl(libc::PR_SET_SECUREBITS, 3u64, 0u64, 0u64, 0u64) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut header = false;
    for l in out.lines().take(2) {
        header = l.is_ok_and(|l| l.starts_with("T  PID"));
    }
    if header {
        // SAFETY: signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned(), header)
}

/// Sets kernel.perf_event_paranoid, and puts the old value back on drop.
struct Paranoid(String);

impl Paranoid {
    const FILE: &'static str = "/proc/sys/kernel/perf_event_paranoid";
    fn set(level: &str) -> Paranoid {
        let old = std::fs::read_to_string(Self::FILE).unwrap();
        std::fs::write(Self::FILE, level).unwrap();
        Paranoid(old)
    }
}

impl Drop for Paranoid {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::FILE, &self.0);
    }
}

/// Least privilege, on every VM kernel: CAP_BPF + CAP_PERFMON suffice where
/// BPF memory is charged to the memory cgroup (5.11+); before that a low
/// RLIMIT_MEMLOCK needs CAP_SYS_RESOURCE, and without it the error says so.
/// A low limit also caps the perf rings (no CAP_IPC_LOCK): they shrink, with
/// a note, instead of failing. Debian's perf_event_paranoid level 3 lets
/// only CAP_SYS_ADMIN open perf events: the error says so.
#[test]
fn least_privilege_and_a_low_memlock_limit() {
    common::require_root();
    const SYS_RESOURCE: u32 = 24;
    const PERFMON: u32 = 38;
    const BPF: u32 = 39;
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = status.lines().find_map(|l| l.strip_prefix("CapBnd:")).unwrap();
    let have_sys_resource = u64::from_str_radix(bnd.trim(), 16).unwrap() & (1 << SYS_RESOURCE) != 0;
    let all: &'static [u32] = if have_sys_resource { &[BPF, PERFMON, SYS_RESOURCE] } else { &[BPF, PERFMON] };
    let _restore = if std::fs::read_to_string(Paranoid::FILE).unwrap().trim() == "3" {
        let (code, err, header) = run_least_privilege(all, u64::MAX, None);
        assert!(!header && code == Some(1), "paranoid 3: {code:?} {err}");
        assert!(err.contains("kernel.perf_event_paranoid is 3"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        Some(Paranoid::set("2"))
    } else {
        None
    };
    let memcg = common::kernel_version() >= (5, 11);
    let perf = Some("TCPTRACER_PERF_RINGS");
    let (code, err, header) = run_least_privilege(&[BPF, PERFMON], 64 * 1024, perf);
    if memcg {
        assert!(
            header && code == Some(0),
            "CAP_BPF+CAP_PERFMON on {:?}: {code:?} {err}",
            common::kernel_version()
        );
        // Perf rings beyond perf_event_mlock_kb count against RLIMIT_MEMLOCK.
        assert!(err.contains("Note: perf rings cut to"), "{err}");
        // The ring buffer is charged to the memory cgroup, not RLIMIT_MEMLOCK.
        let (code, err, header) = run_least_privilege(&[BPF, PERFMON], 64 * 1024, Some("TCPTRACER_RINGBUF"));
        assert!(header && code == Some(0), "ring buffer: {code:?} {err}");
        assert!(!err.contains("Note: perf rings"), "{err}");
        // So are slot rings (an mmap'able array), the default where they run.
        let (code, err, header) = run_least_privilege(&[BPF, PERFMON], 64 * 1024, None);
        assert!(header && code == Some(0), "default: {code:?} {err}");
        assert!(!err.contains("Note: perf rings"), "{err}");
    } else {
        assert!(!header && code == Some(1), "{code:?} {err}");
        assert!(err.contains("RLIMIT_MEMLOCK") && err.contains("CAP_SYS_RESOURCE"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    if !have_sys_resource {
        eprintln!("CAP_SYS_RESOURCE is not in this container's bounding set: that case runs in the VM");
        return;
    }
    let (code, err, header) = run_least_privilege(&[BPF, PERFMON, SYS_RESOURCE], 64 * 1024, perf);
    assert!(header && code == Some(0), "with CAP_SYS_RESOURCE: {code:?} {err}");
    assert!(!err.contains("Note: perf rings"), "raising the limit gives full rings: {err}");
}
