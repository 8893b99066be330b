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
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One `[[clients]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// A name for logs and metrics.
    pub name: String,
    /// Certificate identities of this client: DNS or URI SANs (e.g.
    /// `spiffe://cluster.local/ns/login/sa/gateway`) or the subject CN,
    /// matched exactly.
    #[serde(default)]
    pub certificate_names: Vec<String>,
    /// SHA-256 (hex) of bearer tokens this client presents as
    /// `authorization: Bearer <token>`.
    #[serde(default)]
    pub token_sha256: Vec<String>,
    /// Relying parties it may verify and manage credentials for; `"*"`: all.
    pub relying_parties: Vec<String>,
    /// RPC groups it may call: `verify` (VerifyAssertions,
    /// VerifyAssertionsStream), `credentials.read` (GetCredential,
    /// ListCredentials), `credentials.write` (PutCredential,
    /// RevokeCredential); `"*"`: all.
    pub rpcs: Vec<String>,
}

/// An RPC group a grant can include.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    /// VerifyAssertions and VerifyAssertionsStream.
    Verify,
    /// GetCredential and ListCredentials.
    CredentialsRead,
    /// PutCredential and RevokeCredential.
    CredentialsWrite,
}

impl Rpc {
    /// The group's name in `[[clients]] rpcs`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::CredentialsRead => "credentials.read",
            Self::CredentialsWrite => "credentials.write",
        }
    }

    const ALL: [Self; 3] = [Self::Verify, Self::CredentialsRead, Self::CredentialsWrite];
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
    rpcs: HashSet<Rpc>,
}

