//! The statement formats' verification procedures (W3C WebAuthn L3 §8).

use super::cert::{self, CertSignatureError};
use super::{AttestationError, AttestationType, Map, Statement, StatementInput};
use ring::digest;
use x509_parser::der_parser;
use x509_parser::der_parser::asn1_rs::Class;
use x509_parser::x509::X509Version;

pub(super) type Result<T> = std::result::Result<T, AttestationError>;

pub(super) fn invalid(m: impl Into<String>) -> AttestationError {
    AttestationError::Invalid(m.into())
}

fn owned(x5c: &[&[u8]]) -> Vec<Vec<u8>> {
    x5c.iter().map(|c| c.to_vec()).collect()
}

pub(super) fn cert_signature(e: CertSignatureError) -> AttestationError {
    match e {
        CertSignatureError::UnsupportedAlgorithm(a) => AttestationError::Unsupported(format!("statement algorithm {a} is not supported")),
        CertSignatureError::KeyMismatch(m) => invalid(m),
        CertSignatureError::Invalid => invalid("the statement signature does not verify with the attestation certificate's key"),
    }
}

/// authenticatorData ‖ clientDataHash, what packed and apple sign or hash.
fn signed_bytes(input: &StatementInput<'_>) -> Vec<u8> {
    let mut m = Vec::with_capacity(input.auth_data.len() + 32);
    m.extend_from_slice(input.auth_data);
    m.extend_from_slice(input.client_data_hash);
    m
}

/// §8.7 `none`: the statement is the empty map.
pub(super) fn none(map: &Map<'_>) -> Result<Statement> {
    map.only(&[]).map_err(|_| invalid("a none attestation statement must be empty"))?;
    Ok(Statement {
        kind: AttestationType::None,
        x5c: Vec::new(),
        covers_aaguid: false,
        aaguid_in_certificate: false,
        sha1_signature: false,
        untrusted: None,
    })
}

/// The AAGUID certificate extension (id-fido-gen-ce-aaguid, §8.2.1).
const OID_FIDO_AAGUID: &str = "1.3.6.1.4.1.45724.1.1.4";

/// §8.2 `packed`.
pub(super) fn packed(map: &Map<'_>, input: &StatementInput<'_>) -> Result<Statement> {
    map.only(&["alg", "sig", "x5c"])?;
    let alg = map.int("alg")?;
    let sig = map.bytes("sig")?;
    let signed = signed_bytes(input);
    match map.x5c()? {
        Some(x5c) => {
            // §8.2 "If x5c is present": verify sig over authenticatorData ‖
            // clientDataHash with the attestation certificate's key.
            let leaf = cert::parse(x5c[0]).map_err(|e| e.within("attestation certificate"))?;
            cert::verify_signature(&leaf, alg, &signed, sig).map_err(cert_signature)?;
            // §8.2.1 certificate requirements.
            let aaguid_in_certificate = packed_certificate(&leaf, input.aaguid)?;
            // The type (Basic or AttCA) is not distinguishable from the
            // statement alone (§8.2, step "Optionally, inspect x5c").
            Ok(Statement {
                kind: AttestationType::Basic,
                x5c: owned(&x5c),
                covers_aaguid: true,
                aaguid_in_certificate,
                sha1_signature: alg == -65535,
                untrusted: None,
            })
        }
        None => {
            // §8.2 self attestation: alg matches the credential key's, sig
            // verifies with the credential key.
            if alg != input.key.algorithm().cose_id() {
                return Err(invalid(format!(
                    "self attestation alg {alg} differs from the credential key's {}",
                    input.key.algorithm().cose_id()
                )));
            }
            input
                .key
                .verify(&signed, sig)
                .map_err(|_| invalid("the self attestation signature does not verify with the credential key"))?;
            Ok(Statement {
                kind: AttestationType::SelfAttestation,
                x5c: Vec::new(),
                covers_aaguid: true,
                aaguid_in_certificate: false,
                sha1_signature: false,
                untrusted: None,
            })
        }
    }
}

