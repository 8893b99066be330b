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

/// An example config's header tells how to run it: every key it reads from
/// the environment or a file is provided by the header's commands.
#[test]
fn example_config_headers_provide_the_keys_the_configs_read() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    for file in ["examples/demo-gateway/assertd.toml"] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        let header: String = text.lines().take_while(|l| l.starts_with('#')).collect::<Vec<_>>().join("\n");
        let config: toml::Value = toml::from_str(&text).unwrap();
        let keys = config.get("challenges").and_then(|c| c.get("keys")).and_then(|k| k.as_array()).cloned().unwrap_or_default();
        assert!(!keys.is_empty(), "{file}: no challenge keys to check");
        for k in keys {
            if let Some(env) = k.get("secret_env").and_then(|v| v.as_str()) {
                assert!(
                    header.contains(&format!("export {env}=")) || header.contains(&format!("{env}=")),
                    "{file}: the header does not set {env}"
                );
            }
            if let Some(path) = k.get("secret_file").and_then(|v| v.as_str()) {
                assert!(header.contains(&format!("> {path}")), "{file}: the header does not write {path}");
            }
        }
    }
}