impl Grant {
    /// Everything, for everyone: authorization off.
    pub fn open() -> Self {
        Self { client: "-".into(), rps: RpScope::All, rpcs: Rpc::ALL.into_iter().collect() }
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

fn parse_sha256_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

impl ClientTable {
    /// Builds the table, refusing ambiguous or empty entries. Errors name
    /// the key (`clients[i].field`) and the problem.
    pub fn build(clients: &[ClientConfig]) -> Result<Self, (String, String)> {
        let mut table = Self { enabled: !clients.is_empty(), ..Self::default() };
        for (i, c) in clients.iter().enumerate() {
            let key = |k: &str| format!("clients[{i}].{k}");
            if c.name.is_empty() {
                return Err((key("name"), "must not be empty".into()));
            }
            if c.certificate_names.is_empty() && c.token_sha256.is_empty() {
                return Err((key("certificate_names"), "a client needs certificate_names or token_sha256 to be recognised".into()));
            }
            let rps = if c.relying_parties.iter().any(|r| r == "*") {
                RpScope::All
            } else if c.relying_parties.is_empty() {
                return Err((key("relying_parties"), "list the relying parties it may use, or \"*\"".into()));
            } else {
                RpScope::Only(c.relying_parties.iter().cloned().collect())
            };
            let mut rpcs = HashSet::new();
            for r in &c.rpcs {
                match r.as_str() {
                    "*" => rpcs.extend(Rpc::ALL),
                    other => match Rpc::ALL.into_iter().find(|g| g.as_str() == other) {
                        Some(g) => {
                            rpcs.insert(g);
                        }
                        None => {
                            return Err((
                                key("rpcs"),
                                format!("{other:?} is not an RPC group (verify, credentials.read, credentials.write, \"*\")"),
                            ));
                        }
                    },
                }
            }
            if rpcs.is_empty() {
                return Err((key("rpcs"), "list the RPC groups it may call".into()));
            }
            let grant = Arc::new(Grant { client: c.name.clone(), rps, rpcs });
            for n in &c.certificate_names {
                if n.is_empty() {
                    return Err((key("certificate_names"), "names must not be empty".into()));
                }
                if table.by_name.insert(n.clone(), grant.clone()).is_some() {
                    return Err((key("certificate_names"), format!("{n:?} belongs to two clients")));
                }
            }
            for t in &c.token_sha256 {
                let hash = parse_sha256_hex(t).ok_or_else(|| {
                    (key("token_sha256"), "each entry is the token's SHA-256 as 64 hex digits (printf %s \"$TOKEN\" | sha256sum)".into())
                })?;
                if table.by_token.insert(hash, grant.clone()).is_some() {
                    return Err((key("token_sha256"), "a token belongs to two clients".into()));
                }
            }
        }
        Ok(table)
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
            return Ok(Arc::new(Grant::open()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(s: &str) -> String {
        digest::digest(&digest::SHA256, s.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn client(name: &str, certs: &[&str], tokens: &[&str], rps: &[&str], rpcs: &[&str]) -> ClientConfig {
        ClientConfig {
            name: name.into(),
            certificate_names: certs.iter().map(|s| (*s).into()).collect(),
            token_sha256: tokens.iter().map(|t| sha(t)).collect(),
            relying_parties: rps.iter().map(|s| (*s).into()).collect(),
            rpcs: rpcs.iter().map(|s| (*s).into()).collect(),
        }
    }

    fn table() -> ClientTable {
        ClientTable::build(&[
            client("gw", &["gw.login.svc", "spiffe://c/ns/login/sa/gw"], &[], &["a.example"], &["verify"]),
            client("admin", &[], &["s3cret"], &["*"], &["*"]),
        ])
        .unwrap()
    }

    #[test]
    fn off_without_clients() {
        let t = ClientTable::build(&[]).unwrap();
        assert!(!t.enabled());
        let g = t.authorize(None, &[], Rpc::CredentialsWrite).unwrap();
        assert!(g.rps.allows("anything.example"));
    }

    #[test]
    fn certificates_map_to_grants() {
        let t = table();
        let g = t.authorize(None, &["other".into(), "spiffe://c/ns/login/sa/gw".into()], Rpc::Verify).unwrap();
        assert_eq!(g.client, "gw");
        assert!(g.rps.allows("a.example"));
        assert!(!g.rps.allows("b.example"));
        assert!(matches!(t.authorize(None, &["gw.login.svc".into()], Rpc::CredentialsRead), Err(Denied::PermissionDenied(_))));
        assert!(matches!(t.authorize(None, &["gw.login".into()], Rpc::Verify), Err(Denied::Unauthenticated(_))));
        assert!(matches!(t.authorize(None, &[], Rpc::Verify), Err(Denied::Unauthenticated(_))));
    }

    #[test]
    fn tokens_decide_when_present() {
        let t = table();
        assert_eq!(t.authorize(Some(b"Bearer s3cret"), &[], Rpc::CredentialsWrite).unwrap().client, "admin");
        // A wrong token is refused even with a good certificate.
        assert!(matches!(t.authorize(Some(b"Bearer s3cre"), &["gw.login.svc".into()], Rpc::Verify), Err(Denied::Unauthenticated(_))));
        assert!(matches!(t.authorize(Some(b"Basic s3cret"), &[], Rpc::Verify), Err(Denied::Unauthenticated(_))));
    }

    #[test]
    fn bad_entries_are_refused_with_their_key() {
        let cases = [
            (client("", &["x"], &[], &["*"], &["*"]), "clients[0].name"),
            (client("a", &[], &[], &["*"], &["*"]), "clients[0].certificate_names"),
            (client("a", &["x"], &[], &[], &["*"]), "clients[0].relying_parties"),
            (client("a", &["x"], &[], &["*"], &["verify", "admin"]), "clients[0].rpcs"),
            (client("a", &["x"], &[], &["*"], &[]), "clients[0].rpcs"),
        ];
        for (c, key) in cases {
            assert_eq!(ClientTable::build(&[c]).unwrap_err().0, key);
        }
        let mut bad_hash = client("a", &[], &["t"], &["*"], &["*"]);
        bad_hash.token_sha256 = vec!["abc".into()];
        assert_eq!(ClientTable::build(&[bad_hash]).unwrap_err().0, "clients[0].token_sha256");
        let dup = [client("a", &["x"], &[], &["*"], &["*"]), client("b", &["x"], &[], &["*"], &["*"])];
        assert_eq!(ClientTable::build(&dup).unwrap_err().0, "clients[1].certificate_names");
    }
}
