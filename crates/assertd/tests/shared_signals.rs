//! The OpenID Shared Signals transmitter through the real binary, against
//! a receiver this test runs on loopback: every SET verifies with the key
//! the metrics listener publishes, carries the CAEP event its change maps
//! to, and arrives once, through receiver failures (retried), a restart
//! (not sent again) and, on PostgreSQL, two replicas of which exactly one
//! delivers (and the other takes over when it leaves).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use assertd_verify::security_event::{EventSigner, verify};
use base64::Engine as _;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use parking_lot::Mutex;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";

/// One POST the receiver answered.
#[derive(Debug, Clone)]
struct Push {
    authorization: String,
    content_type: String,
    body: String,
    status: u16,
}

/// A push endpoint on loopback: it answers 503 to its first `fail_first`
/// POSTs, then 202.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Push>>>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Self {
        Self::start_with(fail_first, None).await
    }

    /// Over TLS with this certificate (for `localhost`).
    async fn start_tls(leaf: &assertd_testkit::pki::Leaf) -> Self {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Self::start_with(0, Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_with(fail_first: usize, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = if tls.is_some() { format!("https://localhost:{port}/ssf/push") } else { format!("http://127.0.0.1:{port}/ssf/push") };
        let got = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(AtomicUsize::new(fail_first));
        let log = got.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (log, failures, tls) = (log.clone(), failures.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (log, failures) = (log.clone(), failures.clone());
                        async move {
                            let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                            let (authorization, content_type) = (header("authorization"), header("content-type"));
                            let body = String::from_utf8(req.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
                            let fail = failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                            let status = if fail { 503 } else { 202 };
                            log.lock().push(Push { authorization, content_type, body, status });
                            hyper::Response::builder().status(status).body(Full::new(Bytes::new()))
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
                        }
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                let _ = http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
                            }
                        }
                    }
                });
            }
        });
        Self { url, got }
    }

    /// The SETs accepted so far.
    fn accepted(&self) -> Vec<Push> {
        self.got.lock().iter().filter(|p| p.status == 202).cloned().collect()
    }

    /// Waits (up to 30 s) for `n` accepted SETs.
    async fn wait_for(&self, n: usize) -> Vec<Push> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.accepted();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{} of {n} SETs arrived: {got:?}", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A PKCS#8 PEM P-256 key in `dir`, and the config that pushes to `url`.
fn config(dir: &Path, url: &str, base: &str) -> String {
    config_with(dir, url, base, "insecure_http = true\n")
}

/// [`config`] with more keys for the receiver.
fn config_with(dir: &Path, url: &str, base: &str, more: &str) -> String {
    let rng = ring::rand::SystemRandom::new();
    let der = EventSigner::generate_pkcs8(&rng).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    let key = dir.join("ssf-key.pem");
    if !key.exists() {
        std::fs::write(&key, format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))).unwrap();
    }
    let auth = dir.join("gw-auth");
    std::fs::write(&auth, "Bearer s3cret\n").unwrap();
    format!(
        "{base}\n[shared_signals]\nissuer = \"https://assertd.example.com/\"\nsigning_key_file = \"{}\"\nkey_id = \"k1\"\n\n[[shared_signals.receivers]]\nname = \"gw\"\nendpoint_url = \"{url}\"\naudience = \"https://gw.example.com\"\nauthorization_header_file = \"{}\"\nrp_ids = [\"{RP}\"]\n{more}",
        key.display(),
        auth.display()
    )
}

/// GET a path on the metrics listener; the body as JSON.
fn get_json(server: &Server, path: &str) -> Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&server.metrics).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{path}: {out}");
    assert!(out.to_ascii_lowercase().contains("content-type: application/json"), "{out}");
    serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

/// Each SET's claims, verified with the published key; its one event type.
fn verified(pushes: &[Push], jwks: &Value) -> Vec<(String, Value)> {
    pushes
        .iter()
        .map(|p| {
            assert_eq!(p.authorization, "Bearer s3cret");
            assert_eq!(p.content_type, "application/secevent+jwt");
            let claims = verify(&p.body, jwks).unwrap_or_else(|e| panic!("a SET that does not verify ({e}): {}", p.body));
            let events = claims["events"].as_object().unwrap();
            assert_eq!(events.len(), 1, "one event per SET (SSF 1.0 §4.2.1)");
            let kind = events.keys().next().unwrap().strip_prefix(CAEP).unwrap().to_owned();
            (kind, claims)
        })
        .collect()
}

