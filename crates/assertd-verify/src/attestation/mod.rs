//! Attestation objects and statements (W3C WebAuthn L3 §6.5, §8).
//!
//! The attestation object is decoded with `ciborium` under explicit bounds
//! (size, nesting, no trailing bytes, no duplicate keys). Each statement
//! format's verification procedure (§8) returns the attestation type and
//! trust path; [`assess`] then decides whether the trust path reaches a
//! trust anchor. Pure: no I/O, no clock (the caller passes "now").

pub mod cert;
mod format;
mod formats;
mod tpm;

use crate::cose::PublicKey;
use crate::reason::ReasonCode;
use ciborium::Value;

pub use cert::Anchor;
pub use format::Format;

/// The largest attestation object accepted (bytes).
pub const MAX_ATTESTATION_OBJECT: usize = 64 * 1024;
/// The deepest CBOR nesting accepted in an attestation object.
const MAX_DEPTH: usize = 16;

/// The attestation type (§6.5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationType {
    /// Format `none`.
    None,
    /// Signed with the credential key itself.
    SelfAttestation,
    /// A batch attestation key with a certificate chain.
    Basic,
    /// A per-credential certificate from an attestation CA (TPM).
    AttCa,
    /// A per-credential certificate from an anonymization CA (Apple).
    AnonCa,
}

impl AttestationType {
    /// Lower-case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::SelfAttestation => "self",
            Self::Basic => "basic",
            Self::AttCa => "attca",
            Self::AnonCa => "anonca",
        }
    }
}

/// A decoded attestation object (§6.5): `{ fmt, attStmt, authData }`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttestationObject {
    /// The statement format identifier.
    pub fmt: String,
    /// The statement, a CBOR map.
    pub att_stmt: Vec<(Value, Value)>,
    /// The authenticator data, raw.
    pub auth_data: Vec<u8>,
}

impl AttestationObject {
    /// Decodes an attestation object: one CBOR map with exactly the text
    /// keys `fmt`, `attStmt` and `authData`, nothing after it.
    pub fn parse(bytes: &[u8]) -> Result<Self, AttestationError> {
        if bytes.len() > MAX_ATTESTATION_OBJECT {
            return Err(AttestationError::Malformed(format!("attestationObject is {} bytes, over {MAX_ATTESTATION_OBJECT}", bytes.len())));
        }
        let mut reader = bytes;
        let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH)
            .map_err(|e| AttestationError::Malformed(format!("attestationObject is not CBOR: {e}")))?;
        if !reader.is_empty() {
            return Err(AttestationError::Malformed(format!("{} trailing bytes after the attestationObject", reader.len())));
        }
        let Value::Map(entries) = value else {
            return Err(AttestationError::Malformed("attestationObject is not a CBOR map".into()));
        };
        let map = Map::new(&entries, "attestationObject")?;
        map.only(&["fmt", "attStmt", "authData"])?;
        let fmt = match map.get("fmt") {
            Some(Value::Text(t)) => t.clone(),
            _ => return Err(AttestationError::Malformed("attestationObject.fmt is missing or not text".into())),
        };
        let att_stmt = match map.get("attStmt") {
            Some(Value::Map(m)) => m.clone(),
            _ => return Err(AttestationError::Malformed("attestationObject.attStmt is missing or not a map".into())),
        };
        let auth_data = match map.get("authData") {
            Some(Value::Bytes(b)) => b.clone(),
            _ => return Err(AttestationError::Malformed("attestationObject.authData is missing or not bytes".into())),
        };
        Ok(Self { fmt, att_stmt, auth_data })
    }
}

/// The most entries a map of the attestation object may hold: the object
/// has 3 keys, the largest statement (tpm) 6. Checked before anything else,
/// so a map of thousands of keys costs one comparison, not a search per key.
pub const MAX_MAP_ENTRIES: usize = 8;

/// A CBOR map with text keys, each at most once.
pub(crate) struct Map<'v> {
    entries: &'v [(Value, Value)],
    what: &'static str,
}

