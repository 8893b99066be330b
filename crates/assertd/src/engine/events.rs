//! The event log through the engine: what the services and sign-ins
//! append (after the change they report committed), and what watchers read.
//! Watchers wait on a generation counter this replica bumps on its own
//! appends and when the store's change feed says another replica appended.

use super::Engine;
use super::clock::now_ms;
use crate::telemetry;
use assertd_store::{Event, NewEvent, StoreError};

/// Watch streams a replica serves at once: each is woken by every append
/// and reads the log at least once a second, so the count is bounded
/// (RESOURCE_EXHAUSTED past it). A gateway needs one or two.
pub const MAX_WATCHERS: usize = 256;

/// What happened: the stable names the store keeps (and the API's
/// `EventKind`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// RegisterCredential allowed, or PutCredential created one.
    CredentialRegistered,
    /// PutCredential replaced one.
    CredentialReplaced,
    /// RevokeCredential.
    CredentialRevoked,
    /// DeleteCredential.
    CredentialDeleted,
    /// RevokeUserCredentials.
    UserCredentialsRevoked,
    /// SetUserRisk.
    UserRiskSet,
    /// ClearUserRisk.
    UserRiskCleared,
    /// A passkey sign-in remediated the flag.
    UserRiskRemediated,
    /// The flag lapsed at its expiry.
    UserRiskExpired,
    /// IssueTemporaryAccessPass.
    AccessPassIssued,
    /// A pass was redeemed.
    AccessPassRedeemed,
    /// RevokeTemporaryAccessPass (or a newer pass replaced it).
    AccessPassRevoked,
    /// The FIDO metadata blocked a model some credentials are of.
    AuthenticatorModelRevoked,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 13] = [
        Self::CredentialRegistered,
        Self::CredentialReplaced,
        Self::CredentialRevoked,
        Self::CredentialDeleted,
        Self::UserCredentialsRevoked,
        Self::UserRiskSet,
        Self::UserRiskCleared,
        Self::UserRiskRemediated,
        Self::UserRiskExpired,
        Self::AccessPassIssued,
        Self::AccessPassRedeemed,
        Self::AccessPassRevoked,
        Self::AuthenticatorModelRevoked,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CredentialRegistered => "credential_registered",
            Self::CredentialReplaced => "credential_replaced",
            Self::CredentialRevoked => "credential_revoked",
            Self::CredentialDeleted => "credential_deleted",
            Self::UserCredentialsRevoked => "user_credentials_revoked",
            Self::UserRiskSet => "user_risk_set",
            Self::UserRiskCleared => "user_risk_cleared",
            Self::UserRiskRemediated => "user_risk_remediated",
            Self::UserRiskExpired => "user_risk_expired",
            Self::AccessPassIssued => "access_pass_issued",
            Self::AccessPassRedeemed => "access_pass_redeemed",
            Self::AccessPassRevoked => "access_pass_revoked",
            Self::AuthenticatorModelRevoked => "authenticator_model_revoked",
        }
    }

    /// From the stored name (`None`: a kind a newer release wrote).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An event about to be appended: who and what; the time is the engine's.
#[derive(Debug, Clone)]
pub struct Happened<'a> {
    /// What.
    pub kind: Kind,
    /// The relying party.
    pub rp_id: &'a str,
    /// The user (empty: none).
    pub user_handle: &'a [u8],
    /// The credential (empty: none).
    pub credential_id: &'a [u8],
    /// Who.
    pub actor: &'a str,
    /// Details for people.
    pub detail: String,
    /// Facts for machines (what the Shared Signals transmitter needs).
    pub facts: Facts,
}

impl Happened<'_> {
    /// The event as the store appends it, happened at `at_ms`.
    pub fn at(self, at_ms: i64) -> NewEvent {
        NewEvent {
            at_ms,
            rp_id: self.rp_id.to_owned(),
            kind: self.kind.as_str().to_owned(),
            user_handle: self.user_handle.to_vec(),
            credential_id: self.credential_id.to_vec(),
            actor: self.actor.to_owned(),
            detail: self.detail,
            facts: self.facts.to_json(),
        }
    }
}

