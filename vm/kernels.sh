#!/usr/bin/env bash
# vm/kernels.sh LABEL...  (LABEL: 5.10 | 6.1 | 6.12)
# Make sure the cache holds the newest Debian cloud kernel for each LABEL and
# print one line per label: "LABEL PATH-TO-VMLINUZ PACKAGE VERSION".
#
#   5.10: newest linux-image-5.10.0-N-cloud-amd64      from bullseye-security
#   6.1 : newest linux-image-6.1.0-N-cloud-amd64       from bookworm
#   6.12: newest linux-image-6.12.N+deb13-cloud-amd64  from trixie
#
# TCPTRACER_VM_ARCH=arm64: the same for the -cloud-arm64 kernels (6.1 and
# 6.12; cached under kernel-arm64-LABEL, with their own apt state).
#
# The archive URIs are read from this machine's Debian source file at run time
# (never written anywhere); a private apt configuration under the cache
# directory is used, so the system's apt state is untouched. A kernel already
# in the cache is reused as is; TCPTRACER_VM_REFRESH=1 resolves "newest" again.
set -euo pipefail

CACHE=${TCPTRACER_VM_CACHE:-$HOME/.cache/tcptracer-vm}
SOURCES=${TCPTRACER_VM_DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
VMARCH=${TCPTRACER_VM_ARCH:-amd64}
case $VMARCH in
    amd64) APT=$CACHE/apt KPREFIX=kernel- ;;
    arm64) APT=$CACHE/apt-arm64 KPREFIX=kernel-arm64- ;;
    *) echo "vm/kernels: TCPTRACER_VM_ARCH=$VMARCH: amd64 or arm64" >&2; exit 2 ;;
esac
log() { echo "vm/kernels: $*" >&2; }

suite_of() {
    case $1 in
        5.10) echo bullseye-security ;;
        6.1) echo bookworm ;;
        6.12) echo trixie ;;
        *) log "unknown kernel label '$1' (5.10, 6.1 or 6.12)"; return 1 ;;
    esac
}
pattern_of() {
    case $1 in
        5.10) echo "^linux-image-5\\.10\\.0-[0-9]+-cloud-$VMARCH\$" ;;
        6.1) echo "^linux-image-6\\.1\\.0-[0-9]+-cloud-$VMARCH\$" ;;
        6.12) echo "^linux-image-6\\.12\\.[0-9]+\\+deb13-cloud-$VMARCH\$" ;;
    esac
}

# URIs from the deb822 source file: the first stanza's, and the stanza's whose
# URI ends in -security.
read_uris() {
    [ -r "$SOURCES" ] || { log "cannot read $SOURCES"; return 1; }
    MAIN_URI=$(awk '/^[[:space:]]*#/ {next} /^URIs:/ {print $2; exit}' "$SOURCES")
    SEC_URI=$(awk '/^[[:space:]]*#/ {next} /^URIs:/ {for (i = 2; i <= NF; i++) if ($i ~ /-security\/?$/) {print $i; exit}}' "$SOURCES")
    [ -n "$MAIN_URI" ] || { log "no URIs: line in $SOURCES"; return 1; }
    [ -n "$SEC_URI" ] || { log "no -security URI in $SOURCES"; return 1; }
}

apt_opts() {
    echo -o "Dir::Etc::SourceList=$APT/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" \
        -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null \
        -o Acquire::Languages=none -o APT::Architecture=$VMARCH -o APT::Architectures=$VMARCH -o Debug::NoLocking=1 \
        -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false
    # root: apt would hand downloads to user _apt, which cannot enter $HOME
    [ "$(id -u)" != 0 ] || echo -o APT::Sandbox::User=root
}

write_sources() { # $1: option for the [ ] of each line
    {
        echo "deb [$1] $SEC_URI bullseye-security main"
        echo "deb [$1] $MAIN_URI bookworm main"
        echo "deb [$1] $MAIN_URI trixie main"
    } > "$APT/sources.list"
}

apt_update() {
    read_uris
    mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial"
    local opt=trusted=yes out
    if [ -r "$KEYRING" ]; then opt="signed-by=$KEYRING"; else log "no $KEYRING: using trusted=yes"; fi
    write_sources "$opt"
    # shellcheck disable=SC2046
    local bad='^E:|NO_PUBKEY|not signed|EXPKEYSIG|BADSIG|signature'
    if out=$(apt-get $(apt_opts) update 2>&1) && ! grep -qE "$bad" <<<"$out"; then
        return 0
    fi
    if [ "$opt" != trusted=yes ] && grep -qE 'NO_PUBKEY|not signed|EXPKEYSIG|BADSIG|signature' <<<"$out"; then
        log "signature check failed with $KEYRING; retrying with trusted=yes"
        echo "$out" | grep -E '^[WE]:' >&2 || true
        write_sources trusted=yes
        # shellcheck disable=SC2046
        out=$(apt-get $(apt_opts) update 2>&1) && ! grep -q '^E:' <<<"$out" && return 0
    fi
    echo "$out" >&2
    log "apt-get update failed"
    return 1
}

UPDATED=0
fetch() { # $1: label
    local label=$1 dir=$CACHE/$KPREFIX$1 suite pat pkg ver tmp deb
    suite=$(suite_of "$label")
    pat=$(pattern_of "$label")
    if [ "${TCPTRACER_VM_REFRESH:-0}" = 1 ] || [ ! -s "$dir/vmlinuz" ] || [ ! -s "$dir/package" ]; then
        [ $UPDATED = 1 ] || { log "updating the package lists (bullseye-security, bookworm, trixie)"; apt_update; UPDATED=1; }
        # shellcheck disable=SC2046
        pkg=$(apt-cache $(apt_opts) search --names-only "$pat" | awk '{print $1}' | grep -E "$pat" | sort -V | tail -n1)
        [ -n "$pkg" ] || { log "$label: no package matching $pat in $suite"; return 1; }
        # shellcheck disable=SC2046
        ver=$(apt-cache $(apt_opts) policy "$pkg" | awk '/Candidate:/ {print $2}')
        if [ -s "$dir/vmlinuz" ] && [ "$(cat "$dir/package" 2>/dev/null)" = "$pkg $ver" ]; then
            log "$label: $pkg $ver (cached, up to date)"
        else
            log "$label: downloading $pkg $ver"
            mkdir -p "$CACHE/debs"
            deb=$(ls "$CACHE/debs/${pkg}_"*"_$VMARCH.deb" 2>/dev/null | grep -F "_${ver//:/%3a}_" || true)
            if [ -z "$deb" ]; then
                # shellcheck disable=SC2046
                (cd "$CACHE/debs" && apt-get $(apt_opts) download "$pkg=$ver" >&2)
                deb=$(ls "$CACHE/debs/${pkg}_"*"_$VMARCH.deb" | grep -F "_${ver//:/%3a}_")
            fi
            tmp=$(mktemp -d "$CACHE/extract.XXXXXX")
            dpkg-deb -x "$deb" "$tmp"
            mkdir -p "$dir"
            cp "$tmp"/boot/vmlinuz-* "$dir/vmlinuz.new"
            cp "$tmp"/boot/config-* "$dir/config" 2>/dev/null || true
            rm -rf "$tmp"
            mv "$dir/vmlinuz.new" "$dir/vmlinuz"
            echo "$pkg $ver" > "$dir/package"
        fi
    fi
    echo "$label $dir/vmlinuz $(cat "$dir/package")"
}

[ $# -gt 0 ] || set -- 5.10 6.1 6.12
mkdir -p "$CACHE"
for k in "$@"; do fetch "$k"; done
