//! The policy preview (`assertd policy preview`, `CredentialService.
//! PreviewPolicy`): every stored credential judged under a candidate policy
//! and under the one in force, as a clean sign-in would be judged, counted
//! per relying party and profile, with the users a change would leave with
//! no usable credential.
//!
//! [`judge`] and [`Tally`] are pure; [`scan`] pages the store through them
//! with bounded memory (one page, one user, the counts).

mod candidate;
mod offline;
mod scan;
mod tally;

pub use candidate::{Overlay, Policy, Role, Slot};
pub use offline::{Line, ProfileLine, run as run_offline, table};
pub use scan::{Pages, Scope, scan};
pub use tally::{LockedOut, ProfileTally, Summary, Tally, UsersWanted};

use crate::engine::assess;
use assertd_policy::{CounterCheck, Profile, ReasonCode, SignInContext, Verdict};
use assertd_store::CachedCredential;
use assertd_verify::metadata::Metadata;
use assertd_verify::{AuthenticatorFacts, Flags, Verification};

/// The verdict a clean sign-in with `c` would get under `profile`: an
/// assertion whose signature verified, from an expected origin, not
/// cross-origin, user present and verified, the backup flags as stored, the
/// counter accepted, no risk signal from the gateway and no user flag. So
/// every refusal is the profile's (or the metadata's) and the credential's
/// doing: a passkey type, attestation, AAGUID or algorithm the profile does
/// not accept, a model the metadata blocks, or signals it always carries
/// (synced, unattested) that weigh past a threshold. A revoked credential
/// is refused `CREDENTIAL_REVOKED`, an unusable key `UNSUPPORTED_ALGORITHM`,
/// as the live path refuses them.
pub fn judge(profile: &Profile, c: &CachedCredential, metadata: Option<&Metadata>) -> Verdict {
    if c.revoked {
        return crate::engine::item::deny(ReasonCode::CredentialRevoked, "the credential is revoked");
    }
    let key = match assess::usable_key(c) {
        Ok(k) => k,
        Err(v) => return v,
    };
    // UP (0x01) and UV (0x04), with BE (0x08) and BS (0x10) as stored.
    let flags = 0x01 | 0x04 | if c.backup_eligible { 0x08 } else { 0 } | if c.backup_state { 0x10 } else { 0 };
    let v = Verification {
        failures: Vec::new(),
        authenticator: Some(AuthenticatorFacts { flags: Flags(flags), sign_count: 0 }),
        cross_origin: None,
        algorithm: key.algorithm(),
        issued_challenge: None,
    };
    assess::judge(profile, c, &v, Ok(CounterCheck::Ok), &SignInContext::default(), metadata)
}

/// The reasons a refusal gives: its hard failures, or (a deny by score)
/// the signals that added up.
pub fn refusal_reasons(v: &Verdict) -> impl Iterator<Item = ReasonCode> + '_ {
    let n = if v.failures > 0 { v.failures } else { v.reasons.len() };
    v.reasons[..n].iter().map(|f| f.code)
}
