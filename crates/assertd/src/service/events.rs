//! `CredentialService.WatchEvents`: the event log as a stream, from a
//! cursor, for the relying parties in the caller's grant.

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::authz::RpScope;
use crate::engine::events::Kind;
use assertd_store::Event;
use std::time::Duration;

/// Events read per store call.
const PAGE: usize = 256;
/// The floor under the change feed: a watcher reads the log at least this
/// often.
const POLL: Duration = Duration::from_secs(1);

/// The stream WatchEvents answers with.
pub(super) type EventStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEventsResponse, Status>> + Send>>;

fn kind_to_pb(kind: &str) -> pb::EventKind {
    match Kind::parse(kind) {
        Some(Kind::CredentialRegistered) => pb::EventKind::CredentialRegistered,
        Some(Kind::CredentialReplaced) => pb::EventKind::CredentialReplaced,
        Some(Kind::CredentialRevoked) => pb::EventKind::CredentialRevoked,
        Some(Kind::CredentialDeleted) => pb::EventKind::CredentialDeleted,
        Some(Kind::UserCredentialsRevoked) => pb::EventKind::UserCredentialsRevoked,
        Some(Kind::UserRiskSet) => pb::EventKind::UserRiskSet,
        Some(Kind::UserRiskCleared) => pb::EventKind::UserRiskCleared,
        Some(Kind::UserRiskRemediated) => pb::EventKind::UserRiskRemediated,
        Some(Kind::UserRiskExpired) => pb::EventKind::UserRiskExpired,
        Some(Kind::AccessPassIssued) => pb::EventKind::AccessPassIssued,
        Some(Kind::AccessPassRedeemed) => pb::EventKind::AccessPassRedeemed,
        Some(Kind::AccessPassRevoked) => pb::EventKind::AccessPassRevoked,
        Some(Kind::AuthenticatorModelRevoked) => pb::EventKind::AuthenticatorModelRevoked,
        None => pb::EventKind::Unspecified,
    }
}

fn to_pb(e: Event) -> pb::WatchEventsResponse {
    let kind = kind_to_pb(&e.event.kind);
    let facts = crate::engine::events::Facts::from_json(&e.event.facts);
    let aaguid = facts.aaguid.as_deref().and_then(assertd_verify::metadata::parse_aaguid).map(|a| a.to_vec()).unwrap_or_default();
    pb::WatchEventsResponse {
        event: Some(pb::Event {
            cursor: e.id.to_string(),
            at: Some(convert::timestamp(e.event.at_ms)),
            kind: kind as i32,
            rp_id: e.event.rp_id,
            user_handle: e.event.user_handle,
            credential_id: e.event.credential_id,
            actor: e.event.actor,
            detail: e.event.detail,
            aaguid,
            affected_credentials: facts.credentials.unwrap_or(0),
        }),
    }
}

pub(super) async fn watch(engine: Arc<Engine>, req: Request<pb::WatchEventsRequest>) -> Result<Response<EventStream>, Status> {
    let grant = grant(&req)?;
    let r = req.into_inner();
    for rp in &r.rp_ids {
        require_rp(&grant, rp)?;
    }
    let filter: Option<Vec<String>> = match (&grant.rps, r.rp_ids.is_empty()) {
        (_, false) => Some(r.rp_ids),
        (RpScope::All, true) => None,
        (RpScope::Only(set), true) => Some(set.iter().cloned().collect()),
    };
    // Subscribed before the first read: nothing appended in between is
    // waited for in vain.
    let mut signal = engine.event_signal();
    let mut stopping = engine.stopping();
    let (first, last) = engine.event_bounds().await.map_err(RequestError::from)?;
    let mut cursor = if r.after_cursor.is_empty() {
        last
    } else {
        let c: i64 = r.after_cursor.parse().ok().filter(|c| *c >= 0).ok_or_else(|| {
            RequestError::Invalid(format!("after_cursor {:?} is not a cursor", assertd_verify::truncate(&r.after_cursor)))
        })?;
        // Events after the cursor were pruned, or the cursor is not this
        // log's: the watcher missed events.
        let missed = c > last || first.map_or(c < last, |f| c < f - 1);
        if missed {
            return Err(Status::out_of_range(format!(
                "cursor {c} is outside the retained events ({}..={last}): events were missed; resynchronise, then watch without a cursor",
                first.map_or_else(|| "none".to_owned(), |f| (f - 1).to_string())
            )));
        }
        c
    };
    let slot = engine.watcher_slot().ok_or_else(|| {
        Status::resource_exhausted(format!("this replica serves {} watch streams already", crate::engine::events::MAX_WATCHERS))
    })?;
    let (tx, rx) = tokio::sync::mpsc::channel(PAGE);
    tokio::spawn(async move {
        let _slot = slot;
        loop {
            let page = match engine.events_after(cursor, filter.clone(), PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(Status::from(RequestError::from(e)))).await;
                    return;
                }
            };
            let full = page.len() == PAGE;
            for e in page {
                cursor = e.id;
                if tx.send(Ok(to_pb(e))).await.is_err() {
                    return; // The watcher went away.
                }
            }
            if full {
                continue;
            }
            if *stopping.borrow() {
                let _ = tx.send(Err(Status::unavailable("the server is shutting down: watch another replica from your last cursor"))).await;
                return;
            }
            tokio::select! {
                changed = signal.changed() => if changed.is_err() { return },
                _ = stopping.changed() => {}
                () = tokio::time::sleep(POLL) => {}
                () = tx.closed() => return,
            }
        }
    });
    Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
}
