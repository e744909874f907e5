# tcptracer: `make run` builds and starts tracing (as root); `make test` runs every test.

CARGO  ?= cargo
# The static musl binary users get (build/static.sh), for ARCH.
ARCH   ?= x86_64
STATIC := target/$(if $(filter arm64 aarch64,$(ARCH)),aarch64,x86_64)-unknown-linux-musl/release/tcptracer
# Test binaries (static glibc, for the VM guests).
TARGET ?= x86_64-unknown-linux-gnu
ARGS   ?=
# vmtest: KERNEL=5.10|6.1|6.12 (empty: all three; vmtest-arm64: 6.1 and 6.12);
# BACKENDS: the suite runs once per backend.
KERNEL   ?=
BACKENDS ?= tracepoint kprobe kprobe-tracefs fentry
SUDO   := $(if $(filter 0,$(shell id -u)),,sudo)
# install: $(DESTDIR)$(PREFIX)/sbin/tcptracer and its man page.
PREFIX  ?= /usr/local
DESTDIR ?=

.PHONY: all build run static test unit vmtest vmtest-arm64 vmkernels bench clean install uninstall

all: build

build:
	$(CARGO) build --release

run: build
	$(SUDO) ./target/release/tcptracer $(ARGS)

# One static musl binary: rustup's musl target if installed, else Debian's
# rustc-web/cargo-web/rust-web-src + musl-tools + libunwind-14-dev (std built
# from source). See build/static.sh.
static:
	build/static.sh $(ARCH)
	@ls -l $(STATIC)

unit:
	$(CARGO) test --lib --bins

# Unit tests (the library's root-only ones are #[ignore]d: run here, as root), the
# root integration tests against the static binary users get on
# this kernel, then the same suite in QEMU guests (5.10, 6.1, 6.12) per backend,
# then the same suite again in arm64 guests (6.1, 6.12) per backend.
# A WARNING/BUG/Oops in the kernel log or a new taint flag fails the run.
test: static
	@mkdir -p target
	tests/kernel_log.sh mark target/kernel-log.mark
	TCPTRACER_BIN=$(abspath $(STATIC)) TCPTRACER_STATIC_BIN=$(abspath $(STATIC)) $(CARGO) test
	$(CARGO) test --lib -- --ignored
	tests/kernel_log.sh check target/kernel-log.mark "host tests"
	$(MAKE) vmtest
	$(MAKE) vmtest-arm64

# The root integration suite (tests/trace.rs, tests/loader.rs, static builds) in QEMU
# guests booting Debian's 5.10, 6.1 and 6.12 cloud kernels, once per backend; prints a
# kernel | backend | PASS/FAIL | seconds table and fails if any cell fails. See vm/README.md.
vmtest: static
	CARGO="$(CARGO)" TARGET=$(TARGET) BACKENDS="$(BACKENDS)" TCPTRACER_VM_BIN=$(abspath $(STATIC)) \
		vm/vmtest.sh $(KERNEL)

# The same root integration suite on arm64: the aarch64 static binary (make static
# ARCH=arm64) and the test binaries cross-built for aarch64 musl, in QEMU guests
# (-M virt) booting Debian's arm64 6.1 and 6.12 cloud kernels, once per backend;
# a backend the kernel cannot run is skipped only where --check says so and that
# skip is expected (fentry on 6.1). Same table and kernel-log check. See vm/README.md.
vmtest-arm64:
	$(MAKE) static ARCH=arm64
	TCPTRACER_VM_ARCH=arm64 BACKENDS="$(BACKENDS)" vm/vmtest.sh $(KERNEL)

# Download (or, with TCPTRACER_VM_REFRESH=1, update) the cached guest kernels.
vmkernels:
	vm/kernels.sh $(KERNEL)

# The benchmark (not part of `make test`): overhead vs. no tracer and vs. bpftrace,
# zero-loss drain rate, start-up, memory, BPF and reader cost; writes bench/results.md.
# BENCH_ROUNDS=1 BENCH_SECONDS=2 for a quick run; TCPTRACER_BIN=path tests another binary.
BENCH_ROUNDS  ?= 5
BENCH_SECONDS ?= 5
TCPTRACER_BIN ?= $(abspath $(STATIC))
bench: static
	$(CARGO) build --release --example loadgen --example bench
	$(SUDO) env BENCH_ROUNDS=$(BENCH_ROUNDS) BENCH_SECONDS=$(BENCH_SECONDS) TCPTRACER_BIN=$(TCPTRACER_BIN) \
		./target/release/examples/bench

clean:
	$(CARGO) clean

# The static binary (mode 755) and the man page (mode 644), under $(DESTDIR)$(PREFIX):
# `make install`, `make install PREFIX=/usr DESTDIR=pkgroot`. It runs the static build
# first, so under sudo cargo must be on root's PATH (after `make static` it is a no-op).
install: static
	install -D -m 755 $(STATIC) "$(DESTDIR)$(PREFIX)/sbin/tcptracer"
	install -D -m 644 man/man8/tcptracer.8 "$(DESTDIR)$(PREFIX)/share/man/man8/tcptracer.8"

uninstall:
	rm -f "$(DESTDIR)$(PREFIX)/sbin/tcptracer" "$(DESTDIR)$(PREFIX)/share/man/man8/tcptracer.8"

# Fuzzing (not part of `make test`; needs cargo-fuzz and a nightly toolchain): each
# target of fuzz/ for FUZZ_SECONDS (FUZZ_TARGETS="btf_parse perf_ring" for some),
# then per target execs, seconds and crashed or not. Corpora live in
# ~/.cache/tcptracer-fuzz; crash inputs, once fixed, go to tests/fuzz_regressions/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
.PHONY: fuzz
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh $(FUZZ_TARGETS)
