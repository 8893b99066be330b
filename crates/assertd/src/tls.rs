//! The gRPC listener: TCP with Nagle off, optionally TLS (rustls with
//! ring), mutual when a client CA is configured. The certificate, key and
//! CA reload without a restart; each connection's client identity (its
//! certificate's names) is read once, at the handshake, and handed to the
//! services through tonic's connect info.

use crate::config::TlsSection;
use crate::telemetry;
use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How long a listener waits after a failed `accept` (EMFILE: no file
/// descriptor left; spinning on it would take a core and starve the rest).
pub const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// The TLS material in force and where it comes from.
pub struct TlsState {
    section: TlsSection,
    config: ArcSwap<ServerConfig>,
    /// The files' bytes when last loaded, to notice changes.
    loaded: parking_lot::Mutex<Vec<u8>>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState").field("section", &self.section).finish_non_exhaustive()
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn certs(path: &std::path::Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

/// Builds a rustls server config from the files' contents.
fn build(section: &TlsSection, cert_pem: &[u8], key_pem: &[u8], ca_pem: Option<&[u8]>) -> Result<(ServerConfig, i64), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(&section.cert_file, cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("{}: no usable private key: {e}", section.key_file.display()))?;
    let not_after = x509_parser::parse_x509_certificate(&chain[0])
        .map(|(_, c)| c.validity().not_after.timestamp())
        .map_err(|e| format!("{}: the first certificate does not parse: {e}", section.cert_file.display()))?;
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().map_err(|e| e.to_string())?;
    let builder = match (&section.client_ca_file, ca_pem) {
        (Some(path), Some(pem)) => {
            let mut roots = RootCertStore::empty();
            for c in certs(path, pem)? {
                roots.add(c).map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().map_err(|e| format!("client CA: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("{} and {} do not make a usable pair: {e}", section.cert_file.display(), section.key_file.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((config, not_after))
}

impl TlsState {
    /// Loads the files, refusing anything unusable.
    pub fn load(section: &TlsSection) -> Result<Self, String> {
        let (files, config, not_after) = Self::read_and_build(section)?;
        telemetry::tls_certificate_expiry(not_after);
        Ok(Self { section: section.clone(), config: ArcSwap::from_pointee(config), loaded: parking_lot::Mutex::new(files) })
    }

    fn read_and_build(section: &TlsSection) -> Result<(Vec<u8>, ServerConfig, i64), String> {
        let cert = read(&section.cert_file)?;
        let key = read(&section.key_file)?;
        let ca = section.client_ca_file.as_deref().map(read).transpose()?;
        let (config, not_after) = build(section, &cert, &key, ca.as_deref())?;
        let mut files = cert;
        files.extend_from_slice(&key);
        files.extend_from_slice(ca.as_deref().unwrap_or_default());
        Ok((files, config, not_after))
    }

    /// Reloads the files if they changed (or always, with `force`). A bad
    /// set is logged and counted and the running material stays. Returns
    /// whether new material is in force.
    pub fn reload(&self, force: bool) -> bool {
        match Self::read_and_build(&self.section) {
            Ok((files, config, not_after)) => {
                let mut loaded = self.loaded.lock();
                if !force && *loaded == files {
                    return false;
                }
                *loaded = files;
                self.config.store(Arc::new(config));
                telemetry::tls_reload(true);
                telemetry::tls_certificate_expiry(not_after);
                tracing::info!(cert = %self.section.cert_file.display(), "TLS material reloaded; new connections use it");
                true
            }
            Err(e) => {
                // A half-written Secret update shows as a bad set for a
                // moment; the next check picks up the finished one.
                telemetry::tls_reload(false);
                tracing::error!(error = %e, "TLS reload rejected; the running certificate stays");
                false
            }
        }
    }

    /// Whether clients must present certificates.
    pub fn mutual(&self) -> bool {
        self.section.client_ca_file.is_some()
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.load_full())
    }

    /// Checks the files every `reload_interval_seconds`.
    pub async fn watch(self: Arc<Self>) {
        let every = Duration::from_secs(self.section.reload_interval_seconds);
        if every.is_zero() {
            return;
        }
        loop {
            tokio::time::sleep(every).await;
            let state = self.clone();
            let _ = tokio::task::spawn_blocking(move || state.reload(false)).await;
        }
    }
}

/// What the services learn about a connection.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// The remote address.
    pub remote: Option<SocketAddr>,
    /// Names of the verified client certificate (DNS and URI SANs, then
    /// the subject CN); empty without one.
    pub certificate_names: Arc<[String]>,
    /// The connection's slot under a listener's connection cap, held as
    /// long as the connection (and its requests) live.
    pub slot: Option<Arc<tokio::sync::OwnedSemaphorePermit>>,
}

/// The names a client certificate vouches for.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return Vec::new() };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(s) | GeneralName::URI(s) => names.push((*s).to_owned()),
                _ => {}
            }
        }
    }
    if let Some(cn) = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()) {
        names.push(cn.to_owned());
    }
    names
}

/// An accepted connection, plaintext or TLS.
pub enum Conn {
    /// Plain TCP.
    Plain(TcpStream, Peer),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>, Peer),
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        match self {
            Self::Plain(_, p) | Self::Tls(_, p) => p.clone(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s, _) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s, _) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s, _) => s.is_write_vectored(),
            Self::Tls(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s, _) => Pin::new(s).poll_flush(cx),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s, _) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A cap on a listener's open connections: beyond it, connections are
/// closed as they are accepted (and counted under `name`).
#[derive(Debug, Clone)]
pub struct Cap {
    /// The listener's metric label.
    pub name: &'static str,
    /// One permit per connection.
    pub slots: Arc<tokio::sync::Semaphore>,
}

/// Accepts connections until the returned stream is dropped (the server
/// stops taking connections at shutdown; the listener closes with it).
/// TLS handshakes run concurrently, each bounded by the handshake timeout,
/// so a slow or silent client cannot hold up anyone else's. With `cap`, at
/// most that many connections are open at once.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<TlsState>>,
    cap: Option<Cap>,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let label = cap.as_ref().map_or("grpc", |c| c.name);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = tx.closed() => return,
                r = listener.accept() => r,
            };
            let (tcp, remote) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    telemetry::accept_failed(label, &e);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let slot = match &cap {
                None => None,
                Some(c) => match c.slots.clone().try_acquire_owned() {
                    Ok(p) => Some(Arc::new(p)),
                    Err(_) => {
                        telemetry::listener_refused(c.name);
                        drop(tcp);
                        continue;
                    }
                },
            };
            // A verdict batch is a few small frames; waiting on delayed
            // ACKs would add tens of milliseconds to every unary call.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
            let Some(tls) = &tls else {
                let peer = Peer { remote: Some(remote), certificate_names: Arc::new([]), slot };
                if tx.send(Ok(Conn::Plain(tcp, peer))).await.is_err() {
                    return;
                }
                continue;
            };
            let (acceptor, tx) = (tls.acceptor(), tx.clone());
            let timeout = Duration::from_millis(tls.section.handshake_timeout_ms);
            tokio::spawn(async move {
                match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let names = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| certificate_names(c));
                        let peer = Peer { remote: Some(remote), certificate_names: names.unwrap_or_default().into(), slot };
                        let _ = tx.send(Ok(Conn::Tls(Box::new(stream), peer))).await;
                    }
                    Ok(Err(e)) => {
                        telemetry::tls_handshake_failed("error");
                        tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    }
                    Err(_) => {
                        telemetry::tls_handshake_failed("timeout");
                        tracing::debug!(%remote, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
