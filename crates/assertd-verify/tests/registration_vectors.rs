//! The 161 public registration vectors (`shared/vectors/registrations.json`)
//! through §7.1: each gives the outcome its source expects, and the
//! verifier must reach it with the matching reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assertd_testkit::vectors::{RegistrationVector, registrations};
use assertd_verify::attestation::{Anchor, AttestationObject, TrustAnchors};
use assertd_verify::{Challenge, ReasonCode, Registration, RegistrationInput, RelyingParty, TrustInput, verify_registration};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Unix seconds of an RFC 3339 UTC time ("2025-01-30T23:59:59.000Z").
fn unix(t: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| t[r].parse::<u64>().unwrap();
    assertd_verify::metadata::date_unix(&t[..10]).unwrap() + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// When a vector is judged: the source's faked clock; else an hour after
/// the attestation certificate was issued (the ceremony's time, so that
/// short-lived certificates such as Apple's do not rot the test); else the
/// day the vectors were checked.
fn when(v: &RegistrationVector) -> u64 {
    if let Some(t) = &v.verification_time {
        return unix(t);
    }
    let object = assertd_testkit::from_b64url(&v.attestation_object_b64url).unwrap();
    let issued = AttestationObject::parse(&object).ok().and_then(|o| {
        let stmt = o.att_stmt.iter().find(|(k, _)| k.as_text() == Some("x5c")).map(|(_, v)| v.clone())?;
        let leaf = stmt.as_array()?.first()?.as_bytes()?.clone();
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf).ok()?;
        u64::try_from(cert.validity().not_before.timestamp()).ok()
    });
    issued.map_or_else(|| unix("2026-11-30T00:00:00Z"), |t| t + 3600)
}

fn anchors(v: &RegistrationVector) -> TrustAnchors {
    let mut t = TrustAnchors::default();
    for pem in v.trust_anchors_pem.iter().flatten() {
        for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let der = der.unwrap();
            t.add(v.fmt.as_deref().unwrap_or(""), Anchor::from_der(&der).unwrap());
        }
    }
    t
}

fn run(v: &RegistrationVector) -> Registration {
    run_with(v, false)
}

fn run_with(v: &RegistrationVector, insecure_allow_sha1: bool) -> Registration {
    let rp =
        RelyingParty::new(v.rp_id.clone(), v.expected_origin.iter().cloned().collect(), v.allow_subdomain_origin.unwrap_or(false), None);
    let anchors = anchors(v);
    let client_data = assertd_testkit::from_b64url(&v.client_data_json_b64url).unwrap();
    let object = assertd_testkit::from_b64url(&v.attestation_object_b64url).unwrap();
    let challenge = v.expected_challenge();
    let input = RegistrationInput {
        client_data_json: &client_data,
        attestation_object: &object,
        user_handle: b"user",
        challenge: Challenge::Expected(&challenge),
    };
    let trust = TrustInput { anchors: &anchors, metadata: None, now: when(v), skew: 0, insecure_allow_sha1 };
    verify_registration(&rp, &input, &trust)
}

fn codes(r: &Registration) -> Vec<ReasonCode> {
    r.failures.iter().map(|f| f.code).collect()
}

/// Credential algorithms the sources accept and assertd does not verify
/// (ES512, Ed448, RS384, RS512, PS384, ML-DSA): `UNSUPPORTED_ALGORITHM`.
const UNSUPPORTED_ALGS: [&str; 8] = ["ES512", "Ed448", "RS384", "RS512", "PS384", "ML-DSA-44", "ML-DSA-65", "ML-DSA-87"];
/// Formats not verified yet: `ATTESTATION_FORMAT_UNSUPPORTED`.
const LATER_FORMATS: [&str; 1] = ["android-safetynet"];

