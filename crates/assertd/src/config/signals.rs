//! `[events]` (the log `WatchEvents` streams) and `[shared_signals]`: the
//! same events pushed as OpenID Shared Signals (CAEP) Security Event Tokens
//! to configured receivers (RFC 8935 push delivery).
//!
//! ```toml
//! [shared_signals]
//! issuer = "https://assertd.example.com/"          # the SETs' iss (https)
//! signing_key_file = "/etc/assertd/ssf/key.pem"     # PKCS#8 ECDSA P-256
//! key_id = "2026-12"
//!
//! [[shared_signals.receivers]]
//! name = "gateway"                                  # metric label; lease
//! endpoint_url = "https://gateway.example.com/ssf"  # RFC 8935 push
//! audience = "https://gateway.example.com"          # the SETs' aud
//! authorization_header_file = "/etc/assertd/ssf/gateway-auth"
//! rp_ids = ["example.com"]                          # default: every RP
//! events = ["session-revoked", "credential-change"] # default: all four
//! ```
//!
//! Read at start (a reload that changes it asks for a restart).

use super::invalid::Invalid;
use assertd_verify::security_event::EventSigner;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Receivers one deployment may push to.
pub const MAX_RECEIVERS: usize = 16;

/// The CAEP event types a receiver may be sent (the last segment of their
/// URIs under `https://schemas.openid.net/secevent/caep/event-type/`).
pub const EVENT_TYPES: [&str; 4] = ["session-revoked", "credential-change", "assurance-level-change", "risk-level-change"];

/// `[events]`: the event log `WatchEvents` streams.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    /// Days an event is kept: a watcher that reconnects within them misses
    /// nothing (1 to 365).
    #[serde(default = "default_event_retention")]
    pub retention_days: u32,
}

impl Default for EventsSection {
    fn default() -> Self {
        Self { retention_days: default_event_retention() }
    }
}

fn default_event_retention() -> u32 {
    7
}

/// `[shared_signals]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedSignalsSection {
    /// The transmitter's issuer identifier: every SET's `iss` (an https URL
    /// without query or fragment, SSF 1.0 §6.1).
    #[serde(default)]
    pub issuer: String,
    /// The ES256 signing key, PKCS#8 PEM.
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
    /// The key's `kid`, in every SET's header and the published JWK Set.
    #[serde(default)]
    pub key_id: String,
    /// Where SETs are pushed; none: Shared Signals are off.
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
}

/// One `[[shared_signals.receivers]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// A short name (letters, digits, `-`, `_`): the metric label, and the
    /// key of its cursor in the store (renaming starts it again at the
    /// newest event).
    pub name: String,
    /// The receiver's push endpoint (RFC 8935), https.
    pub endpoint_url: String,
    /// The SETs' `aud`.
    pub audience: String,
    /// A file holding the `Authorization` header's value the receiver asked
    /// for (e.g. `Bearer …`), sent with every push.
    #[serde(default)]
    pub authorization_header_file: Option<PathBuf>,
    /// Only these relying parties' events (default: every one).
    #[serde(default)]
    pub rp_ids: Option<Vec<String>>,
    /// Only these event types (default: all of [`EVENT_TYPES`]).
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// CA certificates (PEM) the endpoint's certificate must chain to
    /// (default: the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds one push may take.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Seconds a SET the receiver keeps failing (5xx, unreachable) is
    /// retried, with backoff, before it is given up (counted `abandoned`)
    /// and the next one is sent.
    #[serde(default = "default_give_up")]
    pub give_up_after_seconds: u64,
    /// Push over plaintext `http://` (tests on loopback only: SETs carry
    /// user handles and the authorization header).
    #[serde(default)]
    pub insecure_http: bool,
}

fn default_timeout() -> u64 {
    10
}
fn default_give_up() -> u64 {
    86_400
}

/// `[shared_signals]` compiled: the key and the receivers.
#[derive(Debug)]
pub struct SharedSignals {
    /// `iss`.
    pub issuer: String,
    /// The signing key.
    pub signer: EventSigner,
    /// Where to push.
    pub receivers: Vec<Arc<Receiver>>,
}

/// One receiver, ready to push to.
#[derive(Debug)]
pub struct Receiver {
    /// Its name.
    pub name: String,
    /// The endpoint.
    pub endpoint: http::Uri,
    /// `aud`.
    pub audience: String,
    /// The `Authorization` header's value.
    pub authorization: Option<String>,
    /// Relying parties (`None`: all).
    pub rp_ids: Option<Vec<String>>,
    /// Event types sent.
    pub events: Vec<String>,
    /// TLS (`None`: plaintext, `insecure_http`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Per push.
    pub timeout: Duration,
    /// Per SET.
    pub give_up_after: Duration,
}

