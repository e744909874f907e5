//! End to end as root: a socket filter calls `bpf_perf_event_output` for
//! each UDP datagram on loopback; the reader must see every sample.

use std::net::UdpSocket;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::PerfBuf;
use crate::loader::sys::{bpf, bpf_fd, Cmd};
use crate::transport::cpus::{online_cpus, possible_cpu_count};
use crate::transport::record::{Record, Wake};

const PATTERN: u64 = 0x1122_3344_5566_7788;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    code as u64
        | (dst as u64) << 8
        | (src as u64) << 12
        | (off as u16 as u64) << 16
        | (imm as u32 as u64) << 32
}

/// `r6 = ctx; *(u64*)(fp-8) = PATTERN; perf_event_output(ctx, map, CURRENT_CPU, fp-8, 8); return 0`
fn program(map_fd: i32) -> Vec<u64> {
    vec![
        insn(0xbf, 6, 1, 0, 0),                     // r6 = r1
        insn(0x18, 1, 0, 0, PATTERN as u32 as i32), // r1 = PATTERN (ld_imm64)
        insn(0, 0, 0, 0, (PATTERN >> 32) as i32),   //
        insn(0x7b, 10, 1, -8, 0),                   // *(u64 *)(r10 - 8) = r1
        insn(0xbf, 1, 6, 0, 0),                     // r1 = r6
        insn(0x18, 2, 1, 0, map_fd),                // r2 = map (pseudo map fd)
        insn(0, 0, 0, 0, 0),                        //
        insn(0xb4, 3, 0, 0, -1),                    // w3 = BPF_F_CURRENT_CPU
        insn(0xbf, 4, 10, 0, 0),                    // r4 = r10
        insn(0x07, 4, 0, 0, -8),                    // r4 += -8
        insn(0xb7, 5, 0, 0, 8),                     // r5 = 8
        insn(0x85, 0, 0, 0, 25),                    // call bpf_perf_event_output
        insn(0xb7, 0, 0, 0, 0),                     // r0 = 0
        insn(0x95, 0, 0, 0, 0),                     // exit
    ]
}

fn setup(r: &PerfBuf) -> (OwnedFd, OwnedFd) {
    let mut map_attr = [4u32 /* PERF_EVENT_ARRAY */, 4, 4, possible_cpu_count().unwrap(), 0];
    let map = bpf_fd(Cmd::MapCreate, &mut map_attr).expect("create perf event array");
    for (cpu, fd) in r.fds() {
        let (key, val) = (cpu, fd.as_raw_fd() as u32);
        #[repr(C)]
        struct Update(u32, u32, u64, u64, u64);
        let mut a =
            Update(map.as_raw_fd() as u32, 0, &key as *const u32 as u64, &val as *const u32 as u64, 0);
        bpf(Cmd::MapUpdateElem, &mut a).expect("store perf fd");
    }
    let insns = program(map.as_raw_fd());
    let license = c"GPL";
    #[repr(C)]
    struct Load(u32, u32, u64, u64, u32, u32, u64);
    let mut a = Load(
        1, /* SOCKET_FILTER */
        insns.len() as u32,
        insns.as_ptr() as u64,
        license.as_ptr() as u64,
        0,
        0,
        0,
    );
    let prog = bpf_fd(Cmd::ProgLoad, &mut a).expect("load socket filter");
    (map, prog)
}

/// A UDP socket on loopback whose filter writes one sample per datagram
/// into `r`'s rings, and a socket sending to it.
struct Udp {
    _map: OwnedFd,
    _prog: OwnedFd,
    rx: UdpSocket,
    tx: UdpSocket,
}

impl Udp {
    fn new(r: &PerfBuf) -> Udp {
        let (map, prog) = setup(r);
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = prog.as_raw_fd();
        // SAFETY: passes a live i32 of the given size.
        let rc = unsafe {
            libc::setsockopt(
                rx.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_BPF,
                (&fd as *const i32).cast(),
                4,
            )
        };
        assert_eq!(rc, 0, "SO_ATTACH_BPF: {}", std::io::Error::last_os_error());
        Udp { _map: map, _prog: prog, rx, tx: UdpSocket::bind("127.0.0.1:0").unwrap() }
    }

    fn send(&self, n: usize) {
        for _ in 0..n {
            assert_eq!(self.tx.send_to(b"x", self.rx.local_addr().unwrap()).unwrap(), 1);
        }
    }
}

#[test]
#[ignore = "needs root"]
fn bpf_samples_reach_the_reader_as_root() {
    // 4 pages per ring, wake per sample; 2000 records of 24 bytes wrap a 16 KiB ring.
    let mut r = PerfBuf::open(&online_cpus().unwrap(), 4, 1).unwrap();
    let udp = Udp::new(&r);
    let (mut samples, mut lost, mut woke) = (0u64, 0u64, false);
    for _ in 0..20 {
        udp.send(100);
        let deadline = Instant::now() + Duration::from_secs(5);
        while samples < 2000 && Instant::now() < deadline {
            woke |= r.wait(100).unwrap() == Wake::Data;
            let st = r
                .drain(&mut |rec| match rec {
                    Record::Sample(s) => {
                        assert_eq!(s.len(), 12, "8 bytes + 4 padding");
                        assert_eq!(s[..8], PATTERN.to_ne_bytes());
                    }
                    Record::Lost(n) => panic!("lost {n}"),
                })
                .unwrap();
            samples += st.samples;
            lost += st.lost;
            if samples % 100 == 0 {
                break;
            }
        }
    }
    assert!(woke, "wait never returned Data");
    assert_eq!((samples, lost), (2000, 0));
}

#[test]
#[ignore = "needs root"]
fn watermark_delays_wakeup_as_root() {
    // Keep every sample on one CPU's ring: pin this thread (loopback delivery
    // runs on the sending CPU).
    // SAFETY: a zeroed cpu_set_t is valid; calls on this thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(libc::sched_getcpu() as usize, &mut set);
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set), 0);
    }
    let mut r = PerfBuf::open(&online_cpus().unwrap(), 4, 8192).unwrap();
    let udp = Udp::new(&r);
    let count = |r: &mut PerfBuf| r.drain(&mut |_| {}).unwrap().samples;
    // 10 × 24 bytes stay below the watermark: no wakeup, but drain finds them.
    udp.send(10);
    assert_eq!(r.wait(200).unwrap(), Wake::Timeout);
    assert_eq!(count(&mut r), 10);
    // 400 × 24 bytes on one CPU would cross it; a wakeup must come.
    udp.send(400);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut woke = false;
    while !woke && Instant::now() < deadline {
        woke = r.wait(100).unwrap() == Wake::Data;
    }
    assert!(woke, "no wakeup after crossing the watermark");
    assert_eq!(count(&mut r), 400);
}
