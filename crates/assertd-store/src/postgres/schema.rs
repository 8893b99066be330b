//! The schema: migrations, applied in order under an advisory lock.

/// Schema migrations, in order; never edit one that has shipped: append.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE credentials (
    rp_id           text    NOT NULL,
    credential_id   bytea   NOT NULL,
    user_handle     bytea   NOT NULL,
    public_key_cose bytea   NOT NULL,
    sign_count      bigint  NOT NULL CHECK (sign_count BETWEEN 0 AND 4294967295),
    backup_eligible boolean NOT NULL,
    backup_state    boolean NOT NULL,
    aaguid          bytea   NOT NULL,
    attested        boolean NOT NULL,
    transports      text[]  NOT NULL,
    revoked         boolean NOT NULL,
    created_at_ms   bigint  NOT NULL,
    last_used_at_ms bigint,
    PRIMARY KEY (rp_id, credential_id)
);
CREATE INDEX credentials_by_user ON credentials (rp_id, user_handle);

CREATE FUNCTION assertd_notify_credential_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('assertd_credentials', OLD.rp_id || ' ' || encode(OLD.credential_id, 'hex'));
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM pg_notify('assertd_credentials', NEW.rp_id || ' ' || encode(NEW.credential_id, 'hex'));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER credentials_notify_insert_delete AFTER INSERT OR DELETE ON credentials
    FOR EACH ROW EXECUTE FUNCTION assertd_notify_credential_change();

-- Counter and last-use updates are the hot path: they do not notify.
CREATE TRIGGER credentials_notify_update AFTER UPDATE ON credentials
    FOR EACH ROW WHEN (
        OLD.revoked IS DISTINCT FROM NEW.revoked OR
        OLD.public_key_cose IS DISTINCT FROM NEW.public_key_cose OR
        OLD.user_handle IS DISTINCT FROM NEW.user_handle OR
        OLD.backup_eligible IS DISTINCT FROM NEW.backup_eligible OR
        OLD.attested IS DISTINCT FROM NEW.attested OR
        OLD.aaguid IS DISTINCT FROM NEW.aaguid OR
        OLD.rp_id IS DISTINCT FROM NEW.rp_id OR
        OLD.credential_id IS DISTINCT FROM NEW.credential_id
    ) EXECUTE FUNCTION assertd_notify_credential_change();
"#,
    r#"
-- Replicas skip the counter round trip for counter-less credentials (stored
-- count 0, received 0) on the strength of their cached count, so the first time
-- a count leaves 0 every replica is told (payload "counted <rp> <hex id>"). It
-- marks its cached entry instead of dropping it: the entry keeps verifying
-- through a store outage.
CREATE FUNCTION assertd_notify_credential_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('assertd_credentials', 'counted ' || NEW.rp_id || ' ' || encode(NEW.credential_id, 'hex'));
    RETURN NULL;
END $$;

CREATE TRIGGER credentials_notify_counted AFTER UPDATE ON credentials
    FOR EACH ROW WHEN (OLD.sign_count = 0 AND NEW.sign_count <> 0)
    EXECUTE FUNCTION assertd_notify_credential_counted();
"#,
    r#"
-- Server-issued challenges already used (single use across replicas): one
-- row per use, by SHA-256 of the challenge, kept until the challenge expired.
CREATE TABLE consumed_challenges (
    id            bytea  NOT NULL PRIMARY KEY,
    keep_until_ms bigint NOT NULL
);
CREATE INDEX consumed_challenges_by_age ON consumed_challenges (keep_until_ms);
"#,
    r#"
-- Users flagged at risk (real-time remediation). Every change is told to
-- every replica (payload "risk <rp> <hex user handle>"), which reads the row
-- again.
CREATE TABLE user_risk (
    rp_id         text   NOT NULL,
    user_handle   bytea  NOT NULL,
    level         text   NOT NULL CHECK (level IN ('medium', 'high')),
    expires_at_ms bigint,
    note          text   NOT NULL,
    set_at_ms     bigint NOT NULL,
    PRIMARY KEY (rp_id, user_handle)
);