impl<'v> Map<'v> {
    /// Checks the keys: at most [`MAX_MAP_ENTRIES`], all text, none twice.
    pub(crate) fn new(entries: &'v [(Value, Value)], what: &'static str) -> Result<Self, AttestationError> {
        if entries.len() > MAX_MAP_ENTRIES {
            return Err(AttestationError::Malformed(format!("{what} has {} keys (at most {MAX_MAP_ENTRIES})", entries.len())));
        }
        let mut keys: Vec<&str> = Vec::with_capacity(entries.len());
        for (k, _) in entries {
            let Value::Text(k) = k else {
                return Err(AttestationError::Malformed(format!("{what} has a key that is not text")));
            };
            if keys.contains(&k.as_str()) {
                return Err(AttestationError::Malformed(format!("{what} has the key {k:?} twice")));
            }
            keys.push(k);
        }
        Ok(Self { entries, what })
    }

    /// Refuses keys outside `allowed`.
    pub(crate) fn only(&self, allowed: &[&str]) -> Result<(), AttestationError> {
        for (k, _) in self.entries {
            if let Value::Text(k) = k
                && !allowed.contains(&k.as_str())
            {
                return Err(AttestationError::Malformed(format!("{} has an unexpected key {:?}", self.what, crate::text::truncate(k))));
            }
        }
        Ok(())
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'v Value> {
        self.entries.iter().find(|(k, _)| matches!(k, Value::Text(t) if t == key)).map(|(_, v)| v)
    }

    pub(crate) fn bytes(&self, key: &str) -> Result<&'v [u8], AttestationError> {
        match self.get(key) {
            Some(Value::Bytes(b)) => Ok(b),
            Some(_) => Err(AttestationError::Malformed(format!("{}.{key} is not a byte string", self.what))),
            None => Err(AttestationError::Malformed(format!("{}.{key} is missing", self.what))),
        }
    }

    pub(crate) fn int(&self, key: &str) -> Result<i64, AttestationError> {
        match self.get(key) {
            Some(Value::Integer(i)) => {
                i64::try_from(*i).map_err(|_| AttestationError::Malformed(format!("{}.{key} is out of range", self.what)))
            }
            Some(_) => Err(AttestationError::Malformed(format!("{}.{key} is not an integer", self.what))),
            None => Err(AttestationError::Malformed(format!("{}.{key} is missing", self.what))),
        }
    }

    /// `x5c`: 1 to [`cert::MAX_CHAIN`] DER certificates; `None` when absent.
    pub(crate) fn x5c(&self) -> Result<Option<Vec<&'v [u8]>>, AttestationError> {
        let Some(v) = self.get("x5c") else { return Ok(None) };
        let Value::Array(items) = v else {
            return Err(AttestationError::Malformed(format!("{}.x5c is not an array", self.what)));
        };
        if items.is_empty() || items.len() > cert::MAX_CHAIN {
            return Err(AttestationError::Malformed(format!(
                "{}.x5c holds {} certificates (1 to {} allowed)",
                self.what,
                items.len(),
                cert::MAX_CHAIN
            )));
        }
        items
            .iter()
            .map(|c| match c {
                Value::Bytes(b) => Ok(b.as_slice()),
                _ => Err(AttestationError::Malformed(format!("{}.x5c holds something other than a byte string", self.what))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// What a statement's verification procedure gets (§8: "given attStmt,
/// authData and clientDataHash").
#[derive(Debug, Clone, Copy)]
pub struct StatementInput<'a> {
    /// The raw authenticator data.
    pub auth_data: &'a [u8],
    /// SHA-256 of clientDataJSON.
    pub client_data_hash: &'a [u8; 32],
    /// authData's rpIdHash.
    pub rp_id_hash: &'a [u8; 32],
    /// authData's AAGUID.
    pub aaguid: &'a [u8; 16],
    /// authData's credential id.
    pub credential_id: &'a [u8],
    /// The credential public key from authData, parsed.
    pub key: &'a PublicKey,
}

/// A statement that verified: its type and trust path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The attestation type.
    pub kind: AttestationType,
    /// The trust path: `x5c`, the attestation certificate first. Empty for
    /// none and self attestation.
    pub x5c: Vec<Vec<u8>>,
    /// The statement's signature (or nonce) covers the AAGUID in
    /// authenticator data, or the AAGUID is all zero (claims nothing);
    /// false for a non-zero AAGUID under fido-u2f, whose signature does not
    /// cover it. Covering is not vouching: only the root the chain reaches
    /// can vouch for a model (see [`vouches`]).
    pub covers_aaguid: bool,
    /// The attestation certificate carries the id-fido-gen-ce-aaguid
    /// extension (§8.2.1), equal to the AAGUID in authenticator data.
    pub aaguid_in_certificate: bool,
    /// The statement's signature uses SHA-1 (RS1): it verifies, but SHA-1
    /// no longer resists collisions, so the attestation is not trusted.
    pub sha1_signature: bool,
    /// Why the statement, though it verified, cannot be trusted whatever
    /// root its chain reaches (a TPM key that can leave the TPM).
    pub untrusted: Option<String>,
}

/// Why an attestation object, statement or trust path was refused, by
/// kind; [`AttestationError::reason`] is the reason code a registration
/// reports for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// The object, statement or a certificate does not decode (CBOR, keys,
    /// types, sizes, DER).
    #[error("{0}")]
    Malformed(String),
    /// A format, or a statement algorithm, assertd does not verify.
    #[error("{0}")]
    Unsupported(String),
    /// Well-formed, but it does not verify: a signature, a nonce, a key or
    /// a certificate's contents.
    #[error("{0}")]
    Invalid(String),
    /// The trust path does not validate up to an anchor.
    #[error("{0}")]
    Untrusted(String),
}

