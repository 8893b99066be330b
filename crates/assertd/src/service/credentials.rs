//! `CredentialService`: registration, the admin's credential writes and
//! reads, user risk and user revocation, temporary access passes (in
//! `recover`).

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::engine::events::Kind;

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

    /// A stored record as the API shows it, with its display name.
    fn record(&self, r: assertd_store::StoredCredential) -> pb::CredentialRecord {
        named(&self.engine, convert::record_to_pb(r))
    }
}

/// `r` with the display name of its authenticator filled in.
fn named(engine: &Engine, mut r: pb::CredentialRecord) -> pb::CredentialRecord {
    if let Some((name, source)) = engine.authenticator_name(&r.aaguid, r.aaguid_vouched) {
        r.authenticator_name = name.to_string();
        r.set_authenticator_name_source(convert::name_source(source));
    }
    r
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
        let mut request = convert::registration(req.into_inner());
        // The browser's JSON into the byte fields first: every check reads
        // one form.
        crate::engine::unpack::registration(&mut request, self.engine.limits())
            .and_then(|()| request.check(self.engine.limits()))
            .map_err(RequestError::Invalid)?;
        require_rp(&grant, &request.rp_id)?;
        // Kept for the audit line; the request itself moves to the pool.
        let (rp_id, user_handle) = (request.rp_id.clone(), request.user_handle.clone());
        let outcome = with_store_clock(notes.as_ref().map(Notes::store_clock), self.engine.register(request, &grant)).await?;
        if let Some(n) = &notes {
            n.string("assertd.registration.decision", outcome.verdict.decision.as_str());
        }
        if let Some(c) = &outcome.credential {
            let e = &self.engine;
            log_credential_event(e, Kind::CredentialRegistered, &grant, c, "RegisterCredential", "user").await;
            if !c.access_pass_id.is_empty() {
                let detail = format!("pass {} redeemed by a registration", c.access_pass_id);
                let facts = Some(Facts::by("user"));
                log_event(e, Kind::AccessPassRedeemed, &grant, &c.rp_id, &c.user_handle, &c.credential_id, detail, facts).await;
            }
        }
        match &outcome.credential {
            Some(stored) if !stored.access_pass_id.is_empty() => {
                crate::telemetry::access_pass("registered");
                audit("register", &grant, stored, "registered with a temporary access pass (its id: the record's access_pass_id)");
            }
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
        let mut response = convert::registration_outcome(outcome);
        response.credential = response.credential.map(|r| named(&self.engine, r));
        Ok(Response::new(response))
    }

    async fn begin_registration(
        &self,
        req: Request<pb::BeginRegistrationRequest>,
    ) -> Result<Response<pb::BeginRegistrationResponse>, Status> {
        let grant = grant(&req)?;
        let r = req.into_inner();
        if r.rp_id.is_empty() {
            return Err(RequestError::Invalid("rp_id is empty".into()).into());
        }
        require_rp(&grant, &r.rp_id)?;
        let begin = crate::engine::begin::BeginRegistration {
            rp_id: r.rp_id,
            user_handle: r.user_handle,
            user_name: r.user_name,
            user_display_name: r.user_display_name,
            profile: r.profile,
            ttl_seconds: r.ttl_seconds,
        };
        let (options_json, issued) = self.engine.begin_registration(&begin, &grant).await?;
        Ok(Response::new(pb::BeginRegistrationResponse {
            options_json,
            challenge: issued.challenge,
            expires_at: Some(timestamp(issued.expires_at)),
        }))
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
                    log_credential_event(&self.engine, Kind::CredentialReplaced, &grant, &stored, "PutCredential replace", "admin").await;
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
            log_credential_event(&self.engine, Kind::CredentialRegistered, &grant, &created, "PutCredential", "admin").await;
            created
        };
        Ok(Response::new(pb::PutCredentialResponse { credential: Some(self.record(stored)) }))
    }

    async fn delete_credential(&self, req: Request<pb::DeleteCredentialRequest>) -> Result<Response<pb::DeleteCredentialResponse>, Status> {
        let grant = grant(&req)?;
        let req = req.into_inner();
        require_id(&grant, &req.rp_id, &req.credential_id)?;
        let deleted =
            self.engine.delete(&req.rp_id, &req.credential_id).await.map_err(RequestError::from)?.ok_or(RequestError::NotFound)?;
        audit("delete", &grant, &deleted, "erased");
        log_credential_event(&self.engine, Kind::CredentialDeleted, &grant, &deleted, "", "admin").await;
        Ok(Response::new(pb::DeleteCredentialResponse { credential: Some(self.record(deleted)) }))
    }

    async fn get_credential(&self, req: Request<pb::GetCredentialRequest>) -> Result<Response<pb::GetCredentialResponse>, Status> {
        let grant = grant(&req)?;
        let req = req.into_inner();
        require_id(&grant, &req.rp_id, &req.credential_id)?;
        let found =
            self.engine.credential(&req.rp_id, &req.credential_id).await.map_err(RequestError::from)?.ok_or(RequestError::NotFound)?;
        Ok(Response::new(pb::GetCredentialResponse { credential: Some(self.record(found)) }))
    }

    async fn revoke_credential(&self, req: Request<pb::RevokeCredentialRequest>) -> Result<Response<pb::RevokeCredentialResponse>, Status> {
        let grant = grant(&req)?;
        let req = req.into_inner();
        require_id(&grant, &req.rp_id, &req.credential_id)?;
        let revoked =
            self.engine.revoke(&req.rp_id, &req.credential_id).await.map_err(RequestError::from)?.ok_or(RequestError::NotFound)?;
        audit("revoke", &grant, &revoked, "revoked");
        log_credential_event(&self.engine, Kind::CredentialRevoked, &grant, &revoked, "", "admin").await;
        Ok(Response::new(pb::RevokeCredentialResponse { credential: Some(self.record(revoked)) }))
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
        let level = format!("level {}", risk.level.as_str());
        let facts = Facts { level: Some(risk.level.as_str().to_owned()), ..Facts::by("admin") };
        log_event(&self.engine, Kind::UserRiskSet, &grant, &risk.rp_id, &risk.user_handle, &[], level, Some(facts)).await;
        Ok(Response::new(pb::SetUserRiskResponse {}))
    }

    async fn clear_user_risk(&self, req: Request<pb::ClearUserRiskRequest>) -> Result<Response<pb::ClearUserRiskResponse>, Status> {
        let grant = grant(&req)?;
        let req = req.into_inner();
        require_user(&grant, &req.rp_id, &req.user_handle)?;
        let cleared = self.engine.clear_user_risk(&req.rp_id, &req.user_handle).await.map_err(RequestError::from)?;
        audit_user("clear_user_risk", &grant, &req.rp_id, &req.user_handle, if cleared { "cleared" } else { "no flag to clear" });
        if cleared {
            log_event(&self.engine, Kind::UserRiskCleared, &grant, &req.rp_id, &req.user_handle, &[], String::new(), None).await;
        }
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
        if revoked > 0 {
            let detail = format!("{revoked} credentials revoked");
            log_event(&self.engine, Kind::UserCredentialsRevoked, &grant, &req.rp_id, &req.user_handle, &[], detail, None).await;
        }
        Ok(Response::new(pb::RevokeUserCredentialsResponse { revoked: u32::try_from(revoked).unwrap_or(u32::MAX) }))
    }

    async fn list_credentials(&self, req: Request<pb::ListCredentialsRequest>) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        let grant = grant(&req)?;
        let req = req.into_inner();
        if req.rp_id.is_empty() || req.user_handle.is_empty() {
            return Err(RequestError::Invalid("rp_id and user_handle are required".into()).into());
        }
        require_rp(&grant, &req.rp_id)?;
        let list = self.engine.credentials_of(&req.rp_id, &req.user_handle).await.map_err(RequestError::from)?;
        Ok(Response::new(pb::ListCredentialsResponse { credentials: list.into_iter().map(|r| self.record(r)).collect() }))
    }

    async fn get_credential_stats(
        &self,
        req: Request<pb::GetCredentialStatsRequest>,
    ) -> Result<Response<pb::GetCredentialStatsResponse>, Status> {
        let grant = grant(&req)?;
        let req = req.into_inner();
        if req.rp_id.is_empty() {
            return Err(RequestError::Invalid("rp_id is required".into()).into());
        }
        require_rp(&grant, &req.rp_id)?;
        let rows = super::stats::credential_stats(&self.engine, &req.rp_id, req.group_by()).await?;
        Ok(Response::new(pb::GetCredentialStatsResponse { rows }))
    }

    async fn issue_temporary_access_pass(
        &self,
        req: Request<pb::IssueTemporaryAccessPassRequest>,
    ) -> Result<Response<pb::IssueTemporaryAccessPassResponse>, Status> {
        super::recover::issue(&self.engine, req).await
    }

    async fn revoke_temporary_access_pass(
        &self,
        req: Request<pb::RevokeTemporaryAccessPassRequest>,
    ) -> Result<Response<pb::RevokeTemporaryAccessPassResponse>, Status> {
        super::recover::revoke(&self.engine, req).await
    }

    async fn list_temporary_access_passes(
        &self,
        req: Request<pb::ListTemporaryAccessPassesRequest>,
    ) -> Result<Response<pb::ListTemporaryAccessPassesResponse>, Status> {
        super::recover::list(&self.engine, req).await
    }

    type PreviewPolicyStream = super::preview::PreviewStream;

    async fn preview_policy(&self, req: Request<pb::PreviewPolicyRequest>) -> Result<Response<Self::PreviewPolicyStream>, Status> {
        super::preview::preview(self.engine.clone(), req).await
    }

    type WatchEventsStream = super::events::EventStream;

    async fn watch_events(&self, req: Request<pb::WatchEventsRequest>) -> Result<Response<Self::WatchEventsStream>, Status> {
        super::events::watch(self.engine.clone(), req).await
    }
}
