//! `assertd report adoption`: one self-contained HTML page (inline CSS and
//! SVG, no script, nothing fetched) an admin can open or attach to a change
//! request: per relying party the population by passkey kind over time and
//! by model, users by their strongest credential, users without a usable
//! credential under each profile in force, and the last policy preview if
//! one is given.
//!
//! [`collect`] reads the store once (paged, in user order); [`render`] is
//! a pure function of what it collected.

mod html;
mod svg;

pub use html::render;

use crate::config::Reloadable;
use crate::preview::{Pages, Policy, ProfileLine, Tally, UsersWanted};
use assertd_store::StoredCredential;
use assertd_verify::metadata::display_name;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Models shown by name; the rest are summed as "other models".
const TOP_MODELS: usize = 12;
const PAGE: usize = 1000;
const DAY_MS: i64 = 86_400_000;

/// What the page shows.
#[derive(Debug, Clone, Default)]
pub struct Adoption {
    /// When it was collected (Unix ms).
    pub generated_at_ms: i64,
    /// Per relying party, by RP ID.
    pub rps: Vec<RpAdoption>,
    /// The last preview, if given.
    pub preview: Option<PreviewDigest>,
}

/// One relying party's population.
#[derive(Debug, Clone, Default)]
pub struct RpAdoption {
    /// The RP ID.
    pub rp_id: String,
    /// Unrevoked credentials.
    pub credentials: u64,
    /// Revoked credentials.
    pub revoked: u64,
    /// Users with an unrevoked credential.
    pub users: u64,
    /// Registration weeks (their Mondays, `YYYY-MM-DD`) with the unrevoked
    /// device-bound and synced credentials registered up to the end of each.
    pub weeks: Vec<(String, u64, u64)>,
    /// Models by credentials (name or AAGUID, vouched, unvouched), most
    /// first; the tail summed as "other models".
    pub models: Vec<(String, u64, u64)>,
    /// Users by their strongest credential: device-bound attested,
    /// device-bound, synced.
    pub strongest: [u64; 3],
    /// Per profile in force (name, role, users, users without a usable
    /// credential under it).
    pub profiles: Vec<(String, String, u64, u64)>,
}

/// The summary of a preview file (`assertd policy preview --out`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PreviewDigest {
    /// Per relying party and profile.
    pub profiles: Vec<ProfileLine>,
    /// Credentials read.
    pub credentials_scanned: u64,
    /// Compared against a policy in force.
    pub compared: bool,
    /// Users listed in the file.
    #[serde(default)]
    pub users_listed: u64,
}

/// Reads a preview file: its last line's summary, and how many users it
/// lists (read line by line: the file may be large).
pub fn read_preview(path: &std::path::Path) -> Result<PreviewDigest, String> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut users = 0;
    let mut summary = None;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?;
        match v["type"].as_str() {
            Some("user") => users += 1,
            Some("summary") => {
                summary = Some(serde_json::from_value::<PreviewDigest>(v).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?);
            }
            _ => return Err(format!("{} line {}: not a preview line (`assertd policy preview --out`)", path.display(), i + 1)),
        }
    }
    let mut s = summary.ok_or_else(|| format!("{}: no summary line (was the preview interrupted?)", path.display()))?;
    s.users_listed = users;
    Ok(s)
}

