#!/usr/bin/env bash
# build/static.sh [x86_64|arm64]
# The static musl binary: target/<arch>-unknown-linux-musl/release/tcptracer
# (arm64: target/aarch64-unknown-linux-musl/release/tcptracer).
# The toolchain set-up (rustup's musl target, or Debian's rustc-web with
# std built from source, and for arm64 the cross sysroot) is
# build/musl-env.sh's. std is built without its backtrace symbolizer
# (-Zbuild-std-features=): 530 KB instead of 786 KB; panics still print
# their message.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=build/musl-env.sh
. build/musl-env.sh
musl_env "${1:-x86_64}" || exit $?
if [ -z "$MUSL_ZFLAGS" ]; then
    exec $MUSL_CARGO build --release --target "$MUSL_TARGET"
fi
exec $MUSL_CARGO build --release -Zbuild-std=std,panic_abort $MUSL_ZFLAGS --target "$MUSL_TARGET"
