#!/usr/bin/env bash
# vm/vmtest.sh [KERNEL...]: run the root integration suite (tests/trace.rs,
# tests/loader.rs, tests/features.rs, tests/library.rs, tests/races.rs,
# static builds)
# in QEMU guests booting Debian cloud kernels,
# once per backend, and print a kernel | backend | result | seconds table.
# Exits 1 if any cell fails. See vm/README.md.
#
# Environment:
#   KERNELS / args          kernels to boot: 5.10 6.1 6.12 (default: all three)
#   BACKENDS                backends to test (default: "tracepoint kprobe kprobe-tracefs fentry")
#   TCPTRACER_VM_CACHE      cache of kernels and apt state (default ~/.cache/tcptracer-vm)
#   TCPTRACER_VM_OUT        initramfs and console logs (default target/vm)
#   TCPTRACER_VM_CELL_TIMEOUT  seconds per test binary in the guest (default 120;
#                           a whole trace run takes 12-27 s under TCG)
#   TCPTRACER_VM_ACCEL      QEMU -accel value (default tcg,thread=single)
#   TCPTRACER_VM_TIMEOUT    seconds per boot before QEMU is killed
#                           (default 60 + 2 x backends x cell timeout)
#   TCPTRACER_VM_NOBUILD=1  reuse the binaries from the last build
#   TCPTRACER_VM_BIN        the tcptracer the guests run (make vmtest: the static
#                           musl binary; default: the static glibc build of TARGET)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CARGO=${CARGO:-cargo}
TARGET=${TARGET:-x86_64-unknown-linux-gnu}
OUT=${TCPTRACER_VM_OUT:-$ROOT/target/vm}
BACKENDS=${BACKENDS:-tracepoint kprobe kprobe-tracefs fentry}
CELL_TIMEOUT=${TCPTRACER_VM_CELL_TIMEOUT:-120}
# Single-threaded TCG: with one host thread per vCPU (MTTCG) the 6.12 guest
# died twice in six boots of an int3 Oops while the kernel patched its own
# code (jump labels), once before any test ran; run time is the same here.
ACCEL=${TCPTRACER_VM_ACCEL:-tcg,thread=single}
nb=$(echo $BACKENDS | wc -w)
BOOT_TIMEOUT=${TCPTRACER_VM_TIMEOUT:-$((60 + 4 * nb * CELL_TIMEOUT))}
if [ $# -gt 0 ]; then KERNELS="$*"; else KERNELS=${KERNELS:-5.10 6.1 6.12}; fi
BUSYBOX=${TCPTRACER_VM_BUSYBOX:-/bin/busybox}
REL=target/$TARGET/release
# The tcptracer the guests run: `make vmtest` passes the static musl binary;
# without it, the static glibc build of TARGET.
BIN=${TCPTRACER_VM_BIN:-$ROOT/$REL/tcptracer}

die() { echo "vm/vmtest: $*" >&2; exit 2; }
log() { echo "vm/vmtest: $*" >&2; }

# ---- tools -------------------------------------------------------------
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
command -v cpio >/dev/null || die "cpio missing (apt-get install cpio)"
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing (apt-get install busybox-static)"
# ldd: "not a dynamic executable" (static) or "statically linked" (static-pie)
is_static() { local o; o=$(LC_ALL=C ldd "$1" 2>&1); grep -qE 'not a dynamic executable|statically linked' <<<"$o"; }
if ! is_static "$BUSYBOX"; then
    die "$BUSYBOX is dynamically linked (the busybox package); install busybox-static"
fi

# ---- build: static tcptracer, static test binaries, qexit ---------------
mkdir -p "$OUT"
if [ "${TCPTRACER_VM_NOBUILD:-0}" != 1 ]; then
    export RUSTFLAGS="-C target-feature=+crt-static"
    log "building static tcptracer, qexit and the trace/loader test binaries"
    $CARGO build --release --target "$TARGET" --bin tcptracer --example qexit || die "cargo build failed"
    $CARGO test --release --target "$TARGET" --test trace --test loader --test features --test library --test races \
        --no-run --message-format=json \
        > "$OUT/tests.json" || die "cargo test --no-run failed"
    unset RUSTFLAGS
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
for f in "$BIN" "$REL/examples/qexit" "$TRACE" "$LOADER" "$FEATURES" "$LIBRARY" "$RACES"; do
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
cp "$REL/examples/qexit" "$stage/bin/qexit"
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
kinfo=$(vm/kernels.sh $KERNELS) || die "could not get the kernels"

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
    timeout --kill-after=10 "$BOOT_TIMEOUT" qemu-system-x86_64 -accel "$ACCEL" -cpu max -m 1024 -smp 2 \
        -kernel "$vmlinuz" -initrd "$OUT/initrd.cpio" \
        -append "console=ttyS0 panic=-1 quiet tt_kernel=$label tt_backends=${BACKENDS// /,} tt_cell_timeout=$CELL_TIMEOUT" \
        -nographic -no-reboot -serial mon:stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
        -net none </dev/null >"$raw" 2>&1
    status=$?
    wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    tr -d '\r' <"$raw" >"$logf"
    rc=$(sed -n 's/^RESULT rc=\([0-9]*\)$/\1/p' "$logf" | tail -n1)
    # The guest's verdicts count only if it reached qexit: status (rc<<1)|1.
    boot_ok=0
    if [ -n "$rc" ] && [ "$status" = $(((rc << 1) | 1)) ]; then boot_ok=1; fi
    case $status in
        124 | 137) why="timed out after ${BOOT_TIMEOUT}s" ;;
        0) why="qemu status 0: kernel panic or poweroff without qexit" ;;
        *) why="qemu status $status, RESULT rc=${rc:-none}" ;;
    esac
    kernel_ok=1
    for b in $BACKENDS; do
        line=$(grep -E "^=== CELL kernel=$label backend=$b (PASS|FAIL) seconds=" "$logf" | tail -n1)
        v=$(echo "$line" | awk '{print $5}')
        s=$(echo "$line" | sed -n 's/.*seconds=//p')
        if [ "$boot_ok" = 1 ] && [ "$v" = PASS ]; then
            CELL[$label/$b]=PASS
        else
            CELL[$label/$b]=FAIL
            kernel_ok=0
            if [ "$boot_ok" != 1 ]; then NOTE[$label/$b]="$why"
            elif [ -z "$v" ]; then NOTE[$label/$b]="no result line"
            else NOTE[$label/$b]=$(cell_note "$logf" "$label" "$b"); fi
        fi
        SECS[$label/$b]=${s:--}
    done
    [ "$status" = 1 ] && [ "$rc" = 0 ] || kernel_ok=0
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
