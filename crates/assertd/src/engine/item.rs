//! What the engine works on: one assertion as the gateway sent it (moved out
//! of the protobuf message at the edge, no payload bytes copied), the state
//! it is in as it goes through the stages, and the outcome it ends with.
//!
//! An item carries its own state from stage to stage, so no stage needs a
//! vector aligned with another one: whatever a stage learns about an item
//! (its credential, its verification, its counter outcome) is stored in the
//! item itself.

use crate::config::IssuedChallenges;
use crate::config::RpEntry;
use assertd_policy::{CounterCheck, Finding, Profile, ReasonCode, SignInContext, Verdict};
use assertd_store::CachedCredential;
use assertd_verify::{AssertionInput, AuthenticatorFacts, Challenge, Verification};
use std::sync::Arc;

/// One assertion to verify, as the gateway sent it.
#[derive(Debug, Clone, Default)]
pub struct AssertionRequest {
    /// The gateway's id for the item, echoed in its verdict.
    pub request_id: String,
    /// The relying party.
    pub rp_id: String,
    /// `credential.rawId`.
    pub credential_id: Vec<u8>,
    /// `response.clientDataJSON`.
    pub client_data_json: Vec<u8>,
    /// `response.authenticatorData`.
    pub authenticator_data: Vec<u8>,
    /// `response.signature`.
    pub signature: Vec<u8>,
    /// `response.userHandle` (empty: none sent).
    pub user_handle: Vec<u8>,
    /// The user the gateway identified before the ceremony (empty: none).
    pub expected_user_handle: Vec<u8>,
    /// The credentials the gateway offered (empty: any).
    pub allowed_credential_ids: Vec<Vec<u8>>,
    /// The challenge the gateway issued for this ceremony.
    pub expected_challenge: Vec<u8>,
    /// The client reported the AppID extension as used.
    pub appid_used: bool,
    /// The challenge is one this service issued (`IssueChallenge`).
    pub server_issued_challenge: bool,
    /// The profile to judge under (empty: the RP's default).
    pub profile: String,
    /// What the gateway knows about the sign-in.
    pub context: SignInContext,
}

impl AssertionRequest {
    /// The credential's key in the store and the cache.
    pub fn credential_key(&self) -> (&str, &[u8]) {
        (&self.rp_id, &self.credential_id)
    }

    /// The parts the verifier reads; `issued` checks a server-issued
    /// challenge at `now` (Unix seconds).
    pub fn input<'a>(&'a self, issued: Option<&'a IssuedChallenges>, now: u64) -> AssertionInput<'a> {
        let challenge = match issued {
            Some(i) if self.server_issued_challenge => Challenge::Issued { keys: &i.keys, now, skew: i.clock_skew_seconds },
            // Unreachable with the flag set (the field checks refuse it
            // without keys): an empty expected challenge matches nothing.
            _ if self.server_issued_challenge => Challenge::Expected(&[]),
            _ => Challenge::Expected(&self.expected_challenge),
        };
        AssertionInput {
            client_data_json: &self.client_data_json,
            authenticator_data: &self.authenticator_data,
            signature: &self.signature,
            user_handle: &self.user_handle,
            expected_user_handle: &self.expected_user_handle,
            challenge,
            appid_used: self.appid_used,
        }
    }
}

/// The relying party and profile an assertion is judged under, and its
/// credential as the cache holds it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The relying party.
    pub rp: Arc<RpEntry>,
    /// The profile.
    pub profile: Arc<Profile>,
    /// The credential.
    pub credential: Arc<CachedCredential>,
}

/// Where an item stands. Each stage moves items one step to the right, or
/// to `Rejected`:
///
/// `Targeted` → `Resolved` → `Verified` → `Counted`, or `Rejected` at any step.
#[derive(Debug)]
pub enum Stage {
    /// Fields checked; relying party and profile found.
    Targeted(Arc<RpEntry>, Arc<Profile>),
    /// Credential found, usable key: ready for the pool.
    Resolved(Resolved),
    /// The verifier's report.
    Verified(Resolved, Verification),
    /// The counter outcome: a check for policy to weigh, or a verdict that
    /// ends the item (revoked or deleted meanwhile, store unreachable).
    Counted(Resolved, Verification, Result<CounterCheck, Verdict>),
    /// Decided before policy could run. Nothing about the stored credential
    /// goes back to the caller: no signature vouched for the request.
    Rejected(Verdict),
}

/// An assertion and where it stands.
#[derive(Debug)]
pub struct Item {
    /// The assertion.
    pub request: AssertionRequest,
    /// Its state.
    pub stage: Stage,
}

impl Item {
    /// Moves the item to the stage `f` makes of its current one (`f` hands
    /// back stages it does not handle unchanged).
    pub fn advance(&mut self, f: impl FnOnce(Stage) -> Stage) {
        // A placeholder that allocates nothing while the stage is taken out.
        let stage = std::mem::replace(&mut self.stage, Stage::Rejected(Verdict::deny(Vec::new())));
        self.stage = f(stage);
    }
}

/// The engine's answer for one assertion.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The gateway's id for the item.
    pub request_id: String,
    /// Decision, score and reasons.
    pub verdict: Verdict,
    /// What the authenticator data said, when it parsed.
    pub authenticator: Option<AuthenticatorFacts>,
    /// The credential, when it was found and the signature verified with
    /// its key (only then may its user handle and AAGUID be reported).
    pub credential: Option<Arc<CachedCredential>>,
}

/// A deny for one reason.
pub fn deny(code: ReasonCode, message: impl Into<String>) -> Verdict {
    Verdict::deny(vec![Finding::new(code, message)])
}
