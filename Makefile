# veriroot: build, test, demo, install.
#   make demo     build everything, boot a verified image under QEMU
#   make test     unit tests, a fuzz smoke, every VM scenario, x86_64 and
#                 aarch64 guests (installs what it needs)
#   make fuzz     each fuzz target FUZZ_MINUTES (default 10), FUZZ_JOBS at once
#   make install DESTDIR=...  (PREFIX=/usr, DOCDIR=PREFIX/share/doc/veriroot)
#   make uninstall DESTDIR=...  what install put there
#   make deb      target/deb/veriroot_<version>_<arch>.deb (amd64, arm64)
SHELL := /bin/bash
# The static binaries are built for every architecture the tests boot
# (the aarch64 ones are linked by rust-lld: .cargo/config.toml); `make
# install` installs the host's. Two builds of the one crate (docs/design.md,
# "Two builds"): the full veriroot (every subcommand, /usr/bin/veriroot)
# and the initrd build (PID 1 and setup-root only, profile "initrd"), which
# the dracut module and the test initrds install.
TARGETS := x86_64-unknown-linux-musl aarch64-unknown-linux-musl
HOST_TARGET := $(shell uname -m)-unknown-linux-musl
BIN := target/$(HOST_TARGET)/release/veriroot
INITRD_BIN := target/$(HOST_TARGET)/initrd/veriroot-initrd
PREFIX ?= /usr
DESTDIR ?=
# The docs the unit's Documentation= names, with the licences.
DOCDIR ?= $(PREFIX)/share/doc/veriroot
# Size limits (stripped, static): the full build 1,152 KiB, the initrd build
# 512 KiB (issue 19), which it meets with its standard library compiled in
# (tools/build-initrd; docs/benchmarks.md, "Size"). The full build's limit
# rose with signed image digests (issue 15: RSA, ECDSA P-256/P-384, the
# PKCS#7 reader) and the sealing helpers (issue 14: predict --tpm2-pcrs/
# --pcrlock, check --luks; host code, not in the initrd).
MAX_SIZE := 1179648
MAX_INITRD_SIZE := 524288
# The VM scenarios of every guest, in one report (qemu/run-scenarios):
# x86_64 and aarch64 with Debian's stable kernel (6.12), x86_64 with the
# current one (7.x; the scenarios marked "# kernels: ... current").
SCENARIO_GUESTS := x86_64,aarch64,x86_64/current
# Guests at once (qemu/run-scenarios -j; default: the number of CPUs).
JOBS ?= $(shell nproc)

# The fuzz targets (fuzz/fuzz_targets/, one per parser of untrusted bytes).
FUZZ_TARGETS := cmdline config meta_json sysext_release image_list eventlog json signature \
	tpm_response uki superblock modules_dep digest
FUZZ_MINUTES ?= 10
FUZZ_SMOKE_SECONDS ?= 10

.PHONY: all deps build unit lint check-report check-deb scenarios test demo install uninstall deb clean bench fuzz fuzz-smoke

all: build

deps:
	qemu/install-deps

build: deps
	@set -e; check() { \
		file $$1 | grep -Eq 'statically linked|static-pie linked' || { echo "$$1 is not statically linked" >&2; exit 1; }; \
		size=$$(stat -c %s $$1); \
		if [ "$$size" -gt $$2 ]; then \
			echo "$$1 is $$size bytes, over the limit of $$2" >&2; exit 1; \
		else echo "$$1: $$size bytes (limit $$2)"; fi; \
	}; \
	for t in $(TARGETS); do \
		cargo build --release --target $$t -p veriroot --bin veriroot; \
		tools/build-initrd $$t; \
		check target/$$t/release/veriroot $(MAX_SIZE); \
		check target/$$t/initrd/veriroot-initrd $(MAX_INITRD_SIZE); \
	done

# Under strace: no test may open the host's TPM, read its command line or
# configuration, write its /run or mount anything (tools/host-isolated).
unit:
	tools/host-isolated cargo test --workspace