/// The Monday (UTC) of the week of `ms`, as days since the epoch.
fn monday(ms: i64) -> i64 {
    let days = ms.div_euclid(DAY_MS);
    // 1970-01-01 was a Thursday: Monday is 3 days before.
    days - (days + 3).rem_euclid(7)
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01, proleptic
/// Gregorian; H. Hinnant's civil-from-days).
pub fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// One relying party's counts while the store is read.
#[derive(Default)]
struct Counting {
    revoked: u64,
    credentials: u64,
    users: u64,
    /// Week (Monday, days) → (device-bound, synced) registered that week.
    weeks: BTreeMap<i64, (u64, u64)>,
    /// (AAGUID, vouched) → credentials.
    models: HashMap<([u8; 16], bool), u64>,
    strongest: [u64; 3],
}

/// Reads every credential once (through `pages`, in user order) and counts
/// what the page shows, per relying party of `policy` (and of `only`, when
/// given); the profiles' users without a usable credential are the
/// preview's count under the policy in force.
pub async fn collect(pages: &impl Pages, policy: &Reloadable, only: Option<&str>, now_ms: i64) -> Result<Adoption, String> {
    let in_force = Policy::of(policy).map_err(|e| format!("{}: {}", e.key, e.problem))?;
    let rps: Vec<String> = in_force.rps.keys().filter(|id| only.is_none_or(|o| o == id.as_str())).cloned().collect();
    if let Some(o) = only
        && rps.is_empty()
    {
        return Err(format!("relying party {o:?} is not configured"));
    }
    let mut tally = Tally::new(Arc::new(in_force), None, UsersWanted::None, Some(&rps));
    let mut counts: BTreeMap<String, Counting> = rps.iter().map(|r| (r.clone(), Counting::default())).collect();
    let mut no_one = Vec::new();
    for rp in &rps {
        let mut cursor = (rp.clone(), Vec::new(), Vec::new());
        // The strongest class of the user being read (0 none, 1 synced,
        // 2 device-bound, 3 device-bound attested).
        let mut user: Option<(Vec<u8>, usize)> = None;
        let c = counts.get_mut(rp).ok_or("internal: no counts")?;
        loop {
            let page: Vec<StoredCredential> = pages.page(cursor, PAGE).await.map_err(|e| e.to_string())?;
            let full = page.len() == PAGE;
            let Some(last) = page.last() else { break };
            cursor = (last.rp_id.clone(), last.user_handle.clone(), last.credential_id.clone());
            let mut past = false;
            for cred in &page {
                if cred.rp_id != *rp {
                    past = true;
                    break;
                }
                tally.add(cred, &mut no_one);
                if user.as_ref().is_none_or(|(h, _)| *h != cred.user_handle) {
                    finish_user(c, user.take());
                    user = Some((cred.user_handle.clone(), 0));
                }
                if cred.revoked {
                    c.revoked += 1;
                    continue;
                }
                c.credentials += 1;
                let week = c.weeks.entry(monday(cred.created_at_ms)).or_default();
                let class = if cred.backup_eligible {
                    week.1 += 1;
                    1
                } else {
                    week.0 += 1;
                    if cred.attested { 3 } else { 2 }
                };
                *c.models.entry((cred.aaguid16(), cred.aaguid_vouched)).or_default() += 1;
                if let Some((_, best)) = user.as_mut() {
                    *best = (*best).max(class);
                }
            }
            if past || !full {
                break;
            }
        }
        finish_user(c, user.take());
    }
    let summary = tally.finish(&mut no_one);
    let metadata = policy.metadata.as_ref().map(|m| &m.metadata);
    let mut out = Vec::new();
    for (rp_id, c) in counts {
        let mut db = 0;
        let mut synced = 0;
        let weeks = c
            .weeks
            .iter()
            .map(|(d, (a, b))| {
                db += a;
                synced += b;
                (date(*d), db, synced)
            })
            .collect();
        let mut by_name: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for ((aaguid, vouched), n) in &c.models {
            let name = display_name(metadata, &policy.aaguid_names, aaguid, *vouched)
                .map_or_else(|| assertd_verify::metadata::format_uuid(aaguid), |(n, _)| n.to_string());
            let e = by_name.entry(name).or_default();
            if *vouched { e.0 += n } else { e.1 += n }
        }
        let mut models: Vec<(String, u64, u64)> = by_name.into_iter().map(|(k, (v, u))| (k, v, u)).collect();
        models.sort_by(|a, b| (b.1 + b.2).cmp(&(a.1 + a.2)).then(a.0.cmp(&b.0)));
        if models.len() > TOP_MODELS {
            let rest = models.split_off(TOP_MODELS - 1);
            models.push(("other models".to_owned(), rest.iter().map(|m| m.1).sum(), rest.iter().map(|m| m.2).sum()));
        }
        let profiles = summary
            .profiles
            .iter()
            .filter(|p| p.rp_id == rp_id)
            .map(|p| (p.profile.clone(), p.role.as_str().to_owned(), p.users, p.users_without_usable))
            .collect();
        out.push(RpAdoption {
            rp_id,
            credentials: c.credentials,
            revoked: c.revoked,
            users: c.users,
            weeks,
            models,
            strongest: [c.strongest[2], c.strongest[1], c.strongest[0]],
            profiles,
        });
    }
    Ok(Adoption { generated_at_ms: now_ms, rps: out, preview: None })
}

/// Counts a finished user under their strongest unrevoked credential
/// (`strongest` is indexed synced, device-bound, device-bound attested).
fn finish_user(c: &mut Counting, user: Option<(Vec<u8>, usize)>) {
    if let Some((_, best)) = user
        && best > 0
    {
        c.users += 1;
        c.strongest[best - 1] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday_and_dates_are_civil() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(20_423), "2025-12-01");
        assert_eq!(date(-1), "1969-12-31");
        // Monday 2026-11-30 00:00 UTC, and the Sunday after it.
        let mon = 1_795_996_800_000;
        assert_eq!(date(monday(mon)), "2026-11-30");
        assert_eq!(date(monday(mon + 6 * DAY_MS + DAY_MS - 1)), "2026-11-30");
        assert_eq!(date(monday(mon + 7 * DAY_MS)), "2026-12-07");
        assert_eq!(date(monday(mon - 1)), "2026-11-23");
    }
}