fn risk(user: &[u8], level: pb::RiskLevel) -> pb::SetUserRiskRequest {
    pb::SetUserRiskRequest { rp_id: RP.into(), user_handle: user.to_vec(), level: level.into(), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_reaches_the_receiver_once_as_a_verifiable_caep_set() {
    let receiver = Receiver::start(2).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &receiver.url, &default_config());
    let mut server = Server::start_in(dir.path(), &cfg);
    server.wait_for_metric("assertd_ssf_deliveries_total{receiver=\"gw\",outcome=\"abandoned\"} 0").await;
    let jwks = get_json(&server, "/.well-known/jwks.json");
    let ssf = get_json(&server, "/.well-known/ssf-configuration");
    assert_eq!(ssf["issuer"], "https://assertd.example.com/");
    assert_eq!(ssf["jwks_uri"], "https://assertd.example.com/.well-known/jwks.json");
    assert_eq!(ssf["delivery_methods_supported"][0], "urn:ietf:rfc:8935");

    let key = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &key, b"alice", true)).await;
    let mut admin = server.credentials().await;
    admin.set_user_risk(risk(b"alice", pb::RiskLevel::High)).await.unwrap();
    admin.revoke_credential(pb::RevokeCredentialRequest { rp_id: RP.into(), credential_id: key.credential_id.clone() }).await.unwrap();
    admin.clear_user_risk(pb::ClearUserRiskRequest { rp_id: RP.into(), user_handle: b"alice".to_vec() }).await.unwrap();
    // Another relying party's change: this receiver asked for RP's only.
    admin.set_user_risk(pb::SetUserRiskRequest { rp_id: RP_UV.into(), ..risk(b"alice", pb::RiskLevel::High) }).await.unwrap();

    let got = verified(&receiver.wait_for(5).await, &jwks);
    let kinds: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["credential-change", "session-revoked", "risk-level-change", "credential-change", "risk-level-change"]);
    let body = |i: usize| &got[i].1["events"][format!("{CAEP}{}", got[i].0)];
    assert_eq!((body(0)["change_type"].as_str(), body(0)["credential_type"].as_str()), (Some("create"), Some("fido2-platform")));
    assert_eq!(body(2)["current_level"], "HIGH");
    assert_eq!(body(3)["change_type"], "revoke");
    assert_eq!((body(4)["current_level"].as_str(), body(4)["previous_level"].as_str()), (Some("LOW"), None));
    for (_, c) in &got {
        assert_eq!(c["iss"], "https://assertd.example.com/");
        assert_eq!(c["aud"], "https://gw.example.com");
        assert_eq!(c["sub_id"]["user"]["id"], "YWxpY2U");
        assert_eq!(c["sub_id"]["tenant"]["id"], RP);
    }
    assert_eq!(got[1].1["txn"], got[2].1["txn"], "two SETs of one change share its txn");
    let jtis: std::collections::HashSet<&str> = got.iter().map(|(_, c)| c["jti"].as_str().unwrap()).collect();
    assert_eq!(jtis.len(), 5, "each SET once");
    let failed = receiver.got.lock().iter().filter(|p| p.status == 503).count();
    assert_eq!(failed, 2, "the two failures were retried");
    assert_eq!(server.metric("assertd_ssf_deliveries_total{receiver=\"gw\",outcome=\"delivered\"}"), 5.0);
    assert_eq!(server.metric("assertd_ssf_deliveries_total{receiver=\"gw\",outcome=\"retried\"}"), 2.0);
    assert_eq!(server.metric("assertd_ssf_delivering{receiver=\"gw\"}"), 1.0);

    // A restart sends nothing again; what happens after it is sent.
    server.terminate();
    let server = Server::start_in(dir.path(), &cfg);
    let other = SoftAuthenticator::new(Alg::Es256);
    put(&server, pb::CredentialRecord { transports: vec!["usb".into()], ..record(RP, &other, b"bob", false) }).await;
    let after = verified(&receiver.wait_for(6).await, &jwks);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.accepted().len(), 6, "nothing delivered twice");
    assert_eq!(after[5].0, "credential-change");
    let change = &after[5].1["events"][format!("{CAEP}credential-change")];
    assert_eq!(change["credential_type"], "fido2-roaming", "a security key");
    assert_eq!(change["fido2_aaguid"], "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa");
}

