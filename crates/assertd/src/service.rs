//! The tonic services: `VerificationService` and `CredentialService`. They
//! run behind the tower stack (`stack`), which has already identified the
//! caller, checked its RPC group and taken an admission slot; a handler
//! converts messages (`convert`), calls the engine, and lets `?` turn
//! errors into statuses (`status`).

use crate::authz::Grant;
use crate::authz::Rpc;
use crate::convert;
use crate::engine::events::Facts;
use crate::engine::{Engine, now_ms};
use crate::stack::{Access, Caller, RequestIdValue};
use crate::status::RequestError;
use crate::telemetry::with_store_clock;
use crate::trace::Notes;
use assertd_api::v1 as pb;
use assertd_policy::options::b64url;
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

/// A protobuf timestamp of Unix seconds.
fn timestamp(unix_seconds: u64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: i64::try_from(unix_seconds).unwrap_or(i64::MAX), nanos: 0 }
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

/// Appends one event to the log `WatchEvents` streams, as the caller (an
/// admin's action unless `facts` say who set it off).
#[allow(clippy::too_many_arguments)]
async fn log_event(
    engine: &Engine,
    kind: crate::engine::events::Kind,
    grant: &Grant,
    rp_id: &str,
    user: &[u8],
    credential: &[u8],
    detail: String,
    facts: Option<Facts>,
) {
    let facts = facts.unwrap_or_else(|| Facts::by("admin"));
    let h =
        crate::engine::events::Happened { kind, rp_id, user_handle: user, credential_id: credential, actor: &grant.client, detail, facts };
    engine.record(vec![h]).await;
}

/// Appends a credential's event, with its facts.
async fn log_credential_event(
    engine: &Engine,
    kind: crate::engine::events::Kind,
    grant: &Grant,
    r: &StoredCredential,
    detail: &str,
    initiator: &str,
) {
    let facts = Facts::of_credential(r, initiator);
    log_event(engine, kind, grant, &r.rp_id, &r.user_handle, &r.credential_id, detail.to_owned(), Some(facts)).await;
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
        let call = crate::engine::Call {
            deadline: grpc_timeout(req.metadata()),
            retry: crate::engine::is_retry(req.metadata().get(crate::engine::PREVIOUS_ATTEMPTS).map(|v| v.as_bytes())),
        };
        let pb::VerifyAssertionsRequest { assertions, include_report_only } = req.into_inner();
        let span = tracing::debug_span!(
            "VerifyAssertions",
            request_id = %request_id.as_deref().unwrap_or("-"),
            client = %grant.client,
            batch = assertions.len()
        );
        let work = async {
            let outcomes = self.engine.verify_assertions(convert::assertions(assertions, include_report_only), &grant, call).await?;
            let verdicts = convert::verdicts(outcomes);
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
        let issued = self.engine.issue_challenge(&r.rp_id, &r.user_handle, ceremony, r.ttl_seconds)?;
        Ok(Response::new(pb::IssueChallengeResponse { challenge: issued.challenge, expires_at: Some(timestamp(issued.expires_at)) }))
    }

    async fn begin_authentication(
        &self,
        req: Request<pb::BeginAuthenticationRequest>,
    ) -> Result<Response<pb::BeginAuthenticationResponse>, Status> {
        let grant = grant(&req)?;
        let r = req.into_inner();
        if r.rp_id.is_empty() {
            return Err(RequestError::Invalid("rp_id is empty".into()).into());
        }
        require_rp(&grant, &r.rp_id)?;
        let begin = crate::engine::begin::BeginAuthentication {
            rp_id: r.rp_id,
            user_handle: r.user_handle,
            profile: r.profile,
            ttl_seconds: r.ttl_seconds,
        };
        let (options_json, issued) = self.engine.begin_authentication(&begin, &grant).await?;
        Ok(Response::new(pb::BeginAuthenticationResponse {
            options_json,
            challenge: issued.challenge,
            expires_at: Some(timestamp(issued.expires_at)),
        }))
    }

    async fn redeem_temporary_access_pass(
        &self,
        req: Request<pb::RedeemTemporaryAccessPassRequest>,
    ) -> Result<Response<pb::RedeemTemporaryAccessPassResponse>, Status> {
        recover::redeem(&self.engine, req).await
    }

    async fn get_user_signals(&self, req: Request<pb::GetUserSignalsRequest>) -> Result<Response<pb::GetUserSignalsResponse>, Status> {
        let grant = grant(&req)?;
        let r = req.into_inner();
        if r.rp_id.is_empty() {
            return Err(RequestError::Invalid("rp_id is empty".into()).into());
        }
        require_rp(&grant, &r.rp_id)?;
        let s = self.engine.user_signals(&r.rp_id, &r.user_handle, &r.user_name, &r.user_display_name).await?;
        Ok(Response::new(pb::GetUserSignalsResponse {
            all_accepted_credentials_json: s.all_accepted_credentials,
            current_user_details_json: s.current_user_details,
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
                    Ok::<_, Status>(
                        engine.check_stream_message(convert::assertions(msg.assertions, msg.include_report_only), &grant).await?,
                    )
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

mod credentials;
mod events;
mod preview;
mod recover;
mod stats;
pub use credentials::CredentialSvc;
