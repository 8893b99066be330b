//! The demo relying party (examples/demo-gateway) in a real browser:
//! Debian's Chromium, headless, driven over the DevTools protocol with
//! virtual WebAuthn authenticators. The page takes its options from
//! assertd (BeginRegistration / BeginAuthentication), hands the browser's
//! own JSON back, and passes the WebAuthn signals on; the gateway relays to
//! the real assertd binary.
//!
//! Needs `chromium` (`.ci/run` installs it); set `ASSERTD_DEMO_SCREENSHOT`
//! to a path to save a screenshot of the page after the sign-in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::cdp::{Cdp, launch};
use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// A free loopback port (the page's origin must be in assertd's config
/// before either starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn add_authenticator(cdp: &mut Cdp, options: Value) -> String {
    let r = cdp.call("WebAuthn.addVirtualAuthenticator", json!({ "options": options })).await;
    r["authenticatorId"].as_str().unwrap().to_owned()
}

fn reasons(v: &Value) -> Vec<String> {
    v["reasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap().to_owned()).collect()
}

fn config(dir: &Path, origin: &str, roots: &str) -> String {
    format!(
        r#"
[[relying_parties]]
id = "localhost"
name = "assertd demo"
origins = ["{origin}"]
allowed_profiles = ["keys"]

[profiles.keys]
passkey_types = ["device_bound"]
attestation_enforcement = "registration_only"
user_verification = "discouraged"

[challenges]
keys = [{{ id = "demo", secret_file = "{key}" }}]
{roots}"#,
        key = dir.join("challenge.key").display()
    )
}

/// Runs `expr` (a promise) in the page; its value, or `{"error": name}`
/// when it rejects.
async fn run(cdp: &mut Cdp, expr: &str) -> Value {
    cdp.eval(&format!("({expr}).catch(e => ({{ error: e.name, message: e.message }}))")).await
}

/// The first certificate of the last registration's packed statement, as
/// PEM (the page keeps the last credential's JSON).
async fn last_attestation_pem(cdp: &mut Cdp) -> String {
    use base64::Engine;
    let object = cdp.eval("JSON.parse(lastCredential).response.attestationObject").await;
    let object = assertd_testkit::from_b64url(object.as_str().unwrap()).unwrap();
    let value: ciborium::Value = ciborium::from_reader(object.as_slice()).unwrap();
    let map = value.as_map().unwrap();
    let stmt = map.iter().find(|(k, _)| k.as_text() == Some("attStmt")).unwrap().1.as_map().unwrap();
    let x5c = stmt.iter().find(|(k, _)| k.as_text() == Some("x5c")).unwrap().1.as_array().unwrap();
    let der = x5c[0].as_bytes().unwrap();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", base64::engine::general_purpose::STANDARD.encode(der))
}

/// The demo gateway (no WebAuthn logic of its own: options from Begin*,
/// the browser's JSON back) in Chromium with virtual authenticators:
///
/// 1. a synced-style platform passkey registers as discoverable and signs
///    in without a username, through conditional mediation (empty
///    `allowCredentials`), and the page sends the user's signals;
/// 2. a security key under an attested profile: the options ask for
///    `direct`; Chromium's attestation is refused until its root is
///    configured, then trusted;
/// 3. the same security key registering again is refused by the browser
///    itself, because the options exclude its credential;
/// 4. a username-first sign-in lists the user's credential;
/// 5. a sign-in with a deleted credential is answered with the signal,
///    which the page passes to the browser;
/// 6. a signature by another authenticator under a known credential id is
///    denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_runs_every_ceremony_through_assertd_in_chromium() {
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("challenge.key"), "a demo challenge key of at least 32 bytes").unwrap();
    let server = Server::start_in(dir.path(), &config(dir.path(), &origin, ""));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let assertd = format!("http://{}", server.grpc);
    tokio::spawn(async move { assertd_demo_gateway::serve(listener, &assertd, "localhost").await.unwrap() });

    let (_browser, mut cdp) = launch().await;
    cdp.call("WebAuthn.enable", json!({})).await;
    let platform = add_authenticator(
        &mut cdp,
        json!({ "protocol": "ctap2", "transport": "internal", "hasResidentKey": true, "hasUserVerification": true, "isUserVerified": true }),
    )
    .await;
    cdp.call("Page.enable", json!({})).await;
    cdp.call("Page.navigate", json!({ "url": format!("{origin}/") })).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while cdp.eval("document.readyState").await != json!("complete") || cdp.eval("typeof register").await != json!("function") {
        assert!(Instant::now() < deadline, "the page did not load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 1. A platform passkey: discoverable (credProps.rk), no attestation
    //    asked by the default profile.
    let o = cdp.eval("post('/register/options', { username: 'alice' }).then(o => o.options)").await;
    assert_eq!((o["attestation"].clone(), o["extensions"]["credProps"].clone()), (json!("none"), json!(true)), "{o}");
    let v = run(&mut cdp, "register('alice')").await;
    assert_eq!((v["decision"].clone(), v["discoverable"].clone()), (json!("ALLOW"), json!(true)), "{v}");
    let o = cdp.eval("post('/login/options', { username: '' }).then(o => o.options)").await;
    assert_eq!(o["allowCredentials"], json!([]), "a usernameless sign-in lists nothing: {o}");
    // Conditional mediation (the browser's autofill offers the passkey;
    // the virtual authenticator picks it), bounded so a browser that never
    // resolves it fails here rather than hangs.
    let v =
        run(&mut cdp, "Promise.race([signIn('', 'conditional'), new Promise(r => setTimeout(() => r({ timeout: true }), 20000))])").await;
    assert_eq!(v["decision"], json!("ALLOW"), "{v}");
    assert_eq!(v["signalled"], json!(["accepted credentials"]), "{v}");
    assert_eq!(v["signals"]["all_accepted_credentials"]["allAcceptedCredentialIds"].as_array().map(Vec::len), Some(1), "{v}");

    // 2. A security key under the attested profile.
    cdp.call("WebAuthn.removeVirtualAuthenticator", json!({ "authenticatorId": platform })).await;
    let usb = json!({ "protocol": "ctap2", "transport": "usb", "hasResidentKey": false, "hasUserVerification": false });
    let key = add_authenticator(&mut cdp, usb.clone()).await;
    let o = cdp.eval("post('/register/options', { username: 'carol', profile: 'keys' }).then(o => o.options)").await;
    assert_eq!((o["attestation"].clone(), o["hints"].clone()), (json!("direct"), json!(["security-key"])), "{o}");
    let v = run(&mut cdp, "register('carol', 'keys')").await;
    assert_eq!(v["decision"], json!("DENY"), "Chromium's root is not configured yet: {v}");
    // Chromium's virtual authenticators attest with a self-signed batch
    // certificate: configured as a root (a reload), it anchors the next
    // registration.
    let pem = last_attestation_pem(&mut cdp).await;
    std::fs::write(dir.path().join("chromium-root.pem"), &pem).unwrap();
    let roots = format!("\n[[attestation_roots]]\nformat = \"packed\"\nfile = \"{}\"\n", dir.path().join("chromium-root.pem").display());
    std::fs::write(dir.path().join("assertd.toml"), config(dir.path(), &origin, &roots)).unwrap();
    server.wait_for_metric("assertd_config_reloads_total{result=\"ok\"} 1").await;
    let v = run(&mut cdp, "register('carol', 'keys')").await;
    assert_eq!((v["decision"].clone(), v["attestation"]["trusted"].clone()), (json!("ALLOW"), json!(true)), "{v}");

    // 3. The same key again: the options exclude its credential, so the
    //    browser refuses before assertd sees anything.
    let v = run(&mut cdp, "register('carol', 'keys')").await;
    assert_eq!(v["error"], json!("InvalidStateError"), "{v}");

    // 4. Username-first: the options list carol's credential.
    let o = cdp.eval("post('/login/options', { username: 'carol' }).then(o => o.options)").await;
    assert_eq!(o["allowCredentials"].as_array().map(Vec::len), Some(1), "{o}");
    let v = run(&mut cdp, "signIn('carol')").await;
    assert_eq!(v["decision"], json!("ALLOW"), "{v}");

    // 5. alice's passkey deleted at the relying party: her authenticator
    //    still offers it; the verdict carries the signal and the page
    //    passes it on.
    cdp.call("WebAuthn.removeVirtualAuthenticator", json!({ "authenticatorId": key })).await;
    let platform = add_authenticator(
        &mut cdp,
        json!({ "protocol": "ctap2", "transport": "internal", "hasResidentKey": true, "hasUserVerification": true, "isUserVerified": true }),
    )
    .await;
    let v = run(&mut cdp, "register('alice')").await;
    assert_eq!(v["decision"], json!("ALLOW"), "{v}");
    let deleted = v["credential_id"].as_str().unwrap().to_owned();
    server
        .credentials()
        .await
        .delete_credential(assertd_api::v1::DeleteCredentialRequest {
            rp_id: "localhost".into(),
            credential_id: assertd_testkit::from_b64url(&deleted).unwrap(),
        })
        .await
        .unwrap();
    let v = run(&mut cdp, "signIn('')").await;
    assert_eq!((v["decision"].clone(), reasons(&v)), (json!("DENY"), vec!["CREDENTIAL_NOT_FOUND".to_owned()]), "{v}");
    assert_eq!(v["signal_unknown_credential"], json!({ "rpId": "localhost", "credentialId": deleted }), "{v}");
    assert_eq!(v["signalled"], json!(["unknown credential"]), "{v}");
    // Chromium acted on it: the authenticator no longer holds the passkey.
    let left = cdp.call("WebAuthn.getCredentials", json!({ "authenticatorId": platform })).await;
    assert_eq!(left["credentials"], json!([]), "{left}");

    // 6. Another key under carol's credential id: denied. The impostor's
    //    key is one Chromium made (an EdDSA key, as carol's: the first
    //    algorithm the options offer), for dave.
    cdp.call("WebAuthn.removeVirtualAuthenticator", json!({ "authenticatorId": platform })).await;
    let other = add_authenticator(&mut cdp, usb).await;
    let v = run(&mut cdp, "register('dave')").await;
    assert_eq!(v["decision"], json!("ALLOW"), "{v}");
    let made = cdp.call("WebAuthn.getCredentials", json!({ "authenticatorId": other })).await;
    let impostor = made["credentials"][0]["privateKey"].clone();
    let carol_id = cdp.eval("post('/login/options', { username: 'carol' }).then(o => o.options.allowCredentials[0].id)").await;
    use base64::Engine;
    let std_b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(assertd_testkit::from_b64url(s).unwrap());
    cdp.call(
        "WebAuthn.addCredential",
        json!({ "authenticatorId": other, "credential": {
            "credentialId": std_b64(carol_id.as_str().unwrap()),
            "isResidentCredential": false,
            "rpId": "localhost",
            "privateKey": impostor,
            "signCount": 5,
        } }),
    )
    .await;
    let v = run(&mut cdp, "signIn('carol')").await;
    assert_eq!((v["decision"].clone(), reasons(&v).first().cloned()), (json!("DENY"), Some("SIGNATURE_INVALID".to_owned())), "{v}");

    if let Ok(path) = std::env::var("ASSERTD_DEMO_SCREENSHOT") {
        let shot = cdp.call("Page.captureScreenshot", json!({ "format": "png" })).await;
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        std::fs::write(Path::new(&path), png).unwrap();
    }
}
