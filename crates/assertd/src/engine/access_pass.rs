//! Temporary access passes through the engine: issuing (the pass from the
//! system RNG, only its keyed hash stored), finding the pass a user typed
//! among their stored ones, and the sign-in with a pass
//! (`VerificationService.RedeemTemporaryAccessPass`). Registration redeems
//! passes in `register`.

use super::clock::now_ms;
use super::{Engine, fields, item};
use crate::authz::Grant;
use crate::config::AccessPassPolicy;
use assertd_policy::{Decision, ReasonCode, SignInContext, Verdict};
use assertd_store::{AccessPass, PassRefusal, StoreError};
use assertd_verify::access_pass::{Pass, SYMBOLS};

/// Longest note on a pass, in bytes.
pub const MAX_NOTE_LEN: usize = 1024;

/// Why a pass could not be issued, revoked or listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PassError {
    /// No `[temporary_access_pass]` keys (FAILED_PRECONDITION).
    #[error("this server issues no temporary access passes: configure [temporary_access_pass] keys")]
    Off,
    /// A field is missing or out of bounds (INVALID_ARGUMENT).
    #[error("{0}")]
    Invalid(String),
    /// The system random number generator failed (INTERNAL).
    #[error("the system random number generator failed")]
    Random,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A pass to issue.
#[derive(Debug, Clone)]
pub struct IssuePass {
    /// The relying party.
    pub rp_id: String,
    /// The user.
    pub user_handle: Vec<u8>,
    /// Seconds; 0: the configured default.
    pub lifetime_seconds: u32,
    /// Usable once (`None`: yes, the safe default).
    pub one_time: Option<bool>,
    /// Why, for people.
    pub note: String,
}

/// A pass issued: the pass itself (shown once), and what is stored.
#[derive(Debug)]
pub struct Issued {
    /// The pass.
    pub pass: Pass,
    /// The stored record.
    pub stored: AccessPass,
    /// The user's earlier passes it revoked.
    pub replaced: Vec<String>,
}

/// The verdict of a pass that cannot be redeemed.
pub fn refused(refusal: PassRefusal, pass_id: Option<&str>) -> Verdict {
    let which = pass_id.map_or_else(String::new, |id| format!(" {id}"));
    match refusal {
        PassRefusal::Invalid => item::deny(
            ReasonCode::TemporaryAccessPassInvalid,
            "the temporary access pass is not one of this user's passes at this relying party",
        ),
        PassRefusal::Expired => item::deny(ReasonCode::TemporaryAccessPassExpired, format!("temporary access pass{which} has expired")),
        PassRefusal::Revoked => item::deny(
            ReasonCode::TemporaryAccessPassRevoked,
            format!("temporary access pass{which} was revoked or replaced by a newer one"),
        ),
        PassRefusal::Used => {
            item::deny(ReasonCode::TemporaryAccessPassUsed, format!("one-time temporary access pass{which} was already redeemed"))
        }
    }
}

