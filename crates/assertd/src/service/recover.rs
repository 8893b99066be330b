//! Temporary access passes over gRPC: `CredentialService`'s Issue, Revoke
//! and List (group `credentials.recover`) and `VerificationService.
//! RedeemTemporaryAccessPass` (group `verify`). Every call is audited by
//! the pass's id; the pass itself is never logged.

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::engine::access_pass::IssuePass;
use crate::engine::events::Kind;
use assertd_store::AccessPass;
use assertd_verify::access_pass::Pass;

/// One audit line per pass action: who, which user, which pass.
fn audit_pass(action: &'static str, grant: &Grant, p: &AccessPass, what: &str) {
    tracing::info!(
        target: "assertd::audit",
        action,
        client = %grant.client,
        rp_id = %assertd_verify::truncate(&p.rp_id),
        user_handle = %b64url(&p.user_handle),
        pass_id = %p.pass_id,
        what = %assertd_verify::truncate(what),
        "temporary access pass {action}"
    );
}

/// A stored pass as the API shows it (never the hash).
fn to_pb(p: AccessPass) -> pb::TemporaryAccessPass {
    let usable = p.usable(now_ms());
    pb::TemporaryAccessPass {
        pass_id: p.pass_id,
        rp_id: p.rp_id,
        user_handle: p.user_handle,
        created_at: Some(convert::timestamp(p.created_at_ms)),
        expires_at: Some(convert::timestamp(p.expires_at_ms)),
        one_time: p.one_time,
        used: p.used_at_ms.is_some(),
        first_used_at: p.used_at_ms.map(convert::timestamp),
        uses: p.uses,
        revoked_at: p.revoked_at_ms.map(convert::timestamp),
        usable,
        issued_by: p.issued_by,
        note: p.note,
    }
}

pub(super) async fn issue(
    engine: &Engine,
    req: Request<pb::IssueTemporaryAccessPassRequest>,
) -> Result<Response<pb::IssueTemporaryAccessPassResponse>, Status> {
    let grant = grant(&req)?;
    let r = req.into_inner();
    require_user(&grant, &r.rp_id, &r.user_handle)?;
    let issue =
        IssuePass { rp_id: r.rp_id, user_handle: r.user_handle, lifetime_seconds: r.lifetime_seconds, one_time: r.one_time, note: r.note };
    let issued = engine.issue_pass(issue, &grant.client).await?;
    let s = &issued.stored;
    let what =
        format!("expires_at_ms {}, one_time {}, replaced [{}], note {:?}", s.expires_at_ms, s.one_time, issued.replaced.join(", "), s.note);
    audit_pass("issue_access_pass", &grant, s, &what);
    for old in &issued.replaced {
        log_event(
            engine,
            Kind::AccessPassRevoked,
            &grant,
            &s.rp_id,
            &s.user_handle,
            &[],
            format!("pass {old} replaced by {}", s.pass_id),
            None,
        )
        .await;
    }
    log_event(engine, Kind::AccessPassIssued, &grant, &s.rp_id, &s.user_handle, &[], format!("pass {}", s.pass_id), None).await;
    crate::telemetry::access_pass("issued");
    Ok(Response::new(pb::IssueTemporaryAccessPassResponse {
        pass: issued.pass.display(),
        pass_id: s.pass_id.clone(),
        expires_at: Some(convert::timestamp(s.expires_at_ms)),
        one_time: s.one_time,
        replaced_pass_ids: issued.replaced,
    }))
}

pub(super) async fn revoke(
    engine: &Engine,
    req: Request<pb::RevokeTemporaryAccessPassRequest>,
) -> Result<Response<pb::RevokeTemporaryAccessPassResponse>, Status> {
    let grant = grant(&req)?;
    let r = req.into_inner();
    if r.rp_id.is_empty() || r.pass_id.is_empty() {
        return Err(RequestError::Invalid("rp_id and pass_id are required".into()).into());
    }
    if r.pass_id.len() > 64 {
        return Err(RequestError::Invalid("pass_id is over 64 bytes".into()).into());
    }
    require_rp(&grant, &r.rp_id)?;
    let p = engine.revoke_pass(&r.rp_id, &r.pass_id).await.map_err(RequestError::from)?.ok_or(RequestError::NotFound)?;
    audit_pass("revoke_access_pass", &grant, &p, "revoked");
    log_event(engine, Kind::AccessPassRevoked, &grant, &p.rp_id, &p.user_handle, &[], format!("pass {}", p.pass_id), None).await;
    crate::telemetry::access_pass("revoked");
    Ok(Response::new(pb::RevokeTemporaryAccessPassResponse { pass: Some(to_pb(p)) }))
}

pub(super) async fn list(
    engine: &Engine,
    req: Request<pb::ListTemporaryAccessPassesRequest>,
) -> Result<Response<pb::ListTemporaryAccessPassesResponse>, Status> {
    let grant = grant(&req)?;
    let r = req.into_inner();
    require_user(&grant, &r.rp_id, &r.user_handle)?;
    let passes = engine.passes(&r.rp_id, &r.user_handle).await.map_err(RequestError::from)?;
    audit_user("list_access_passes", &grant, &r.rp_id, &r.user_handle, &format!("{} passes", passes.len()));
    Ok(Response::new(pb::ListTemporaryAccessPassesResponse { passes: passes.into_iter().map(to_pb).collect() }))
}

pub(super) async fn redeem(
    engine: &Engine,
    req: Request<pb::RedeemTemporaryAccessPassRequest>,
) -> Result<Response<pb::RedeemTemporaryAccessPassResponse>, Status> {
    let grant = grant(&req)?;
    let r = req.into_inner();
    require_user(&grant, &r.rp_id, &r.user_handle)?;
    let typed = Pass::parse(&r.pass).map_err(|e| RequestError::Invalid(format!("pass: {e}")))?;
    let context = convert::context(r.context.as_ref());
    let (verdict, pass_id) =
        engine.redeem_pass(&grant, &r.rp_id, &r.user_handle, &typed, &r.profile, context).await.map_err(RequestError::from)?;
    let reasons = verdict.reasons.iter().map(|f| f.code.as_str()).collect::<Vec<_>>().join(",");
    tracing::info!(
        target: "assertd::audit",
        action = "redeem_access_pass",
        client = %grant.client,
        rp_id = %assertd_verify::truncate(&r.rp_id),
        user_handle = %b64url(&r.user_handle),
        pass_id = %pass_id.as_deref().unwrap_or("-"),
        decision = verdict.decision.as_str(),
        reasons = %reasons,
        "temporary access pass sign-in"
    );
    if let (assertd_policy::Decision::Allow, Some(id)) = (verdict.decision, &pass_id) {
        log_event(
            engine,
            Kind::AccessPassRedeemed,
            &grant,
            &r.rp_id,
            &r.user_handle,
            &[],
            format!("pass {id} redeemed by a sign-in"),
            Some(Facts::by("user")),
        )
        .await;
    }
    crate::telemetry::access_pass(match verdict.decision {
        assertd_policy::Decision::Allow => "redeemed",
        _ => "refused",
    });
    let verdict = convert::verdict(crate::engine::Outcome {
        request_id: String::new(),
        verdict,
        authenticator: None,
        credential: None,
        backup_state_changed: false,
        signal_unknown_credential: None,
        authenticator_name: None,
        report_only: Vec::new(),
    });
    Ok(Response::new(pb::RedeemTemporaryAccessPassResponse { verdict: Some(verdict) }))
}
