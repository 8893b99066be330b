//! FIDO Metadata Service (MDS3): what the FIDO Alliance says about each
//! authenticator model (by AAGUID): its name, its attestation roots, its
//! certification level and its status reports.
//!
//! Two ways in ([FIDO MDS 3.0] §3.1.7, "Metadata BLOB"):
//! - [`Metadata::from_blob`]: the signed BLOB, a JWT (JWS compact
//!   serialization) whose `x5c` header chain must reach the configured root
//!   (the FIDO Alliance's) and whose signature must verify before anything in
//!   the payload is read;
//! - [`Metadata::from_payload`]: the decoded payload JSON, which the
//!   operator vouches for.
//!
//! Pure: the caller reads the files and passes "now".
//!
//! [FIDO MDS 3.0]: https://fidoalliance.org/specs/mds/fido-metadata-service-v3.0-ps-20210518.html

use crate::attestation::cert::{self, Anchor};
use base64::Engine;
use serde::Deserialize;
use std::collections::HashMap;

pub mod names;

pub use names::{AaguidNames, NameSource, display_name};

/// Status reports that block an authenticator model: registration is
/// refused and its credentials stop signing in (`AUTHENTICATOR_STATUS_REVOKED`).
/// A key compromise or revocation anywhere in the history blocks for good;
/// `USER_VERIFICATION_BYPASS` blocks while it is the latest report.
pub const BLOCKING: [&str; 5] =
    ["REVOKED", "USER_VERIFICATION_BYPASS", "ATTESTATION_KEY_COMPROMISE", "USER_KEY_REMOTE_COMPROMISE", "USER_KEY_PHYSICAL_COMPROMISE"];

/// FIDO certification statuses, lowest first (`FIDO_CERTIFIED` is L1).
pub const CERTIFICATION_LEVELS: [&str; 7] = [
    "FIDO_CERTIFIED_L1",
    "FIDO_CERTIFIED_L1plus",
    "FIDO_CERTIFIED_L2",
    "FIDO_CERTIFIED_L2plus",
    "FIDO_CERTIFIED_L3",
    "FIDO_CERTIFIED_L3plus",
    "",
];

/// The rank of a certification status (0 = L1 ... 5 = L3plus), if it is one.
pub fn certification_rank(status: &str) -> Option<usize> {
    if status == "FIDO_CERTIFIED" {
        return Some(0);
    }
    CERTIFICATION_LEVELS[..6].iter().position(|l| *l == status)
}

/// One authenticator model.
#[derive(Debug, Clone)]
pub struct Model {
    /// `metadataStatement.description` (shared: every verdict naming the
    /// model takes a reference, not a copy).
    pub description: std::sync::Arc<str>,
    /// `metadataStatement.attestationRootCertificates`, usable as anchors.
    pub roots: Vec<Anchor>,
    /// The status that blocks the model, if any.
    pub blocked: Option<String>,
    /// The highest certification status reached (e.g. `FIDO_CERTIFIED_L2`),
    /// unless a later report revoked it.
    pub certification: Option<String>,
}

impl Model {
    /// The rank of [`Model::certification`].
    pub fn certification_rank(&self) -> Option<usize> {
        self.certification.as_deref().and_then(certification_rank)
    }
}

/// A loaded metadata payload.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// The BLOB's serial number (`no`).
    pub number: u64,
    /// `nextUpdate` (ISO 8601 date), and as Unix seconds (its midnight UTC).
    pub next_update: String,
    /// `nextUpdate` in Unix seconds.
    pub next_update_unix: u64,
    /// Models by AAGUID.
    pub models: HashMap<[u8; 16], Model>,
    /// Entries skipped (no AAGUID: U2F models known by key identifiers).
    pub skipped: usize,
    /// Root certificates that could not be used as trust anchors.
    pub unusable_roots: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    no: u64,
    next_update: String,
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    aaguid: Option<String>,
    metadata_statement: Option<Statement>,
    #[serde(default)]
    status_reports: Vec<StatusReport>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(default)]
    description: String,
    #[serde(default)]
    attestation_root_certificates: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusReport {
    status: String,
    #[serde(default)]
    effective_date: Option<String>,
}

/// The largest payload or BLOB accepted (bytes); the 2026 BLOB is ~9 MB.
pub const MAX_METADATA_BYTES: usize = 64 * 1024 * 1024;

/// Parses a UUID ("cb69481e-8ff7-4039-93ec-0a2729a154a8": 8-4-4-4-12 hex)
/// into 16 bytes.
pub fn parse_aaguid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    let dashes_ok = s.len() == 36 && [8, 13, 18, 23].iter().all(|&i| s.as_bytes()[i] == b'-');
    if !dashes_ok || hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Formats an AAGUID as a UUID string ("cb69481e-8ff7-4039-93ec-0a2729a154a8").
