//! The SQLite schema: migrations, applied in order at open.

use super::unavailable;
use crate::types::StoreError;
use rusqlite::Connection;

/// Schema migrations, applied in order; `PRAGMA user_version` records how
/// many ran. Never edit one that has shipped: append.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE credentials (
    rp_id           TEXT    NOT NULL,
    credential_id   BLOB    NOT NULL,
    user_handle     BLOB    NOT NULL,
    public_key_cose BLOB    NOT NULL,
    sign_count      INTEGER NOT NULL CHECK (sign_count BETWEEN 0 AND 4294967295),
    backup_eligible INTEGER NOT NULL,
    backup_state    INTEGER NOT NULL,
    aaguid          BLOB    NOT NULL,
    attested        INTEGER NOT NULL,
    transports      TEXT    NOT NULL,
    revoked         INTEGER NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    last_used_at_ms INTEGER,
    PRIMARY KEY (rp_id, credential_id)
) WITHOUT ROWID;
CREATE INDEX credentials_by_user ON credentials (rp_id, user_handle);
"#,
    r#"
CREATE TABLE consumed_challenges (
    id            BLOB    NOT NULL PRIMARY KEY,
    keep_until_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX consumed_challenges_by_age ON consumed_challenges (keep_until_ms);
"#,
    r#"
CREATE TABLE user_risk (
    rp_id         TEXT    NOT NULL,
    user_handle   BLOB    NOT NULL,
    level         TEXT    NOT NULL CHECK (level IN ('medium', 'high')),
    expires_at_ms INTEGER,
    note          TEXT    NOT NULL,
    set_at_ms     INTEGER NOT NULL,
    PRIMARY KEY (rp_id, user_handle)
) WITHOUT ROWID;
"#,
    // Whether the attestation's root vouched for the AAGUID, and which root.
    // Credentials stored before were vouched under the rule of their time
    // (any root the chain reached): attested ones with a non-zero AAGUID stay vouched
    // (docs/upgrades.md says how to review them).
    r#"
ALTER TABLE credentials ADD COLUMN aaguid_vouched INTEGER NOT NULL DEFAULT 0;
ALTER TABLE credentials ADD COLUMN trust_anchor TEXT NOT NULL DEFAULT '';
UPDATE credentials SET aaguid_vouched = 1 WHERE attested AND length(aaguid) = 16 AND aaguid <> zeroblob(16);
"#,
    r#"
-- The FIDO metadata serial (no) in force, so a restart cannot go back to an
-- older BLOB (which would lift revocations reported since).
CREATE TABLE metadata_serial (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    number    INTEGER NOT NULL,
    set_at_ms INTEGER NOT NULL
);
"#,
    // What the client reported at registration (credProps.rk,
    // authenticatorAttachment) and WebAuthn L3's uvInitialized. Older
    // records: not reported, and UV not known to have been seen.
    r#"
ALTER TABLE credentials ADD COLUMN discoverable INTEGER;
ALTER TABLE credentials ADD COLUMN attachment TEXT NOT NULL DEFAULT '' CHECK (attachment IN ('', 'platform', 'cross-platform'));
ALTER TABLE credentials ADD COLUMN uv_initialized INTEGER NOT NULL DEFAULT 0;
"#,
    // Temporary access passes (only a keyed hash of each), and the pass a
    // registration redeemed.
    r#"
CREATE TABLE access_passes (
    rp_id         TEXT    NOT NULL,
    pass_id       TEXT    NOT NULL,
    user_handle   BLOB    NOT NULL,
    key_id        TEXT    NOT NULL,
    hash          BLOB    NOT NULL,
    one_time      INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER,
    used_at_ms    INTEGER,
    uses          INTEGER NOT NULL DEFAULT 0,
    issued_by     TEXT    NOT NULL,
    note          TEXT    NOT NULL,
    PRIMARY KEY (rp_id, pass_id)
) WITHOUT ROWID;
CREATE INDEX access_passes_by_user ON access_passes (rp_id, user_handle);
CREATE INDEX access_passes_by_expiry ON access_passes (expires_at_ms);
ALTER TABLE credentials ADD COLUMN access_pass_id TEXT NOT NULL DEFAULT '';
"#,
    // The event log gateways watch; the id is the cursor (AUTOINCREMENT:
    // never reused after a prune).
    r#"
CREATE TABLE events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms         INTEGER NOT NULL,
    rp_id         TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    user_handle   BLOB    NOT NULL,
    credential_id BLOB    NOT NULL,
    actor         TEXT    NOT NULL,
    detail        TEXT    NOT NULL
);
CREATE INDEX events_by_age ON events (at_ms);
"#,
    // Facts for machines on each event (JSON text); where each push
    // receiver (OpenID Shared Signals) stands in the log, with the lease of
    // the one replica delivering to it; the authenticator models the FIDO
    // metadata in force blocks (each reported once as an event).
    r#"
