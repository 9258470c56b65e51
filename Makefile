# veriroot: build, test, demo, install.
#   make demo     build everything, boot a verified image under QEMU
#   make test     unit tests + every VM scenario (installs what it needs)
#   make install DESTDIR=...
SHELL := /bin/bash
TARGET := x86_64-unknown-linux-musl
BIN := target/$(TARGET)/release/veriroot
PREFIX ?= /usr
DESTDIR ?=
# The initrd binary (stripped by the release profile) may not grow past 1 MiB.
MAX_SIZE := 1048576

.PHONY: all deps build unit lint scenarios test demo install clean bench

all: build

deps:
	qemu/install-deps

build: deps
	cargo build --release --target $(TARGET) -p veriroot
	@file $(BIN) | grep -q 'static' || { echo "$(BIN) is not statically linked" >&2; exit 1; }
	@ls -l $(BIN)
	@size=$$(stat -c %s $(BIN)); \
	if [ "$$size" -gt $(MAX_SIZE) ]; then \
		echo "$(BIN) is $$size bytes, over the limit of $(MAX_SIZE)" >&2; exit 1; \
	else echo "$(BIN): $$size bytes (limit $(MAX_SIZE))"; fi

unit:
	cargo test --workspace

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	shellcheck -x qemu/install-deps qemu/run-scenarios qemu/demo qemu/smoke qemu/verify-units qemu/lib/*.sh benches/*.sh .ci/run
	shellcheck -s sh qemu/guest/* qemu/smoke.init
	shellcheck -s bash dracut/*/module-setup.sh
	qemu/verify-units units/*.service

scenarios: build
	qemu/run-scenarios

test: deps lint unit scenarios

demo: build
	qemu/demo

# Against the peers, side by side (docs/benchmarks.md): fs-verity digest
# speed against fsverity-utils, boot-path cost against composefs-setup-root.
bench: build
	benches/digest.sh
	benches/boot.sh

# The binary, the initrd unit (inert outside an initrd) and the dracut
# module, where Debian's and Fedora's systemd and dracut look for them.
install: $(BIN)
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/veriroot
	install -D -m 0644 units/veriroot-setup-root.service $(DESTDIR)$(PREFIX)/lib/systemd/system/veriroot-setup-root.service
	install -D -m 0755 dracut/50veriroot/module-setup.sh $(DESTDIR)$(PREFIX)/lib/dracut/modules.d/50veriroot/module-setup.sh

$(BIN):
	cargo build --release --target $(TARGET) -p veriroot

clean:
	cargo clean
