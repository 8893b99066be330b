//! End to end through the real binary and a real tonic client on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use pb::{Decision, ReasonCode};

const UV: u8 = 0x04;
const BE_BS: u8 = 0x18;

/// What a test expects for one assertion.
struct Expect {
    decision: Decision,
    codes: Vec<ReasonCode>,
}

fn expect(decision: Decision, codes: &[ReasonCode]) -> Expect {
    Expect { decision, codes: codes.to_vec() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_batch_of_every_algorithm() {
    let server = Server::start(&default_config());
    let challenge = b"sixteen byte challenge!";
    let mut batch = Vec::new();
    let mut want = Vec::new();
    for (i, alg) in Alg::ALL.iter().cycle().take(10).enumerate() {
        let a = SoftAuthenticator::new(*alg);
        let synced = i % 2 == 1;
        put(&server, record(RP, &a, b"user", synced)).await;
        let flags = UV | if synced { BE_BS } else { 0 };
        let synced_codes: &[ReasonCode] = if synced { &[ReasonCode::SyncedPasskey] } else { &[] };
        let mut push = |parts, challenge: &[u8], e: Expect| {
            batch.push(assertion(&format!("{i}-{}", batch.len()), RP, &a.credential_id, challenge, parts));
            want.push(e);
        };
        // Valid, then valid again with a higher count (same batch, in order).
        push(a.assert(RP, ORIGIN, challenge, flags, 1), challenge, expect(Decision::Allow, synced_codes));
        push(a.assert(RP, ORIGIN, challenge, flags, 2), challenge, expect(Decision::Allow, synced_codes));
        // Replay of count 2 inside the batch.
        push(
            a.assert(RP, ORIGIN, challenge, flags, 2),
            challenge,
            expect(Decision::Deny, &[&[ReasonCode::SignCountRegression][..], synced_codes].concat()),
        );
        // Tampered signature.
        let mut p = a.assert(RP, ORIGIN, challenge, flags, 3);
        let n = p.signature.len() - 1;
        p.signature[n] ^= 1;
        push(p, challenge, expect(Decision::Deny, &[&[ReasonCode::SignatureInvalid][..], synced_codes].concat()));
        // Wrong challenge.
        push(
            a.assert(RP, ORIGIN, b"another challenge", flags, 4),
            challenge,
            expect(Decision::Deny, &[&[ReasonCode::ChallengeMismatch][..], synced_codes].concat()),
        );
        // Wrong origin.
        push(
            a.assert(RP, "https://evil.example", challenge, flags, 5),
            challenge,
            expect(Decision::Deny, &[&[ReasonCode::OriginNotAllowed][..], synced_codes].concat()),
        );
        // Signed for another RP ID.
        push(
            a.assert("evil.example", ORIGIN, challenge, flags, 6),
            challenge,
            expect(Decision::Deny, &[&[ReasonCode::RpIdMismatch][..], synced_codes].concat()),
        );
        // UV missing: allowed with a signal where preferred.
        let (d, c): (Decision, Vec<ReasonCode>) = (Decision::Allow, [&[ReasonCode::UserNotVerified][..], synced_codes].concat());
        push(a.assert(RP, ORIGIN, challenge, if synced { BE_BS } else { 0 }, 7), challenge, Expect { decision: d, codes: c });
        // UP missing.
        let mut p = a.assert(RP, ORIGIN, challenge, flags, 8);
        p.authenticator_data[32] &= !0x01;
        p.signature = a.sign(&p.authenticator_data, &p.client_data_json);
        push(p, challenge, expect(Decision::Deny, &[&[ReasonCode::UserNotPresent][..], synced_codes].concat()));
        // BE changed since registration.
        push(
            a.assert(RP, ORIGIN, challenge, UV | if synced { 0 } else { 0x08 }, 9),
            challenge,
            // The type follows what the authenticator reports now.
            expect(
                Decision::Deny,
                if synced {
                    &[ReasonCode::BackupEligibilityChanged]
                } else {
                    &[ReasonCode::BackupEligibilityChanged, ReasonCode::SyncedPasskey]
                },
            ),
        );
        // Unknown credential.
        batch.push(assertion(&format!("unknown-{i}"), RP, b"no such credential", challenge, a.assert(RP, ORIGIN, challenge, flags, 10)));
        want.push(expect(Decision::Deny, &[ReasonCode::CredentialNotFound]));
    }
    // Unknown RP.
    let a = SoftAuthenticator::new(Alg::Es256);
    batch.push(assertion(
        "rp-unknown",
        "unknown.example",
        &a.credential_id,
        challenge,
        a.assert("unknown.example", ORIGIN, challenge, UV, 1),
    ));
    want.push(expect(Decision::Deny, &[ReasonCode::RpUnknown]));
    assert!(batch.len() >= 100);

    let resp = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: batch.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.verdicts.len(), batch.len());
    for ((v, a), w) in resp.verdicts.iter().zip(&batch).zip(&want) {
        assert_eq!(v.request_id, a.request_id, "order kept");
        assert_eq!((v.decision(), codes(v)), (w.decision, w.codes.clone()), "{}: {:?}", a.request_id, v.reasons);
        if v.decision() == Decision::Deny {
            assert_eq!(v.risk_score, 100);
        }
        assert!(!v.retryable);
    }
    // Authenticator facts are reported for parsed assertions.
    let first = &resp.verdicts[0];
    let info = first.authenticator.as_ref().unwrap();
    assert_eq!((info.sign_count, info.user_verified, info.kind()), (1, true, pb::CredentialKind::DeviceBound));
    assert_eq!(info.aaguid, vec![0xaa; 16]);
    assert_eq!(info.user_handle, b"user".to_vec());
    // Issue 13 item 9: a verdict whose signature did not verify says nothing
    // about the stored credential (it returned the user handle and AAGUID).
    let forged = resp.verdicts.iter().filter(|v| codes(v).contains(&ReasonCode::SignatureInvalid)).collect::<Vec<_>>();
    assert!(!forged.is_empty());
    for v in forged {
        let info = v.authenticator.as_ref().unwrap();
        assert!(info.user_handle.is_empty() && info.aaguid.is_empty(), "{}: {info:?}", v.request_id);
    }
    let synced = resp.verdicts.iter().find(|v| v.request_id.starts_with("1-")).unwrap();
    assert_eq!(synced.authenticator.as_ref().unwrap().kind(), pb::CredentialKind::Synced);

    // The counters were stored: the same batch again is all replays.
    let resp = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: batch[..3].to_vec(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.verdicts.iter().all(|v| codes(v).contains(&ReasonCode::SignCountRegression)), "{:?}", resp.verdicts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uv_required_rp_and_revocation_and_legacy() {
    let server = Server::start(&default_config());
    let a = SoftAuthenticator::new(Alg::EdDsa);
    put(&server, record(RP_UV, &a, b"admin", false)).await;
    let mut v = server.verifier().await;
    let send = |assertions| pb::VerifyAssertionsRequest { assertions, ..Default::default() };
    let r = v
        .verify_assertions(send(vec![assertion("no-uv", RP_UV, &a.credential_id, b"c", a.assert(RP_UV, ORIGIN_UV, b"c", 0, 1))]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.verdicts[0].decision(), codes(&r.verdicts[0])), (Decision::Deny, vec![ReasonCode::UserNotVerified]));
    let r = v
        .verify_assertions(send(vec![assertion("uv", RP_UV, &a.credential_id, b"c", a.assert(RP_UV, ORIGIN_UV, b"c", UV, 2))]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.verdicts[0].decision(), Decision::Allow);

    // A user handle that is not the credential's.
    let mut bad_user = assertion("user", RP_UV, &a.credential_id, b"c", a.assert(RP_UV, ORIGIN_UV, b"c", UV, 3));
    bad_user.user_handle = b"someone else".to_vec();
    let r = v.verify_assertions(send(vec![bad_user])).await.unwrap().into_inner();
    assert_eq!(codes(&r.verdicts[0]), vec![ReasonCode::UserHandleMismatch]);

    // Revocation takes effect at once, though the key was cached.
    let mut creds = server.credentials().await;
    let revoked = creds
        .revoke_credential(pb::RevokeCredentialRequest { rp_id: RP_UV.into(), credential_id: a.credential_id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.credential.unwrap().revoked);
    let r = v
        .verify_assertions(send(vec![assertion("revoked", RP_UV, &a.credential_id, b"c", a.assert(RP_UV, ORIGIN_UV, b"c", UV, 4))]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(codes(&r.verdicts[0]), vec![ReasonCode::CredentialRevoked]);

    // RS1 (the derived Yubico vector) verifies only on the RP that allows
    // legacy algorithms.
    let vec = assertd_testkit::vectors::derived_assertions().into_iter().find(|v| v.id == "derived-rs1-yubico-key").unwrap();
    let b = assertd_testkit::vectors::AssertionVector::bytes;
    let rec = pb::CredentialRecord {
        rp_id: "localhost".into(),
        credential_id: b(&vec.credential_id_b64url),
        public_key_cose: b(&vec.public_key_cose_b64url),
        ..Default::default()
    };
    creds.put_credential(pb::PutCredentialRequest { credential: Some(rec), ..Default::default() }).await.unwrap();
    let item = pb::Assertion {
        request_id: "rs1".into(),
        rp_id: "localhost".into(),
        credential_id: b(&vec.credential_id_b64url),
        client_data_json: b(&vec.client_data_json_b64url),
        authenticator_data: b(&vec.authenticator_data_b64url),
        signature: b(&vec.signature_b64url),
        expected_challenge: vec.expected_challenge(),
        ..Default::default()
    };
    let r = v.verify_assertions(send(vec![item])).await.unwrap().into_inner();
    assert_eq!(r.verdicts[0].decision(), Decision::Allow, "{:?}", r.verdicts[0]);

    // Get and list.
    let got = creds
        .get_credential(pb::GetCredentialRequest { rp_id: RP_UV.into(), credential_id: a.credential_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    assert_eq!((got.sign_count, got.revoked), (2, true));
    assert!(got.created_at.is_some() && got.last_used_at.is_some());
    let list = creds
        .list_credentials(pb::ListCredentialsRequest { rp_id: RP_UV.into(), user_handle: b"admin".to_vec() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.credentials.len(), 1);
    let missing =
        creds.get_credential(pb::GetCredentialRequest { rp_id: RP_UV.into(), credential_id: b"nope".to_vec() }).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let missing =
        creds.revoke_credential(pb::RevokeCredentialRequest { rp_id: RP_UV.into(), credential_id: b"nope".to_vec() }).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_credential_rejects_bad_keys_by_name() {
    let server = Server::start(&default_config());
    let mut creds = server.credentials().await;
    let a = SoftAuthenticator::new(Alg::Es256);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![0xa3, 0x01, 0x02, 0x03, 0x38, 0x23, 0x20, 0x03], "unsupported COSE algorithm -36 (ES512)"),
        (vec![0xff, 0x00], "malformed COSE key"),
        (vec![], "malformed COSE key"),
        // An ES256 key whose y coordinate is off the curve.
        (
            {
                let mut k = a.public_key_cose.clone();
                let n = k.len() - 1;
                k[n] ^= 1;
                k
            },
            "not a valid point on P-256",
        ),
    ];
    for (key, msg) in cases {
        let mut rec = record(RP, &a, b"u", false);
        rec.public_key_cose = key;
        let e = creds.put_credential(pb::PutCredentialRequest { credential: Some(rec), ..Default::default() }).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains(msg), "{}", e.message());
    }
    let e = creds.put_credential(pb::PutCredentialRequest { credential: None, ..Default::default() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let mut rec = record(RP, &a, b"u", false);
    rec.aaguid = vec![1, 2, 3];
    let e = creds.put_credential(pb::PutCredentialRequest { credential: Some(rec), ..Default::default() }).await.unwrap_err();
    assert!(e.message().contains("aaguid"), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_answers_each_message_in_order() {
    let server = Server::start(&default_config());
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"u", false)).await;
    // Ten messages; counts rise across messages, message 7 replays message 6.
    let mut msgs = Vec::new();
    for m in 0..10u32 {
        let count = if m == 7 { 6 * 3 + 2 } else { m * 3 + 2 };
        let items: Vec<_> = (0..3u32)
            .map(|k| {
                let c = if m == 7 { count } else { count - 2 + k };
                assertion(&format!("{m}-{k}"), RP, &a.credential_id, b"chal", a.assert(RP, ORIGIN, b"chal", UV, c))
            })
            .collect();
        msgs.push(pb::VerifyAssertionsStreamRequest { assertions: items, ..Default::default() });
    }
    let mut out = server.verifier().await.verify_assertions_stream(tokio_stream::iter(msgs)).await.unwrap().into_inner();
    let mut m = 0;
    while let Some(resp) = out.message().await.unwrap() {
        assert_eq!(resp.verdicts.len(), 3);
        for (k, v) in resp.verdicts.iter().enumerate() {
            assert_eq!(v.request_id, format!("{m}-{k}"));
            let want = if m == 7 { Decision::Deny } else { Decision::Allow };
            assert_eq!(v.decision(), want, "{m}-{k}: {:?}", v.reasons);
        }
        m += 1;
    }
    assert_eq!(m, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_survive_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let a = SoftAuthenticator::new(Alg::Ps256);
    let item = |n| assertion("r", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, n));
    {
        let mut server = Server::start_in(tmp.path(), &default_config());
        put(&server, record(RP, &a, b"u", false)).await;
        let r = server
            .verifier()
            .await
            .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![item(41)], ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.verdicts[0].decision(), Decision::Allow);
        assert!(server.terminate().success(), "SIGTERM exits 0");
    }
    let server = Server::start_in(tmp.path(), &default_config());
    let r = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![item(41), item(42)], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(codes(&r.verdicts[0]), vec![ReasonCode::SignCountRegression]);
    assert_eq!(r.verdicts[1].decision(), Decision::Allow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reflection_and_metrics() {
    let server = Server::start(&default_config());
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    for svc in ["", "assertd.v1.VerificationService", "assertd.v1.CredentialService"] {
        let r = health.check(tonic_health::pb::HealthCheckRequest { service: svc.into() }).await.unwrap().into_inner();
        assert_eq!(r.status(), tonic_health::pb::health_check_response::ServingStatus::Serving);
    }
    // The CLI's health check, as exec probes and `helm test` use it.
    let exe = env!("CARGO_BIN_EXE_assertd");
    let target = format!("http://{}", server.grpc);
    let ok = std::process::Command::new(exe).args(["health", "--target", &target, "--service", "readiness"]).output().unwrap();
    assert!(ok.status.success() && String::from_utf8_lossy(&ok.stdout).contains("SERVING"), "{ok:?}");
    let unknown = std::process::Command::new(exe).args(["health", "--target", &target, "--service", "nope"]).output().unwrap();
    assert!(!unknown.status.success());
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
        server_reflection_response::MessageResponse,
    };
    let mut refl = ServerReflectionClient::new(server.channel().await);
    let req = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
    let mut resp = refl.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message().await.unwrap().unwrap().message_response else {
        panic!("no service list")
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"assertd.v1.VerificationService".to_string()) && names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );

    // Metrics move by the batch's numbers.
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"u", false)).await;
    let items = vec![
        assertion("1", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 1)),
        assertion("2", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 1)),
        assertion("3", RP, b"missing", b"c", a.assert(RP, ORIGIN, b"c", UV, 1)),
    ];
    server.verifier().await.verify_assertions(pb::VerifyAssertionsRequest { assertions: items, ..Default::default() }).await.unwrap();
    let text = server.scrape();
    for line in [
        "assertd_assertions_total{decision=\"allow\"} 1",
        "assertd_assertions_total{decision=\"deny\"} 2",
        "assertd_verdict_reasons_total{code=\"SIGN_COUNT_REGRESSION\",decision=\"deny\"} 1",
        "assertd_verdict_reasons_total{code=\"CREDENTIAL_NOT_FOUND\",decision=\"deny\"} 1",
        "assertd_batch_size_count 1",
        "assertd_admission_queue_wait_target_seconds 0.02",
        // A call that answered: counted and timed (both were lost when the
        // response's data frame was polled, before the fix).
        "assertd_rpcs_total{rpc=\"VerifyAssertions\",code=\"OK\"} 1",
        "assertd_rpc_duration_seconds_count{rpc=\"VerifyAssertions\",code=\"OK\"} 1",
        "assertd_rpcs_in_flight 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    // Scrape-time gauges: the admission's wait, the last good config load,
    // the process from /proc; SQLite has no change feed.
    let value =
        |name: &str| text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.parse::<f64>().ok()));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(value("assertd_admission_queue_wait_seconds").is_some_and(|w| w >= 0.0), "{text}");
    assert!(
        value("assertd_config_last_reload_success_timestamp_seconds").is_some_and(|t| (now - 600.0..=now + 1.0).contains(&t)),
        "{text}"
    );
    assert!(value("process_resident_memory_bytes").is_some_and(|b| b > 1e6), "{text}");
    assert!(value("process_open_fds").is_some_and(|n| n >= 3.0) && value("process_max_fds").is_some_and(|n| n >= 64.0), "{text}");
    assert!(
        value("process_cpu_seconds_total").is_some_and(|s| s >= 0.0) && value("process_start_time_seconds").is_some_and(|t| t <= now),
        "{text}"
    );
    assert!(!text.contains("assertd_change_feed_up"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_then_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let a = SoftAuthenticator::new(Alg::Es256);
    let b = SoftAuthenticator::new(Alg::EdDsa);
    let b64 = assertd_testkit::b64url;
    let line = |x: &SoftAuthenticator, count: u32| {
        format!(
            r#"{{"rp_id":"{RP}","credential_id":"{}","user_handle":"{}","public_key_cose":"{}","sign_count":{count},"aaguid":"cb69481e-8ff7-4039-93ec-0a2729a154a8","transports":["usb"]}}"#,
            b64(&x.credential_id),
            b64(b"user"),
            b64(&x.public_key_cose)
        )
    };
    let run = |file: &std::path::Path| import(file, &tmp.path().join("data"));
    // An invalid record anywhere: nothing is written, the line is named.
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{}\n{}\n", line(&a, 0), line(&b, 0).replace("\"public_key_cose\":\"", "\"public_key_cose\":\"AAAA")))
        .unwrap();
    let out = run(&bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("public_key_cose"), "{err}");
    // Records are checked in parallel batches: of many invalid records, the
    // first in the file is the one named.
    let many: String = (0..3000u32)
        .map(|i| match i {
            1500 => line(&b, 0).replace("\"user_handle\":\"", "\"user_handle\":\"!"),
            2999 | 2000 => line(&b, 0).replace("\"public_key_cose\":\"", "\"public_key_cose\":\"AAAA"),
            _ => line(&a, 0).replace(&b64(&a.credential_id), &b64(&i.to_be_bytes())),
        } + "\n")
        .collect();
    std::fs::write(&bad, many).unwrap();
    let out = run(&bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1501") && err.contains("user_handle") && !err.contains("line 2001"), "{err}");

    let jsonl = tmp.path().join("creds.jsonl");
    std::fs::write(&jsonl, format!("{}\n\n{}\n", line(&a, 7), line(&b, 0))).unwrap();
    let out = run(&jsonl);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 2 credentials"));
    // A JSON array works too.
    let c = SoftAuthenticator::new(Alg::Ps256);
    let array = tmp.path().join("creds.json");
    std::fs::write(&array, format!("[{}]", line(&c, 0))).unwrap();
    assert!(run(&array).status.success());

    // Create-only by default (red before: an import overwrote the user and
    // key of an existing id): an existing id stops the import before
    // anything is written, and so does an id twice in one file.
    let d = SoftAuthenticator::new(Alg::Es256);
    let mallory = |x: &SoftAuthenticator| line(x, 0).replace(&b64(b"user"), &b64(b"mallory"));
    let takeover = tmp.path().join("takeover.jsonl");
    std::fs::write(&takeover, format!("{}\n{}\n", line(&d, 0), mallory(&a))).unwrap();
    let out = run(&takeover);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("line 2") && err.contains("already exists") && err.contains("--replace"), "{err}");
    let twice = tmp.path().join("twice.jsonl");
    std::fs::write(&twice, format!("{}\n{}\n", line(&d, 0), line(&d, 0))).unwrap();
    let err = String::from_utf8_lossy(&run(&twice).stderr).into_owned();
    assert!(err.contains("line 2") && err.contains("appears earlier"), "{err}");
    // --replace never moves a credential to another user...
    let replace = |file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_assertd"))
            .args(["credentials", "import", "--replace"])
            .arg(file)
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .output()
            .unwrap()
    };
    let out = replace(&takeover);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("line 2") && err.contains("another user"), "{err}");
    // ... and replaces the same user's credential, its count never going
    // back; new ids are created. (d was not written by any refused import.)
    let again = tmp.path().join("again.jsonl");
    std::fs::write(&again, format!("{}\n{}\n", line(&a, 3), line(&d, 0))).unwrap();
    let out = replace(&again);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(1 created, 1 replaced)"), "{}", String::from_utf8_lossy(&out.stdout));

    let server = Server::start_in(tmp.path(), &default_config());
    let items = vec![
        assertion("a-old", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 7)),
        assertion("a", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 8)),
        assertion("b", RP, &b.credential_id, b"c", b.assert(RP, ORIGIN, b"c", UV, 0)),
        assertion("c", RP, &c.credential_id, b"c", c.assert(RP, ORIGIN, b"c", UV, 1)),
    ];
    let r = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: items, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let d: Vec<_> = r.verdicts.iter().map(|v| v.decision()).collect();
    assert_eq!(d, vec![Decision::Deny, Decision::Allow, Decision::Allow, Decision::Allow]);
    let aaguid = &r.verdicts[1].authenticator.as_ref().unwrap().aaguid;
    assert_eq!(aaguid[..4], [0xcb, 0x69, 0x48, 0x1e]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_at_is_written_in_batches() {
    let server = Server::start(&format!("{}\n[store]\nlast_used_interval_seconds = 1\n", default_config()));
    // A passkey that always reports 0: its counter never causes a write.
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"u", false)).await;
    let items: Vec<_> = (0..5).map(|i| assertion(&i.to_string(), RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 0))).collect();
    let r = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: items, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(r.verdicts.iter().all(|v| v.decision() == Decision::Allow));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let c = stored(&server, &a.credential_id).await;
        if c.last_used_at.is_some() {
            assert_eq!(c.sign_count, 0);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "last_used_at never written");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let text = server.scrape();
    let touches = text.lines().find(|l| l.starts_with("assertd_store_duration_seconds_count{operation=\"touch\"}"));
    assert!(touches.is_some_and(|l| l.ends_with(" 1")), "one batched write for five uses: {touches:?}");
}

