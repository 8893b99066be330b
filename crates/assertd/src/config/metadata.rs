//! `[metadata]`: FIDO MDS3 metadata for registration and sign-in.
//!
//! ```toml
//! [metadata]
//! path = "/var/lib/assertd/mds/blob.jwt"   # the BLOB as downloaded from mds3.fidoalliance.org
//! format = "blob"                          # or "payload": the decoded JSON, vouched for by the operator
//! root_file = "/etc/assertd/fido-root.pem" # the FIDO Alliance MDS root (format = "blob")
//! ```
//!
//! Read when the config is compiled: at start, at every reload, and when
//! the file at `path` changes (the config watch checks its size and time).
//! A BLOB whose signature or chain does not verify is refused like any
//! invalid config (at start: the service does not start; at reload: the
//! running metadata stays).

use super::invalid::Invalid;
use assertd_verify::attestation::Anchor;
use assertd_verify::metadata::{AaguidNames, Metadata};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

/// How the file at `path` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetadataFormat {
    /// The signed MDS3 BLOB (a JWT), checked against `root_file`.
    Blob,
    /// The decoded payload JSON.
    Payload,
}

/// What stale metadata (more than a day past its nextUpdate) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenStale {
    /// Stays in force (its revocations keep applying); the alert fires.
    #[default]
    Keep,
    /// Stays in force for sign-ins; every registration is refused
    /// (`METADATA_STALE`) until fresh metadata is loaded.
    RefuseRegistrations,
}

/// `[metadata]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataSection {
    /// The BLOB or payload file; `None`: no FIDO metadata (only names).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `blob` or `payload` (required with `path`).
    #[serde(default)]
    pub format: Option<MetadataFormat>,
    /// An AAGUID → name list for the authenticators the metadata does not
    /// vouch for (display only).
    #[serde(default)]
    pub aaguid_names_file: Option<PathBuf>,
    /// The root the BLOB's signing chain must reach (PEM); `blob` only.
    #[serde(default)]
    pub root_file: Option<PathBuf>,
    /// What stale metadata does.
    #[serde(default)]
    pub when_stale: WhenStale,
}

/// Metadata as loaded, with where it came from.
#[derive(Debug)]
pub struct LoadedMetadata {
    /// The payload.
    pub metadata: Metadata,
    /// The file it was read from (watched for changes).
    pub path: PathBuf,
    /// What it does once stale.
    pub when_stale: WhenStale,
    /// The root a BLOB was checked against; `None` for a payload.
    pub root: Option<Anchor>,
}

/// Reads and checks the metadata file.
pub fn compile(section: Option<&MetadataSection>) -> Result<Option<LoadedMetadata>, Invalid> {
    let Some(m) = section else { return Ok(None) };
    let (path, format) = match (&m.path, m.format) {
        (Some(path), Some(format)) => (path, format),
        (None, None) if m.root_file.is_none() => return Ok(None),
        (Some(_), None) => return Err(Invalid::new("metadata.format", "required with path: \"blob\" or \"payload\"")),
        _ => return Err(Invalid::new("metadata.path", "required with format and root_file")),
    };
    let bytes = std::fs::read(path).map_err(|e| Invalid::new("metadata.path", format!("cannot read {}: {e}", path.display())))?;
    let root = match (format, &m.root_file) {
        (MetadataFormat::Payload, Some(_)) => {
            return Err(Invalid::new("metadata.root_file", "only for format = \"blob\" (a payload carries no signature)"));
        }
        (MetadataFormat::Payload, None) => None,
        (MetadataFormat::Blob, None) => {
            return Err(Invalid::new("metadata.root_file", "format = \"blob\" needs the root its signature chains to"));
        }
        (MetadataFormat::Blob, Some(root_file)) => {
            let pem = std::fs::read(root_file)
                .map_err(|e| Invalid::new("metadata.root_file", format!("cannot read {}: {e}", root_file.display())))?;
            let der = CertificateDer::pem_slice_iter(&pem)
                .next()
                .ok_or_else(|| Invalid::new("metadata.root_file", format!("{} holds no PEM certificate", root_file.display())))?
                .map_err(|e| Invalid::new("metadata.root_file", format!("{}: {e}", root_file.display())))?;
            Some(Anchor::from_der(&der).map_err(|e| Invalid::new("metadata.root_file", e.to_string()))?)
        }
    };
    let metadata = decode(&bytes, root.as_ref()).map_err(|e| Invalid::new("metadata.path", format!("{}: {e}", path.display())))?;
    Ok(Some(LoadedMetadata { metadata, path: path.clone(), when_stale: m.when_stale, root }))
}

/// A metadata file's bytes: a BLOB checked against `root`, or (no root) a
/// payload.
fn decode(bytes: &[u8], root: Option<&Anchor>) -> Result<Metadata, String> {
    match root {
        None => Metadata::from_payload(bytes).map_err(|e| e.to_string()),
        Some(root) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            Metadata::from_blob(bytes, root, now).map_err(|e| e.to_string())
        }
    }
}

impl LoadedMetadata {
    /// Another metadata file in this one's format (a BLOB checked against
    /// the same root): a candidate for the policy preview.
    pub fn candidate(&self, bytes: &[u8]) -> Result<Metadata, String> {
        decode(bytes, self.root.as_ref())
    }
}

/// Reads the AAGUID → name list, if one is configured (empty otherwise).
pub fn compile_names(section: Option<&MetadataSection>) -> Result<Arc<AaguidNames>, Invalid> {
    let Some(path) = section.and_then(|m| m.aaguid_names_file.as_ref()) else { return Ok(Arc::default()) };
    let key = "metadata.aaguid_names_file";
    let bytes = std::fs::read(path).map_err(|e| Invalid::new(key, format!("cannot read {}: {e}", path.display())))?;
    AaguidNames::from_json(&bytes).map(Arc::new).map_err(|e| Invalid::new(key, format!("{}: {e}", path.display())))
}

/// The file's size and modification time, to notice a new one.
pub fn stamp(path: &std::path::Path) -> Option<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}
