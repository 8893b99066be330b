//! `[[clients]]`: who may call, compiled into the authorization layer's
//! lookup table (`authz::ClientTable`).

use super::invalid::Invalid;
use crate::authz::{ClientTable, Grant, RpScope, Rpc};
use serde::Deserialize;
use std::collections::HashSet;
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
    /// Names of environment variables that each hold a token's SHA-256
    /// (hex), e.g. filled from a Kubernetes Secret: the hashes stay out of
    /// the config file.
    #[serde(default)]
    pub token_sha256_env: Vec<String>,
    /// Relying parties it may verify and manage credentials for; `"*"`: all.
    pub relying_parties: Vec<String>,
    /// The profiles it may name in `Assertion.profile` (besides each RP's
    /// default); unset: any configured profile.
    #[serde(default)]
    pub profiles: Option<Vec<String>>,
    /// RPC groups it may call: `verify` (VerifyAssertions,
    /// VerifyAssertionsStream), `credentials.read` (GetCredential,
    /// ListCredentials), `credentials.write` (PutCredential,
    /// RevokeCredential, DeleteCredential, the user-level writes),
    /// `credentials.register` (RegisterCredential), `credentials.recover`
    /// (temporary access passes), `events.read` (WatchEvents); `"*"`: all.
    pub rpcs: Vec<String>,
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

/// Compiles `[[clients]]` into the lookup table, refusing ambiguous or empty
/// entries. Errors name the key (`clients[i].field`) and the problem.
pub fn compile(clients: &[ClientConfig]) -> Result<ClientTable, Invalid> {
    let mut table = ClientTable::new(!clients.is_empty());
    for (i, c) in clients.iter().enumerate() {
        let key = |k: &str| format!("clients[{i}].{k}");
        if c.name.is_empty() {
            return Err(Invalid::new(key("name"), "must not be empty"));
        }
        if c.certificate_names.is_empty() && c.token_sha256.is_empty() && c.token_sha256_env.is_empty() {
            return Err(Invalid::new(
                key("certificate_names"),
                "a client needs certificate_names, token_sha256 or token_sha256_env to be recognised",
            ));
        }
        let rps = if c.relying_parties.iter().any(|r| r == "*") {
            RpScope::All
        } else if c.relying_parties.is_empty() {
            return Err(Invalid::new(key("relying_parties"), "list the relying parties it may use, or \"*\""));
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
                        return Err(Invalid::new(
                            key("rpcs"),
                            format!(
                                "{other:?} is not an RPC group (verify, credentials.read, credentials.write, credentials.register, credentials.recover, events.read, \"*\")"
                            ),
                        ));
                    }
                },
            }
        }
        if rpcs.is_empty() {
            return Err(Invalid::new(key("rpcs"), "list the RPC groups it may call"));
        }
        let profiles = c.profiles.as_ref().map(|p| p.iter().cloned().collect());
        let grant = Arc::new(Grant { client: c.name.clone(), rps, rpcs, profiles });
        for n in &c.certificate_names {
            if n.is_empty() {
                return Err(Invalid::new(key("certificate_names"), "names must not be empty"));
            }
            if !table.add_certificate_name(n, grant.clone()) {
                return Err(Invalid::new(key("certificate_names"), format!("{n:?} belongs to two clients")));
            }
        }
        let mut hashes = Vec::new();
        for t in &c.token_sha256 {
            hashes.push(parse_sha256_hex(t).ok_or_else(|| {
                Invalid::new(key("token_sha256"), "each entry is the token's SHA-256 as 64 hex digits (printf %s \"$TOKEN\" | sha256sum)")
            })?);
        }
        for var in &c.token_sha256_env {
            let value =
                std::env::var(var).map_err(|_| Invalid::new(key("token_sha256_env"), format!("environment variable {var} is not set")))?;
            hashes.push(parse_sha256_hex(&value).ok_or_else(|| {
                Invalid::new(
                    key("token_sha256_env"),
                    format!("{var} does not hold a SHA-256 as 64 hex digits (printf %s \"$TOKEN\" | sha256sum)"),
                )
            })?);
        }
        for hash in hashes {
            if !table.add_token_sha256(hash, grant.clone()) {
                return Err(Invalid::new(key("token_sha256"), "a token belongs to two clients"));
            }
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::Denied;
    use ring::digest;

    fn sha(s: &str) -> String {
        digest::digest(&digest::SHA256, s.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn client(name: &str, certs: &[&str], tokens: &[&str], rps: &[&str], rpcs: &[&str]) -> ClientConfig {
        ClientConfig {
            name: name.into(),
            certificate_names: certs.iter().map(|s| (*s).into()).collect(),
            token_sha256: tokens.iter().map(|t| sha(t)).collect(),
            token_sha256_env: Vec::new(),
            profiles: None,
            relying_parties: rps.iter().map(|s| (*s).into()).collect(),
            rpcs: rpcs.iter().map(|s| (*s).into()).collect(),
        }
    }

    fn table() -> ClientTable {
        compile(&[
            client("gw", &["gw.login.svc", "spiffe://c/ns/login/sa/gw"], &[], &["a.example"], &["verify"]),
            client("admin", &[], &["s3cret"], &["*"], &["*"]),
        ])
        .unwrap()
    }

    #[test]
    fn off_without_clients() {
        let t = compile(&[]).unwrap();
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
            assert_eq!(compile(&[c]).unwrap_err().key, key);
        }
        let mut bad_hash = client("a", &[], &["t"], &["*"], &["*"]);
        bad_hash.token_sha256 = vec!["abc".into()];
        assert_eq!(compile(&[bad_hash]).unwrap_err().key, "clients[0].token_sha256");
        let dup = [client("a", &["x"], &[], &["*"], &["*"]), client("b", &["x"], &[], &["*"], &["*"])];
        assert_eq!(compile(&dup).unwrap_err().key, "clients[1].certificate_names");
    }

    #[test]
    fn token_hashes_from_the_environment() {
        // A variable name no other test sets.
        let var = "ASSERTD_TEST_TOKEN_SHA256_CLIENTS_RS";
        let mut c = client("env", &[], &[], &["*"], &["verify"]);
        c.token_sha256_env = vec![var.into()];
        assert!(compile(std::slice::from_ref(&c)).unwrap_err().problem.contains("is not set"));
        // The variable set: tests/tls.rs runs the binary with it.
    }
}