lint:
	cargo fmt --all --check
	# fuzz/ is its own workspace: formatted here; built (and so checked)
	# by fuzz-smoke, which needs libFuzzer, so not clippy'd here.
	cargo fmt --manifest-path fuzz/Cargo.toml --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	# The aarch64 build is checked too (its tests cannot run on this host).
	cargo clippy -p veriroot --all-targets --target aarch64-unknown-linux-musl -- -D warnings
	shellcheck -x tools/host-isolated tools/build-initrd packaging/build-deb packaging/check-deb qemu/install-deps qemu/run-scenarios qemu/check-failure-report qemu/demo qemu/smoke qemu/verify-units qemu/lib/*.sh benches/*.sh .ci/run fuzz/run
	shellcheck -s sh qemu/guest/* qemu/smoke.init
	shellcheck -s bash dracut/*/module-setup.sh
	shellcheck -s sh initramfs-tools/hooks/veriroot initramfs-tools/scripts/local-bottom/veriroot
	qemu/verify-units units/*.service

# The harness's failure report: a broken preparation ends in FAIL lines
# and the summary, never silently (qemu/check-failure-report).
check-report: build
	qemu/check-failure-report

scenarios: build
	qemu/run-scenarios -j $(JOBS) --guests $(SCENARIO_GUESTS)

# Every fuzz target for a few seconds from its seeds: fails on any crash.
fuzz-smoke: deps
	fuzz/run $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

# The campaign (not part of `make test`): FUZZ_MINUTES per target,
# FUZZ_JOBS targets at once (fuzz/run; default: the number of CPUs).
# New inputs are kept in fuzz/work/ (ignored by git) for the next run.
fuzz: deps
	fuzz/run $$(( $(FUZZ_MINUTES) * 60 )) $(FUZZ_TARGETS)

test: deps lint unit fuzz-smoke check-report check-deb scenarios

demo: build
	qemu/demo

# Against the peers, side by side (docs/benchmarks.md): fs-verity digest
# speed against fsverity-utils, boot-path cost against composefs-setup-root.
# benches/report.sh runs them and rewrites docs/benchmarks.md's "Latest run".
bench: build
	benches/report.sh

# The full binary, the initrd build (for the dracut module, which
# installs it in the initramfs as /usr/bin/veriroot), the initrd unit
# (inert outside an initrd), the dracut module and the initramfs-tools hook
# and boot script, where Debian's and Fedora's systemd, dracut and
# initramfs-tools look for them; the man page, the README and
# docs/ (links between them keep working) and the licences. INSTALLED is
# what `make uninstall` removes.
INSTALLED := $(PREFIX)/bin/veriroot \
	$(PREFIX)/lib/veriroot/veriroot-initrd \
	$(PREFIX)/lib/systemd/system/veriroot-setup-root.service \
	$(PREFIX)/lib/dracut/modules.d/50veriroot/module-setup.sh \
	$(PREFIX)/share/initramfs-tools/hooks/veriroot \
	$(PREFIX)/share/initramfs-tools/scripts/local-bottom/veriroot \
	$(PREFIX)/share/man/man8/veriroot.8 \
	$(addprefix $(DOCDIR)/,README.md LICENSE-MIT LICENSE-APACHE) \
	$(addprefix $(DOCDIR)/,$(wildcard docs/*.md))
install: $(BIN) $(INITRD_BIN)
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/veriroot
	install -D -m 0755 $(INITRD_BIN) $(DESTDIR)$(PREFIX)/lib/veriroot/veriroot-initrd
	install -D -m 0644 units/veriroot-setup-root.service $(DESTDIR)$(PREFIX)/lib/systemd/system/veriroot-setup-root.service
	install -D -m 0755 dracut/50veriroot/module-setup.sh $(DESTDIR)$(PREFIX)/lib/dracut/modules.d/50veriroot/module-setup.sh
	install -D -m 0755 initramfs-tools/hooks/veriroot $(DESTDIR)$(PREFIX)/share/initramfs-tools/hooks/veriroot
	install -D -m 0755 initramfs-tools/scripts/local-bottom/veriroot $(DESTDIR)$(PREFIX)/share/initramfs-tools/scripts/local-bottom/veriroot
	install -D -m 0644 man/veriroot.8 $(DESTDIR)$(PREFIX)/share/man/man8/veriroot.8
	install -D -m 0644 -t $(DESTDIR)$(DOCDIR) README.md LICENSE-MIT LICENSE-APACHE
	install -D -m 0644 -t $(DESTDIR)$(DOCDIR)/docs $(wildcard docs/*.md)

# What install put there, and the directories only it made (the dracut
# module's, the docs'), nothing else.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(PREFIX)/lib/veriroot $(DESTDIR)$(PREFIX)/lib/dracut/modules.d/50veriroot $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR) 2>/dev/null

# The Debian packages (packaging/build-deb: dpkg-deb on a `make install
# DESTDIR=` tree), one per architecture the static binaries are built for.
DEB_ARCHES := amd64 arm64
deb: build
	@for a in $(DEB_ARCHES); do packaging/build-deb $$a target/deb || exit 1; done

# The packages built and checked: lintian clean (errors and warnings; the
# overrides kept are in docs/install.md), contents, the initramfs trigger.
check-deb: build
	packaging/check-deb target/deb $(DEB_ARCHES)

# `make install` rebuilds what it installs (cargo knows what is stale); a
# BIN or INITRD_BIN given on the command line is installed as it is.
ifeq ($(origin BIN),file)
.PHONY: $(BIN)
endif
ifeq ($(origin INITRD_BIN),file)
.PHONY: $(INITRD_BIN)
endif
$(BIN):
	cargo build --release --target $(HOST_TARGET) -p veriroot --bin veriroot

$(INITRD_BIN):
	tools/build-initrd $(HOST_TARGET)

clean:
	cargo clean