impl SharedSignalsSection {
    /// Checks and loads the section; `None` when no receiver is configured.
    pub fn compile(&self) -> Result<Option<SharedSignals>, Invalid> {
        if self.receivers.is_empty() {
            return Ok(None);
        }
        let key = "shared_signals";
        let issuer = url::Url::parse(&self.issuer).map_err(|e| Invalid::new(format!("{key}.issuer"), format!("is not a URL: {e}")))?;
        if issuer.scheme() != "https" || issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(Invalid::new(format!("{key}.issuer"), "is an https URL without query or fragment (SSF 1.0 §6.1)"));
        }
        let path = self.signing_key_file.as_ref().ok_or_else(|| Invalid::new(format!("{key}.signing_key_file"), "is required"))?;
        let der = PrivateKeyDer::from_pem_file(path).map_err(|e| {
            Invalid::new(format!("{key}.signing_key_file"), format!("cannot read a PEM private key from {}: {e}", path.display()))
        })?;
        if self.key_id.is_empty() || self.key_id.len() > 128 {
            return Err(Invalid::new(format!("{key}.key_id"), "is 1 to 128 characters"));
        }
        let rng = ring::rand::SystemRandom::new();
        let signer = EventSigner::from_pkcs8(der.secret_der(), &self.key_id, &rng)
            .map_err(|e| Invalid::new(format!("{key}.signing_key_file"), e.to_string()))?;
        if self.receivers.len() > MAX_RECEIVERS {
            return Err(Invalid::new(format!("{key}.receivers"), format!("at most {MAX_RECEIVERS}")));
        }
        let mut receivers = Vec::with_capacity(self.receivers.len());
        for (i, r) in self.receivers.iter().enumerate() {
            if self.receivers[..i].iter().any(|o| o.name == r.name) {
                return Err(Invalid::new(format!("{key}.receivers[{i}].name"), format!("{:?} is named twice", r.name)));
            }
            receivers.push(Arc::new(r.compile(&format!("{key}.receivers[{i}]"))?));
        }
        Ok(Some(SharedSignals { issuer: self.issuer.clone(), signer, receivers }))
    }
}

impl ReceiverConfig {
    fn compile(&self, key: &str) -> Result<Receiver, Invalid> {
        let field = |f: &str| format!("{key}.{f}");
        let name_ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.name.is_empty() || self.name.len() > 64 || !self.name.chars().all(name_ok) {
            return Err(Invalid::new(field("name"), "is 1 to 64 letters, digits, '-' and '_'"));
        }
        let endpoint: http::Uri =
            self.endpoint_url.parse().map_err(|e| Invalid::new(field("endpoint_url"), format!("is not a URL: {e}")))?;
        let tls = match (endpoint.scheme_str(), self.insecure_http) {
            (Some("https"), _) => Some(Arc::new(client_tls(self.ca_file.as_ref()).map_err(|e| Invalid::new(field("ca_file"), e))?)),
            (Some("http"), true) => None,
            (Some("http"), false) => {
                return Err(Invalid::new(
                    field("endpoint_url"),
                    "is https (plaintext only with insecure_http = true, for tests on loopback)",
                ));
            }
            _ => return Err(Invalid::new(field("endpoint_url"), "is an https URL")),
        };
        if endpoint.host().is_none_or(str::is_empty) {
            return Err(Invalid::new(field("endpoint_url"), "names a host"));
        }
        if self.audience.is_empty() {
            return Err(Invalid::new(field("audience"), "is required (the SETs' aud)"));
        }
        let authorization = match &self.authorization_header_file {
            None => None,
            Some(p) => {
                let v = std::fs::read_to_string(p)
                    .map_err(|e| Invalid::new(field("authorization_header_file"), format!("{}: {e}", p.display())))?;
                let v = v.trim_end_matches(['\n', '\r']).to_owned();
                if v.is_empty() || http::HeaderValue::from_str(&v).is_err() {
                    return Err(Invalid::new(field("authorization_header_file"), "holds one header value"));
                }
                Some(v)
            }
        };
        let events = match &self.events {
            None => EVENT_TYPES.iter().map(|&e| e.to_owned()).collect(),
            Some(list) => {
                if let Some(bad) = list.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
                    return Err(Invalid::new(field("events"), format!("{bad:?} is not one of {EVENT_TYPES:?}")));
                }
                list.clone()
            }
        };
        if !(1..=300).contains(&self.timeout_seconds) {
            return Err(Invalid::new(field("timeout_seconds"), "is 1 to 300"));
        }
        if !(60..=30 * 86_400).contains(&self.give_up_after_seconds) {
            return Err(Invalid::new(field("give_up_after_seconds"), "is 60 to 2592000 (30 days)"));
        }
        Ok(Receiver {
            name: self.name.clone(),
            endpoint,
            audience: self.audience.clone(),
            authorization,
            rp_ids: self.rp_ids.clone(),
            events,
            tls,
            timeout: Duration::from_secs(self.timeout_seconds),
            give_up_after: Duration::from_secs(self.give_up_after_seconds),
        })
    }
}