impl AttestationError {
    /// The reason code a registration reports for this error.
    pub fn reason(&self) -> ReasonCode {
        match self {
            Self::Malformed(_) | Self::Invalid(_) => ReasonCode::AttestationInvalid,
            Self::Unsupported(_) => ReasonCode::AttestationFormatUnsupported,
            Self::Untrusted(_) => ReasonCode::AttestationUntrusted,
        }
    }

    /// The same error, its message prefixed with `what` (where it arose).
    pub fn within(self, what: &str) -> Self {
        match self {
            Self::Malformed(m) => Self::Malformed(format!("{what}: {m}")),
            Self::Unsupported(m) => Self::Unsupported(format!("{what}: {m}")),
            Self::Invalid(m) => Self::Invalid(format!("{what}: {m}")),
            Self::Untrusted(m) => Self::Untrusted(format!("{what}: {m}")),
        }
    }
}

/// Runs the verification procedure of `fmt` (§8) on the statement; an
/// identifier that is no [`Format`] is [`AttestationError::Unsupported`].
pub fn verify_statement(fmt: &str, att_stmt: &[(Value, Value)], input: &StatementInput<'_>) -> Result<Statement, AttestationError> {
    let Some(format) = Format::parse(fmt) else {
        return Err(AttestationError::Unsupported(format!("attestation format {:?} is not supported", crate::text::truncate(fmt))));
    };
    format.verify(&Map::new(att_stmt, "attStmt")?, input)
}

/// Trust anchors for attestation, by statement format, each with the
/// authenticator models (AAGUIDs) the operator bound to it.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    anchors: Vec<(String, Anchor, Vec<[u8; 16]>)>,
}

impl TrustAnchors {
    /// Adds a root for one format that vouches for no model: a chain that
    /// reaches it is "attested by this root", never a model.
    pub fn add(&mut self, format: &str, anchor: Anchor) {
        self.add_bound(format, anchor, Vec::new());
    }

    /// Adds a root for one format that vouches for the models `aaguids`
    /// (`[[attestation_roots]] aaguids`).
    pub fn add_bound(&mut self, format: &str, anchor: Anchor, aaguids: Vec<[u8; 16]>) {
        self.anchors.push((format.to_owned(), anchor, aaguids));
    }

