#!/bin/sh
# tests/kernel_log.sh mark FILE | check FILE [LABEL]
# The kernel log is part of every test run. `mark` notes the time (uptime)
# and the taint flags; `check` fails (exit 1) when the kernel log gained a
# WARNING, BUG, Oops, Call Trace, "run-time allocation" (the 5.7-6.0
# verifier's warning) or general protection line since, or the taint flags
# changed, printing what it found. POSIX sh: runs with busybox in the VM.
# Reading the log needs root (kernel.dmesg_restrict).
set -u
cmd=${1:-}
file=${2:-}
[ -n "$cmd" ] && [ -n "$file" ] || { echo "usage: $0 mark|check FILE [LABEL]" >&2; exit 2; }
case $cmd in
mark)
    printf '%s %s\n' "$(cut -d' ' -f1 /proc/uptime)" "$(cat /proc/sys/kernel/tainted)" >"$file"
    ;;
check)
    label=${3:-kernel log}
    read -r since taint0 <"$file" || { echo "$label: no mark in $file" >&2; exit 2; }
    log=$(dmesg 2>&1) || { echo "$label: cannot read the kernel log: $log" >&2; exit 2; }
    new=$(printf '%s\n' "$log" | awk -v since="$since" '
        match($0, /^\[ *[0-9]+\.[0-9]+\]/) {
            t = substr($0, RSTART + 1, RLENGTH - 2) + 0
            if (t >= since) print
        }')
    bad=$(printf '%s\n' "$new" | grep -E 'WARNING|BUG|Oops|Call Trace|run-time allocation|general protection')
    taint=$(cat /proc/sys/kernel/tainted)
    rc=0
    if [ -n "$bad" ]; then
        echo "=== KLOG $label: the kernel log gained:"
        printf '%s\n' "$new" | head -n 60
        rc=1
    fi
    if [ "$taint" != "$taint0" ]; then
        echo "=== KLOG $label: taint $taint0 -> $taint"
        rc=1
    fi
    exit $rc
    ;;
*)
    echo "usage: $0 mark|check FILE [LABEL]" >&2
    exit 2
    ;;
esac
