//! The `/.well-known/webauthn` document of a relying party (WebAuthn L3
//! §5.11, "Using Web Authentication across related origins"), from the
//! origins it is configured with: `assertd config well-known --rp ID`.
//!
//! The document lists the web origins outside the RP ID's own site that
//! may run ceremonies for it. Origins on the RP ID or its subdomains need
//! no entry (the RP ID is already a registrable domain suffix of theirs),
//! and app origins (`android:apk-key-hash:…`) are bound by the platform's
//! own association files, not this one. Clients count the distinct
//! registrable origin labels the document names and need honour only five
//! (§5.11: "MUST support at least five"): a document that needs more is
//! refused here rather than half ignored by browsers.

use assertd_verify::parse_web_origin;

/// The fewest registrable origin labels every client honours (WebAuthn L3
/// §5.11).
pub const MAX_LABELS: usize = 5;

/// A document to serve, and what went into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WellKnown {
    /// `{"origins": [...]}`, pretty-printed.
    pub json: String,
    /// The registrable origin labels it spans, in order.
    pub labels: Vec<String>,
    /// Configured origins left out, each with why.
    pub skipped: Vec<(String, &'static str)>,
}

/// The registrable origin label of `host` (§4: the first label of its
/// registrable domain), or `None` (an IP address, a public suffix).
fn label(host: &str) -> Option<String> {
    // An IP address has no registrable domain (the public suffix list
    // would read its last octets as a name).
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return None;
    }
    let domain = psl::domain(host.as_bytes())?;
    let domain = std::str::from_utf8(domain.as_bytes()).ok()?;
    domain.split('.').next().filter(|l| !l.is_empty()).map(str::to_owned)
}

/// The document for relying party `rp_id` accepting `origins`.
pub fn well_known(rp_id: &str, origins: &[String]) -> Result<WellKnown, String> {
    let mut related = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    let mut skipped = Vec::new();
    for origin in origins {
        let Some((scheme, host, _)) = parse_web_origin(origin) else {
            skipped.push((origin.clone(), "not a web origin (an app's origin is bound by its platform's association file)"));
            continue;
        };
        if host == rp_id || host.ends_with(&format!(".{rp_id}")) {
            skipped.push((origin.clone(), "on the RP ID's own site: needs no entry"));
            continue;
        }
        if scheme != "https" {
            return Err(format!("{origin}: a related origin must be https"));
        }
        let l = label(&host).ok_or_else(|| format!("{origin}: {host:?} has no registrable domain (an IP address or a public suffix)"))?;
        if !labels.contains(&l) {
            labels.push(l);
        }
        related.push(origin.clone());
    }
    if related.is_empty() {
        return Err(format!("relying party {rp_id:?} has no origins outside its own site: it needs no /.well-known/webauthn"));
    }
    if labels.len() > MAX_LABELS {
        return Err(format!(
            "the related origins of {rp_id:?} span {} registrable origin labels ({}); browsers need honour only {MAX_LABELS} (WebAuthn L3 §5.11), so some would fail: use fewer brands, or another RP ID for some",
            labels.len(),
            labels.join(", ")
        ));
    }
    let json = serde_json::to_string_pretty(&serde_json::json!({ "origins": related })).map_err(|e| e.to_string())?;
    Ok(WellKnown { json, labels, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn lists_the_origins_outside_the_rp_ids_site() {
        let w = well_known(
            "example.com",
            &strings(&[
                "https://example.com",
                "https://login.example.com",
                "https://example.co.uk",
                "https://www.example.de",
                "https://examplecars.com",
                "android:apk-key-hash:abc",
            ]),
        )
        .unwrap();
        let doc: serde_json::Value = serde_json::from_str(&w.json).unwrap();
        assert_eq!(doc, serde_json::json!({ "origins": ["https://example.co.uk", "https://www.example.de", "https://examplecars.com"] }));
        // example.co.uk and www.example.de share the label "example".
        assert_eq!(w.labels, ["example", "examplecars"]);
        assert_eq!(w.skipped.len(), 3);
    }

    #[test]
    fn refuses_what_browsers_would_not_honour() {
        let six = strings(&["https://a.com", "https://b.com", "https://c.com", "https://d.com", "https://e.com", "https://f.com"]);
        let e = well_known("example.com", &six).unwrap_err();
        assert!(e.contains("6 registrable origin labels (a, b, c, d, e, f)"), "{e}");
        assert!(well_known("example.com", &six[..5]).is_ok());
        assert!(well_known("example.com", &strings(&["http://example.net"])).unwrap_err().contains("must be https"));
        for ip in ["https://192.0.2.1", "https://[2001:db8::1]"] {
            assert!(well_known("example.com", &strings(&[ip])).unwrap_err().contains("no registrable domain"), "{ip}");
        }
        assert!(well_known("example.com", &strings(&["https://example.com"])).unwrap_err().contains("needs no"));
        // A private suffix on the list: each github.io site is its own label.
        let w = well_known("example.com", &strings(&["https://alice.github.io", "https://bob.github.io"])).unwrap();
        assert_eq!(w.labels, ["alice", "bob"]);
    }
}
