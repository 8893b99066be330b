//! `clientDataJSON` (WebAuthn L3 §5.8.1) parsing.

use serde::Deserialize;
use std::borrow::Cow;

/// The members of `CollectedClientData` a verifier reads. Other members are
/// ignored, as the spec requires (§5.8.1.2: "ignore unknown members").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClientData<'a> {
    /// `type`: "webauthn.get" for an assertion.
    #[serde(rename = "type", borrow)]
    pub ty: Cow<'a, str>,
    /// `challenge`: base64url (no padding) of the challenge.
    #[serde(borrow)]
    pub challenge: Cow<'a, str>,
    /// `origin`: the caller's origin, e.g. `https://login.example.com` or
    /// "android:apk-key-hash:...".
    #[serde(borrow)]
    pub origin: Cow<'a, str>,
    /// `crossOrigin`: true in a cross-origin iframe. Absent means false.
    #[serde(rename = "crossOrigin", default)]
    pub cross_origin: Option<bool>,
    /// `topOrigin` (L3): the top-level origin when it differs from `origin`.
    #[serde(rename = "topOrigin", borrow, default)]
    pub top_origin: Option<Cow<'a, str>>,
}

/// Why clientDataJSON could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientDataError {
    /// §7.2 step 8 (UTF-8 decode): "Let JSONtext be the result of running UTF-8 decode".
    #[error("clientDataJSON is not valid UTF-8 (at byte {0})")]
    NotUtf8(usize),
    /// Not a JSON object of the expected shape: syntax error, wrong member
    /// type, missing or duplicate member.
    #[error("clientDataJSON is not a valid CollectedClientData: {0}")]
    Json(String),
}

impl<'a> ClientData<'a> {
    /// Parses clientDataJSON bytes (§7.2 steps 8–9 (UTF-8 decode, parse JSON)).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ClientDataError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ClientDataError::NotUtf8(e.valid_up_to()))?;
        // serde's derived struct visitor refuses duplicate members, so
        // `{"type":"webauthn.create","type":"webauthn.get"}` cannot smuggle a
        // second value past the check.
        serde_json::from_str(text).map_err(|e| ClientDataError::Json(e.to_string()))
    }

    /// True when the ceremony ran in a cross-origin context: `crossOrigin`
    /// true, or a `topOrigin` present.
    pub fn is_cross_origin(&self) -> bool {
        self.cross_origin == Some(true) || self.top_origin.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minimal_and_ignores_unknown_members() {
        let cd = ClientData::parse(br#"{"type":"webauthn.get","challenge":"AAEC","origin":"https://a.example","other_keys_can_be_added_here":"x","tokenBinding":{"status":"present"}}"#).unwrap();
        assert_eq!(cd.ty, "webauthn.get");
        assert_eq!(cd.challenge, "AAEC");
        assert_eq!(cd.origin, "https://a.example");
        assert!(!cd.is_cross_origin());
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let cd = ClientData::parse(br#"{"type":"webauthn\u002eget","challenge":"AAEC","origin":"https:\/\/a.example"}"#).unwrap();
        assert_eq!(cd.ty, "webauthn.get");
        assert_eq!(cd.origin, "https://a.example");
    }

    #[test]
    fn cross_origin_and_top_origin() {
        let cd = ClientData::parse(br#"{"type":"webauthn.get","challenge":"","origin":"o","crossOrigin":true}"#).unwrap();
        assert!(cd.is_cross_origin());
        let cd = ClientData::parse(br#"{"type":"webauthn.get","challenge":"","origin":"o","topOrigin":"https://t"}"#).unwrap();
        assert!(cd.is_cross_origin());
        assert_eq!(cd.top_origin.as_deref(), Some("https://t"));
    }

    #[test]
    fn rejects_bad_shapes() {
        for bad in [
            &b"[]"[..],
            b"\"webauthn.get\"",
            b"{}",
            b"{\"type\":\"webauthn.get\",\"challenge\":\"x\"}",
            b"{\"type\":1,\"challenge\":\"x\",\"origin\":\"o\"}",
            b"{\"type\":\"webauthn.get\",\"challenge\":\"x\",\"origin\":\"o\",\"crossOrigin\":\"yes\"}",
            b"{\"type\":\"webauthn.create\",\"type\":\"webauthn.get\",\"challenge\":\"x\",\"origin\":\"o\"}",
            b"{\"type\":\"webauthn.get\",\"challenge\":\"x\",\"origin\":\"o\"",
            b"",
        ] {
            assert!(matches!(ClientData::parse(bad), Err(ClientDataError::Json(_))), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn rejects_non_utf8() {
        assert_eq!(ClientData::parse(b"{\"type\":\"\xff\"}"), Err(ClientDataError::NotUtf8(9)));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut s = String::from(r#"{"type":"webauthn.get","challenge":"","origin":"o","x":"#);
        s.push_str(&"[".repeat(100_000));
        assert!(matches!(ClientData::parse(s.as_bytes()), Err(ClientDataError::Json(_))));
    }
}
