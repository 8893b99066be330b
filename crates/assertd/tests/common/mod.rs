//! Test harness: runs the real `assertd` binary on loopback ports with a temp
//! data directory and a generated config, and gives tonic clients for it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use assertd_api::v1 as pb;
use assertd_testkit::{AssertionParts, SoftAuthenticator};
use pb::credential_service_client::CredentialServiceClient;
use pb::verification_service_client::VerificationServiceClient;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tonic::transport::Channel;

pub mod cdp;
pub mod ceremony;

pub const RP: &str = "login.example.com";
pub const ORIGIN: &str = "https://login.example.com";
/// An RP that requires user verification.
pub const RP_UV: &str = "admin.example.com";
pub const ORIGIN_UV: &str = "https://admin.example.com";

pub fn default_config() -> String {
    format!(
        r#"
[[relying_parties]]
id = "{RP}"
origins = ["{ORIGIN}"]

[[relying_parties]]
id = "{RP_UV}"
origins = ["{ORIGIN_UV}"]
user_verification = "required"

[[relying_parties]]
id = "localhost"
origins = ["https://localhost"]
allow_legacy_algorithms = true
"#
    )
}

/// `config` (the default config or one built on it) with the main RP's
/// flagged users stepped up (medium) or denied (high) whatever credential
/// signs in: no passkey remediation, for tests of the flags themselves.
#[allow(dead_code)]
pub fn without_remediation(config: &str) -> String {
    let rp = format!("id = \"{RP}\"\norigins = [\"{ORIGIN}\"]\n");
    assert!(config.contains(&rp), "the main RP's entry is not in the config");
    let with = config.replacen(&rp, &format!("{rp}default_profile = \"flags-only\"\n"), 1);
    format!("{with}\n[profiles.flags-only]\nuser_risk_remediation = {{ medium = \"step_up\", high = \"deny\" }}\n")
}

/// A running assertd process.
pub struct Server {
    pub child: Child,
    pub grpc: String,
    pub metrics: String,
    pub dir: PathBuf,
    /// The "assertd listening ..." line.
    pub line: String,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts assertd with `config` in a fresh temp directory.
    pub fn start(config: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let mut s = Self::start_in(&dir, config);
        s._tmp = Some(tmp);
        s
    }

    /// Starts assertd with `config` using `dir` for config and data.
    pub fn start_in(dir: &Path, config: &str) -> Self {
        Self::start_with_env(dir, config, &[])
    }

    /// [`Server::start_in`] with extra environment variables.
    pub fn start_with_env(dir: &Path, config: &str, env: &[(&str, &str)]) -> Self {
        let cfg = dir.join("assertd.toml");
        std::fs::write(&cfg, config).unwrap();
        // ASSERTD_TEST_BIN: another build (a release binary, for the
        // measurements run by loadtest/ scripts).
        let bin = std::env::var("ASSERTD_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_assertd").to_owned());
        let mut child = Command::new(bin)
            .envs(env.iter().copied())
            .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--config"])
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("ASSERTD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let field =
            |k: &str| line.split_whitespace().find_map(|w| w.strip_prefix(k)).unwrap_or_else(|| panic!("no {k} in {line:?}")).to_owned();
        Self { grpc: field("grpc="), metrics: field("metrics="), child, dir: dir.to_owned(), line, _tmp: None }
    }

    /// A `key=value` field of the start-up line.
    pub fn line_field(&self, k: &str) -> String {
        self.line.split_whitespace().find_map(|w| w.strip_prefix(k)).unwrap_or_else(|| panic!("no {k} in {:?}", self.line)).to_owned()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc)).unwrap().connect_timeout(Duration::from_secs(5)).connect().await.unwrap()
    }

    pub async fn verifier(&self) -> VerificationServiceClient<Channel> {
        VerificationServiceClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }

    pub async fn credentials(&self) -> CredentialServiceClient<Channel> {
        CredentialServiceClient::new(self.channel().await)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap()
    }

    /// Waits (up to 15 s) until the metrics contain `what`.
    pub async fn wait_for_metric(&self, what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !self.scrape().contains(what) {
            assert!(std::time::Instant::now() < deadline, "the metrics never showed {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of the first /metrics line starting with `line_start`
    /// (0 when there is none).
    #[allow(dead_code)]
    pub fn metric(&self, line_start: &str) -> f64 {
        self.scrape().lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
    }

    /// Fetches /metrics.
    pub fn scrape(&self) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.metrics).unwrap();
        write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A credential record for a software authenticator.
/// `assertd credentials import FILE --data-dir DIR` (the embedded store).
pub fn import(file: &Path, data_dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_assertd")).args(["credentials", "import"]).arg(file).arg("--data-dir").arg(data_dir).output().unwrap()
}

pub fn record(rp: &str, a: &SoftAuthenticator, user: &[u8], backup_eligible: bool) -> pb::CredentialRecord {
    pb::CredentialRecord {
        rp_id: rp.into(),
        credential_id: a.credential_id.clone(),
        user_handle: user.to_vec(),
        public_key_cose: a.public_key_cose.clone(),
        backup_eligible,
        aaguid: vec![0xaa; 16],
        attested: true,
        transports: vec!["internal".into()],
        ..Default::default()
    }
}

pub async fn put(server: &Server, rec: pb::CredentialRecord) {
    server.credentials().await.put_credential(pb::PutCredentialRequest { credential: Some(rec), ..Default::default() }).await.unwrap();
}

/// An Assertion message from parts.
pub fn assertion(id: &str, rp: &str, cred: &[u8], challenge: &[u8], p: AssertionParts) -> pb::Assertion {
    pb::Assertion {
        request_id: id.into(),
        rp_id: rp.into(),
        credential_id: cred.to_vec(),
        client_data_json: p.client_data_json,
        authenticator_data: p.authenticator_data,
        signature: p.signature,
        expected_challenge: challenge.to_vec(),
        ..Default::default()
    }
}

pub fn codes(v: &pb::Verdict) -> Vec<pb::ReasonCode> {
    v.reasons.iter().map(|r| r.code()).collect()
}

/// A TLS channel to `addr` trusting `ca_pem`, presenting `identity` if given.
pub async fn tls_channel(
    addr: &str,
    ca_pem: &str,
    identity: Option<&assertd_testkit::pki::Leaf>,
) -> Result<Channel, tonic::transport::Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)).domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
    }
    Channel::from_shared(format!("https://{addr}")).unwrap().tls_config(tls)?.connect_timeout(Duration::from_secs(5)).connect().await
}

/// SHA-256 of a string, hex: how `[[clients]] token_sha256` names a token.
pub fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A request carrying `authorization: Bearer <token>`.
pub fn with_bearer<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}
