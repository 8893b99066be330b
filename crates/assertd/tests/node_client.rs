//! The Node.js gateway example (`examples/node-client`, @grpc/grpc-js) runs
//! against the real server: it stores a key, gets an allow for a signed
//! assertion bound to its user and credential, and a counter regression for
//! the replay. Its dependencies are installed from the lock file (npm ci).

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
    let server = Server::start(&default_config());
    let out = Command::new("node").arg("index.js").arg(&server.grpc).arg(RP).current_dir(&example).output().expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("sign-in-1: DECISION_ALLOW"), "{stdout}");
    assert!(stdout.contains("sign-in-1-replayed: DECISION_DENY"), "{stdout}");
}
