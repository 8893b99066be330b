//! The tonic services: `VerificationService` and `CredentialService`. They
//! run behind the tower stack (`stack`), which has already identified the
//! caller, checked its RPC group and taken an admission slot; a handler
//! converts messages (`convert`), calls the engine, and lets `?` turn
//! errors into statuses (`status`).

use crate::authz::Grant;
use crate::authz::Rpc;
use crate::convert;
use crate::engine::{Engine, now_ms};
use crate::stack::{Access, Caller, RequestIdValue};
use crate::status::RequestError;
use crate::telemetry::with_store_clock;
use crate::trace::Notes;
use assertd_api::v1 as pb;
use assertd_store::{Replaced, StoredCredential, UserRisk, UserRiskLevel};
use futures_util::{Stream, StreamExt};
use pb::credential_service_server::CredentialService;
use pb::verification_service_server::VerificationService;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

/// Batches a stream may have in verification at once (phase one); their
/// counters and policy still run one batch at a time, in order.
const STREAM_PIPELINE_DEPTH: usize = 4;

/// The caller's grant, as the stack's authentication layer found it. Its
/// absence means the stack was not in front of the service: fail closed.
fn grant<T>(req: &Request<T>) -> Result<Arc<Grant>, Status> {
    req.extensions().get::<Arc<Grant>>().cloned().ok_or_else(|| Status::unauthenticated("no authenticated caller"))
}

/// The span notes of a traced call (`None`: not traced).
fn notes<T>(req: &Request<T>) -> Option<Notes> {
    req.extensions().get::<Notes>().cloned()
}

/// Notes a batch's size and its verdicts by decision on the call's span.
fn note_verdicts(notes: Option<&Notes>, verdicts: &[pb::Verdict]) {
    let Some(n) = notes else { return };
    // Counted here, then one attribute update per decision: not a lock per
    // assertion.
    let mut by_decision = [0i64; 3];
    for v in verdicts {
        by_decision[match v.decision() {
            pb::Decision::Allow => 0,
            pb::Decision::StepUp => 1,
            pb::Decision::Deny | pb::Decision::Unspecified => 2,
        }] += 1;
    }
    n.add("assertd.assertions", i64::try_from(verdicts.len()).unwrap_or(i64::MAX));
    for (key, count) in ["assertd.verdicts.allow", "assertd.verdicts.step_up", "assertd.verdicts.deny"].into_iter().zip(by_decision) {
        if count > 0 {
            n.add(key, count);
        }
    }
}

/// INVALID_ARGUMENT beyond `limits.max_batch_size`.
fn check_batch(engine: &Engine, n: usize) -> Result<(), RequestError> {
    let max = engine.max_batch_size();
    if n > max {
        return Err(RequestError::BatchTooLarge { n, max });
    }
    Ok(())
}

/// PERMISSION_DENIED unless the grant covers the relying party.
fn require_rp(grant: &Grant, rp_id: &str) -> Result<(), Status> {
    if grant.rps.allows(rp_id) {
        return Ok(());
    }
    Err(crate::authz::Denied::PermissionDenied(format!(
        "client {:?} may not manage credentials of relying party {:?}",
        grant.client,
        assertd_verify::truncate(rp_id)
    ))
    .into())
}

/// Longest note on a risk flag, in bytes.
const MAX_NOTE_LEN: usize = 1024;

/// INVALID_ARGUMENT for a user handle over `MAX_USER_HANDLE_LEN`.
fn check_user_handle_len(user_handle: &[u8]) -> Result<(), Status> {
    if user_handle.len() > assertd_store::MAX_USER_HANDLE_LEN {
        return Err(RequestError::Invalid(format!(
            "user_handle is {} bytes, over the limit of {}",
            user_handle.len(),
            assertd_store::MAX_USER_HANDLE_LEN
        ))
        .into());
    }
    Ok(())
}

/// INVALID_ARGUMENT for an empty or oversized user; PERMISSION_DENIED
/// outside the grant.
fn require_user(grant: &Grant, rp_id: &str, user_handle: &[u8]) -> Result<(), Status> {
    if rp_id.is_empty() || user_handle.is_empty() {
        return Err(RequestError::Invalid("rp_id and user_handle are required".into()).into());
    }
    check_user_handle_len(user_handle)?;
    require_rp(grant, rp_id)
}

