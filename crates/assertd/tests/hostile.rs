//! Bad input through a real client: every malformed item gets its own
//! reason, request-level problems get a status, and the server keeps
//! serving good traffic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use pb::{Decision, ReasonCode};

const UV: u8 = 0x04;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_item_gets_its_reason() {
    // Room for two 10 MB fields in one message.
    let server = Server::start(&format!("{}\n[limits]\nmax_message_bytes = 33554432\n", default_config()));
    let ec = SoftAuthenticator::new(Alg::Es256);
    let ed = SoftAuthenticator::new(Alg::EdDsa);
    let rsa = SoftAuthenticator::new(Alg::Rs256);
    for a in [&ec, &ed, &rsa] {
        put(&server, record(RP, a, b"u", false)).await;
    }
    let good = |a: &SoftAuthenticator, n| assertion("good", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, n));
    let with = |id: &str, f: &dyn Fn(&mut pb::Assertion)| {
        let mut x = good(&ec, 100);
        x.request_id = id.into();
        f(&mut x);
        x
    };
    let ten_mb = vec![b'{'; 10 << 20];
    let mut cases: Vec<(pb::Assertion, Vec<ReasonCode>)> = vec![
        (with("empty rp", &|x| x.rp_id.clear()), vec![ReasonCode::InvalidRequest]),
        (with("empty credential", &|x| x.credential_id.clear()), vec![ReasonCode::InvalidRequest]),
        (with("huge credential id", &|x| x.credential_id = vec![1; 2000]), vec![ReasonCode::InvalidRequest]),
        (with("empty challenge", &|x| x.expected_challenge.clear()), vec![ReasonCode::InvalidRequest]),
        (with("10 MB client data", &|x| x.client_data_json = ten_mb.clone()), vec![ReasonCode::InvalidRequest]),
        (with("10 MB authenticator data", &|x| x.authenticator_data = ten_mb.clone()), vec![ReasonCode::InvalidRequest]),
        (with("huge signature", &|x| x.signature = vec![0x30; 5000]), vec![ReasonCode::InvalidRequest]),
        (with("huge user handle", &|x| x.user_handle = vec![1; 65]), vec![ReasonCode::InvalidRequest]),
        // Garbage in the signed fields also breaks the signature.
        (with("empty client data", &|x| x.client_data_json.clear()), vec![ReasonCode::MalformedClientData, ReasonCode::SignatureInvalid]),
        (
            with("client data not an object", &|x| x.client_data_json = b"[1,2,3]".to_vec()),
            vec![ReasonCode::MalformedClientData, ReasonCode::SignatureInvalid],
        ),
        (
            with("client data not UTF-8", &|x| x.client_data_json = b"{\"type\":\"\xff\xfe\"}".to_vec()),
            vec![ReasonCode::MalformedClientData, ReasonCode::SignatureInvalid],
        ),
        (
            with("duplicate JSON keys", &|x| {
                let s = String::from_utf8(x.client_data_json.clone()).unwrap();
                x.client_data_json = s.replacen("{", "{\"type\":\"webauthn.create\",", 1).into_bytes();
            }),
            vec![ReasonCode::MalformedClientData, ReasonCode::SignatureInvalid],
        ),
        (
            with("deeply nested JSON", &|x| {
                let s = String::from_utf8(x.client_data_json.clone()).unwrap();
                x.client_data_json = s.replacen("{", &format!("{{\"x\":{}", "[".repeat(5000)), 1).into_bytes();
            }),
            vec![ReasonCode::MalformedClientData, ReasonCode::SignatureInvalid],
        ),
        (
            with("empty authenticator data", &|x| x.authenticator_data.clear()),
            vec![ReasonCode::MalformedAuthenticatorData, ReasonCode::SignatureInvalid],
        ),
        (
            with("truncated authenticator data", &|x| x.authenticator_data.truncate(20)),
            vec![ReasonCode::MalformedAuthenticatorData, ReasonCode::SignatureInvalid],
        ),
        (
            with("trailing bytes", &|x| x.authenticator_data.push(0)),
            vec![ReasonCode::MalformedAuthenticatorData, ReasonCode::SignatureInvalid],
        ),
        (
            with("garbage CBOR extensions", &|x| {
                x.authenticator_data[32] |= 0x80;
                x.authenticator_data.extend([0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
            }),
            vec![ReasonCode::MalformedAuthenticatorData, ReasonCode::SignatureInvalid],
        ),
        (with("empty signature", &|x| x.signature.clear()), vec![ReasonCode::MalformedSignature]),
        (with("signature not DER", &|x| x.signature = vec![0x01; 64]), vec![ReasonCode::MalformedSignature]),
        (
            with("wrong ceremony type", &|x| {
                let s = String::from_utf8(x.client_data_json.clone()).unwrap();
                x.client_data_json = s.replace("webauthn.get", "webauthn.create").into_bytes();
                x.signature = ec.sign(&x.authenticator_data, &x.client_data_json);
            }),
            vec![ReasonCode::WrongCeremonyType],
        ),
        (
            with("challenge not base64url", &|x| {
                let s = String::from_utf8(x.client_data_json.clone()).unwrap();
                x.client_data_json = s.replace("\"challenge\":\"Yw\"", "\"challenge\":\"Y w=\"").into_bytes();
                x.signature = ec.sign(&x.authenticator_data, &x.client_data_json);
            }),
            vec![ReasonCode::ChallengeMismatch],
        ),
        (
            with("BS without BE", &|x| {
                x.authenticator_data[32] |= 0x10;
                x.signature = ec.sign(&x.authenticator_data, &x.client_data_json);
            }),
            vec![ReasonCode::BackupStateInvalid],
        ),
    ];
    let mut ed_short = good(&ed, 1);
    ed_short.request_id = "ed25519 short signature".into();
    ed_short.signature.truncate(63);
    cases.push((ed_short, vec![ReasonCode::MalformedSignature]));
    let mut rsa_short = good(&rsa, 1);
    rsa_short.request_id = "rsa short signature".into();
    rsa_short.signature.truncate(255);
    cases.push((rsa_short, vec![ReasonCode::MalformedSignature]));

    let mut batch: Vec<pb::Assertion> = cases.iter().map(|(a, _)| a.clone()).collect();
    batch.push(good(&ec, 1));
    let resp = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: batch, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    for ((a, want), v) in cases.iter().zip(&resp.verdicts) {
        assert_eq!(v.request_id, a.request_id);
        assert_eq!((v.decision(), codes(v)), (Decision::Deny, want.clone()), "{}: {:?}", a.request_id, v.reasons);
        assert!(!v.reasons[0].message.is_empty());
    }
    assert_eq!(resp.verdicts.last().unwrap().decision(), Decision::Allow, "good traffic still verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_level_limits() {
    let server = Server::start(&format!("{}\n[limits]\nmax_batch_size = 4\nmax_message_bytes = 1048576\n", default_config()));
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"u", false)).await;
    let item = |n| assertion("x", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, n));
    let mut v = server.verifier().await;

    let e = v
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: (1..=5).map(item).collect(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("max_batch_size 4"), "{}", e.message());

    let mut big = item(1);
    big.client_data_json = vec![0; 2 << 20];
    let e = v.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![big], ..Default::default() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
    let metrics = server.scrape();
    for reason in ["batch_too_large", "message_too_large"] {
        assert!(metrics.contains(&format!("assertd_rpcs_rejected_total{{reason=\"{reason}\"}} 1")), "{reason}: {metrics}");
    }

    // An empty batch is answered with no verdicts.
    let r = v.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![], ..Default::default() }).await.unwrap().into_inner();
    assert!(r.verdicts.is_empty());

    // The stream refuses an oversized message with a status, after
    // answering the good one before it.
    let msgs = vec![
        pb::VerifyAssertionsStreamRequest { assertions: vec![item(2)], ..Default::default() },
        pb::VerifyAssertionsStreamRequest { assertions: (3..=7).map(item).collect(), ..Default::default() },
    ];
    let mut out = v.verify_assertions_stream(tokio_stream::iter(msgs)).await.unwrap().into_inner();
    assert_eq!(out.message().await.unwrap().unwrap().verdicts[0].decision(), Decision::Allow);
    assert_eq!(out.message().await.unwrap_err().code(), tonic::Code::InvalidArgument);

    // Still serving.
    let r =
        v.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![item(10)], ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(r.verdicts[0].decision(), Decision::Allow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_never_break_the_server() {
    use ring::rand::{SecureRandom, SystemRandom};
    let server = Server::start(&default_config());
    let a = SoftAuthenticator::new(Alg::Es384);
    put(&server, record(RP, &a, b"u", false)).await;
    let rng = SystemRandom::new();
    let rnd = |n: usize| {
        let mut b = vec![0u8; n];
        rng.fill(&mut b).unwrap();
        b
    };
    let mut batch = Vec::new();
    for i in 0..200 {
        let mut x = assertion(&i.to_string(), RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 1));
        match i % 4 {
            0 => x.client_data_json = rnd(i),
            1 => x.authenticator_data = rnd(i),
            2 => x.signature = rnd(i % 120),
            _ => {
                let n = rnd(1)[0] as usize % x.authenticator_data.len();
                x.authenticator_data[n] ^= 0x5a;
            }
        }
        batch.push(x);
    }
    let resp = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: batch, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.verdicts.len(), 200);
    assert!(resp.verdicts.iter().all(|v| v.decision() == Decision::Deny && !v.reasons.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_refused_fast_and_deadlines_drop_work() {
    let server = Server::start(&format!("{}\n[pool]\nthreads = 1\n[limits]\nmax_concurrent_rpcs = 1\n", default_config()));
    // ES384 verifies slowly in ring (~0.5 ms): a 400-assertion batch takes
    // about 0.2 s on one thread.
    let a = SoftAuthenticator::new(Alg::Es384);
    put(&server, record(RP, &a, b"u", false)).await;
    let batch: Vec<_> = (0..400).map(|_| assertion("o", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 0))).collect();
    let mut calls = Vec::new();
    for _ in 0..6 {
        let mut v = server.verifier().await;
        let batch = batch.clone();
        calls.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let r = v.verify_assertions(pb::VerifyAssertionsRequest { assertions: batch, ..Default::default() }).await;
            let pushback = r.as_ref().err().and_then(|e| e.metadata().get("grpc-retry-pushback-ms").cloned());
            (r.map(|_| ()).map_err(|e| e.code()), started.elapsed(), pushback)
        }));
    }
    let mut admitted = Vec::new();
    let mut refused = Vec::new();
    for c in calls {
        match c.await.unwrap() {
            (Ok(()), took, _) => admitted.push(took),
            (Err(tonic::Code::ResourceExhausted), took, pushback) => {
                // Every refusal says when to come back (a slot refusal
                // too), so refused callers do not re-send at once.
                let ms: u64 = pushback.expect("grpc-retry-pushback-ms on a refusal").to_str().unwrap().parse().unwrap();
                assert!(ms >= 1, "{ms}");
                refused.push(took);
            }
            (Err(other), _, _) => panic!("unexpected status {other:?}"),
        }
    }
    let ok = admitted.len();
    assert!(ok >= 1, "admitted work completes");
    assert!(!refused.is_empty(), "beyond capacity, requests are refused");
    // A refusal does not wait for the work ahead of it: it comes back before
    // the admitted batch is done (compared with the same run's admitted
    // call, not with a fixed time, so a slow CI host cannot fail it).
    let slowest = refused.iter().max().unwrap();
    let fastest_admitted = admitted.iter().min().unwrap();
    assert!(slowest < fastest_admitted, "a refusal ({slowest:?}) is quicker than admitted work ({fastest_admitted:?})");
    eprintln!("{ok} admitted, {} refused; slowest refusal {slowest:?} (client-measured, loopback)", refused.len());
    let text = server.scrape();
    assert!(text.lines().any(|l| l.starts_with("assertd_rpcs_rejected_total{reason=\"overloaded\"}")), "{text}");

    // A deadline shorter than the batch: the caller gets DEADLINE_EXCEEDED
    // and the pool stops verifying what nobody waits for.
    let count = |text: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with("assertd_verify_duration_seconds_count{algorithm=\"ES384\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    let before = count(&server.scrape());
    let big: Vec<_> = (0..1000).map(|i| batch[i % batch.len()].clone()).collect();
    let mut req = tonic::Request::new(pb::VerifyAssertionsRequest { assertions: big, ..Default::default() });
    req.set_timeout(std::time::Duration::from_millis(50));
    let e = server.verifier().await.verify_assertions(req).await.unwrap_err();
    // tonic's server answers an expired grpc-timeout with CANCELLED
    // ("Timeout expired"); a client's own deadline says DEADLINE_EXCEEDED.
    assert!(matches!(e.code(), tonic::Code::DeadlineExceeded | tonic::Code::Cancelled), "{e:?}");
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let done = count(&server.scrape()) - before;
    assert!(done < 1000, "work for the expired request was dropped ({done} of 1000 verified)");
    eprintln!("deadline 50 ms on a 1000-assertion batch: {done} verified before the work was dropped");
}

