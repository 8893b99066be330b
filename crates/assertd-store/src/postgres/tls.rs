//! TLS to PostgreSQL, in libpq's `sslmode` vocabulary, with rustls on ring.
//!
//! | `sslmode` | encrypted | server checked |
//! |---|---|---|
//! | `disable` | no | no |
//! | `prefer` | if the server offers it | no |
//! | `require` | yes | no (with a root certificate: as `verify-ca`, like libpq) |
//! | `verify-ca` | yes | chain to a trusted root |
//! | `verify-full` | yes | chain, and the host name (or IP) in the certificate |
//!
//! The default is `verify-full` for any host beyond loopback, and `prefer`
//! when every host is loopback or a Unix socket. A server that is not checked
//! beyond loopback needs `insecure_allow_unverified_postgres`. Without a
//! root certificate file, `verify-*` trusts the operating system's roots.
//! When the server offers SCRAM with channel binding, the binding is the
//! certificate's hash (`tls-server-end-point`, RFC 5929), so even an
//! unchecked server cannot relay the password exchange.

use crate::types::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::{Host, SslMode as PgSslMode};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// libpq's `sslmode` (its `allow` is not offered: it downgrades silently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext.
    Disable,
    /// TLS when the server offers it, unchecked.
    Prefer,
    /// TLS, unchecked (checked as `VerifyCa` when a root certificate is set).
    Require,
    /// TLS, the chain checked against the root certificates.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

impl std::str::FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Disable, Self::Prefer, Self::Require, Self::VerifyCa, Self::VerifyFull]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("sslmode must be disable, prefer, require, verify-ca or verify-full, not {s:?}"))
    }
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of CA certificates.
    File(PathBuf),
    /// The operating system's roots (`ssl_root_cert = "system"`, as libpq's
    /// `sslrootcert=system`).
    System,
}

impl RootCert {
    fn parse(s: &str) -> Self {
        if s == "system" { Self::System } else { Self::File(PathBuf::from(s)) }
    }
}

/// TLS settings for the PostgreSQL connection. Each may also come from the
/// URL's query (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`); set in both
/// places, they must agree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostgresTls {
    /// `sslmode`; unset: `verify-full` beyond loopback, `prefer` on it.
    pub mode: Option<SslMode>,
    /// Trusted roots for `verify-*` (unset: the system's).
    pub root_cert: Option<RootCert>,
    /// Client certificate chain (PEM), for servers that authenticate
    /// clients by certificate.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
    /// Accept a server that is not checked (`disable`, `prefer`, `require`
    /// without a root) on a host beyond loopback.
    pub insecure_allow_unverified: bool,
}

/// What connections will do, once URL and settings are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The effective mode.
    pub mode: SslMode,
    /// The roots, when the server is checked.
    pub roots: Option<RootCert>,
    /// Client certificate and key.
    pub client: Option<(PathBuf, PathBuf)>,
    /// Whether some host is beyond loopback.
    pub remote: bool,
}

impl Resolved {
    /// Whether the server's certificate chain is checked.
    pub fn verifies(&self) -> bool {
        self.roots.is_some()
    }
}

const URL_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Splits the TLS parameters out of a `postgres://` URL's query (their
/// values percent-decoded), returning the URL without them. A key=value
/// connection string is returned whole: TLS goes in the `[store]` keys.
fn split_url(url: &str) -> Result<(String, [Option<String>; 4]), String> {
    let mut found: [Option<String>; 4] = Default::default();
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !is_url {
        if URL_KEYS.iter().any(|k| url.contains(&format!("{k}="))) {
            return Err("TLS parameters in a key=value connection string are not read: use the [store] keys sslmode, ssl_root_cert, ssl_cert, ssl_key (or a postgres:// URL)".into());
        }
        return Ok((url.to_owned(), found));
    }
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_owned(), found)) };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match URL_KEYS.iter().position(|u| *u == k) {
            Some(i) => {
                let v =
                    percent_encoding::percent_decode_str(v).decode_utf8().map_err(|_| format!("the URL's {k} is not UTF-8"))?.into_owned();
                found[i] = Some(v);
            }
            None => kept.push(pair),
        }
    }
    let url = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((url, found))
}

/// One setting from two places: they must agree.
fn merge<T: PartialEq + std::fmt::Debug>(key: &str, url_key: &str, setting: Option<T>, from_url: Option<T>) -> Result<Option<T>, String> {
    match (setting, from_url) {
        (Some(a), Some(b)) if a != b => Err(format!("store.{key} is {a:?} but the URL's {url_key} is {b:?}: set it in one place")),
        (a, b) => Ok(a.or(b)),
    }
}

fn is_loopback(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(h) => {
            h.eq_ignore_ascii_case("localhost")
                || h.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
    }
}

