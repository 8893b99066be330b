//! `CredentialService.PreviewPolicy`: a candidate laid over the policy in
//! force, every stored credential of the asked relying parties judged
//! under both, streamed as pages of users and a summary.

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::authz::RpScope;
use crate::preview::{LockedOut, Overlay, Policy, ProfileTally, Scope, Summary, Tally, UsersWanted};

/// The stream PreviewPolicy answers with.
pub(super) type PreviewStream = Pin<Box<dyn Stream<Item = Result<pb::PreviewPolicyResponse, Status>> + Send>>;

/// Users per message unless asked otherwise, and at most.
const DEFAULT_PAGE: u32 = 500;
const MAX_PAGE: u32 = 5000;

fn users_pb(page: Vec<LockedOut>) -> pb::PreviewPolicyResponse {
    let users = page
        .into_iter()
        .map(|u| pb::LockedOutUser {
            rp_id: u.rp_id,
            profile: u.profile,
            user_handle: u.user_handle,
            credentials: u.credentials,
            reasons: u.reasons.into_iter().map(|r| r.as_i32()).collect(),
            newly: u.newly,
        })
        .collect();
    pb::PreviewPolicyResponse { users, summary: None }
}

fn profile_pb(t: ProfileTally) -> pb::ProfilePreview {
    pb::ProfilePreview {
        rp_id: t.rp_id,
        profile: t.profile,
        role: t.role.as_str().to_owned(),
        credentials: t.credentials,
        revoked: t.revoked,
        allowed: t.allowed,
        stepped_up: t.stepped_up,
        refused: t.refused,
        newly_refused: t.newly_refused,
        refused_by_reason: t.refused_by_reason.into_iter().map(|(r, n)| pb::ReasonCount { reason: r.as_i32(), credentials: n }).collect(),
        users: t.users,
        users_without_usable: t.users_without_usable,
        users_newly_without_usable: t.users_newly_without_usable,
    }
}

fn summary_pb(s: Summary, elapsed_ms: u64) -> pb::PreviewPolicyResponse {
    pb::PreviewPolicyResponse {
        users: Vec::new(),
        summary: Some(pb::PreviewSummary {
            profiles: s.profiles.into_iter().map(profile_pb).collect(),
            credentials_scanned: s.credentials_scanned,
            credentials_of_unknown_relying_parties: s.credentials_of_unknown_rps,
            elapsed_ms,
        }),
    }
}

/// The two sides: the candidate (the overlay, and the metadata if given)
/// and the policy in force.
fn sides(engine: &Engine, r: &pb::PreviewPolicyRequest) -> Result<(Policy, Policy), Status> {
    let in_force = engine.reloadable();
    let invalid = |e: crate::config::Invalid| RequestError::Invalid(format!("candidate: {}: {}", e.key, e.problem));
    let overlay = Overlay::parse(&r.candidate).map_err(|e| RequestError::Invalid(format!("candidate: {e}")))?;
    let mut candidate = overlay.apply(&in_force).map_err(invalid)?;
    if !r.candidate_metadata.is_empty() {
        let loaded = in_force.metadata.as_ref().ok_or_else(|| {
            Status::failed_precondition("candidate_metadata needs [metadata] in force (its format and root check the candidate)")
        })?;
        let m = loaded.candidate(&r.candidate_metadata).map_err(|e| RequestError::Invalid(format!("candidate_metadata: {e}")))?;
        candidate = candidate.with_metadata(m);
    }
    Ok((candidate, Policy::of(&in_force).map_err(invalid)?))
}

pub(super) async fn preview(engine: Arc<Engine>, req: Request<pb::PreviewPolicyRequest>) -> Result<Response<PreviewStream>, Status> {
    let grant = grant(&req)?;
    let r = req.into_inner();
    let (candidate, in_force) = sides(&engine, &r)?;
    let only: Vec<String> = if r.rp_id.is_empty() {
        candidate.rps.keys().filter(|id| grant.rps.allows(id)).cloned().collect()
    } else {
        require_rp(&grant, &r.rp_id)?;
        if !candidate.rps.contains_key(&r.rp_id) {
            return Err(RequestError::Invalid(format!("relying party {:?} is not configured", assertd_verify::truncate(&r.rp_id))).into());
        }
        vec![r.rp_id.clone()]
    };
    let scope = match (&grant.rps, r.rp_id.is_empty()) {
        (RpScope::All, true) => Scope::All,
        _ => Scope::Only(only.clone()),
    };
    let wanted = match r.users() {
        pb::PreviewUsers::Unspecified | pb::PreviewUsers::NewlyLockedOut => UsersWanted::Newly,
        pb::PreviewUsers::AllLockedOut => UsersWanted::All,
        pb::PreviewUsers::None => UsersWanted::None,
    };
    let page_size = match r.page_size {
        0 => DEFAULT_PAGE,
        n if n <= MAX_PAGE => n,
        n => return Err(RequestError::Invalid(format!("page_size {n} is over {MAX_PAGE}")).into()),
    };
    let slot = engine.preview_slot().ok_or_else(|| Status::resource_exhausted("a policy preview is already running on this replica"))?;
    let tally = Tally::new(Arc::new(candidate), Some(Arc::new(in_force)), wanted, Some(&only));
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        let _slot = slot;
        let started = std::time::Instant::now();
        let result = crate::preview::scan(&*engine, tally, scope, page_size as usize, &tx, |page| Ok(users_pb(page))).await;
        let last = match result {
            Ok(Some(summary)) => Ok(summary_pb(summary, u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))),
            Ok(None) => return, // The caller went away.
            Err(e) => Err(Status::from(RequestError::from(e))),
        };
        let _ = tx.send(last).await;
    });
    Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
}
