//! `assertd report adoption` end to end: a population imported with
//! registrations spread over weeks, a policy preview written to a file, the
//! page written from both, then opened in headless Chromium: every chart
//! is drawn (its marks have a size on the page), nothing is fetched, and
//! the numbers are the population's.
//!
//! Needs `chromium` (`.ci/run` installs it); set `ASSERTD_REPORT_SCREENSHOT`
//! to a path to save a screenshot of the page (docs/adoption-report.png).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use assertd_testkit::{Alg, SoftAuthenticator, b64url};
use common::cdp::launch;
use common::{ORIGIN, RP};
use serde_json::json;
use std::process::Command;

const DAY: i64 = 86_400_000;
/// Monday 2026-09-07 00:00 UTC.
const START: i64 = 1_788_739_200_000;

fn config(dir: &std::path::Path, names: &std::path::Path) -> String {
    format!(
        r#"data_dir = "{}"

[[relying_parties]]
id = "{RP}"
origins = ["{ORIGIN}"]
default_profile = "workforce"
allowed_profiles = ["admins"]

[profiles.workforce]

[profiles.admins]
passkey_types = ["device_bound"]

[metadata]
aaguid_names_file = "{}"
"#,
        dir.join("data").display(),
        names.display()
    )
}

fn assertd(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_assertd")).args(args).env("ASSERTD_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "assertd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adoption_report_draws_every_chart_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let names = dir.path().join("names.json");
    std::fs::write(&names, r#"{"aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa": "Example <Passkey> Provider"}"#).unwrap();
    let cfg = dir.path().join("assertd.toml");
    std::fs::write(&cfg, config(dir.path(), &names)).unwrap();
    // 60 users over 12 weeks: each a synced passkey; every third also a
    // security key (attested every other time); two revoked.
    let mut lines = Vec::new();
    let key = SoftAuthenticator::new(Alg::Es256).public_key_cose;
    let mut n = 0;
    for u in 0..60i64 {
        let created = START + (u / 5) * 7 * DAY + DAY;
        let mut cred = |synced: bool, attested: bool, aaguid: &str, revoked: bool| {
            n += 1;
            lines.push(
                json!({
                    "rp_id": RP, "credential_id": b64url(format!("cred-{n}").as_bytes()), "user_handle": b64url(format!("user-{u}").as_bytes()),
                    "public_key_cose": b64url(&key), "backup_eligible": synced, "backup_state": synced, "attested": attested,
                    "aaguid_vouched": attested, "aaguid": aaguid, "created_at_ms": created, "revoked": revoked,
                })
                .to_string(),
            );
        };
        cred(true, false, "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa", u == 7);
        if u % 3 == 0 {
            cred(false, u % 2 == 0, "cb69481e-8ff7-4039-93ec-0a2729a154a8", u == 9);
        }
    }
    let import = dir.path().join("creds.jsonl");
    std::fs::write(&import, lines.join("\n")).unwrap();
    assertd(&["credentials", "import", import.to_str().unwrap(), "--config", cfg.to_str().unwrap()]);
    // A preview of refusing synced passkeys, then the page with it.
    let candidate = dir.path().join("candidate.toml");
    std::fs::write(
        &candidate,
        config(dir.path(), &names).replace("[profiles.workforce]\n", "[profiles.workforce]\npasskey_types = [\"device_bound\"]\n"),
    )
    .unwrap();
    let preview = dir.path().join("preview.jsonl");
    let (c, p) = (candidate.to_str().unwrap(), preview.to_str().unwrap());
    assertd(&["policy", "preview", "--config", c, "--in-force", cfg.to_str().unwrap(), "--out", p]);
    let page = dir.path().join("report.html");
    assertd(&["report", "adoption", "--config", cfg.to_str().unwrap(), "--preview", p, "--out", page.to_str().unwrap()]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("Example &lt;Passkey&gt; Provider"), "names are escaped");
    assert!(!html.contains("<Passkey>"));

    let (_browser, mut cdp) = launch().await;
    cdp.call("Emulation.setDeviceMetricsOverride", json!({ "width": 820, "height": 1400, "deviceScaleFactor": 1, "mobile": false })).await;
    cdp.call("Page.enable", json!({})).await;
    cdp.call("Page.navigate", json!({ "url": format!("file://{}", page.display()) })).await;
    let mut charts = serde_json::Value::Null;
    for _ in 0..50 {
        charts = cdp
            .eval(
                r#"(async () => document.readyState === "complete" ? [...document.querySelectorAll("svg.chart")].map(svg => {
                    const box = svg.getBoundingClientRect();
                    const marks = [...svg.querySelectorAll(".mark")].filter(m => { const b = m.getBBox(); return b.width > 0 && (b.height > 0 || m.tagName === "polyline"); });
                    return { label: svg.getAttribute("aria-label"), width: box.width, height: box.height, marks: marks.length };
                }) : null)()"#,
            )
            .await;
        if charts.is_array() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let charts = charts.as_array().expect("the page loaded");
    let labels: Vec<&str> = charts.iter().map(|c| c["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        [
            "credentials by kind over time",
            "credentials by model",
            "users by strongest credential",
            "users without a usable credential per profile",
            "preview verdicts per profile"
        ]
    );
    for c in charts {
        assert!(c["width"].as_f64().unwrap() > 100.0 && c["height"].as_f64().unwrap() > 50.0, "{c}");
        assert!(c["marks"].as_u64().unwrap() > 0, "nothing drawn in {c}");
    }
    // Two lines of 12 weekly points each; two models, split vouched /
    // claimed; three user classes.
    assert_eq!(charts[0]["marks"], 2 + 2 * 12);
    assert_eq!(charts[1]["marks"], 3);
    assert_eq!(charts[2]["marks"], 3);
    // Nothing loaded from anywhere: no element names a resource.
    let fetched = cdp.eval(r#"(async () => document.querySelectorAll("[src],[href],link,script,img,iframe,object").length)()"#).await;
    assert_eq!(fetched, 0);
    let text = cdp.eval(r#"(async () => document.body.innerText)()"#).await;
    let text = text.as_str().unwrap();
    // 59 unrevoked synced, 19 unrevoked keys; 59 users with one (user-7's
    // only credential is revoked); the preview leaves the 40 users with
    // only a synced passkey without a usable one (user-7 had none).
    assert!(text.contains("78 credentials of 59 users (2 revoked)"), "{text}");
    assert!(text.contains("40 users listed"), "{text}");
    if let Ok(path) = std::env::var("ASSERTD_REPORT_SCREENSHOT") {
        use base64::Engine as _;
        let shot = cdp.call("Page.captureScreenshot", json!({ "format": "png", "captureBeyondViewport": true })).await;
        std::fs::write(path, base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap()).unwrap();
    }
}
