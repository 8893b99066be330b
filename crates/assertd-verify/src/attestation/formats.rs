//! The statement formats' verification procedures (W3C WebAuthn L3 §8).

use super::cert::{self, CertSignatureError};
use super::{AttestationType, Map, Statement, StatementError, StatementInput};
use ring::digest;
use x509_parser::der_parser;
use x509_parser::der_parser::asn1_rs::Class;
use x509_parser::x509::X509Version;

type Result<T> = std::result::Result<T, StatementError>;

fn invalid(m: impl Into<String>) -> StatementError {
    StatementError::Invalid(m.into())
}

fn owned(x5c: &[&[u8]]) -> Vec<Vec<u8>> {
    x5c.iter().map(|c| c.to_vec()).collect()
}

fn cert_signature(e: CertSignatureError) -> StatementError {
    match e {
        CertSignatureError::UnsupportedAlgorithm(a) => StatementError::Unsupported(format!("statement algorithm {a} is not supported")),
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
    Ok(Statement { kind: AttestationType::None, x5c: Vec::new(), aaguid_vouched: false })
}

/// The AAGUID certificate extension (id-fido-gen-ce-aaguid, §8.2.1).
const OID_FIDO_AAGUID: &str = "1.3.6.1.4.1.45724.1.1.4";

/// §8.2 `packed`.
pub(super) fn packed(map: &Map<'_>, input: &StatementInput<'_>) -> Result<Statement> {
    map.only(&["alg", "sig", "x5c"]).map_err(invalid)?;
    let alg = map.int("alg").map_err(invalid)?;
    let sig = map.bytes("sig").map_err(invalid)?;
    let signed = signed_bytes(input);
    match map.x5c().map_err(invalid)? {
        Some(x5c) => {
            // §8.2 "If x5c is present": verify sig over authenticatorData ‖
            // clientDataHash with the attestation certificate's key.
            let leaf = cert::parse(x5c[0]).map_err(|e| invalid(format!("attestation certificate: {e}")))?;
            cert::verify_signature(&leaf, alg, &signed, sig).map_err(cert_signature)?;
            // §8.2.1 certificate requirements.
            packed_certificate(&leaf, input.aaguid)?;
            // The type (Basic or AttCA) is not distinguishable from the
            // statement alone (§8.2, step "Optionally, inspect x5c").
            Ok(Statement { kind: AttestationType::Basic, x5c: owned(&x5c), aaguid_vouched: true })
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
            Ok(Statement { kind: AttestationType::SelfAttestation, x5c: Vec::new(), aaguid_vouched: true })
        }
    }
}

/// §8.2.1 "Packed Attestation Statement Certificate Requirements".
fn packed_certificate(leaf: &x509_parser::certificate::X509Certificate<'_>, aaguid: &[u8; 16]) -> Result<()> {
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
        return Err(invalid(format!("subject C {:?} is not an ISO 3166 code", crate::truncate(&country))));
    }
    one(subject.iter_organization().collect(), "O")?;
    if one(subject.iter_organizational_unit().collect(), "OU")? != "Authenticator Attestation" {
        return Err(invalid("subject OU is not \"Authenticator Attestation\""));
    }
    one(subject.iter_common_name().collect(), "CN")?;
    match leaf.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => return Err(invalid("the attestation certificate is a CA certificate")),
        Ok(_) => {}
        Err(e) => return Err(invalid(format!("basic constraints: {e}"))),
    }
    // "If the related attestation root certificate is used for multiple
    // authenticator models, the Extension OID 1.3.6.1.4.1.45724.1.1.4
    // (id-fido-gen-ce-aaguid) MUST be present" and must not be critical;
    // when present it must equal the AAGUID in authenticatorData.
    if let Some((critical, value)) = cert::extension(leaf, OID_FIDO_AAGUID).map_err(invalid)? {
        if critical {
            return Err(invalid("the AAGUID extension is marked critical"));
        }
        let got = cert::octet_string(value).map_err(|e| invalid(format!("AAGUID extension: {e}")))?;
        if got != aaguid.as_slice() {
            return Err(invalid("the attestation certificate's AAGUID differs from the authenticator data's"));
        }
    }
    Ok(())
}

