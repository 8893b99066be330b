//! Every public assertion vector (shared/vectors) through the engine's own
//! pure steps (`assertd::engine::assess`: the credential lookup's meaning,
//! the verifier, the counter outcome, policy), exactly as a batch runs them:
//! each must give exactly the outcome its `expect` names, and each valid
//! one, tampered, must fail for the right reason. Only the store is
//! replaced, by its compare-and-set rule (`sign_count_advances`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assertd::config::RpEntry;
use assertd::engine::AssertionRequest;
use assertd::engine::assess::{self, Settled};
use assertd_policy::{CounterCheck, Decision, Profile, ReasonCode, SignInContext, UserVerification, Verdict};
use assertd_store::{CachedCredential, CounterResult, Lookup, StoredCredential};
use assertd_testkit::vectors::{self, AssertionVector};
use assertd_verify::{RelyingParty, sign_count_advances};
use std::sync::Arc;

/// The vector's RP settings, stored record and assertion, mutable for
/// tampering.
#[derive(Clone)]
struct Case {
    rp: RelyingParty,
    profile: Profile,
    record: StoredCredential,
    cdj: Vec<u8>,
    ad: Vec<u8>,
    sig: Vec<u8>,
    challenge: Vec<u8>,
    appid_used: bool,
}

fn case(v: &AssertionVector) -> Case {
    let user_handle = v.user_handle_b64url.as_deref().map(AssertionVector::bytes).unwrap_or_default();
    Case {
        rp: RelyingParty::new(&v.rp_id, vec![v.expected_origin.clone()], v.allow_subdomain_origin.unwrap_or(false), v.appid.as_deref()),
        profile: Profile {
            user_verification: if v.require_uv { UserVerification::Required } else { UserVerification::Preferred },
            allow_cross_origin: v.allow_cross_origin.unwrap_or(false),
            allowed_top_origins: v.allowed_top_origins.clone().unwrap_or_default(),
            allow_legacy_algorithms: v.legacy_alg.unwrap_or(false),
            ..Profile::default()
        },
        record: StoredCredential {
            rp_id: v.rp_id.clone(),
            credential_id: b"vector".to_vec(),
            user_handle,
            public_key_cose: AssertionVector::bytes(&v.public_key_cose_b64url),
            sign_count: v.stored_sign_count,
            // Where the source had no registration, BE at registration is
            // what the authenticator reports now.
            backup_eligible: v.registered_be.unwrap_or(v.flags.be),
            backup_state: false,
            aaguid: Vec::new(),
            attested: true,
            transports: Vec::new(),
            revoked: false,
            created_at_ms: 0,
            last_used_at_ms: None,
            aaguid_vouched: false,
            trust_anchor: String::new(),
            discoverable: None,
            attachment: None,
            uv_initialized: false,
            access_pass_id: String::new(),
        },
        cdj: AssertionVector::bytes(&v.client_data_json_b64url),
        ad: AssertionVector::bytes(&v.authenticator_data_b64url),
        sig: AssertionVector::bytes(&v.signature_b64url),
        challenge: v.expected_challenge(),
        appid_used: v.appid_used.unwrap_or(false),
    }
}

/// Runs a case through the engine's steps: lookup, verify, counter, policy.
fn run(c: &Case) -> Verdict {
    let rp = RpEntry {
        rp: c.rp.clone(),
        name: "vector".into(),
        default_profile: Arc::new(c.profile.clone()),
        default_profile_name: "vector".into(),
        allowed_profiles: None,
        report_only: Vec::new(),
    };
    let credential = match assess::found(&Lookup::Found(Arc::new(CachedCredential::from(&c.record)))) {
        Ok(credential) => credential,
        Err(verdict) => return verdict,
    };
    let request = AssertionRequest {
        rp_id: c.record.rp_id.clone(),
        credential_id: c.record.credential_id.clone(),
        client_data_json: c.cdj.clone(),
        authenticator_data: c.ad.clone(),
        signature: c.sig.clone(),
        user_handle: c.record.user_handle.clone(),
        expected_challenge: c.challenge.clone(),
        appid_used: c.appid_used,
        ..AssertionRequest::default()
    };
    let v = assess::check_assertion(&rp, &credential, &request, None, 0).expect("found() accepted the key");
    let stored = c.record.sign_count;
    let counter = match (v.is_valid(), v.authenticator) {
        (true, Some(a)) => {
            let result =
                if sign_count_advances(stored, a.sign_count) { CounterResult::Advanced } else { CounterResult::Regressed { stored } };
            assess::counter(Settled::Store(result), a.sign_count, &credential)
        }
        _ => Ok(CounterCheck::NotChecked),
    };
    assess::judge(&c.profile, &credential, &v, counter, &SignInContext::default(), None)
}

fn expected_codes(expect: &str) -> &'static [ReasonCode] {
    match expect {
        "valid" => &[],
        "signature_invalid" => &[ReasonCode::SignatureInvalid, ReasonCode::MalformedSignature],
        "challenge_mismatch" => &[ReasonCode::ChallengeMismatch],
        "origin_mismatch" => &[ReasonCode::OriginNotAllowed],
        "rp_id_mismatch" => &[ReasonCode::RpIdMismatch],
        "counter_regression" => &[ReasonCode::SignCountRegression],
        "uv_required" => &[ReasonCode::UserNotVerified],
        "cross_origin_not_allowed" => &[ReasonCode::CrossOrigin],
        "unsupported_alg" => &[ReasonCode::UnsupportedAlgorithm],
        other => panic!("vector expect {other:?} is not mapped"),
    }
}

