//! `qexit N`: end a QEMU guest with exit status `(N << 1) | 1` by writing N
//! to QEMU's isa-debug-exit port (0xf4). The VM harness (`vm/`) runs it as
//! the last step of the guest's /init; the guest kernels have no /dev/port.
//! N is truncated to a byte; keep it below 128 (the status is 8 bits).

fn main() {
    let n: u32 = match std::env::args().nth(1).map(|s| s.parse()) {
        Some(Ok(n)) => n,
        _ => {
            eprintln!("usage: qexit N");
            std::process::exit(2);
        }
    };
    qexit(n as u8);
}

#[cfg(target_arch = "x86_64")]
fn qexit(n: u8) {
    // SAFETY: ioperm grants this process the 4 ports at 0xf4 (needs
    // CAP_SYS_RAWIO); the out instruction writes one byte to the first.
    unsafe {
        if libc::ioperm(0xf4, 4, 1) != 0 {
            eprintln!("qexit: ioperm: {}", std::io::Error::last_os_error());
            std::process::exit(1);
        }
        core::arch::asm!("out dx, al", in("dx") 0xf4u16, in("al") n, options(nomem, nostack, preserves_flags));
    }
    // Without an isa-debug-exit device the write does nothing.
    eprintln!("qexit: still running (no isa-debug-exit device?)");
    std::process::exit(1);
}

#[cfg(not(target_arch = "x86_64"))]
fn qexit(_n: u8) {
    eprintln!("qexit: x86_64 only");
    std::process::exit(1);
}
