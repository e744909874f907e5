# tcptracer: `make run` builds and starts tracing (as root); `make test` runs every test.

CARGO  ?= cargo
TARGET ?= x86_64-unknown-linux-gnu
STATIC := target/$(TARGET)/release/tcptracer
ARGS   ?=
SUDO   := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: all build run static test unit clean

all: build

build:
	$(CARGO) build --release

run: build
	$(SUDO) ./target/release/tcptracer $(ARGS)

# One static-pie binary (glibc, +crt-static; --target keeps RUSTFLAGS off build scripts).
static:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --target $(TARGET)
	@ls -l $(STATIC)

unit:
	$(CARGO) test --lib

# Unit tests, then the root integration tests against the static binary users get.
test: static
	TCPTRACER_BIN=$(abspath $(STATIC)) TCPTRACER_STATIC_BIN=$(abspath $(STATIC)) $(CARGO) test

clean:
	$(CARGO) clean
