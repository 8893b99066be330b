//! Gateway authorization: which caller may use which RPCs for which
//! relying parties.
//!
//! A caller is identified by its TLS client certificate (a DNS or URI
//! subject alternative name, or the subject common name, of a certificate
//! the configured CA signed) or by a bearer token (for deployments behind a
//! mesh that terminates mTLS). `[[clients]]` entries grant each identity a
//! set of relying parties and RPC groups. With no `[[clients]]` at all,
//! authorization is off: every caller may do everything (the local default).
//!
//! This module is pure: the server hands it the names from the connection
//! and the `authorization` header, and applies the grant it returns.

use ring::digest;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// An RPC group a grant can include.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    /// VerifyAssertions and VerifyAssertionsStream.
    Verify,
    /// GetCredential, ListCredentials, GetCredentialStats and PreviewPolicy.
    CredentialsRead,
    /// PutCredential, RevokeCredential, DeleteCredential and the user-level
    /// writes: the admin's.
    CredentialsWrite,
    /// RegisterCredential: what gateways get to enrol passkeys.
    CredentialsRegister,
    /// IssueTemporaryAccessPass, RevokeTemporaryAccessPass and
    /// ListTemporaryAccessPasses: a helpdesk tool's, without write access
    /// to credentials.
    CredentialsRecover,
    /// WatchEvents: the event stream gateways revoke sessions by.
    EventsRead,
}

impl Rpc {
    /// The group's name in `[[clients]] rpcs`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::CredentialsRead => "credentials.read",
            Self::CredentialsWrite => "credentials.write",
            Self::CredentialsRegister => "credentials.register",
            Self::CredentialsRecover => "credentials.recover",
            Self::EventsRead => "events.read",
        }
    }

    /// Every group.
    pub const ALL: [Self; 6] = [
        Self::Verify,
        Self::CredentialsRead,
        Self::CredentialsWrite,
        Self::CredentialsRegister,
        Self::CredentialsRecover,
        Self::EventsRead,
    ];
}

/// Relying parties a caller may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpScope {
    /// Every relying party.
    All,
    /// Only these.
    Only(HashSet<String>),
}

impl RpScope {
    /// Whether `rp_id` is in scope.
    pub fn allows(&self, rp_id: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(rp_id),
        }
    }
}

/// What one authenticated caller may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The client's configured name (`"-"` with authorization off).
    pub client: String,
    /// Its relying parties.
    pub rps: RpScope,
    /// Its RPC groups.
    pub rpcs: HashSet<Rpc>,
    /// The profiles it may name in an assertion; `None`: any.
    pub profiles: Option<HashSet<String>>,
}

impl Grant {
    /// Everything, for everyone: authorization off.
    pub fn open() -> Self {
        Self { client: "-".into(), rps: RpScope::All, rpcs: Rpc::ALL.into_iter().collect(), profiles: None }
    }

    /// [`Grant::open`], built once and shared: with authorization off every
    /// call and stream message is granted it, and building it (a name, a
    /// set of the RPC groups) cost ~2k instructions a call (BENCHMARKS.md §23).
    pub fn shared_open() -> Arc<Self> {
        static OPEN: std::sync::LazyLock<Arc<Grant>> = std::sync::LazyLock::new(|| Arc::new(Grant::open()));
        OPEN.clone()
    }

    /// Whether the grant includes the RPC group.
    pub fn may(&self, rpc: Rpc) -> bool {
        self.rpcs.contains(&rpc)
    }
}

/// Why a caller was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No identity, or one no `[[clients]]` entry names (UNAUTHENTICATED).
    #[error("{0}")]
    Unauthenticated(String),
    /// A known client calling outside its grant (PERMISSION_DENIED).
    #[error("{0}")]
    PermissionDenied(String),
}

/// Every configured client, indexed by identity.
#[derive(Debug, Default)]
pub struct ClientTable {
    by_name: HashMap<String, Arc<Grant>>,
    by_token: HashMap<[u8; 32], Arc<Grant>>,
    enabled: bool,
}

impl ClientTable {
    /// An empty table; `enabled`: authorization is on (some `[[clients]]`
    /// exist), so callers it does not know are refused.
    pub fn new(enabled: bool) -> Self {
        Self { enabled, ..Self::default() }
    }

    /// Maps a certificate name to a grant; false if the name was taken.
    pub fn add_certificate_name(&mut self, name: &str, grant: Arc<Grant>) -> bool {
        self.by_name.insert(name.to_owned(), grant).is_none()
    }

    /// Maps a bearer token's SHA-256 to a grant; false if it was taken.
    pub fn add_token_sha256(&mut self, hash: [u8; 32], grant: Arc<Grant>) -> bool {
        self.by_token.insert(hash, grant).is_none()
    }

    /// Whether any `[[clients]]` entry exists (authorization on).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Who the caller is. `authorization` is the header's value, if sent;
    /// `certificate_names` the verified client certificate's names. A
    /// bearer token, when present, decides: a wrong token is refused even if
    /// the certificate would match.
    pub fn authenticate(&self, authorization: Option<&[u8]>, certificate_names: &[String]) -> Result<Arc<Grant>, Denied> {
        if !self.enabled {
            return Ok(Grant::shared_open());
        }
        if let Some(value) = authorization {
            let token = value
                .strip_prefix(b"Bearer ")
                .or_else(|| value.strip_prefix(b"bearer "))
                .ok_or_else(|| Denied::Unauthenticated("the authorization header must be \"Bearer <token>\"".into()))?;
            let hash = digest::digest(&digest::SHA256, token);
            let mut key = [0u8; 32];
            key.copy_from_slice(hash.as_ref());
            return self.by_token.get(&key).cloned().ok_or_else(|| Denied::Unauthenticated("unknown bearer token".into()));
        }
        if certificate_names.is_empty() {
            return Err(Denied::Unauthenticated("no client certificate or bearer token".into()));
        }
        certificate_names
            .iter()
            .find_map(|n| self.by_name.get(n))
            .cloned()
            .ok_or_else(|| Denied::Unauthenticated("the client certificate names no configured client".into()))
    }

    /// `authenticate`, then checks the RPC group.
    pub fn authorize(&self, authorization: Option<&[u8]>, certificate_names: &[String], rpc: Rpc) -> Result<Arc<Grant>, Denied> {
        let grant = self.authenticate(authorization, certificate_names)?;
        if !grant.may(rpc) {
            return Err(Denied::PermissionDenied(format!("client {:?} may not call {} RPCs", grant.client, rpc.as_str())));
        }
        Ok(grant)
    }
}
