//! What a ceremony asks the browser for, from a profile: the WebAuthn L3
//! `PublicKeyCredentialCreationOptionsJSON` and
//! `PublicKeyCredentialRequestOptionsJSON` ("Deserialize Registration /
//! Authentication ceremony options" in `index.bs` at w3c/webauthn
//! `146d0db0`), so the gateway relays options instead of re-deriving the
//! profile's rules. Pure: the caller passes the challenge it issued, the
//! user's credentials and the relying party.

use crate::ceremonies::{Hint, ResidentKey};
use crate::profile::{AttestationEnforcement, EnforcementType, Profile, UserVerification};
use assertd_verify::Algorithm;
use serde_json::{Value, json};

/// One credential in `excludeCredentials` / `allowCredentials`.
#[derive(Debug, Clone, Copy)]
pub struct Descriptor<'a> {
    /// The credential id.
    pub id: &'a [u8],
    /// Its transports, as registered.
    pub transports: &'a [String],
}

/// What registration options are for.
#[derive(Debug, Clone, Copy)]
pub struct Registration<'a> {
    /// The relying party's id.
    pub rp_id: &'a str,
    /// Its name, as shown to the user.
    pub rp_name: &'a str,
    /// `user.id`.
    pub user_handle: &'a [u8],
    /// `user.name`.
    pub user_name: &'a str,
    /// `user.displayName`.
    pub user_display_name: &'a str,
    /// The challenge the server issued.
    pub challenge: &'a [u8],
    /// `timeout`, in milliseconds.
    pub timeout_ms: u64,
    /// The user's credentials already stored.
    pub exclude: &'a [Descriptor<'a>],
}

/// The COSE algorithms a profile accepts, in the order assertd prefers them
/// (`Algorithm::PREFERENCE`): legacy ones only where the profile allows
/// them.
pub fn algorithms(profile: &Profile) -> Vec<i64> {
    Algorithm::PREFERENCE.into_iter().filter(|a| profile.allow_legacy_algorithms || !a.is_legacy()).map(Algorithm::cose_id).collect()
}

/// `attestation`: `direct` when the profile needs a verified attestation
/// (enforcement, an AAGUID allow list, a minimum certification: each needs
/// the authenticator to prove its model), `enterprise` where configured,
/// else `none`.
pub fn attestation(profile: &Profile) -> &'static str {
    let needs_model = profile.attestation_enforcement != AttestationEnforcement::Disabled
        || profile.key_restrictions.as_ref().is_some_and(|k| k.enforcement_type == EnforcementType::Allow)
        || profile.minimum_certification.is_some();
    match (profile.ceremonies.enterprise_attestation, needs_model) {
        (true, _) => "enterprise",
        (false, true) => "direct",
        (false, false) => "none",
    }
}

/// `hints`: the profile's, or derived: a profile that accepts device-bound
/// passkeys only asks for security keys.
pub fn hints(profile: &Profile) -> Vec<&'static str> {
    match &profile.ceremonies.hints {
        Some(h) => h.iter().map(|h| h.as_str()).collect(),
        None if profile.passkey_types.device_bound && !profile.passkey_types.synced => vec![Hint::SecurityKey.as_str()],
        None => Vec::new(),
    }
}

fn user_verification(profile: &Profile) -> &'static str {
    match profile.user_verification {
        UserVerification::Required => "required",
        UserVerification::Preferred => "preferred",
        UserVerification::Discouraged => "discouraged",
    }
}

/// base64url without padding, as the options JSON spells bytes.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn descriptors(list: &[Descriptor<'_>]) -> Vec<Value> {
    list.iter()
        .map(|d| {
            let mut v = json!({ "type": "public-key", "id": b64url(d.id) });
            if !d.transports.is_empty() {
                v["transports"] = json!(d.transports);
            }
            v
        })
        .collect()
}

/// A `PublicKeyCredentialCreationOptionsJSON` for `r` under `profile`.
pub fn creation(profile: &Profile, r: &Registration<'_>) -> Value {
    let mut selection = json!({
        "residentKey": profile.ceremonies.resident_key.as_str(),
        "requireResidentKey": profile.ceremonies.resident_key == ResidentKey::Required,
        "userVerification": user_verification(profile),
    });
    if let Some(a) = profile.ceremonies.attachment {
        selection["authenticatorAttachment"] = json!(a.as_str());
    }
    json!({
        "rp": { "id": r.rp_id, "name": r.rp_name },
        "user": { "id": b64url(r.user_handle), "name": r.user_name, "displayName": r.user_display_name },
        "challenge": b64url(r.challenge),
        "pubKeyCredParams": algorithms(profile).into_iter().map(|alg| json!({ "type": "public-key", "alg": alg })).collect::<Vec<_>>(),
        "timeout": r.timeout_ms,
        "excludeCredentials": descriptors(r.exclude),
        "authenticatorSelection": selection,
        "hints": hints(profile),
        "attestation": attestation(profile),
        "extensions": { "credProps": true },
    })
}

/// A `PublicKeyCredentialRequestOptionsJSON` under `profile`: `allow` empty
/// for a discoverable (or conditional-UI) sign-in.
pub fn request(profile: &Profile, rp_id: &str, challenge: &[u8], timeout_ms: u64, allow: &[Descriptor<'_>]) -> Value {
    json!({
        "challenge": b64url(challenge),
        "timeout": timeout_ms,
        "rpId": rp_id,
        "allowCredentials": descriptors(allow),
        "userVerification": user_verification(profile),
        "hints": hints(profile),
    })
}

/// `UnknownCredentialOptions` (WebAuthn L3 §5.1.10.2): what the page passes
/// to `PublicKeyCredential.signalUnknownCredential()` after a sign-in named
/// a credential the relying party does not have.
pub fn unknown_credential(rp_id: &str, credential_id: &[u8]) -> Value {
    json!({ "rpId": rp_id, "credentialId": b64url(credential_id) })
}

/// `AllAcceptedCredentialsOptions` (WebAuthn L3 §5.1.10.3): every credential
/// the user may sign in with, for `signalAllAcceptedCredentials()`.
pub fn all_accepted_credentials(rp_id: &str, user_handle: &[u8], ids: &[&[u8]]) -> Value {
    json!({
        "rpId": rp_id,
        "userId": b64url(user_handle),
        "allAcceptedCredentialIds": ids.iter().map(|id| b64url(id)).collect::<Vec<_>>(),
    })
}

/// `CurrentUserDetailsOptions` (WebAuthn L3 §5.1.10.4), for
/// `signalCurrentUserDetails()`.
pub fn current_user_details(rp_id: &str, user_handle: &[u8], name: &str, display_name: &str) -> Value {
    json!({ "rpId": rp_id, "userId": b64url(user_handle), "name": name, "displayName": display_name })
}

#[cfg(test)]
mod tests;
