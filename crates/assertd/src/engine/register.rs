//! Registration (`CredentialService.RegisterCredential`): W3C WebAuthn L3
//! §7.1 top-down.
//!
//! 1. `service::CredentialSvc::register_credential` checks the request's
//!    fields ([`RegistrationRequest::check`]) and the caller's grant, then
//!    calls [`Engine::register`].
//! 2. [`fields::profile_for`]: the relying party and the profile the
//!    caller may apply (`RP_UNKNOWN`, `PROFILE_*`).
//! 3. On the rayon pool: `assertd_verify::verify_registration` (§7.1 steps
//!    5–25 (UTF-8 decode … credentialId length): client data, attestation object, authenticator data, the
//!    statement and its trust path), then `assertd_policy::
//!    evaluate_registration` (the profile's rules) and the record's own
//!    checks (the key as `PutCredential` checks it).
//! 4. The store creates the record of an allowed registration (§7.1 steps
//!    26–27 (credentialId unique, credential record) and §7.1 step 29
//!    (store): never replacing one, `CREDENTIAL_ALREADY_REGISTERED`); with a
//!    server-issued challenge, in one transaction with the challenge's
//!    single use (`CHALLENGE_REPLAYED`), and with a temporary access pass,
//!    the pass's use in the same transaction (`access_pass`:
//!    `TEMPORARY_ACCESS_PASS_*`). A denied registration whose
//!    attestation statement verified uses its challenge up too: every final
//!    verdict reached after the statement's signature does. A retryable
//!    verdict has recorded nothing.

use super::admission::{Refusal, SHARE_WAIT, Shed};
use super::clock::now_ms;
use super::error::EngineError;
use super::item::{self, RegistrationOutcome, RegistrationRequest};
use super::{Engine, access_pass, challenges, fields, pool};
use crate::authz::Grant;
use assertd_policy::{Decision, Finding, ReasonCode, Verdict};
use assertd_store::{Registered, StoredCredential};
use assertd_verify::access_pass::Pass;
use assertd_verify::{Ceremony, Challenge, Registration, RegistrationInput, TrustInput};

impl Engine {
    /// Verifies one registration and, when its verdict allows, stores the
    /// credential; counts the outcome (`assertd_registrations_total`, as
    /// `decide` counts sign-ins). Errors only when its share of the pool
    /// stayed busy or the pool failed.
    pub async fn register(&self, r: RegistrationRequest, grant: &Grant) -> Result<RegistrationOutcome, EngineError> {
        let outcome = self.registration_outcome(r, grant).await?;
        let kind = match outcome.authenticator {
            Some(a) if a.flags.backup_eligible() => "synced",
            Some(_) => "device_bound",
            None => "unknown",
        };
        crate::telemetry::registration(&outcome.verdict, outcome.attestation.as_ref(), kind);
        Ok(outcome)
    }

