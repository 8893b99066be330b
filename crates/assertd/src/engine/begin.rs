//! Starting a ceremony: the challenge the server issues (`IssueChallenge`),
//! and the options built from the profile around it (`BeginRegistration`,
//! `BeginAuthentication`; the building is `assertd_policy::options`').

use super::clock::now_ms;
use super::{Engine, fields};
use crate::authz::Grant;
use crate::config::RpEntry;
use assertd_policy::Profile;
use assertd_policy::ReasonCode;
use assertd_policy::options::{self, Descriptor};
use assertd_store::StoreError;
use assertd_verify::{Ceremony, truncate};
use std::sync::Arc;

/// Longest `user_name` or `user_display_name` accepted, in bytes.
pub const MAX_USER_NAME: usize = 256;

/// A challenge the server issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The raw challenge.
    pub challenge: Vec<u8>,
    /// When it stops opening, Unix seconds.
    pub expires_at: u64,
    /// Its lifetime, seconds (the options' `timeout`).
    pub ttl_seconds: u64,
}

/// Why a ceremony could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BeginError {
    /// No `[challenges]` keys (FAILED_PRECONDITION).
    #[error("this server issues no challenges: configure [challenges] keys")]
    NoChallenges,
    /// A field is missing or out of bounds (INVALID_ARGUMENT).
    #[error("{0}")]
    Invalid(String),
    /// The relying party or profile is unknown (INVALID_ARGUMENT) or not
    /// the caller's to use (PERMISSION_DENIED, for `*_NOT_AUTHORIZED`).
    #[error("{1}")]
    Target(ReasonCode, String),
    /// The system random number generator failed (INTERNAL).
    #[error("the system random number generator failed")]
    Random,
    /// The user's credentials could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A registration to start.
#[derive(Debug, Clone, Default)]
pub struct BeginRegistration {
    /// The relying party.
    pub rp_id: String,
    /// `user.id`.
    pub user_handle: Vec<u8>,
    /// `user.name`; empty: the handle in base64url.
    pub user_name: String,
    /// `user.displayName`; empty: the name.
    pub user_display_name: String,
    /// The profile; empty: the RP's default.
    pub profile: String,
    /// The challenge's lifetime; 0: the configured default.
    pub ttl_seconds: u32,
}

/// A sign-in to start.
#[derive(Debug, Clone, Default)]
pub struct BeginAuthentication {
    /// The relying party.
    pub rp_id: String,
    /// The user, for a username-first sign-in; empty: discoverable.
    pub user_handle: Vec<u8>,
    /// The profile; empty: the RP's default.
    pub profile: String,
    /// The challenge's lifetime; 0: the configured default.
    pub ttl_seconds: u32,
}

fn check_user_handle(user_handle: &[u8], required: bool) -> Result<(), BeginError> {
    if required && user_handle.is_empty() {
        return Err(BeginError::Invalid("user_handle is required".into()));
    }
    if user_handle.len() > assertd_store::MAX_USER_HANDLE_LEN {
        return Err(BeginError::Invalid(format!(
            "user_handle is {} bytes, over the limit of {}",
            user_handle.len(),
            assertd_store::MAX_USER_HANDLE_LEN
        )));
    }
    Ok(())
}

impl Engine {
    /// Issues a challenge for `rp_id` (bound to `user_handle` when not
    /// empty) and `ceremony`, living `ttl_seconds` (0: the configured
    /// default; capped at the configured maximum).
    pub fn issue_challenge(&self, rp_id: &str, user_handle: &[u8], ceremony: Ceremony, ttl_seconds: u32) -> Result<Issued, BeginError> {
        let policy = self.policy.load();
        let Some(issued) = policy.challenges.clone() else { return Err(BeginError::NoChallenges) };
        if !policy.rps.contains_key(rp_id) {
            return Err(BeginError::Invalid(format!("relying party {:?} is not configured", truncate(rp_id))));
        }
        check_user_handle(user_handle, false)?;
        let ttl = issued.ttl(ttl_seconds);
        let expires_at = u64::try_from(now_ms() / 1000).unwrap_or(0).saturating_add(ttl);
        let mut nonce = [0u8; assertd_verify::challenge::NONCE_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).map_err(|_| BeginError::Random)?;
        let challenge = issued.keys.issue(rp_id, user_handle, ceremony, expires_at, nonce);
        crate::telemetry::challenge_issued();
        Ok(Issued { challenge, expires_at, ttl_seconds: ttl })
    }

    /// The relying party and profile a ceremony is started under, from one
    /// load of the configuration: FAILED_PRECONDITION first when no
    /// challenges can be issued.
    fn ceremony_target(&self, grant: &Grant, rp_id: &str, profile: &str) -> Result<(Arc<RpEntry>, Arc<Profile>), BeginError> {
        let policy = self.policy.load();
        if policy.challenges.is_none() {
            return Err(BeginError::NoChallenges);
        }
        fields::profile_for(&policy, grant, rp_id, profile).map_err(|(c, m)| BeginError::Target(c, m))
    }