/// Admission by time: behind a queue longer than `max_queue_wait_ms`, a
/// batch is refused at once and told when to come back
/// (`grpc-retry-pushback-ms`, from the measured cost of what is queued).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_says_when_to_retry() {
    let server = Server::start(&format!("{}\n[pool]\nthreads = 1\n[limits]\nmax_queue_wait_ms = 5\n", default_config()));
    let a = SoftAuthenticator::new(Alg::Es384);
    put(&server, record(RP, &a, b"u", false)).await;
    let batch: Vec<_> = (0..400).map(|_| assertion("o", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 0))).collect();
    // Teach the estimate what ES384 costs here, then keep the pool busy.
    server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: batch[..50].to_vec(), ..Default::default() })
        .await
        .unwrap();
    let mut v = server.verifier().await;
    let busy = tokio::spawn({
        let batch = batch.clone();
        async move { v.verify_assertions(pb::VerifyAssertionsRequest { assertions: batch, ..Default::default() }).await.map(|_| ()) }
    });
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let e = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: batch[..10].to_vec(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    let pushback: u64 = e.metadata().get("grpc-retry-pushback-ms").and_then(|v| v.to_str().ok()?.parse().ok()).expect("a pushback");
    // About the rest of the 400-assertion batch (ES384 is ~0.5 ms each on
    // one thread): some tens of milliseconds at least, not seconds.
    assert!((10..5_000).contains(&pushback), "pushback {pushback} ms");
    busy.await.unwrap().unwrap();
    eprintln!("refused behind a 400-assertion ES384 batch; retry pushback {pushback} ms");
}

