//! Bad input: one clear line on stderr, exit status 1, never a panic.

mod common;

use common::*;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(name: &str, bytes: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!("tcptracer-test-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn bad_input_gives_one_line_and_status_1() {
    let btf = std::fs::read("/sys/kernel/btf/vmlinux").expect("kernel BTF");
    let truncated = scratch("truncated.btf", &btf[..btf.len() / 3]);
    let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let random = scratch("random.btf", &random);
    let mut bad_magic = btf[..64].to_vec();
    bad_magic[0] = 0xeb;
    bad_magic[1] = 0x9f; // 0xEB9F in the other byte order
    let foreign = scratch("foreign.btf", &bad_magic);
    // (args, a piece of the message that names the problem)
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus"], "Unrecognized argument: --bogus"),
        (&["extra"], "Unrecognized argument: extra"),
        (&["-p"], "-p"),
        (&["-p", "abc"], "'-p' with value 'abc'"),
        (&["-p", "-5"], "-p"),
        (&["-p", "0"], "invalid PID 0"),
        (&["-p", "99999999"], "invalid PID 99999999"),
        (&["-p", "4294967296"], "'-p' with value '4294967296'"),
        (&["-N", "0"], "invalid NETNS 0"),
        (&["-N", "x"], "'-N' with value 'x'"),
        (&["--backend", "bogus"], "unknown backend \"bogus\""),
        (&["--btf", "/nonexistent/vmlinux"], "/nonexistent/vmlinux: No such file or directory"),
        (&["--btf", &truncated], "truncated"),
        (&["--btf", &random], "bad magic"),
        (&["--btf", &foreign], "foreign byte order"),
        (&["--btf", "/proc/self/exe"], "no .BTF section"),
        (&["--btf", "/"], "BTF: /"),
        (&["-4", "-6"], "-4 and -6 exclude each other"),
        (&["--json", "-v"], "--json cannot be combined with -v"),
        (&["--json", "-t"], "--json cannot be combined with -t"),
        (&["--json", "-U"], "--json cannot be combined with -U"),
        (&["--json", "-w"], "--json cannot be combined with -w"),
        (&["--port", "0"], "invalid port 0"),
        (&["--port", "65536"], "'--port' with value '65536'"),
        (&["--port"], "--port"),
        (&["--comm", ""], "invalid COMM \"\""),
        (&["--comm", "sixteen-bytes-xx"], "1 to 15 bytes"),
        (&["-u", "x"], "'-u' with value 'x'"),
        (&["-u", "4294967295"], "invalid UID 4294967295"),
        (&["--cgroup", "/nonexistent/cg"], "cgroup /nonexistent/cg: No such file or directory"),
        (&["--cgroup", "/proc"], "cgroup /proc: not a cgroup v2 directory"),
        (&["-b", "lots"], "-b: invalid size \"lots\""),
        (&["-b", "2T"], "the unit must be K, M or G"),
        (&["-b", "1K"], "must be between 4 KiB and 512 MiB"),
        (&["--buffer", "1G"], "must be between 4 KiB and 512 MiB"),
        (&["--queue", "1K"], "--queue: invalid size \"1K\": the output queue takes 64K to 4G"),
        (&["--queue", "x"], "--queue: invalid size \"x\""),
        (&["--summary", "0"], "--summary: invalid interval \"0\": give whole seconds, 1 to 86400"),
        (&["--summary", "-1"], "--summary: invalid interval \"-1\""),
        (&["--summary", "x"], "--summary: invalid interval \"x\""),
        (&["--summary", "1.5"], "--summary: invalid interval \"1.5\""),
        (&["--summary", "86401"], "--summary: invalid interval \"86401\""),
        (&["--summary", "99999999999999999999"], "--summary: invalid interval"),
        (&["--summary"], "--summary"),
        (&["--summary", "1", "-v"], "--summary cannot be combined with -v"),
        (&["--summary", "1", "-t"], "--summary cannot be combined with -t"),
        (&["--summary", "1", "-U"], "--summary cannot be combined with -U"),
        (&["--summary", "1", "-w"], "--summary cannot be combined with -w"),
        (&["--summary", "1", "-L"], "--summary cannot be combined with -L"),
    ];
    let ports: Vec<String> = (1..=17).map(|p| p.to_string()).collect();
    let many: Vec<&str> = ports.iter().flat_map(|p| ["--port", p.as_str()]).collect();
    let many_ports = [(&many[..], "too many ports: at most 16")];
    for (args, want) in cases.iter().chain(&many_ports) {
        let (code, out, err) = run(args);
        assert_eq!(code, 1, "{args:?}: status; stderr {err:?}");
        assert_eq!(out, "", "{args:?}: nothing on stdout");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
        assert!(err.starts_with("tcptracer: "), "{args:?}: {err:?}");
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
        assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{args:?}: {err:?}");
    }
    for f in [truncated, random, foreign] {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn help_goes_to_stdout_with_status_0() {
    for flag in ["-h", "--help"] {
        let (code, out, err) = run(&[flag]);
        assert_eq!(code, 0);
        assert_eq!(err, "");
        assert!(out.starts_with("Usage: tcptracer [-v] [-t] [-p <pid>] [-N <netns>] [-4] [-6]"), "{out}");
        for opt in ["--verbose", "--pid", "--netns", "--btf", "--backend", "--debug", "--summary <seconds>"] {
            assert!(out.contains(opt), "help lacks {opt}");
        }
    }
}

/// Run the tracer for a second with only these capabilities (as uid 0
/// unless `nobody`), in a private mount namespace, with or without tracefs.
fn run_with_caps(caps: &str, nobody: bool, no_tracefs: bool) -> (i32, String) {
    let set = if caps.is_empty() { "-all".to_string() } else { format!("-all,{caps}") };
    let mut script = String::new();
    if no_tracefs {
        script.push_str(
            "for m in $(grep -w tracefs /proc/self/mountinfo | cut -d' ' -f5); do umount -l $m; done; ",
        );
    } else {
        script.push_str(
            "grep -qw tracefs /proc/self/mountinfo || mount -t tracefs nodev /sys/kernel/tracing; ",
        );
    }
    let user = if nobody { "--reuid=65534 --regid=65534 --clear-groups" } else { "" };
    script.push_str(&format!(
        "exec timeout --preserve-status -s INT 1 setpriv {user} --bounding-set={set} --inh-caps={set} --ambient-caps={set} {}",
        bin()
    ));
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn capabilities_are_checked_and_named() {
    require_root();
    // (capabilities, as nobody, without tracefs, expected status, expected stderr piece)
    let cases: &[(&str, bool, bool, i32, &str)] = &[
        ("+bpf,+perfmon", false, false, 0, ""),
        ("+sys_admin", false, false, 0, ""),
        ("+bpf", false, false, 1, "missing capability CAP_PERFMON"),
        ("+perfmon", false, false, 1, "missing capability CAP_BPF"),
        ("", false, false, 1, "missing capability CAP_BPF and CAP_PERFMON"),
        ("", true, false, 1, "missing capability CAP_BPF and CAP_PERFMON"),
        ("+bpf,+perfmon", false, true, 1, "mounting needs CAP_SYS_ADMIN"),
    ];
    for &(caps, nobody, no_tracefs, code, want) in cases {
        let (got, err) = run_with_caps(caps, nobody, no_tracefs);
        assert_eq!(got, code, "caps {caps:?} nobody {nobody} no_tracefs {no_tracefs}: {err}");
        assert!(err.contains(want), "caps {caps:?}: {err:?} lacks {want:?}");
        assert!(err.lines().count() <= 1, "{err}");
    }
}

#[test]
fn without_privileges_says_to_run_as_root() {
    require_root(); // to drop privileges we must have them
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg(bin())
        .output()
        .expect("setpriv (util-linux)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("run tcptracer as root"), "{err}");
}
