//! The counter series the chart's alerts take `increase()` or `rate()` of
//! exist at 0 on a freshly started server: a series first exported at its
//! first event reads an increase of 0, and the alert would miss the event
//! (helm/alerts.test.yaml starts these series at 0 for that reason).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[test]
fn a_fresh_server_exports_what_the_alerts_read_at_zero() {
    let server = Server::start(&default_config());
    let scrape = server.scrape();
    for (alert, line) in [
        ("AssertdConfigReloadFailed", r#"assertd_config_reloads_total{result="failed"} 0"#),
        ("AssertdDeferredCounterConflicts", "assertd_deferred_counter_conflicts_total 0"),
        ("AssertdCountersDeferred", "assertd_deferred_counters 0"),
        ("AssertdStoreUnavailable", "assertd_store_up 1"),
        ("AssertdLoadShedding", r#"assertd_rpcs_rejected_total{reason="overloaded"} 0"#),
        ("AssertdDenyRatioHigh", r#"assertd_assertions_total{decision="deny"} 0"#),
        ("AssertdDenyRatioHigh", r#"assertd_assertions_total{decision="allow"} 0"#),
        ("AssertdAvailabilityBudgetBurn", r#"assertd_rpcs_total{rpc="VerifyAssertions",code="INTERNAL"} 0"#),
        ("AssertdAvailabilityBudgetBurn", r#"assertd_rpcs_total{rpc="VerifyAssertionsStream",code="UNAVAILABLE"} 0"#),
        ("AssertdAvailabilityBudgetBurn", r#"assertd_rpcs_total{rpc="VerifyAssertions",code="OK"} 0"#),
    ] {
        assert!(scrape.lines().any(|l| l == line), "{alert}: no `{line}` in\n{scrape}");
    }
}

/// The latency objective's alert reads the bucket `le="0.25"` (the chart's
/// `prometheusRule.slo.latencySeconds`) of served VerifyAssertions calls:
/// the exporter spells the bound as the alert does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latency_objective_reads_a_bucket_the_server_exports() {
    let server = Server::start(&default_config());
    let mut v = server.verifier().await;
    let _ = v.verify_assertions(assertd_api::v1::VerifyAssertionsRequest::default()).await;
    let scrape = server.scrape();
    for le in ["0.25", "1", "0.01"] {
        let bucket = r#"assertd_rpc_duration_seconds_bucket{rpc="VerifyAssertions","#;
        assert!(
            scrape.lines().any(|l| l.starts_with(bucket) && l.contains(&format!(r#"le="{le}"}}"#))),
            "no {bucket}...le=\"{le}\"}} in\n{scrape}"
        );
    }
}
