//! WatchEvents through the real binary: what changes reaches a watcher, in
//! order, with its actor; a watcher that resumes from its cursor after a
//! server restart loses nothing; a cursor older than the retained log is
//! OUT_OF_RANGE; grants scope what is watched; and with PostgreSQL an
//! event on one replica reaches the other's watchers within a second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use pb::EventKind;
use std::time::{Duration, Instant};
use tonic::Code;

type Events = tonic::Streaming<pb::WatchEventsResponse>;

async fn watch(server: &Server, rp_ids: &[&str], after: &str) -> Result<Events, tonic::Status> {
    let r = pb::WatchEventsRequest { rp_ids: rp_ids.iter().map(|s| (*s).to_owned()).collect(), after_cursor: after.into() };
    server.credentials().await.watch_events(r).await.map(tonic::Response::into_inner)
}

/// The next event, within 2 s.
async fn next(s: &mut Events) -> pb::Event {
    tokio::time::timeout(Duration::from_secs(2), s.message()).await.expect("no event within 2 s").unwrap().unwrap().event.unwrap()
}

/// Nothing more within 300 ms.
async fn quiet(s: &mut Events) {
    assert!(tokio::time::timeout(Duration::from_millis(300), s.message()).await.is_err(), "an unexpected event");
}

fn risk(user: &[u8], level: pb::RiskLevel) -> pb::SetUserRiskRequest {
    pb::SetUserRiskRequest { rp_id: RP.into(), user_handle: user.to_vec(), level: level.into(), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_every_change_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &default_config());
    let mut w = watch(&server, &[], "").await.unwrap();
    let key = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &key, b"alice", false)).await;
    let mut admin = server.credentials().await;
    admin.set_user_risk(risk(b"alice", pb::RiskLevel::High)).await.unwrap();
    admin.revoke_credential(pb::RevokeCredentialRequest { rp_id: RP.into(), credential_id: key.credential_id.clone() }).await.unwrap();
    let got = [next(&mut w).await, next(&mut w).await, next(&mut w).await];
    assert_eq!(
        got.iter().map(pb::Event::kind).collect::<Vec<_>>(),
        [EventKind::CredentialRegistered, EventKind::UserRiskSet, EventKind::CredentialRevoked]
    );
    assert_eq!((got[1].user_handle.as_slice(), got[1].detail.as_str(), got[1].actor.as_str()), (&b"alice"[..], "level high", "-"));
    assert_eq!(got[2].credential_id, key.credential_id);
    let cursors: Vec<i64> = got.iter().map(|e| e.cursor.parse().unwrap()).collect();
    assert!(cursors.windows(2).all(|c| c[0] < c[1]));
    quiet(&mut w).await;

    // Changes while no one watches, a restart, more changes: resuming from
    // the last cursor handled loses none of them.
    admin.clear_user_risk(pb::ClearUserRiskRequest { rp_id: RP.into(), user_handle: b"alice".to_vec() }).await.unwrap();
    assert_eq!(next(&mut w).await.kind(), EventKind::UserRiskCleared);
    // A shutdown ends the stream at once (UNAVAILABLE: reconnect with the
    // cursor), so the drain does not wait for it.
    let t = Instant::now();
    server.terminate();
    assert!(t.elapsed() < Duration::from_secs(5), "the drain waited {:?} for the watch stream", t.elapsed());
    let end = tokio::time::timeout(Duration::from_secs(2), w.message()).await.unwrap();
    assert!(matches!(&end, Err(s) if s.code() == Code::Unavailable) || matches!(end, Ok(None)), "{end:?}");
    let server = Server::start_in(dir.path(), &default_config());
    let mut admin = server.credentials().await;
    admin.delete_credential(pb::DeleteCredentialRequest { rp_id: RP.into(), credential_id: key.credential_id.clone() }).await.unwrap();
    let mut w = watch(&server, &[], &got[2].cursor).await.unwrap();
    assert_eq!(next(&mut w).await.kind(), EventKind::UserRiskCleared);
    assert_eq!(next(&mut w).await.kind(), EventKind::CredentialDeleted);
    let other = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &other, b"bob", false)).await;
    assert_eq!(next(&mut w).await.kind(), EventKind::CredentialRegistered, "and live after the backlog");
    quiet(&mut w).await;

    // Bad cursors.
    assert_eq!(watch(&server, &[], "soon").await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(watch(&server, &[], "999999").await.unwrap_err().code(), Code::OutOfRange, "a cursor this log never gave");
    assert!(watch(&server, &[], "0").await.is_ok(), "from the start of the retained log");
}

