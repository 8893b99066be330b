//! Adoption numbers (`CredentialService.GetCredentialStats`): one relying
//! party's unrevoked credentials counted per group, by the store in one
//! query, with the distinct users and the recently used among them. The
//! grouping keys are the same strings on both backends (the conformance
//! tests hold them to it).

/// How to group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsGroup {
    /// `device_bound` / `synced` (BE).
    Kind,
    /// `attested` / `unattested`.
    Attested,
    /// The AAGUID as 32 hex digits, with `:vouched` when an attestation
    /// vouched for it.
    Model,
    /// Each reported transport ([`TRANSPORTS`]), or `none`.
    Transport,
    /// The Monday (UTC) of the registration week, `YYYY-MM-DD`.
    RegistrationWeek,
    /// `active` (used since the cut-off) / `inactive`.
    Active,
    /// Kind and attestation together: `device_bound/attested`,
    /// `synced/unattested`, … (the `assertd_credentials` gauge).
    KindAttested,
    /// Users by their strongest unrevoked credential:
    /// `device_bound_attested` > `device_bound` > `synced`. In these rows
    /// `credentials` and `users` both count users, and `active` the users
    /// who used any credential since the cut-off.
    StrongestPerUser,
}

/// The transports a credential may report (WebAuthn L3 `AuthenticatorTransport`).
pub const TRANSPORTS: [&str; 6] = ["ble", "hybrid", "internal", "nfc", "smart-card", "usb"];

/// One group's counts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StatsRow {
    /// The group.
    pub key: String,
    /// Unrevoked credentials in it.
    pub credentials: u64,
    /// Their distinct users.
    pub users: u64,
    /// Of them, used since the cut-off.
    pub active: u64,
}

/// A backend's spelling of the pieces the queries are made of.
pub(crate) struct Dialect {
    /// `$1`/`?1`-style placeholders: the RP, the cut-off, and a transport.
    pub rp: &'static str,
    pub since: &'static str,
    /// A boolean column read as a condition.
    pub truth: fn(&str) -> String,
    /// The AAGUID as lower-case hex.
    pub hex_aaguid: &'static str,
    /// The registration week's Monday, `YYYY-MM-DD`.
    pub week: &'static str,
    /// The condition "the credential reported transport T" (T a literal
    /// from [`TRANSPORTS`], spliced in: never caller input).
    pub has_transport: fn(&str) -> String,
    /// The condition "it reported none".
    pub no_transport: &'static str,
}

/// The query for `group` in `d`'s dialect: rows of (key, credentials,
/// users, active), ordered by key.
pub(crate) fn query(group: StatsGroup, d: &Dialect) -> String {
    let (rp, since) = (d.rp, d.since);
    let counts = format!("count(*), count(DISTINCT user_handle), count(CASE WHEN last_used_at_ms >= {since} THEN 1 END)");
    let live = format!("rp_id = {rp} AND NOT {}", (d.truth)("revoked"));
    let grouped = |key: &str| format!("SELECT {key} AS k, {counts} FROM credentials WHERE {live} GROUP BY k ORDER BY k");
    match group {
        StatsGroup::Kind => grouped(&format!("CASE WHEN {} THEN 'synced' ELSE 'device_bound' END", (d.truth)("backup_eligible"))),
        StatsGroup::Attested => grouped(&format!("CASE WHEN {} THEN 'attested' ELSE 'unattested' END", (d.truth)("attested"))),
        StatsGroup::Model => grouped(&format!("{} || CASE WHEN {} THEN ':vouched' ELSE '' END", d.hex_aaguid, (d.truth)("aaguid_vouched"))),
        StatsGroup::RegistrationWeek => grouped(d.week),
        StatsGroup::Active => grouped(&format!("CASE WHEN last_used_at_ms >= {since} THEN 'active' ELSE 'inactive' END")),
        StatsGroup::KindAttested => grouped(&format!(
            "CASE WHEN {} THEN 'synced' ELSE 'device_bound' END || CASE WHEN {} THEN '/attested' ELSE '/unattested' END",
            (d.truth)("backup_eligible"),
            (d.truth)("attested")
        )),
        StatsGroup::StrongestPerUser => {
            let rank = format!(
                "CASE WHEN NOT {be} AND {at} THEN 3 WHEN NOT {be} THEN 2 ELSE 1 END",
                be = (d.truth)("backup_eligible"),
                at = (d.truth)("attested")
            );
            format!(
                "SELECT CASE m WHEN 3 THEN 'device_bound_attested' WHEN 2 THEN 'device_bound' ELSE 'synced' END AS k, \
                 count(*), count(*), count(CASE WHEN used >= {since} THEN 1 END) \
                 FROM (SELECT user_handle, max({rank}) AS m, max(last_used_at_ms) AS used FROM credentials WHERE {live} GROUP BY user_handle) AS u \
                 GROUP BY k ORDER BY k"
            )
        }
        StatsGroup::Transport => {
            let mut parts: Vec<String> = TRANSPORTS
                .iter()
                .map(|t| {
                    format!("SELECT '{t}' AS k, {counts} FROM credentials WHERE {live} AND {} HAVING count(*) > 0", (d.has_transport)(t))
                })
                .collect();
            parts.push(format!("SELECT 'none' AS k, {counts} FROM credentials WHERE {live} AND {} HAVING count(*) > 0", d.no_transport));
            format!("{} ORDER BY k", parts.join(" UNION ALL "))
        }
    }
}