CREATE FUNCTION assertd_notify_user_risk() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('assertd_credentials', 'risk ' || OLD.rp_id || ' ' || encode(OLD.user_handle, 'hex'));
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM pg_notify('assertd_credentials', 'risk ' || NEW.rp_id || ' ' || encode(NEW.user_handle, 'hex'));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER user_risk_notify AFTER INSERT OR UPDATE OR DELETE ON user_risk
    FOR EACH ROW EXECUTE FUNCTION assertd_notify_user_risk();
"#,
    r#"
-- Whether the attestation's root vouched for the AAGUID, and which root.
-- Credentials stored before were vouched under the rule of their time (any
-- root the chain reached): attested ones with a non-zero AAGUID stay vouched
-- (docs/upgrades.md says how to review them). A change of either is told
-- to every replica, as a change of `attested` is.
ALTER TABLE credentials ADD COLUMN aaguid_vouched boolean NOT NULL DEFAULT false;
ALTER TABLE credentials ADD COLUMN trust_anchor text NOT NULL DEFAULT '';
UPDATE credentials SET aaguid_vouched = true
    WHERE attested AND length(aaguid) = 16 AND aaguid <> '\x00000000000000000000000000000000'::bytea;
DROP TRIGGER credentials_notify_update ON credentials;
CREATE TRIGGER credentials_notify_update AFTER UPDATE ON credentials
    FOR EACH ROW WHEN (
        OLD.revoked IS DISTINCT FROM NEW.revoked OR
        OLD.public_key_cose IS DISTINCT FROM NEW.public_key_cose OR
        OLD.user_handle IS DISTINCT FROM NEW.user_handle OR
        OLD.backup_eligible IS DISTINCT FROM NEW.backup_eligible OR
        OLD.attested IS DISTINCT FROM NEW.attested OR
        OLD.aaguid_vouched IS DISTINCT FROM NEW.aaguid_vouched OR
        OLD.aaguid IS DISTINCT FROM NEW.aaguid OR
        OLD.rp_id IS DISTINCT FROM NEW.rp_id OR
        OLD.credential_id IS DISTINCT FROM NEW.credential_id
    ) EXECUTE FUNCTION assertd_notify_credential_change();
"#,
    r#"
-- The FIDO metadata serial (no) in force on every replica, so neither a
-- restart nor a replica with an older file can go back to an older BLOB
-- (which would lift revocations reported since).
CREATE TABLE metadata_serial (
    id        integer PRIMARY KEY CHECK (id = 1),
    number    bigint  NOT NULL,
    set_at_ms bigint  NOT NULL
);
"#,
    r#"
-- What the client reported at registration (credProps.rk,
-- authenticatorAttachment) and WebAuthn L3's uvInitialized. Older records:
-- not reported, and UV not known to have been seen. The cache keeps the
-- backup state and uvInitialized (an allowed sign-in records a change of
-- either), so their changes are told to every replica.
ALTER TABLE credentials ADD COLUMN discoverable boolean;
ALTER TABLE credentials ADD COLUMN attachment text NOT NULL DEFAULT ''
    CHECK (attachment IN ('', 'platform', 'cross-platform'));
ALTER TABLE credentials ADD COLUMN uv_initialized boolean NOT NULL DEFAULT false;
DROP TRIGGER credentials_notify_update ON credentials;
CREATE TRIGGER credentials_notify_update AFTER UPDATE ON credentials
    FOR EACH ROW WHEN (
        OLD.revoked IS DISTINCT FROM NEW.revoked OR
        OLD.public_key_cose IS DISTINCT FROM NEW.public_key_cose OR
        OLD.user_handle IS DISTINCT FROM NEW.user_handle OR
        OLD.backup_eligible IS DISTINCT FROM NEW.backup_eligible OR
        OLD.backup_state IS DISTINCT FROM NEW.backup_state OR
        OLD.uv_initialized IS DISTINCT FROM NEW.uv_initialized OR
        OLD.attested IS DISTINCT FROM NEW.attested OR
        OLD.aaguid_vouched IS DISTINCT FROM NEW.aaguid_vouched OR
        OLD.aaguid IS DISTINCT FROM NEW.aaguid OR
        OLD.rp_id IS DISTINCT FROM NEW.rp_id OR
        OLD.credential_id IS DISTINCT FROM NEW.credential_id
    ) EXECUTE FUNCTION assertd_notify_credential_change();
