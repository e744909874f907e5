# shellcheck shell=bash
# build/musl-env.sh: sourced by build/static.sh and vm/vmtest.sh.
# musl_env ARCH (x86_64|amd64|arm64|aarch64): set up the environment of a
# static musl build for ARCH and set MUSL_TARGET (<arch>-unknown-linux-musl),
# MUSL_CARGO (the cargo to run) and MUSL_ZFLAGS (the -Z flags of a
# Debian-toolchain build: -Zbuild-std-features=; the caller adds its
# -Zbuild-std= crates; empty with rustup's target).
# Where rustup has the musl target installed: an ordinary --target build.
# Else Debian's toolchain (rustc-web, cargo-web, rust-web-src, musl-tools,
# libunwind-14-dev): std is built from source (-Zbuild-std), linked by
# musl-gcc as a plain static executable (musl-gcc's specs mishandle
# static-pie).
# arm64 on an x86-64 host: the same Debian Rust toolchain, linked by
# gcc-aarch64-linux-gnu against arm64 musl and LLVM's libunwind.a, which
# build/cross-sysroot.sh downloads (apt-get download, no multiarch) into
# target/cross/arm64, through a generated specs file like musl-gcc's.
# Returns 2 (with a message) when something is missing. Run from the
# repository's root.
musl_env() {
    local arch=$1 debarch cross=no gcc rustc=/usr/bin/rustc cargo=/usr/bin/cargo
    local unwind=/usr/lib/llvm-14/lib missing=() var linker sysroot lib specs
    case $arch in
        x86_64 | amd64) arch=x86_64 debarch=amd64 ;;
        aarch64 | arm64) arch=aarch64 debarch=arm64 ;;
        *) echo "build/musl-env: ARCH=$arch is not supported (x86_64 or arm64)" >&2; return 2 ;;
    esac
    MUSL_TARGET=$arch-unknown-linux-musl
    [ "$(uname -m)" = "$arch" ] || cross=yes
    gcc=$arch-linux-gnu-gcc

    if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$MUSL_TARGET"; then
        # Without it the target links a static-pie (a dynamic section).
        export RUSTFLAGS="${RUSTFLAGS:-} -C relocation-model=static"
        if [ $cross = yes ]; then
            # rustup's musl target brings its own crt objects and libc.a: only
            # the linker driver must be the target's.
            command -v "$gcc" >/dev/null || { echo "build/musl-env: apt-get install gcc-$arch-linux-gnu" >&2; return 2; }
            var=CARGO_TARGET_${MUSL_TARGET^^}_LINKER
            var=${var//-/_}
            export "$var=${!var:-$gcc}"
        fi
        MUSL_CARGO=cargo MUSL_ZFLAGS=
        return 0
    fi

    [ -x $rustc ] || missing+=(rustc-web)
    [ -x $cargo ] || missing+=(cargo-web)
    [ -x $rustc ] && [ -d "$($rustc --print sysroot)/lib/rustlib/src/rust/library" ] || missing+=(rust-web-src)
    if [ $cross = no ]; then
        command -v musl-gcc >/dev/null || missing+=(musl-tools)
        [ -e $unwind/libunwind.a ] || missing+=(libunwind-14-dev)
    else
        command -v "$gcc" >/dev/null || missing+=("gcc-$arch-linux-gnu")
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "build/musl-env: no $MUSL_TARGET target in rustup and Debian's packages are missing: apt-get install ${missing[*]}" >&2
        return 2
    fi
    export RUSTC=$rustc RUSTC_BOOTSTRAP=1
    if [ $cross = no ]; then
        linker="-C linker=musl-gcc"
    else
        # The target's musl and libunwind.a, and a specs file that makes the
        # target's gcc link them instead of its glibc (as musl-gcc's does).
        sysroot=$PWD/target/cross/$debarch
        build/cross-sysroot.sh "$debarch" "$sysroot" || return 1
        lib=$sysroot/usr/lib/$arch-linux-musl
        unwind=$sysroot/usr/lib/llvm-14/lib
        specs=$sysroot/musl-gcc.specs
        cat > "$specs" <<EOF
%rename cpp_options old_cpp_options

*cpp_options:
-nostdinc -isystem $sysroot/usr/include/$arch-linux-musl -isystem include%s %(old_cpp_options)

*cc1:
%(cc1_cpu) -nostdinc -isystem $sysroot/usr/include/$arch-linux-musl -isystem include%s

*link_libgcc:
-L$lib -L .%s

*libgcc:
libgcc.a%s %:if-exists(libgcc_eh.a%s)

*startfile:
%{!shared: $lib/Scrt1.o} $lib/crti.o crtbeginS.o%s

*endfile:
crtendS.o%s $lib/crtn.o

*link:
-nostdlib %{shared:-shared} %{static:-static} %{rdynamic:-export-dynamic}
EOF
        linker="-C linker=$gcc -C link-arg=-specs=$specs"
    fi
    export RUSTFLAGS="$linker -C link-self-contained=no -L $unwind -C relocation-model=static"
    MUSL_CARGO=$cargo MUSL_ZFLAGS=-Zbuild-std-features=
}
