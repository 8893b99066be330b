//! A demo relying party for assertd: serves one page whose JavaScript calls
//! `navigator.credentials.create()` and `get()`, and relays the browser's
//! responses to assertd over gRPC (`IssueChallenge`, `RegisterCredential`,
//! `ListCredentials`, `VerifyAssertions`). It keeps no state: challenges are
//! issued and checked by assertd, credentials live in assertd's store, and
//! a user's handle is derived from the user name.
//!
//! ```sh
//! cargo run -p assertd -- serve --config examples/demo-gateway/assertd.toml
//! cargo run -p assertd-demo-gateway
//! # open http://localhost:8080
//! ```
//!
//! Not for production: no sessions, no accounts, no CSRF protection, and
//! anyone who can reach it may register a passkey under any name.

use assertd_api::v1 as pb;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use pb::credential_service_client::CredentialServiceClient;
use pb::verification_service_client::VerificationServiceClient;
use serde::Deserialize;
use serde_json::{Value, json};
use tonic::transport::Channel;

/// The page: HTML, CSS and the WebAuthn JavaScript.
const PAGE: &str = include_str!("../static/index.html");

#[derive(Clone)]
struct App {
    channel: Channel,
    rp_id: String,
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// An HTTP error: status and text.
struct Fail(StatusCode, String);

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

fn unb64(s: &str) -> Result<Vec<u8>, Fail> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).map_err(|_| bad("a field is not base64url"))
}

fn bad(m: &str) -> Fail {
    Fail(StatusCode::BAD_REQUEST, m.to_owned())
}

fn upstream(s: &tonic::Status) -> Fail {
    Fail(StatusCode::BAD_GATEWAY, format!("assertd: {:?}: {}", s.code(), s.message()))
}

/// The user handle of a name: the first 16 bytes of SHA-256(name), so the
/// demo needs no account table.
fn user_handle(name: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, name.as_bytes()).as_ref()[..16].to_vec()
}

/// A verdict as the page shows it.
fn verdict_json(v: Option<&pb::Verdict>) -> Value {
    let Some(v) = v else { return json!({ "decision": "NONE" }) };
    json!({
        "decision": v.decision().as_str_name().trim_start_matches("DECISION_"),
        "risk_score": v.risk_score,
        "retryable": v.retryable,
        "reasons": v.reasons.iter().map(|r| json!({
            "code": r.code().as_str_name().trim_start_matches("REASON_CODE_"),
            "message": r.message,
        })).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
struct Named {
    username: String,
}

impl App {
    /// A challenge for one ceremony of one user: a registration challenge
    /// never opens at sign-in, nor the other way round.
    async fn challenge(&self, user_handle: Vec<u8>, ceremony: pb::Ceremony) -> Result<Vec<u8>, Fail> {
        let mut v = VerificationServiceClient::new(self.channel.clone());
        let r = v
            .issue_challenge(pb::IssueChallengeRequest {
                rp_id: self.rp_id.clone(),
                user_handle,
                ttl_seconds: 120,
                ceremony: ceremony.into(),
            })
            .await;
        Ok(r.map_err(|s| upstream(&s))?.into_inner().challenge)
    }
}

fn name_ok(n: &str) -> Result<(), Fail> {
    if n.is_empty() || n.len() > 64 { Err(bad("a user name is 1 to 64 bytes")) } else { Ok(()) }
}

async fn register_options(State(app): State<App>, Json(r): Json<Named>) -> Result<Json<Value>, Fail> {
    name_ok(&r.username)?;
    let user = user_handle(&r.username);
    let challenge = app.challenge(user.clone(), pb::Ceremony::Registration).await?;
    Ok(Json(json!({ "challenge": b64(&challenge), "rpId": app.rp_id, "userId": b64(&user) })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Registered {
    username: String,
    client_data_json: String,
    attestation_object: String,
    #[serde(default)]
    transports: Vec<String>,
}

async fn register_finish(State(app): State<App>, Json(r): Json<Registered>) -> Result<Json<Value>, Fail> {
    name_ok(&r.username)?;
    let mut c = CredentialServiceClient::new(app.channel.clone());
    let req = pb::RegisterCredentialRequest {
        rp_id: app.rp_id.clone(),
        user_handle: user_handle(&r.username),
        client_data_json: unb64(&r.client_data_json)?,
        attestation_object: unb64(&r.attestation_object)?,
        server_issued_challenge: true,
        transports: r.transports,
        ..Default::default()
    };
    let out = c.register_credential(req).await.map_err(|s| upstream(&s))?.into_inner();
    let mut v = verdict_json(out.verdict.as_ref());
    if let Some(a) = out.attestation {
        v["attestation"] = json!({
            "format": a.format,
            "type": a.r#type().as_str_name().trim_start_matches("ATTESTATION_TYPE_"),
            "trusted": a.trusted,
            "authenticator": a.authenticator_name,
        });
    }
    if let Some(c) = out.credential {
        v["credential_id"] = json!(b64(&c.credential_id));
    }
    Ok(Json(v))
}

async fn login_options(State(app): State<App>, Json(r): Json<Named>) -> Result<Json<Value>, Fail> {
    name_ok(&r.username)?;
    let user = user_handle(&r.username);
    let mut c = CredentialServiceClient::new(app.channel.clone());
    let list = c
        .list_credentials(pb::ListCredentialsRequest { rp_id: app.rp_id.clone(), user_handle: user.clone() })
        .await
        .map_err(|s| upstream(&s))?
        .into_inner();
    let ids: Vec<String> = list.credentials.iter().filter(|c| !c.revoked).map(|c| b64(&c.credential_id)).collect();
    let challenge = app.challenge(user, pb::Ceremony::SignIn).await?;
    Ok(Json(json!({ "challenge": b64(&challenge), "rpId": app.rp_id, "allowCredentials": ids })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Asserted {
    username: String,
    credential_id: String,
    client_data_json: String,
    authenticator_data: String,
    signature: String,
    #[serde(default)]
    user_handle: String,
}

async fn login_finish(State(app): State<App>, Json(r): Json<Asserted>) -> Result<Json<Value>, Fail> {
    name_ok(&r.username)?;
    let user = user_handle(&r.username);
    let mut v = VerificationServiceClient::new(app.channel.clone());
    let a = pb::Assertion {
        request_id: "demo".into(),
        rp_id: app.rp_id.clone(),
        credential_id: unb64(&r.credential_id)?,
        client_data_json: unb64(&r.client_data_json)?,
        authenticator_data: unb64(&r.authenticator_data)?,
        signature: unb64(&r.signature)?,
        user_handle: unb64(&r.user_handle)?,
        expected_user_handle: user,
        server_issued_challenge: true,
        ..Default::default()
    };
    let out = v.verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![a] }).await.map_err(|s| upstream(&s))?.into_inner();
    Ok(Json(verdict_json(out.verdicts.first())))
}

/// Serves the demo on `listener`, relaying to assertd at `assertd` for the
/// relying party `rp_id`, until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, assertd: &str, rp_id: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let channel = Channel::from_shared(assertd.to_owned())?.connect_lazy();
    let app = App { channel, rp_id: rp_id.to_owned() };
    let router = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/register/options", post(register_options))
        .route("/register/finish", post(register_finish))
        .route("/login/options", post(login_options))
        .route("/login/finish", post(login_finish))
        .with_state(app);
    axum::serve(listener, router).await?;
    Ok(())
}