/// Events older than the retention are pruned; a cursor before them is
/// OUT_OF_RANGE (the watcher missed events), and watching without a cursor
/// works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_the_log_is_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &default_config());
    let mut w = watch(&server, &[], "").await.unwrap();
    let mut admin = server.credentials().await;
    admin.set_user_risk(risk(b"carol", pb::RiskLevel::Medium)).await.unwrap();
    admin.set_user_risk(risk(b"carol", pb::RiskLevel::High)).await.unwrap();
    let first = next(&mut w).await;
    server.terminate();
    // Both events aged past the retention (7 days by default).
    let db = rusqlite::Connection::open(dir.path().join("data/credentials.db")).unwrap();
    db.execute("UPDATE events SET at_ms = 0", []).unwrap();
    drop(db);
    let server = Server::start_in(dir.path(), &default_config());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match watch(&server, &[], &first.cursor).await {
            Err(s) if s.code() == Code::OutOfRange => break,
            _ => assert!(Instant::now() < deadline, "still resumable after the prune"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut w = watch(&server, &[], "").await.unwrap();
    server.credentials().await.set_user_risk(risk(b"carol", pb::RiskLevel::Medium)).await.unwrap();
    assert_eq!(next(&mut w).await.kind(), EventKind::UserRiskSet);
}

/// A grant's relying parties bound what it watches; `events.read` is a
/// group of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_scope_what_is_watched() {
    let config = format!(
        "{}\n[[clients]]\nname = \"sessions\"\ntoken_sha256 = [\"{}\"]\nrelying_parties = [\"{RP}\"]\nrpcs = [\"events.read\"]\n\n[[clients]]\nname = \"admin\"\ntoken_sha256 = [\"{}\"]\nrelying_parties = [\"*\"]\nrpcs = [\"*\"]\n",
        default_config(),
        sha256_hex("sessions-token"),
        sha256_hex("admin-token")
    );
    let server = Server::start(&config);
    let mut c = server.credentials().await;
    let req = |rps: &[&str]| {
        with_bearer(
            "sessions-token",
            pb::WatchEventsRequest { rp_ids: rps.iter().map(|s| (*s).to_owned()).collect(), after_cursor: String::new() },
        )
    };
    assert_eq!(c.watch_events(req(&[RP_UV])).await.unwrap_err().code(), Code::PermissionDenied);
    let mut w = c.watch_events(req(&[])).await.unwrap().into_inner();
    let mut admin = server.credentials().await;
    let flag = |rp: &str| with_bearer("admin-token", pb::SetUserRiskRequest { rp_id: rp.into(), ..risk(b"dave", pb::RiskLevel::High) });
    admin.set_user_risk(flag(RP_UV)).await.unwrap();
    admin.set_user_risk(flag(RP)).await.unwrap();
    let e = next(&mut w).await;
    assert_eq!((e.rp_id.as_str(), e.actor.as_str()), (RP, "admin"), "only the granted RP's events");
    quiet(&mut w).await;
    let no_group = with_bearer("admin-token", pb::SetUserRiskRequest { ..risk(b"x", pb::RiskLevel::High) });
    assert_eq!(c.set_user_risk(with_bearer("sessions-token", no_group.into_inner())).await.unwrap_err().code(), Code::PermissionDenied);
}

/// Two replicas on one PostgreSQL: a change on A reaches a watcher on B
/// within a second, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_on_one_replica_reaches_the_others_watchers_within_a_second() {
    let pg = assertd_testkit::pg::PgCluster::start();
    let config = format!("{}\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\npool_size = 4\n", default_config(), pg.url());
    let (a, b) = (Server::start(&config), Server::start(&config));
    let mut w = watch(&b, &[RP], "").await.unwrap();
    let mut admin = a.credentials().await;
    let mut took = Vec::new();
    for i in 0..20u8 {
        let t = Instant::now();
        admin.set_user_risk(risk(&[b'u', i], pb::RiskLevel::High)).await.unwrap();
        let e = next(&mut w).await;
        took.push(t.elapsed());
        assert_eq!((e.kind(), e.user_handle.as_slice()), (EventKind::UserRiskSet, &[b'u', i][..]));
    }
    took.sort();
    eprintln!("A's change on B's watcher: median {:?}, max {:?} (20 events)", took[10], took[19]);
    assert!(took[19] < Duration::from_secs(1), "{took:?}");
}

