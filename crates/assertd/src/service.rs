//! The tonic services: `VerificationService` and `CredentialService`.
//! Internal errors become gRPC statuses in [`status`], and only there.

use crate::authz::{Denied, Grant, Rpc};
use crate::engine::Engine;
use crate::engine::now_ms;
use crate::telemetry::{self, InFlight};
use crate::tls::Peer;
use assertd_api::v1 as pb;
use assertd_store::{StoreError, StoredCredential};
use futures_util::{Stream, StreamExt};
use pb::credential_service_server::CredentialService;
use pb::verification_service_server::VerificationService;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

/// Batches a stream may have in verification at once (phase one); their
/// counters and policy still run one batch at a time, in order.
const STREAM_PIPELINE_DEPTH: usize = 4;

/// Maps a store error to a gRPC status.
fn status(e: StoreError) -> Status {
    match e {
        StoreError::Unavailable(m) => Status::unavailable(m),
        StoreError::Corrupt(m) => Status::internal(m),
        other => Status::internal(other.to_string()),
    }
}

/// Records an RPC's latency and outcome.
fn finish<T>(rpc: &'static str, started: Instant, r: Result<T, Status>) -> Result<T, Status> {
    let code = r.as_ref().map_or_else(|s| s.code(), |_| tonic::Code::Ok);
    telemetry::rpc(rpc, code, started.elapsed());
    r
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

fn check_batch(engine: &Engine, n: usize) -> Result<(), Status> {
    if n > engine.max_batch_size() {
        telemetry::rejected("batch_too_large");
        return Err(Status::invalid_argument(format!("batch of {n} assertions exceeds max_batch_size {}", engine.max_batch_size())));
    }
    Ok(())
}

/// Who the caller is (its connection's client certificate, or its bearer
/// token) and whether its grant includes `rpc`. UNAUTHENTICATED for an
/// unknown caller, PERMISSION_DENIED for a known one outside its grant.
pub fn authorize<T>(engine: &Engine, req: &Request<T>, rpc: Option<Rpc>) -> Result<Arc<Grant>, Status> {
    let names = req.extensions().get::<Peer>().map(|p| p.certificate_names.clone());
    let header = req.metadata().get("authorization").map(|v| v.as_bytes());
    let policy = engine.policy();
    let names = names.as_deref().unwrap_or(&[]);
    let r = match rpc {
        Some(rpc) => policy.clients.authorize(header, names, rpc),
        None => policy.clients.authenticate(header, names),
    };
    r.map_err(|d| match d {
        Denied::Unauthenticated(m) => {
            telemetry::rejected("unauthenticated");
            Status::unauthenticated(m)
        }
        Denied::PermissionDenied(m) => {
            telemetry::rejected("permission_denied");
            Status::permission_denied(m)
        }
    })
}

/// PERMISSION_DENIED unless the grant covers the relying party.
fn require_rp(grant: &Grant, rp_id: &str) -> Result<(), Status> {
    if grant.rps.allows(rp_id) {
        return Ok(());
    }
    telemetry::rejected("permission_denied");
    Err(Status::permission_denied(format!(
        "client {:?} may not manage credentials of relying party {:?}",
        grant.client,
        assertd_verify::truncate(rp_id)
    )))
}

/// The caller's `x-request-id`, if it sent a sane one (logged, echoed).
fn request_id<T>(req: &Request<T>) -> Option<String> {
    let v = req.metadata().get("x-request-id")?.to_str().ok()?;
    (v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())).then(|| v.to_owned())
}

/// Echoes `x-request-id` on the response.
fn echo_request_id<T>(resp: &mut Response<T>, id: Option<&str>) {
    if let Some(v) = id.and_then(|id| id.parse().ok()) {
        resp.metadata_mut().insert("x-request-id", v);
    }
}

