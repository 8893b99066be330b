//! Stage 1: the checks made on an assertion's fields before anything is
//! looked up. Sizes are capped before anything parses them, and a caller
//! learns nothing about relying parties outside its grant.

use super::item::{AssertionRequest, deny};
use crate::authz::Grant;
use crate::config::{Limits, Reloadable, RpEntry};
use assertd_policy::{Profile, ReasonCode, Verdict};
use assertd_verify::truncate;
use std::sync::Arc;

/// Most credential ids a gateway may list in `allowed_credential_ids`.
pub const MAX_ALLOWED_CREDENTIALS: usize = 256;

/// The relying party and profile `r` is judged under, or why it is refused
/// before any lookup (`INVALID_REQUEST`, `RP_NOT_AUTHORIZED`, `RP_UNKNOWN`,
/// `PROFILE_UNKNOWN`, `PROFILE_NOT_AUTHORIZED`, `CREDENTIAL_NOT_ALLOWED`).
///
/// A `response_json` is unpacked here, after the grant check and before
/// any other: every later check reads the byte fields.
pub fn target(
    policy: &Reloadable,
    grant: &Grant,
    limits: &Limits,
    r: &mut AssertionRequest,
) -> Result<(Arc<RpEntry>, Arc<Profile>), Verdict> {
    let too_big =
        |name: &str, len: usize, max: usize| deny(ReasonCode::InvalidRequest, format!("{name} is {len} bytes, over the limit of {max}"));
    if r.rp_id.is_empty() {
        return Err(deny(ReasonCode::InvalidRequest, "rp_id is empty"));
    }
    // Before anything else about the RP: a caller learns nothing about
    // relying parties (configured or not) outside its grant.
    if !grant.rps.allows(&r.rp_id) {
        return Err(deny(ReasonCode::RpNotAuthorized, format!("this caller may not verify for relying party {:?}", truncate(&r.rp_id))));
    }
    super::unpack::assertion(r, limits).map_err(|m| deny(ReasonCode::InvalidRequest, m))?;
    if r.credential_id.is_empty() {
        return Err(deny(ReasonCode::InvalidRequest, "credential_id is empty"));
    }
    if r.credential_id.len() > assertd_store::MAX_CREDENTIAL_ID_LEN {
        return Err(too_big("credential_id", r.credential_id.len(), assertd_store::MAX_CREDENTIAL_ID_LEN));
    }
    if r.server_issued_challenge {
        if !r.expected_challenge.is_empty() {
            return Err(deny(ReasonCode::InvalidRequest, "expected_challenge must be empty when server_issued_challenge is set"));
        }
        if policy.challenges.is_none() {
            return Err(deny(ReasonCode::InvalidRequest, "this server issues no challenges: [challenges] has no keys"));
        }
    } else if r.expected_challenge.is_empty() {
        return Err(deny(ReasonCode::InvalidRequest, "expected_challenge is empty (or set server_issued_challenge)"));
    }
    for (name, len, max) in [
        ("expected_challenge", r.expected_challenge.len(), limits.max_challenge_bytes),
        ("client_data_json", r.client_data_json.len(), limits.max_client_data_json_bytes),
        ("authenticator_data", r.authenticator_data.len(), limits.max_authenticator_data_bytes),
        ("signature", r.signature.len(), limits.max_signature_bytes),
        ("user_handle", r.user_handle.len(), assertd_store::MAX_USER_HANDLE_LEN),
        ("expected_user_handle", r.expected_user_handle.len(), assertd_store::MAX_USER_HANDLE_LEN),
    ] {
        if len > max {
            return Err(too_big(name, len, max));
        }
    }
    if r.allowed_credential_ids.len() > MAX_ALLOWED_CREDENTIALS {
        return Err(deny(
            ReasonCode::InvalidRequest,
            format!("allowed_credential_ids lists {} ids, over the limit of {MAX_ALLOWED_CREDENTIALS}", r.allowed_credential_ids.len()),
        ));
    }
    if let Some(id) = r.allowed_credential_ids.iter().find(|id| id.is_empty() || id.len() > assertd_store::MAX_CREDENTIAL_ID_LEN) {
        return Err(deny(
            ReasonCode::InvalidRequest,
            format!("allowed_credential_ids holds an id of {} bytes (1 to {} allowed)", id.len(), assertd_store::MAX_CREDENTIAL_ID_LEN),
        ));
    }
    let (rp, profile) = profile_for(policy, grant, &r.rp_id, &r.profile).map_err(|(code, m)| deny(code, m))?;
    // §7.2 step 5 (allowCredentials): "If options.allowCredentials is not empty, verify that
    // credential.id identifies one of the public key credentials listed in
    // options.allowCredentials." Before the lookup: no store read for a
    // credential the gateway did not offer.
    if !r.allowed_credential_ids.is_empty() && !r.allowed_credential_ids.contains(&r.credential_id) {
        return Err(deny(ReasonCode::CredentialNotAllowed, "the credential is not one the gateway offered (allowed_credential_ids)"));
    }
    Ok((rp, profile))
}

/// The relying party and the profile a ceremony for `rp_id` naming
/// `profile` (empty: the RP's default) is judged under: `RP_UNKNOWN`,
/// `PROFILE_UNKNOWN`, or `PROFILE_NOT_AUTHORIZED` when the caller may not
/// pick that profile for that RP.
pub fn profile_for(
    policy: &Reloadable,
    grant: &Grant,
    rp_id: &str,
    profile: &str,
) -> Result<(Arc<RpEntry>, Arc<Profile>), (ReasonCode, String)> {
    let rp =
        policy.rps.get(rp_id).ok_or_else(|| (ReasonCode::RpUnknown, format!("relying party {:?} is not configured", truncate(rp_id))))?;
    if profile.is_empty() || profile == rp.default_profile_name {
        return Ok((rp.clone(), rp.default_profile.clone()));
    }
    let named = policy
        .profiles
        .get(profile)
        .cloned()
        .ok_or_else(|| (ReasonCode::ProfileUnknown, format!("profile {:?} is not configured", truncate(profile))))?;
    // assertd rule: a caller names only the profiles it was granted, and
    // only those the RP lists (none unless listed), so it cannot pick a
    // laxer one.
    let rp_allows = rp.allowed_profiles.as_ref().is_some_and(|p| p.contains(profile));
    let caller_may = grant.profiles.as_ref().is_none_or(|p| p.contains(profile));
    if !(rp_allows && caller_may) {
        let whose = if rp_allows { "this caller's grant" } else { "this relying party's allowed_profiles" };
        return Err((ReasonCode::ProfileNotAuthorized, format!("profile {:?} is not in {whose}", truncate(profile))));
    }
    Ok((rp.clone(), named))
}
