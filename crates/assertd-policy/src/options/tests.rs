#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::ceremonies::{Attachment, Ceremonies};
use crate::profile::{CertificationLevel, KeyRestrictions, PasskeyTypes};

fn registration<'a>(exclude: &'a [Descriptor<'a>]) -> Registration<'a> {
    Registration {
        rp_id: "example.com",
        rp_name: "Example",
        user_handle: b"user-1",
        user_name: "ada@example.com",
        user_display_name: "Ada",
        challenge: &[1, 2, 3],
        timeout_ms: 300_000,
        exclude,
    }
}

#[test]
fn the_built_in_profile_asks_for_a_passkey_without_attestation() {
    let transports = vec!["usb".to_owned(), "nfc".to_owned()];
    let exclude = [Descriptor { id: &[0xfb, 0xff], transports: &transports }, Descriptor { id: &[7], transports: &[] }];
    let o = creation(&Profile::default(), &registration(&exclude));
    assert_eq!(o["rp"], json!({ "id": "example.com", "name": "Example" }));
    assert_eq!(o["user"], json!({ "id": "dXNlci0x", "name": "ada@example.com", "displayName": "Ada" }));
    assert_eq!(o["challenge"], "AQID");
    let algs: Vec<i64> = o["pubKeyCredParams"].as_array().unwrap().iter().map(|p| p["alg"].as_i64().unwrap()).collect();
    assert_eq!(algs, [-8, -7, -35, -37, -257], "no legacy RS1 by default");
    assert!(o["pubKeyCredParams"].as_array().unwrap().iter().all(|p| p["type"] == "public-key"));
    assert_eq!(o["timeout"], 300_000);
    assert_eq!(
        o["excludeCredentials"],
        json!([{ "type": "public-key", "id": "-_8", "transports": ["usb", "nfc"] }, { "type": "public-key", "id": "Bw" }])
    );
    assert_eq!(
        o["authenticatorSelection"],
        json!({ "residentKey": "preferred", "requireResidentKey": false, "userVerification": "preferred" })
    );
    assert_eq!(o["attestation"], "none");
    assert_eq!(o["hints"], json!([]));
    assert_eq!(o["extensions"], json!({ "credProps": true }));
}

#[test]
fn a_profile_that_needs_the_model_asks_for_direct_attestation() {
    let enforced = Profile { attestation_enforcement: AttestationEnforcement::RegistrationOnly, ..Profile::default() };
    let allow_list = Profile {
        key_restrictions: Some(KeyRestrictions { enforcement_type: EnforcementType::Allow, aaguids: vec![[1; 16]] }),
        ..Profile::default()
    };
    let certified = Profile { minimum_certification: Some(CertificationLevel::L1), ..Profile::default() };
    for p in [&enforced, &allow_list, &certified] {
        assert_eq!(creation(p, &registration(&[]))["attestation"], "direct", "{p:?}");
    }
    // A block list needs no proof: an unattested AAGUID is refused anyway.
    let block_list = Profile {
        key_restrictions: Some(KeyRestrictions { enforcement_type: EnforcementType::Block, aaguids: vec![[1; 16]] }),
        ..Profile::default()
    };
    assert_eq!(creation(&block_list, &registration(&[]))["attestation"], "none");
    let enterprise = Profile { ceremonies: Ceremonies { enterprise_attestation: true, ..Ceremonies::default() }, ..enforced };
    assert_eq!(creation(&enterprise, &registration(&[]))["attestation"], "enterprise");
}

#[test]
fn legacy_algorithms_are_offered_last_and_only_where_allowed() {
    let legacy = Profile { allow_legacy_algorithms: true, ..Profile::default() };
    assert_eq!(algorithms(&legacy), [-8, -7, -35, -37, -257, -65535]);
    // Every algorithm offered is one the verifier verifies.
    for alg in algorithms(&legacy) {
        assert!(Algorithm::PREFERENCE.iter().any(|a| a.cose_id() == alg), "{alg}");
    }
}

#[test]
fn hints_attachment_and_resident_key_follow_the_profile() {
    let device_bound = Profile { passkey_types: PasskeyTypes { device_bound: true, synced: false }, ..Profile::default() };
    assert_eq!(creation(&device_bound, &registration(&[]))["hints"], json!(["security-key"]));
    assert_eq!(request(&device_bound, "example.com", &[1], 1000, &[])["hints"], json!(["security-key"]));
    let synced = Profile { passkey_types: PasskeyTypes { device_bound: false, synced: true }, ..Profile::default() };
    assert_eq!(creation(&synced, &registration(&[]))["hints"], json!([]));
    let qr = Profile {
        ceremonies: Ceremonies {
            hints: Some(vec![Hint::Hybrid]),
            resident_key: ResidentKey::Required,
            attachment: Some(Attachment::CrossPlatform),
            ..Ceremonies::default()
        },
        user_verification: UserVerification::Required,
        ..device_bound
    };
    let o = creation(&qr, &registration(&[]));
    assert_eq!(o["hints"], json!(["hybrid"]), "explicit hints win");
    assert_eq!(
        o["authenticatorSelection"],
        json!({ "residentKey": "required", "requireResidentKey": true, "userVerification": "required", "authenticatorAttachment": "cross-platform" })
    );
}

#[test]
fn request_options_list_the_allowed_credentials() {
    let t = vec!["internal".to_owned(), "hybrid".to_owned()];
    let allow = [Descriptor { id: b"cred", transports: &t }];
    let uv = Profile { user_verification: UserVerification::Required, ..Profile::default() };
    let o = request(&uv, "example.com", &[9; 4], 60_000, &allow);
    assert_eq!(
        o,
        json!({
            "challenge": "CQkJCQ",
            "timeout": 60_000,
            "rpId": "example.com",
            "allowCredentials": [{ "type": "public-key", "id": "Y3JlZA", "transports": ["internal", "hybrid"] }],
            "userVerification": "required",
            "hints": [],
        })
    );
    assert_eq!(request(&Profile::default(), "example.com", &[9], 1, &[])["allowCredentials"], json!([]), "discoverable: none listed");
}
