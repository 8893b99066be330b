//! The event log gateways watch (`CredentialService.WatchEvents`): what
//! changed, for whom, by whom, in the order the store committed it. Each
//! event's id is its cursor: ids grow in commit order on both backends
//! (SQLite has one writer; PostgreSQL appends under a transaction-scoped
//! advisory lock), so a watcher that asks for "after N" never misses one
//! committed later with a smaller id.

use crate::row::Columns;
use crate::types::StoreError;

/// The event columns, in the order [`event`] reads them (`id` first).
pub(crate) const EVENT_COLUMNS: &str = "id, at_ms, rp_id, kind, user_handle, credential_id, actor, detail, facts";

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// When it happened, Unix milliseconds.
    pub at_ms: i64,
    /// The relying party.
    pub rp_id: String,
    /// What happened (a stable name, e.g. `credential_revoked`).
    pub kind: String,
    /// The user, when there is one.
    pub user_handle: Vec<u8>,
    /// The credential, when there is one.
    pub credential_id: Vec<u8>,
    /// Who did it: a client's name, `sign-in`, `metadata`, `cli`.
    pub actor: String,
    /// Details for people.
    pub detail: String,
    /// Facts for machines: a JSON object the server writes and reads (the
    /// store keeps it as text), e.g. the authenticator of a credential
    /// event; empty when there are none.
    pub facts: String,
}

/// An event as stored: its cursor and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its position in the log (the cursor).
    pub id: i64,
    /// What happened.
    pub event: NewEvent,
}

/// Decodes a row of [`EVENT_COLUMNS`].
pub(crate) fn event(r: &impl Columns) -> Result<Event, StoreError> {
    let c = |column: &'static str| move |why: String| StoreError::Corrupt(format!("events.{column}: {why}"));
    Ok(Event {
        id: r.int(0).map_err(c("id"))?,
        event: NewEvent {
            at_ms: r.int(1).map_err(c("at_ms"))?,
            rp_id: r.text(2).map_err(c("rp_id"))?,
            kind: r.text(3).map_err(c("kind"))?,
            user_handle: r.bytes(4).map_err(c("user_handle"))?,
            credential_id: r.bytes(5).map_err(c("credential_id"))?,
            actor: r.text(6).map_err(c("actor"))?,
            detail: r.text(7).map_err(c("detail"))?,
            facts: r.text(8).map_err(c("facts"))?,
        },
    })
}