/// The credential as `GetCredential` returns it.
async fn stored(server: &Server, credential_id: &[u8]) -> pb::CredentialRecord {
    let mut creds = server.credentials().await;
    let got = creds.get_credential(pb::GetCredentialRequest { rp_id: RP.into(), credential_id: credential_id.to_vec() }).await;
    got.unwrap().into_inner().credential.unwrap()
}

/// `touch` observations so far (store calls writing `last_used_at` alone).
fn touches(server: &Server) -> u64 {
    let text = server.scrape();
    let line = text.lines().find(|l| l.starts_with("assertd_store_duration_seconds_count{operation=\"touch\"}"));
    line.and_then(|l| l.rsplit(' ').next()).map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_count_records_the_use_without_a_touch() {
    let server = Server::start(&format!("{}\n[store]\nlast_used_interval_seconds = 1\n", default_config()));
    // A security key: its accepted count writes the row, last use included.
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"u", false)).await;
    for count in 1..=3 {
        let x = assertion("k", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, count));
        let r = server
            .verifier()
            .await
            .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![x], ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.verdicts[0].decision(), Decision::Allow);
    }
    let c = stored(&server, &a.credential_id).await;
    assert_eq!(c.sign_count, 3);
    assert!(c.last_used_at.is_some(), "the count's write records the use");
    // Two flush intervals: nothing was left for a separate write.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(touches(&server), 0, "a counted use was written twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_at_is_written_in_chunks() {
    let server = Server::start(&format!("{}\n[store]\nlast_used_interval_seconds = 1\n", default_config()));
    // 300 passkeys that report 0: only the last-use write touches them.
    let keys: Vec<SoftAuthenticator> = (0..300).map(|_| SoftAuthenticator::new(Alg::Es256)).collect();
    for (i, a) in keys.iter().enumerate() {
        put(&server, record(RP, a, format!("user {i}").as_bytes(), false)).await;
    }
    // One batch: its 300 claims are queued together, so one flush has them.
    let items = keys.iter().map(|a| assertion("p", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 0))).collect();
    let r = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: items, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(r.verdicts.iter().all(|v| v.decision() == Decision::Allow));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while touches(&server) < 2 {
        assert!(std::time::Instant::now() < deadline, "last_used_at not written in two calls");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // 256 in one call, 44 in the next, and nothing more.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(touches(&server), 2, "touch calls for 300 credentials");
    for a in [&keys[0], &keys[299]] {
        assert!(stored(&server, &a.credential_id).await.last_used_at.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_and_cache_evictions_counted() {
    let server = Server::start(&format!("{}\n[cache]\nmax_entries = 2\n", default_config()));
    let auths: Vec<_> = (0..6).map(|_| SoftAuthenticator::new(Alg::EdDsa)).collect();
    for a in &auths {
        put(&server, record(RP, a, b"u", false)).await;
    }
    let mut v = server.verifier().await;
    for round in 0..3u32 {
        let items = auths.iter().map(|a| assertion("e", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, round + 1))).collect();
        let mut req = tonic::Request::new(pb::VerifyAssertionsRequest { assertions: items, ..Default::default() });
        req.metadata_mut().insert("x-request-id", "req-42".parse().unwrap());
        let resp = v.verify_assertions(req).await.unwrap();
        assert_eq!(resp.metadata().get("x-request-id").unwrap(), "req-42");
        assert!(resp.into_inner().verdicts.iter().all(|v| v.decision() == Decision::Allow));
    }
    // Every RPC echoes it, streams and refusals included; an insane value
    // (not printable ASCII) is dropped, not echoed.
    let a = &auths[0];
    let msg = pb::VerifyAssertionsStreamRequest {
        assertions: vec![assertion("s", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 10))],
        ..Default::default()
    };
    let mut req = tonic::Request::new(futures_util::stream::iter(vec![msg]));
    req.metadata_mut().insert("x-request-id", "req-stream".parse().unwrap());
    let resp = v.verify_assertions_stream(req).await.unwrap();
    assert_eq!(resp.metadata().get("x-request-id").unwrap(), "req-stream");
    let mut req = tonic::Request::new(pb::GetCredentialRequest { rp_id: RP.into(), credential_id: b"nope".to_vec() });
    req.metadata_mut().insert("x-request-id", "req-get".parse().unwrap());
    let e = server.credentials().await.get_credential(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert_eq!(e.metadata().get("x-request-id").unwrap(), "req-get");
    let mut req = tonic::Request::new(pb::GetCredentialRequest { rp_id: RP.into(), credential_id: b"nope".to_vec() });
    req.metadata_mut().insert("x-request-id", "a b".parse().unwrap());
    let e = server.credentials().await.get_credential(req).await.unwrap_err();
    assert!(e.metadata().get("x-request-id").is_none());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = server.scrape();
        let evictions = text
            .lines()
            .find(|l| l.starts_with("assertd_cache_evictions_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0);
        if evictions > 0 {
            assert!(text.lines().any(|l| l.starts_with("assertd_pool_queue_depth")), "{text}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no eviction counted with 6 credentials in a 2-entry cache:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Counter-less assertions (stored 0, received 0, like synced passkeys) need
/// no counter round trip; a count appearing in a batch is still ordered
/// against the zeros around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counterless_assertions_skip_the_counter_round_trip() {
    let server = Server::start(&default_config());
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"u", false)).await;
    let item = |n| assertion("x", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, n));
    let cas = || {
        let m = server.scrape();
        m.lines()
            .find_map(|l| l.strip_prefix("assertd_store_duration_seconds_count{operation=\"advance_sign_counts\"} "))
            .map_or(0.0, |v| v.parse::<f64>().unwrap())
    };
    let mut v = server.verifier().await;
    let before = cas();
    for _ in 0..3 {
        let r = v
            .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![item(0), item(0)], ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert!(r.verdicts.iter().all(|v| v.decision() == Decision::Allow), "{r:?}");
    }
    assert_eq!(cas(), before, "counter-less assertions went to the store");
    // 0, 5, 0 in one batch: the count appears, and the 0 after it regresses.
    let r = v
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![item(0), item(5), item(0)], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<_> = r.verdicts.iter().map(|v| (v.decision(), codes(v))).collect();
    assert_eq!(got, vec![(Decision::Allow, vec![]), (Decision::Allow, vec![]), (Decision::Deny, vec![ReasonCode::SignCountRegression])]);
    assert_eq!(cas(), before + 1.0);
    // And in later batches (the cached entry knows it has been counted).
    let r =
        v.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![item(0)], ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(codes(&r.verdicts[0]), vec![ReasonCode::SignCountRegression]);
}

/// Issue 13 item 5: a second PutCredential of an existing id (another user,
/// another key) is refused and the owner keeps signing in; a replace keeps
/// the owner and the revocation; a delete erases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_created_not_overwritten() {
    let server = Server::start(&default_config());
    let owner = SoftAuthenticator::new(Alg::Es256);
    let mut attacker = SoftAuthenticator::new(Alg::Es256);
    attacker.credential_id = owner.credential_id.clone();
    put(&server, record(RP, &owner, b"owner", false)).await;
    let mut creds = server.credentials().await;
    let e = creds
        .put_credential(pb::PutCredentialRequest { credential: Some(record(RP, &attacker, b"victim", false)), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e:?}");
    // A replace must name the current user, and cannot move the credential.
    let replace = |user: &[u8], key: &SoftAuthenticator| pb::PutCredentialRequest {
        credential: Some(record(RP, key, user, false)),
        replace: true,
        expected_user_handle: user.to_vec(),
    };
    let e = creds.put_credential(replace(b"victim", &attacker)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    let mut v = server.verifier().await;
    let mut n = 0;
    let mut sign_in = async |key: &SoftAuthenticator| {
        n += 1;
        let x = assertion("o", RP, &key.credential_id, b"c", key.assert(RP, ORIGIN, b"c", UV | 0x01, n));
        v.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![x], ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .verdicts
            .remove(0)
    };
    assert_eq!(sign_in(&owner).await.decision(), Decision::Allow);
    assert_eq!(codes(&sign_in(&attacker).await), vec![ReasonCode::SignatureInvalid]);

    // Revoked stays revoked through a replace by its owner.
    creds.revoke_credential(pb::RevokeCredentialRequest { rp_id: RP.into(), credential_id: owner.credential_id.clone() }).await.unwrap();
    let replaced = creds.put_credential(replace(b"owner", &owner)).await.unwrap().into_inner().credential.unwrap();
    assert!(replaced.revoked);
    assert_eq!(codes(&sign_in(&owner).await), vec![ReasonCode::CredentialRevoked]);

    // Delete erases it.
    creds.delete_credential(pb::DeleteCredentialRequest { rp_id: RP.into(), credential_id: owner.credential_id.clone() }).await.unwrap();
    assert_eq!(codes(&sign_in(&owner).await), vec![ReasonCode::CredentialNotFound]);
    let e = creds
        .delete_credential(pb::DeleteCredentialRequest { rp_id: RP.into(), credential_id: owner.credential_id.clone() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

/// `assertd credentials delete` erases one credential offline; a second
/// delete fails.
#[test]
fn cli_deletes_a_credential() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = SoftAuthenticator::new(Alg::Es256);
    // base64url "-AECAw...": an id may start with '-', which must not read
    // as a flag.
    a.credential_id = vec![0xf8, 1, 2, 3, 4, 5, 6, 7];
    let b64 = assertd_testkit::b64url;
    let line = format!(
        r#"{{"rp_id":"{RP}","credential_id":"{}","user_handle":"dQ","public_key_cose":"{}"}}"#,
        b64(&a.credential_id),
        b64(&a.public_key_cose)
    );
    let file = tmp.path().join("one.jsonl");
    std::fs::write(&file, line).unwrap();
    let data = tmp.path().join("data");
    assert!(import(&file, &data).status.success());
    let delete = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_assertd"))
            .args(["credentials", "delete", "--rp-id", RP, "--credential-id", &b64(&a.credential_id), "--data-dir"])
            .arg(&data)
            .output()
            .unwrap()
    };
    let out = delete();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = delete();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no credential"));
    // In the event log, as the API's DeleteCredential is (once).
    let db = rusqlite::Connection::open(data.join("credentials.db")).unwrap();
    let logged: Vec<(String, String, Vec<u8>)> = db
        .prepare("SELECT kind, actor, credential_id FROM events")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(logged, [("credential_deleted".to_owned(), "cli".to_owned(), a.credential_id.clone())]);
}
