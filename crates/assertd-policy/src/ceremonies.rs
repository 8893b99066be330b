//! How a profile's ceremonies are asked for: the profile keys that shape
//! the options `BeginRegistration` and `BeginAuthentication` build
//! (`options`).

use serde::{Deserialize, Serialize};

/// `residentKey` (`ResidentKeyRequirement`): whether the credential is to
/// be discoverable (a passkey the user picks without a username).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResidentKey {
    /// Server-side credential preferred.
    Discouraged,
    /// Discoverable if the authenticator can.
    #[default]
    Preferred,
    /// Discoverable, or the registration fails in the browser.
    Required,
}

impl ResidentKey {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ResidentKey::Discouraged => "discouraged",
            ResidentKey::Preferred => "preferred",
            ResidentKey::Required => "required",
        }
    }
}

pub use assertd_verify::Attachment;

/// A `PublicKeyCredentialHint`: which kind of authenticator the browser
/// should offer first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hint {
    /// A physical security key.
    SecurityKey,
    /// The device's own authenticator.
    ClientDevice,
    /// A phone, over a QR code (hybrid transport).
    Hybrid,
}

impl Hint {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Hint::SecurityKey => "security-key",
            Hint::ClientDevice => "client-device",
            Hint::Hybrid => "hybrid",
        }
    }
}

/// How a profile's ceremonies are asked for (profile keys `resident_key`,
/// `authenticator_attachment`, `hints`, `enterprise_attestation`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ceremonies {
    /// `residentKey` at registration.
    pub resident_key: ResidentKey,
    /// `authenticatorAttachment` at registration; `None`: any.
    pub attachment: Option<Attachment>,
    /// `hints`; `None`: derived from the passkey types (a device-bound-only
    /// profile asks for security keys).
    pub hints: Option<Vec<Hint>>,
    /// Ask for `enterprise` attestation (only for managed authenticators
    /// whose relying party is on their enterprise list).
    pub enterprise_attestation: bool,
}
