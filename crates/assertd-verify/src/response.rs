//! The browser's JSON, as it comes: `AuthenticationResponseJSON` and
//! `RegistrationResponseJSON` (WebAuthn L3 §5.1, `PublicKeyCredential.
//! toJSON()`), unpacked into the bytes the verifier reads.
//!
//! Parsed strictly, because a gateway relays this text from the page
//! unchanged:
//!
//! - the text is capped by the caller before it gets here (see
//!   [`max_json_len`]);
//! - every member the spec marks `required` that assertd reads must be
//!   present, with its IDL type; a member assertd reads may appear once
//!   (serde's derived visitors refuse a duplicate, so a second `rawId` cannot
//!   smuggle a value past a check);
//! - every `Base64URLString` is base64url without padding, canonical (no
//!   stray trailing bits): one byte string has one spelling;
//! - `id` equals `rawId` and `type` is `"public-key"`;
//! - members assertd does not read (`publicKey`, `publicKeyAlgorithm`, the
//!   registration's copy of `authenticatorData`, unknown extensions) are
//!   skipped, as the spec's dictionaries allow members added later. The
//!   copies are never read: the verifier reads the attestation object.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// `authenticatorAttachment`: how the authenticator was attached when the
/// credential was created or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attachment {
    /// The device's own authenticator (Windows Hello, Touch ID, Android).
    Platform,
    /// A roaming authenticator (a security key, a phone over hybrid).
    CrossPlatform,
}

impl Attachment {
    /// The WebAuthn spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Attachment::Platform => "platform",
            Attachment::CrossPlatform => "cross-platform",
        }
    }

    /// The attachment a WebAuthn spelling names; `None` for any other
    /// string (a value added by a later level is not an error, §5.1: the
    /// member is a DOMString, not the enum).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "platform" => Some(Attachment::Platform),
            "cross-platform" => Some(Attachment::CrossPlatform),
            _ => None,
        }
    }
}

/// Why a response JSON was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseJsonError {
    /// Longer than the cap.
    #[error("response_json is {len} bytes, over the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Not JSON, a required member missing, a member of the wrong type, or
    /// a member given twice.
    #[error("response_json is not a valid {what}: {detail}")]
    Json {
        /// The dictionary expected.
        what: &'static str,
        /// serde_json's account, with line and column.
        detail: String,
    },
    /// A `Base64URLString` that is not canonical unpadded base64url.
    #[error("response_json member {member} is not base64url (without padding)")]
    Base64 {
        /// The member's path.
        member: &'static str,
    },
    /// `id` and `rawId` name different credentials.
    #[error("response_json's id and rawId differ")]
    IdMismatch,
    /// `type` is not "public-key".
    #[error("response_json's type is {0:?}, not \"public-key\"")]
    Type(String),
    /// A member decoded to an empty value where one is required.
    #[error("response_json member {0} is empty")]
    Empty(&'static str),
}

/// The bytes of an `AuthenticationResponseJSON`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthenticationResponse {
    /// `rawId`.
    pub credential_id: Vec<u8>,
    /// `response.clientDataJSON`.
    pub client_data_json: Vec<u8>,
    /// `response.authenticatorData`.
    pub authenticator_data: Vec<u8>,
    /// `response.signature`.
    pub signature: Vec<u8>,
    /// `response.userHandle` (empty when absent or null).
    pub user_handle: Vec<u8>,
    /// `authenticatorAttachment`, when one the spec names.
    pub attachment: Option<Attachment>,
    /// `clientExtensionResults.appid`.
    pub appid: bool,
}

/// The bytes of a `RegistrationResponseJSON`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistrationResponse {
    /// `rawId`.
    pub credential_id: Vec<u8>,
    /// `response.clientDataJSON`.
    pub client_data_json: Vec<u8>,
    /// `response.attestationObject`.
    pub attestation_object: Vec<u8>,
    /// `response.transports` (`getTransports()`).
    pub transports: Vec<String>,
    /// `authenticatorAttachment`, when one the spec names.
    pub attachment: Option<Attachment>,
    /// `clientExtensionResults.credProps.rk`: whether the credential is
    /// discoverable, when the client said.
    pub discoverable: Option<bool>,
}