#[test]
fn every_vector_reaches_its_sources_outcome() {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for v in registrations() {
        let r = run(&v);
        let got = codes(&r);
        let trusted = r.attestation.as_ref().is_some_and(|a| a.trusted);
        let anchored = v.trust_anchors_pem.as_ref().is_some_and(|p| !p.is_empty()) && v.x5c_len.unwrap_or(0) > 0;
        let fmt = v.fmt.as_deref().unwrap_or("");
        let alg = v.credential_alg_name.as_deref().unwrap_or("");
        let ctx = format!(
            "{}: expect {}, got {got:?} trusted={trusted} ({:?}; {:?})",
            v.id,
            v.expect,
            r.failures.first().map(|f| &f.message),
            r.attestation.as_ref().and_then(|a| a.untrusted_because.as_deref())
        );
        let outcome = if UNSUPPORTED_ALGS.contains(&alg) {
            assert_eq!(got, vec![ReasonCode::UnsupportedAlgorithm], "{ctx}");
            "unsupported algorithm"
        } else if LATER_FORMATS.contains(&fmt) {
            assert_eq!(got, vec![ReasonCode::AttestationFormatUnsupported], "{ctx}");
            "format not verified yet"
        } else {
            match v.expect.as_str() {
                // alg_not_requested: the RP's pubKeyCredParams are not part
                // of RegisterCredential (the profile decides algorithms).
                // token_binding_status_invalid: L3 §5.8.1 reserves
                // tokenBinding and no longer defines its statuses.
                "valid" | "alg_not_requested" | "token_binding_status_invalid" => {
                    assert_eq!(got, vec![], "{ctx}");
                    // The W3C fido-u2f vector has a non-zero AAGUID, which
                    // U2F's signature does not cover: never trusted.
                    let vouched = v.id != "w3c-reg-fido-u2f-es256";
                    // SHA-1 statement signatures (older Windows Hello TPMs)
                    // are trusted only when the operator allows them.
                    let sha1 = v.att_stmt_alg == Some(-65535);
                    // assertd rule: a TPM key is trusted only when pubArea
                    // says it cannot leave the TPM; the W3C TPM vector's
                    // objectAttributes (0x00040000: sign only) do not.
                    let exportable = v.id == "w3c-reg-tpm-es256";
                    assert_eq!(trusted, anchored && vouched && !sha1 && !exportable, "{ctx}: the source's roots make it trusted");
                    if sha1 && anchored {
                        assert!(
                            run_with(&v, true).attestation.is_some_and(|a| a.trusted),
                            "{ctx}: trusted with insecure_allow_sha1_attestation"
                        );
                    }
                    if trusted { "valid, trusted" } else { "valid" }
                }
                "challenge_mismatch" => {
                    assert_eq!(got, vec![ReasonCode::ChallengeMismatch], "{ctx}");
                    "denied"
                }
                "origin_mismatch" => {
                    assert_eq!(got, vec![ReasonCode::OriginNotAllowed], "{ctx}");
                    "denied"
                }
                "rp_id_mismatch" => {
                    assert_eq!(got, vec![ReasonCode::RpIdMismatch], "{ctx}");
                    "denied"
                }
                // Both are solokey responses with bytes after the key:
                // refused as authenticator data before the statement.
                "malformed_authdata" | "malformed_cose_key" | "attestation_signature_invalid" => {
                    assert_eq!(got, vec![ReasonCode::MalformedAuthenticatorData], "{ctx}");
                    "denied"
                }
                "malformed_cbor" => {
                    assert!(got.contains(&ReasonCode::AttestationInvalid), "{ctx}");
                    "denied"
                }
                "aaguid_extension_mismatch" | "apple_nonce_mismatch" | "android_key_authorization_list_invalid" => {
                    assert_eq!(got, vec![ReasonCode::AttestationInvalid], "{ctx}");
                    "denied"
                }
                // webpki-rs refuses SHA-1 statement signatures by policy:
                // assertd verifies them and does not trust them.
                "insecure_cryptography" => {
                    assert!(got.is_empty() && !trusted, "{ctx}");
                    "untrusted"
                }
                "chain_invalid" => {
                    assert!(got.is_empty() && !trusted, "{ctx}");
                    "untrusted"
                }
                // Policy's: the verifier reports, the profile refuses.
                "cross_origin_not_allowed" => {
                    assert!(got.is_empty() && r.cross_origin.is_some(), "{ctx}");
                    "cross-origin reported"
                }
                other => panic!("{}: no rule for expect {other:?}: {ctx}", v.id),
            }
        };
        *seen.entry(outcome.to_owned()).or_default() += 1;
    }
    eprintln!("{seen:#?}");
    assert_eq!(seen.values().sum::<usize>(), 161);
}