/// Waits (3 s at most) until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(3), "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `examples/session-revoker`: a gateway's sessions end in real time on a
/// revocation or a HIGH flag, including what happened while its watcher
/// was away (it resumes from its cursor after a server restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_revoker_example_ends_sessions_in_real_time() {
    use assertd_session_revoker::{Sessions, watch as revoke_sessions};
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &default_config());
    let (a1, a2, b) = (SoftAuthenticator::new(Alg::Es256), SoftAuthenticator::new(Alg::Es256), SoftAuthenticator::new(Alg::Es256));
    for (k, user) in [(&a1, &b"alice"[..]), (&a2, b"alice"), (&b, b"bob")] {
        put(&server, record(RP, k, user, false)).await;
    }
    let sessions = Sessions::default();
    sessions.start("s1", RP, b"alice", &a1.credential_id);
    sessions.start("s2", RP, b"alice", &a2.credential_id);
    sessions.start("s3", RP, b"bob", &b.credential_id);
    let task = tokio::spawn(revoke_sessions(server.channel().await, vec![RP.into()], sessions.clone()));
    let mut admin = server.credentials().await;
    admin.revoke_credential(pb::RevokeCredentialRequest { rp_id: RP.into(), credential_id: a1.credential_id.clone() }).await.unwrap();
    until("s1 ends on its credential's revocation", || !sessions.is_active("s1")).await;
    assert!(sessions.is_active("s2") && sessions.is_active("s3"));

    // The watcher goes away; Alice is flagged HIGH; the server restarts.
    task.abort();
    admin.set_user_risk(risk(b"alice", pb::RiskLevel::High)).await.unwrap();
    server.terminate();
    let server = Server::start_in(dir.path(), &default_config());
    let task = tokio::spawn(revoke_sessions(server.channel().await, vec![RP.into()], sessions.clone()));
    until("s2 ends on a flag set while the watcher was away", || !sessions.is_active("s2")).await;
    assert!(sessions.is_active("s3"));
    let req = pb::RevokeUserCredentialsRequest { rp_id: RP.into(), user_handle: b"bob".to_vec() };
    server.credentials().await.revoke_user_credentials(req).await.unwrap();
    until("s3 ends when every credential of Bob is revoked", || !sessions.is_active("s3")).await;
    task.abort();
    let why: Vec<String> = sessions.ended().into_iter().map(|(id, why)| format!("{id}: {why}")).collect();
    assert_eq!(
        why,
        [
            "s1: the session's credential was revoked",
            "s2: the user was flagged at high risk",
            "s3: every credential of the user was revoked"
        ]
    );
}

/// A flag that lapses is reported once, as `USER_RISK_EXPIRED` by
/// `expiry`, when the replica prunes it (at start, then every minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_flag_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &default_config());
    let mut w = watch(&server, &[], "").await.unwrap();
    let soon = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap() + Duration::from_millis(800);
    let at = prost_types::Timestamp { seconds: soon.as_secs() as i64, nanos: soon.subsec_nanos() as i32 };
    server
        .credentials()
        .await
        .set_user_risk(pb::SetUserRiskRequest { expires_at: Some(at), ..risk(b"erin", pb::RiskLevel::High) })
        .await
        .unwrap();
    let set = next(&mut w).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server.terminate();
    let server = Server::start_in(dir.path(), &default_config());
    let mut w = watch(&server, &[], &set.cursor).await.unwrap();
    let e = next(&mut w).await;
    assert_eq!(
        (e.kind(), e.actor.as_str(), e.detail.as_str(), e.user_handle.as_slice()),
        (EventKind::UserRiskExpired, "expiry", "level high", &b"erin"[..])
    );
    quiet(&mut w).await;
}

