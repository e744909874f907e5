#!/usr/bin/env bash
# vm/vmtest.sh [KERNEL...]: run the root integration suite (tests/trace.rs,
# tests/loader.rs, tests/features.rs, tests/library.rs, tests/races.rs,
# static builds)
# in QEMU guests booting Debian cloud kernels,
# once per backend, and print a kernel | backend | result | seconds table.
# Exits 1 if any cell fails. See vm/README.md.
# TCPTRACER_VM_ARCH=arm64: the same suite, cross-built for
# aarch64-unknown-linux-musl, in arm64 guests (qemu-system-aarch64 -M virt).
#
# Environment:
#   TCPTRACER_VM_ARCH       amd64 (default) or arm64
#   KERNELS / args          kernels to boot: 5.10 6.1 6.12 (default: all three;
#                           arm64: 6.1 6.12, Debian has no arm64 cloud 5.10)
#   BACKENDS                backends to test (default: "tracepoint kprobe kprobe-tracefs fentry")
#   TCPTRACER_VM_CACHE      cache of kernels and apt state (default ~/.cache/tcptracer-vm)
#   TCPTRACER_VM_OUT        initramfs and console logs (default target/vm, arm64: target/vm-arm64)
#   TCPTRACER_VM_CELL_TIMEOUT  seconds per test binary in the guest (default 120,
#                           arm64 300; a whole trace run takes 12-27 s under x86 TCG)
#   TCPTRACER_VM_ACCEL      QEMU -accel value (default tcg,thread=single)
#   TCPTRACER_VM_TIMEOUT    seconds per boot before QEMU is killed
#                           (default 60 + 4 x backends x cell timeout)
#   TCPTRACER_VM_NOBUILD=1  reuse the binaries from the last build
#   TCPTRACER_VM_BIN        the tcptracer the guests run (make vmtest: the static
#                           musl binary; default: the static glibc build of TARGET;
#                           arm64: the static musl binary of make static ARCH=arm64)
#   TCPTRACER_VM_SKIP_OK    ARCH:KERNEL:BACKEND cells that may be skipped when the
#                           guest's tcptracer --check says the kernel cannot run
#                           the backend (default "arm64:6.1:fentry": no BPF
#                           trampoline on arm64 before 6.4); any other skip fails
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CARGO=${CARGO:-cargo}
case ${TCPTRACER_VM_ARCH:-amd64} in
    amd64 | x86_64) VMARCH=amd64 ;;
    arm64 | aarch64) VMARCH=arm64 ;;
    *) echo "vm/vmtest: TCPTRACER_VM_ARCH=$TCPTRACER_VM_ARCH: amd64 or arm64" >&2; exit 2 ;;
esac
if [ $VMARCH = amd64 ]; then
    TARGET=${TARGET:-x86_64-unknown-linux-gnu}
    OUT=${TCPTRACER_VM_OUT:-$ROOT/target/vm}
    CELL_TIMEOUT=${TCPTRACER_VM_CELL_TIMEOUT:-120}
    DEFAULT_KERNELS="5.10 6.1 6.12"
    BUSYBOX=${TCPTRACER_VM_BUSYBOX:-/bin/busybox}
    REL=target/$TARGET/release
    # Single-threaded TCG: with one host thread per vCPU (MTTCG) the 6.12 guest
    # died twice in six boots of an int3 Oops while the kernel patched its own
    # code (jump labels), once before any test ran; run time is the same here.
    ACCEL=${TCPTRACER_VM_ACCEL:-tcg,thread=single}
    # The tcptracer the guests run: `make vmtest` passes the static musl binary;
    # without it, the static glibc build of TARGET.
    BIN=${TCPTRACER_VM_BIN:-$ROOT/$REL/tcptracer}