    /// The roots for a format, each with whether it vouches for `aaguid`.
    pub fn for_format(&self, format: &str, aaguid: &[u8; 16]) -> Vec<(&Anchor, bool)> {
        self.anchors.iter().filter(|(f, ..)| f == format).map(|(_, a, bound)| (a, bound.contains(aaguid))).collect()
    }

    /// How many roots there are.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// Whether a verified statement is trustworthy (§7.1 step 24 (assess trust)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// The trust path reached an anchor and the statement covers the
    /// AAGUID: only then may the credential be stored as attested.
    pub trusted: bool,
    /// The anchor's subject, when trusted.
    pub anchor: Option<String>,
    /// The position in `anchors` of the anchor reached, when trusted.
    pub reached: Option<usize>,
    /// Why not, when not trusted.
    pub why_not: Option<String>,
}

/// §7.1 step 24 (assess trust): none and self attestation are never trusted; otherwise
/// the x5c chain must validate up to one of `anchors` at `now` (Unix
/// seconds, certificates accepted within `skew` seconds of their validity).
/// A SHA-1 statement signature is trusted only with `insecure_allow_sha1`.
pub fn assess(statement: &Statement, anchors: &[&Anchor], now: u64, skew: u64, insecure_allow_sha1: bool) -> Trust {
    let untrusted = |why: String| Trust { trusted: false, anchor: None, reached: None, why_not: Some(why) };
    match statement.kind {
        AttestationType::None => return untrusted("no attestation (format none)".into()),
        AttestationType::SelfAttestation => return untrusted("self attestation has no trust path".into()),
        _ => {}
    }
    if anchors.is_empty() {
        return untrusted("no trust anchor is configured for this format or authenticator".into());
    }
    let chain: Vec<&[u8]> = statement.x5c.iter().map(Vec::as_slice).collect();
    // Only TPM AIK chains may take the fallback path (§8.3.1 certificates
    // mark certificatePolicies critical).
    let fallback = if statement.kind == AttestationType::AttCa { cert::Fallback::TpmAik } else { cert::Fallback::Never };
    match cert::verify_chain(&chain, anchors, now, skew, fallback) {
        Ok(_) if statement.sha1_signature && !insecure_allow_sha1 => {
            untrusted("the statement is signed with SHA-1 (RS1), not trusted unless registration.insecure_allow_sha1_attestation".into())
        }
        Ok(_) if statement.untrusted.is_some() => untrusted(statement.untrusted.clone().unwrap_or_default()),
        Ok(_) if !statement.covers_aaguid => untrusted("the statement does not cover the non-zero AAGUID (fido-u2f)".into()),
        Ok(i) => Trust { trusted: true, anchor: anchors.get(i).map(|a| a.subject.clone()), reached: Some(i), why_not: None },
        Err(e) => untrusted(e.to_string()),
    }
}

/// Whether a trusted statement vouches for its AAGUID (the model the
/// credential claims): the chain reached an anchor that vouches for that
/// AAGUID (`candidates`: each anchor offered, with whether the FIDO
/// metadata lists it for the AAGUID or the operator bound it to it), the
/// statement covers the AAGUID, and the AAGUID is not all zero. Under
/// packed and tpm, a root the metadata lists for several models
/// (`shared_root` says which) vouches only when the certificate names the
/// AAGUID, as §8.2.1 requires of such roots ("MUST be present"). Anything
/// else is "attested by this root", never a model.
pub fn vouches(
    fmt: Format,
    statement: &Statement,
    trust: &Trust,
    candidates: &[(&Anchor, bool)],
    aaguid: &[u8; 16],
    shared_root: impl Fn(&Anchor) -> bool,
) -> bool {
    let Some(reached) = trust.reached.and_then(|i| candidates.get(i)).map(|(a, _)| *a) else { return false };
    if !(trust.trusted && statement.covers_aaguid && *aaguid != [0; 16]) {
        return false;
    }
    if !candidates.iter().any(|(a, v)| *v && a.same_as(reached)) {
        return false;
    }
    statement.aaguid_in_certificate || !fmt.names_its_model_under_shared_roots() || !shared_root(reached)
}
