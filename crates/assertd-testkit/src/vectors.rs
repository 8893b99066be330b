//! The public WebAuthn assertion vectors from `shared/vectors/` (copied into
//! this crate's `data/`, see its README), typed.

use serde::Deserialize;

/// Flags as parsed by the vector checker.
#[derive(Debug, Clone, Deserialize)]
pub struct VectorFlags {
    /// UP.
    pub up: bool,
    /// UV.
    pub uv: bool,
    /// BE.
    pub be: bool,
    /// BS.
    pub bs: bool,
}

/// One assertion vector. Byte strings are base64url.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
pub struct AssertionVector {
    pub id: String,
    pub alg: i64,
    pub alg_name: String,
    pub rp_id: String,
    pub origin: String,
    pub expected_origin: String,
    pub expected_challenge_b64url: String,
    pub credential_id_b64url: String,
    pub user_handle_b64url: Option<String>,
    pub public_key_cose_b64url: String,
    pub client_data_json_b64url: String,
    pub authenticator_data_b64url: String,
    pub signature_b64url: String,
    pub stored_sign_count: u32,
    pub sign_count: u32,
    pub flags: VectorFlags,
    pub require_uv: bool,
    pub registered_be: Option<bool>,
    pub appid: Option<String>,
    pub appid_used: Option<bool>,
    pub allow_cross_origin: Option<bool>,
    pub allowed_top_origins: Option<Vec<String>>,
    pub allow_subdomain_origin: Option<bool>,
    pub legacy_alg: Option<bool>,
    pub expect: String,
}

/// The vectors' `expect` values, each naming a single failing check.
pub const EXPECTS: [&str; 9] = [
    "valid",
    "signature_invalid",
    "challenge_mismatch",
    "origin_mismatch",
    "rp_id_mismatch",
    "counter_regression",
    "uv_required",
    "cross_origin_not_allowed",
    "unsupported_alg",
];

#[allow(clippy::expect_used)]
fn load(json: &str) -> Vec<AssertionVector> {
    serde_json::from_str(json).expect("vector file parses")
}

/// `assertions.json`: 69 vectors from public sources.
pub fn assertions() -> Vec<AssertionVector> {
    load(include_str!("../data/assertions.json"))
}

/// `assertions_derived.json`: 3 derived RS1/PS256 vectors.
pub fn derived_assertions() -> Vec<AssertionVector> {
    load(include_str!("../data/assertions_derived.json"))
}

impl AssertionVector {
    /// The expected challenge as bytes: the base64url decoding of
    /// `expected_challenge_b64url`, or the string's own bytes where a source
    /// used a string that is not base64url.
    pub fn expected_challenge(&self) -> Vec<u8> {
        crate::encoding::from_b64url(&self.expected_challenge_b64url).unwrap_or_else(|_| self.expected_challenge_b64url.as_bytes().to_vec())
    }

    /// Decodes one of the vector's base64url fields.
    #[allow(clippy::expect_used)]
    pub fn bytes(field: &str) -> Vec<u8> {
        crate::encoding::from_b64url(field).expect("vector field is base64url")
    }
}

/// Flags of a registration's authenticator data.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
pub struct RegistrationFlags {
    pub up: bool,
    pub uv: bool,
    pub be: bool,
    pub bs: bool,
    pub at: bool,
    pub ed: bool,
}

/// One registration vector (`registrations.json`). Byte strings are
/// base64url; `trust_anchors_pem` are the roots the source's test relied on.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
pub struct RegistrationVector {
    pub id: String,
    pub fmt: Option<String>,
    pub att_stmt_alg: Option<i64>,
    pub x5c_len: Option<usize>,
    pub credential_alg: Option<i64>,
    pub credential_alg_name: Option<String>,
    pub rp_id: String,
    pub origin: Option<String>,
    pub expected_origin: Option<String>,
    pub expected_challenge_b64url: String,
    pub credential_id_b64url: Option<String>,
    pub credential_public_key_cose_b64url: Option<String>,
    pub aaguid: Option<String>,
    pub client_data_json_b64url: String,
    pub attestation_object_b64url: String,
    pub flags: Option<RegistrationFlags>,
    pub sign_count: Option<u32>,
    pub require_uv: Option<bool>,
    pub trust_anchors_pem: Option<Vec<String>>,
    pub verification_time: Option<String>,
    pub allow_cross_origin: Option<bool>,
    pub allowed_top_origins: Option<Vec<String>>,
    pub allow_subdomain_origin: Option<bool>,
    pub expect: String,
    pub source_expect: String,
}

/// `registrations.json`: 161 registration vectors from public sources.
#[allow(clippy::expect_used)]
pub fn registrations() -> Vec<RegistrationVector> {
    serde_json::from_str(include_str!("../data/registrations.json")).expect("vector file parses")
}

impl RegistrationVector {
    /// The expected challenge as bytes (as [`AssertionVector::expected_challenge`]).
    pub fn expected_challenge(&self) -> Vec<u8> {
        crate::encoding::from_b64url(&self.expected_challenge_b64url).unwrap_or_else(|_| self.expected_challenge_b64url.as_bytes().to_vec())
    }
}
