//! The TPM client against a real TPM 2.0: swtpm (libtpms), started per
//! test on a Unix socket in a temporary directory (tests/common).

mod common;

use common::SwtpmProcess;

use std::path::Path;

use veriroot::measure::bank::{self as hash, HashAlg};
use veriroot::tpm::marshal::{self, TPM_RS_PW, TPM_ST_NO_SESSIONS};
use veriroot::tpm::rc::ResponseCode;
use veriroot::tpm::transport::{Swtpm, Transport};
use veriroot::tpm::{Tpm, TpmError};

fn reset_value(alg: HashAlg) -> Vec<u8> {
    vec![0; alg.digest_len()]
}

#[test]
fn a_default_swtpm_has_all_four_banks() {
    // An unmanufactured swtpm (libtpms' defaults) allocates every bank;
    // swtpm_setup's default is sha256 only.
    let swtpm = SwtpmProcess::start();
    let mut tpm = swtpm.tpm();
    assert_eq!(tpm.active_banks().unwrap(), HashAlg::ALL);
    assert_eq!(tpm.get_random(16).unwrap().len(), 16);
}

#[test]
fn extend_then_read_matches_the_prediction_in_every_bank() {
    let swtpm = SwtpmProcess::start();
    let mut tpm = swtpm.tpm();
    let banks = tpm.active_banks().unwrap();
    for &alg in &banks {
        assert_eq!(tpm.read(15, alg).unwrap(), reset_value(alg), "{alg}");
    }

    let events: [&[u8]; 2] = [b"composefs:first", b"composefs:second"];
    let measured = [HashAlg::Sha256, HashAlg::Sha1];
    for event in events {
        let digests: Vec<_> = measured.iter().map(|&a| (a, a.digest(event))).collect();
        tpm.extend(15, &digests).unwrap();
    }

    for &alg in &banks {
        let expected = if measured.contains(&alg) {
            let d: Vec<Vec<u8>> = events.iter().map(|e| alg.digest(e)).collect();
            let once = hash::extend(alg, &reset_value(alg), &d[0]);
            assert_eq!(
                hash::extend(alg, &once, &d[1]),
                hash::replay(alg, d.iter().map(|d| &d[..]))
            );
            hash::replay(alg, d.iter().map(|d| &d[..]))
        } else {
            reset_value(alg)
        };
        assert_eq!(tpm.read(15, alg).unwrap(), expected, "{alg}");
    }
    // Another PCR is untouched.
    assert_eq!(tpm.read(14, HashAlg::Sha256).unwrap(), vec![0; 32]);
}

#[test]
fn every_bank_of_a_four_bank_tpm_is_extended() {
    let swtpm = SwtpmProcess::provisioned("sha1,sha256,sha384,sha512");
    let mut tpm = swtpm.tpm();
    assert_eq!(tpm.active_banks().unwrap(), HashAlg::ALL);
    let digests: Vec<_> = HashAlg::ALL.iter().map(|&a| (a, a.digest(b"x"))).collect();
    tpm.extend(15, &digests).unwrap();
    for (alg, d) in &digests {
        assert_eq!(
            tpm.read(15, *alg).unwrap(),
            hash::replay(*alg, [d.as_slice()]),
            "{alg}"
        );
    }
}

#[test]
fn a_pcr_out_of_range_is_a_decoded_error() {
    let swtpm = SwtpmProcess::start();
    let mut tpm = swtpm.tpm();
    let device = format!("swtpm at {}", swtpm.data().display());

    let e = tpm.read(24, HashAlg::Sha256).unwrap_err();
    let code = e.response_code().expect("a TPM response code");
    assert_eq!(code.name(), Some("TPM_RC_VALUE"), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "TPM2_PCR_Read failed on {device}: TPM_RC_VALUE (value is out of range or is not \
             correct for the context) on parameter 1"
        )
    );

    let e = tpm
        .extend(24, &[(HashAlg::Sha256, vec![0; 32])])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "TPM2_PCR_Extend failed on {device}: TPM_RC_VALUE (value is out of range or is not \
             correct for the context) on handle 1"
        )
    );
    // The connection is still usable.
    assert_eq!(tpm.read(23, HashAlg::Sha256).unwrap(), vec![0; 32]);
}

#[test]
fn swtpm_setup_with_sha256_only_has_only_sha256() {
    let swtpm = SwtpmProcess::provisioned("sha256");
    let mut tpm = swtpm.tpm();
    assert_eq!(tpm.active_banks().unwrap(), [HashAlg::Sha256]);

    let e = tpm.read(15, HashAlg::Sha1).unwrap_err();
    assert!(matches!(e, TpmError::NotAllocated { .. }), "{e}");
    assert!(e.to_string().contains("the sha1 bank has no PCR 15"), "{e}");

    // A digest for an inactive bank is ignored; the active one is extended.
    let d256 = HashAlg::Sha256.digest(b"only");
    tpm.extend(
        15,
        &[
            (HashAlg::Sha1, HashAlg::Sha1.digest(b"only")),
            (HashAlg::Sha256, d256.clone()),
        ],
    )
    .unwrap();
    assert_eq!(
        tpm.read(15, HashAlg::Sha256).unwrap(),
        hash::replay(HashAlg::Sha256, [d256.as_slice()])
    );
}

#[test]
fn a_tpm_never_started_says_so() {
    // _TPM_Init is not needed, but no TPM2_Startup was sent.
    let swtpm = SwtpmProcess::start_in(tempfile::tempdir().unwrap(), "not-need-init");
    let mut tpm = swtpm.tpm();
    let e = tpm.active_banks().unwrap_err();
    assert_eq!(
        e.response_code().and_then(ResponseCode::name),
        Some("TPM_RC_INITIALIZE"),
        "{e}"
    );
    assert!(e.to_string().contains("never started"), "{e}");
}

/// PCR_Extend needs its authorization session even for PCR 15 (or 16, the
/// debug PCR): a PCR handle's authorization role is USER.
#[test]
fn pcr_extend_without_a_session_is_refused() {
    let swtpm = SwtpmProcess::start();
    let mut t = Swtpm::connect(&swtpm.data()).unwrap();
    let with_session = marshal::pcr_extend(15, &[(HashAlg::Sha256, &[7; 32])]).unwrap();
    // Drop the authorization area: authorizationSize and the 9-byte session.
    let mut bare = with_session[..14].to_vec();
    bare.extend_from_slice(&with_session[14 + 4 + 9..]);
    bare[..2].copy_from_slice(&TPM_ST_NO_SESSIONS.to_be_bytes());
    let size = bare.len() as u32;
    bare[2..6].copy_from_slice(&size.to_be_bytes());
    let resp = t.transact(&bare).unwrap();
    let code = marshal::response(&resp).unwrap().code;
    assert_eq!(code.name(), Some("TPM_RC_AUTH_MISSING"), "{code}");

    let resp = t.transact(&with_session).unwrap();
    assert!(marshal::response(&resp).unwrap().code.is_success());
    assert_eq!(TPM_RS_PW, 0x4000_0009);
}

#[test]
fn no_swtpm_socket_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = &dir.path().join("data");
    let e = Tpm::swtpm(path).err().unwrap();
    assert!(matches!(e, TpmError::Open { .. }), "{e}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}