/// §8.2.1 "Packed Attestation Statement Certificate Requirements"; true
/// when the certificate names the AAGUID.
fn packed_certificate(leaf: &x509_parser::certificate::X509Certificate<'_>, aaguid: &[u8; 16]) -> Result<bool> {
    if leaf.version() != X509Version::V3 {
        return Err(invalid("the attestation certificate is not X.509 version 3"));
    }
    let subject = leaf.subject();
    let one = |attrs: Vec<&x509_parser::x509::AttributeTypeAndValue<'_>>, what: &str| -> Result<String> {
        match attrs.as_slice() {
            [a] => a.as_str().map(str::to_owned).map_err(|_| invalid(format!("subject {what} is not a string"))),
            _ => Err(invalid(format!("the attestation certificate's subject needs exactly one {what}"))),
        }
    };
    let country = one(subject.iter_country().collect(), "C")?;
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(invalid(format!("subject C {:?} is not an ISO 3166 code", crate::text::truncate(&country))));
    }
    one(subject.iter_organization().collect(), "O")?;
    if one(subject.iter_organizational_unit().collect(), "OU")? != "Authenticator Attestation" {
        return Err(invalid("subject OU is not \"Authenticator Attestation\""));
    }
    one(subject.iter_common_name().collect(), "CN")?;
    leaf_requirements(leaf, aaguid)
}

/// What packed (§8.2.1) and TPM (§8.3.1) attestation certificates share: not
/// a CA, and the id-fido-gen-ce-aaguid extension, when present ("MUST be
/// present" when the root serves several models), not critical and equal to
/// the AAGUID in authenticatorData. True when the extension is present.
pub(super) fn leaf_requirements(leaf: &x509_parser::certificate::X509Certificate<'_>, aaguid: &[u8; 16]) -> Result<bool> {
    match leaf.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => return Err(invalid("the attestation certificate is a CA certificate")),
        Ok(_) => {}
        Err(e) => return Err(invalid(format!("basic constraints: {e}"))),
    }
    if let Some((critical, value)) = cert::extension(leaf, OID_FIDO_AAGUID)? {
        if critical {
            return Err(invalid("the AAGUID extension is marked critical"));
        }
        let got = cert::octet_string(value).map_err(|e| e.within("AAGUID extension"))?;
        if got != aaguid.as_slice() {
            return Err(invalid("the attestation certificate's AAGUID differs from the authenticator data's"));
        }
        return Ok(true);
    }
    Ok(false)
}

/// §8.6 `fido-u2f`.
pub(super) fn fido_u2f(map: &Map<'_>, input: &StatementInput<'_>) -> Result<Statement> {
    map.only(&["sig", "x5c"])?;
    let sig = map.bytes("sig")?;
    // "Check that x5c has exactly one element"; its key must be EC P-256
    // (checked by the ES256 verification below).
    let x5c = map.x5c()?.ok_or_else(|| invalid("attStmt.x5c is missing"))?;
    if x5c.len() != 1 {
        return Err(invalid(format!("a fido-u2f x5c must hold exactly one certificate, not {}", x5c.len())));
    }
    let leaf = cert::parse(x5c[0]).map_err(|e| e.within("attestation certificate"))?;
    // "Convert the COSE_KEY formatted credentialPublicKey ... to Raw ANSI
    // X9.62 public key format": an uncompressed P-256 point.
    let point = match (input.key.algorithm(), input.key.ec_point()) {
        (crate::cose::Algorithm::Es256, Some(p)) if p.len() == 65 => p,
        _ => return Err(invalid("a fido-u2f credential key must be an ES256 (P-256) key")),
    };
    // verificationData = 0x00 ‖ rpIdHash ‖ clientDataHash ‖ credentialId ‖
    // publicKeyU2F.
    let mut data = Vec::with_capacity(1 + 32 + 32 + input.credential_id.len() + 65);
    data.push(0x00);
    data.extend_from_slice(input.rp_id_hash);
    data.extend_from_slice(input.client_data_hash);
    data.extend_from_slice(input.credential_id);
    data.extend_from_slice(point);
    cert::verify_signature(&leaf, -7, &data, sig).map_err(cert_signature)?;
    // U2F's signature does not cover the AAGUID (clients put zeros there):
    // a non-zero one is vouched for by nothing.
    Ok(Statement {
        kind: AttestationType::Basic,
        x5c: owned(&x5c),
        covers_aaguid: input.aaguid == &[0; 16],
        aaguid_in_certificate: false,
        sha1_signature: false,
        untrusted: None,
    })
}