/// A TLS client trusting `ca_file`'s certificates, or the system's.
fn client_tls(ca_file: Option<&PathBuf>) -> Result<rustls::ClientConfig, String> {
    let certs: Vec<CertificateDer<'static>> = match ca_file {
        Some(p) => {
            CertificateDer::pem_file_iter(p).and_then(|i| i.collect::<Result<_, _>>()).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => rustls_native_certs::load_native_certs().certs,
    };
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err("no CA certificate found (set ca_file)".to_owned());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use base64::Engine as _;

    fn key_file(dir: &std::path::Path) -> PathBuf {
        let der = EventSigner::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let path = dir.join("key.pem");
        std::fs::write(&path, format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")).unwrap();
        path
    }

    fn section(dir: &std::path::Path, receiver: &str) -> SharedSignalsSection {
        let text = format!(
            "issuer = \"https://assertd.example.com/\"\nsigning_key_file = \"{}\"\nkey_id = \"k1\"\n[[receivers]]\n{receiver}",
            key_file(dir).display()
        );
        toml::from_str(&text).unwrap()
    }

    fn refused(s: &SharedSignalsSection) -> String {
        s.compile().map(|_| ()).unwrap_err().key
    }

    #[test]
    fn receivers_are_checked_and_https_by_default() {
        let dir = tempfile::tempdir().unwrap();
        // A named CA file without a CA is refused (the system's roots are
        // used only when none is named).
        let https = "name = \"gw\"\nendpoint_url = \"https://gw.example.com/ssf\"\naudience = \"gw\"\nca_file = \"/dev/null\"\n";
        assert_eq!(refused(&section(dir.path(), https)), "shared_signals.receivers[0].ca_file");
        let plaintext = "name = \"gw\"\nendpoint_url = \"http://gw.example.com/ssf\"\naudience = \"gw\"\n";
        assert_eq!(refused(&section(dir.path(), plaintext)), "shared_signals.receivers[0].endpoint_url", "https unless insecure_http");
        let ok = format!("{plaintext}insecure_http = true\n");
        let compiled = section(dir.path(), &ok).compile().unwrap().unwrap();
        assert!(compiled.receivers[0].tls.is_none());
        assert_eq!(compiled.receivers[0].events.len(), EVENT_TYPES.len(), "every event type by default");
        assert_eq!(refused(&section(dir.path(), &format!("{ok}events = [\"session-ended\"]\n"))), "shared_signals.receivers[0].events");
        assert_eq!(refused(&section(dir.path(), &format!("{ok}timeout_seconds = 0\n"))), "shared_signals.receivers[0].timeout_seconds");
        assert_eq!(refused(&section(dir.path(), &ok.replace("\"gw\"\nendpoint", "\"g w\"\nendpoint"))), "shared_signals.receivers[0].name");
        let twice = format!("{ok}[[receivers]]\n{ok}");
        assert_eq!(refused(&section(dir.path(), &twice)), "shared_signals.receivers[1].name");
        let mut s = section(dir.path(), &ok);
        s.issuer = "http://assertd.example.com/".into();
        assert_eq!(refused(&s), "shared_signals.issuer");
        s.issuer = "https://assertd.example.com/".into();
        s.key_id = String::new();
        assert_eq!(refused(&s), "shared_signals.key_id");
        s.key_id = "k1".into();
        std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
        assert_eq!(refused(&s), "shared_signals.signing_key_file");
    }

    #[test]
    fn without_receivers_shared_signals_are_off() {
        assert!(SharedSignalsSection::default().compile().unwrap().is_none());
    }
}
