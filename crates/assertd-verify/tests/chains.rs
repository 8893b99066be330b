//! One chain check, as strict everywhere (issue 26 §2): chains whose leaf
//! marks certificatePolicies critical (as TPM AIK certificates do) are
//! refused by webpki; only TPM chains may then take the x509-parser path,
//! and that path enforces path length, keyUsage keyCertSign on CAs, key
//! sizes and SHA-2 signatures. The chains are made by
//! `tests/data/chains/generate.sh` (OpenSSL), valid until 2099.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assertd_verify::attestation::Anchor;
use assertd_verify::attestation::cert::{Fallback, verify_chain};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

fn der(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/chains/{name}.pem", env!("CARGO_MANIFEST_DIR"));
    CertificateDer::from_pem_file(&path).unwrap_or_else(|e| panic!("{path}: {e}")).to_vec()
}

/// 2027-01-01, inside every certificate's validity.
const NOW: u64 = 1_798_761_600;

fn check(names: &[&str], fallback: Fallback) -> Result<usize, String> {
    let chain: Vec<Vec<u8>> = names.iter().map(|n| der(n)).collect();
    let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let root = Anchor::from_der(&der("root")).unwrap();
    verify_chain(&refs, &[&root], NOW, 0, fallback).map_err(|e| e.to_string())
}

#[test]
fn the_tpm_path_accepts_a_sound_chain_and_only_for_tpm() {
    assert_eq!(check(&["good-leaf", "good-ca"], Fallback::TpmAik), Ok(0));
    // Any other format: webpki decides, and it refuses the critical
    // extension (before: the fallback validated it for every format).
    let e = check(&["good-leaf", "good-ca"], Fallback::Never).unwrap_err();
    assert!(e.contains("UnsupportedCriticalExtension"), "{e}");
}

#[test]
fn the_tpm_path_is_as_strict_as_webpki() {
    for (what, chain, want) in [
        ("a CA under a path length of 0", &["pl-leaf", "pl-ca1", "pl-ca0"][..], "allows 0 CA certificates under it"),
        ("a CA without key usage", &["noku-leaf", "noku-ca"][..], "lacks the key usage keyCertSign"),
        ("an RSA-1024 CA", &["rsa-leaf", "rsa-ca"][..], "RSA key of 1024 bits"),
        ("a SHA-1 signed leaf", &["sha1-leaf", "good-ca"][..], "not a SHA-2"),
        ("all of these at once", &["all-leaf", "all-ca1", "pl-ca0"][..], "not a SHA-2"),
    ] {
        let e = check(chain, Fallback::TpmAik).expect_err(what);
        assert!(e.contains(want), "{what}: {e}");
        let e = check(chain, Fallback::Never).expect_err(what);
        assert!(e.contains("UnsupportedCriticalExtension"), "{what}: {e}");
    }
}