    /// The options of a registration under the profile the caller may
    /// apply, with a registration challenge for this RP and user in them;
    /// `excludeCredentials` lists every credential the user has at the RP.
    pub async fn begin_registration(&self, r: &BeginRegistration, grant: &Grant) -> Result<(String, Issued), BeginError> {
        check_user_handle(&r.user_handle, true)?;
        for (field, value) in [("user_name", &r.user_name), ("user_display_name", &r.user_display_name)] {
            if value.len() > MAX_USER_NAME {
                return Err(BeginError::Invalid(format!("{field} is {} bytes, over the limit of {MAX_USER_NAME}", value.len())));
            }
        }
        let (rp, profile) = self.ceremony_target(grant, &r.rp_id, &r.profile)?;
        let stored = self.credentials_of(&r.rp_id, &r.user_handle).await?;
        let issued = self.issue_challenge(&r.rp_id, &r.user_handle, Ceremony::Registration, r.ttl_seconds)?;
        let exclude: Vec<Descriptor<'_>> = stored.iter().map(|c| Descriptor { id: &c.credential_id, transports: &c.transports }).collect();
        let user_name = if r.user_name.is_empty() { options::b64url(&r.user_handle) } else { r.user_name.clone() };
        let display = if r.user_display_name.is_empty() { user_name.clone() } else { r.user_display_name.clone() };
        let options = options::creation(
            &profile,
            &options::Registration {
                rp_id: rp.rp.id(),
                rp_name: &rp.name,
                user_handle: &r.user_handle,
                user_name: &user_name,
                user_display_name: &display,
                challenge: &issued.challenge,
                timeout_ms: issued.ttl_seconds.saturating_mul(1000),
                exclude: &exclude,
            },
        );
        Ok((options.to_string(), issued))
    }

    /// The options of a sign-in under the profile the caller may apply,
    /// with a sign-in challenge (bound to the user when named) in them;
    /// `allowCredentials` lists the user's credentials that are not
    /// revoked, none without a user.
    pub async fn begin_authentication(&self, r: &BeginAuthentication, grant: &Grant) -> Result<(String, Issued), BeginError> {
        check_user_handle(&r.user_handle, false)?;
        let (rp, profile) = self.ceremony_target(grant, &r.rp_id, &r.profile)?;
        let stored = if r.user_handle.is_empty() { Vec::new() } else { self.credentials_of(&r.rp_id, &r.user_handle).await? };
        let issued = self.issue_challenge(&r.rp_id, &r.user_handle, Ceremony::SignIn, r.ttl_seconds)?;
        let allow: Vec<Descriptor<'_>> =
            stored.iter().filter(|c| !c.revoked).map(|c| Descriptor { id: &c.credential_id, transports: &c.transports }).collect();
        let options = options::request(&profile, rp.rp.id(), &issued.challenge, issued.ttl_seconds.saturating_mul(1000), &allow);
        Ok((options.to_string(), issued))
    }
}

/// The signal methods' options for one user (§5.1.10.3, §5.1.10.4), as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSignals {
    /// `AllAcceptedCredentialsOptions`.
    pub all_accepted_credentials: String,
    /// `CurrentUserDetailsOptions`; empty without a name.
    pub current_user_details: String,
}

impl Engine {
    /// What the page passes to the signal methods for `user_handle`: every
    /// credential of the user that is not revoked, read from the store; a
    /// store error is an error, never an empty list.
    pub async fn user_signals(&self, rp_id: &str, user_handle: &[u8], name: &str, display_name: &str) -> Result<UserSignals, BeginError> {
        check_user_handle(user_handle, true)?;
        for (field, value) in [("user_name", name), ("user_display_name", display_name)] {
            if value.len() > MAX_USER_NAME {
                return Err(BeginError::Invalid(format!("{field} is {} bytes, over the limit of {MAX_USER_NAME}", value.len())));
            }
        }
        let rp = self.policy.load().rps.get(rp_id).cloned();
        let Some(rp) = rp else { return Err(BeginError::Invalid(format!("relying party {:?} is not configured", truncate(rp_id)))) };
        let stored = self.credentials_of(rp_id, user_handle).await?;
        let ids: Vec<&[u8]> = stored.iter().filter(|c| !c.revoked).map(|c| c.credential_id.as_slice()).collect();
        let display = if display_name.is_empty() { name } else { display_name };
        Ok(UserSignals {
            all_accepted_credentials: options::all_accepted_credentials(rp.rp.id(), user_handle, &ids).to_string(),
            current_user_details: if name.is_empty() {
                String::new()
            } else {
                options::current_user_details(rp.rp.id(), user_handle, name, display).to_string()
            },
        })
    }
}