/// The longest response JSON worth parsing when its byte members are
/// capped at `bytes` in total: base64url grows 3 bytes to 4, plus 4 KiB for
/// member names, `transports` and extension results.
pub fn max_json_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4 + 4096
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a, R> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    raw_id: Cow<'a, str>,
    response: R,
    #[serde(borrow, default)]
    authenticator_attachment: Option<Cow<'a, str>>,
    client_extension_results: Extensions,
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssertionJson<'a> {
    #[serde(rename = "clientDataJSON", borrow)]
    client_data_json: Cow<'a, str>,
    #[serde(borrow)]
    authenticator_data: Cow<'a, str>,
    #[serde(borrow)]
    signature: Cow<'a, str>,
    #[serde(borrow, default)]
    user_handle: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttestationJson<'a> {
    #[serde(rename = "clientDataJSON", borrow)]
    client_data_json: Cow<'a, str>,
    #[serde(borrow)]
    attestation_object: Cow<'a, str>,
    transports: Vec<String>,
}

/// The extension outputs assertd reads; others are skipped.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Extensions {
    #[serde(default)]
    appid: Option<bool>,
    #[serde(default)]
    cred_props: Option<CredProps>,
}

#[derive(Deserialize)]
struct CredProps {
    #[serde(default)]
    rk: Option<bool>,
}

fn b64(member: &'static str, s: &str) -> Result<Vec<u8>, ResponseJsonError> {
    URL_SAFE_NO_PAD.decode(s).map_err(|_| ResponseJsonError::Base64 { member })
}

fn required(member: &'static str, s: &str) -> Result<Vec<u8>, ResponseJsonError> {
    let bytes = b64(member, s)?;
    if bytes.is_empty() {
        return Err(ResponseJsonError::Empty(member));
    }
    Ok(bytes)
}

/// Parses `text` as a `what` and checks the envelope: `id` = `rawId`,
/// `type`, the attachment.
fn envelope<'a, R: Deserialize<'a>>(
    text: &'a str,
    max: usize,
    what: &'static str,
) -> Result<(Vec<u8>, R, Option<Attachment>, Extensions), ResponseJsonError> {
    if text.len() > max {
        return Err(ResponseJsonError::TooLarge { len: text.len(), max });
    }
    let e: Envelope<'a, R> = serde_json::from_str(text).map_err(|e| ResponseJsonError::Json { what, detail: e.to_string() })?;
    if e.ty != "public-key" {
        return Err(ResponseJsonError::Type(crate::truncate(&e.ty).to_owned()));
    }
    let raw_id = required("rawId", &e.raw_id)?;
    // Both are the credential ID in base64url; canonical encoding makes
    // equal bytes equal strings, so comparing the text is exact.
    if e.id != e.raw_id {
        return Err(ResponseJsonError::IdMismatch);
    }
    let attachment = e.authenticator_attachment.as_deref().and_then(Attachment::parse);
    Ok((raw_id, e.response, attachment, e.client_extension_results))
}

impl AuthenticationResponse {
    /// Parses an `AuthenticationResponseJSON` of at most `max` bytes.
    pub fn parse(text: &str, max: usize) -> Result<Self, ResponseJsonError> {
        let (credential_id, r, attachment, ext) = envelope::<AssertionJson<'_>>(text, max, "AuthenticationResponseJSON")?;
        Ok(Self {
            credential_id,
            client_data_json: required("response.clientDataJSON", &r.client_data_json)?,
            authenticator_data: required("response.authenticatorData", &r.authenticator_data)?,
            signature: required("response.signature", &r.signature)?,
            user_handle: match r.user_handle {
                Some(h) => b64("response.userHandle", &h)?,
                None => Vec::new(),
            },
            attachment,
            appid: ext.appid == Some(true),
        })
    }
}

impl RegistrationResponse {
    /// Parses a `RegistrationResponseJSON` of at most `max` bytes.
    pub fn parse(text: &str, max: usize) -> Result<Self, ResponseJsonError> {
        let (credential_id, r, attachment, ext) = envelope::<AttestationJson<'_>>(text, max, "RegistrationResponseJSON")?;
        Ok(Self {
            credential_id,
            client_data_json: required("response.clientDataJSON", &r.client_data_json)?,
            attestation_object: required("response.attestationObject", &r.attestation_object)?,
            transports: r.transports,
            attachment,
            discoverable: ext.cred_props.and_then(|p| p.rk),
        })
    }
}

#[cfg(test)]
mod tests;