/// §8.6 `fido-u2f`.
pub(super) fn fido_u2f(map: &Map<'_>, input: &StatementInput<'_>) -> Result<Statement> {
    map.only(&["sig", "x5c"]).map_err(invalid)?;
    let sig = map.bytes("sig").map_err(invalid)?;
    // "Check that x5c has exactly one element"; its key must be EC P-256
    // (checked by the ES256 verification below).
    let x5c = map.x5c().map_err(invalid)?.ok_or_else(|| invalid("attStmt.x5c is missing"))?;
    if x5c.len() != 1 {
        return Err(invalid(format!("a fido-u2f x5c must hold exactly one certificate, not {}", x5c.len())));
    }
    let leaf = cert::parse(x5c[0]).map_err(|e| invalid(format!("attestation certificate: {e}")))?;
    // "Convert the COSE_KEY formatted credentialPublicKey ... to Raw ANSI
    // X9.62 public key format": an uncompressed P-256 point.
    let point = match (input.key.algorithm(), input.key.ec_point()) {
        (crate::Algorithm::Es256, Some(p)) if p.len() == 65 => p,
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
    Ok(Statement { kind: AttestationType::Basic, x5c: owned(&x5c), aaguid_vouched: input.aaguid == &[0; 16] })
}

/// Apple's anonymous attestation nonce extension.
const OID_APPLE_NONCE: &str = "1.2.840.113635.100.8.2";

/// §8.8 `apple`.
pub(super) fn apple(map: &Map<'_>, input: &StatementInput<'_>) -> Result<Statement> {
    map.only(&["x5c", "alg"]).map_err(invalid)?;
    let x5c = map.x5c().map_err(invalid)?.ok_or_else(|| invalid("attStmt.x5c is missing"))?;
    let cred_cert = cert::parse(x5c[0]).map_err(|e| invalid(format!("credential certificate: {e}")))?;
    // nonce = SHA-256(authenticatorData ‖ clientDataHash) must equal the
    // value of the extension 1.2.840.113635.100.8.2 in credCert.
    let nonce = digest::digest(&digest::SHA256, &signed_bytes(input));
    let (_, value) = cert::extension(&cred_cert, OID_APPLE_NONCE)
        .map_err(invalid)?
        .ok_or_else(|| invalid("the credential certificate has no nonce extension"))?;
    if apple_nonce(value).map_err(|e| invalid(format!("nonce extension: {e}")))? != nonce.as_ref() {
        return Err(invalid("the credential certificate's nonce does not match the authenticator data and client data"));
    }
    // "Verify that the credential public key equals the Subject Public Key
    // of credCert."
    let spki = &cred_cert.public_key().subject_public_key.data;
    if input.key.ec_point() != Some(&spki[..]) {
        return Err(invalid("the credential public key differs from the credential certificate's key"));
    }
    Ok(Statement { kind: AttestationType::AnonCa, x5c: owned(&x5c), aaguid_vouched: true })
}

/// The nonce in `SEQUENCE { [1] EXPLICIT OCTET STRING }`.
fn apple_nonce(value: &[u8]) -> std::result::Result<&[u8], String> {
    let (rest, seq) = der_parser::der::parse_der_sequence(value).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err("trailing bytes".into());
    }
    let items = seq.as_sequence().map_err(|e| e.to_string())?;
    let [tagged] = items.as_slice() else {
        return Err(format!("{} elements, expected 1", items.len()));
    };
    if tagged.class() != Class::ContextSpecific || tagged.tag().0 != 1 {
        return Err("not [1]".into());
    }
    cert::octet_string(tagged.as_slice().map_err(|e| e.to_string())?)
}
