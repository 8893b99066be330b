use super::*;
use assertd_testkit::vectors;

const MAX: usize = 64 * 1024;

/// The JSON `toJSON()` gives for an assertion vector.
fn assertion_json(v: &vectors::AssertionVector) -> serde_json::Value {
    serde_json::json!({
        "id": v.credential_id_b64url,
        "rawId": v.credential_id_b64url,
        "response": {
            "clientDataJSON": v.client_data_json_b64url,
            "authenticatorData": v.authenticator_data_b64url,
            "signature": v.signature_b64url,
            "userHandle": v.user_handle_b64url,
        },
        "authenticatorAttachment": "cross-platform",
        "clientExtensionResults": {},
        "type": "public-key",
    })
}

fn registration_json(v: &vectors::RegistrationVector) -> serde_json::Value {
    serde_json::json!({
        "id": v.credential_id_b64url.as_deref().unwrap_or("AQID"),
        "rawId": v.credential_id_b64url.as_deref().unwrap_or("AQID"),
        "response": {
            "clientDataJSON": v.client_data_json_b64url,
            "authenticatorData": "ignored copy",
            "transports": ["usb", "nfc"],
            "publicKeyAlgorithm": -7,
            "attestationObject": v.attestation_object_b64url,
        },
        "clientExtensionResults": {"credProps": {"rk": true}},
        "type": "public-key",
    })
}

fn parse(v: &serde_json::Value) -> Result<AuthenticationResponse, ResponseJsonError> {
    AuthenticationResponse::parse(&v.to_string(), MAX)
}

/// Every public assertion vector, as the browser would send it, unpacks to
/// exactly the bytes of the vector's separate fields.
#[test]
fn every_assertion_vector_unpacks_to_its_bytes() {
    let all = vectors::assertions();
    assert!(all.len() > 60);
    for v in &all {
        let r = parse(&assertion_json(v)).unwrap_or_else(|e| panic!("{}: {e}", v.id));
        assert_eq!(r.credential_id, vectors::AssertionVector::bytes(&v.credential_id_b64url), "{}", v.id);
        assert_eq!(r.client_data_json, vectors::AssertionVector::bytes(&v.client_data_json_b64url), "{}", v.id);
        assert_eq!(r.authenticator_data, vectors::AssertionVector::bytes(&v.authenticator_data_b64url), "{}", v.id);
        assert_eq!(r.signature, vectors::AssertionVector::bytes(&v.signature_b64url), "{}", v.id);
        let handle = v.user_handle_b64url.as_deref().map(vectors::AssertionVector::bytes).unwrap_or_default();
        assert_eq!(r.user_handle, handle, "{}", v.id);
        assert_eq!(r.attachment, Some(Attachment::CrossPlatform));
        assert!(!r.appid);
    }
}

#[test]
fn every_registration_vector_unpacks_to_its_bytes() {
    for v in &vectors::registrations() {
        let parsed = RegistrationResponse::parse(&registration_json(v).to_string(), 4 * MAX);
        if v.attestation_object_b64url.is_empty() {
            assert_eq!(parsed, Err(ResponseJsonError::Empty("response.attestationObject")), "{}", v.id);
            continue;
        }
        let r = parsed.unwrap_or_else(|e| panic!("{}: {e}", v.id));
        assert_eq!(r.client_data_json, vectors::AssertionVector::bytes(&v.client_data_json_b64url), "{}", v.id);
        assert_eq!(r.attestation_object, vectors::AssertionVector::bytes(&v.attestation_object_b64url), "{}", v.id);
        assert_eq!(r.transports, ["usb", "nfc"]);
        assert_eq!(r.discoverable, Some(true));
        assert_eq!(r.attachment, None);
    }
}

fn sample() -> serde_json::Value {
    assertion_json(&vectors::assertions()[0])
}