ALTER TABLE events ADD COLUMN facts TEXT NOT NULL DEFAULT '';
CREATE TABLE deliveries (
    receiver       TEXT    NOT NULL PRIMARY KEY,
    cursor         INTEGER NOT NULL,
    holder         TEXT    NOT NULL,
    lease_until_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE blocked_models (
    aaguid      BLOB    NOT NULL PRIMARY KEY,
    since_ms    INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- The oldest schema version whose assertd may run on this schema (expand /
-- contract): a binary that knows fewer migrations runs when its version is
-- at least this one, since what came after only added.
CREATE TABLE schema_compat (
    id            INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    readable_from INTEGER NOT NULL
);
"#,
    // No table changes. Counted sign-ins may wait in counters-*.journal
    // files beside the database until they are folded in; a release
    // before this one would not read them. So `readable_from` is this
    // version while a server runs (and after a crash), and
    // FOLDED_READABLE_FROM once a clean stop folded everything in.
    "-- the counter journal",
];

/// The oldest schema version whose assertd may run on this release's
/// schema, written to `schema_compat` at every migration: every migration
/// after it only adds (tables; columns with a default that is the safe
/// value), so an older binary's statements still hold. A migration that
/// contracts (drops, renames, changes what a column means) raises it to
/// its own version, and the release notes say so.
pub(super) const READABLE_FROM: usize = 11;

/// `readable_from` once the counter journal is folded in at a clean stop:
/// nothing then waits outside the tables, and release 10's statements
/// still hold.
const FOLDED_READABLE_FROM: usize = 10;

/// After a clean stop folded every count in: lets a release that knows no
/// counter journal run on the database again (a rollback). Left alone on a
/// later release's schema.
pub(super) fn mark_folded(conn: &Connection) {
    let r = conn.execute(
        "UPDATE schema_compat SET readable_from = ?1 WHERE id = 1 AND (SELECT user_version FROM pragma_user_version) = ?2",
        [FOLDED_READABLE_FROM as i64, MIGRATIONS.len() as i64],
    );
    if let Err(e) = r {
        tracing::warn!(error = %e, "cannot mark the counter journal folded; a rollback to an earlier release is refused until this one starts and stops again");
    }
}

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(unavailable)?;
    let version: usize = tx.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)).map_err(unavailable)?.try_into().unwrap_or(0);
    if version > MIGRATIONS.len() {
        // A later release's schema: run on it when that release says its
        // migrations since ours only added (a rollback), else refuse.
        let floor = tx.query_row("SELECT readable_from FROM schema_compat WHERE id = 1", [], |r| r.get::<_, i64>(0)).ok();
        crate::types::may_run_on_newer(version, MIGRATIONS.len(), floor.and_then(|f| usize::try_from(f).ok()))?;
        return tx.commit().map_err(unavailable);
    }
    for m in &MIGRATIONS[version..] {
        tx.execute_batch(m).map_err(unavailable)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64).map_err(unavailable)?;
    tx.execute(
        "INSERT INTO schema_compat (id, readable_from) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET readable_from = excluded.readable_from",
        [READABLE_FROM as i64],
    )
    .map_err(unavailable)?;
    tx.commit().map_err(unavailable)
}