"#,
    r#"
-- Temporary access passes (only a keyed hash of each; at most one usable
-- per user), and the pass a registration redeemed. A redemption locks its
-- row (SELECT ... FOR UPDATE), so two replicas redeeming one one-time pass
-- serialize and one wins; issuing takes a transaction-scoped advisory lock
-- on the user, so two issues cannot both leave a usable pass.
CREATE TABLE access_passes (
    rp_id         text    NOT NULL,
    pass_id       text    NOT NULL,
    user_handle   bytea   NOT NULL,
    key_id        text    NOT NULL,
    hash          bytea   NOT NULL,
    one_time      boolean NOT NULL,
    created_at_ms bigint  NOT NULL,
    expires_at_ms bigint  NOT NULL,
    revoked_at_ms bigint,
    used_at_ms    bigint,
    uses          bigint  NOT NULL DEFAULT 0,
    issued_by     text    NOT NULL,
    note          text    NOT NULL,
    PRIMARY KEY (rp_id, pass_id)
);
CREATE INDEX access_passes_by_user ON access_passes (rp_id, user_handle);
CREATE INDEX access_passes_by_expiry ON access_passes (expires_at_ms);
ALTER TABLE credentials ADD COLUMN access_pass_id text NOT NULL DEFAULT '';
"#,
    r#"
-- The event log gateways watch; the id is the cursor. Appends take a
-- transaction-scoped advisory lock, so ids commit in order and a watcher
-- reading "after N" never skips a smaller id committed later. Every append
-- is told to every replica (payload "events"), whose watchers read on.
CREATE TABLE events (
    id            bigserial PRIMARY KEY,
    at_ms         bigint NOT NULL,
    rp_id         text   NOT NULL,
    kind          text   NOT NULL,
    user_handle   bytea  NOT NULL,
    credential_id bytea  NOT NULL,
    actor         text   NOT NULL,
    detail        text   NOT NULL
);
CREATE INDEX events_by_age ON events (at_ms);

CREATE FUNCTION assertd_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('assertd_credentials', 'events');
    RETURN NULL;
END $$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION assertd_notify_events();
"#,
    r#"
-- Facts for machines on each event (JSON text), and where each push
-- receiver (OpenID Shared Signals) stands in the log, with the lease of the
-- one replica delivering to it: claims and advances are single-row updates
-- that test the holder, so two replicas never both hold a lease.
ALTER TABLE events ADD COLUMN facts text NOT NULL DEFAULT '';
CREATE TABLE deliveries (
    receiver       text   NOT NULL PRIMARY KEY,
    cursor         bigint NOT NULL,
    holder         text   NOT NULL,
    lease_until_ms bigint NOT NULL
);
-- The authenticator models the FIDO metadata in force blocks: a replica
-- inserts the list it loaded (ON CONFLICT DO NOTHING) and reports only the
-- rows it inserted, so each newly blocked model is reported once.
CREATE TABLE blocked_models (
    aaguid   bytea  NOT NULL PRIMARY KEY,
    since_ms bigint NOT NULL
);
"#,
    r#"
-- The oldest schema version whose assertd may run on this schema (expand /
-- contract): a binary that knows fewer migrations runs when its version is
-- at least this one, since what came after only added.
CREATE TABLE schema_compat (
    id            integer NOT NULL PRIMARY KEY CHECK (id = 1),
    readable_from integer NOT NULL
);
"#,
];

/// The oldest schema version whose assertd may run on this release's
/// schema (see the SQLite store's `READABLE_FROM`): raised to a
/// migration's own version when it contracts.
pub(super) const READABLE_FROM: usize = 11;

/// Advisory lock key serializing event appends ("assertev").
pub(super) const EVENTS_LOCK: i64 = 0x6173_7365_7274_6576;

/// Advisory lock key serializing migrations across replicas ("assertd1").
pub(super) const MIGRATION_LOCK: i64 = 0x6173_7365_7274_6431;