/// Apple's anonymous attestation nonce extension.
const OID_APPLE_NONCE: &str = "1.2.840.113635.100.8.2";

/// §8.8 `apple`.
pub(super) fn apple(map: &Map<'_>, input: &StatementInput<'_>) -> Result<Statement> {
    map.only(&["x5c", "alg"])?;
    let x5c = map.x5c()?.ok_or_else(|| invalid("attStmt.x5c is missing"))?;
    let cred_cert = cert::parse(x5c[0]).map_err(|e| e.within("credential certificate"))?;
    // nonce = SHA-256(authenticatorData ‖ clientDataHash) must equal the
    // value of the extension 1.2.840.113635.100.8.2 in credCert.
    let nonce = digest::digest(&digest::SHA256, &signed_bytes(input));
    let (_, value) =
        cert::extension(&cred_cert, OID_APPLE_NONCE)?.ok_or_else(|| invalid("the credential certificate has no nonce extension"))?;
    if apple_nonce(value).map_err(|e| e.within("nonce extension"))? != nonce.as_ref() {
        return Err(invalid("the credential certificate's nonce does not match the authenticator data and client data"));
    }
    // "Verify that the credential public key equals the Subject Public Key
    // of credCert."
    let spki = &cred_cert.public_key().subject_public_key.data;
    if input.key.ec_point() != Some(&spki[..]) {
        return Err(invalid("the credential public key differs from the credential certificate's key"));
    }
    Ok(Statement {
        kind: AttestationType::AnonCa,
        x5c: owned(&x5c),
        covers_aaguid: true,
        aaguid_in_certificate: false,
        sha1_signature: false,
        untrusted: None,
    })
}

/// The nonce in `SEQUENCE { [1] EXPLICIT OCTET STRING }`.
fn apple_nonce(value: &[u8]) -> std::result::Result<&[u8], AttestationError> {
    let (rest, seq) = der_parser::der::parse_der_sequence(value).map_err(|e| AttestationError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(AttestationError::Malformed("trailing bytes".into()));
    }
    let items = seq.as_sequence().map_err(|e| AttestationError::Malformed(e.to_string()))?;
    let [tagged] = items.as_slice() else {
        return Err(AttestationError::Malformed(format!("{} elements, expected 1", items.len())));
    };
    if tagged.class() != Class::ContextSpecific || tagged.tag().0 != 1 {
        return Err(AttestationError::Malformed("not [1]".into()));
    }
    cert::octet_string(tagged.as_slice().map_err(|e| AttestationError::Malformed(e.to_string()))?)
}

/// The Android key attestation extension (KeyDescription).
const OID_ANDROID_KEY: &str = "1.3.6.1.4.1.11129.2.1.17";
/// AuthorizationList tags (Android Keymaster/KeyMint schema).
const TAG_PURPOSE: u32 = 1;
const TAG_ALL_APPLICATIONS: u32 = 600;
const TAG_ORIGIN: u32 = 702;
/// KM_PURPOSE_SIGN, KM_ORIGIN_GENERATED.
const KM_PURPOSE_SIGN: u64 = 2;
const KM_ORIGIN_GENERATED: u64 = 0;