/// Two replicas on one PostgreSQL with the same receiver: changes made on
/// both arrive once each, one replica delivers; when it leaves, the other
/// takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_delivers_and_the_other_takes_over() {
    let receiver = Receiver::start(0).await;
    let pg = assertd_testkit::pg::PgCluster::start();
    let base = format!("{}\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\npool_size = 4\n", default_config(), pg.url());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &receiver.url, &base);
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Server::start_in(da.path(), &cfg);
    let mut b = Server::start_in(db.path(), &cfg);
    let (mut ca, mut cb) = (a.credentials().await, b.credentials().await);
    for i in 0..10u8 {
        let c = if i % 2 == 0 { &mut ca } else { &mut cb };
        c.set_user_risk(risk(&[b'u', i], pb::RiskLevel::Medium)).await.unwrap();
    }
    let got = receiver.wait_for(10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.accepted().len(), 10, "each change once, though both replicas deliver");
    let jwks = get_json(&a, "/.well-known/jwks.json");
    let users: Vec<String> = verified(&got, &jwks).iter().map(|(_, c)| c["sub_id"]["user"]["id"].as_str().unwrap().to_owned()).collect();
    let mut sorted = users.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 10);
    // From the acknowledged change on either replica to the SET accepted by
    // the receiver (the deliverer wakes on the change feed).
    let mut took = Vec::new();
    for i in 0..20u8 {
        let c = if i % 2 == 0 { &mut ca } else { &mut cb };
        let before = receiver.accepted().len();
        let t = Instant::now();
        c.set_user_risk(risk(&[b'm', i], pb::RiskLevel::Medium)).await.unwrap();
        while receiver.accepted().len() == before {
            assert!(t.elapsed() < Duration::from_secs(10), "event {i} not delivered");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        took.push(t.elapsed());
    }
    took.sort();
    eprintln!("change to SET accepted, 20 events over two replicas: median {:?}, max {:?}", took[10], took[19]);
    let delivering = |s: &Server| s.metric("assertd_ssf_delivering{receiver=\"gw\"}");
    let (on_a, on_b) = (delivering(&a), delivering(&b));
    assert_eq!(on_a + on_b, 1.0, "exactly one replica delivers (a={on_a}, b={on_b})");

    // The delivering replica leaves; the other takes over.
    let survivor = if on_a == 1.0 {
        a.terminate();
        &b
    } else {
        b.terminate();
        &a
    };
    let t = Instant::now();
    survivor.credentials().await.set_user_risk(risk(b"late", pb::RiskLevel::High)).await.unwrap();
    receiver.wait_for(32).await;
    assert!(t.elapsed() < Duration::from_secs(15), "took over in {:?}", t.elapsed());
    assert_eq!(delivering(survivor), 1.0);
}

/// Over https the receiver's certificate is checked: pushed when it chains
/// to `ca_file`, refused (and retried) when it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_over_tls_only_to_a_receiver_whose_certificate_checks_out() {
    let ca = assertd_testkit::pki::Ca::new("the receiver's CA");
    let receiver = Receiver::start_tls(&ca.server(2099)).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("other.pem"), assertd_testkit::pki::Ca::new("another CA").pem()).unwrap();

    let wrong =
        config_with(dir.path(), &receiver.url, &default_config(), &format!("ca_file = \"{}\"\n", dir.path().join("other.pem").display()));
    let server = Server::start_in(dir.path(), &wrong);
    server.credentials().await.set_user_risk(risk(b"eve", pb::RiskLevel::Medium)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metric("assertd_ssf_deliveries_total{receiver=\"gw\",outcome=\"retried\"}") < 1.0 {
        assert!(Instant::now() < deadline, "no failed push counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(receiver.accepted().is_empty(), "pushed to a receiver whose certificate does not chain to ca_file");
    drop(server);

    let dir2 = tempfile::tempdir().unwrap();
    let right =
        config_with(dir2.path(), &receiver.url, &default_config(), &format!("ca_file = \"{}\"\n", dir.path().join("ca.pem").display()));
    let server = Server::start_in(dir2.path(), &right);
    server.credentials().await.set_user_risk(risk(b"eve", pb::RiskLevel::Medium)).await.unwrap();
    let got = receiver.wait_for(1).await;
    let jwks = get_json(&server, "/.well-known/jwks.json");
    assert_eq!(verified(&got, &jwks)[0].0, "risk-level-change");
}
