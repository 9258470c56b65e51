//! `veriroot --help`: every mode, subcommand, kernel argument and
//! configuration key veriroot knows (tests/docs.rs checks the docs against it).

/// What the initrd build's `--help` says first (docs/design.md, "Two
/// builds").
pub const INITRD_NOTE: &str = "\
This is veriroot's initrd build: only the PID 1 mode and setup-root. The
other subcommands are in the full veriroot (/usr/bin/veriroot on the host).

";

pub const HELP: &str = "\
veriroot: boot a verified composefs image as the root file system

USAGE:
  veriroot                      as /init (PID 1) of a minimal initrd: mount
                                /proc /sys /dev /run, load the initrd's kernel
                                modules, mount root= at /sysroot, verify and
                                mount the image named by composefs=, measure
                                it into the TPM, switch root and exec init=
                                (default /sbin/init). Any failure caps the PCR
                                and powers the machine off (or reboots or
                                halts: veriroot.on-failure=).
  veriroot setup-root [--sysroot DIR] [--cmdline STR] [--config FILE]
                      [--tpm2-device PATH]
                                in a systemd initrd: the real root is mounted
                                at /sysroot; replace it with the verified,
                                measured tree (real root at /sysroot/sysroot)
                                and exit 0. A refusal caps the PCR, records
                                why on the real root, exits 1 (the unit's
                                OnFailure= isolates emergency.target unless
                                veriroot.on-failure= says otherwise).
                                --tpm2-device: the TPM to use instead of
                                /dev/tpmrm0, /dev/tpm0.
  veriroot check [--sysroot DIR] [--cmdline STR] [--keys DIR] [--luks DEV]...
                                preflight, without mounting: the composefs=
                                references, the repository and meta.json, the
                                image's and veriroot.sysext= images' fs-verity
                                digests and signatures (present, valid, which
                                trusted key of --keys, default
                                /etc/veriroot/keys), the kernel's overlay/EROFS features
                                (not the configuration, the TPM, extension
                                release rules); the fix for each problem; exit
                                0 only if a verified boot would succeed.
                                --luks DEV: also each TPM2 keyslot's policy in
                                that LUKS2 header; WARN where it binds PCR 15
                                without PCR 9 or 11 (docs/sealing.md).
  veriroot enable-verity [--algorithm sha256|sha512] REPOSITORY
                                enable fs-verity on every file of a composefs
                                repository (idempotent; default algorithm
                                from meta.json).
  veriroot digest [--hash sha256|sha512] FILE...
                                print each file's fs-verity digest (4 KiB
                                blocks, no salt; default sha256) computed
                                from its contents, as `fsverity digest` does.
  veriroot predict (--digest HEX [--insecure] | --cmdline STR | --failure)
                   [--sysext NAME:HEX]... [--uki FILE [--phase WORD[:WORD...]]]
                   [--signer CERT] [--machine-id ID] [--config FILE] [--pcr N]
                   [--etc MODE] [--var MODE] [--base-log LOG]
                   [--banks sha1,sha256,sha384,sha512]
                   [--json | --tpm2-pcrs [--signed-pcr11] | --pcrlock]
                                the PCR values a veriroot boot of that image
                                leaves (from reset), per bank; --sysext: with
                                these system extensions merged, lowest first
                                (PCR 13); --failure: after a refused boot.
                                --json: {\"sha256\":{\"13\":\"..\",\"15\":\"..\"}}.
                                --uki: also PCR 11 as systemd-stub measures the
                                UKI's sections, then systemd-pcrphase's words
                                (default enter-initrd: while in the initrd;
                                enter-initrd:leave-initrd:sysinit:ready: booted);
                                the image comes from the UKI's .cmdline unless
                                --digest or --cmdline is given.
                                --signer: the image was signed by the key of
                                this certificate or public key (PEM or DER):
                                adds \"veriroot:signer:sha256:<key id>\".
                                --machine-id: PCR 15 after switch root, where
                                systemd-pcrmachine adds \"machine-id:ID\".
                                --base-log: start from what systemd's
                                measurement log LOG (of a boot of this machine)
                                has in veriroot's PCRs before veriroot's first
                                record (an encrypted root's tpm2-measure-pcr=
                                \"cryptsetup:\" record).
                                --tpm2-pcrs: one line for systemd-cryptenroll
                                --tpm2-pcrs= (one bank, default sha256):
                                15:sha256=HEX with what proves veriroot ran:
                                PCR 11 literally with --uki, else 9 (its value
                                at enrolment); --signed-pcr11: PCR 11 left to a
                                signed policy (docs/sealing.md).
                                --pcrlock: a systemd-pcrlock component of
                                veriroot's events (every bank unless --banks),
                                one variant of 755-veriroot.pcrlock.d/.
  veriroot log [FILE] [--json] [--no-tpm] [--tpm2-device PATH]
                                parse and replay systemd's measurement log
                                (default /run/log/systemd/tpm2-measure.log) and
                                compare with the TPM's PCRs where one exists
                                (--tpm2-device PATH instead of /dev/tpmrm0,
                                /dev/tpm0; --no-tpm: do not read one).
  veriroot status [--sysroot DIR] [--log FILE] [--mountinfo FILE]
                                in a booted system: the image it runs (the
                                root mount, --mountinfo default
                                /proc/self/mountinfo), whether overlayfs
                                enforces its fs-verity digests, veriroot's
                                records in the measurement log (--log), and
                                the last refused boot recorded on the real
                                root (--sysroot, default /sysroot:
                                composefs/state/veriroot/last-refusal).
                                Exit 1 if the root is not a composefs image.
  veriroot --help | --version

KERNEL COMMAND LINE:
  composefs=[?]<hex>            fs-verity digest of the image, 64 hex digits
                                (sha256) or 128 (sha512); '?' = insecure.
  composefs.digest=[?]v{1,2}-sha{256,512}-12:<hex>
                                the same with the format spelled out.
  root= rootfstype= rootflags= ro rw init=
                                as for the kernel (PID 1 mode; root= takes
                                /dev/NAME, UUID=, LABEL=).
  veriroot.sysext=<hex>[,<hex>...]
                                system extensions (composefs images in the same
                                repository, same digest kind as the root's),
                                repeatable; merged into the root's overlay in
                                the order named (first = lowest), verified and
                                checked against systemd-sysext's rules, each
                                measured into PCR 13. The root image may list
                                more (lower) in /usr/lib/veriroot/extensions.
                                See docs/sysext.md.
  veriroot.root-timeout=SECS    wait for root= (default 30; PID 1 mode).
  veriroot.tpm-timeout=SECS     wait for a TPM the firmware describes (ACPI
                                TPM2 table, tcg,tpm* device-tree node) to
                                appear (default 10; PID 1 mode).
  veriroot.erofs=loop           mount the image through a loop device even
                                where the kernel takes files.
  veriroot.timeout=SECS         give up on a boot path that has not finished
                                (a disk or TPM that stopped answering): cap
                                the PCRs and power off (PID 1) or exit 1
                                (setup-root); default 90, plus the root= and
                                TPM waits in PID 1 mode.
  veriroot.on-failure=emergency|poweroff|reboot|halt
                                what ends a refused boot (wins over [boot]
                                on-failure): default poweroff as PID 1,
                                emergency (the unit's OnFailure=) in a
                                systemd initrd, reboot in both where
                                systemd-boot counts the entry's tries
                                (LoaderBootCountPath), so that it can fall
                                back; as PID 1 emergency halts (no shell
                                there). A malformed value is itself a
                                refusal. None boots anything.
  veriroot.failure-delay=SECS   wait before powering off, rebooting or
                                halting, with the reason on the console
                                (0-60, default 10).

CONFIGURATION (in the initrd): /usr/lib/composefs/setup-root-conf.toml
(composefs-setup-root's), then /etc/veriroot/veriroot.conf, which wins:
  [tpm]  policy = \"auto\" | \"required\" | \"off\"      (default auto; ours only)
         pcr = 15                                   (default 15; never 11)
  [boot] candidates = \"first\" | \"ordered\"          (default first: only the
         first composefs= argument may boot; ordered: each in turn, the
         first existing image wins; ours only)
         on-failure = \"emergency\"|\"poweroff\"|\"reboot\"|\"halt\"
                                                    (see veriroot.on-failure=;
                                                    ours only)
  [trust] signatures = \"off\"|\"if-present\"|\"required\"
                                                    (default off: the command
         line alone names the image; if-present: a signature that is there
         must verify; required: the image and every extension need one by a
         key in /etc/veriroot/keys, and composefs=? is refused; ours only.
         Signatures: <repository>/signatures/<hex>.sig, docs/formats.md)
  [root] transient = true|false                     (default false)
  [etc]  mount = \"none\"|\"bind\"|\"overlay\"|\"transient\" (default overlay)
  [var]  mount = (the same)                         (default bind)
  [etc], [var]: transient = true is short for mount = \"transient\".

Defaults: --sysroot /sysroot, --cmdline from /proc/cmdline.
";