/// A vector with its attestation object changed by `edit` (re-encoded).
fn tampered(id: &str, edit: impl FnOnce(&mut AttestationObject)) -> RegistrationVector {
    use base64::Engine;
    let mut v = registrations().into_iter().find(|v| v.id == id).unwrap();
    let bytes = assertd_testkit::from_b64url(&v.attestation_object_b64url).unwrap();
    let mut o = AttestationObject::parse(&bytes).unwrap();
    edit(&mut o);
    let value = ciborium::Value::Map(vec![
        (ciborium::Value::Text("fmt".into()), ciborium::Value::Text(o.fmt.clone())),
        (ciborium::Value::Text("attStmt".into()), ciborium::Value::Map(o.att_stmt.clone())),
        (ciborium::Value::Text("authData".into()), ciborium::Value::Bytes(o.auth_data.clone())),
    ]);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&value, &mut out).unwrap();
    v.attestation_object_b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out);
    v
}

/// The statement's byte string under `key`, for editing.
fn stmt_bytes<'o>(o: &'o mut AttestationObject, key: &str) -> &'o mut Vec<u8> {
    o.att_stmt.iter_mut().find(|(k, _)| k.as_text() == Some(key)).and_then(|(_, v)| v.as_bytes_mut()).unwrap()
}

/// The leaf certificate in the statement's x5c.
fn leaf(o: &mut AttestationObject) -> &mut Vec<u8> {
    o.att_stmt
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some("x5c"))
        .and_then(|(_, v)| v.as_array_mut())
        .and_then(|a| a.first_mut())
        .and_then(|c| c.as_bytes_mut())
        .unwrap()
}

fn flip_last(b: &mut [u8]) {
    let n = b.len() - 1;
    b[n] ^= 0x01;
}

