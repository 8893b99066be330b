//! The browser's JSON in (`Assertion.response_json`,
//! `RegisterCredentialRequest.response_json`): unpacked into the byte
//! fields before any other check, so everything after reads one form.
//! Parsing is `assertd_verify::response`'s; this module caps the text by
//! the limits of the fields it stands for and refuses requests that give
//! both forms, or disagree.

use super::item::{AssertionRequest, RegistrationRequest};
use crate::config::Limits;
use assertd_verify::{AuthenticationResponse, RegistrationResponse, response::max_json_len};

/// The longest `Assertion.response_json`: the base64url size of the byte
/// fields it stands for, at their limits, plus 4 KiB.
pub fn max_assertion_json(limits: &Limits) -> usize {
    max_json_len(
        limits.max_client_data_json_bytes
            + limits.max_authenticator_data_bytes
            + limits.max_signature_bytes
            + assertd_store::MAX_USER_HANDLE_LEN
            + assertd_store::MAX_CREDENTIAL_ID_LEN,
    )
}

/// The longest `RegisterCredentialRequest.response_json`.
pub fn max_registration_json(limits: &Limits) -> usize {
    max_json_len(
        limits.max_client_data_json_bytes + assertd_verify::attestation::MAX_ATTESTATION_OBJECT + assertd_store::MAX_CREDENTIAL_ID_LEN,
    )
}

/// Replaces `r`'s byte fields with what its `response_json` carries (no-op
/// without one). Errors say why the request is invalid.
pub fn assertion(r: &mut AssertionRequest, limits: &Limits) -> Result<(), String> {
    if r.response_json.is_empty() {
        return Ok(());
    }
    if !(r.client_data_json.is_empty() && r.authenticator_data.is_empty() && r.signature.is_empty() && r.user_handle.is_empty()) {
        return Err("response_json and the separate response fields (client_data_json, authenticator_data, signature, user_handle) are both set: send one form".into());
    }
    let json = std::mem::take(&mut r.response_json);
    let p = AuthenticationResponse::parse(&json, max_assertion_json(limits)).map_err(|e| e.to_string())?;
    if !r.credential_id.is_empty() && r.credential_id != p.credential_id {
        return Err("credential_id differs from response_json's rawId".into());
    }
    if r.appid_used && !p.appid {
        return Err("appid_used is set but response_json's clientExtensionResults.appid is not true".into());
    }
    r.credential_id = p.credential_id;
    r.client_data_json = p.client_data_json;
    r.authenticator_data = p.authenticator_data;
    r.signature = p.signature;
    r.user_handle = p.user_handle;
    r.appid_used = p.appid;
    Ok(())
}

/// Replaces `r`'s byte fields with what its `response_json` carries, and
/// keeps what only the JSON says (credProps.rk, the attachment, rawId).
pub fn registration(r: &mut RegistrationRequest, limits: &Limits) -> Result<(), String> {
    if r.response_json.is_empty() {
        return Ok(());
    }
    if !(r.client_data_json.is_empty() && r.attestation_object.is_empty()) {
        return Err("response_json and client_data_json / attestation_object are both set: send one form".into());
    }
    let json = std::mem::take(&mut r.response_json);
    let p = RegistrationResponse::parse(&json, max_registration_json(limits)).map_err(|e| e.to_string())?;
    if !r.transports.is_empty() && r.transports != p.transports {
        return Err("transports differ from response_json's response.transports".into());
    }
    r.client_data_json = p.client_data_json;
    r.attestation_object = p.attestation_object;
    r.transports = p.transports;
    r.discoverable = p.discoverable;
    r.attachment = p.attachment;
    r.raw_id = Some(p.credential_id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The caps docs/api.md states, at the default limits.
    #[test]
    fn the_documented_caps() {
        let limits = Limits::default();
        assert_eq!(max_assertion_json(&limits), 51_968);
        assert_eq!(max_registration_json(&limits), 114_688);
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md")).unwrap();
        assert!(doc.contains("51 968 bytes") && doc.contains("114 688 bytes"));
    }
}