pub fn format_uuid(a: &[u8; 16]) -> String {
    let h: String = a.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Unix seconds of an ISO 8601 date ("2026-11-01") at midnight UTC.
pub fn date_unix(date: &str) -> Option<u64> {
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| date.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from((era * 146_097 + doe - 719_468) * 86_400).ok()
}

/// Why a metadata file was refused at load: a config-time error (the
/// metadata in force stays, and no verdict carries it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The file does not decode: its size, the JWT's shape, base64url,
    /// JSON, a date.
    #[error("{0}")]
    Malformed(String),
    /// The BLOB's signing chain does not reach the configured root, or its
    /// signature does not verify.
    #[error("{0}")]
    Untrusted(String),
}

impl Metadata {
    /// Loads a decoded payload (the JSON the BLOB carries).
    pub fn from_payload(json: &[u8]) -> Result<Self, MetadataError> {
        if json.len() > MAX_METADATA_BYTES {
            return Err(MetadataError::Malformed(format!("metadata is {} bytes, over {MAX_METADATA_BYTES}", json.len())));
        }
        let p: Payload = serde_json::from_slice(json).map_err(|e| MetadataError::Malformed(format!("not an MDS3 payload: {e}")))?;
        let next_update_unix = date_unix(&p.next_update)
            .ok_or_else(|| MetadataError::Malformed(format!("nextUpdate {:?} is not a date", crate::text::truncate(&p.next_update))))?;
        let mut m = Self { number: p.no, next_update: p.next_update, next_update_unix, ..Self::default() };
        for e in p.entries {
            let Some(aaguid) = e.aaguid.as_deref().and_then(parse_aaguid) else {
                m.skipped += 1;
                continue;
            };
            let statement =
                e.metadata_statement.unwrap_or(Statement { description: String::new(), attestation_root_certificates: Vec::new() });
            let mut roots = Vec::new();
            for b64 in &statement.attestation_root_certificates {
                match base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| e.to_string())
                    .and_then(|der| Anchor::from_der(&der).map_err(|e| e.to_string()))
                {
                    Ok(a) => roots.push(a),
                    Err(_) => m.unusable_roots += 1,
                }
            }
            let (blocked, certification) = status(&e.status_reports);
            m.models.insert(aaguid, Model { description: statement.description.into(), roots, blocked, certification });
        }
        Ok(m)
    }

    /// Loads a signed BLOB: the JWT's `x5c` chain must reach `root` at `now`
    /// (Unix seconds), and its signature (ES256, RS256 or PS256) must verify
    /// with the chain's leaf, before the payload is read.
    pub fn from_blob(jwt: &[u8], root: &Anchor, now: u64) -> Result<Self, MetadataError> {
        if jwt.len() > MAX_METADATA_BYTES {
            return Err(MetadataError::Malformed(format!("metadata BLOB is {} bytes, over {MAX_METADATA_BYTES}", jwt.len())));
        }
        let text = std::str::from_utf8(jwt).map_err(|_| MetadataError::Malformed("the BLOB is not text".to_owned()))?.trim();
        let mut parts = text.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(MetadataError::Malformed("the BLOB is not a JWT (three dot-separated parts)".into()));
        };
        let b64url = |part: &str, what: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|e| MetadataError::Malformed(format!("the BLOB's {what} is not base64url: {e}")))
        };
        #[derive(Deserialize)]
        struct Header {
            alg: String,
            #[serde(default)]
            x5c: Vec<String>,
        }
        let header: Header =
            serde_json::from_slice(&b64url(h, "header")?).map_err(|e| MetadataError::Malformed(format!("the BLOB's header: {e}")))?;
        if header.x5c.is_empty() || header.x5c.len() > cert::MAX_CHAIN {
            return Err(MetadataError::Malformed(format!(
                "the BLOB's header holds {} certificates in x5c (1 to {})",
                header.x5c.len(),
                cert::MAX_CHAIN
            )));
        }
        let chain = header
            .x5c
            .iter()
            .map(|c| {
                base64::engine::general_purpose::STANDARD.decode(c).map_err(|e| MetadataError::Malformed(format!("the BLOB's x5c: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let chain_refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
        cert::verify_chain(&chain_refs, &[root], now, 0, cert::Fallback::Never)
            .map_err(|e| MetadataError::Untrusted(format!("the BLOB's signing certificate: {e}")))?;
        let leaf = cert::parse(&chain[0]).map_err(|e| MetadataError::Malformed(format!("the BLOB's signing certificate: {e}")))?;
        let signature = b64url(s, "signature")?;
        let signed = &text.as_bytes()[..h.len() + 1 + p.len()];
        cert::verify_jws(&leaf, &header.alg, signed, &signature)
            .map_err(|e| MetadataError::Untrusted(format!("the BLOB's signature: {e}")))?;
        Self::from_payload(&b64url(p, "payload")?)
    }

    /// The model of an AAGUID.
    pub fn model(&self, aaguid: &[u8; 16]) -> Option<&Model> {
        self.models.get(aaguid)
    }

    /// The models whose attestation roots include `root`.
    pub fn models_under<'m>(&'m self, root: &'m Anchor) -> impl Iterator<Item = (&'m [u8; 16], &'m Model)> + 'm {
        self.models.iter().filter(|(_, m)| m.roots.iter().any(|r| r.same_as(root)))
    }

    /// True when the metadata lists `root` for more than one model.
    pub fn shared_root(&self, root: &Anchor) -> bool {
        self.models_under(root).nth(1).is_some()
    }

    /// True when `now` (Unix seconds) is past `nextUpdate`: a newer BLOB
    /// should have been fetched.
    pub fn stale(&self, now: u64) -> bool {
        now >= self.next_update_unix.saturating_add(86_400)
    }
}

/// Compromises and revocations: they block for good.
const PERMANENT: [&str; 4] = ["REVOKED", "ATTESTATION_KEY_COMPROMISE", "USER_KEY_REMOTE_COMPROMISE", "USER_KEY_PHYSICAL_COMPROMISE"];

/// The blocking status (if any) and the certification level of a model's
/// history, read in effective-date order.
fn status(reports: &[StatusReport]) -> (Option<String>, Option<String>) {
    let mut ordered: Vec<&StatusReport> = reports.iter().collect();
    ordered.sort_by(|a, b| a.effective_date.cmp(&b.effective_date));
    // A compromise or a revocation anywhere in the history blocks for good.
    if let Some(r) = ordered.iter().find(|r| PERMANENT.contains(&r.status.as_str())) {
        return (Some(r.status.clone()), None);
    }
    let mut blocked = None;
    let mut certification: Option<String> = None;
    for r in &ordered {
        let s = r.status.as_str();
        if s == "USER_VERIFICATION_BYPASS" {
            blocked = Some(s.to_owned());
        } else if s == "NOT_FIDO_CERTIFIED" {
            certification = None;
        } else if let Some(rank) = certification_rank(s) {
            if certification.as_deref().and_then(certification_rank).is_none_or(|c| rank >= c) {
                certification = Some(s.to_owned());
            }
            // A later certification ends a UV bypass (a fixed version).
            blocked = None;
        } else if s == "UPDATE_AVAILABLE" {
            blocked = None;
        }
    }
    (blocked, certification)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: &str, date: &str) -> StatusReport {
        StatusReport { status: status.into(), effective_date: Some(date.into()) }
    }

    #[test]
    fn history_decides_status_and_level() {
        let (b, c) = status(&[report("FIDO_CERTIFIED_L1", "2020-01-01"), report("FIDO_CERTIFIED_L2", "2021-01-01")]);
        assert_eq!((b, c.as_deref()), (None, Some("FIDO_CERTIFIED_L2")));
        // A compromise blocks for good, whatever comes after.
        let (b, c) = status(&[
            report("FIDO_CERTIFIED_L2", "2020-01-01"),
            report("ATTESTATION_KEY_COMPROMISE", "2021-01-01"),
            report("FIDO_CERTIFIED_L2", "2022-01-01"),
        ]);
        assert_eq!((b.as_deref(), c), (Some("ATTESTATION_KEY_COMPROMISE"), None));
        // A UV bypass blocks until a later good report.
        let (b, _) = status(&[report("FIDO_CERTIFIED_L1", "2020-01-01"), report("USER_VERIFICATION_BYPASS", "2021-01-01")]);
        assert_eq!(b.as_deref(), Some("USER_VERIFICATION_BYPASS"));
        let (b, _) = status(&[report("USER_VERIFICATION_BYPASS", "2021-01-01"), report("UPDATE_AVAILABLE", "2021-06-01")]);
        assert_eq!(b, None);
        // Order by date, not by position.
        let (b, _) = status(&[report("UPDATE_AVAILABLE", "2021-06-01"), report("USER_VERIFICATION_BYPASS", "2021-01-01")]);
        assert_eq!(b, None);
        assert_eq!(status(&[report("REVOKED", "2021-01-01")]).0.as_deref(), Some("REVOKED"));
        assert_eq!(status(&[report("FIDO_CERTIFIED", "2021-01-01")]).1.as_deref(), Some("FIDO_CERTIFIED"));
        assert_eq!(status(&[report("FIDO_CERTIFIED_L2", "2021-01-01"), report("NOT_FIDO_CERTIFIED", "2022-01-01")]).1, None);
    }

    #[test]
    fn dates_and_aaguids() {
        assert_eq!(date_unix("1970-01-01"), Some(0));
        assert_eq!(date_unix("2026-11-01"), Some(1_793_491_200));
        assert_eq!(date_unix("2026-13-01"), None);
        assert_eq!(date_unix("2026-1-01"), None);
        assert_eq!(parse_aaguid("cb69481e-8ff7-4039-93ec-0a2729a154a8").map(|a| a[0]), Some(0xcb));
        assert_eq!(parse_aaguid("cb69481e8ff7403993ec0a2729a154a8"), None);
        assert_eq!(parse_aaguid("zb69481e-8ff7-4039-93ec-0a2729a154a8"), None);
    }
}