/// FIDO metadata with serial `no` listing the model of `record()`'s
/// credentials (AAGUID aa…aa) with `status` as its latest report.
fn metadata(no: u64, status: &str) -> String {
    use base64::Engine;
    let root = base64::engine::general_purpose::STANDARD.encode(assertd_testkit::pki::Ca::new("a vendor root").der());
    format!(
        r#"{{"legalHeader":"test","no":{no},"nextUpdate":"2099-01-01","entries":[{{"aaguid":"aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",
   "metadataStatement":{{"description":"Leaky Key","attestationRootCertificates":["{root}"]}},
   "statusReports":[{{"status":"FIDO_CERTIFIED_L1","effectiveDate":"2025-01-01"}},{{"status":"{status}","effectiveDate":"2026-01-01"}}]}}]}}"#
    )
}

fn write_metadata(path: &std::path::Path, no: u64, status: &str) {
    let next = path.with_extension("new");
    std::fs::write(&next, metadata(no, status)).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// New metadata that blocks a model the stored credentials are of: one
/// AUTHENTICATOR_MODEL_REVOKED event per relying party, naming the model
/// and how many unrevoked credentials it affects; the next metadata that
/// still blocks it reports nothing again. With two replicas loading it, one
/// reports.
async fn model_revoked(servers: &[&Server], mds: &std::path::Path) {
    let first = servers[0];
    let mut keys = Vec::new();
    for (rp, user) in [(RP, &b"u1"[..]), (RP, b"u2"), (RP_UV, b"u3"), (RP, b"u4")] {
        let key = SoftAuthenticator::new(Alg::Es256);
        put(first, record(rp, &key, user, false)).await;
        keys.push(key);
    }
    let mut admin = first.credentials().await;
    admin.revoke_credential(pb::RevokeCredentialRequest { rp_id: RP.into(), credential_id: keys[3].credential_id.clone() }).await.unwrap();
    let mut w = watch(first, &[], "").await.unwrap();
    write_metadata(mds, 2, "REVOKED");
    for s in servers {
        s.wait_for_metric("assertd_metadata_number 2").await;
    }
    let mut got = [next(&mut w).await, next(&mut w).await];
    got.sort_by(|a, b| a.rp_id.cmp(&b.rp_id));
    for (e, (rp, n)) in got.iter().zip([(RP_UV, 1), (RP, 2)]) {
        assert_eq!(e.kind(), EventKind::AuthenticatorModelRevoked);
        assert_eq!((e.rp_id.as_str(), e.affected_credentials, e.actor.as_str()), (rp, n, "metadata"));
        assert_eq!(e.aaguid, vec![0xaa; 16]);
        assert!(e.detail.contains("Leaky Key") && e.detail.contains("REVOKED"), "{}", e.detail);
    }
    // Every replica has loaded it (and reported what it had to).
    tokio::time::sleep(Duration::from_secs(1)).await;
    quiet(&mut w).await;
    write_metadata(mds, 3, "REVOKED");
    for s in servers {
        s.wait_for_metric("assertd_metadata_number 3").await;
    }
    quiet(&mut w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_the_metadata_revokes_is_reported_once_with_what_it_affects() {
    let dir = tempfile::tempdir().unwrap();
    let mds = dir.path().join("mds.json");
    write_metadata(&mds, 1, "FIDO_CERTIFIED_L1");
    let config = format!(
        "config_watch_interval_seconds = 1\n{}\n[metadata]\npath = \"{}\"\nformat = \"payload\"\n",
        default_config(),
        mds.display()
    );
    let server = Server::start(&config);
    model_revoked(&[&server], &mds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_one_reports_a_revoked_model() {
    let pg = assertd_testkit::pg::PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let mds = dir.path().join("mds.json");
    write_metadata(&mds, 1, "FIDO_CERTIFIED_L1");
    let config = format!(
        "config_watch_interval_seconds = 1\n{}\n[metadata]\npath = \"{}\"\nformat = \"payload\"\n\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\npool_size = 4\n",
        default_config(),
        mds.display(),
        pg.url()
    );
    let (a, b) = (Server::start(&config), Server::start(&config));
    model_revoked(&[&a, &b], &mds).await;
}