/// §8.4 `android-key`.
pub(super) fn android_key(map: &Map<'_>, input: &StatementInput<'_>) -> Result<Statement> {
    map.only(&["alg", "sig", "x5c"])?;
    let alg = map.int("alg")?;
    let sig = map.bytes("sig")?;
    let x5c = map.x5c()?.ok_or_else(|| invalid("attStmt.x5c is missing"))?;
    let leaf = cert::parse(x5c[0]).map_err(|e| e.within("attestation certificate"))?;
    // "Verify that sig is a valid signature over the concatenation of
    // authenticatorData and clientDataHash using the public key in the first
    // certificate in x5c with the algorithm specified in alg."
    cert::verify_signature(&leaf, alg, &signed_bytes(input), sig).map_err(cert_signature)?;
    // "Verify that the public key in the first certificate in x5c matches
    // the credentialPublicKey in the attestedCredentialData."
    if !cert::key_matches(&leaf, input.key) {
        return Err(invalid("the attestation certificate's key is not the credential public key"));
    }
    let (_, value) =
        cert::extension(&leaf, OID_ANDROID_KEY)?.ok_or_else(|| invalid("the attestation certificate has no key description extension"))?;
    let d = key_description(value).map_err(|e| e.within("key description"))?;
    // "Verify that the attestationChallenge field in the attestation
    // certificate extension data is identical to clientDataHash."
    if d.challenge != input.client_data_hash.as_slice() {
        return Err(invalid("the key description's attestationChallenge is not the client data hash"));
    }
    // "The AuthorizationList.allApplications field is not present on
    // either authorization list": the key must be scoped to the RP.
    if d.all_applications {
        return Err(invalid("the key is usable by all applications (allApplications)"));
    }
    // origin KM_ORIGIN_GENERATED and purpose KM_PURPOSE_SIGN, from the union
    // of teeEnforced and softwareEnforced (a software-backed key is judged
    // by its chain: only a configured root makes it trusted).
    if !d.origins.contains(&KM_ORIGIN_GENERATED) || d.origins.iter().any(|o| *o != KM_ORIGIN_GENERATED) {
        return Err(invalid("the key was not generated in the keystore (origin is not KM_ORIGIN_GENERATED)"));
    }
    if !d.purposes.contains(&KM_PURPOSE_SIGN) {
        return Err(invalid("the key's purposes do not include signing (KM_PURPOSE_SIGN)"));
    }
    Ok(Statement {
        kind: AttestationType::Basic,
        x5c: owned(&x5c),
        covers_aaguid: true,
        aaguid_in_certificate: false,
        sha1_signature: alg == -65535,
        untrusted: None,
    })
}

/// What §8.4 reads from a KeyDescription.
struct KeyDescription<'a> {
    challenge: &'a [u8],
    all_applications: bool,
    origins: Vec<u64>,
    purposes: Vec<u64>,
}

/// Parses `KeyDescription ::= SEQUENCE { attestationVersion,
/// attestationSecurityLevel, keymasterVersion, keymasterSecurityLevel,
/// attestationChallenge OCTET STRING, uniqueId OCTET STRING,
/// softwareEnforced AuthorizationList, teeEnforced AuthorizationList, ... }`.
fn key_description(value: &[u8]) -> std::result::Result<KeyDescription<'_>, AttestationError> {
    let (rest, seq) = der_parser::der::parse_der_sequence(value).map_err(|e| AttestationError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(AttestationError::Malformed("trailing bytes".into()));
    }
    let items = seq.as_sequence().map_err(|e| AttestationError::Malformed(e.to_string()))?;
    if items.len() < 8 {
        return Err(AttestationError::Malformed(format!("{} fields, expected at least 8", items.len())));
    }
    let challenge = items[4].as_slice().map_err(|e| AttestationError::Malformed(format!("attestationChallenge: {e}")))?;
    let mut d = KeyDescription { challenge, all_applications: false, origins: Vec::new(), purposes: Vec::new() };
    for list in &items[6..8] {
        for entry in list.as_sequence().map_err(|e| AttestationError::Malformed(format!("authorization list: {e}")))? {
            if entry.class() != Class::ContextSpecific {
                return Err(AttestationError::Malformed("an authorization list entry is not context-tagged".into()));
            }
            let inner = entry.as_slice().map_err(|e| AttestationError::Malformed(e.to_string()))?;
            match entry.tag().0 {
                TAG_ALL_APPLICATIONS => d.all_applications = true,
                TAG_ORIGIN => d.origins.push(der_uint(inner)?),
                TAG_PURPOSE => {
                    let (_, set) =
                        der_parser::der::parse_der_set(inner).map_err(|e| AttestationError::Malformed(format!("purpose: {e}")))?;
                    for p in set.as_set().map_err(|e| AttestationError::Malformed(format!("purpose: {e}")))? {
                        d.purposes.push(p.as_u64().map_err(|e| AttestationError::Malformed(format!("purpose: {e}")))?);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(d)
}

/// A DER INTEGER that fills `bytes`, as u64.
fn der_uint(bytes: &[u8]) -> std::result::Result<u64, AttestationError> {
    match der_parser::der::parse_der_integer(bytes) {
        Ok(([], i)) => i.as_u64().map_err(|e| AttestationError::Malformed(e.to_string())),
        Ok(_) => Err(AttestationError::Malformed("trailing bytes after an INTEGER".into())),
        Err(e) => Err(AttestationError::Malformed(e.to_string())),
    }
}
