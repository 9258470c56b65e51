# veriroot: build, test, demo, install.
#   make demo     build everything, boot a verified image under QEMU
#   make test     unit tests + every VM scenario, x86_64 and aarch64 guests
#                 (installs what it needs)
#   make install DESTDIR=...
SHELL := /bin/bash
# The static initrd binary is built for every architecture the tests boot
# (the aarch64 one is linked by rust-lld: .cargo/config.toml); `make
# install` installs the host's.
TARGETS := x86_64-unknown-linux-musl aarch64-unknown-linux-musl
HOST_TARGET := $(shell uname -m)-unknown-linux-musl
BIN := target/$(HOST_TARGET)/release/veriroot
PREFIX ?= /usr
DESTDIR ?=
# The initrd binary (stripped by the release profile) may not grow past 1 MiB.
MAX_SIZE := 1048576
# The VM scenarios of every guest, in one report (qemu/run-scenarios):
# x86_64 and aarch64 with Debian's stable kernel (6.12), x86_64 with the
# current one (7.x; the scenarios marked "# kernels: ... current").
SCENARIO_GUESTS := x86_64,aarch64,x86_64/current
# Guests at once (qemu/run-scenarios -j; default: the number of CPUs).
JOBS ?= $(shell nproc)

.PHONY: all deps build unit lint check-report scenarios test demo install clean bench

all: build

deps:
	qemu/install-deps

build: deps
	@set -e; for t in $(TARGETS); do \
		bin=target/$$t/release/veriroot; \
		cargo build --release --target $$t -p veriroot; \
		file $$bin | grep -Eq 'statically linked|static-pie linked' || { echo "$$bin is not statically linked" >&2; exit 1; }; \
		size=$$(stat -c %s $$bin); \
		if [ "$$size" -gt $(MAX_SIZE) ]; then \
			echo "$$bin is $$size bytes, over the limit of $(MAX_SIZE)" >&2; exit 1; \
		else echo "$$bin: $$size bytes (limit $(MAX_SIZE))"; fi; \
	done

unit:
	cargo test --workspace

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	# The aarch64 build is checked too (its tests cannot run on this host).
	cargo clippy -p veriroot --all-targets --target aarch64-unknown-linux-musl -- -D warnings
	shellcheck -x qemu/install-deps qemu/run-scenarios qemu/check-failure-report qemu/demo qemu/smoke qemu/verify-units qemu/lib/*.sh benches/*.sh .ci/run
	shellcheck -s sh qemu/guest/* qemu/smoke.init
	shellcheck -s bash dracut/*/module-setup.sh
	qemu/verify-units units/*.service

# The harness's failure report: a broken preparation ends in FAIL lines
# and the summary, never silently (qemu/check-failure-report).
check-report: build
	qemu/check-failure-report

scenarios: build
	qemu/run-scenarios -j $(JOBS) --guests $(SCENARIO_GUESTS)

test: deps lint unit check-report scenarios

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
	cargo build --release --target $(HOST_TARGET) -p veriroot

clean:
	cargo clean
