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
        ("AssertdLoadShedding", r#"assertd_rpcs_rejected_total{reason="overloaded"} 0"#),
        ("AssertdDenyRatioHigh", r#"assertd_assertions_total{decision="deny"} 0"#),
        ("AssertdDenyRatioHigh", r#"assertd_assertions_total{decision="allow"} 0"#),
    ] {
        assert!(scrape.lines().any(|l| l == line), "{alert}: no `{line}` in\n{scrape}");
    }
}
