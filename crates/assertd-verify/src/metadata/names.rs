//! Names people recognise for authenticators: the FIDO metadata's
//! description for a vouched AAGUID, else an operator-supplied AAGUID →
//! name list (`[metadata] aaguid_names_file`) for the passkey providers that
//! attest nothing (iCloud Keychain, Google Password Manager, password
//! managers).
//!
//! A name is for people only. An unattested AAGUID is whatever the client
//! wrote, so a name from the list says what the credential *claims* to be:
//! nothing in assertd decides on a name, and the API says where each came
//! from ([`NameSource`]).

use super::{Metadata, parse_aaguid};
use std::collections::HashMap;
use std::sync::Arc;

/// Largest names file read.
pub const MAX_FILE: usize = 8 * 1024 * 1024;
/// Longest name kept, in bytes.
pub const MAX_NAME: usize = 128;

/// Where a display name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    /// The FIDO metadata's description of a model the attestation vouched
    /// for.
    Metadata,
    /// The operator's AAGUID → name list: what the credential claims.
    List,
}

/// An AAGUID → name list.
#[derive(Debug, Clone, Default)]
pub struct AaguidNames {
    names: HashMap<[u8; 16], Arc<str>>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Entry {
    Name(String),
    Object { name: String },
}

impl AaguidNames {
    /// Parses a JSON object whose keys are AAGUIDs (UUID form) and whose
    /// values are names, or objects with a `name` member (other members,
    /// such as icons, are skipped). A key that is not a UUID, the all-zero
    /// AAGUID, an empty name, a name over [`MAX_NAME`] bytes or with control
    /// characters is an error naming the entry.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() > MAX_FILE {
            return Err(format!("{} bytes, over the limit of {MAX_FILE}", bytes.len()));
        }
        let raw: HashMap<String, Entry> =
            serde_json::from_slice(bytes).map_err(|e| format!("not a JSON object of AAGUID → name (or {{\"name\": ...}}): {e}"))?;
        let mut names = HashMap::with_capacity(raw.len());
        for (key, entry) in raw {
            let shown = crate::truncate(&key);
            let aaguid = parse_aaguid(&key).ok_or_else(|| format!("{shown:?} is not an AAGUID (a UUID)"))?;
            if aaguid == [0; 16] {
                return Err(format!("{shown:?}: the all-zero AAGUID names no authenticator"));
            }
            let (Entry::Name(name) | Entry::Object { name }) = entry;
            if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
                return Err(format!("{shown:?}: a name must be 1 to {MAX_NAME} bytes without control characters"));
            }
            names.insert(aaguid, Arc::from(name));
        }
        Ok(Self { names })
    }

    /// The listed name of `aaguid`.
    pub fn get(&self, aaguid: &[u8; 16]) -> Option<&Arc<str>> {
        self.names.get(aaguid)
    }

    /// How many AAGUIDs are named.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when nothing is named.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The display name of a credential's authenticator: the metadata's
/// description when the attestation vouched for the AAGUID and the metadata
/// lists it, else the list's name; `None` for the zero AAGUID or an AAGUID
/// neither knows.
pub fn display_name(metadata: Option<&Metadata>, names: &AaguidNames, aaguid: &[u8; 16], vouched: bool) -> Option<(Arc<str>, NameSource)> {
    if *aaguid == [0; 16] {
        return None;
    }
    if vouched && let Some(m) = metadata.and_then(|m| m.model(aaguid)).filter(|m| !m.description.is_empty()) {
        return Some((m.description.clone(), NameSource::Metadata));
    }
    names.get(aaguid).map(|n| (n.clone(), NameSource::List))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_and_their_limits() {
        let n = AaguidNames::from_json(
            br#"{"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": "iCloud Keychain",
                 "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4": {"name": "Google Password Manager", "icon_dark": "data:..."}}"#,
        )
        .unwrap();
        assert_eq!(n.len(), 2);
        let icloud = parse_aaguid("fbfc3007-154e-4ecc-8c0b-6e020557d7bd").unwrap();
        assert_eq!(n.get(&icloud).map(|s| &**s), Some("iCloud Keychain"));
        for (bad, says) in [
            (r#"{"nope": "x"}"#, "not an AAGUID"),
            (r#"{"00000000-0000-0000-0000-000000000000": "x"}"#, "all-zero"),
            (r#"{"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": ""}"#, "1 to 128 bytes"),
            (r#"{"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": "a\u0007b"}"#, "control"),
            (r#"{"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": 7}"#, "not a JSON object"),
            ("[]", "not a JSON object"),
        ] {
            let e = AaguidNames::from_json(bad.as_bytes()).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let long = format!(r#"{{"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": "{}"}}"#, "x".repeat(MAX_NAME + 1));
        assert!(AaguidNames::from_json(long.as_bytes()).is_err());
    }

    #[test]
    fn a_listed_name_never_passes_for_a_vouched_one() {
        let aaguid = [7u8; 16];
        let names = AaguidNames::from_json(br#"{"07070707-0707-0707-0707-070707070707": "Claimed Key"}"#).unwrap();
        assert_eq!(display_name(None, &names, &aaguid, true), Some((Arc::from("Claimed Key"), NameSource::List)));
        assert_eq!(display_name(None, &names, &aaguid, false), Some((Arc::from("Claimed Key"), NameSource::List)));
        assert_eq!(display_name(None, &names, &[0; 16], false), None);
        assert_eq!(display_name(None, &AaguidNames::default(), &aaguid, false), None);
    }
}
