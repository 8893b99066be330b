//! The demo relying party (examples/demo-gateway) in a real browser:
//! Debian's Chromium, headless, driven over the DevTools protocol with
//! virtual WebAuthn authenticators. The page registers a passkey and signs
//! in with it through `navigator.credentials`; the gateway relays to the
//! real assertd binary. A signature made by another authenticator is denied.
//!
//! Needs `chromium` (`.ci/run` installs it); set `ASSERTD_DEMO_SCREENSHOT`
//! to a path to save a screenshot of the page after the sign-in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A DevTools session on one page.
struct Cdp {
    socket: Socket,
    next: u64,
    session: Option<String>,
}

impl Cdp {
    /// Sends a command (to the page's session, once attached) and waits for
    /// its answer, skipping events.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.socket.send(Message::text(msg.to_string())).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let next = tokio::time::timeout_at(deadline.into(), self.socket.next()).await.unwrap_or_else(|_| panic!("{method}: no answer"));
            let Some(Ok(Message::Text(text))) = next else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates a promise-returning expression in the page; its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({ "expression": expression, "awaitPromise": true, "returnByValue": true })).await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }
}

/// Headless Chromium with a DevTools port; killed on drop.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn launch() -> (Browser, Cdp) {
    let profile = tempfile::tempdir().unwrap();
    let child = Command::new("chromium")
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0", "--window-size=900,600"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium is installed (Debian package chromium; .ci/run installs it)");
    let port_file = profile.path().join("DevToolsActivePort");
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        if let Ok(t) = std::fs::read_to_string(&port_file)
            && t.lines().count() >= 2
        {
            break t;
        }
        assert!(Instant::now() < deadline, "chromium did not open its DevTools port");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut lines = text.lines();
    let url = format!("ws://127.0.0.1:{}{}", lines.next().unwrap(), lines.next().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut cdp = Cdp { socket, next: 0, session: None };
    let target = cdp.call("Target.createTarget", json!({ "url": "about:blank" })).await;
    let attached = cdp.call("Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true })).await;
    cdp.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
    (Browser { child, _profile: profile }, cdp)
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_registers_and_signs_in_through_the_demo_page_in_chromium() {
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("challenge.key"), "a demo challenge key of at least 32 bytes").unwrap();
    let config = format!(
        "[[relying_parties]]\nid = \"localhost\"\norigins = [\"{origin}\"]\n\n[challenges]\nkeys = [{{ id = \"demo\", secret_file = \"{}\" }}]\n",
        dir.path().join("challenge.key").display()
    );
    let server = Server::start(&config);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let assertd = format!("http://{}", server.grpc);
    tokio::spawn(async move { assertd_demo_gateway::serve(listener, &assertd, "localhost").await.unwrap() });

    let (_browser, mut cdp) = launch().await;
    cdp.call("WebAuthn.enable", json!({})).await;
    // A platform authenticator with user verification and resident keys.
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

    // Register (packed attestation from the virtual authenticator), sign in.
    let v = cdp.eval("register('alice')").await;
    assert_eq!(v["decision"], json!("ALLOW"), "{v}");
    assert_eq!(v["attestation"]["format"], json!("packed"), "{v}");
    assert_eq!(v["attestation"]["trusted"], json!(false), "Chromium's test root is not configured: {v}");
    let v = cdp.eval("signIn('alice')").await;
    // Allowed; the attestation was not trusted, a risk signal.
    assert_eq!((v["decision"].clone(), reasons(&v)), (json!("ALLOW"), vec!["UNATTESTED_CREDENTIAL".to_owned()]), "{v}");

    // A second authenticator (a USB security key, no attestation asked)
    // registers its own passkey for bob and signs in with it.
    cdp.call("WebAuthn.removeVirtualAuthenticator", json!({ "authenticatorId": platform })).await;
    let key = add_authenticator(
        &mut cdp,
        json!({ "protocol": "ctap2", "transport": "usb", "hasResidentKey": false, "hasUserVerification": false }),
    )
    .await;
    let v = cdp.eval("register('bob', 'none')").await;
    assert_eq!((v["decision"].clone(), v["attestation"]["format"].clone()), (json!("ALLOW"), json!("none")), "{v}");
    let v = cdp.eval("signIn('bob')").await;
    assert_eq!(v["decision"], json!("ALLOW"), "{v}");
    // Without UV, the default profile steps up or allows with the signal.
    assert!(reasons(&v).contains(&"USER_NOT_VERIFIED".to_owned()), "{v}");

    // The key now also holds a credential with alice's credential id but its
    // own private key: its signature for alice is denied.
    let alice_id = cdp.eval("post('/login/options', {username: 'alice'}).then(o => o.allowCredentials[0])").await;
    let other_key =
        ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &ring::rand::SystemRandom::new())
            .unwrap();
    let pkcs8 = assertd_testkit::b64url(other_key.as_ref());
    use base64::Engine;
    let std_b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(assertd_testkit::from_b64url(s).unwrap());
    cdp.call(
        "WebAuthn.addCredential",
        json!({ "authenticatorId": key, "credential": {
            "credentialId": std_b64(alice_id.as_str().unwrap()),
            "isResidentCredential": false,
            "rpId": "localhost",
            "privateKey": std_b64(&pkcs8),
            "signCount": 5,
        } }),
    )
    .await;
    let v = cdp.eval("signIn('alice')").await;
    assert_eq!((v["decision"].clone(), reasons(&v).first().cloned()), (json!("DENY"), Some("SIGNATURE_INVALID".to_owned())), "{v}");

    if let Ok(path) = std::env::var("ASSERTD_DEMO_SCREENSHOT") {
        cdp.eval("signIn('bob')").await;
        let shot = cdp.call("Page.captureScreenshot", json!({ "format": "png" })).await;
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        std::fs::write(Path::new(&path), png).unwrap();
    }
}