    async fn registration_outcome(&self, r: RegistrationRequest, grant: &Grant) -> Result<RegistrationOutcome, EngineError> {
        let policy = self.policy.load_full();
        let (rp, profile) = match fields::profile_for(&policy, grant, &r.rp_id, &r.profile) {
            Ok(t) => t,
            Err((code, m)) => return Ok(RegistrationOutcome::denied(item::deny(code, m), None)),
        };
        let issued = policy.challenges.clone();
        if r.server_issued_challenge && issued.is_none() {
            let v = item::deny(ReasonCode::InvalidRequest, "this server issues no challenges: [challenges] has no keys");
            return Ok(RegistrationOutcome::denied(v, None));
        }
        let now = u64::try_from(now_ms() / 1000).unwrap_or(0);
        if let Some(m) = &policy.metadata
            && m.when_stale == crate::config::WhenStale::RefuseRegistrations
            && m.metadata.stale(now)
        {
            let v = item::deny(
                ReasonCode::MetadataStale,
                format!(
                    "the FIDO metadata in force (no {}) is more than a day past its nextUpdate: nothing registers until fresh metadata is loaded",
                    m.metadata.number
                ),
            );
            return Ok(RegistrationOutcome::denied(v, None));
        }
        let trust = policy.attestation.clone();
        let metadata = policy.metadata.clone();
        // Checked by `RegistrationRequest::check`: a typed pass parses.
        let typed_pass = Pass::parse(&r.temporary_access_pass).ok();
        let request = r;
        // Registrations take their share of the pool, never more: a flood
        // of them waits here (bounded, then refused), not in the pool's
        // queue ahead of sign-in batches.
        let Ok(Ok(_share)) = tokio::time::timeout(SHARE_WAIT, self.registrations.clone().acquire_owned()).await else {
            return Err(Refusal::Overloaded { shed: Shed::RegistrationShare, retry_after: Some(SHARE_WAIT) }.into());
        };
        // §7.1 steps 5–25 (UTF-8 decode … credentialId length) and the profile, off the async runtime: chains
        // with RSA roots cost milliseconds.
        let (registration, verdict, record) = pool::run(&self.pool, move || {
            let challenge = match &issued {
                Some(i) if request.server_issued_challenge => Challenge::Issued { keys: &i.keys, now, skew: i.clock_skew_seconds },
                _ => Challenge::Expected(&request.expected_challenge),
            };
            let input = RegistrationInput {
                client_data_json: &request.client_data_json,
                attestation_object: &request.attestation_object,
                user_handle: &request.user_handle,
                challenge,
            };
            let mds = metadata.as_ref().map(|m| &m.metadata);
            let t = TrustInput {
                anchors: &trust.anchors,
                metadata: mds,
                now,
                skew: trust.skew_seconds,
                insecure_allow_sha1: trust.insecure_allow_sha1,
            };
            let registration = assertd_verify::verify_registration(&rp.rp, &input, &t);
            let mut verdict = assertd_policy::evaluate_registration(&profile, &registration);
            if let (Some(raw_id), Some(c)) = (&request.raw_id, &registration.credential)
                && *raw_id != c.credential_id
            {
                // The page's rawId names another credential than the one the
                // authenticator attested: a relay that mixed two responses.
                verdict =
                    item::deny(ReasonCode::InvalidRequest, "response_json's rawId is not the credential ID in the attestation object");
            }
            if verdict.decision == Decision::Allow
                && !request.temporary_access_pass.is_empty()
                && let Some(f) = assertd_policy::pass_registration(&profile, &registration)
            {
                verdict = Verdict::deny(vec![f]);
            }
            let record = record(&request, &registration);
            if verdict.decision == Decision::Allow {
                // The record's own checks (the key's point on its curve, as
                // PutCredential checks it).
                if let Some(Err(e)) = record.as_ref().map(StoredCredential::validate) {
                    verdict = Verdict::deny(vec![Finding::new(ReasonCode::MalformedAuthenticatorData, format!("credential: {e}"))]);
                }
            }
            (registration, verdict, record)
        })
        .await?;
        let reg = Some(&registration);
        // The challenge's single use: only once the attestation statement
        // verified (its signature covers the client data, so a forged
        // response cannot use up the genuine ceremony's challenge).
        let challenge_use = match (registration.issued_challenge, policy.challenges.as_deref()) {
            (Some(opened), Some(i)) if registration.statement_verified() => Some(challenges::use_of(i, opened)),
            _ => None,
        };
        // The pass the user typed, among their stored ones: a pass that
        // cannot be redeemed is a final deny (the challenge is used up).
        let (mut verdict, mut record) = (verdict, record);
        if let (Decision::Allow, Some(typed), Some(rec)) = (verdict.decision, &typed_pass, record.as_mut()) {
            match self.find_pass(&rec.rp_id, &rec.user_handle, typed).await {
                Ok(Ok(p)) => {
                    verdict.reasons.push(Finding::new(
                        ReasonCode::TemporaryAccessPass,
                        format!("registered with temporary access pass {}", p.pass_id),
                    ));
                    rec.access_pass_id = p.pass_id;
                }
                Ok(Err(refusal)) => verdict = access_pass::refused(refusal, None),
                Err(e) => return Ok(RegistrationOutcome::denied(unrecorded(&e, "passes"), reg)),
            }
        }
        let (Decision::Allow, Some(record)) = (verdict.decision, record) else {
            // A final deny uses the challenge up.
            if let Some(u) = challenge_use {
                match self.cache.store().consume_challenges(vec![u].into()).await {
                    Ok(fresh) if fresh.first() == Some(&false) => {
                        return Ok(RegistrationOutcome::denied(challenges::deny_replayed(verdict, Ceremony::Registration), reg));
                    }
                    Ok(_) => {}
                    Err(e) => return Ok(RegistrationOutcome::denied(unrecorded(&e, "consume_challenges"), reg)),
                }
            }
            return Ok(RegistrationOutcome::denied(verdict, reg));
        };
        let (rp_id, id) = (record.rp_id.clone(), record.credential_id.clone());
        let created = match challenge_use {
            // §7.1 steps 26–27 (credentialId unique, credential record) and
            // §7.1 step 29 (store) with the challenge's and the pass's use:
            // one transaction.
            u if !record.access_pass_id.is_empty() => self.cache.store().create_with_pass(record, u, now_ms()).await,
            // §7.1 steps 26–27 (credentialId unique, credential record) and §7.1
            // step 29 (store) with the challenge's use: one transaction.
            Some(u) => self.cache.store().create_with_challenge(record, u).await,
            // §7.1 steps 26–27 (credentialId unique, credential record): never
            // replace a registered credential.
            None => self
                .cache
                .store()
                .create(record)
                .await
                .map(|c| c.map_or(Registered::AlreadyRegistered, |c| Registered::Created(Box::new(c)))),
        };
        // Drop even on error: the write may have landed (and a not-found
        // entry for the id may be cached).
        self.cache.invalidate(&rp_id, &id).await;
        let verdict = match created {
            Ok(Registered::Created(stored)) => {
                return Ok(RegistrationOutcome {
                    verdict,
                    credential: Some(*stored),
                    attestation: registration.attestation.clone(),
                    authenticator: registration.authenticator,
                });
            }
            Ok(Registered::AlreadyRegistered) => {
                item::deny(ReasonCode::CredentialAlreadyRegistered, "a credential with this id is already registered for the relying party")
            }
            Ok(Registered::ChallengeReplayed) => challenges::deny_replayed(verdict, Ceremony::Registration),
            // Another replica redeemed it since it was found.
            Ok(Registered::PassRefused(refusal)) => access_pass::refused(refusal, None),
            Err(e) => unrecorded(&e, "create"),
        };
        Ok(RegistrationOutcome::denied(verdict, reg))
    }
}

