#!/usr/bin/env bash
# vm/arm64-smoke.sh [KERNEL...]  (6.1, 6.12; default both)
# Boot Debian's arm64 cloud kernels under qemu-system-aarch64 (TCG) with a
# busybox initramfs that runs the aarch64 static tcptracer (make static
# ARCH=arm64) --check and a short trace per backend (vm/arm64-init). The
# guest's result is the console's "RESULT rc=0" (virt has no isa-debug-exit;
# a panic and a poweroff both exit QEMU with 0). Needs qemu-system-arm, cpio,
# gcc-aarch64-linux-gnu; busybox-static for arm64 comes by apt-get download
# (build/cross-sysroot.sh). BACKENDS="tracepoint kprobe kprobe-tracefs fentry
# tracepoint-perf" by default (B-perf: backend B on perf rings instead of the
# ring buffer; kprobe-tracefs: kprobes through tracefs kprobe_events).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${TCPTRACER_VM_OUT:-target/vm-arm64}
bin=target/aarch64-unknown-linux-musl/release/tcptracer
[ -x $bin ] || { echo "vm/arm64-smoke: no $bin: make static ARCH=arm64" >&2; exit 2; }
mkdir -p "$out/initrd/bin"
build/cross-sysroot.sh arm64 target/cross/arm64-busybox busybox-static
cp target/cross/arm64-busybox/bin/busybox "$out/initrd/bin/busybox"
ln -sf busybox "$out/initrd/bin/sh"
cp $bin "$out/initrd/bin/tcptracer"
aarch64-linux-gnu-gcc -O2 -static -o "$out/initrd/bin/loconn" vm/loconn.c
cp vm/arm64-init "$out/initrd/init"
chmod +x "$out/initrd/init"
(cd "$out/initrd" && find . | cpio -o -H newc --quiet) > "$out/initrd.cpio"
backends=${BACKENDS:-tracepoint kprobe kprobe-tracefs fentry tracepoint-perf}
[ $# -gt 0 ] || set -- 6.1 6.12
rc=0
for k in "$@"; do
    vmlinuz=$(TCPTRACER_VM_ARCH=arm64 vm/kernels.sh "$k" | awk '{print $2}')
    log=$out/console-$k.log
    t0=$(date +%s.%N)
    timeout "${TCPTRACER_VM_TIMEOUT:-600}" qemu-system-aarch64 -M virt -cpu max -accel tcg -m 1024 -smp 2 \
        -kernel "$vmlinuz" -initrd "$out/initrd.cpio" -append "console=ttyAMA0 panic=-1 quiet tt_backends=${backends// /,}" \
        -nographic -no-reboot -net none </dev/null > "$log.raw" 2>&1 || true
    t1=$(date +%s.%N)
    tr -d '\r' < "$log.raw" > "$log"
    res=$(grep -a '^RESULT rc=' "$log" | tail -n1 || true)
    echo "arm64 $k: ${res:-no RESULT} wall=$(echo "$t1 $t0" | awk '{printf "%.1f", $1 - $2}')s"
    grep -a '^=== ' "$log" || true
    [[ $res == "RESULT rc=0"* ]] || rc=1
done
exit $rc
