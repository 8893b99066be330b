//! A demo relying party for assertd: serves one page whose JavaScript calls
//! `navigator.credentials.create()` and `get()`, and relays to assertd over
//! gRPC. It keeps no WebAuthn logic of its own: the options come from
//! `BeginRegistration` / `BeginAuthentication` (the page parses them with
//! `PublicKeyCredential.parse*OptionsFromJSON()`), the page's
//! `credential.toJSON()` goes back as `response_json`, and after a sign-in
//! the page gets what the WebAuthn signal methods need (the verdict's
//! `signal_unknown_credential_json`, `GetUserSignals`). It keeps no state
//! either: challenges are issued and checked by assertd, credentials live
//! in assertd's store, and a user's handle is derived from the user name.
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
struct Begin {
    /// Empty at sign-in: a discoverable (usernameless) sign-in.
    #[serde(default)]
    username: String,
    #[serde(default)]
    profile: String,
}

/// What the page posts back: `JSON.stringify(credential.toJSON())`, relayed
/// to assertd as it came (a string, so not even member order changes).
#[derive(Deserialize)]
struct Finish {
    #[serde(default)]
    username: String,
    #[serde(default)]
    profile: String,
    credential: String,
}

fn name_ok(n: &str) -> Result<(), Fail> {
    if n.is_empty() || n.len() > 64 { Err(bad("a user name is 1 to 64 bytes")) } else { Ok(()) }
}

/// The user a sign-in names: none for a usernameless one.
fn signing_in(username: &str) -> Result<Vec<u8>, Fail> {
    if username.is_empty() {
        return Ok(Vec::new());
    }
    name_ok(username)?;
    Ok(user_handle(username))
}

fn options(json: &str) -> Result<Json<Value>, Fail> {
    let options: Value = serde_json::from_str(json).map_err(|e| Fail(StatusCode::BAD_GATEWAY, format!("assertd's options: {e}")))?;
    Ok(Json(json!({ "options": options })))
}

async fn register_options(State(app): State<App>, Json(r): Json<Begin>) -> Result<Json<Value>, Fail> {
    name_ok(&r.username)?;
    let mut c = CredentialServiceClient::new(app.channel.clone());
    let begin = pb::BeginRegistrationRequest {
        rp_id: app.rp_id.clone(),
        user_handle: user_handle(&r.username),
        user_name: r.username,
        profile: r.profile,
        ..Default::default()
    };
    options(&c.begin_registration(begin).await.map_err(|s| upstream(&s))?.into_inner().options_json)
}

async fn register_finish(State(app): State<App>, Json(r): Json<Finish>) -> Result<Json<Value>, Fail> {
    name_ok(&r.username)?;
    let mut c = CredentialServiceClient::new(app.channel.clone());
    let req = pb::RegisterCredentialRequest {
        rp_id: app.rp_id.clone(),
        user_handle: user_handle(&r.username),
        profile: r.profile,
        server_issued_challenge: true,
        response_json: r.credential,
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
        v["discoverable"] = json!(c.discoverable);
    }
    Ok(Json(v))
}

async fn login_options(State(app): State<App>, Json(r): Json<Begin>) -> Result<Json<Value>, Fail> {
    let mut v = VerificationServiceClient::new(app.channel.clone());
    let begin = pb::BeginAuthenticationRequest {
        rp_id: app.rp_id.clone(),
        user_handle: signing_in(&r.username)?,
        profile: r.profile,
        ..Default::default()
    };
    options(&v.begin_authentication(begin).await.map_err(|s| upstream(&s))?.into_inner().options_json)
}

async fn login_finish(State(app): State<App>, Json(r): Json<Finish>) -> Result<Json<Value>, Fail> {
    let mut v = VerificationServiceClient::new(app.channel.clone());
    // Username-first: the verdict must name that user. Usernameless: sign
    // in whoever the verdict names.
    let a = pb::Assertion {
        request_id: "demo".into(),
        rp_id: app.rp_id.clone(),
        response_json: r.credential,
        expected_user_handle: signing_in(&r.username)?,
        server_issued_challenge: true,
        profile: r.profile,
        ..Default::default()
    };
    let out = v
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![a], ..Default::default() })
        .await
        .map_err(|s| upstream(&s))?
        .into_inner();
    let verdict = out.verdicts.first();
    let mut body = verdict_json(verdict);
    let Some(verdict) = verdict else { return Ok(Json(body)) };
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    if let Some(info) = &verdict.authenticator {
        body["authenticator"] = json!(info.authenticator_name);
        body["backup_state_changed"] = json!(info.backup_state_changed);
    }
    if !verdict.signal_unknown_credential_json.is_empty() {
        body["signal_unknown_credential"] = parse(&verdict.signal_unknown_credential_json);
    }
    let user = verdict.authenticator.as_ref().map(|a| a.user_handle.clone()).unwrap_or_default();
    if verdict.decision() == pb::Decision::Allow && !user.is_empty() {
        let signals =
            pb::GetUserSignalsRequest { rp_id: app.rp_id.clone(), user_handle: user, user_name: r.username, ..Default::default() };
        let s = v.get_user_signals(signals).await.map_err(|s| upstream(&s))?.into_inner();
        body["signals"] = json!({
            "all_accepted_credentials": parse(&s.all_accepted_credentials_json),
            "current_user_details": parse(&s.current_user_details_json),
        });
    }
    Ok(Json(body))
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
