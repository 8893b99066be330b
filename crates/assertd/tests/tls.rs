//! mTLS and gateway authorization through the real binary: client
//! certificates from the configured CA only, identities mapped to relying
//! parties and RPC groups, bearer tokens, certificate reload without a
//! restart, the plaintext health listener, and start-up refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::pki::{Ca, Leaf, Name};
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use pb::credential_service_client::CredentialServiceClient;
use pb::verification_service_client::VerificationServiceClient;
use pb::{Decision, ReasonCode};
use std::path::Path;
use tonic::Code;
use tonic::transport::Channel;

const TOKEN: &str = "mesh-token-0123456789";

struct Pki {
    ca: Ca,
    gateway: Leaf,
    admin: Leaf,
    stranger: Leaf,
    rogue: Leaf,
}

fn write_server_files(dir: &Path, ca: &Ca, server: &Leaf) {
    std::fs::write(dir.join("server.crt"), &server.cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), &server.key_pem).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
}

/// A server with mTLS and three clients: a gateway (certificate DNS name,
/// verify for RP only), an admin (SPIFFE URI, everything), a mesh caller
/// (bearer token, verify for RP_UV only).
fn start(dir: &Path) -> (Server, Pki) {
    let ca = Ca::new("assertd test CA");
    write_server_files(dir, &ca, &ca.server(2090));
    let pki = Pki {
        gateway: ca.client(Name::Dns("gateway.login.svc")),
        admin: ca.client(Name::Uri("spiffe://test/ns/iam/sa/admin")),
        stranger: ca.client(Name::CommonName("someone-else")),
        rogue: Ca::new("rogue CA").client(Name::Dns("gateway.login.svc")),
        ca,
    };
    let d = dir.display();
    let config = format!(
        r#"health_listen = "127.0.0.1:0"
{}
[tls]
cert_file = "{d}/server.crt"
key_file = "{d}/server.key"
client_ca_file = "{d}/ca.crt"
reload_interval_seconds = 1

[[clients]]
name = "gateway"
certificate_names = ["gateway.login.svc"]
relying_parties = ["{RP}"]
rpcs = ["verify"]

[[clients]]
name = "admin"
certificate_names = ["spiffe://test/ns/iam/sa/admin"]
relying_parties = ["*"]
rpcs = ["*"]

[[clients]]
name = "mesh"
token_sha256 = ["{}"]
relying_parties = ["{RP_UV}"]
rpcs = ["verify", "credentials.read"]
"#,
        default_config(),
        sha256_hex(TOKEN)
    );
    let server = Server::start_in(dir, &config);
    (server, pki)
}

async fn connect(server: &Server, ca: &Ca, id: Option<&Leaf>) -> Result<Channel, tonic::transport::Error> {
    tls_channel(&server.grpc, &ca.pem(), id).await
}

/// Whether any RPC gets through on a connection made with `id`.
async fn gets_through(server: &Server, ca_pem: &str, id: Option<&Leaf>) -> bool {
    let Ok(ch) = tls_channel(&server.grpc, ca_pem, id).await else { return false };
    let r = VerificationServiceClient::new(ch)
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![], ..Default::default() })
        .await;
    match r {
        Ok(_) => true,
        Err(s) => {
            assert!(matches!(s.code(), Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled), "{s:?}");
            false
        }
    }
}