type VerdictStream = Pin<Box<dyn Stream<Item = Result<pb::VerifyAssertionsStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl VerificationService for VerificationSvc {
    async fn verify_assertions(&self, req: Request<pb::VerifyAssertionsRequest>) -> Result<Response<pb::VerifyAssertionsResponse>, Status> {
        let started = Instant::now();
        let grant = match authorize(&self.engine, &req, Some(Rpc::Verify)) {
            Ok(g) => g,
            Err(s) => return finish("VerifyAssertions", started, Err(s)),
        };
        let Some(mut admitted) = self.engine.admit(req.get_ref().assertions.len()) else {
            telemetry::rejected("overloaded");
            return finish("VerifyAssertions", started, Err(Status::resource_exhausted("assertd is at capacity; retry with backoff")));
        };
        let _in_flight = InFlight::start();
        let request_id = request_id(&req);
        let assertions = req.into_inner().assertions;
        let span = tracing::debug_span!(
            "VerifyAssertions",
            request_id = %request_id.as_deref().unwrap_or("-"),
            client = %grant.client,
            batch = assertions.len()
        );
        let r = async {
            check_batch(&self.engine, assertions.len())?;
            let checked = self.engine.verify(assertions, &grant.rps).await?;
            admitted.verified();
            let verdicts = self.engine.decide(checked).await;
            tracing::debug!(verdicts = verdicts.len(), "answered");
            let mut resp = Response::new(pb::VerifyAssertionsResponse { verdicts });
            echo_request_id(&mut resp, request_id.as_deref());
            Ok(resp)
        }
        .instrument(span)
        .await;
        finish("VerifyAssertions", started, r)
    }

    type VerifyAssertionsStreamStream = VerdictStream;

    async fn verify_assertions_stream(
        &self,
        req: Request<Streaming<pb::VerifyAssertionsStreamRequest>>,
    ) -> Result<Response<VerdictStream>, Status> {
        let grant = authorize(&self.engine, &req, Some(Rpc::Verify)).inspect_err(|s| {
            telemetry::rpc("VerifyAssertionsStream", s.code(), std::time::Duration::ZERO);
        })?;
        let engine = self.engine.clone();
        let decide_engine = self.engine.clone();
        let in_flight = Arc::new(InFlight::start());
        let out = req
            .into_inner()
            .map(move |msg| {
                let (engine, grant) = (engine.clone(), grant.clone());
                async move {
                    let started = Instant::now();
                    let msg = msg?;
                    check_batch(&engine, msg.assertions.len())?;
                    let mut admitted = engine.admit_stream(msg.assertions.len()).await?;
                    let checked = engine.verify(msg.assertions, &grant.rps).await?;
                    admitted.verified();
                    Ok((started, checked))
                }
            })
            .buffered(STREAM_PIPELINE_DEPTH)
            .then(move |r: Result<_, Status>| {
                let engine = decide_engine.clone();
                let _keep = in_flight.clone();
                async move {
                    match r {
                        Ok((started, checked)) => {
                            let verdicts = engine.decide(checked).await;
                            telemetry::rpc("VerifyAssertionsStream", tonic::Code::Ok, started.elapsed());
                            Ok(pb::VerifyAssertionsStreamResponse { verdicts })
                        }
                        Err(s) => {
                            telemetry::rpc("VerifyAssertionsStream", s.code(), std::time::Duration::ZERO);
                            Err(s)
                        }
                    }
                }
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

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// A stored record as the API shows it.
pub fn to_pb(r: StoredCredential) -> pb::CredentialRecord {
    pb::CredentialRecord {
        rp_id: r.rp_id,
        credential_id: r.credential_id,
        user_handle: r.user_handle,
        public_key_cose: r.public_key_cose,
        sign_count: r.sign_count,
        backup_eligible: r.backup_eligible,
        backup_state: r.backup_state,
        aaguid: r.aaguid,
        attested: r.attested,
        transports: r.transports,
        revoked: r.revoked,
        created_at: Some(timestamp(r.created_at_ms)),
        last_used_at: r.last_used_at_ms.map(timestamp),
    }
}

/// An API record as the store keeps it (timestamps are the server's).
pub fn from_pb(r: pb::CredentialRecord, now_ms: i64) -> StoredCredential {
    StoredCredential {
        rp_id: r.rp_id,
        credential_id: r.credential_id,
        user_handle: r.user_handle,
        public_key_cose: r.public_key_cose,
        sign_count: r.sign_count,
        backup_eligible: r.backup_eligible,
        backup_state: r.backup_state,
        aaguid: r.aaguid,
        attested: r.attested,
        transports: r.transports,
        revoked: r.revoked,
        created_at_ms: now_ms,
        last_used_at_ms: None,
    }
}

/// The credential a Get or Revoke names: both ids present, and its relying
/// party in the caller's grant.
fn require_id(grant: &Grant, rp_id: &str, credential_id: &[u8]) -> Result<(), Status> {
    if rp_id.is_empty() {
        return Err(Status::invalid_argument("rp_id is required"));
    }
    if credential_id.is_empty() {
        return Err(Status::invalid_argument("credential_id is required"));
    }
    require_rp(grant, rp_id)
}

#[tonic::async_trait]
impl CredentialService for CredentialSvc {
    async fn put_credential(&self, req: Request<pb::PutCredentialRequest>) -> Result<Response<pb::PutCredentialResponse>, Status> {
        let started = Instant::now();
        let r = async {
            let grant = authorize(&self.engine, &req, Some(Rpc::CredentialsWrite))?;
            let record = req.into_inner().credential.ok_or_else(|| Status::invalid_argument("credential is required"))?;
            require_rp(&grant, &record.rp_id)?;
            let record = from_pb(record, now_ms());
            record.validate().map_err(|e| Status::invalid_argument(format!("invalid credential: {e}")))?;
            let stored = self.engine.put(record).await.map_err(status)?;
            Ok(Response::new(pb::PutCredentialResponse { credential: Some(to_pb(stored)) }))
        }
        .await;
        finish("PutCredential", started, r)
    }

    async fn get_credential(&self, req: Request<pb::GetCredentialRequest>) -> Result<Response<pb::GetCredentialResponse>, Status> {
        let started = Instant::now();
        let r = async {
            let grant = authorize(&self.engine, &req, Some(Rpc::CredentialsRead))?;
            let req = req.into_inner();
            require_id(&grant, &req.rp_id, &req.credential_id)?;
            let found = self.engine.cache().store().get(&req.rp_id, &req.credential_id).await.map_err(status)?;
            let found = found.ok_or_else(|| Status::not_found("no such credential"))?;
            Ok(Response::new(pb::GetCredentialResponse { credential: Some(to_pb(found)) }))
        }
        .await;
        finish("GetCredential", started, r)
    }

    async fn revoke_credential(&self, req: Request<pb::RevokeCredentialRequest>) -> Result<Response<pb::RevokeCredentialResponse>, Status> {
        let started = Instant::now();
        let r = async {
            let grant = authorize(&self.engine, &req, Some(Rpc::CredentialsWrite))?;
            let req = req.into_inner();
            require_id(&grant, &req.rp_id, &req.credential_id)?;
            let revoked = self.engine.revoke(&req.rp_id, &req.credential_id).await.map_err(status)?;
            let revoked = revoked.ok_or_else(|| Status::not_found("no such credential"))?;
            tracing::info!(rp_id = %revoked.rp_id, client = %grant.client, "credential revoked");
            Ok(Response::new(pb::RevokeCredentialResponse { credential: Some(to_pb(revoked)) }))
        }
        .await;
        finish("RevokeCredential", started, r)
    }

    async fn list_credentials(&self, req: Request<pb::ListCredentialsRequest>) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        let started = Instant::now();
        let r = async {
            let grant = authorize(&self.engine, &req, Some(Rpc::CredentialsRead))?;
            let req = req.into_inner();
            if req.rp_id.is_empty() || req.user_handle.is_empty() {
                return Err(Status::invalid_argument("rp_id and user_handle are required"));
            }
            require_rp(&grant, &req.rp_id)?;
            let list = self.engine.cache().store().list_by_user(&req.rp_id, &req.user_handle).await.map_err(status)?;
            Ok(Response::new(pb::ListCredentialsResponse { credentials: list.into_iter().map(to_pb).collect() }))
        }
        .await;
        finish("ListCredentials", started, r)
    }
}
