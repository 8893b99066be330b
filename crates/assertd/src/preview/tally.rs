//! Counting a preview: credentials fed in (RP, user) order, one user held
//! at a time; each user's outcome decided when the next user starts.

use super::candidate::{Policy, Role};
use super::{judge, refusal_reasons};
use assertd_policy::{Decision, ReasonCode};
use assertd_store::{CachedCredential, StoredCredential};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Which users without a usable credential to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsersWanted {
    /// Those who have one under the policy in force.
    Newly,
    /// Every one.
    All,
    /// None.
    None,
}

/// A user with no usable credential under one profile of the candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedOut {
    /// The relying party.
    pub rp_id: String,
    /// The profile.
    pub profile: String,
    /// The user.
    pub user_handle: Vec<u8>,
    /// Their credentials, revoked ones included.
    pub credentials: u32,
    /// Why their unrevoked credentials would be refused, each once.
    pub reasons: Vec<ReasonCode>,
    /// They have a usable credential under the policy in force.
    pub newly: bool,
}

/// One relying party's credentials under one profile of the candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileTally {
    /// The relying party.
    pub rp_id: String,
    /// The profile.
    pub profile: String,
    /// Why it applies.
    pub role: Role,
    /// Unrevoked credentials judged.
    pub credentials: u64,
    /// Revoked credentials (not judged).
    pub revoked: u64,
    /// Allowed under the candidate.
    pub allowed: u64,
    /// Stepped up under the candidate.
    pub stepped_up: u64,
    /// Refused under the candidate.
    pub refused: u64,
    /// Refused under the candidate, not under the policy in force.
    pub newly_refused: u64,
    /// The refused, by reason.
    pub refused_by_reason: BTreeMap<ReasonCode, u64>,
    /// Users with a credential here.
    pub users: u64,
    /// Users with no usable credential under the candidate.
    pub users_without_usable: u64,
    /// Of them, those with one under the policy in force.
    pub users_newly_without_usable: u64,
}

/// The whole preview's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Per relying party, then profile (default, allowed, report-only).
    pub profiles: Vec<ProfileTally>,
    /// Credentials read.
    pub credentials_scanned: u64,
    /// Of them, of relying parties the candidate does not configure.
    pub credentials_of_unknown_rps: u64,
    /// Whether a policy in force was compared against (the `newly` counts
    /// are 0 without one).
    pub compared: bool,
}

/// One user's outcome under one profile, so far.
#[derive(Debug, Clone, Default)]
struct UserSlot {
    usable: bool,
    usable_before: bool,
    reasons: BTreeSet<ReasonCode>,
}

/// The user being read.
#[derive(Debug)]
struct User {
    rp_id: String,
    handle: Vec<u8>,
    credentials: u32,
    slots: Vec<UserSlot>,
}

/// The running counts.
#[derive(Debug)]
pub struct Tally {
    candidate: Arc<Policy>,
    in_force: Option<Arc<Policy>>,
    wanted: UsersWanted,
    tallies: BTreeMap<String, Vec<ProfileTally>>,
    user: Option<User>,
    scanned: u64,
    unknown: u64,
}

impl Tally {
    /// Counts for each relying party of `candidate` (of `only`, when
    /// given), compared against `in_force` when given.
    pub fn new(candidate: Arc<Policy>, in_force: Option<Arc<Policy>>, wanted: UsersWanted, only: Option<&[String]>) -> Self {
        let tallies = candidate
            .rps
            .iter()
            .filter(|(id, _)| only.is_none_or(|o| o.contains(id)))
            .map(|(id, slots)| {
                let t = slots
                    .iter()
                    .map(|s| ProfileTally {
                        rp_id: id.clone(),
                        profile: s.name.clone(),
                        role: s.role,
                        credentials: 0,
                        revoked: 0,
                        allowed: 0,
                        stepped_up: 0,
                        refused: 0,
                        newly_refused: 0,
                        refused_by_reason: BTreeMap::new(),
                        users: 0,
                        users_without_usable: 0,
                        users_newly_without_usable: 0,
                    })
                    .collect();
                (id.clone(), t)
            })
            .collect();
        Self { candidate, in_force, wanted, tallies, user: None, scanned: 0, unknown: 0 }
    }