/// The codes that made the decision a deny (risk signals excluded).
fn deny_codes(v: &Verdict) -> Vec<ReasonCode> {
    v.failure_codes().collect()
}

/// Vectors whose outcome differs from their source's on purpose, by an
/// assertd rule stricter than the spec: (id, what assertd gives, why).
const ASSERTD_RULES: [(&str, &str, &str); 1] = [(
    "w3c-none-es256-crossOrigin",
    "cross_origin_not_allowed",
    "a profile that lists allowed top origins refuses a cross-origin ceremony that names no topOrigin (issue 13 item 8); \
     without the list it allows (tampered_valid_vectors_fail_with_the_right_reason runs it so)",
)];

/// The outcome assertd gives the vector.
fn expect(v: &AssertionVector) -> &str {
    ASSERTD_RULES.iter().find(|(id, _, _)| *id == v.id).map_or(v.expect.as_str(), |(_, e, _)| e)
}

fn check_vector(v: &AssertionVector) -> Result<(), String> {
    let c = case(v);
    let verdict = run(&c);
    let want = expected_codes(expect(v));
    if want.is_empty() {
        if verdict.decision != Decision::Allow {
            return Err(format!("{}: expected allow, got {verdict:?}", v.id));
        }
        return Ok(());
    }
    if verdict.decision != Decision::Deny {
        return Err(format!("{}: expected deny for {}, got {verdict:?}", v.id, v.expect));
    }
    let codes = deny_codes(&verdict);
    if codes.len() != 1 || !want.contains(&codes[0]) {
        return Err(format!("{}: expected exactly {want:?}, got {codes:?}", v.id));
    }
    Ok(())
}

#[test]
fn every_vector_gives_its_expected_outcome() {
    let all: Vec<_> = vectors::assertions().into_iter().chain(vectors::derived_assertions()).collect();
    assert_eq!(all.len(), 72);
    let failures: Vec<String> = all.iter().filter_map(|v| check_vector(v).err()).collect();
    assert!(failures.is_empty(), "{} vectors failed:\n{}", failures.len(), failures.join("\n"));
    // Every expect value the vectors use is covered at least once.
    for e in vectors::EXPECTS {
        assert!(all.iter().any(|v| v.expect == e), "no vector expects {e}");
    }
}

fn only(c: &Case, code: ReasonCode, id: &str, what: &str) {
    let verdict = run(c);
    let hard = deny_codes(&verdict);
    assert_eq!(verdict.decision, Decision::Deny, "{id} {what}: {verdict:?}");
    assert_eq!(hard, vec![code], "{id} {what}: {verdict:?}");
}

#[test]
fn tampered_valid_vectors_fail_with_the_right_reason() {
    let valid: Vec<_> = vectors::assertions().into_iter().chain(vectors::derived_assertions()).filter(|v| v.expect == "valid").collect();
    assert!(valid.len() >= 45);
    for v in &valid {
        let mut base = case(v);
        if expect(v) != v.expect {
            // Valid under the spec's own rule: the RP expects cross-origin use.
            base.profile.allowed_top_origins.clear();
        }
        assert_eq!(run(&base).decision, Decision::Allow, "{}", v.id);

        let mut c = base.clone();
        let last = c.sig.len() - 1;
        c.sig[last] ^= 0x01;
        only(&c, ReasonCode::SignatureInvalid, &v.id, "signature byte flipped");

        // The counter's low byte is signed but parsed as a plain number.
        let mut c = base.clone();
        c.ad[36] ^= 0x80;
        only(&c, ReasonCode::SignatureInvalid, &v.id, "authenticatorData byte flipped");

        let mut c = base.clone();
        c.ad[0] ^= 0x01;
        let r = run(&c);
        assert!(
            r.reasons.iter().any(|f| f.code == ReasonCode::RpIdMismatch)
                && r.reasons.iter().any(|f| f.code == ReasonCode::SignatureInvalid),
            "{}: {r:?}",
            v.id
        );

        let mut c = base.clone();
        c.cdj.push(b' ');
        only(&c, ReasonCode::SignatureInvalid, &v.id, "clientDataJSON changed");

        let mut c = base.clone();
        c.rp = RelyingParty::new(v.rp_id.clone(), vec!["https://evil.example".into()], false, v.appid.as_deref());
        only(&c, ReasonCode::OriginNotAllowed, &v.id, "wrong origin");

        let mut c = base.clone();
        c.challenge.push(0);
        only(&c, ReasonCode::ChallengeMismatch, &v.id, "wrong challenge");

        let mut c = base.clone();
        c.rp = RelyingParty::new(
            "evil.example",
            vec![v.expected_origin.clone()],
            v.allow_subdomain_origin.unwrap_or(false),
            v.appid.as_deref(),
        );
        c.appid_used = false;
        only(&c, ReasonCode::RpIdMismatch, &v.id, "wrong rp id");
    }
}
