#!/usr/bin/env bash
# build/cross-sysroot.sh DEBARCH DIR [PACKAGE...]
# Fill DIR with DEBARCH's (e.g. arm64) musl (libc.a, crt objects) and LLVM's
# libunwind.a (or the PACKAGEs given) from Debian's packages, without multiarch: `apt-get download`
# under a private apt configuration (APT::Architecture=DEBARCH, its own lists
# under DIR) and `dpkg-deb -x`. The archive URI and suite are read from this
# machine's Debian source at run time (as vm/kernels.sh does). Prints nothing;
# DIR/usr/lib/<triple>-linux-musl and DIR/usr/lib/llvm-14/lib hold the result.
# A DIR already filled is reused as is.
set -euo pipefail

debarch=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)
shift 2
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(musl-dev musl libunwind-14-dev)
SOURCES=${TCPTRACER_DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
log() { echo "build/cross-sysroot: $*" >&2; }

[ -e "$dir/.done" ] && exit 0

[ -r "$SOURCES" ] || { log "cannot read $SOURCES"; exit 1; }
uri=$(awk '/^[[:space:]]*#/ {next} /^URIs:/ {print $2; exit}' "$SOURCES")
suite=$(awk '/^[[:space:]]*#/ {next} /^Suites:/ {print $2; exit}' "$SOURCES")
[ -n "$uri" ] && [ -n "$suite" ] || { log "no URIs:/Suites: line in $SOURCES"; exit 1; }

apt=$dir/apt
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
opt=trusted=yes
[ -r "$KEYRING" ] && opt="signed-by=$KEYRING"
echo "deb [arch=$debarch $opt] $uri $suite main" > "$apt/sources.list"
o=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
    -o "Dir::State::status=/dev/null"
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
    -o Acquire::Languages=none -o "APT::Architecture=$debarch" -o "APT::Architectures=$debarch"
    -o Debug::NoLocking=1
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false)
# root: apt would hand downloads to user _apt, which may not enter $dir
[ "$(id -u)" != 0 ] || o+=(-o APT::Sandbox::User=root)

log "$debarch: ${pkgs[*]} from $suite"
out=$(apt-get "${o[@]}" update 2>&1) || { echo "$out" >&2; log "apt-get update failed"; exit 1; }
if grep -q '^E:' <<<"$out"; then echo "$out" >&2; log "apt-get update failed"; exit 1; fi
rm -f "$apt/debs"/*.deb
(cd "$apt/debs" && apt-get "${o[@]}" download "${pkgs[@]/%/:$debarch}" >&2)
for deb in "$apt/debs"/*.deb; do dpkg-deb -x "$deb" "$dir"; done
touch "$dir/.done"
