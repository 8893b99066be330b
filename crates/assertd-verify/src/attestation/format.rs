//! The attestation statement formats assertd verifies, as one registry:
//! each [`Format`] knows its identifier, whether operators may configure
//! roots for it, and its verification procedure. The config's root check,
//! the metrics' format label and the fuzz targets are derived from (or
//! tested against) [`Format::ALL`].

use super::{AttestationError, Map, Statement, StatementInput, formats, tpm};

/// A statement format (W3C WebAuthn L3 §8; IANA "WebAuthn Attestation
/// Statement Format Identifiers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// §8.7 `none`.
    None,
    /// §8.2 `packed`.
    Packed,
    /// §8.6 `fido-u2f`.
    FidoU2f,
    /// §8.8 `apple`.
    Apple,
    /// §8.4 `android-key`.
    AndroidKey,
    /// §8.3 `tpm`.
    Tpm,
}

impl Format {
    /// Every format, in the order the docs list them.
    pub const ALL: [Format; 6] = [Format::None, Format::Packed, Format::FidoU2f, Format::Apple, Format::AndroidKey, Format::Tpm];

    /// The format identifier (`fmt`), matched case-sensitively (§8.1).
    pub fn name(self) -> &'static str {
        match self {
            Format::None => "none",
            Format::Packed => "packed",
            Format::FidoU2f => "fido-u2f",
            Format::Apple => "apple",
            Format::AndroidKey => "android-key",
            Format::Tpm => "tpm",
        }
    }

    /// The format with this identifier, if assertd verifies it.
    pub fn parse(fmt: &str) -> Option<Format> {
        Self::ALL.into_iter().find(|f| f.name() == fmt)
    }

    /// Whether its statements carry a trust path an operator's
    /// `[[attestation_roots]]` can anchor (every format but `none`).
    pub fn takes_roots(self) -> bool {
        self != Format::None
    }

    /// Whether a root the FIDO metadata lists for several models vouches
    /// for one only when the certificate names it (the id-fido-gen-ce-aaguid
    /// extension, §8.2.1 and §8.3.1: "MUST be present" for such roots).
    pub fn names_its_model_under_shared_roots(self) -> bool {
        matches!(self, Format::Packed | Format::Tpm)
    }

    /// The fuzz target that feeds this format's verification procedure
    /// arbitrary statements (`fuzz/fuzz_targets/<target>.rs`).
    pub fn fuzz_target(self) -> String {
        format!("attestation_{}", self.name().replace('-', "_"))
    }

    /// Runs the format's verification procedure (§8) on the statement.
    pub(crate) fn verify(self, map: &Map<'_>, input: &StatementInput<'_>) -> Result<Statement, AttestationError> {
        match self {
            Format::None => formats::none(map),
            Format::Packed => formats::packed(map, input),
            Format::FidoU2f => formats::fido_u2f(map, input),
            Format::Apple => formats::apple(map, input),
            Format::AndroidKey => formats::android_key(map, input),
            Format::Tpm => tpm::verify(map, input),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