    /// Judges one credential (they come in (RP, user) order); the users
    /// finished by it go to `out`.
    pub fn add(&mut self, c: &StoredCredential, out: &mut Vec<LockedOut>) {
        self.scanned += 1;
        if !self.tallies.contains_key(&c.rp_id) {
            if !self.candidate.rps.contains_key(&c.rp_id) {
                self.unknown += 1;
            }
            return;
        }
        if self.user.as_ref().is_none_or(|u| u.rp_id != c.rp_id || u.handle != c.user_handle) {
            if let Some(done) = self.user.take() {
                Self::finish_user(&mut self.tallies, self.in_force.is_some(), self.wanted, done, out);
            }
            self.user = Some(User {
                rp_id: c.rp_id.clone(),
                handle: c.user_handle.clone(),
                credentials: 0,
                slots: vec![UserSlot::default(); self.tallies.get(&c.rp_id).map_or(0, Vec::len)],
            });
        }
        let Some(tallies) = self.tallies.get_mut(&c.rp_id) else { return };
        let Some(user) = self.user.as_mut() else { return };
        user.credentials = user.credentials.saturating_add(1);
        let slots = &self.candidate.rps[&c.rp_id];
        let cached = CachedCredential::from(c);
        for ((t, slot), u) in tallies.iter_mut().zip(slots).zip(&mut user.slots) {
            if c.revoked {
                t.revoked += 1;
                continue;
            }
            t.credentials += 1;
            let v = judge(&slot.profile, &cached, self.candidate.metadata());
            let before = self
                .in_force
                .as_ref()
                .and_then(|p| Some(judge(p.counterpart(&c.rp_id, &slot.name)?, &cached, p.metadata()).decision != Decision::Deny));
            u.usable_before |= before == Some(true);
            match v.decision {
                Decision::Allow => t.allowed += 1,
                Decision::StepUp => t.stepped_up += 1,
                Decision::Deny => {
                    t.refused += 1;
                    if before == Some(true) {
                        t.newly_refused += 1;
                    }
                    for r in refusal_reasons(&v) {
                        *t.refused_by_reason.entry(r).or_default() += 1;
                        u.reasons.insert(r);
                    }
                }
            }
            u.usable |= v.decision != Decision::Deny;
        }
    }

    /// Counts a finished user, and lists them where asked.
    fn finish_user(
        tallies: &mut BTreeMap<String, Vec<ProfileTally>>,
        compared: bool,
        wanted: UsersWanted,
        user: User,
        out: &mut Vec<LockedOut>,
    ) {
        let Some(ts) = tallies.get_mut(&user.rp_id) else { return };
        for (t, u) in ts.iter_mut().zip(user.slots) {
            t.users += 1;
            if u.usable {
                continue;
            }
            t.users_without_usable += 1;
            let newly = compared && u.usable_before;
            if newly {
                t.users_newly_without_usable += 1;
            }
            if wanted == UsersWanted::All || (wanted == UsersWanted::Newly && newly) {
                out.push(LockedOut {
                    rp_id: user.rp_id.clone(),
                    profile: t.profile.clone(),
                    user_handle: user.handle.clone(),
                    credentials: user.credentials,
                    reasons: u.reasons.into_iter().collect(),
                    newly,
                });
            }
        }
    }

    /// Counts the last user; the summary.
    pub fn finish(mut self, out: &mut Vec<LockedOut>) -> Summary {
        if let Some(done) = self.user.take() {
            Self::finish_user(&mut self.tallies, self.in_force.is_some(), self.wanted, done, out);
        }
        Summary {
            profiles: self.tallies.into_values().flatten().collect(),
            credentials_scanned: self.scanned,
            credentials_of_unknown_rps: self.unknown,
            compared: self.in_force.is_some(),
        }
    }
}
