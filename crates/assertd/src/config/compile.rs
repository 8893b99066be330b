//! Compiling a parsed config into the runtime [`Reloadable`]: every value serde
//! cannot check, checked once, each error naming its key.

use super::invalid::Invalid;
use super::profile::ProfileConfig;
use super::sections::Backend;
use super::{Config, Reloadable, RelyingPartyConfig, ReportOnlyProfile, RpEntry, clients};
use assertd_policy::Profile;
use assertd_verify::RelyingParty;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

impl Config {
    /// Checks every value serde cannot and compiles relying parties,
    /// profiles and clients into the runtime [`Reloadable`]: one pass, each
    /// profile resolved once.
    pub fn compile(&self) -> Result<Reloadable, Invalid> {
        self.check_settings()?;
        let clients = clients::compile(&self.clients)?;
        let mut profiles = HashMap::new();
        for (name, p) in &self.profiles {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(Invalid::new(format!("profiles.{name}"), "profile names use letters, digits, '-' and '_'"));
            }
            profiles.insert(name.clone(), Arc::new(p.resolve().map_err(|e| e.under(&format!("profiles.{name}")))?));
        }
        for (i, c) in self.clients.iter().enumerate() {
            if let Some(unknown) = c.profiles.iter().flatten().find(|p| !profiles.contains_key(*p)) {
                return Err(Invalid::new(format!("clients[{i}].profiles"), format!("profile {unknown:?} is not defined under [profiles]")));
            }
        }
        let mut rps = HashMap::new();
        for (i, c) in self.relying_parties.iter().enumerate() {
            let entry = Self::compile_rp(c, &profiles).map_err(|e| e.under(&format!("relying_parties[{i}]")))?;
            if rps.insert(c.id.clone(), Arc::new(entry)).is_some() {
                return Err(Invalid::new(format!("relying_parties[{i}].id"), format!("{:?} is configured twice", c.id)));
            }
        }
        let challenges = self.challenges.compile()?.map(Arc::new);
        let access_passes = self.temporary_access_pass.compile()?.map(Arc::new);
        if !(1..=365).contains(&self.events.retention_days) {
            return Err(Invalid::new("events.retention_days", "is 1 to 365"));
        }
        let events_retention_ms = i64::from(self.events.retention_days) * 86_400_000;
        let signals = self.shared_signals.compile()?.map(Arc::new);
        let attestation = Arc::new(super::attestation::compile(&self.attestation_roots, &self.registration)?);
        let metadata = super::metadata::compile(self.metadata.as_ref())?.map(Arc::new);
        let aaguid_names = super::metadata::compile_names(self.metadata.as_ref())?;
        if metadata.is_none()
            && let Some((name, _)) = profiles.iter().find(|(_, p)| p.minimum_certification.is_some())
        {
            return Err(Invalid::new(
                format!("profiles.{name}.minimum_certification"),
                "needs [metadata] (the certification levels come from it)",
            ));
        }
        Ok(Reloadable {
            rps,
            profiles,
            clients,
            challenges,
            access_passes,
            events_retention_ms,
            report_only_log_per_second: self.adoption.report_only_log_per_second,
            signals,
            attestation,
            metadata,
            aaguid_names,
        })
    }

    /// One relying party, with its default profile.
    fn compile_rp(rp: &RelyingPartyConfig, profiles: &HashMap<String, Arc<Profile>>) -> Result<RpEntry, Invalid> {
        if rp.id.is_empty() || rp.id.contains(['/', ':', ' ']) {
            return Err(Invalid::new("id", format!("{:?} is not an RP ID (a domain, e.g. \"login.example.com\")", rp.id)));
        }
        if rp.origins.is_empty() {
            return Err(Invalid::new("origins", "at least one origin is required"));
        }
        for o in &rp.origins {
            if o.starts_with("android:apk-key-hash:") && o.len() > "android:apk-key-hash:".len() {
                continue;
            }
            // A browser sends the origin's ASCII serialization: anything else
            // could never match, or would match what the admin did not mean.
            let Some((scheme, host, _)) = assertd_verify::parse_web_origin(o) else {
                return Err(Invalid::new(
                    "origins",
                    format!(
                        "{o:?} is not an origin as browsers send it (\"https://host[:port]\" in lower case, no path, no default port; or \"android:apk-key-hash:...\")"
                    ),
                ));
            };
            let local = matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]") || host.ends_with(".localhost");
            if scheme == "http" && !local && !rp.insecure_allow_http_origins {
                return Err(Invalid::new(
                    "origins",
                    format!("{o:?} is plaintext http on a host other than localhost: use https, or set insecure_allow_http_origins = true"),
                ));
            }
        }
        let (name, profile) = match &rp.default_profile {
            Some(name) => {
                let p = profiles
                    .get(name)
                    .cloned()
                    .ok_or_else(|| Invalid::new("default_profile", format!("profile {name:?} is not defined under [profiles]")))?;
                if let Some(k) = rp.first_profile_key() {
                    return Err(Invalid::new(
                        k,
                        format!("set it in profile {name:?}: RP-level profile keys only apply without default_profile"),
                    ));
                }
                (name.clone(), p)
            }
            None => ("(built-in)".to_owned(), Arc::new(rp.profile_keys().resolve()?)),
        };
        if let Some(unknown) = rp.allowed_profiles.iter().flatten().find(|p| !profiles.contains_key(*p)) {
            return Err(Invalid::new("allowed_profiles", format!("profile {unknown:?} is not defined under [profiles]")));
        }
        let mut report_only = Vec::with_capacity(rp.report_only_profiles.len());
        for (i, name) in rp.report_only_profiles.iter().enumerate() {
            let p = profiles
                .get(name)
                .cloned()
                .ok_or_else(|| Invalid::new("report_only_profiles", format!("profile {name:?} is not defined under [profiles]")))?;
            if rp.report_only_profiles[..i].contains(name) {
                return Err(Invalid::new("report_only_profiles", format!("profile {name:?} is listed twice")));
            }
            report_only.push(ReportOnlyProfile { rp_id: rp.id.as_str().into(), name: name.as_str().into(), profile: p });
        }
        let verifier = RelyingParty::new(rp.id.clone(), rp.origins.clone(), rp.allow_subdomains, rp.appid.as_deref());
        let display = rp.name.clone().unwrap_or_else(|| rp.id.clone());
        if display.is_empty() || display.len() > 256 {
            return Err(Invalid::new("name", "must be 1 to 256 bytes"));
        }
        Ok(RpEntry {
            rp: verifier,
            name: display,
            default_profile: profile,
            default_profile_name: name,
            allowed_profiles: rp.allowed_profiles.as_ref().map(|p| p.iter().cloned().collect()),
            report_only,
        })
    }

    /// The settings that are not policy: limits, store, TLS, listeners.
    fn check_settings(&self) -> Result<(), Invalid> {
        self.tracing.check()?;
        let l = &self.limits;
        for (key, v) in [
            ("limits.max_batch_size", l.max_batch_size),
            ("limits.max_message_bytes", l.max_message_bytes),
            ("limits.max_client_data_json_bytes", l.max_client_data_json_bytes),
            ("limits.max_authenticator_data_bytes", l.max_authenticator_data_bytes),
            ("limits.max_signature_bytes", l.max_signature_bytes),
            ("limits.max_challenge_bytes", l.max_challenge_bytes),
            ("limits.max_probe_connections", l.max_probe_connections),
            ("limits.probe_connection_seconds", usize::try_from(l.probe_connection_seconds).unwrap_or(usize::MAX)),
        ] {
            if v == 0 {
                return Err(Invalid::new(key, "must be greater than 0"));
            }
        }
        if l.max_request_bytes_in_flight < l.max_message_bytes {
            return Err(Invalid::new(
                "limits.max_request_bytes_in_flight",
                format!(
                    "{} is below max_message_bytes ({}): the largest message could never be read",
                    l.max_request_bytes_in_flight, l.max_message_bytes
                ),
            ));
        }
        let positive = [
            ("store.timeout_ms", self.store.timeout_ms),
            ("store.pool_size", self.store.pool_size as u64),
            ("store.last_used_interval_seconds", self.store.last_used_interval_seconds),
            ("cache.max_entries", self.cache.max_entries),
            ("limits.max_queue_wait_ms", self.limits.max_queue_wait_ms),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Invalid::new(*key, "must be greater than 0"));
        }
        if self.store.backend == Backend::Postgres {
            let Some(url) = self.database_url() else {
                return Err(Invalid::new("store.url", "backend = \"postgres\" needs a url (or ASSERTD_DATABASE_URL)"));
            };
            let tls = self.store.postgres_tls().map_err(|e| Invalid::new("store.sslmode", e))?;
            // The same merge the store does at start, so `config check`
            // refuses an unchecked remote server too.
            if let Err(assertd_store::StoreError::Config(e)) = assertd_store::resolve_tls(&url, &tls) {
                return Err(Invalid::new("store", e));
            }
        }
        let beyond_loopback = !self.listen.ip().is_loopback();
        if self.tls.is_none() && beyond_loopback && !self.plaintext_allowed() {
            return Err(Invalid::new(
                "listen",
                format!(
                    "{} is not a loopback address: configure [tls], or set insecure_allow_plaintext = true if a mesh sidecar terminates TLS",
                    self.listen
                ),
            ));
        }
        if self.clients.is_empty() && beyond_loopback && !self.insecure_allow_unauthenticated {
            return Err(Invalid::new(
                "clients",
                format!(
                    "{} is reachable beyond loopback and no [[clients]] authenticate callers (anyone could write credentials): configure [[clients]] (client certificates or bearer tokens), or set insecure_allow_unauthenticated = true",
                    self.listen
                ),
            ));
        }
        if let Some(t) = &self.tls
            && t.handshake_timeout_ms == 0
        {
            return Err(Invalid::new("tls.handshake_timeout_ms", "must be greater than 0"));
        }
        let mutual = self.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some());
        if let Some(i) = self.clients.iter().position(|c| !c.certificate_names.is_empty())
            && !mutual
        {
            return Err(Invalid::new(format!("clients[{i}].certificate_names"), "certificate identities need [tls] client_ca_file"));
        }
        Ok(())
    }

    /// The effective policy, for people: each relying party with its
    /// default profile, then every profile with all keys spelled out
    /// (defaults included), as TOML (`assertd config check`).
    pub fn describe(&self, policy: &Reloadable) -> Result<String, String> {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "# config OK: {} relying parties, {} profiles", self.relying_parties.len(), self.profiles.len());
        for rp in &self.relying_parties {
            let name = rp.default_profile.as_deref().unwrap_or("(built-in, with the RP's own keys)");
            let _ = write!(out, "# relying party {:?}: default profile {name}", rp.id);
            if !rp.report_only_profiles.is_empty() {
                let _ = write!(out, "; report-only (judged, never enforced): {}", rp.report_only_profiles.join(", "));
            }
            out.push('\n');
        }
        let mut effective: BTreeMap<String, ProfileConfig> =
            policy.profiles.iter().map(|(name, p)| (name.clone(), ProfileConfig::effective(p))).collect();
        if self.profiles.is_empty() {
            effective.insert("(built-in)".to_owned(), ProfileConfig::effective(&Profile::default()));
        }
        #[derive(Serialize)]
        struct Out {
            profiles: BTreeMap<String, ProfileConfig>,
        }
        out.push_str(&toml::to_string(&Out { profiles: effective }).map_err(|e| e.to_string())?);
        Ok(out)
    }
}
