//! assertd to a real PostgreSQL that speaks TLS only (`ssl = on`, only
//! `hostssl` lines in `pg_hba.conf`), with certificates made here: each
//! `sslmode`, client certificates, and what a wrong CA does at start and
//! while running.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::pg::PgCluster;
use assertd_testkit::pki::{Ca, Name};
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use pb::{Decision, ReasonCode};
use std::path::Path;
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;

fn write(dir: &Path, name: &str, pem: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path.to_string_lossy().into_owned()
}

/// The config for `pg` with these `[store]` lines.
fn config(pg: &PgCluster, store: &str) -> String {
    format!(
        "{}\n[store]\nbackend = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:{}/postgres\"\npool_size = 2\n{store}\n",
        default_config(),
        pg.port()
    )
}

/// Starts the binary expecting it to refuse (within 30 s); what it wrote to
/// stderr. A server that starts instead is killed and fails the test.
fn refuses(dir: &Path, config: &str) -> String {
    use std::io::Read;
    let cfg = dir.join("refused.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_assertd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("ASSERTD_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let since = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if since.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("started with {config}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!status.success(), "exited 0: {stderr}");
    stderr
}

async fn verify_one(server: &Server, a: pb::Assertion) -> pb::Verdict {
    let r = pb::VerifyAssertionsRequest { assertions: vec![a], ..Default::default() };
    server.verifier().await.verify_assertions(r).await.unwrap().into_inner().verdicts.remove(0)
}

async fn readiness(server: &Server) -> ServingStatus {
    let mut h = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    h.check(tonic_health::pb::HealthCheckRequest { service: "readiness".into() }).await.unwrap().into_inner().status()
}

/// Whether every assertd connection PostgreSQL sees is encrypted (and there
/// is one).
fn assertd_connections_encrypted(pg: &PgCluster) -> bool {
    let rows = pg.psql("SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'assertd'");
    let flags: Vec<&str> = rows.lines().collect();
    !flags.is_empty() && flags.iter().all(|f| *f == "t")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_a_client_certificate_serves_over_tls_only() {
    let ca = Ca::new("pg test CA");
    let pg = PgCluster::start_tls(&ca.server(2099), Some(&ca.pem()));
    let tmp = tempfile::tempdir().unwrap();
    let root = write(tmp.path(), "ca.pem", &ca.pem());
    let client = ca.client(Name::CommonName("postgres"));
    let cert = write(tmp.path(), "client.pem", &client.cert_pem);
    let key = write(tmp.path(), "client.key", &client.key_pem);

    // hostssl only: plaintext is refused by the server, and the error says so.
    let e = refuses(tmp.path(), &config(&pg, "sslmode = \"disable\""));
    assert!(e.contains("no pg_hba.conf entry") && e.contains("no encryption"), "{e}");
    // TLS without the client certificate: `cert` authentication refuses.
    let e = refuses(tmp.path(), &config(&pg, &format!("sslmode = \"verify-full\"\nssl_root_cert = \"{root}\"")));
    assert!(e.contains("certificate"), "{e}");

    let server = Server::start_in(
        tmp.path(),
        &config(&pg, &format!("sslmode = \"verify-full\"\nssl_root_cert = \"{root}\"\nssl_cert = \"{cert}\"\nssl_key = \"{key}\"")),
    );
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"u", false)).await;
    let v = verify_one(&server, assertion("x", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", 0x04, 1))).await;
    assert_eq!(v.decision(), Decision::Allow, "{v:?}");
    assert!(assertd_connections_encrypted(&pg));
    assert_eq!(readiness(&server).await, ServingStatus::Serving);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_refuses_to_start_and_names_the_setting() {
    let ca = Ca::new("pg test CA");
    let pg = PgCluster::start_tls(&ca.server(2099), None);
    let tmp = tempfile::tempdir().unwrap();
    let other = write(tmp.path(), "other.pem", &Ca::new("someone else").pem());
    let e = refuses(tmp.path(), &config(&pg, &format!("sslmode = \"verify-full\"\nssl_root_cert = \"{other}\"")));
    assert!(e.contains("UnknownIssuer") && e.contains("store.ssl_root_cert") && e.contains(&other), "{e}");
    // verify-ca checks the chain as well.
    let e = refuses(tmp.path(), &config(&pg, &format!("sslmode = \"verify-ca\"\nssl_root_cert = \"{other}\"")));
    assert!(e.contains("UnknownIssuer"), "{e}");
    // A CA file that holds no certificate is its own error.
    let empty = write(tmp.path(), "empty.pem", "");
    let e = refuses(tmp.path(), &config(&pg, &format!("sslmode = \"verify-full\"\nssl_root_cert = \"{empty}\"")));
    assert!(e.contains("no CA certificate found") && e.contains(&empty), "{e}");
    // The default on loopback (prefer) encrypts without checking.
    let _server = Server::start_in(tmp.path(), &config(&pg, ""));
    assert!(assertd_connections_encrypted(&pg));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_skips_the_name_and_verify_full_does_not() {
    let ca = Ca::new("pg test CA");
    let pg = PgCluster::start_tls(&ca.server_named(&["db.elsewhere.test"], 2099), None);
    let tmp = tempfile::tempdir().unwrap();
    let root = write(tmp.path(), "ca.pem", &ca.pem());
    let e = refuses(tmp.path(), &config(&pg, &format!("sslmode = \"verify-full\"\nssl_root_cert = \"{root}\"")));
    assert!(e.contains("not valid for name \"127.0.0.1\"") && e.contains("name the host"), "{e}");
    let _server = Server::start_in(tmp.path(), &config(&pg, &format!("sslmode = \"verify-ca\"\nssl_root_cert = \"{root}\"")));
    assert!(assertd_connections_encrypted(&pg));
}

/// The server's certificate changes to one the configured CA did not sign
/// (a rotation gone wrong, or someone in the path): new connections fail,
/// readiness turns NOT_SERVING, nothing is allowed that needs the store; a
/// good certificate brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_while_running_turns_readiness_not_serving() {
    let ca = Ca::new("pg test CA");
    let pg = PgCluster::start_tls(&ca.server(2099), None);
    let tmp = tempfile::tempdir().unwrap();
    let root = write(tmp.path(), "ca.pem", &ca.pem());
    let server = Server::start_in(
        tmp.path(),
        &config(
            &pg,
            &format!(
                "sslmode = \"verify-full\"\nssl_root_cert = \"{root}\"\ntimeout_ms = 1000\nreadiness_grace_seconds = 1\nreadiness_follows_store = true"
            ),
        ),
    );
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"u", false)).await;
    assert_eq!(readiness(&server).await, ServingStatus::Serving);

    pg.set_server_certificate(&Ca::new("impostor").server(2099));
    pg.psql("SELECT pg_reload_conf()");
    // Existing sessions were made with the good certificate: cut them.
    pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'assertd'");
    let since = Instant::now();
    while readiness(&server).await != ServingStatus::NotServing {
        assert!(since.elapsed() < Duration::from_secs(10), "still ready with an untrusted database certificate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("readiness NOT_SERVING {:?} after the certificate changed", since.elapsed());
    let b = SoftAuthenticator::new(Alg::Es256);
    let v = verify_one(&server, assertion("x", RP, &b.credential_id, b"c", b.assert(RP, ORIGIN, b"c", 0x04, 1))).await;
    assert_eq!((v.decision(), codes(&v)), (Decision::Deny, vec![ReasonCode::StoreUnavailable]));

    pg.set_server_certificate(&ca.server(2099));
    pg.psql("SELECT pg_reload_conf()");
    let since = Instant::now();
    while readiness(&server).await != ServingStatus::Serving {
        assert!(since.elapsed() < Duration::from_secs(15), "readiness did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = verify_one(&server, assertion("x", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", 0x04, 1))).await;
    assert_eq!(v.decision(), Decision::Allow, "{v:?}");
}

/// SCRAM with channel binding (SCRAM-SHA-256-PLUS, `tls-server-end-point`):
/// with `channel_binding=require` in the URL, the login only succeeds when
/// the binding assertd computes from the server's certificate matches the
/// server's own, so a relay between the two could not log in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_logins_are_bound_to_the_tls_channel() {
    let ca = Ca::new("pg test CA");
    let pg = PgCluster::start_tls(&ca.server(2099), None);
    pg.psql("ALTER USER postgres PASSWORD 'pw-for-the-test'");
    pg.set_hba("local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n");
    let tmp = tempfile::tempdir().unwrap();
    let root = write(tmp.path(), "ca.pem", &ca.pem());
    let url = format!("postgres://postgres:pw-for-the-test@127.0.0.1:{}/postgres?channel_binding=require", pg.port());
    let store = format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nsslmode = \"verify-full\"\nssl_root_cert = \"{root}\"\n");
    let server = Server::start_in(tmp.path(), &format!("{}\n{store}", default_config()));
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"u", false)).await;
    assert!(assertd_connections_encrypted(&pg));
    // Without TLS there is no channel to bind to: refused.
    let plain = store.replace("verify-full", "disable");
    let e = refuses(tmp.path(), &format!("{}\n{plain}", default_config()));
    assert!(e.contains("channel binding") || e.contains("no pg_hba.conf entry"), "{e}");
}
