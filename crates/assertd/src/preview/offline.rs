//! `assertd policy preview`: the preview run from the command line on the
//! store a config names, the users written as JSON Lines, the summary
//! printed as a table (and written last, for `assertd report adoption`).

use super::{LockedOut, Pages, Policy, ProfileTally, Scope, Summary, Tally, UsersWanted, scan};
use assertd_policy::options::b64url;
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// One line of the JSON Lines file: a user, or (last) the summary.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    /// A user without a usable credential under a profile.
    User {
        /// The relying party.
        rp_id: String,
        /// The profile.
        profile: String,
        /// The user handle, base64url.
        user_handle: String,
        /// Their credentials.
        credentials: u32,
        /// Why theirs would be refused.
        reasons: Vec<&'static str>,
        /// They have a usable one under the policy in force.
        newly: bool,
    },
    /// The counts.
    Summary {
        /// Per relying party and profile.
        profiles: Vec<ProfileLine>,
        /// Credentials read.
        credentials_scanned: u64,
        /// Of relying parties the candidate does not configure.
        credentials_of_unknown_relying_parties: u64,
        /// A policy in force was compared against.
        compared: bool,
        /// How long it took.
        elapsed_ms: u64,
    },
}

/// A [`ProfileTally`] as written.
#[derive(Debug, Serialize, serde::Deserialize, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ProfileLine {
    pub rp_id: String,
    pub profile: String,
    pub role: String,
    pub credentials: u64,
    pub revoked: u64,
    pub allowed: u64,
    pub stepped_up: u64,
    pub refused: u64,
    pub newly_refused: u64,
    pub refused_by_reason: std::collections::BTreeMap<String, u64>,
    pub users: u64,
    pub users_without_usable: u64,
    pub users_newly_without_usable: u64,
}

impl From<ProfileTally> for ProfileLine {
    fn from(t: ProfileTally) -> Self {
        Self {
            rp_id: t.rp_id,
            profile: t.profile,
            role: t.role.as_str().to_owned(),
            credentials: t.credentials,
            revoked: t.revoked,
            allowed: t.allowed,
            stepped_up: t.stepped_up,
            refused: t.refused,
            newly_refused: t.newly_refused,
            refused_by_reason: t.refused_by_reason.into_iter().map(|(r, n)| (r.as_str().to_owned(), n)).collect(),
            users: t.users,
            users_without_usable: t.users_without_usable,
            users_newly_without_usable: t.users_newly_without_usable,
        }
    }
}

fn user_line(u: LockedOut) -> Line {
    Line::User {
        rp_id: u.rp_id,
        profile: u.profile,
        user_handle: b64url(&u.user_handle),
        credentials: u.credentials,
        reasons: u.reasons.iter().map(|r| r.as_str()).collect(),
        newly: u.newly,
    }
}

/// Runs the preview of `candidate` against `in_force` (if given) over
/// `pages`, writing the users `wanted` and then the summary to `out` (JSON
/// Lines) when given; returns the summary and how long it took.
pub async fn run(
    pages: &impl Pages,
    candidate: Policy,
    in_force: Option<Policy>,
    rp: Option<String>,
    wanted: UsersWanted,
    out: Option<&Path>,
) -> Result<(Summary, u64), String> {
    let started = std::time::Instant::now();
    let scope = match &rp {
        Some(id) if !candidate.rps.contains_key(id) => return Err(format!("relying party {id:?} is not in the candidate config")),
        Some(id) => Scope::Only(vec![id.clone()]),
        None => Scope::All,
    };
    let only: Vec<String> = rp.into_iter().collect();
    let wanted = if out.is_some() { wanted } else { UsersWanted::None };
    let tally = Tally::new(Arc::new(candidate), in_force.map(Arc::new), wanted, (!only.is_empty()).then_some(only.as_slice()));
    let mut file = match out {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?)),
        None => None,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<LockedOut>>(4);
    let write = async {
        while let Some(page) = rx.recv().await {
            if let Some(f) = file.as_mut() {
                for u in page {
                    serde_json::to_writer(&mut *f, &user_line(u)).map_err(|e| e.to_string())?;
                    f.write_all(b"\n").map_err(|e| e.to_string())?;
                }
            }
        }
        Ok::<_, String>(())
    };
    let read = async {
        let r = scan(pages, tally, scope, 1000, &tx, |p| p).await;
        drop(tx);
        r
    };
    let (read, write) = tokio::join!(read, write);
    write?;
    let summary = read.map_err(|e| e.to_string())?.ok_or("the preview stopped")?;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Some(mut f) = file {
        let line = Line::Summary {
            profiles: summary.profiles.iter().cloned().map(ProfileLine::from).collect(),
            credentials_scanned: summary.credentials_scanned,
            credentials_of_unknown_relying_parties: summary.credentials_of_unknown_rps,
            compared: summary.compared,
            elapsed_ms,
        };
        serde_json::to_writer(&mut f, &line).map_err(|e| e.to_string())?;
        f.write_all(b"\n").and_then(|()| f.flush()).map_err(|e| e.to_string())?;
    }
    Ok((summary, elapsed_ms))
}

/// The summary as a table for people.
pub fn table(s: &Summary, elapsed_ms: u64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let newly = |n: u64| if s.compared { n.to_string() } else { "-".to_owned() };
    let _ = writeln!(
        out,
        "{:<24} {:<20} {:<11} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>12} {:>8}",
        "relying party", "profile", "role", "credentials", "allowed", "step-up", "refused", "(new)", "users", "no usable", "(new)"
    );
    for p in &s.profiles {
        let _ = writeln!(
            out,
            "{:<24} {:<20} {:<11} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>12} {:>8}",
            p.rp_id,
            p.profile,
            p.role.as_str(),
            p.credentials,
            p.allowed,
            p.stepped_up,
            p.refused,
            newly(p.newly_refused),
            p.users,
            p.users_without_usable,
            newly(p.users_newly_without_usable)
        );
        for (r, n) in &p.refused_by_reason {
            let _ = writeln!(out, "{:<58} refused {n:>9}  {}", "", r.as_str());
        }
    }
    let _ = writeln!(
        out,
        "{} credentials read in {elapsed_ms} ms{}{}",
        s.credentials_scanned,
        if s.credentials_of_unknown_rps > 0 {
            format!("; {} of relying parties the candidate does not configure (refused RP_UNKNOWN)", s.credentials_of_unknown_rps)
        } else {
            String::new()
        },
        if s.compared { "" } else { "; no --in-force config: nothing compared (\"-\")" }
    );
    out
}