/// Facts for machines kept with an event (the store's `facts`, as JSON):
/// what a Shared Signals receiver is told beyond who and what. Absent
/// fields were not known or do not apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Facts {
    /// A credential event's AAGUID (UUID text), when not all zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aaguid: Option<String>,
    /// A credential event's authenticator: `platform` or `cross-platform`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator: Option<String>,
    /// A risk flag's level (`medium`, `high`): the one set, or the one that
    /// was cleared, lapsed or remediated when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// How many credentials a model event affects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<u64>,
    /// A remediating sign-in verified the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_verified: Option<bool>,
    /// Who set it off, in CAEP's words: `admin`, `user`, `policy`, `system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
}

impl Facts {
    /// What `initiator` set it off.
    pub fn by(initiator: &str) -> Self {
        Self { initiator: Some(initiator.to_owned()), ..Self::default() }
    }

    /// A credential's facts: its AAGUID and its authenticator. The
    /// attachment the client reported decides; without one, a synced
    /// (backup-eligible) credential or one reached over `internal` is the
    /// platform's, any other a roaming authenticator's.
    pub fn of_credential(record: &assertd_store::StoredCredential, initiator: &str) -> Self {
        let platform = match record.attachment {
            Some(a) => a == assertd_verify::Attachment::Platform,
            None => record.backup_eligible || record.transports.iter().any(|t| t == "internal"),
        };
        let aaguid = record.aaguid16();
        Self {
            aaguid: (aaguid != [0; 16]).then(|| assertd_verify::metadata::format_uuid(&aaguid)),
            authenticator: Some(if platform { "platform" } else { "cross-platform" }.to_owned()),
            ..Self::by(initiator)
        }
    }

    /// The JSON the store keeps (empty when there are no facts).
    fn to_json(&self) -> String {
        if *self == Self::default() { String::new() } else { serde_json::to_string(self).unwrap_or_default() }
    }

    /// Read back from the store (unknown or unreadable: none).
    pub fn from_json(s: &str) -> Self {
        serde_json::from_str(s).unwrap_or_default()
    }
}

impl Engine {
    /// Appends events (after the changes they report committed) and wakes
    /// this replica's watchers. A failed append is logged and counted: the
    /// change itself stands.
    pub async fn record(&self, happened: Vec<Happened<'_>>) {
        let now = now_ms();
        let events: Vec<NewEvent> = happened.into_iter().map(|h| h.at(now)).collect();
        match self.cache.store().append_events(events).await {
            Ok(_) => self.events_appended(),
            Err(e) => {
                telemetry::store_error("append_events");
                tracing::warn!(error = %e, "appending to the event log failed; watchers will not see this change");
            }
        }
    }

    /// Wakes this replica's watchers (another replica appended, or the
    /// change feed reconnected).
    pub fn events_appended(&self) {
        self.events.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Ends every watch stream (the server is draining): watchers reconnect
    /// to another replica with their cursor, and the drain does not wait
    /// for streams that never end.
    pub fn stop_watchers(&self) {
        self.stopping.send_replace(true);
    }

    /// A slot for one more watch stream, held while it is open; `None` at
    /// [`MAX_WATCHERS`].
    pub fn watcher_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.watchers.clone().try_acquire_owned().ok()
    }

    /// A receiver that turns true when the server starts draining.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// A receiver that changes whenever events may have been appended.
    pub fn event_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Up to `limit` events after `after`, of these relying parties
    /// (`None`: all).
    pub async fn events_after(&self, after: i64, rp_ids: Option<Vec<String>>, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.cache.store().events_after(after, rp_ids, limit).await
    }

    /// The oldest retained event's id and the newest id given.
    pub async fn event_bounds(&self) -> Result<(Option<i64>, i64), StoreError> {
        self.cache.store().event_bounds().await
    }

