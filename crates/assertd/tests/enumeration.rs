//! Enumeration resistance: a caller learns about credentials only through
//! the reason codes its grant lets it see, and a flood of unknown ids does
//! not turn into the same flood on the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use pb::{Decision, ReasonCode};

const GATEWAY_TOKEN: &str = "gateway-token-for-login";
const OTHER_TOKEN: &str = "token-of-another-tenant";

fn config() -> String {
    format!(
        r#"{}
[[clients]]
name = "gateway"
token_sha256 = ["{}"]
relying_parties = ["{RP}"]
rpcs = ["*"]

[[clients]]
name = "other-tenant"
token_sha256 = ["{}"]
relying_parties = ["{RP_UV}"]
rpcs = ["verify"]
"#,
        default_config(),
        sha256_hex(GATEWAY_TOKEN),
        sha256_hex(OTHER_TOKEN)
    )
}

/// A counter's value in a /metrics scrape (0 when absent).
fn metric(scrape: &str, name: &str) -> f64 {
    scrape.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

async fn verify(server: &Server, token: &str, assertions: Vec<pb::Assertion>) -> Vec<pb::Verdict> {
    server
        .verifier()
        .await
        .verify_assertions(with_bearer(token, pb::VerifyAssertionsRequest { assertions, ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .verdicts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_revoked_and_valid_ids_look_alike_outside_a_grant() {
    let server = Server::start(&config());
    let valid = SoftAuthenticator::new(Alg::Es256);
    let revoked = SoftAuthenticator::new(Alg::Es256);
    let unknown = SoftAuthenticator::new(Alg::Es256);
    let mut creds = server.credentials().await;
    for a in [&valid, &revoked] {
        creds
            .put_credential(with_bearer(
                GATEWAY_TOKEN,
                pb::PutCredentialRequest { credential: Some(record(RP, a, b"u", false)), ..Default::default() },
            ))
            .await
            .unwrap();
    }
    creds
        .revoke_credential(with_bearer(
            GATEWAY_TOKEN,
            pb::RevokeCredentialRequest { rp_id: RP.into(), credential_id: revoked.credential_id.clone() },
        ))
        .await
        .unwrap();
    let batch = |n| -> Vec<pb::Assertion> {
        [&valid, &revoked, &unknown]
            .iter()
            .map(|a| assertion("x", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", 0x04, n)))
            .collect()
    };

    // The RP's own gateway sees the reason codes (and must not pass them on
    // to end users: see SECURITY.md).
    let own = verify(&server, GATEWAY_TOKEN, batch(1)).await;
    assert_eq!(
        own.iter().map(|v| (v.decision(), codes(v))).collect::<Vec<_>>(),
        vec![
            (Decision::Allow, vec![]),
            (Decision::Deny, vec![ReasonCode::CredentialRevoked]),
            (Decision::Deny, vec![ReasonCode::CredentialNotFound]),
        ]
    );

    // Another tenant probing the RP: three identical answers, and no
    // lookup at all (so no timing difference either: the store and the
    // cache are never consulted).
    let before = server.scrape();
    let probe = verify(&server, OTHER_TOKEN, batch(2)).await;
    let after = server.scrape();
    for v in &probe {
        assert_eq!((v.decision(), codes(v)), (Decision::Deny, vec![ReasonCode::RpNotAuthorized]));
        assert_eq!(v.reasons, probe[0].reasons, "answers differ between valid, revoked and unknown ids");
        assert_eq!(v.authenticator, None);
    }
    for name in ["assertd_store_credential_reads_total", "assertd_cache_lookups_total{result=\"miss\"}"] {
        // Present (the gateway's batch moved them), so "unchanged" means something.
        assert!(metric(&before, name) > 0.0, "{name} missing from /metrics");
        assert_eq!(metric(&before, name), metric(&after, name), "{name} moved for an unauthorized probe");
    }
    let hits = "assertd_cache_lookups_total{result=\"hit\"}";
    assert_eq!(metric(&before, hits), metric(&after, hits), "cache hits moved for an unauthorized probe");
    // The same tenant cannot read credentials either (no verify-only grant
    // reads), nor use an RP it has not been given.
    let e = creds
        .get_credential(with_bearer(OTHER_TOKEN, pb::GetCredentialRequest { rp_id: RP.into(), credential_id: valid.credential_id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_ids_is_absorbed_by_the_negative_cache() {
    let server = Server::start(&config());
    let good = SoftAuthenticator::new(Alg::Es256);
    server
        .credentials()
        .await
        .put_credential(with_bearer(
            GATEWAY_TOKEN,
            pb::PutCredentialRequest { credential: Some(record(RP, &good, b"u", false)), ..Default::default() },
        ))
        .await
        .unwrap();
    let parts = good.assert(RP, ORIGIN, b"c", 0x04, 0);
    let probe = |id: Vec<u8>| pb::Assertion { credential_id: id, ..assertion("p", RP, &good.credential_id, b"c", parts.clone()) };
    let reads = || metric(&server.scrape(), "assertd_store_credential_reads_total");

    // An attacker cycling through 512 guessed ids, 24 batches of 255 plus
    // one valid assertion each: within the negative TTL every guess reaches
    // the store once.
    let distinct = 512;
    let start = reads();
    let mut sent = 0;
    for round in 0..24 {
        let mut batch: Vec<pb::Assertion> =
            (0..255).map(|k| probe(format!("guess-{}", (round * 255 + k) % distinct).into_bytes())).collect();
        batch.push(assertion("good", RP, &good.credential_id, b"c", parts.clone()));
        let v = verify(&server, GATEWAY_TOKEN, batch).await;
        assert!(v[..255].iter().all(|v| codes(v) == vec![ReasonCode::CredentialNotFound]));
        assert_eq!(v[255].decision(), Decision::Allow, "good traffic is served during the flood");
        sent += 255;
    }
    let repeated = reads() - start;
    eprintln!("flood of {sent} probes over {distinct} ids: {repeated} store reads ({:.3} per probe)", repeated / f64::from(sent));
    // Each guess reaches the store once (plus the good credential), no more.
    let expected = f64::from(distinct)..=f64::from(distinct) + 1.0;
    assert!(expected.contains(&repeated), "{repeated} store reads for {distinct} distinct ids");

    // Ids never seen before cannot be cached: each costs one read. What
    // bounds that load is admission (max_queue_wait_ms), measured in
    // BENCHMARKS.md.
    let start = reads();
    for round in 0..4 {
        let batch: Vec<pb::Assertion> = (0..256).map(|k| probe(format!("fresh-{round}-{k}").into_bytes())).collect();
        verify(&server, GATEWAY_TOKEN, batch).await;
    }
    let fresh = reads() - start;
    eprintln!("1024 never-seen ids: {fresh} store reads");
    assert!((1024.0..=1025.0).contains(&fresh), "{fresh}");
}

/// Issue 13 item 10: a stream re-checks its caller's grant for every
/// message, so a config reload that removes the caller ends its open stream
/// (the grant was checked once, when the stream opened).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_removes_a_caller_ends_its_open_stream() {
    let server = Server::start(&format!("config_watch_interval_seconds = 1\n{}", config()));
    let a = SoftAuthenticator::new(Alg::Es256);
    server
        .credentials()
        .await
        .put_credential(with_bearer(
            GATEWAY_TOKEN,
            pb::PutCredentialRequest { credential: Some(record(RP, &a, b"u", false)), ..Default::default() },
        ))
        .await
        .unwrap();
    let msg = |n: u32| pb::VerifyAssertionsStreamRequest {
        assertions: vec![assertion("s", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", 0x05, n))],
        ..Default::default()
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = server
        .verifier()
        .await
        .verify_assertions_stream(with_bearer(GATEWAY_TOKEN, tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    tx.send(msg(1)).await.unwrap();
    assert_eq!(answers.message().await.unwrap().unwrap().verdicts[0].decision(), Decision::Allow);

    // The gateway's token is dropped from the config; wait until a new call
    // with it is refused (the reload is in force).
    let cfg = server.dir.join("assertd.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(&sha256_hex(GATEWAY_TOKEN), &sha256_hex("a-new-token"));
    std::fs::write(&cfg, text).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = server
            .verifier()
            .await
            .verify_assertions(with_bearer(GATEWAY_TOKEN, pb::VerifyAssertionsRequest { assertions: vec![], ..Default::default() }))
            .await;
        if matches!(&r, Err(s) if s.code() == tonic::Code::Unauthenticated) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "reload not seen: {r:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The stream opened before the reload is refused at its next message.
    tx.send(msg(2)).await.unwrap();
    let e = answers.message().await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
}

/// Issue 13 item 10: an unknown caller is refused from its headers, before
/// its body is read or decoded: a message over `max_message_bytes` gets
/// UNAUTHENTICATED, not the decoder's OUT_OF_RANGE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_callers_are_refused_before_their_body_is_decoded() {
    let server = Server::start(&config());
    let big = pb::Assertion { client_data_json: vec![b'x'; 17 * 1024 * 1024], ..Default::default() };
    let e = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![big.clone()], ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    // A known caller with the same message gets the size refusal.
    let e = server
        .verifier()
        .await
        .verify_assertions(with_bearer(GATEWAY_TOKEN, pb::VerifyAssertionsRequest { assertions: vec![big], ..Default::default() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
    // Both counted under the gRPC spec's names; the refusal is kept out of
    // the latency histogram (its near-zero time would hide served calls'
    // latency), the served-with-an-error call is in it.
    let text = server.scrape();
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(has("assertd_rpcs_total{rpc=\"VerifyAssertions\",code=\"UNAUTHENTICATED\"} 1"), "{text}");
    assert!(has("assertd_rpcs_total{rpc=\"VerifyAssertions\",code=\"OUT_OF_RANGE\"} 1"), "{text}");
    assert!(!text.contains("assertd_rpc_duration_seconds_count{rpc=\"VerifyAssertions\",code=\"UNAUTHENTICATED\"}"), "{text}");
    assert!(has("assertd_rpc_duration_seconds_count{rpc=\"VerifyAssertions\",code=\"OUT_OF_RANGE\"} 1"), "{text}");
    let build = text.lines().find(|l| l.starts_with("assertd_build_info{")).unwrap_or_default();
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))) && build.contains("commit=\"") && build.ends_with(" 1"),
        "{build}"
    );
}

/// Issue 13 item 6: a caller names only the profiles its grant and the
/// relying party allow (it could pick a lax profile on an RP whose default
/// requires UV).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_name_only_the_profiles_they_are_granted() {
    let config = format!(
        r#"
[[relying_parties]]
id = "{RP}"
origins = ["{ORIGIN}"]
default_profile = "strict"
allowed_profiles = ["step"]

[[relying_parties]]
id = "quiet.example"
origins = ["https://quiet.example"]
default_profile = "strict"

[profiles.strict]
user_verification = "required"
[profiles.step]
user_verification = "required"
[profiles.lax]
user_verification = "discouraged"

[[clients]]
name = "gateway"
token_sha256 = ["{}"]
relying_parties = ["*"]
rpcs = ["*"]
profiles = ["strict"]

[[clients]]
name = "other"
token_sha256 = ["{}"]
relying_parties = ["*"]
rpcs = ["*"]
"#,
        sha256_hex(GATEWAY_TOKEN),
        sha256_hex(OTHER_TOKEN)
    );
    let server = Server::start(&config);
    let a = SoftAuthenticator::new(Alg::Es256);
    server
        .credentials()
        .await
        .put_credential(with_bearer(
            GATEWAY_TOKEN,
            pb::PutCredentialRequest { credential: Some(record(RP, &a, b"u", false)), ..Default::default() },
        ))
        .await
        .unwrap();
    let mut n = 0;
    let mut ask = async |token: &str, profile: &str| {
        n += 1;
        let mut x = assertion("p", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", 0x05, n));
        x.profile = profile.into();
        verify(&server, token, vec![x]).await.remove(0)
    };
    // Its default, named or not.
    assert_eq!(ask(GATEWAY_TOKEN, "").await.decision(), Decision::Allow);
    assert_eq!(ask(GATEWAY_TOKEN, "strict").await.decision(), Decision::Allow);
    // Allowed by the RP, not by the gateway's grant.
    assert_eq!(codes(&ask(GATEWAY_TOKEN, "step").await), vec![ReasonCode::ProfileNotAuthorized]);
    // Not allowed by the RP, whoever asks.
    assert_eq!(codes(&ask(GATEWAY_TOKEN, "lax").await), vec![ReasonCode::ProfileNotAuthorized]);
    assert_eq!(codes(&ask(OTHER_TOKEN, "lax").await), vec![ReasonCode::ProfileNotAuthorized]);
    // A caller without a profile list may name what the RP allows.
    assert_eq!(ask(OTHER_TOKEN, "step").await.decision(), Decision::Allow);
    assert_eq!(codes(&ask(OTHER_TOKEN, "nope").await), vec![ReasonCode::ProfileUnknown]);
    // An RP that lists no allowed_profiles allows only its default: no
    // caller can pick another profile for it.
    let q = SoftAuthenticator::new(Alg::Es256);
    let put = pb::PutCredentialRequest { credential: Some(record("quiet.example", &q, b"u", false)), ..Default::default() };
    server.credentials().await.put_credential(with_bearer(OTHER_TOKEN, put)).await.unwrap();
    let quiet = |profile: &str, n: u32| {
        let mut x =
            assertion("q", "quiet.example", &q.credential_id, b"c", q.assert("quiet.example", "https://quiet.example", b"c", 0x05, n));
        x.profile = profile.into();
        x
    };
    assert_eq!(verify(&server, OTHER_TOKEN, vec![quiet("", 1)]).await[0].decision(), Decision::Allow);
    for (n, other) in [(2, "lax"), (3, "step")] {
        assert_eq!(codes(&verify(&server, OTHER_TOKEN, vec![quiet(other, n)]).await[0]), vec![ReasonCode::ProfileNotAuthorized]);
    }
}