/// A fresh pass id: `tap_` and 20 hex digits from the system RNG.
fn new_pass_id(rng: &dyn ring::rand::SecureRandom) -> Result<String, PassError> {
    let mut b = [0u8; 10];
    rng.fill(&mut b).map_err(|_| PassError::Random)?;
    Ok(format!("tap_{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()))
}

impl Engine {
    /// The pass settings in force; `None` when passes are off.
    pub fn access_passes(&self) -> Option<std::sync::Arc<AccessPassPolicy>> {
        self.policy.load().access_passes.clone()
    }

    /// Issues a pass for a user (replacing any usable one), as `client`.
    pub async fn issue_pass(&self, r: IssuePass, client: &str) -> Result<Issued, PassError> {
        let settings = self.access_passes().ok_or(PassError::Off)?;
        if !self.policy.load().rps.contains_key(&r.rp_id) {
            return Err(PassError::Invalid(format!("relying party {:?} is not configured", assertd_verify::truncate(&r.rp_id))));
        }
        if r.user_handle.is_empty() || r.user_handle.len() > assertd_store::MAX_USER_HANDLE_LEN {
            return Err(PassError::Invalid(format!("user_handle must be 1 to {} bytes", assertd_store::MAX_USER_HANDLE_LEN)));
        }
        if r.note.len() > MAX_NOTE_LEN {
            return Err(PassError::Invalid(format!("note is {} bytes, over the limit of {MAX_NOTE_LEN}", r.note.len())));
        }
        let lifetime = settings.lifetime(r.lifetime_seconds).map_err(PassError::Invalid)?;
        let rng = ring::rand::SystemRandom::new();
        let mut random = [0u8; SYMBOLS];
        ring::rand::SecureRandom::fill(&rng, &mut random).map_err(|_| PassError::Random)?;
        let pass = Pass::from_random(&random);
        let (key_id, hash) = settings.keys.hash_new(&pass, &r.rp_id, &r.user_handle);
        let now = now_ms();
        let stored = AccessPass {
            rp_id: r.rp_id,
            pass_id: new_pass_id(&rng)?,
            user_handle: r.user_handle,
            key_id: key_id.to_owned(),
            hash: hash.to_vec(),
            one_time: r.one_time.unwrap_or(true) || settings.require_one_time,
            created_at_ms: now,
            expires_at_ms: now.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX).saturating_mul(1000)),
            revoked_at_ms: None,
            used_at_ms: None,
            uses: 0,
            issued_by: client.to_owned(),
            note: r.note,
        };
        let replaced = self.cache.store().issue_pass(stored.clone()).await?;
        Ok(Issued { pass, stored, replaced })
    }

    /// Revokes a pass; the pass after, `None` when there is none.
    pub async fn revoke_pass(&self, rp_id: &str, pass_id: &str) -> Result<Option<AccessPass>, StoreError> {
        self.cache.store().revoke_pass(rp_id, pass_id, now_ms()).await
    }

    /// A user's passes, newest first.
    pub async fn passes(&self, rp_id: &str, user_handle: &[u8]) -> Result<Vec<AccessPass>, StoreError> {
        self.cache.store().passes(rp_id, user_handle).await
    }

    /// The stored pass of this user that `typed` is, and whether it can be
    /// redeemed now (`Err`: why not). Matched against every pass of the
    /// user, each under the key it was hashed with.
    pub async fn find_pass(&self, rp_id: &str, user_handle: &[u8], typed: &Pass) -> Result<Result<AccessPass, PassRefusal>, StoreError> {
        let Some(settings) = self.access_passes() else { return Ok(Err(PassRefusal::Invalid)) };
        let now = now_ms();
        let found = self
            .cache
            .store()
            .passes(rp_id, user_handle)
            .await?
            .into_iter()
            .find(|p| settings.keys.matches(typed, rp_id, user_handle, &p.key_id, &p.hash));
        Ok(match found {
            None => Err(PassRefusal::Invalid),
            Some(p) => match p.refusal(now) {
                Some(r) => Err(r),
                None => Ok(p),
            },
        })
    }

    /// A sign-in with a pass: the verdict (the pass redeemed when it
    /// allows), and the pass's id when one matched.
    pub async fn redeem_pass(
        &self,
        grant: &Grant,
        rp_id: &str,
        user_handle: &[u8],
        typed: &Pass,
        profile: &str,
        mut context: SignInContext,
    ) -> Result<(Verdict, Option<String>), StoreError> {
        let policy = self.policy.load_full();
        let profile = match fields::profile_for(&policy, grant, rp_id, profile) {
            Ok((_, p)) => p,
            Err((code, m)) => return Ok((item::deny(code, m), None)),
        };
        if !self.user_risks.loaded() {
            return Ok((
                item::deny(ReasonCode::StoreUnavailable, "the users flagged at risk could not be read from the store yet; retry"),
                None,
            ));
        }
        let pass = match self.find_pass(rp_id, user_handle, typed).await? {
            Ok(p) => p,
            Err(r) => return Ok((refused(r, None), None)),
        };
        (context.user_risk, context.user_risk_set_at_ms) = self.user_risks.flag(rp_id, user_handle, now_ms());
        let verdict = assertd_policy::evaluate_access_pass(&profile, &pass.pass_id, &context);
        if verdict.decision != Decision::Allow {
            // Stepped up or denied: the pass stays as it was.
            return Ok((verdict, Some(pass.pass_id)));
        }
        // The single use, under the row's lock on every replica.
        Ok(match self.cache.store().redeem_pass(rp_id, &pass.pass_id, now_ms()).await? {
            Ok(_) => (verdict, Some(pass.pass_id)),
            Err(r) => (refused(r, Some(&pass.pass_id)), Some(pass.pass_id)),
        })
    }
}
