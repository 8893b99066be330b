//! The README's walk-through, as written: `readme/walkthrough.js` sends each
//! of its grpcurl calls, with the README's own JSON bodies, to the binary
//! started on `examples/assertd.toml` (the configuration the README starts
//! it with) and compares each answer with the JSON block that follows the
//! call. Node.js and @grpc/grpc-js stand in for grpcurl, which this
//! machine's package sources do not have.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn the_readme_walk_through_reaches_allow() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let node_client = root.join("examples/node-client");
    if !node_client.join("node_modules/@grpc/grpc-js").exists() {
        let out = Command::new("npm").args(["ci", "--silent", "--no-audit", "--no-fund"]).current_dir(&node_client).output().expect("npm");
        assert!(out.status.success(), "npm ci: {}", String::from_utf8_lossy(&out.stderr));
    }
    let config = std::fs::read_to_string(root.join("examples/assertd.toml")).unwrap();
    // The test's own listeners and data directory (flags win over the file).
    let server = Server::start(&config);
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readme/walkthrough.js"))
        .arg(root.join("README.md"))
        .arg(&server.grpc)
        .env("NODE_PATH", node_client.join("node_modules"))
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("walk-through: 5 calls answered as the README says"), "{stdout}");
}