    /// Reports the authenticator models `metadata` (now in force) blocks
    /// that no replica reported yet: one `authenticator_model_revoked` event
    /// per relying party with unrevoked credentials of the model (actor
    /// `metadata`), and a log line per model. Of replicas loading the same
    /// metadata, the store gives each model to one. A failure is logged:
    /// the model is reported at the next load.
    pub async fn report_blocked_models(&self, metadata: &assertd_verify::metadata::Metadata) {
        let blocked: Vec<[u8; 16]> = metadata.models.iter().filter(|(_, m)| m.blocked.is_some()).map(|(a, _)| *a).collect();
        let store = self.cache.store();
        let result = async {
            let new = store.report_blocked_models(blocked, now_ms()).await?;
            let counts = if new.is_empty() { Vec::new() } else { store.count_by_aaguid(new.clone()).await? };
            Ok::<_, StoreError>((new, counts))
        };
        let (new, counts) = match result.await {
            Ok(r) => r,
            Err(e) => {
                telemetry::store_error("report_blocked_models");
                tracing::warn!(error = %e, "reporting the models the metadata blocks failed; reported at the next metadata load");
                return;
            }
        };
        for aaguid in &new {
            let model = metadata.models.get(aaguid);
            let affected: u64 = counts.iter().filter(|(_, a, _)| a == aaguid).map(|(_, _, n)| n).sum();
            tracing::warn!(
                aaguid = %assertd_verify::metadata::format_uuid(aaguid),
                model = model.map_or("", |m| &*m.description),
                status = model.and_then(|m| m.blocked.as_deref()).unwrap_or(""),
                affected_credentials = affected,
                "the FIDO metadata blocks an authenticator model: its credentials are refused AUTHENTICATOR_STATUS_REVOKED"
            );
        }
        let happened: Vec<Happened<'_>> = counts
            .iter()
            .map(|(rp_id, aaguid, n)| {
                let model = metadata.models.get(aaguid);
                let name = model.map_or("an authenticator model", |m| &*m.description);
                let status = model.and_then(|m| m.blocked.as_deref()).unwrap_or("blocked");
                Happened {
                    kind: Kind::AuthenticatorModelRevoked,
                    rp_id,
                    user_handle: &[],
                    credential_id: &[],
                    actor: "metadata",
                    detail: format!("{name}: {status} in the FIDO metadata (no {}); {n} credentials", metadata.number),
                    facts: Facts {
                        aaguid: Some(assertd_verify::metadata::format_uuid(aaguid)),
                        credentials: Some(*n),
                        ..Facts::by("system")
                    },
                }
            })
            .collect();
        if !happened.is_empty() {
            self.record(happened).await;
        }
    }

    /// Takes or renews a push receiver's delivery lease (see
    /// [`assertd_store::Deliveries`]); its cursor when held.
    pub async fn claim_delivery(
        &self,
        receiver: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
        start: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.cache.store().claim_delivery(receiver, holder, now_ms, until_ms, start).await
    }

    /// Moves a held receiver's cursor forward; `false` when the lease is lost.
    pub async fn advance_delivery(&self, receiver: &str, holder: &str, cursor: i64, until_ms: i64) -> Result<bool, StoreError> {
        self.cache.store().advance_delivery(receiver, holder, cursor, until_ms).await
    }

    /// Gives a receiver's lease up.
    pub async fn release_delivery(&self, receiver: &str, holder: &str) -> Result<(), StoreError> {
        self.cache.store().release_delivery(receiver, holder).await
    }

    /// Forgets events older than `[events] retention_days`.
    pub async fn prune_events(&self) {
        let retention = self.policy.load().events_retention_ms;
        if let Err(e) = self.cache.store().prune_events(now_ms().saturating_sub(retention)).await {
            telemetry::store_error("prune_events");
            tracing::warn!(error = %e, "pruning the event log failed");
        }
    }
}
