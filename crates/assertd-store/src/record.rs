//! The stored credential record and its validation.

use assertd_verify::{Algorithm, Attachment, KeyError, PublicKey};

/// Longest credential ID WebAuthn allows (L3 "Credential ID": at most 1023
/// bytes).
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;
/// Longest user handle WebAuthn allows (user.id: at most 64 bytes).
pub const MAX_USER_HANDLE_LEN: usize = 64;
/// Longest COSE key accepted (an RSA-8192 key is about 1.1 KB).
pub const MAX_PUBLIC_KEY_LEN: usize = 2048;

/// A registered credential, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    /// The relying party ID.
    pub rp_id: String,
    /// The credential ID.
    pub credential_id: Vec<u8>,
    /// The user handle.
    pub user_handle: Vec<u8>,
    /// The COSE_Key bytes.
    pub public_key_cose: Vec<u8>,
    /// The last accepted signature counter.
    pub sign_count: u32,
    /// BE at registration.
    pub backup_eligible: bool,
    /// BS as last seen.
    pub backup_state: bool,
    /// AAGUID, 16 bytes.
    pub aaguid: Vec<u8>,
    /// Attestation verified at registration.
    pub attested: bool,
    /// Transports ("usb", "nfc", "ble", "internal", "hybrid", ...).
    pub transports: Vec<String>,
    /// Revoked.
    pub revoked: bool,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Last successful use, Unix milliseconds.
    pub last_used_at_ms: Option<i64>,
    /// The attestation's root vouched for the AAGUID (the model): the FIDO
    /// metadata lists it for that AAGUID, or the operator bound it to it.
    /// Only a vouched AAGUID satisfies an AAGUID allow list.
    pub aaguid_vouched: bool,
    /// The subject of the root the attestation chain reached (empty when
    /// none, or for records stored before it was kept).
    pub trust_anchor: String,
    /// `credProps.rk` as the client reported it at registration (`None`:
    /// not reported).
    pub discoverable: Option<bool>,
    /// `authenticatorAttachment` at registration, when reported.
    pub attachment: Option<Attachment>,
    /// WebAuthn L3 `uvInitialized`: some ceremony with this credential had
    /// the UV flag set.
    pub uv_initialized: bool,
    /// The temporary access pass the registration redeemed (its id; empty:
    /// none). Kept as stored by replaces and imports of an existing id.
    pub access_pass_id: String,
}

/// The longest `trust_anchor` kept (a certificate subject).
pub const MAX_TRUST_ANCHOR_LEN: usize = 512;

/// Why a credential record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidCredential {
    /// A field is missing or out of bounds.
    #[error("{field}: {problem}")]
    Field {
        /// The field's name.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The public key does not parse or its algorithm is unsupported.
    #[error("public_key_cose: {0}")]
    Key(#[from] KeyError),
}

/// Refuses an ECDSA key whose point is not on its curve (or is the point at
/// infinity): such a key can never verify, and accepting it would hide a
/// broken or hostile registration until every sign-in fails. ring validates
/// the point as an ECDH peer key (an ephemeral key agreement; ~0.1 ms, at
/// registration only).
fn check_point(key: &PublicKey) -> Result<(), InvalidCredential> {
    use ring::agreement;
    let Some(point) = key.ec_point() else { return Ok(()) };
    let (alg, curve): (&'static agreement::Algorithm, &str) = match key.algorithm() {
        Algorithm::Es384 => (&agreement::ECDH_P384, "P-384"),
        _ => (&agreement::ECDH_P256, "P-256"),
    };
    let rng = ring::rand::SystemRandom::new();
    let ours = agreement::EphemeralPrivateKey::generate(alg, &rng)
        .map_err(|_| field("public_key_cose", "cannot check the key: no randomness available"))?;
    agreement::agree_ephemeral(ours, &agreement::UnparsedPublicKey::new(alg, point), |_| ())
        .map_err(|_| field("public_key_cose", format!("the public key is not a valid point on {curve}")))
}

fn field(field: &'static str, problem: impl Into<String>) -> InvalidCredential {
    InvalidCredential::Field { field, problem: problem.into() }
}

impl StoredCredential {
    /// Checks every field and parses the key; returns the parsed key.
    pub fn validate(&self) -> Result<PublicKey, InvalidCredential> {
        if self.rp_id.is_empty() || self.rp_id.len() > 253 {
            return Err(field("rp_id", "must be 1 to 253 bytes"));
        }
        if self.credential_id.is_empty() || self.credential_id.len() > MAX_CREDENTIAL_ID_LEN {
            return Err(field("credential_id", format!("must be 1 to {MAX_CREDENTIAL_ID_LEN} bytes, got {}", self.credential_id.len())));
        }
        if self.user_handle.len() > MAX_USER_HANDLE_LEN {
            return Err(field("user_handle", format!("must be at most {MAX_USER_HANDLE_LEN} bytes, got {}", self.user_handle.len())));
        }
        if !(self.aaguid.is_empty() || self.aaguid.len() == 16) {
            return Err(field("aaguid", format!("must be 16 bytes, got {}", self.aaguid.len())));
        }
        if self.access_pass_id.len() > 64 || !self.access_pass_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(field("access_pass_id", "must be at most 64 printable ASCII characters"));
        }
        if self.aaguid_vouched && (!self.attested || self.aaguid16() == [0; 16]) {
            return Err(field("aaguid_vouched", "needs attested and a non-zero aaguid"));
        }
        if self.trust_anchor.len() > MAX_TRUST_ANCHOR_LEN {
            return Err(field("trust_anchor", format!("must be at most {MAX_TRUST_ANCHOR_LEN} bytes")));
        }
        if self.backup_state && !self.backup_eligible {
            return Err(field("backup_state", "cannot be set without backup_eligible"));
        }
        if self.transports.len() > 16
            || self.transports.iter().any(|t| t.is_empty() || t.len() > 32 || !t.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        {
            return Err(field("transports", "at most 16 names of lower-case letters and '-'"));
        }
        if self.public_key_cose.len() > MAX_PUBLIC_KEY_LEN {
            return Err(field("public_key_cose", format!("must be at most {MAX_PUBLIC_KEY_LEN} bytes")));
        }
        let key = PublicKey::from_cose(&self.public_key_cose)?;
        check_point(&key)?;
        Ok(key)
    }

    /// The AAGUID as 16 bytes (all zero when not recorded).
    pub fn aaguid16(&self) -> [u8; 16] {
        self.aaguid.as_slice().try_into().unwrap_or([0; 16])
    }
}
