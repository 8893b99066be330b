//! `assertd backup`: a consistent copy of the SQLite store taken while the
//! server verifies and counts, that another server starts from with every
//! credential and every count acknowledged before the copy began; backups
//! named by time in a directory, the newest kept; PostgreSQL refused with
//! the way to back it up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

const UV: u8 = 0x04;
const COUNTING: usize = 8;
const STORED: usize = 200;

fn backup(dir: &Path, to: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_assertd"))
        .args(["backup", "--config"])
        .arg(dir.join("assertd.toml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--to")
        .arg(to)
        .args(extra)
        .env("ASSERTD_LOG", "warn")
        .output()
        .unwrap()
}

async fn stored(server: &Server, a: &SoftAuthenticator) -> Option<pb::CredentialRecord> {
    let r = pb::GetCredentialRequest { rp_id: RP.into(), credential_id: a.credential_id.clone() };
    server.credentials().await.get_credential(r).await.ok()?.into_inner().credential
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_every_acknowledged_count() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(tmp.path(), &default_config());
    let keys: Arc<Vec<SoftAuthenticator>> = Arc::new((0..STORED).map(|_| SoftAuthenticator::new(Alg::Es256)).collect());
    for (i, k) in keys.iter().enumerate() {
        put(&server, record(RP, k, format!("user-{i}").as_bytes(), false)).await;
    }
    // Sign-ins that count, as fast as the server takes them, through every
    // backup: each acknowledged count is recorded.
    let acked: Arc<Vec<AtomicU32>> = Arc::new((0..COUNTING).map(|_| AtomicU32::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (acked, stop, keys) = (acked.clone(), stop.clone(), keys.clone());
        let mut v = server.verifier().await;
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let items = keys[..COUNTING]
                    .iter()
                    .map(|k| assertion("x", RP, &k.credential_id, b"c", k.assert(RP, ORIGIN, b"c", UV, n)))
                    .collect();
                let verdicts = v.verify_assertions(pb::VerifyAssertionsRequest { assertions: items, ..Default::default() }).await.unwrap();
                for (i, verdict) in verdicts.into_inner().verdicts.iter().enumerate() {
                    assert_eq!(verdict.decision(), pb::Decision::Allow, "{verdict:?}");
                    acked[i].store(n, Ordering::Relaxed);
                }
            }
            n
        })
    };
    let out = tmp.path().join("backups");
    std::fs::create_dir(&out).unwrap();
    let mut before = vec![];
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        before = acked.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        let o = backup(tmp.path(), &out, &["--keep", "2"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("backed up {STORED} credentials")), "{o:?}");
        // Names sort by time: a second apart.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let signed = load.await.unwrap();
    assert!(before.iter().all(|&n| n > 0), "sign-ins ran during the backups: {before:?}");

    let mut files: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 2, "--keep 2: {files:?}");
    let newest = files.last().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(newest).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // Restore: a new server whose database is the newest backup.
    let restored_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(restored_dir.path().join("data")).unwrap();
    std::fs::copy(newest, restored_dir.path().join("data/credentials.db")).unwrap();
    let restored = Server::start_in(restored_dir.path(), &default_config());
    for k in keys.iter() {
        assert!(stored(&restored, k).await.is_some(), "a credential is missing from the backup");
    }
    for (i, k) in keys[..COUNTING].iter().enumerate() {
        let count = stored(&restored, k).await.unwrap().sign_count;
        assert!(count >= before[i], "counting credential {i}: the backup holds {count}, {} was acknowledged before it began", before[i]);
        assert!(count <= signed, "{count} > {signed}");
    }
    // The restored server counts on from there: a replay of the count it
    // holds is refused.
    let k = &keys[0];
    let count = stored(&restored, k).await.unwrap().sign_count;
    let replay = assertion("x", RP, &k.credential_id, b"c", k.assert(RP, ORIGIN, b"c", UV, count));
    let v =
        restored.verifier().await.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![replay], ..Default::default() }).await;
    assert_eq!(v.unwrap().into_inner().verdicts[0].decision(), pb::Decision::Deny);
}

#[test]
fn postgres_and_bad_destinations_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("assertd.toml"), "[store]\nbackend = \"postgres\"\nurl = \"postgres://x@127.0.0.1:1/x\"\n").unwrap();
    let o = backup(tmp.path(), &tmp.path().join("b.db"), &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("pg_dump"), "{o:?}");

    std::fs::write(tmp.path().join("assertd.toml"), "").unwrap();
    let o = backup(tmp.path(), &tmp.path().join("b.db"), &[]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no database"), "{o:?}");
    let o = backup(tmp.path(), &tmp.path().join("b.db"), &["--keep", "3"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--keep needs"), "{o:?}");
}
