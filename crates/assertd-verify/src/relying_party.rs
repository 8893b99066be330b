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
    subdomain_bases: Vec<(String, String, u16)>,
}

fn sha256(s: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, s.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A web origin as the WHATWG URL parser reads it: scheme, host and port.
/// `None` unless `origin` is exactly the ASCII serialization of a tuple
/// origin (`scheme://host[:port]`, lower case, the default port left out):
/// no user info, path, query or fragment, no trailing dot games, nothing a
/// browser would not send as `clientDataJSON.origin`.
pub fn parse_web_origin(origin: &str) -> Option<(String, String, u16)> {
    let url = url::Url::parse(origin).ok()?;
    if !matches!(url.scheme(), "https" | "http") {
        return None;
    }
    match url.origin() {
        url::Origin::Tuple(scheme, host, port) if url.origin().ascii_serialization() == origin => Some((scheme, host.to_string(), port)),
        _ => None,
    }
}

/// True when `host` is a strict subdomain of `base`: a non-empty label
/// sequence, a dot, then `base` (compared on label boundaries).
fn is_subdomain(host: &str, base: &str) -> bool {
    host.len() > base.len() + 1 && host.ends_with(base) && host.as_bytes()[host.len() - base.len() - 1] == b'.'
}

impl RelyingParty {
    /// Prepares an RP. `origins` are matched exactly (ASCII, as serialized by
    /// browsers); with `allow_subdomains`, an origin with the same scheme and
    /// port whose host is a subdomain of a listed origin's host also matches.
    /// `appid` is the legacy FIDO U2F AppID, if the RP migrated from U2F.
    pub fn new(id: impl Into<String>, origins: Vec<String>, allow_subdomains: bool, appid: Option<&str>) -> Self {
        let id = id.into();
        let subdomain_bases = if allow_subdomains { origins.iter().filter_map(|o| parse_web_origin(o)).collect() } else { Vec::new() };
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
        // assertd's subdomain rule (§13.4.9 lets an RP accept its
        // subdomains): the origin must parse as a web origin, with the same
        // scheme and port as a listed one, its host a subdomain on a label
        // boundary.
        if self.subdomain_bases.is_empty() {
            return false;
        }
        let Some((scheme, host, port)) = parse_web_origin(origin) else { return false };
        self.subdomain_bases.iter().any(|(s, h, p)| *s == scheme && *p == port && is_subdomain(&host, h))
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

    /// Issue 13 item 7: the hand-written split read `evil.test:1.example.com`
    /// as the host of `https://evil.test:1.example.com:8443`.
    #[test]
    fn subdomain_rule_parses_origins() {
        let rp = RelyingParty::new("example.com", vec!["https://example.com:8443".into()], true, None);
        assert!(rp.origin_allowed("https://login.example.com:8443"));
        for bad in [
            "https://evil.test:1.example.com:8443",
            "https://user@login.example.com:8443",
            "https://login.example.com:8443/",
            "https://login.example.com:8443?x",
            "https://LOGIN.example.com:8443",
            "https://login.example.com.:8443",
            "https://login.example.com:08443",
            "https://login%2eexample.com:8443",
            "https://.example.com:8443",
        ] {
            assert!(!rp.origin_allowed(bad), "{bad}");
        }
        // The default port is left out of a serialized origin.
        let rp = RelyingParty::new("example.com", vec!["https://example.com".into()], true, None);
        assert!(rp.origin_allowed("https://a.example.com"));
        assert!(!rp.origin_allowed("https://a.example.com:443"));
        assert_eq!(parse_web_origin("https://a.example.com"), Some(("https".into(), "a.example.com".into(), 443)));
        assert_eq!(parse_web_origin("android:apk-key-hash:abc"), None);
    }

    #[test]
    fn hashes() {
        let rp = RelyingParty::new("example.org", vec![], false, Some("https://example.org"));
        assert_eq!(rp.rp_id_hash()[..4], [0xbf, 0xab, 0xc3, 0x74][..]);
        assert_ne!(rp.appid_hash().map(|h| h.to_vec()), Some(rp.rp_id_hash().to_vec()));
    }
}
