//! The pure steps of the engine, one function each: what a credential
//! lookup means for an item, the verifier run on one item, what a counter
//! outcome means, and the policy verdict. No I/O, no async, no clock: the
//! stages in `engine` call these, and so does the vector test, so the
//! vectors exercise exactly the server's glue.

use super::item::{AssertionRequest, deny};
use crate::config::{IssuedChallenges, RpEntry};
use crate::engine::journal::Deferred;
use assertd_policy::{CounterCheck, CredentialFacts, Profile, ReasonCode, SignInContext, Verdict, evaluate};
use assertd_store::{CachedCredential, CounterResult, Lookup};
use assertd_verify::metadata::{BLOCKING, Metadata};
use assertd_verify::{CredentialInput, KeyError, PublicKey, Verification};
use std::sync::Arc;

/// A credential lookup's meaning: the credential, if it can be verified
/// against, or the verdict that ends the item (`CREDENTIAL_NOT_FOUND`,
/// `STORE_UNAVAILABLE`, `CREDENTIAL_REVOKED`, `UNSUPPORTED_ALGORITHM`).
pub fn found(lookup: &Lookup) -> Result<Arc<CachedCredential>, Verdict> {
    match lookup {
        Lookup::NotFound => Err(deny(ReasonCode::CredentialNotFound, "no such credential for this relying party")),
        Lookup::Unavailable(_) => Err(deny(ReasonCode::StoreUnavailable, "the credential store is unavailable; retry")),
        Lookup::Found(c) if c.revoked => Err(deny(ReasonCode::CredentialRevoked, "the credential is revoked")),
        Lookup::Found(c) => usable_key(c).map(|_| c.clone()),
    }
}

/// The credential's key, or `UNSUPPORTED_ALGORITHM` when the stored key
/// cannot be used (an algorithm assertd does not implement, or a key that
/// does not parse).
pub fn usable_key(c: &CachedCredential) -> Result<&PublicKey, Verdict> {
    c.key.as_ref().map_err(|e| {
        let msg = match e {
            KeyError::Unsupported { .. } => e.to_string(),
            _ => format!("the stored key cannot be used: {e}"),
        };
        deny(ReasonCode::UnsupportedAlgorithm, msg)
    })
}

/// WebAuthn L3 §7.2 on one assertion (see `assertd_verify::verify`), with a
/// credential whose key [`usable_key`] accepted; a server-issued challenge
/// is opened with `issued` at `now` (Unix seconds). `None` only for an
/// unusable key, which the lookup stage has already rejected.
pub fn check_assertion(
    rp: &RpEntry,
    c: &CachedCredential,
    r: &AssertionRequest,
    issued: Option<&IssuedChallenges>,
    now: u64,
) -> Option<Verification> {
    let key = c.key.as_ref().ok()?;
    Some(assertd_verify::verify(&rp.rp, CredentialInput { key, user_handle: &c.user_handle }, &r.input(issued, now)))
}

/// Where a counter outcome came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The store's compare-and-set.
    Store(CounterResult),
    /// This replica's journal, during a store outage.
    Journal(Deferred),
    /// Nobody could check it (store down, outages fail closed).
    Unavailable,
}

/// What a counter outcome means for an assertion that reported `received`:
/// a check for policy to weigh, or a verdict that ends it. An accepted
/// non-zero count marks the cached credential as counting.
pub fn counter(settled: Settled, received: u32, c: &CachedCredential) -> Result<CounterCheck, Verdict> {
    match settled {
        Settled::Store(CounterResult::Advanced) | Settled::Journal(Deferred::Accepted) => {
            if received != 0 {
                c.mark_counted();
            }
            Ok(if matches!(settled, Settled::Store(_)) { CounterCheck::Ok } else { CounterCheck::Deferred })
        }
        Settled::Store(CounterResult::Regressed { stored }) | Settled::Journal(Deferred::Regressed { stored }) => {
            Ok(CounterCheck::Regressed { stored, received })
        }
        Settled::Store(CounterResult::Revoked) => Err(deny(ReasonCode::CredentialRevoked, "the credential was revoked")),
        Settled::Store(CounterResult::NotFound) => Err(deny(ReasonCode::CredentialNotFound, "the credential was deleted")),
        Settled::Journal(Deferred::Unknown) | Settled::Unavailable => {
            Err(deny(ReasonCode::StoreUnavailable, "the signature counter could not be checked; retry"))
        }
    }
}

/// The policy verdict on a verified assertion whose counter is settled.
/// With FIDO `metadata`, an attested credential whose model is now blocked
/// is refused.
pub fn judge(
    profile: &Profile,
    c: &CachedCredential,
    v: &Verification,
    counter: Result<CounterCheck, Verdict>,
    ctx: &SignInContext,
    metadata: Option<&Metadata>,
) -> Verdict {
    match counter {
        Ok(counter) => {
            let model_blocked = metadata
                .filter(|_| c.attested)
                .and_then(|m| m.model(&c.aaguid)?.blocked.as_deref())
                .map(|s| BLOCKING.iter().find(|b| **b == s).copied().unwrap_or("a blocking status"));
            let facts = CredentialFacts {
                backup_eligible: c.backup_eligible,
                attested: c.attested,
                aaguid: c.aaguid,
                aaguid_vouched: c.aaguid_vouched,
                model_blocked,
                created_at_ms: c.created_at_ms,
            };
            evaluate(profile, v, &facts, counter, ctx)
        }
        Err(verdict) => verdict,
    }
}