/// The W3C vectors (one per verified format, with the W3C CA as root):
/// every one verifies, and each tampered copy is refused with its reason.
#[test]
fn tampered_copies_are_refused_with_their_reason() {
    let formats = [
        ("w3c-reg-packed-es256", true, true),
        ("kanidm-fido-u2f-registration_yk", true, true),
        ("w3c-reg-apple-es256", true, false),
        ("w3c-reg-packed-self-es256", false, true),
        ("pyw-verify-attestation-android-key-hardware-authority", true, true),
        ("w3c-reg-tpm-es256", true, true),
    ];
    for (id, chain, signed) in formats {
        let clean = run(&tampered(id, |_| {}));
        assert_eq!(codes(&clean), vec![], "{id} re-encoded still verifies");
        // The W3C TPM key can leave its TPM (objectAttributes): verified,
        // not trusted (assertd rule).
        assert_eq!(clean.attestation.as_ref().unwrap().trusted, chain && id != "w3c-reg-tpm-es256", "{id}");

        // The statement signature (apple has none: its nonce binds instead).
        if signed {
            let r = run(&tampered(id, |o| flip_last(stmt_bytes(o, "sig"))));
            assert_eq!(codes(&r), vec![ReasonCode::AttestationInvalid], "{id}: signature");
        }
        if chain {
            // The attestation certificate's own signature: it no longer
            // chains to the root, so the attestation is not trusted.
            let r = run(&tampered(id, |o| flip_last(leaf(o))));
            assert!(codes(&r).is_empty() && !r.attestation.as_ref().unwrap().trusted, "{id}: certificate: {:?}", r.failures);
            // Another certificate in its place (the root): refused.
            let root = anchors(&tampered(id, |_| {})).for_format("x", &[0; 16]).len();
            assert_eq!(root, 0);
            let r = run(&tampered(id, |o| {
                let v = registrations().into_iter().find(|v| v.id == id).unwrap();
                let pem = v.trust_anchors_pem.unwrap().remove(0);
                *leaf(o) = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec();
            }));
            assert_eq!(codes(&r), vec![ReasonCode::AttestationInvalid], "{id}: swapped certificate");
        }
        // The AAGUID (authData bytes 37..53): signed over, or bound by the
        // certificate's extension or nonce; fido-u2f signs no AAGUID, so
        // none of its attestations is trusted with one.
        let r = run(&tampered(id, |o| o.auth_data[40] ^= 0x01));
        if id.contains("fido-u2f") {
            assert!(codes(&r).is_empty() && !r.attestation.as_ref().unwrap().trusted, "{id}: AAGUID");
        } else {
            assert_eq!(codes(&r), vec![ReasonCode::AttestationInvalid], "{id}: AAGUID");
        }
        // The rpIdHash: refused as such, and the statement no longer verifies.
        let r = run(&tampered(id, |o| o.auth_data[0] ^= 0x01));
        assert_eq!(codes(&r), vec![ReasonCode::RpIdMismatch, ReasonCode::AttestationInvalid], "{id}: rpIdHash");
        // The challenge.
        let mut v = tampered(id, |_| {});
        v.expected_challenge_b64url = "AAAAAAAAAAAAAAAAAAAAAA".into();
        assert_eq!(codes(&run(&v)), vec![ReasonCode::ChallengeMismatch], "{id}: challenge");
    }
    // none: any statement content is refused.
    let r =
        run(&tampered("w3c-reg-none-es256", |o| o.att_stmt.push((ciborium::Value::Text("sig".into()), ciborium::Value::Bytes(vec![1])))));
    assert_eq!(codes(&r), vec![ReasonCode::AttestationInvalid]);
    // An unknown format.
    let r = run(&tampered("w3c-reg-none-es256", |o| o.fmt = "x-custom".into()));
    assert_eq!(codes(&r), vec![ReasonCode::AttestationFormatUnsupported]);
}

#[test]
fn malformed_attestation_objects_are_refused() {
    let v = registrations().into_iter().find(|v| v.id == "w3c-reg-none-es256").unwrap();
    let good = assertd_testkit::from_b64url(&v.attestation_object_b64url).unwrap();
    let check = |bytes: Vec<u8>, what: &str| {
        let err = AttestationObject::parse(&bytes).unwrap_err();
        assert!(err.to_string().contains(what), "{err:?} lacks {what:?}");
    };
    let mut trailing = good.clone();
    trailing.push(0);
    check(trailing, "trailing");
    check(good[..good.len() - 1].to_vec(), "not CBOR");
    check(vec![0x80], "not a CBOR map");
    // A byte string claiming 2^63 bytes: refused without allocating.
    check(vec![0xa1, 0x63, b'f', b'm', b't', 0x5b, 0x80, 0, 0, 0, 0, 0, 0, 0], "not CBOR");
    // Nesting deeper than the bound.
    let mut deep = vec![0xa1, 0x63, b'f', b'm', b't'];
    deep.extend(std::iter::repeat_n(0x81, 64));
    deep.push(0x00);
    check(deep, "not CBOR");
    check(vec![0; assertd_verify::attestation::MAX_ATTESTATION_OBJECT + 1], "over");
    // Duplicate and unexpected keys.
    let dup = [0xa2, 0x63, b'f', b'm', b't', 0x64, b'n', b'o', b'n', b'e', 0x63, b'f', b'm', b't', 0x64, b'n', b'o', b'n', b'e'];
    check(dup.to_vec(), "twice");
    let extra = [0xa1, 0x61, b'x', 0x00];
    check(extra.to_vec(), "unexpected key");
}
