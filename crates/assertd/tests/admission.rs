//! Admission by time and memory, through the real binary: many small unary
//! calls in flight are not refused while their work fits the wait target,
//! and the request bytes calls hold are bounded by
//! `limits.max_request_bytes_in_flight` (a stalled sender cannot make the
//! server buffer without limit).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;

/// UP and UV.
const UV: u8 = 0x05;

/// 64 gateways' single-assertion calls in flight at once, on one
/// verification thread: 64 assertions of work, far under the 20 ms wait
/// target, and none refused (the count limit used to refuse them at 16 per
/// thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_calls_in_flight_are_admitted() {
    let server = Server::start(&format!("{}\n[pool]\nthreads = 1\n", default_config()));
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"u", false)).await;
    let item = assertion("s", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 0));
    let channel = server.channel().await;
    let mut refused = 0;
    for _ in 0..10 {
        let calls: Vec<_> = (0..64)
            .map(|_| {
                let mut v = pb::verification_service_client::VerificationServiceClient::new(channel.clone());
                let item = item.clone();
                tokio::spawn(async move { v.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![item] }).await.map(|_| ()) })
            })
            .collect();
        for c in calls {
            match c.await.unwrap() {
                Ok(()) => {}
                Err(s) if s.code() == tonic::Code::ResourceExhausted => refused += 1,
                Err(s) => panic!("{s:?}"),
            }
        }
    }
    assert_eq!(refused, 0, "calls refused although their work fits the target");
}

/// A sender that stalls halfway through a large request holds its bytes;
/// a call that would take the server past `max_request_bytes_in_flight` is
/// refused (RESOURCE_EXHAUSTED, with pushback) instead of buffered; once
/// the stalled call goes away its bytes are free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bytes_in_flight_are_bounded() {
    let server = Server::start(&format!(
        "{}\n[limits]\nmax_message_bytes = 1048576\nmax_request_bytes_in_flight = 1048576\nmax_client_data_json_bytes = 1048576\n",
        default_config()
    ));
    // A raw HTTP/2 client: headers of a VerifyAssertions call, then 800 KB
    // of its body, then nothing.
    let tcp = tokio::net::TcpStream::connect(&server.grpc).await.unwrap();
    let (h2, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut h2 = h2.ready().await.unwrap();
    let req = tonic::codegen::http::Request::post(format!("http://{}/assertd.v1.VerificationService/VerifyAssertions", server.grpc))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = h2.send_request(req, false).unwrap();
    // A gRPC frame header announcing a 1 000 000-byte message, then 800 KB.
    let mut sent = 0;
    let mut prefix = vec![0u8];
    prefix.extend(1_000_000u32.to_be_bytes());
    let chunk = vec![0x0au8; 16 * 1024];
    body.send_data(prefix.into(), false).unwrap();
    while sent < 800 * 1024 {
        body.reserve_capacity(chunk.len());
        let cap = std::future::poll_fn(|cx| body.poll_capacity(cx)).await.unwrap().unwrap();
        let n = cap.min(chunk.len());
        body.send_data(chunk[..n].to_vec().into(), false).unwrap();
        sent += n;
    }
    // Let the server read what was sent.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while body.capacity() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let held = server.scrape().lines().find_map(|l| l.strip_prefix("assertd_request_bytes_in_flight ").map(str::to_owned)).unwrap();
    assert!(held.parse::<f64>().unwrap() >= 800.0 * 1024.0, "the stalled call's bytes are held: {held}");

    // A 400 KB call now does not fit: refused, with pushback.
    let a = SoftAuthenticator::new(Alg::Es256);
    let mut big = assertion("b", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", UV, 0));
    big.client_data_json = vec![b' '; 400 * 1024];
    let r = server.verifier().await.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![big.clone()] }).await;
    let e = r.expect_err("a call past the request-bytes budget");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.metadata().get("grpc-retry-pushback-ms").is_some(), "{e:?}");
    assert!(server.scrape().contains(r#"assertd_rpcs_rejected_total{reason="request_bytes"} 1"#));

    // The stalled call goes away: its bytes are given back.
    drop(body);
    drop(response);
    drop(h2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = server.verifier().await.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![big.clone()] }).await;
        match r {
            Ok(v) => {
                // Verified (and denied: the client data is no JSON).
                assert_eq!(v.into_inner().verdicts.len(), 1);
                break;
            }
            Err(e) if e.code() == tonic::Code::ResourceExhausted && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the budget was not given back: {e:?}"),
        }
    }
}
