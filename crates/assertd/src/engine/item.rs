//! What the engine works on: one assertion as the gateway sent it (moved out
//! of the protobuf message at the edge, no payload bytes copied), the state
//! it is in as it goes through the stages, and the outcome it ends with.
//!
//! An item carries its own state from stage to stage, so no stage needs a
//! vector aligned with another one: whatever a stage learns about an item
//! (its credential, its verification, its counter outcome) is stored in the
//! item itself.

use crate::config::{IssuedChallenges, Limits, RpEntry};
use assertd_policy::{CounterCheck, Finding, Profile, ReasonCode, SignInContext, Verdict};
use assertd_store::{CachedCredential, StoredCredential};
use assertd_verify::metadata::NameSource;
use assertd_verify::{AssertionInput, Attachment, AttestationReport, AuthenticatorFacts, Challenge, Registration, Verification};
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
    /// The gateway verified another factor equivalent to UV this session:
    /// a UV sign-in may initialise `uvInitialized`.
    pub additional_factor_verified: bool,
    /// The browser's `AuthenticationResponseJSON`, until stage 1 unpacks it
    /// into the fields above (empty: the fields came separately).
    pub response_json: String,
    /// Answer with the report-only profiles' verdicts too.
    pub include_report_only: bool,
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
    /// The BS flag differs from the stored backup state (only with
    /// `credential`).
    pub backup_state_changed: bool,
    /// The credential named is not the relying party's (`CREDENTIAL_NOT_FOUND`):
    /// `UnknownCredentialOptions` JSON for the page's signal.
    pub signal_unknown_credential: Option<String>,
    /// The authenticator's display name and its source (only with
    /// `credential`).
    pub authenticator_name: Option<(Arc<str>, NameSource)>,
    /// The report-only profiles' verdicts, when the request asked for them.
    pub report_only: Vec<ReportOnlyOutcome>,
}

/// How a report-only profile would have judged an assertion.
#[derive(Debug, Clone)]
pub struct ReportOnlyOutcome {
    /// The profile's name.
    pub profile: Arc<str>,
    /// Its verdict (never enforced).
    pub verdict: Verdict,
}

impl Judged {
    /// The verdict was overruled before any profile could weigh it (a
    /// replayed challenge): report-only profiles see it as it is.
    pub(super) fn same_under_every_profile(&mut self) {
        if let Some((_, verdicts)) = &mut self.report_only {
            verdicts.iter_mut().for_each(|v| *v = None);
        }
    }
}

/// A deny for one reason.
pub fn deny(code: ReasonCode, message: impl Into<String>) -> Verdict {
    Verdict::deny(vec![Finding::new(code, message)])
}

/// One item after policy, before its outcome: what `decide` still needs.
pub(super) struct Judged {
    pub(super) request: AssertionRequest,
    pub(super) verdict: Verdict,
    pub(super) authenticator: Option<AuthenticatorFacts>,
    pub(super) credential: Option<Arc<CachedCredential>>,
    /// The relying party, once the item reached policy.
    pub(super) rp: Option<Arc<RpEntry>>,
    /// The profile accepts the BE upgrade the item reports.
    pub(super) upgrade: bool,
    /// Its counter write stored the use's `last_used_at` already.
    pub(super) use_recorded: bool,
    /// What an allow records on the credential (§7.2 step 24 (update
    /// record)), when anything changes.
    pub(super) state: Option<StateChange>,
    /// When the user's flag it was judged with was set (0: none): a
    /// remediation clears that flag only.
    pub(super) risk_set_at_ms: i64,
    /// The report-only profiles' verdicts (`None`: the enforced one's).
    pub(super) report_only: Option<(Vec<ReportOnlyProfileRef>, Vec<Option<Verdict>>)>,
}

/// A report-only profile's labels, held past the policy's borrow.
#[derive(Debug, Clone)]
pub(super) struct ReportOnlyProfileRef {
    pub(super) rp_id: std::sync::Arc<str>,
    pub(super) name: std::sync::Arc<str>,
}

impl ReportOnlyProfileRef {
    pub(super) fn of(p: &crate::config::ReportOnlyProfile) -> Self {
        Self { rp_id: p.rp_id.clone(), name: p.name.clone() }
    }
}

/// What a sign-in changes on its credential record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StateChange {
    /// The BS flag reported, when it differs from the record's.
    pub(super) backup_state: Option<bool>,
    /// UV reported, the record's `uvInitialized` false, and another factor
    /// authorized the change.
    pub(super) uv_initialized: bool,
}