/// One audit line per change to a user (risk flags, revoking every
/// credential): who, which user, what changed.
fn audit_user(action: &'static str, grant: &Grant, rp_id: &str, user_handle: &[u8], what: &str) {
    tracing::info!(
        target: "assertd::audit",
        action,
        client = %grant.client,
        rp_id = %assertd_verify::truncate(rp_id),
        user_handle = %b64url(user_handle),
        what = %assertd_verify::truncate(what),
        "user {action}"
    );
}

/// One audit line per credential write (target `assertd::audit`, info
/// level): who, which credential, what changed. Never key material.
fn audit(action: &'static str, grant: &Grant, r: &StoredCredential, what: &'static str) {
    tracing::info!(
        target: "assertd::audit",
        action,
        client = %grant.client,
        rp_id = %assertd_verify::truncate(&r.rp_id),
        credential_id = %b64url(&r.credential_id),
        user_handle = %b64url(&r.user_handle),
        revoked = r.revoked,
        what,
        "credential {action}"
    );
}

/// base64url without padding, for log fields.
fn b64url(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// `assertd.v1.VerificationService`.
#[derive(Debug, Clone)]
pub struct VerificationSvc {
    engine: Arc<Engine>,
}

impl VerificationSvc {
    /// A service over the engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

/// The time a call has left, from its `grpc-timeout` header (gRPC over
/// HTTP/2: digits and a unit, H M S m u n).
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<std::time::Duration> {
    let v = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    use std::time::Duration;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

type VerdictStream = Pin<Box<dyn Stream<Item = Result<pb::VerifyAssertionsStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl VerificationService for VerificationSvc {
    async fn verify_assertions(&self, req: Request<pb::VerifyAssertionsRequest>) -> Result<Response<pb::VerifyAssertionsResponse>, Status> {
        let grant = grant(&req)?;
        let request_id = req.extensions().get::<RequestIdValue>().map(|r| r.0.clone());
        let notes = notes(&req);
        let deadline = grpc_timeout(req.metadata());
        let assertions = req.into_inner().assertions;
        check_batch(&self.engine, assertions.len())?;
        let mut admitted =
            self.engine.admission().admit(assertions.len(), deadline).map_err(|r| RequestError::Overloaded(Some(r.retry_after)))?;
        let span = tracing::debug_span!(
            "VerifyAssertions",
            request_id = %request_id.as_deref().unwrap_or("-"),
            client = %grant.client,
            batch = assertions.len()
        );
        let work = async {
            let checked = self.engine.verify(convert::assertions(assertions), &grant).await?;
            admitted.verified();
            let verdicts = convert::verdicts(self.engine.decide(checked).await);
            tracing::debug!(verdicts = verdicts.len(), "answered");
            note_verdicts(notes.as_ref(), &verdicts);
            Ok(Response::new(pb::VerifyAssertionsResponse { verdicts }))
        };
        with_store_clock(notes.as_ref().map(Notes::store_clock), work).instrument(span).await
    }

    async fn issue_challenge(&self, req: Request<pb::IssueChallengeRequest>) -> Result<Response<pb::IssueChallengeResponse>, Status> {
        let grant = grant(&req)?;
        let r = req.into_inner();
        if r.rp_id.is_empty() {
            return Err(RequestError::Invalid("rp_id is empty".into()).into());
        }
        let (ceremony, group) = match pb::Ceremony::try_from(r.ceremony) {
            Ok(pb::Ceremony::Unspecified | pb::Ceremony::SignIn) => (assertd_verify::Ceremony::SignIn, Rpc::Verify),
            Ok(pb::Ceremony::Registration) => (assertd_verify::Ceremony::Registration, Rpc::CredentialsRegister),
            Err(_) => return Err(RequestError::Invalid(format!("ceremony {} is unknown", r.ceremony)).into()),
        };
        if !grant.may(group) {
            return Err(crate::authz::Denied::PermissionDenied(format!(
                "client {:?} may not issue {} challenges (group {})",
                grant.client,
                if group == Rpc::Verify { "sign-in" } else { "registration" },
                group.as_str()
            ))
            .into());
        }
        if !grant.rps.allows(&r.rp_id) {
            return Err(crate::authz::Denied::PermissionDenied(format!(
                "client {:?} may not use relying party {:?}",
                grant.client,
                assertd_verify::truncate(&r.rp_id)
            ))
            .into());
        }
        let policy = self.engine.policy();
        let Some(issued) = policy.challenges.clone() else {
            return Err(RequestError::Precondition("this server issues no challenges: configure [challenges] keys".into()).into());
        };
        if !policy.rps.contains_key(&r.rp_id) {
            return Err(RequestError::Invalid(format!("relying party {:?} is not configured", assertd_verify::truncate(&r.rp_id))).into());
        }
        check_user_handle_len(&r.user_handle)?;
        let expires_at = u64::try_from(now_ms() / 1000).unwrap_or(0).saturating_add(issued.ttl(r.ttl_seconds));
        let mut nonce = [0u8; assertd_verify::challenge::NONCE_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| Status::internal("the system random number generator failed"))?;
        let challenge = issued.keys.issue(&r.rp_id, &r.user_handle, ceremony, expires_at, nonce);
        crate::telemetry::challenge_issued();
        Ok(Response::new(pb::IssueChallengeResponse {
            challenge,
            expires_at: Some(prost_types::Timestamp { seconds: i64::try_from(expires_at).unwrap_or(i64::MAX), nanos: 0 }),
        }))
    }

    type VerifyAssertionsStreamStream = VerdictStream;

    async fn verify_assertions_stream(
        &self,
        req: Request<Streaming<pb::VerifyAssertionsStreamRequest>>,
    ) -> Result<Response<VerdictStream>, Status> {
        grant(&req)?;
        let caller = req.extensions().get::<Caller>().cloned().ok_or_else(|| Status::unauthenticated("no authenticated caller"))?;
        let notes = notes(&req);
        let decide_notes = notes.clone();
        let engine = self.engine.clone();
        let decide_engine = self.engine.clone();
        let out = req
            .into_inner()
            .map(move |msg| {
                let (engine, caller) = (engine.clone(), caller.clone());
                let clock = notes.as_ref().map(Notes::store_clock);
                with_store_clock(clock, async move {
                    let msg = msg?;
                    // The grant in force now: a reload may have narrowed or
                    // revoked it since the stream opened.
                    let grant = caller.grant(&engine, Access::Group(Rpc::Verify))?.ok_or_else(|| Status::unauthenticated("no grant"))?;
                    check_batch(&engine, msg.assertions.len())?;
                    let mut admitted = engine.admission().admit_stream(msg.assertions.len()).await?;
                    let checked = engine.verify(convert::assertions(msg.assertions), &grant).await?;
                    admitted.verified();
                    Ok::<_, Status>(checked)
                })
            })
            .buffered(STREAM_PIPELINE_DEPTH)
            .then(move |checked| {
                let engine = decide_engine.clone();
                let notes = decide_notes.clone();
                let clock = notes.as_ref().map(Notes::store_clock);
                with_store_clock(clock, async move {
                    let verdicts = convert::verdicts(engine.decide(checked?).await);
                    if let Some(n) = &notes {
                        n.add("assertd.messages", 1);
                    }
                    note_verdicts(notes.as_ref(), &verdicts);
                    Ok(pb::VerifyAssertionsStreamResponse { verdicts })
                })
            });
        Ok(Response::new(Box::pin(out)))
    }
}

/// `assertd.v1.CredentialService`.
#[derive(Debug, Clone)]
pub struct CredentialSvc {
    engine: Arc<Engine>,
}

impl CredentialSvc {
    /// A service over the engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

/// The credential a Get or Revoke names: both ids present, and its relying
/// party in the caller's grant.
fn require_id(grant: &Grant, rp_id: &str, credential_id: &[u8]) -> Result<(), Status> {
    if rp_id.is_empty() {
        return Err(RequestError::Invalid("rp_id is required".into()).into());
    }
    if credential_id.is_empty() {
        return Err(RequestError::Invalid("credential_id is required".into()).into());
    }
    require_rp(grant, rp_id)
}

#[tonic::async_trait]
impl CredentialService for CredentialSvc {
    async fn register_credential(
        &self,
        req: Request<pb::RegisterCredentialRequest>,
    ) -> Result<Response<pb::RegisterCredentialResponse>, Status> {
        let grant = grant(&req)?;
        let notes = notes(&req);
        let request = convert::registration(req.into_inner());
        request.check(self.engine.limits()).map_err(RequestError::Invalid)?;
        require_rp(&grant, &request.rp_id)?;
        // Kept for the audit line; the request itself moves to the pool.
        let (rp_id, user_handle) = (request.rp_id.clone(), request.user_handle.clone());
        let outcome = with_store_clock(notes.as_ref().map(Notes::store_clock), self.engine.register(request, &grant)).await?;
        crate::telemetry::registration(&outcome.verdict, outcome.attestation.as_ref());
        if let Some(n) = &notes {
            n.string("assertd.registration.decision", outcome.verdict.decision.as_str());
        }
        match &outcome.credential {
            Some(stored) => audit("register", &grant, stored, "registered"),
            None => tracing::info!(
                target: "assertd::audit",
                action = "register_denied",
                client = %grant.client,
                rp_id = %assertd_verify::truncate(&rp_id),
                user_handle = %b64url(&user_handle),
                reasons = %outcome.verdict.reasons.iter().map(|f| f.code.as_str()).collect::<Vec<_>>().join(","),
                "registration denied"
            ),
        }
        Ok(Response::new(convert::registration_outcome(outcome)))
    }

    async fn put_credential(&self, req: Request<pb::PutCredentialRequest>) -> Result<Response<pb::PutCredentialResponse>, Status> {
        let grant = grant(&req)?;
        let pb::PutCredentialRequest { credential, replace, expected_user_handle } = req.into_inner();
        let record = credential.ok_or_else(|| RequestError::Invalid("credential is required".into()))?;
        require_rp(&grant, &record.rp_id)?;
        let record = convert::record_from_pb(record, now_ms());
        record.validate().map_err(|e| RequestError::Invalid(format!("invalid credential: {e}")))?;
        let stored = if replace {
            if expected_user_handle != record.user_handle {
                return Err(RequestError::Invalid(
                    "a replace names the credential's user in expected_user_handle, and keeps it: credential.user_handle must equal it"
                        .into(),
                )
                .into());
            }
            match self.engine.replace(record).await.map_err(RequestError::from)? {
                Replaced::Replaced(stored) => {
                    audit("replace", &grant, &stored, "key and registration facts replaced; revoked and sign count kept");
                    stored
                }
                Replaced::NotFound => return Err(RequestError::NotFound.into()),
                Replaced::OtherUser => {
                    tracing::warn!(target: "assertd::audit", action = "replace_refused", client = %grant.client, "replace of another user's credential refused");
                    return Err(RequestError::Precondition("the credential belongs to another user: nothing was written".into()).into());
                }
            }
        } else {
            let created = self.engine.create(record).await.map_err(RequestError::from)?.ok_or(RequestError::AlreadyExists)?;
            audit("create", &grant, &created, "created");
            created
        };
        Ok(Response::new(pb::PutCredentialResponse { credential: Some(convert::record_to_pb(stored)) }))
    }

    async fn delete_credential(&self, req: Request<pb::DeleteCredentialRequest>) -> Result<Response<pb::DeleteCredentialResponse>, Status> {
        let grant = grant(&req)?;
        let req = req.into_inner();
        require_id(&grant, &req.rp_id, &req.credential_id)?;
        let deleted =
            self.engine.delete(&req.rp_id, &req.credential_id).await.map_err(RequestError::from)?.ok_or(RequestError::NotFound)?;
        audit("delete", &grant, &deleted, "erased");
        Ok(Response::new(pb::DeleteCredentialResponse { credential: Some(convert::record_to_pb(deleted)) }))
    }

    async fn get_credential(&self, req: Request<pb::GetCredentialRequest>) -> Result<Response<pb::GetCredentialResponse>, Status> {
        let grant = grant(&req)?;
        let req = req.into_inner();
        require_id(&grant, &req.rp_id, &req.credential_id)?;
        let found = self
            .engine
            .cache()
            .store()
            .get(&req.rp_id, &req.credential_id)
            .await
            .map_err(RequestError::from)?
            .ok_or(RequestError::NotFound)?;
        Ok(Response::new(pb::GetCredentialResponse { credential: Some(convert::record_to_pb(found)) }))
    }

    async fn revoke_credential(&self, req: Request<pb::RevokeCredentialRequest>) -> Result<Response<pb::RevokeCredentialResponse>, Status> {
        let grant = grant(&req)?;
        let req = req.into_inner();
        require_id(&grant, &req.rp_id, &req.credential_id)?;
        let revoked =
            self.engine.revoke(&req.rp_id, &req.credential_id).await.map_err(RequestError::from)?.ok_or(RequestError::NotFound)?;
        audit("revoke", &grant, &revoked, "revoked");
        Ok(Response::new(pb::RevokeCredentialResponse { credential: Some(convert::record_to_pb(revoked)) }))
    }

    async fn set_user_risk(&self, req: Request<pb::SetUserRiskRequest>) -> Result<Response<pb::SetUserRiskResponse>, Status> {
        let grant = grant(&req)?;
        let req = req.into_inner();
        require_user(&grant, &req.rp_id, &req.user_handle)?;
        let level = match req.level() {
            pb::RiskLevel::Medium => UserRiskLevel::Medium,
            pb::RiskLevel::High => UserRiskLevel::High,
            other => {
                return Err(RequestError::Invalid(format!(
                    "level {} is not a flag: use RISK_LEVEL_MEDIUM or RISK_LEVEL_HIGH (ClearUserRisk removes one)",
                    other.as_str_name()
                ))
                .into());
            }
        };
        if req.note.len() > MAX_NOTE_LEN {
            return Err(RequestError::Invalid(format!("note is {} bytes, over the limit of {MAX_NOTE_LEN}", req.note.len())).into());
        }
        let now = now_ms();
        let expires_at_ms = match req.expires_at {
            Some(t) => {
                let ms = t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos / 1_000_000));
                if ms <= now {
                    return Err(RequestError::Invalid("expires_at is in the past".into()).into());
                }
                Some(ms)
            }
            None => None,
        };
        let risk = UserRisk { rp_id: req.rp_id, user_handle: req.user_handle, level, expires_at_ms, note: req.note, set_at_ms: now };
        self.engine.set_user_risk(risk.clone()).await.map_err(RequestError::from)?;
        let what = format!("level {}, expires_at_ms {:?}, note {:?}", risk.level.as_str(), risk.expires_at_ms, risk.note);
        audit_user("set_user_risk", &grant, &risk.rp_id, &risk.user_handle, &what);
        Ok(Response::new(pb::SetUserRiskResponse {}))
    }

    async fn clear_user_risk(&self, req: Request<pb::ClearUserRiskRequest>) -> Result<Response<pb::ClearUserRiskResponse>, Status> {
        let grant = grant(&req)?;
        let req = req.into_inner();
        require_user(&grant, &req.rp_id, &req.user_handle)?;
        let cleared = self.engine.clear_user_risk(&req.rp_id, &req.user_handle).await.map_err(RequestError::from)?;
        audit_user("clear_user_risk", &grant, &req.rp_id, &req.user_handle, if cleared { "cleared" } else { "no flag to clear" });
        Ok(Response::new(pb::ClearUserRiskResponse { cleared }))
    }

    async fn revoke_user_credentials(
        &self,
        req: Request<pb::RevokeUserCredentialsRequest>,
    ) -> Result<Response<pb::RevokeUserCredentialsResponse>, Status> {
        let grant = grant(&req)?;
        let req = req.into_inner();
        require_user(&grant, &req.rp_id, &req.user_handle)?;
        let revoked = self.engine.revoke_user(&req.rp_id, &req.user_handle).await.map_err(RequestError::from)?;
        audit_user("revoke_user", &grant, &req.rp_id, &req.user_handle, &format!("{revoked} credentials revoked"));
        Ok(Response::new(pb::RevokeUserCredentialsResponse { revoked: u32::try_from(revoked).unwrap_or(u32::MAX) }))
    }

    async fn list_credentials(&self, req: Request<pb::ListCredentialsRequest>) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        let grant = grant(&req)?;
        let req = req.into_inner();
        if req.rp_id.is_empty() || req.user_handle.is_empty() {
            return Err(RequestError::Invalid("rp_id and user_handle are required".into()).into());
        }
        require_rp(&grant, &req.rp_id)?;
        let list = self.engine.cache().store().list_by_user(&req.rp_id, &req.user_handle).await.map_err(RequestError::from)?;
        Ok(Response::new(pb::ListCredentialsResponse { credentials: list.into_iter().map(convert::record_to_pb).collect() }))
    }
}
