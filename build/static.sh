#!/usr/bin/env bash
# The static musl binary: target/<arch>-unknown-linux-musl/release/tcptracer.
# Where rustup has the musl target installed: an ordinary --target build.
# Else Debian's toolchain (rustc-web, cargo-web, rust-web-src, musl-tools,
# libunwind-14-dev): std is built from source (-Zbuild-std, ~2 min once,
# cached in target/ after), linked by musl-gcc as a plain static executable
# (musl-gcc's specs mishandle static-pie). std is built without its
# backtrace symbolizer: 530 KB instead of 786 KB; panics still print their
# message.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-x86_64}
case $arch in
    x86_64) ;;
    *) echo "build/static.sh: ARCH=$arch is not supported yet (x86_64 only)" >&2; exit 2 ;;
esac
target=$arch-unknown-linux-musl

if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    # Without it the target links a static-pie (a dynamic section).
    export RUSTFLAGS="${RUSTFLAGS:-} -C relocation-model=static"
    exec cargo build --release --target "$target"
fi

rustc=/usr/bin/rustc
cargo=/usr/bin/cargo
unwind=/usr/lib/llvm-14/lib
missing=()
[ -x $rustc ] || missing+=(rustc-web)
[ -x $cargo ] || missing+=(cargo-web)
[ -x $rustc ] && [ -d "$($rustc --print sysroot)/lib/rustlib/src/rust/library" ] || missing+=(rust-web-src)
command -v musl-gcc >/dev/null || missing+=(musl-tools)
[ -e $unwind/libunwind.a ] || missing+=(libunwind-14-dev)
if [ ${#missing[@]} -gt 0 ]; then
    echo "build/static.sh: no musl target in rustup and Debian's packages are missing: apt-get install ${missing[*]}" >&2
    exit 2
fi
export RUSTC=$rustc RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-C linker=musl-gcc -C link-self-contained=no -L $unwind -C relocation-model=static"
exec $cargo build --release -Zbuild-std=std,panic_abort -Zbuild-std-features= --target "$target"
