#!/usr/bin/env bash
# fuzz/seed-btf.sh [OUT_DIR]
# Collect real kernel BTF blobs for the fuzz seed corpora (never into git):
#   host.btf       this machine's /sys/kernel/btf/vmlinux
#   5.10.btf ...   the .BTF section of each cached VM kernel (vm/kernels.sh puts
#                  their vmlinuz in ~/.cache/tcptracer-vm/kernel-*/): find the
#                  lz4-legacy / zstd / gzip payload in the bzImage, decompress it
#                  to a vmlinux ELF and `objcopy --only-section=.BTF` (0.1-0.8 s each).
# Needs lz4, zstd, gzip, objcopy (binutils). Missing tools or kernels are
# skipped with a note. OUT_DIR defaults to ~/.cache/tcptracer-fuzz/btf.
set -uo pipefail

OUT=${1:-${TCPTRACER_FUZZ_CACHE:-$HOME/.cache/tcptracer-fuzz}/btf}
VMCACHE=${TCPTRACER_VM_CACHE:-$HOME/.cache/tcptracer-vm}
mkdir -p "$OUT"
log() { echo "seed-btf: $*" >&2; }

if [ -r /sys/kernel/btf/vmlinux ]; then
    cat /sys/kernel/btf/vmlinux >"$OUT/host.btf" && log "host.btf ($(stat -c %s "$OUT/host.btf") bytes)"
else
    log "no /sys/kernel/btf/vmlinux on this machine"
fi

# decompress FORMAT: read a compressed stream on stdin, write it on stdout.
decompress() {
    case $1 in
        lz4) lz4 -dc 2>/dev/null ;;
        zstd) zstd -dc 2>/dev/null ;;
        gzip) gzip -dc 2>/dev/null ;;
    esac
}
magic_of() {
    case $1 in
        lz4) printf '\\x02\\x21\\x4c\\x18' ;;
        zstd) printf '\\x28\\xb5\\x2f\\xfd' ;;
        gzip) printf '\\x1f\\x8b\\x08' ;;
    esac
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for dir in "$VMCACHE"/kernel-*; do
    [ -f "$dir/vmlinuz" ] || continue
    label=${dir##*/kernel-}
    [ -s "$OUT/$label.btf" ] && { log "$label.btf already there"; continue; }
    done=
    for fmt in lz4 zstd gzip; do
        command -v "$fmt" >/dev/null || { log "no $fmt tool, skipping $fmt payloads"; continue; }
        # The first few occurrences of the magic; the payload is usually the first.
        for off in $(LC_ALL=C grep -obUaP "$(magic_of $fmt)" "$dir/vmlinuz" | head -4 | cut -d: -f1); do
            # Trailing bytes after the stream make the tools exit non-zero: judge by the output.
            tail -c +$((off + 1)) "$dir/vmlinuz" | decompress $fmt >"$tmp/vmlinux"
            [ "$(head -c 4 "$tmp/vmlinux")" = $'\x7fELF' ] || continue
            if objcopy -O binary --only-section=.BTF "$tmp/vmlinux" "$tmp/btf" 2>/dev/null && [ -s "$tmp/btf" ]; then
                mv "$tmp/btf" "$OUT/$label.btf"
                log "$label.btf ($(stat -c %s "$OUT/$label.btf") bytes, $fmt payload at byte $off)"
                done=1
                break 2
            fi
        done
    done
    [ -n "$done" ] || log "$label: no .BTF found in $dir/vmlinuz"
done
ls "$OUT"/*.btf >/dev/null 2>&1 || { log "no BTF collected"; exit 1; }