/// A retryable verdict for a store write that failed (nothing was written).
fn unrecorded(e: &assertd_store::StoreError, operation: &'static str) -> Verdict {
    tracing::warn!(error = %e, operation, "a registration's store write failed");
    crate::telemetry::store_error(operation);
    item::deny(ReasonCode::StoreUnavailable, "the registration could not be recorded; retry")
}

/// The record a registration would store: `attested` only for a trusted
/// attestation, `aaguid_vouched` only when its root vouched for the model
/// (the AAGUID is kept either way; unvouched, it never satisfies an allow
/// list), and the root reached.
fn record(r: &RegistrationRequest, reg: &Registration) -> Option<StoredCredential> {
    let c = reg.credential.as_ref()?;
    let flags = reg.authenticator?.flags;
    Some(StoredCredential {
        rp_id: r.rp_id.clone(),
        credential_id: c.credential_id.clone(),
        user_handle: r.user_handle.clone(),
        public_key_cose: c.public_key_cose.clone(),
        sign_count: reg.authenticator.map_or(0, |a| a.sign_count),
        backup_eligible: flags.backup_eligible(),
        backup_state: flags.backup_state(),
        aaguid: c.aaguid.to_vec(),
        attested: reg.attestation.as_ref().is_some_and(|a| a.trusted),
        aaguid_vouched: reg.attestation.as_ref().is_some_and(|a| a.trusted && a.aaguid_vouched),
        trust_anchor: reg
            .attestation
            .as_ref()
            .and_then(|a| a.trust_anchor.as_deref())
            .map(|s| assertd_verify::truncate_to(s, assertd_store::MAX_TRUST_ANCHOR_LEN).to_owned())
            .unwrap_or_default(),
        transports: r.transports.clone(),
        revoked: false,
        created_at_ms: now_ms(),
        last_used_at_ms: None,
        discoverable: r.discoverable,
        attachment: r.attachment,
        uv_initialized: flags.user_verified(),
        // Set once the pass is found.
        access_pass_id: String::new(),
    })
}
