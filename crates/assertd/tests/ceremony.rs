//! Binding an assertion to its ceremony and its user, through the real
//! binary and a tonic client on loopback: the expected user (WebAuthn L3
//! §7.2 step 6 (credential record)) and the credentials the gateway offered
//! (§7.2 step 5 (allowCredentials)).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use pb::{Decision, ReasonCode};

/// UP and UV set.
const UP: u8 = 0x05;

async fn verify_one(server: &Server, a: pb::Assertion) -> pb::Verdict {
    let r = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![a], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    r.verdicts.into_iter().next().unwrap()
}

/// Alice and Mallory each have a passkey for the RP. The gateway starts a
/// username-first sign-in for Alice; Mallory answers Alice's challenge with
/// his own passkey and no user handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expected_user_stops_a_signature_by_another_users_credential() {
    let server = Server::start(&default_config());
    let alice = SoftAuthenticator::new(Alg::Es256);
    let mallory = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &alice, b"alice", false)).await;
    put(&server, record(RP, &mallory, b"mallory", false)).await;
    let challenge = b"alice's challenge";

    // Without the expected user, the signature is Mallory's and valid: the
    // verdict allows and names Mallory, whom the gateway must not sign in
    // as Alice.
    let forged = assertion("m", RP, &mallory.credential_id, challenge, mallory.assert(RP, ORIGIN, challenge, UP, 0));
    let v = verify_one(&server, forged.clone()).await;
    assert_eq!(v.decision(), Decision::Allow);
    assert_eq!(v.authenticator.unwrap().user_handle, b"mallory");

    // With it: denied.
    let v = verify_one(&server, pb::Assertion { expected_user_handle: b"alice".to_vec(), ..forged }).await;
    assert_eq!((v.decision(), codes(&v)), (Decision::Deny, vec![ReasonCode::UserHandleMismatch]));

    // Alice's own passkey, with and without her user handle in the response.
    let mine = assertion("a", RP, &alice.credential_id, challenge, alice.assert(RP, ORIGIN, challenge, UP, 0));
    let v = verify_one(&server, pb::Assertion { expected_user_handle: b"alice".to_vec(), ..mine.clone() }).await;
    assert_eq!(v.decision(), Decision::Allow, "{:?}", v.reasons);
    let v = verify_one(&server, pb::Assertion { expected_user_handle: b"alice".to_vec(), user_handle: b"alice".to_vec(), ..mine.clone() })
        .await;
    assert_eq!(v.decision(), Decision::Allow, "{:?}", v.reasons);

    // The gateway expected Bob: Alice's passkey does not sign Bob in, with
    // or without a user handle in the response.
    let v = verify_one(&server, pb::Assertion { expected_user_handle: b"bob".to_vec(), ..mine.clone() }).await;
    assert_eq!(codes(&v), vec![ReasonCode::UserHandleMismatch]);
    let v =
        verify_one(&server, pb::Assertion { expected_user_handle: b"bob".to_vec(), user_handle: b"alice".to_vec(), ..mine.clone() }).await;
    assert_eq!(codes(&v), vec![ReasonCode::UserHandleMismatch]);

    // A forged signature learns nothing of whose credential it is: the same
    // answer for Alice's credential whether Alice or Bob is expected (red
    // before: USER_HANDLE_MISMATCH for Bob only).
    let mut forged = mine.clone();
    let n = forged.signature.len() - 1;
    forged.signature[n] ^= 1;
    for user in [&b"alice"[..], b"bob"] {
        let v = verify_one(&server, pb::Assertion { expected_user_handle: user.to_vec(), ..forged.clone() }).await;
        assert_eq!(codes(&v), vec![ReasonCode::SignatureInvalid], "expected {user:?}");
        let v = verify_one(&server, pb::Assertion { user_handle: user.to_vec(), ..forged.clone() }).await;
        assert_eq!(codes(&v), vec![ReasonCode::SignatureInvalid], "userHandle {user:?}");
    }

    // An expected user handle over 64 bytes is a bad request.
    let v = verify_one(&server, pb::Assertion { expected_user_handle: vec![7; 65], ..mine }).await;
    assert_eq!(codes(&v), vec![ReasonCode::InvalidRequest]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_offered_credential_is_accepted() {
    let server = Server::start(&default_config());
    let offered = SoftAuthenticator::new(Alg::Es256);
    let other = SoftAuthenticator::new(Alg::EdDsa);
    put(&server, record(RP, &offered, b"u", false)).await;
    put(&server, record(RP, &other, b"u", false)).await;
    let challenge = b"a challenge";
    let with = |a: &SoftAuthenticator, allowed: Vec<Vec<u8>>| pb::Assertion {
        allowed_credential_ids: allowed,
        ..assertion("x", RP, &a.credential_id, challenge, a.assert(RP, ORIGIN, challenge, UP, 0))
    };

    let v = verify_one(&server, with(&other, vec![offered.credential_id.clone()])).await;
    assert_eq!((v.decision(), codes(&v)), (Decision::Deny, vec![ReasonCode::CredentialNotAllowed]));
    // Decided before the lookup: even an unknown credential gets it.
    let mut unknown = with(&other, vec![offered.credential_id.clone()]);
    unknown.credential_id = b"nobody has this".to_vec();
    assert_eq!(codes(&verify_one(&server, unknown).await), vec![ReasonCode::CredentialNotAllowed]);

    let v = verify_one(&server, with(&offered, vec![other.credential_id.clone(), offered.credential_id.clone()])).await;
    assert_eq!(v.decision(), Decision::Allow, "{:?}", v.reasons);
    let v = verify_one(&server, with(&other, Vec::new())).await;
    assert_eq!(v.decision(), Decision::Allow, "{:?}", v.reasons);

    // Bounded: 256 ids at most, none empty.
    let mut many: Vec<Vec<u8>> = (0..256u16).map(|i| i.to_be_bytes().to_vec()).collect();
    many.push(offered.credential_id.clone());
    assert_eq!(codes(&verify_one(&server, with(&offered, many)).await), vec![ReasonCode::InvalidRequest]);
    let v = verify_one(&server, with(&offered, vec![Vec::new(), offered.credential_id.clone()])).await;
    assert_eq!(codes(&v), vec![ReasonCode::InvalidRequest]);
}

/// A config with `[challenges]` keys written to `dir` (`(id, secret byte)`,
/// the signing key first) and `extra` lines in the section.
fn with_keys(dir: &std::path::Path, keys: &[(&str, u8)], extra: &str) -> String {
    let mut entries = Vec::new();
    for (id, b) in keys {
        let file = dir.join(format!("key-{id}"));
        // A trailing newline, as `echo` leaves it: not part of the secret.
        std::fs::write(&file, [vec![*b; 32], b"\n".to_vec()].concat()).unwrap();
        entries.push(format!("{{ id = \"{id}\", secret_file = \"{}\" }}", file.display()));
    }
    format!("{}\n[challenges]\nkeys = [{}]\n{extra}\n", default_config(), entries.join(", "))
}

async fn issue(server: &Server, rp: &str, user: &[u8], ttl: u32) -> Result<pb::IssueChallengeResponse, tonic::Status> {
    server
        .verifier()
        .await
        .issue_challenge(pb::IssueChallengeRequest { rp_id: rp.into(), user_handle: user.to_vec(), ttl_seconds: ttl, ..Default::default() })
        .await
        .map(tonic::Response::into_inner)
}

/// An assertion over an issued challenge.
fn issued(a: &SoftAuthenticator, rp: &str, origin: &str, challenge: &[u8], count: u32) -> pb::Assertion {
    pb::Assertion { server_issued_challenge: true, ..assertion("i", rp, &a.credential_id, b"", a.assert(rp, origin, challenge, UP, count)) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_challenge_verifies_once_and_only_for_its_ceremony() {
    let keys = tempfile::tempdir().unwrap();
    let server = Server::start(&with_keys(keys.path(), &[("k1", 1)], ""));
    let alice = SoftAuthenticator::new(Alg::Es256);
    let counting = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &alice, b"alice", false)).await;
    put(&server, record(RP, &counting, b"alice", false)).await;

    let c = issue(&server, RP, b"alice", 0).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let expires = c.expires_at.unwrap().seconds;
    assert!((now + 299..=now + 301).contains(&expires), "default lifetime 300 s: {expires} at {now}");
    assert!(c.challenge.len() >= 16 + 32 && c.challenge.len() <= 91);

    // A forged assertion carrying the challenge (a bad signature, another
    // credential of the RP) does not use it up (red before: the genuine
    // one below was CHALLENGE_REPLAYED).
    let mut forged = issued(&counting, RP, ORIGIN, &c.challenge, 3);
    let n = forged.signature.len() - 1;
    forged.signature[n] ^= 1;
    assert_eq!(codes(&verify_one(&server, forged).await), vec![ReasonCode::SignatureInvalid]);

    // Verified once; the same assertion again is a replay.
    let a = issued(&alice, RP, ORIGIN, &c.challenge, 0);
    let v = verify_one(&server, a.clone()).await;
    assert_eq!(v.decision(), Decision::Allow, "{:?}", v.reasons);
    let v = verify_one(&server, a).await;
    assert_eq!((v.decision(), codes(&v)), (Decision::Deny, vec![ReasonCode::ChallengeReplayed]));
    // A new assertion (a counting credential, a fresh count) over the used
    // challenge: still a replay of the challenge.
    let v = verify_one(&server, issued(&counting, RP, ORIGIN, &c.challenge, 5)).await;
    assert_eq!(codes(&v), vec![ReasonCode::ChallengeReplayed]);

    // Two uses in one batch: the first wins.
    let c = issue(&server, RP, b"", 60).await.unwrap();
    let a = issued(&alice, RP, ORIGIN, &c.challenge, 0);
    let r = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![a.clone(), a], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.verdicts[0].decision(), Decision::Allow, "{:?}", r.verdicts[0].reasons);
    assert_eq!(codes(&r.verdicts[1]), vec![ReasonCode::ChallengeReplayed]);

    // Each way to get it wrong has its reason.
    let fresh = issue(&server, RP, b"alice", 0).await.unwrap().challenge;
    let mut tampered = fresh.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert_eq!(codes(&verify_one(&server, issued(&alice, RP, ORIGIN, &tampered, 0)).await), vec![ReasonCode::ChallengeInvalid]);
    let for_bob = issue(&server, RP, b"bob", 0).await.unwrap().challenge;
    assert_eq!(codes(&verify_one(&server, issued(&alice, RP, ORIGIN, &for_bob, 0)).await), vec![ReasonCode::ChallengeInvalid]);
    let other_rp = issue(&server, RP_UV, b"", 0).await.unwrap().challenge;
    assert_eq!(codes(&verify_one(&server, issued(&alice, RP, ORIGIN, &other_rp, 0)).await), vec![ReasonCode::ChallengeInvalid]);
    // A registration challenge does not open at sign-in (red before: the
    // request had no ceremony and every challenge opened for both).
    let registration = server
        .verifier()
        .await
        .issue_challenge(pb::IssueChallengeRequest {
            rp_id: RP.into(),
            user_handle: b"alice".to_vec(),
            ceremony: pb::Ceremony::Registration.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .challenge;
    let v = verify_one(&server, issued(&alice, RP, ORIGIN, &registration, 0)).await;
    assert_eq!(codes(&v), vec![ReasonCode::ChallengeInvalid]);
    assert!(v.reasons[0].message.contains("issued for a registration, not a sign-in"), "{:?}", v.reasons);
    let mut both = issued(&alice, RP, ORIGIN, &fresh, 0);
    both.expected_challenge = fresh.clone();
    assert_eq!(codes(&verify_one(&server, both).await), vec![ReasonCode::InvalidRequest]);
    // None of those used the challenge up: it still verifies, once.
    assert_eq!(verify_one(&server, issued(&alice, RP, ORIGIN, &fresh, 0)).await.decision(), Decision::Allow);

    // Bad requests to IssueChallenge.
    assert_eq!(issue(&server, "", b"", 0).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    assert_eq!(issue(&server, "unknown.example", b"", 0).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    assert_eq!(issue(&server, RP, &[1; 65], 0).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    // A lifetime is capped at max_ttl_seconds (900).
    let long = issue(&server, RP, b"", 86_400).await.unwrap();
    assert!(long.expires_at.unwrap().seconds <= now + 902);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_challenge_expires() {
    let keys = tempfile::tempdir().unwrap();
    let server = Server::start(&with_keys(keys.path(), &[("k1", 1)], "clock_skew_seconds = 0"));
    let alice = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &alice, b"alice", false)).await;
    let c = issue(&server, RP, b"", 1).await.unwrap();
    let a = issued(&alice, RP, ORIGIN, &c.challenge, 0);
    let expires = c.expires_at.unwrap().seconds;
    while std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 <= expires {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(codes(&verify_one(&server, a).await), vec![ReasonCode::ChallengeExpired]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_without_refusing_outstanding_challenges_and_survive_restarts() {
    let keys = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let alice = SoftAuthenticator::new(Alg::Es256);
    let (c_old, c_old2) = {
        let server = Server::start_in(data.path(), &with_keys(keys.path(), &[("old", 1)], ""));
        put(&server, record(RP, &alice, b"alice", false)).await;
        let c1 = issue(&server, RP, b"", 0).await.unwrap().challenge;
        let c2 = issue(&server, RP, b"", 0).await.unwrap().challenge;
        assert_eq!(verify_one(&server, issued(&alice, RP, ORIGIN, &c1, 0)).await.decision(), Decision::Allow);
        (c1, c2)
    };
    {
        // The new key signs; the old one still verifies; the use recorded
        // before the restart is remembered.
        let server = Server::start_in(data.path(), &with_keys(keys.path(), &[("new", 2), ("old", 1)], ""));
        assert_eq!(codes(&verify_one(&server, issued(&alice, RP, ORIGIN, &c_old, 0)).await), vec![ReasonCode::ChallengeReplayed]);
        let c_new = issue(&server, RP, b"", 0).await.unwrap().challenge;
        assert_eq!(&c_new[2..5], b"new");
        assert_eq!(verify_one(&server, issued(&alice, RP, ORIGIN, &c_new, 0)).await.decision(), Decision::Allow);
    }
    // The old key retired: its challenges no longer verify.
    let server = Server::start_in(data.path(), &with_keys(keys.path(), &[("new", 2)], ""));
    assert_eq!(codes(&verify_one(&server, issued(&alice, RP, ORIGIN, &c_old2, 0)).await), vec![ReasonCode::ChallengeInvalid]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_nothing_is_issued_and_short_keys_are_refused() {
    let server = Server::start(&default_config());
    let alice = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &alice, b"alice", false)).await;
    assert_eq!(issue(&server, RP, b"", 0).await.unwrap_err().code(), tonic::Code::FailedPrecondition);
    let v = verify_one(&server, issued(&alice, RP, ORIGIN, b"anything at all", 0)).await;
    assert_eq!(codes(&v), vec![ReasonCode::InvalidRequest]);

    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, [7u8; 31]).unwrap();
    let config = dir.path().join("assertd.toml");
    std::fs::write(
        &config,
        format!("{}\n[challenges]\nkeys = [{{ id = \"k\", secret_file = \"{}\" }}]\n", default_config(), short.display()),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_assertd")).args(["config", "check"]).arg(&config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("challenges.keys") && err.contains("at least 32"), "{err}");

    // From the environment: a 32-byte secret is accepted, a missing variable named.
    std::fs::write(
        &config,
        format!("{}\n[challenges]\nkeys = [{{ id = \"k\", secret_env = \"ASSERTD_TEST_CHALLENGE_KEY\" }}]\n", default_config()),
    )
    .unwrap();
    let check = |value: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_assertd"));
        c.args(["config", "check"]).arg(&config).env_remove("ASSERTD_TEST_CHALLENGE_KEY");
        if let Some(v) = value {
            c.env("ASSERTD_TEST_CHALLENGE_KEY", v);
        }
        c.output().unwrap()
    };
    assert!(check(Some(&"s".repeat(32))).status.success());
    let out = check(None);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("ASSERTD_TEST_CHALLENGE_KEY is not set"));
    assert!(!check(Some(&"s".repeat(31))).status.success());
}