#[test]
fn a_member_given_twice_is_refused() {
    let text = sample().to_string();
    // A second rawId (and a second signature) after the first.
    let twice = text.replacen("\"rawId\":", "\"rawId\":\"AAAA\",\"rawId\":", 1);
    assert!(matches!(AuthenticationResponse::parse(&twice, MAX), Err(ResponseJsonError::Json { .. })), "{twice}");
    let twice = text.replacen("\"signature\":", "\"signature\":\"AAAA\",\"signature\":", 1);
    assert!(matches!(AuthenticationResponse::parse(&twice, MAX), Err(ResponseJsonError::Json { .. })));
}

#[test]
fn only_canonical_unpadded_base64url_is_read() {
    for bad in ["AQI=", "AQ+/", "AQ==", "AR", "A", "AQ I"] {
        let mut v = sample();
        v["response"]["signature"] = bad.into();
        assert_eq!(parse(&v), Err(ResponseJsonError::Base64 { member: "response.signature" }), "{bad}");
    }
    let mut v = sample();
    v["response"]["userHandle"] = "a=".into();
    assert_eq!(parse(&v), Err(ResponseJsonError::Base64 { member: "response.userHandle" }));
    let mut v = sample();
    v["response"]["authenticatorData"] = "".into();
    assert_eq!(parse(&v), Err(ResponseJsonError::Empty("response.authenticatorData")));
}

#[test]
fn id_and_raw_id_must_agree_and_type_must_be_public_key() {
    let mut v = sample();
    v["id"] = "AAAA".into();
    assert_eq!(parse(&v), Err(ResponseJsonError::IdMismatch));
    let mut v = sample();
    v["type"] = "password".into();
    assert_eq!(parse(&v), Err(ResponseJsonError::Type("password".into())));
}

#[test]
fn required_members_must_be_present_with_their_types() {
    for (path, member) in
        [("", "clientExtensionResults"), ("", "type"), ("", "id"), ("response", "signature"), ("response", "clientDataJSON")]
    {
        let mut v = sample();
        let obj = if path.is_empty() { &mut v } else { &mut v[path] };
        obj.as_object_mut().unwrap().remove(member);
        assert!(matches!(parse(&v), Err(ResponseJsonError::Json { .. })), "without {member}");
    }
    let mut v = sample();
    v["clientExtensionResults"] = serde_json::json!({"appid": "yes"});
    assert!(matches!(parse(&v), Err(ResponseJsonError::Json { .. })));
    assert!(matches!(AuthenticationResponse::parse("[]", MAX), Err(ResponseJsonError::Json { .. })));
    assert!(matches!(AuthenticationResponse::parse("{\"id\":", MAX), Err(ResponseJsonError::Json { .. })));
    let mut r = registration_json(&vectors::registrations()[0]);
    r["response"].as_object_mut().unwrap().remove("transports");
    assert!(matches!(RegistrationResponse::parse(&r.to_string(), MAX), Err(ResponseJsonError::Json { .. })));
}

#[test]
fn optional_members_and_later_additions() {
    let mut v = sample();
    v["response"]["userHandle"] = serde_json::Value::Null;
    v["authenticatorAttachment"] = "satellite".into();
    v["clientExtensionResults"] = serde_json::json!({"appid": true, "largeBlob": {"supported": true}});
    v["someLevel4Member"] = serde_json::json!([1, 2]);
    let r = parse(&v).unwrap();
    assert!(r.user_handle.is_empty());
    assert_eq!(r.attachment, None);
    assert!(r.appid);
    v["response"].as_object_mut().unwrap().remove("userHandle");
    v.as_object_mut().unwrap().remove("authenticatorAttachment");
    assert!(parse(&v).unwrap().user_handle.is_empty());
}

#[test]
fn the_cap_is_checked_before_parsing() {
    let text = sample().to_string();
    assert_eq!(
        AuthenticationResponse::parse(&text, text.len() - 1),
        Err(ResponseJsonError::TooLarge { len: text.len(), max: text.len() - 1 })
    );
    assert!(AuthenticationResponse::parse(&text, text.len()).is_ok());
    assert_eq!(max_json_len(3), 4 + 4096);
    assert_eq!(max_json_len(4), 8 + 4096);
}
