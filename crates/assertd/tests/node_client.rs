//! The Node.js gateway example (`examples/node-client`, @grpc/grpc-js) runs
//! against the real server: it registers through BeginRegistration and the
//! browser's JSON, signs in through BeginAuthentication and the browser's
//! JSON bound to its user and credential, reads the user's signals, and gets
//! CHALLENGE_REPLAYED for the replay. Its dependencies are installed from
//! the lock file (npm ci).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn the_node_client_example_runs_against_the_server() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-client");
    if !example.join("node_modules/@grpc/grpc-js").exists() {
        let out = Command::new("npm").args(["ci", "--silent", "--no-audit", "--no-fund"]).current_dir(&example).output().expect("npm");
        assert!(out.status.success(), "npm ci: {}", String::from_utf8_lossy(&out.stderr));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("challenge.key"), [7u8; 32]).unwrap();
    let config = format!(
        "{}\n[challenges]\nkeys = [{{ id = \"k1\", secret_file = \"{}\" }}]\n",
        default_config(),
        dir.path().join("challenge.key").display()
    );
    let server = Server::start_in(dir.path(), &config);
    let out = Command::new("node").arg("index.js").arg(&server.grpc).arg(RP).current_dir(&example).output().expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("registration: DECISION_ALLOW (discoverable true)"), "{stdout}");
    assert!(stdout.contains("sign-in-1: DECISION_ALLOW"), "{stdout}");
    assert!(stdout.contains("signals: 1 accepted credential(s)"), "{stdout}");
    assert!(stdout.contains("sign-in-1-replayed: DECISION_DENY"), "{stdout}");
}
