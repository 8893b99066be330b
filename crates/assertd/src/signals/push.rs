//! Push delivery (RFC 8935): one SET per HTTP POST to the receiver's
//! endpoint over TLS, on one kept-alive HTTP/1.1 connection per receiver.
//! 202 Accepted (any 2xx) is delivered; 400 is the receiver refusing the
//! SET (its JSON `err`, RFC 8935 §2.4, is logged): sending it again would
//! not help; anything else (401, 403, 429, 5xx, a timeout, a refused
//! connection) may pass, so the SET is tried again.

use crate::config::Receiver;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::sync::Arc;

/// The most of a response body read (an error's JSON).
const MAX_RESPONSE_BYTES: usize = 16 * 1024;

/// How a push went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// Accepted.
    Delivered,
    /// Refused for good (400): the receiver's `err`.
    Rejected(String),
    /// Not delivered this time: why.
    Failed(String),
}

/// A receiver's connection, opened on first use and again after a failure.
pub struct Pusher {
    receiver: Arc<Receiver>,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl Pusher {
    /// A pusher for `receiver` (connects on the first push).
    pub fn new(receiver: Arc<Receiver>) -> Self {
        Self { receiver, conn: None }
    }

    /// POSTs one SET, within the receiver's timeout.
    pub async fn push(&mut self, set: &str) -> Pushed {
        let timeout = self.receiver.timeout;
        let outcome = match tokio::time::timeout(timeout, self.try_push(set)).await {
            Ok(o) => o,
            Err(_) => Pushed::Failed(format!("no answer within {} s", timeout.as_secs())),
        };
        if matches!(outcome, Pushed::Failed(_)) {
            self.conn = None;
        }
        outcome
    }

    async fn try_push(&mut self, set: &str) -> Pushed {
        let conn = match self.conn.take() {
            Some(c) if !c.is_closed() => c,
            _ => match connect(&self.receiver).await {
                Ok(c) => c,
                Err(e) => return Pushed::Failed(e),
            },
        };
        let mut conn = conn;
        if let Err(e) = conn.ready().await {
            return Pushed::Failed(format!("connection: {e}"));
        }
        let r = &self.receiver;
        let authority = r.endpoint.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        let path = r.endpoint.path_and_query().map_or("/", |p| p.as_str());
        let mut req = hyper::Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/secevent+jwt")
            .header(hyper::header::ACCEPT, "application/json");
        if let Some(a) = &r.authorization {
            req = req.header(hyper::header::AUTHORIZATION, a.as_str());
        }
        let req = match req.body(Full::new(Bytes::from(set.to_owned()))) {
            Ok(req) => req,
            Err(e) => return Pushed::Failed(format!("request: {e}")),
        };
        let resp = match conn.send_request(req).await {
            Ok(resp) => resp,
            Err(e) => return Pushed::Failed(format!("request: {e}")),
        };
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        self.conn = Some(conn);
        if status.is_success() {
            Pushed::Delivered
        } else if status == hyper::StatusCode::BAD_REQUEST {
            let err = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("err").and_then(|e| e.as_str()).map(|e| assertd_verify::truncate(e).to_string()))
                .unwrap_or_else(|| "(no err)".to_owned());
            Pushed::Rejected(err)
        } else {
            Pushed::Failed(format!("HTTP {status}"))
        }
    }
}

/// Opens a connection to the receiver (TLS unless `insecure_http`).
async fn connect(r: &Receiver) -> Result<SendRequest<Full<Bytes>>, String> {
    let host = r.endpoint.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = r.endpoint.port_u16().unwrap_or(if r.tls.is_some() { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    match &r.tls {
        Some(tls) => {
            let name = rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| format!("server name {host}: {e}"))?;
            let stream =
                tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp).await.map_err(|e| format!("TLS with {host}: {e}"))?;
            handshake(stream).await
        }
        None => handshake(tcp).await,
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}