/// Fair under saturation: a call refused for want of room that comes back
/// as a gRPC retry (`grpc-previous-rpc-attempts`) waits its turn in line
/// and is answered, instead of being refused again; a first attempt is
/// still refused at once; a retry whose deadline the wait would pass is
/// refused at once too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_waits_its_turn_instead_of_being_refused_again() {
    let server = Server::start(&format!("{}\n[pool]\nthreads = 1\n[limits]\nmax_queue_wait_ms = 5\n", default_config()));
    let a = SoftAuthenticator::new(Alg::Es384);
    put(&server, record(RP, &a, b"u", false)).await;
    let batch: Vec<_> = (0..400).map(|_| assertion("o", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 0))).collect();
    let small = || pb::VerifyAssertionsRequest { assertions: batch[..10].to_vec(), ..Default::default() };
    let retry = |attempts: &str, timeout: Option<std::time::Duration>| {
        let mut req = tonic::Request::new(small());
        req.metadata_mut().insert("grpc-previous-rpc-attempts", attempts.parse().unwrap());
        if let Some(t) = timeout {
            req.set_timeout(t);
        }
        req
    };
    // Teach the estimate what ES384 costs here, then keep the pool busy.
    server.verifier().await.verify_assertions(small()).await.unwrap();
    let mut v = server.verifier().await;
    let busy = tokio::spawn({
        let batch = batch.clone();
        async move {
            v.verify_assertions(pb::VerifyAssertionsRequest { assertions: batch, ..Default::default() })
                .await
                .map(|_| std::time::Instant::now())
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let first = server.verifier().await.verify_assertions(small()).await.unwrap_err();
    assert_eq!(first.code(), tonic::Code::ResourceExhausted, "{first:?}");
    let e = server.verifier().await.verify_assertions(retry("1", Some(std::time::Duration::from_millis(20)))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "a retry past its deadline: {e:?}");
    assert!(e.metadata().get("grpc-retry-pushback-ms").is_some());
    let r = server.verifier().await.verify_assertions(retry("1", None)).await.unwrap().into_inner();
    let answered = std::time::Instant::now();
    assert_eq!(r.verdicts.len(), 10);
    assert!(r.verdicts.iter().all(|v| v.decision() == Decision::Allow), "{r:?}");
    // It waited behind the busy batch, in line, rather than being refused.
    let busy_done = busy.await.unwrap().unwrap();
    assert!(answered + std::time::Duration::from_millis(50) >= busy_done, "the retry was answered before the batch ahead of it");
}
