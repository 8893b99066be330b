//! Headless Chromium (Debian's `chromium`; `.ci/run` installs it) driven
//! over the DevTools protocol: the browser tests' one client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A DevTools session on one page.
pub struct Cdp {
    socket: Socket,
    next: u64,
    pub session: Option<String>,
}

impl Cdp {
    /// Sends a command (to the page's session, once attached) and waits for
    /// its answer, skipping events.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
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
    pub async fn eval(&mut self, expression: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({ "expression": expression, "awaitPromise": true, "returnByValue": true })).await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }
}

/// Headless Chromium with a DevTools port; killed on drop.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn launch() -> (Browser, Cdp) {
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
