//! The JSON a browser's `PublicKeyCredential.toJSON()` gives (WebAuthn L3
//! §5.1), for responses the software authenticator made.

use crate::encoding::b64url;
use crate::{AssertionParts, RegistrationParts};

/// An `AuthenticationResponseJSON` for `parts` from credential `id`, with
/// `userHandle` when given.
pub fn authentication(id: &[u8], parts: &AssertionParts, user_handle: Option<&[u8]>) -> serde_json::Value {
    let mut response = serde_json::json!({
        "clientDataJSON": b64url(&parts.client_data_json),
        "authenticatorData": b64url(&parts.authenticator_data),
        "signature": b64url(&parts.signature),
    });
    if let Some(h) = user_handle {
        response["userHandle"] = b64url(h).into();
    }
    serde_json::json!({
        "id": b64url(id),
        "rawId": b64url(id),
        "response": response,
        "authenticatorAttachment": "cross-platform",
        "clientExtensionResults": {},
        "type": "public-key",
    })
}

/// A `RegistrationResponseJSON` for `parts` from credential `id`, with the
/// transports, `credProps.rk` and the attachment given.
pub fn registration(id: &[u8], parts: &RegistrationParts, transports: &[&str], rk: bool, attachment: &str) -> serde_json::Value {
    serde_json::json!({
        "id": b64url(id),
        "rawId": b64url(id),
        "response": {
            "clientDataJSON": b64url(&parts.client_data_json),
            "attestationObject": b64url(&parts.attestation_object),
            "transports": transports,
            "publicKeyAlgorithm": -7,
        },
        "authenticatorAttachment": attachment,
        "clientExtensionResults": { "credProps": { "rk": rk } },
        "type": "public-key",
    })
}