fn with_token<T>(msg: T) -> tonic::Request<T> {
    with_bearer(TOKEN, msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_certificates_from_the_configured_ca_get_in() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, pki) = start(tmp.path());
    assert!(gets_through(&server, &pki.ca.pem(), Some(&pki.gateway)).await);
    assert!(!gets_through(&server, &pki.ca.pem(), None).await, "no client certificate");
    assert!(!gets_through(&server, &pki.ca.pem(), Some(&pki.rogue)).await, "certificate from another CA");
    // Plaintext to the TLS port gets nowhere.
    let plain = Channel::from_shared(format!("http://{}", server.grpc)).unwrap().connect().await;
    if let Ok(ch) = plain {
        let r = VerificationServiceClient::new(ch)
            .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![], ..Default::default() })
            .await;
        assert!(r.is_err());
    }
    let metrics = server.scrape();
    assert!(metrics.contains("assertd_tls_handshake_failures_total{reason=\"error\"}"), "{metrics}");
    assert!(metrics.contains("assertd_tls_certificate_expiry_timestamp_seconds 3786912000"), "expiry of a 2090-01-01 certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_map_to_relying_parties_and_rpcs() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, pki) = start(tmp.path());
    let admin = connect(&server, &pki.ca, Some(&pki.admin)).await.unwrap();
    let gateway = connect(&server, &pki.ca, Some(&pki.gateway)).await.unwrap();
    let stranger = connect(&server, &pki.ca, Some(&pki.stranger)).await.unwrap();

    // The admin registers credentials for two RPs.
    let a = SoftAuthenticator::new(Alg::Es256);
    let b = SoftAuthenticator::new(Alg::Es256);
    let mut creds = CredentialServiceClient::new(admin.clone());
    creds.put_credential(pb::PutCredentialRequest { credential: Some(record(RP, &a, b"u1", false)), ..Default::default() }).await.unwrap();
    creds
        .put_credential(pb::PutCredentialRequest { credential: Some(record(RP_UV, &b, b"u2", false)), ..Default::default() })
        .await
        .unwrap();

    // The gateway may verify for RP, and nothing else.
    let challenge = b"tls challenge";
    let batch = vec![
        assertion("ok", RP, &a.credential_id, challenge, a.assert(RP, ORIGIN, challenge, 0x05, 1)),
        assertion("other-rp", RP_UV, &b.credential_id, challenge, b.assert(RP_UV, ORIGIN_UV, challenge, 0x05, 1)),
        assertion("unknown-rp", "nope.example", &b.credential_id, challenge, b.assert("nope.example", ORIGIN, challenge, 0x05, 1)),
    ];
    let v = VerificationServiceClient::new(gateway.clone())
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: batch.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .verdicts;
    assert_eq!(v[0].decision(), Decision::Allow, "{:?}", v[0]);
    for item in &v[1..] {
        // Outside its grant: the same answer whether or not the RP exists.
        assert_eq!(item.decision(), Decision::Deny);
        assert_eq!(codes(item), vec![ReasonCode::RpNotAuthorized], "{item:?}");
    }
    // Streams carry the same grant.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::VerifyAssertionsStreamRequest { assertions: batch[1..2].to_vec(), ..Default::default() }).await.unwrap();
    drop(tx);
    let mut out = VerificationServiceClient::new(gateway.clone())
        .verify_assertions_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let msg = out.message().await.unwrap().unwrap();
    assert_eq!(codes(&msg.verdicts[0]), vec![ReasonCode::RpNotAuthorized]);

    // CredentialService is authorized separately.
    let mut gw_creds = CredentialServiceClient::new(gateway.clone());
    let e = gw_creds
        .put_credential(pb::PutCredentialRequest { credential: Some(record(RP, &b, b"u3", false)), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e =
        gw_creds.get_credential(pb::GetCredentialRequest { rp_id: RP.into(), credential_id: a.credential_id.clone() }).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // A certificate from the right CA naming no configured client.
    let e = VerificationServiceClient::new(stranger.clone())
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: batch.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");

    // A bearer token decides when present: the mesh caller reads RP_UV's
    // credentials but not RP's, and verifies for RP_UV only.
    let mut mesh = CredentialServiceClient::new(stranger);
    let got = mesh
        .get_credential(with_token(pb::GetCredentialRequest { rp_id: RP_UV.into(), credential_id: b.credential_id.clone() }))
        .await
        .unwrap();
    assert_eq!(got.into_inner().credential.unwrap().credential_id, b.credential_id);
    let e = mesh
        .get_credential(with_token(pb::GetCredentialRequest { rp_id: RP.into(), credential_id: a.credential_id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = mesh
        .revoke_credential(with_token(pb::RevokeCredentialRequest { rp_id: RP_UV.into(), credential_id: b.credential_id.clone() }))
        .await;
    assert_eq!(e.unwrap_err().code(), Code::PermissionDenied);
    let mut wrong = tonic::Request::new(pb::GetCredentialRequest { rp_id: RP_UV.into(), credential_id: b.credential_id.clone() });
    wrong.metadata_mut().insert("authorization", "Bearer not-the-token".parse().unwrap());
    assert_eq!(mesh.get_credential(wrong).await.unwrap_err().code(), Code::Unauthenticated);

    let metrics = server.scrape();
    for reason in ["unauthenticated", "permission_denied"] {
        assert!(metrics.contains(&format!("assertd_rpcs_rejected_total{{reason=\"{reason}\"}}")), "{reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, pki) = start(tmp.path());
    let old = connect(&server, &pki.ca, Some(&pki.gateway)).await.unwrap();
    let mut old_client = VerificationServiceClient::new(old);
    old_client.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![], ..Default::default() }).await.unwrap();

    // A broken set (key of another certificate) is refused; the running
    // certificate keeps serving.
    let ca2 = Ca::new("assertd test CA 2");
    let next = ca2.server(2080);
    std::fs::write(tmp.path().join("server.crt"), &next.cert_pem).unwrap();
    wait_for(&server, "assertd_tls_reloads_total{result=\"failed\"}").await;
    assert!(gets_through(&server, &pki.ca.pem(), Some(&pki.gateway)).await);

    // The complete new set: server certificate from CA 2, client CA now
    // CA 2. New connections see it; the open one keeps working.
    let gateway2 = ca2.client(Name::Dns("gateway.login.svc"));
    std::fs::write(tmp.path().join("server.key"), &next.key_pem).unwrap();
    std::fs::write(tmp.path().join("ca.crt"), ca2.pem()).unwrap();
    // The watcher may catch the files half-written; it settles on the set.
    let mut settled = false;
    for _ in 0..100 {
        if gets_through(&server, &ca2.pem(), Some(&gateway2)).await {
            settled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(settled, "new CA, new client certificate never got through");
    wait_for(&server, "assertd_tls_certificate_expiry_timestamp_seconds 3471292800").await;
    assert!(!gets_through(&server, &pki.ca.pem(), Some(&pki.gateway)).await, "the old CA no longer verifies the server");
    assert!(!gets_through(&server, &ca2.pem(), Some(&pki.gateway)).await, "the old client certificate is no longer accepted");
    old_client.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![], ..Default::default() }).await.unwrap();
    assert!(server.scrape().contains("assertd_tls_reloads_total{result=\"ok\"}"));
}

async fn wait_for(server: &Server, needle: &str) {
    for _ in 0..100 {
        if server.scrape().contains(needle) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{needle} never showed in /metrics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_use_the_plaintext_health_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _pki) = start(tmp.path());
    let health = server.line_field("health=");
    let ch = Channel::from_shared(format!("http://{health}")).unwrap().connect().await.unwrap();
    let mut h = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    for service in ["readiness", "liveness", ""] {
        let r = h.check(tonic_health::pb::HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(r.status(), tonic_health::pb::health_check_response::ServingStatus::Serving, "{service}");
    }
    // Nothing else is served there.
    let e = VerificationServiceClient::new(ch)
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![], ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
}

#[test]
fn unsafe_or_broken_transport_settings_refuse_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = Ca::new("ca");
    let a = ca.server(2090);
    let b = ca.server(2090);
    std::fs::write(dir.join("a.crt"), &a.cert_pem).unwrap();
    std::fs::write(dir.join("b.key"), &b.key_pem).unwrap();
    std::fs::write(dir.join("garbage.pem"), "not pem").unwrap();
    let d = dir.display();
    let cases = [
        ("", vec!["--listen", "0.0.0.0:0"], "not a loopback address"),
        // Issue 13 item 1: plaintext accepted, but nobody authenticates.
        ("", vec!["--listen", "0.0.0.0:0", "--insecure-allow-plaintext"], "set insecure_allow_unauthenticated = true"),
        ("allow_plaintext = true\n", vec!["--listen", "0.0.0.0:0"], "no [[clients]] authenticate callers"),
        (format!("[tls]\ncert_file = \"{d}/a.crt\"\nkey_file = \"{d}/b.key\"\n").leak() as &str, vec![], "do not make a usable pair"),
        (format!("[tls]\ncert_file = \"{d}/garbage.pem\"\nkey_file = \"{d}/b.key\"\n").leak(), vec![], "no certificate"),
        (
            "[[clients]]\nname = \"gw\"\ncertificate_names = [\"gw\"]\nrelying_parties = [\"*\"]\nrpcs = [\"verify\"]\n",
            vec![],
            "certificate identities need [tls] client_ca_file",
        ),
        (
            "[[clients]]\nname = \"gw\"\ntoken_sha256 = [\"00\"]\nrelying_parties = [\"*\"]\nrpcs = [\"verify\"]\n",
            vec![],
            "clients[0].token_sha256",
        ),
    ];
    for (config, args, want) in cases {
        let cfg = dir.join("bad.toml");
        std::fs::write(&cfg, config).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_assertd"))
            .args(["serve", "--metrics-listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--config")
            .arg(&cfg)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config} started");
        assert!(stderr.contains(want), "{config}: {stderr}");
    }
}

/// Starts the binary with `args` and `config`; its first stdout line (or
/// its exit) and what it logged by then.
fn start_line(dir: &std::path::Path, config: &str, args: &[&str]) -> (bool, String) {
    use std::io::{BufRead, BufReader, Read};
    let cfg = dir.join("open.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_assertd"))
        .args(["serve", "--metrics-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&cfg)
        .args(args)
        .env("ASSERTD_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let started = line.contains("listening");
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (started, stderr)
}

/// Issue 13 item 1: beyond loopback the binary serves only authenticated
/// callers, unless an insecure_ setting says otherwise, and then it says so
/// at every start; the old allow_plaintext key still works, with a warning.
#[test]
fn open_listeners_need_clients_or_an_explicit_insecure_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let open = ["--listen", "0.0.0.0:0", "--insecure-allow-plaintext", "--insecure-allow-unauthenticated"];
    let (started, log) = start_line(tmp.path(), "", &open);
    assert!(started, "{log}");
    assert!(log.contains("insecure_allow_unauthenticated: no [[clients]]") && log.contains("insecure_allow_plaintext"), "{log}");

    let clients = format!(
        "allow_plaintext = true\n[[clients]]\nname = \"gw\"\ntoken_sha256 = [\"{}\"]\nrelying_parties = [\"*\"]\nrpcs = [\"verify\"]\n",
        sha256_hex("t")
    );
    let (started, log) = start_line(tmp.path(), &clients, &["--listen", "0.0.0.0:0"]);
    assert!(started, "{log}");
    assert!(log.contains("allow_plaintext is deprecated") && !log.contains("insecure_allow_unauthenticated"), "{log}");
}

/// `[[clients]] token_sha256_env`: the token's hash comes from the
/// environment (the chart fills it from a Secret), not from the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_hashes_can_come_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[[clients]]\nname = \"gw\"\ntoken_sha256_env = [\"GW_TOKEN_SHA256\"]\nrelying_parties = [\"*\"]\nrpcs = [\"credentials.read\"]\n",
        default_config()
    );
    let server = Server::start_with_env(tmp.path(), &config, &[("GW_TOKEN_SHA256", &sha256_hex("s3cret"))]);
    let ask = |token: &str| with_bearer(token, pb::GetCredentialRequest { rp_id: RP.into(), credential_id: b"x".to_vec() });
    let e = server.credentials().await.get_credential(ask("s3cret")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "authenticated: {e:?}");
    let e = server.credentials().await.get_credential(ask("wrong")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
}
