# veriroot: build, test, demo, install.
#   make demo     build everything, boot a verified image under QEMU
#   make test     unit tests + every VM scenario (installs what it needs)
#   make install DESTDIR=...
SHELL := /bin/bash
TARGET := x86_64-unknown-linux-musl
BIN := target/$(TARGET)/release/veriroot
PREFIX ?= /usr
DESTDIR ?=

.PHONY: all deps build unit lint scenarios test demo install clean

all: build

deps:
	qemu/install-deps

build: deps
	cargo build --release --target $(TARGET) -p veriroot
	@file $(BIN) | grep -q 'static' || { echo "$(BIN) is not statically linked" >&2; exit 1; }
	@ls -l $(BIN)

unit:
	cargo test --workspace

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	shellcheck -x qemu/install-deps qemu/run-scenarios qemu/demo qemu/smoke qemu/lib/*.sh .ci/run
	shellcheck -s sh qemu/guest/* qemu/smoke.init

scenarios: build
	qemu/run-scenarios

test: deps lint unit scenarios

demo: build
	qemu/demo

install: $(BIN)
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/veriroot

$(BIN):
	cargo build --release --target $(TARGET) -p veriroot

clean:
	cargo clean
