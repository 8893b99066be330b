//! What a verifier needs to know about a relying party: its RP ID hash, the
//! legacy AppID hash, and the origins it accepts.

use ring::digest;

/// A relying party's verification settings, prepared once at config load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    id: String,
    rp_id_hash: [u8; 32],
    appid_hash: Option<[u8; 32]>,
    origins: Vec<String>,
    /// (scheme, host, port) of each web origin, for the subdomain rule.
    subdomain_bases: Vec<(String, String, String)>,
}

fn sha256(s: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, s.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Splits "scheme://host[:port]" into its parts; None when it is not a bare
/// web origin (path, user info, or no scheme).
fn split_origin(origin: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = origin.split_once("://")?;
    if rest.is_empty() || rest.contains(['/', '@', '?', '#']) {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, p),
        _ => (rest, ""),
    };
    (!host.is_empty()).then_some((scheme, host, port))
}

impl RelyingParty {
    /// Prepares an RP. `origins` are matched exactly (ASCII, as serialized by
    /// browsers); with `allow_subdomains`, an origin with the same scheme and
    /// port whose host is a subdomain of a listed origin's host also matches.
    /// `appid` is the legacy FIDO U2F AppID, if the RP migrated from U2F.
    pub fn new(id: impl Into<String>, origins: Vec<String>, allow_subdomains: bool, appid: Option<&str>) -> Self {
        let id = id.into();
        let subdomain_bases = if allow_subdomains {
            origins.iter().filter_map(|o| split_origin(o)).map(|(s, h, p)| (s.to_owned(), h.to_owned(), p.to_owned())).collect()
        } else {
            Vec::new()
        };
        Self { rp_id_hash: sha256(&id), appid_hash: appid.map(sha256), id, origins, subdomain_bases }
    }

    /// The RP ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// SHA-256 of the RP ID.
    pub fn rp_id_hash(&self) -> &[u8; 32] {
        &self.rp_id_hash
    }

    /// SHA-256 of the AppID, when one is configured.
    pub fn appid_hash(&self) -> Option<&[u8; 32]> {
        self.appid_hash.as_ref()
    }

    /// True when `origin` is one this RP accepts.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        if self.origins.iter().any(|o| o == origin) {
            return true;
        }
        let Some((scheme, host, port)) = split_origin(origin) else { return false };
        self.subdomain_bases.iter().any(|(s, h, p)| {
            s == scheme
                && p == port
                && host.len() > h.len() + 1
                && host.ends_with(h.as_str())
                && host.as_bytes()[host.len() - h.len() - 1] == b'.'
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_origins() {
        let rp = RelyingParty::new("example.com", vec!["https://example.com".into(), "android:apk-key-hash:abc".into()], false, None);
        assert!(rp.origin_allowed("https://example.com"));
        assert!(rp.origin_allowed("android:apk-key-hash:abc"));
        assert!(!rp.origin_allowed("https://example.com:443"));
        assert!(!rp.origin_allowed("http://example.com"));
        assert!(!rp.origin_allowed("https://sub.example.com"));
        assert!(!rp.origin_allowed("android:apk-key-hash:abd"));
    }

    #[test]
    fn subdomain_rule_keeps_scheme_and_port() {
        let rp = RelyingParty::new("idm.example.com", vec!["https://idm.example.com:8080".into()], true, None);
        assert!(rp.origin_allowed("https://sub.idm.example.com:8080"));
        assert!(rp.origin_allowed("https://a.b.idm.example.com:8080"));
        assert!(!rp.origin_allowed("https://sub.idm.example.com"));
        assert!(!rp.origin_allowed("http://sub.idm.example.com:8080"));
        assert!(!rp.origin_allowed("https://evilidm.example.com:8080"));
        assert!(!rp.origin_allowed("https://.idm.example.com:8080"));
        assert!(!rp.origin_allowed("https://sub.idm.example.com:8080/path"));
    }

    #[test]
    fn hashes() {
        let rp = RelyingParty::new("example.org", vec![], false, Some("https://example.org"));
        assert_eq!(rp.rp_id_hash()[..4], [0xbf, 0xab, 0xc3, 0x74][..]);
        assert_ne!(rp.appid_hash().map(|h| h.to_vec()), Some(rp.rp_id_hash().to_vec()));
    }
}