else
    TARGET=aarch64-unknown-linux-musl
    OUT=${TCPTRACER_VM_OUT:-$ROOT/target/vm-arm64}
    CELL_TIMEOUT=${TCPTRACER_VM_CELL_TIMEOUT:-300}
    DEFAULT_KERNELS="6.1 6.12"
    BUSYBOX=${TCPTRACER_VM_BUSYBOX:-$ROOT/target/cross/arm64-busybox/bin/busybox}
    REL=target/$TARGET/vmtest
    ACCEL=${TCPTRACER_VM_ACCEL:-tcg,thread=single}
    BIN=${TCPTRACER_VM_BIN:-$ROOT/target/$TARGET/release/tcptracer}
fi
BACKENDS=${BACKENDS:-tracepoint kprobe kprobe-tracefs fentry}
SKIP_OK=${TCPTRACER_VM_SKIP_OK:-arm64:6.1:fentry}
nb=$(echo $BACKENDS | wc -w)
BOOT_TIMEOUT=${TCPTRACER_VM_TIMEOUT:-$((60 + 4 * nb * CELL_TIMEOUT))}
if [ $# -gt 0 ]; then KERNELS="$*"; else KERNELS=${KERNELS:-$DEFAULT_KERNELS}; fi

die() { echo "vm/vmtest: $*" >&2; exit 2; }
log() { echo "vm/vmtest: $*" >&2; }

# ---- tools -------------------------------------------------------------
command -v cpio >/dev/null || die "cpio missing (apt-get install cpio)"
if [ $VMARCH = amd64 ]; then
    QEMU=qemu-system-x86_64
    command -v $QEMU >/dev/null || die "$QEMU missing (apt-get install qemu-system-x86)"
    [ -x "$BUSYBOX" ] || die "$BUSYBOX missing (apt-get install busybox-static)"
    # ldd: "not a dynamic executable" (static) or "statically linked" (static-pie)
    is_static() { local o; o=$(LC_ALL=C ldd "$1" 2>&1); grep -qE 'not a dynamic executable|statically linked' <<<"$o"; }
else
    QEMU=qemu-system-aarch64
    command -v $QEMU >/dev/null || die "$QEMU missing (apt-get install qemu-system-arm)"
    command -v aarch64-linux-gnu-gcc >/dev/null || die "aarch64-linux-gnu-gcc missing (apt-get install gcc-aarch64-linux-gnu)"
    # Debian's arm64 busybox-static, fetched without multiarch.
    [ -n "${TCPTRACER_VM_BUSYBOX:-}" ] || build/cross-sysroot.sh arm64 target/cross/arm64-busybox busybox-static \
        || die "could not fetch the arm64 busybox-static"
    [ -x "$BUSYBOX" ] || die "$BUSYBOX missing"
    [ -x "$BIN" ] || die "no $BIN: make static ARCH=arm64"
    # A foreign binary: static when it has no program interpreter and no
    # dynamic section.
    is_static() { ! LC_ALL=C readelf -lW "$1" 2>/dev/null | grep -qE 'INTERP|DYNAMIC' && readelf -h "$1" >/dev/null 2>&1; }
fi
if ! is_static "$BUSYBOX"; then
    die "$BUSYBOX is dynamically linked (the busybox package); install busybox-static"
fi

# ---- build: static tcptracer, static test binaries, qexit ---------------
mkdir -p "$OUT"
if [ "${TCPTRACER_VM_NOBUILD:-0}" != 1 ] && [ $VMARCH = amd64 ]; then
    export RUSTFLAGS="-C target-feature=+crt-static"
    log "building static tcptracer, qexit and the trace/loader test binaries"
    $CARGO build --release --target "$TARGET" --bin tcptracer --example qexit || die "cargo build failed"
    $CARGO test --release --target "$TARGET" --test trace --test loader --test features --test library --test races \
        --no-run --message-format=json \
        > "$OUT/tests.json" || die "cargo test --no-run failed"
    unset RUSTFLAGS
elif [ "${TCPTRACER_VM_NOBUILD:-0}" != 1 ]; then
    # The test binaries for aarch64 musl, with build/musl-env.sh's toolchain
    # (Debian's rustc: std built from source, linked against the arm64 musl
    # and libunwind.a). They must unwind (a failing test is reported, the
    # others still run), while the release profile aborts: a profile of their
    # own (target/aarch64-unknown-linux-musl/vmtest), so std is built once
    # with unwinding and the shipped binary in release/ is untouched.
    log "building the arm64 test binaries ($TARGET)"
    (
        # shellcheck source=build/musl-env.sh
        . build/musl-env.sh
        musl_env arm64 || exit $?
        std=()
        if [ -n "$MUSL_ZFLAGS" ]; then
            std=(-Zbuild-std=std,panic_unwind,test)
            # Debian's libunwind.a calls glibc's __fprintf_chk (see the file).
            aarch64-linux-gnu-gcc -specs="$ROOT/target/cross/arm64/musl-gcc.specs" -O2 -c \
                -o "$OUT/fortify-shim.o" vm/fortify-shim.c || exit 1
            export RUSTFLAGS="$RUSTFLAGS -C link-arg=$OUT/fortify-shim.o"
        fi
        $MUSL_CARGO test --config 'profile.vmtest.inherits="release"' --config 'profile.vmtest.panic="unwind"' \
            --profile vmtest "${std[@]}" --target "$TARGET" \
            --test trace --test loader --test features --test library --test races \
            --no-run --message-format=json > "$OUT/tests.json"
    ) || die "cargo test --no-run (arm64) failed"
fi
# "executable" of the test targets trace and loader, from cargo's JSON lines
test_exe() {
    sed -n 's/.*"target":{"kind":\["test"\],[^}]*"name":"'"$1"'".*"executable":"\([^"]*\)".*/\1/p' \
        "$OUT/tests.json" | tail -n1
}
TRACE=$(test_exe trace)
LOADER=$(test_exe loader)
FEATURES=$(test_exe features)
LIBRARY=$(test_exe library)
RACES=$(test_exe races)
QEXIT=
[ $VMARCH = arm64 ] || QEXIT=$REL/examples/qexit
for f in "$BIN" $QEXIT "$TRACE" "$LOADER" "$FEATURES" "$LIBRARY" "$RACES"; do
    [ -n "$f" ] && [ -x "$f" ] || die "missing build output '$f'"
    is_static "$f" || die "$f is not statically linked"
done

# ---- initramfs: busybox, /init, the binaries (uncompressed newc) --------
stage=$OUT/initrd
rm -rf "$stage"
mkdir -p "$stage"/{bin,tests,dev,proc,sys,tmp,root,etc}
cp "$BUSYBOX" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
cp "$BIN" "$stage/bin/tcptracer"
# arm64 virt has no isa-debug-exit: its /init powers off instead.
[ -z "$QEXIT" ] || cp "$QEXIT" "$stage/bin/qexit"
cp tests/kernel_log.sh "$stage/bin/kernel_log"
cp "$TRACE" "$stage/tests/trace"
cp "$LOADER" "$stage/tests/loader"
cp "$FEATURES" "$stage/tests/features"
cp "$LIBRARY" "$stage/tests/library"
cp "$RACES" "$stage/tests/races"
cp vm/init "$stage/init"
chmod 755 "$stage/init"
(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$OUT/initrd.cpio" \
    || die "cpio failed"
log "initramfs $(du -h "$OUT/initrd.cpio" | cut -f1) ($OUT/initrd.cpio)"

# ---- kernels ------------------------------------------------------------
# shellcheck disable=SC2086
kinfo=$(TCPTRACER_VM_ARCH=$VMARCH vm/kernels.sh $KERNELS) || die "could not get the kernels"

# ---- log parsing ---------------------------------------------------------
# Short note for a failed cell: per test binary, "N failed" / timeout / exit.
cell_note() { # log kernel backend
    awk -v k="$2" -v b="$3" -v to="$CELL_TIMEOUT" '
        $0 ~ "^=== CELL kernel=" k " backend=" b " START" { on = 1; next }
        !on { next }
        /^test result:/ { res = $0 }
        /tcpt kprobe_events/ { printf "%s%s", sep, "kprobe_events not clean"; sep = ", " }
        /^=== KLOG / {
            split($5, t, "="); sub(/:$/, "", t[2])
            if (t[2] != klog) { printf "%s%s: kernel log/taint", sep, t[2]; sep = ", " }
            klog = t[2]
        }
        $0 ~ "^=== RUN kernel=" k " backend=" b " test=.* exit=" {
            split($5, t, "="); split($6, e, "=")
            if (e[2] != 0) {
                if (e[2] == 124 || e[2] == 143) why = "timed out after " to "s"
                else if (match(res, /[0-9]+ failed/)) why = substr(res, RSTART, RLENGTH)
                else why = "exit " e[2]
                printf "%s%s: %s", sep, t[2], why; sep = ", "
            }
            res = ""
        }
        $0 ~ "^=== CELL kernel=" k " backend=" b " (PASS|FAIL)" { exit }
    ' "$1"
}
# Every failing test with the first lines of its panic message.
panics() {
    awk '
        /^=== CELL .* START$/ { cell = $3 " " $4 }
        /^---- .* stdout ----$/ { name = $2; grab = 0; next }
        name != "" && /panicked at/ {
            at = $0; sub(/.*panicked at /, "", at); sub(/:$/, "", at)
            print cell " " name " (" at "):"; grab = 4; next
        }
        grab > 0 {
            if ($0 == "" || /^stack backtrace:/) { grab = 0; name = "" }
            else { print "    " $0; grab-- }
        }
    ' "$1"
}

# ---- boot each kernel ---------------------------------------------------
declare -A CELL SECS NOTE WALL
fail=0
t_all=$(date +%s.%N)
while read -r label vmlinuz pkg ver; do
    log "$label: booting $pkg $ver, backends: $BACKENDS"
    raw=$OUT/console-$label.raw
    logf=$OUT/console-$label.log
    t0=$(date +%s.%N)
    append="panic=-1 quiet tt_kernel=$label tt_backends=${BACKENDS// /,} tt_cell_timeout=$CELL_TIMEOUT"
    if [ $VMARCH = amd64 ]; then
        timeout --kill-after=10 "$BOOT_TIMEOUT" $QEMU -accel "$ACCEL" -cpu max -m 1024 -smp 2 \
            -kernel "$vmlinuz" -initrd "$OUT/initrd.cpio" -append "console=ttyS0 $append" \
            -nographic -no-reboot -serial mon:stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
            -net none </dev/null >"$raw" 2>&1
    else
        timeout --kill-after=10 "$BOOT_TIMEOUT" $QEMU -M virt -accel "$ACCEL" -cpu max -m 1024 -smp 2 \
            -kernel "$vmlinuz" -initrd "$OUT/initrd.cpio" -append "console=ttyAMA0 $append" \
            -nographic -no-reboot -serial mon:stdio -net none </dev/null >"$raw" 2>&1
    fi
    status=$?
    wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    tr -d '\r' <"$raw" >"$logf"
    rc=$(sed -n 's/^RESULT rc=\([0-9]*\)$/\1/p' "$logf" | tail -n1)
    boot_ok=0
    if [ $VMARCH = amd64 ]; then
        # The guest's verdicts count only if it reached qexit: status (rc<<1)|1.
        if [ -n "$rc" ] && [ "$status" = $(((rc << 1) | 1)) ]; then boot_ok=1; fi
        want_status=1
        case $status in
            124 | 137) why="timed out after ${BOOT_TIMEOUT}s" ;;
            0) why="qemu status 0: kernel panic or poweroff without qexit" ;;
            *) why="qemu status $status, RESULT rc=${rc:-none}" ;;
        esac
    else
        # No isa-debug-exit: the guest powers off after its RESULT line (QEMU
        # status 0). A panic (panic=-1, -no-reboot) exits with 0 as well, so
        # the RESULT line must be there and no panic on the console.
        panicked=$(grep -m1 -E 'Kernel panic|Attempted to kill init' "$logf")
        if [ -n "$rc" ] && [ "$status" = 0 ] && [ -z "$panicked" ]; then boot_ok=1; fi
        want_status=0
        case $status in
            124 | 137) why="timed out after ${BOOT_TIMEOUT}s" ;;
            0) if [ -n "$panicked" ]; then why="kernel panic: $panicked"; else why="no RESULT line (poweroff or panic)"; fi ;;
            *) why="qemu status $status, RESULT rc=${rc:-none}" ;;
        esac
    fi
    kernel_ok=1
    for b in $BACKENDS; do
        line=$(grep -E "^=== CELL kernel=$label backend=$b (PASS|FAIL|SKIP) seconds=" "$logf" | tail -n1)
        v=$(echo "$line" | awk '{print $5}')
        s=$(echo "$line" | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p')
        if [ "$boot_ok" = 1 ] && [ "$v" = PASS ]; then
            CELL[$label/$b]=PASS
        elif [ "$boot_ok" = 1 ] && [ "$v" = SKIP ]; then
            # "=== CELL ... SKIP seconds=0 --check: fentry/fexit no (...)"
            chk=$(echo "$line" | sed -n 's/.* --check: //p')
            if [[ " $SKIP_OK " == *" $VMARCH:$label:$b "* ]]; then
                CELL[$label/$b]=SKIP
                NOTE[$label/$b]="skipped (--check: $chk)"
            else
                CELL[$label/$b]=FAIL
                kernel_ok=0
                NOTE[$label/$b]="skipped, not expected (TCPTRACER_VM_SKIP_OK) (--check: $chk)"
            fi
        else
            CELL[$label/$b]=FAIL
            kernel_ok=0
            if [ "$boot_ok" != 1 ]; then NOTE[$label/$b]="$why"
            elif [ -z "$v" ]; then NOTE[$label/$b]="no result line"
            else NOTE[$label/$b]=$(cell_note "$logf" "$label" "$b"); fi
        fi
        SECS[$label/$b]=${s:--}
    done
    [ "$status" = "$want_status" ] && [ "$rc" = 0 ] && [ "$boot_ok" = 1 ] || kernel_ok=0
    if [ $kernel_ok = 1 ]; then
        log "$label: PASS in ${wall}s (log: $logf)"
    else
        fail=1
        log "$label: FAIL in ${wall}s ($why; log: $logf)"
        echo "----- $label: failing tests (first lines of each panic) -----"
        panics "$logf" | head -n 80
        echo "----- $label: last 40 console lines ($logf) -----"
        tail -n 40 "$logf"
        echo "-----"
    fi
    WALL[$label]=$wall
done <<<"$kinfo"
total=$(awk -v a="$t_all" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

# ---- table --------------------------------------------------------------
echo
printf '%-7s | %-14s | %-4s | %8s | %s\n' kernel backend cell seconds note
printf -- '--------+----------------+------+----------+-----\n'
while read -r label _ pkg ver; do
    for b in $BACKENDS; do
        printf '%-7s | %-14s | %-4s | %8s | %s\n' "$label" "$b" "${CELL[$label/$b]}" "${SECS[$label/$b]}" "${NOTE[$label/$b]:-}"
    done
done <<<"$kinfo"
echo
while read -r label _ pkg ver; do
    printf '%-7s %s %s: boot wall %ss\n' "$label" "$pkg" "$ver" "${WALL[$label]}"
done <<<"$kinfo"
echo "total ${total}s; logs in $OUT"
exit $fail