/// Parses the URL and merges the TLS settings: the connection config (its
/// `sslmode` set for tokio-postgres) and what TLS will do. Pure: no file is
/// read. Errors name the setting to change.
pub fn resolve(url: &str, tls: &PostgresTls) -> Result<(tokio_postgres::Config, Resolved), StoreError> {
    let config_err = StoreError::Config;
    let (url, [mode, root, cert, key]) = split_url(url).map_err(config_err)?;
    let mut pg: tokio_postgres::Config = url.parse().map_err(|e| config_err(format!("invalid database URL: {e}")))?;
    let url_mode = mode.map(|m| m.parse::<SslMode>()).transpose().map_err(config_err)?;
    let mode = merge("sslmode", "sslmode", tls.mode, url_mode).map_err(config_err)?;
    let root = merge("ssl_root_cert", "sslrootcert", tls.root_cert.clone(), root.as_deref().map(RootCert::parse)).map_err(config_err)?;
    let cert = merge("ssl_cert", "sslcert", tls.client_cert.clone(), cert.map(PathBuf::from)).map_err(config_err)?;
    let key = merge("ssl_key", "sslkey", tls.client_key.clone(), key.map(PathBuf::from)).map_err(config_err)?;
    let remote = pg.get_hosts().iter().any(|h| !is_loopback(h));
    let mode = mode.unwrap_or(if remote { SslMode::VerifyFull } else { SslMode::Prefer });
    let client = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err(config_err("store.ssl_cert and store.ssl_key go together (a client certificate and its key)".into())),
    };
    let roots = match mode {
        SslMode::Disable | SslMode::Prefer => None,
        // libpq: require with a root certificate checks like verify-ca.
        SslMode::Require => root,
        SslMode::VerifyCa | SslMode::VerifyFull => Some(root.unwrap_or(RootCert::System)),
    };
    let resolved = Resolved { mode, roots, client, remote };
    if remote && !resolved.verifies() && !tls.insecure_allow_unverified {
        return Err(config_err(format!(
            "sslmode {} does not check the PostgreSQL server, which is not on loopback: anyone on the path could read or rewrite \
             credentials. Set store.sslmode = \"verify-full\" (with store.ssl_root_cert = the CA file, or \"system\"), or accept \
             the risk with store.insecure_allow_unverified_postgres = true",
            mode.as_str()
        )));
    }
    pg.ssl_mode(match mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
    });
    Ok((pg, resolved))
}

fn read_roots(root: &RootCert) -> Result<RootCertStore, StoreError> {
    let mut store = RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = match root {
        RootCert::File(path) => CertificateDer::pem_file_iter(path)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|e| StoreError::Config(format!("store.ssl_root_cert {}: {e}", path.display())))?,
        RootCert::System => rustls_native_certs::load_native_certs().certs,
    };
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        let from = match root {
            RootCert::File(p) => format!("store.ssl_root_cert {}", p.display()),
            RootCert::System => "the system's certificate store (no store.ssl_root_cert set)".to_owned(),
        };
        return Err(StoreError::Config(format!("no CA certificate found in {from}: set store.ssl_root_cert to the CA file")));
    }
    Ok(store)
}

fn read_client(cert: &Path, key: &Path) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), StoreError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| StoreError::Config(format!("store.ssl_cert {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(StoreError::Config(format!("store.ssl_cert {}: no certificate", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| StoreError::Config(format!("store.ssl_key {}: {e}", key.display())))?;
    Ok((chain, key))
}

/// The rustls client for `resolved`: reads the root and client files.
pub(super) fn connector(resolved: &Resolved) -> Result<Connector, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match &resolved.roots {
        Some(root) => {
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(read_roots(root)?), provider.clone())
                .build()
                .map_err(|e| StoreError::Config(format!("TLS roots: {e}")))?;
            if resolved.mode == SslMode::VerifyFull { webpki } else { Arc::new(ChainOnly(webpki)) }
        }
        None => Arc::new(Unchecked(provider.clone())),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &resolved.client {
        Some((cert, key)) => {
            let (chain, key) = read_client(cert, key)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| StoreError::Config(format!("store.ssl_cert / ssl_key: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Connector(Arc::new(config)))
}

/// `verify-ca`: the chain must reach a trusted root; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        // rustls checks the chain before the name, so a name error means
        // the chain was good.
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(TlsError::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without roots: any certificate (the handshake's
/// signatures are still checked against it, so channel binding holds).
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// tokio-postgres's TLS hook, backed by rustls.
#[derive(Clone)]
pub(super) struct Connector(Arc<ClientConfig>);

impl MakeTlsConnect<tokio_postgres::Socket> for Connector {
    type Stream = TlsStream;
    type TlsConnect = Connect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, host: &str) -> Result<Connect, Self::Error> {
        // An IP address in brackets (IPv6) is an IP name.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Connect { config: self.0.clone(), name: ServerName::try_from(host.to_owned())? })
    }
}

/// One handshake.
pub(super) struct Connect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsConnect<tokio_postgres::Socket> for Connect {
    type Stream = TlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream>> + Send>>;

    fn connect(self, socket: tokio_postgres::Socket) -> Self::Future {
        Box::pin(async move { tokio_rustls::TlsConnector::from(self.config).connect(self.name, socket).await.map(TlsStream) })
    }
}

/// A TLS connection to PostgreSQL.
pub(super) struct TlsStream(tokio_rustls::client::TlsStream<tokio_postgres::Socket>);

impl AsyncRead for TlsStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tokio_postgres::tls::TlsStream for TlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        self.0
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| server_end_point(c))
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

/// `tls-server-end-point` (RFC 5929 §4.1): the certificate hashed with its
/// signature's hash, SHA-256 for MD5 and SHA-1. None when the signature
/// names no single hash (Ed25519, RSA-PSS): no binding is offered then.
fn server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    use ring::digest::{SHA256, SHA384, SHA512, digest};
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let alg = match parsed.signature_algorithm.algorithm.to_id_string().as_str() {
        // md5/sha1/sha256 WithRSAEncryption, ecdsa-with-SHA1/SHA256
        "1.2.840.113549.1.1.4" | "1.2.840.113549.1.1.5" | "1.2.840.113549.1.1.11" | "1.2.840.10045.4.1" | "1.2.840.10045.4.3.2" => &SHA256,
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => &SHA384,
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => &SHA512,
        _ => return None,
    };
    Some(digest(alg, cert).as_ref().to_vec())
}

#[cfg(test)]
mod tests;