/// Most transports a registration may report.
pub const MAX_TRANSPORTS: usize = 8;

/// One registration, as the gateway sent it.
#[derive(Debug, Clone, Default)]
pub struct RegistrationRequest {
    /// The relying party.
    pub rp_id: String,
    /// The user the credential is created for.
    pub user_handle: Vec<u8>,
    /// `response.clientDataJSON`.
    pub client_data_json: Vec<u8>,
    /// `response.attestationObject`.
    pub attestation_object: Vec<u8>,
    /// The challenge the gateway issued (empty with an issued challenge).
    pub expected_challenge: Vec<u8>,
    /// The profile to apply; empty: the RP's default.
    pub profile: String,
    /// `response.getTransports()`.
    pub transports: Vec<String>,
    /// The challenge came from `IssueChallenge`.
    pub server_issued_challenge: bool,
    /// The browser's `RegistrationResponseJSON`, until
    /// [`super::unpack::registration`] unpacks it (empty: the fields came
    /// separately).
    pub response_json: String,
    /// `credProps.rk`, when the JSON carried it.
    pub discoverable: Option<bool>,
    /// `authenticatorAttachment`, when the JSON carried one.
    pub attachment: Option<Attachment>,
    /// The JSON's `rawId`: must be the attested credential ID.
    pub raw_id: Option<Vec<u8>>,
    /// A temporary access pass as the user typed it (empty: none).
    pub temporary_access_pass: String,
}

impl RegistrationRequest {
    /// Request-level problems (INVALID_ARGUMENT): missing fields, sizes over
    /// their limits (after [`super::unpack::registration`]). Everything
    /// about the ceremony itself is a verdict.
    pub fn check(&self, limits: &Limits) -> Result<(), String> {
        if self.rp_id.is_empty() {
            return Err("rp_id is required".into());
        }
        if self.user_handle.is_empty() || self.user_handle.len() > assertd_store::MAX_USER_HANDLE_LEN {
            return Err(format!("user_handle must be 1 to {} bytes, got {}", assertd_store::MAX_USER_HANDLE_LEN, self.user_handle.len()));
        }
        if self.client_data_json.is_empty() || self.attestation_object.is_empty() {
            return Err("client_data_json and attestation_object are required".into());
        }
        for (name, len, max) in [
            ("client_data_json", self.client_data_json.len(), limits.max_client_data_json_bytes),
            ("attestation_object", self.attestation_object.len(), assertd_verify::attestation::MAX_ATTESTATION_OBJECT),
            ("expected_challenge", self.expected_challenge.len(), limits.max_challenge_bytes),
        ] {
            if len > max {
                return Err(format!("{name} is {len} bytes, over the limit of {max}"));
            }
        }
        match (self.server_issued_challenge, self.expected_challenge.is_empty()) {
            (true, false) => return Err("expected_challenge must be empty when server_issued_challenge is set".into()),
            (false, true) => return Err("expected_challenge is required (or set server_issued_challenge)".into()),
            _ => {}
        }
        if self.transports.len() > MAX_TRANSPORTS {
            return Err(format!("{} transports, over the limit of {MAX_TRANSPORTS}", self.transports.len()));
        }
        if let Some(t) =
            self.transports.iter().find(|t| t.is_empty() || t.len() > 32 || !t.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        {
            return Err(format!("transport {:?} is not 1 to 32 lower-case letters and '-'", assertd_verify::truncate(t)));
        }
        if !self.temporary_access_pass.is_empty() {
            assertd_verify::access_pass::Pass::parse(&self.temporary_access_pass).map_err(|e| format!("temporary_access_pass: {e}"))?;
        }
        Ok(())
    }
}

/// What a registration came to.
#[derive(Debug, Clone)]
pub struct RegistrationOutcome {
    /// Allow (stored) or deny, with every reason.
    pub verdict: Verdict,
    /// The stored record, when allowed.
    pub credential: Option<StoredCredential>,
    /// What the attestation established, when the object decoded.
    pub attestation: Option<AttestationReport>,
    /// What the authenticator data said, when it parsed.
    pub authenticator: Option<AuthenticatorFacts>,
}

impl RegistrationOutcome {
    pub(super) fn denied(verdict: Verdict, registration: Option<&Registration>) -> Self {
        Self {
            verdict,
            credential: None,
            attestation: registration.and_then(|r| r.attestation.clone()),
            authenticator: registration.and_then(|r| r.authenticator),
        }
    }
}
