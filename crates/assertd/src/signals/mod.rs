//! The event log as an OpenID Shared Signals Framework transmitter: CAEP
//! events as Security Event Tokens signed ES256, pushed to the receivers
//! `[shared_signals]` lists (RFC 8935), one replica per receiver at a time;
//! the signing key published as a JWK Set, and the transmitter's
//! configuration metadata, on the metrics listener.

pub mod caep;
pub mod deliver;
pub mod push;

use crate::config::SharedSignals;
use crate::engine::Engine;
use serde_json::{Value, json};
use std::sync::Arc;

/// Where the metrics listener serves the JWK Set.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Where the metrics listener serves the transmitter's configuration
/// metadata (SSF 1.0 §6.2: `/.well-known/ssf-configuration`).
pub const CONFIGURATION_PATH: &str = "/.well-known/ssf-configuration";

/// Starts one deliverer per receiver; they end (giving their leases up)
/// when the server drains: await the handles before exiting. A
/// receiver this store has not seen starts after the newest event now:
/// what happens from this start on is delivered, the past is not replayed.
pub async fn start(engine: &Arc<Engine>, signals: &Arc<SharedSignals>) -> Vec<tokio::task::JoinHandle<()>> {
    let holder = holder_id();
    let newest = match engine.event_bounds().await {
        Ok((_, newest)) => newest,
        Err(e) => {
            // Known again at the first claim that reaches the store.
            tracing::warn!(error = %e, "shared signals: reading the event log failed; new receivers start at its newest event when it answers");
            i64::MAX
        }
    };
    let handles = signals
        .receivers
        .iter()
        .map(|r| tokio::spawn(deliver::run(Arc::downgrade(engine), signals.clone(), r.clone(), holder.clone(), newest)))
        .collect();
    tracing::info!(receivers = signals.receivers.len(), holder, issuer = %signals.issuer, "shared signals: transmitter started");
    handles
}

/// This process's name in delivery leases: the host and a random part, so
/// a restarted pod never mistakes its predecessor's lease for its own.
fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let mut random = [0u8; 6];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
    let tail: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}-{}-{tail}", std::process::id())
}

/// The JWK Set receivers verify SETs with.
pub fn jwks(signals: &SharedSignals) -> Value {
    json!({ "keys": [signals.signer.jwk()] })
}

/// The transmitter configuration metadata (SSF 1.0 §6.1): the issuer, where
/// its keys are (the issuer's origin, [`JWKS_PATH`]), and push delivery.
/// Streams are configured by the operator (`[shared_signals]`), so no
/// management endpoints are advertised. Served at [`CONFIGURATION_PATH`]
/// followed by the issuer's path, if any (SSF 1.0 §6.2).
pub fn configuration(signals: &SharedSignals) -> Value {
    let origin = url::Url::parse(&signals.issuer).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
    json!({
        "spec_version": "1_0",
        "issuer": signals.issuer,
        "jwks_uri": format!("{origin}{JWKS_PATH}"),
        "delivery_methods_supported": ["urn:ietf:rfc:8935"],
    })
}
