//! The load generator against the real server: a short mixed run (several
//! algorithms, tampered and unknown-credential assertions, unary and
//! streaming, closed and open loop) must get every verdict it expects.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use clap::Parser;
use common::*;

async fn run(server: &Server, extra: &[&str]) -> serde_json::Value {
    let target = format!("http://{}", server.grpc);
    let mut args = vec!["run", "--target", &target, "--metrics", &server.metrics, "--warmup", "0.3", "--duration", "1.5", "--pool", "256"];
    args.extend_from_slice(extra);
    let argv: Vec<&str> = std::iter::once("x").chain(args.iter().skip(1).copied()).collect();
    let parsed = assertd_loadgen::RunArgs::try_parse_from(argv).unwrap();
    assertd_loadgen::run(parsed).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_load_gets_every_expected_verdict() {
    let server = Server::start(&default_config());
    let mixed = ["--algs", "es256,eddsa,rs256", "--credentials", "12", "--invalid-pct", "10", "--unknown-pct", "10", "--batch", "16"];
    for extra in [vec![], vec!["--stream"], vec!["--mode", "open", "--rate", "50"]] {
        let args: Vec<&str> = mixed.iter().copied().chain(extra.iter().copied()).collect();
        let r = run(&server, &args).await;
        assert_eq!(r["mismatches"], 0, "{r}");
        assert!(r["assertions"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["errors"], serde_json::json!({}), "{r}");
        let d = &r["decisions"];
        for key in ["DECISION_ALLOW:NONE", "DECISION_DENY:REASON_CODE_SIGNATURE_INVALID", "DECISION_DENY:REASON_CODE_CREDENTIAL_NOT_FOUND"]
        {
            assert!(d[key].as_u64().unwrap_or(0) > 0, "{key} missing: {r}");
        }
        assert!(r["latency"]["p99_ms"].as_f64().unwrap() > 0.0);
    }
}
