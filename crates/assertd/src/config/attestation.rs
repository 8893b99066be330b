//! `[[attestation_roots]]` and `[registration]`: what registration
//! (`CredentialService.RegisterCredential`) trusts and how strictly it
//! reads certificate validity.
//!
//! ```toml
//! [[attestation_roots]]
//! format = "packed"                     # the statement format it anchors
//! file = "/etc/assertd/roots/vendor-root.pem"   # PEM, one or more certificates
//! aaguids = ["cb69481e-8ff7-4039-93ec-0a2729a154a8"]  # the models it vouches for
//!
//! [registration]
//! certificate_skew_seconds = 300        # validity slack for attestation certificates
//! insecure_allow_sha1_attestation = false # trust SHA-1 (RS1) statement signatures
//! ```
//!
//! Files are read when the config is compiled (start, reload, `config
//! check`): a missing, empty or unusable file is refused, named by key.
//!
//! A root vouches for the authenticator models listed in its `aaguids` and
//! for no other: a chain that reaches a root without `aaguids` makes the
//! credential attested ("attested by this root"), never a model, so it does
//! not satisfy an AAGUID allow list or `minimum_certification`. The FIDO
//! metadata's roots vouch for the AAGUIDs the metadata lists them under.

use super::invalid::Invalid;
use assertd_verify::attestation::{Anchor, Format, TrustAnchors};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use std::path::PathBuf;

/// The formats a root can anchor (those whose statements carry a chain),
/// from the verifier's registry.
pub fn root_formats() -> impl Iterator<Item = Format> {
    Format::ALL.into_iter().filter(|f| f.takes_roots())
}

/// One `[[attestation_roots]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationRootConfig {
    /// The statement format the roots anchor.
    pub format: String,
    /// A PEM file of one or more root certificates.
    pub file: PathBuf,
    /// The authenticator models (AAGUIDs, UUID strings) these roots vouch
    /// for; none by default.
    #[serde(default)]
    pub aaguids: Vec<String>,
}

/// `[registration]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationSection {
    /// Seconds an attestation certificate is still accepted outside its
    /// validity (clocks of authenticators' CAs and ours differ).
    #[serde(default = "default_skew")]
    pub certificate_skew_seconds: u64,
    /// Trust attestation statements signed with SHA-1 (RS1: many older
    /// Windows Hello TPMs). Off: they verify, but are not trusted.
    #[serde(default)]
    pub insecure_allow_sha1_attestation: bool,
}

impl Default for RegistrationSection {
    fn default() -> Self {
        Self { certificate_skew_seconds: default_skew(), insecure_allow_sha1_attestation: false }
    }
}

fn default_skew() -> u64 {
    300
}

/// The most a skew may be: a day.
const MAX_SKEW: u64 = 86_400;

/// What registration trusts, ready to use.
#[derive(Debug, Default)]
pub struct AttestationTrust {
    /// Roots by format.
    pub anchors: TrustAnchors,
    /// `registration.certificate_skew_seconds`.
    pub skew_seconds: u64,
    /// `registration.insecure_allow_sha1_attestation`.
    pub insecure_allow_sha1: bool,
}

/// Reads every root file.
pub fn compile(roots: &[AttestationRootConfig], registration: &RegistrationSection) -> Result<AttestationTrust, Invalid> {
    if registration.certificate_skew_seconds > MAX_SKEW {
        return Err(Invalid::new("registration.certificate_skew_seconds", format!("at most {MAX_SKEW} (a day)")));
    }
    let mut anchors = TrustAnchors::default();
    for (i, r) in roots.iter().enumerate() {
        let key = |k: &str| format!("attestation_roots[{i}].{k}");
        if !Format::parse(&r.format).is_some_and(Format::takes_roots) {
            let names: Vec<&str> = root_formats().map(Format::name).collect();
            return Err(Invalid::new(key("format"), format!("{:?} is not one of {}", r.format, names.join(", "))));
        }
        let aaguids = r
            .aaguids
            .iter()
            .map(|a| match super::profile::parse_uuid(a) {
                Some(u) if u != [0; 16] => Ok(u),
                _ => Err(Invalid::new(key("aaguids"), format!("{a:?} is not a non-zero UUID"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pem = std::fs::read(&r.file).map_err(|e| Invalid::new(key("file"), format!("cannot read {}: {e}", r.file.display())))?;
        let mut n = 0;
        for der in CertificateDer::pem_slice_iter(&pem) {
            let der = der.map_err(|e| Invalid::new(key("file"), format!("{}: not PEM certificates: {e}", r.file.display())))?;
            let anchor = Anchor::from_der(&der).map_err(|e| Invalid::new(key("file"), format!("{}: {e}", r.file.display())))?;
            anchors.add_bound(&r.format, anchor, aaguids.clone());
            n += 1;
        }
        if n == 0 {
            return Err(Invalid::new(key("file"), format!("{} holds no PEM certificate", r.file.display())));
        }
    }
    Ok(AttestationTrust {
        anchors,
        skew_seconds: registration.certificate_skew_seconds,
        insecure_allow_sha1: registration.insecure_allow_sha1_attestation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config accepts roots for exactly the formats the verifier's
    /// registry says take them: such a format gets past the format check
    /// (and fails on the missing file), any other is refused by name.
    #[test]
    fn roots_are_accepted_for_the_formats_that_take_them() {
        let missing = PathBuf::from("/nonexistent/roots.pem");
        let names: Vec<String> = Format::ALL.iter().map(|f| f.name().to_owned()).chain(["Packed".into(), "compound".into()]).collect();
        for name in names {
            let root = AttestationRootConfig { format: name.clone(), file: missing.clone(), aaguids: Vec::new() };
            let Err(e) = compile(&[root], &RegistrationSection::default()) else { panic!("{name}: a missing file compiled") };
            let takes = Format::parse(&name).is_some_and(Format::takes_roots);
            let want = if takes { "attestation_roots[0].file" } else { "attestation_roots[0].format" };
            assert_eq!(e.key, want, "{name}: {}", e.problem);
        }
    }
}
