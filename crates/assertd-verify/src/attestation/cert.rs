//! X.509 for attestation: parsing certificates (`x509-parser`), verifying a
//! statement's signature with a certificate's key (`ring`), and validating
//! a certificate chain up to a trust anchor (`rustls-webpki`). No ASN.1 or
//! signature math is written here.

use super::AttestationError;
use ring::signature::{self, VerificationAlgorithm};
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser;
use x509_parser::prelude::FromDer;

/// The most certificates an `x5c` may hold (leaf and intermediates).
pub const MAX_CHAIN: usize = 5;

/// Parses one DER certificate, refusing trailing bytes.
pub fn parse(der: &[u8]) -> Result<X509Certificate<'_>, AttestationError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok((rest, _)) => Err(AttestationError::Malformed(format!("{} trailing bytes after the certificate", rest.len()))),
        Err(e) => Err(AttestationError::Malformed(format!("certificate does not parse: {e}"))),
    }
}

/// The OIDs of the public-key types a COSE algorithm needs.
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const ED25519: &str = "1.3.101.112";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";

/// The `ring` algorithm for a COSE signature algorithm over a certificate's
/// key, with the key type (and curve) the certificate must carry.
fn algorithm(alg: i64) -> Option<(&'static dyn VerificationAlgorithm, &'static str, Option<&'static str>)> {
    Some(match alg {
        -7 => (&signature::ECDSA_P256_SHA256_ASN1, EC_PUBLIC_KEY, Some(P256)),
        -35 => (&signature::ECDSA_P384_SHA384_ASN1, EC_PUBLIC_KEY, Some(P384)),
        -8 => (&signature::ED25519, ED25519, None),
        -257 => (&signature::RSA_PKCS1_2048_8192_SHA256, RSA_ENCRYPTION, None),
        -258 => (&signature::RSA_PKCS1_2048_8192_SHA384, RSA_ENCRYPTION, None),
        -259 => (&signature::RSA_PKCS1_2048_8192_SHA512, RSA_ENCRYPTION, None),
        -37 => (&signature::RSA_PSS_2048_8192_SHA256, RSA_ENCRYPTION, None),
        -38 => (&signature::RSA_PSS_2048_8192_SHA384, RSA_ENCRYPTION, None),
        -39 => (&signature::RSA_PSS_2048_8192_SHA512, RSA_ENCRYPTION, None),
        -65535 => (&signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_ENCRYPTION, None),
        _ => return None,
    })
}

/// Why a statement signature made with a certificate's key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSignatureError {
    /// The COSE algorithm is not one assertd verifies.
    UnsupportedAlgorithm(i64),
    /// The certificate's key is not of the algorithm's type or curve.
    KeyMismatch(String),
    /// The signature does not verify.
    Invalid,
}

/// Verifies `sig` over `message` with the public key of `cert` under the
/// COSE algorithm `alg`.
pub fn verify_signature(cert: &X509Certificate<'_>, alg: i64, message: &[u8], sig: &[u8]) -> Result<(), CertSignatureError> {
    let (algorithm, key_type, curve) = algorithm(alg).ok_or(CertSignatureError::UnsupportedAlgorithm(alg))?;
    let spki = cert.public_key();
    let oid = spki.algorithm.algorithm.to_id_string();
    if oid != key_type {
        return Err(CertSignatureError::KeyMismatch(format!("the certificate's key is {oid}, the algorithm {alg} needs {key_type}")));
    }
    if let Some(curve) = curve {
        let named = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
        if named.as_deref() != Some(curve) {
            return Err(CertSignatureError::KeyMismatch(format!("the certificate's curve is not {curve}, which algorithm {alg} needs")));
        }
    }
    signature::UnparsedPublicKey::new(algorithm, &spki.subject_public_key.data[..])
        .verify(message, sig)
        .map_err(|_| CertSignatureError::Invalid)
}

/// Verifies a JWS signature (RFC 7515/7518: ES256 and ES384 as raw r‖s,
/// RS256, PS256) over `message` with the key of `cert`.
pub fn verify_jws(cert: &X509Certificate<'_>, alg: &str, message: &[u8], sig: &[u8]) -> Result<(), AttestationError> {
    let (algorithm, key_type, curve): (&dyn VerificationAlgorithm, &str, Option<&str>) = match alg {
        "ES256" => (&signature::ECDSA_P256_SHA256_FIXED, EC_PUBLIC_KEY, Some(P256)),
        "ES384" => (&signature::ECDSA_P384_SHA384_FIXED, EC_PUBLIC_KEY, Some(P384)),
        "RS256" => (&signature::RSA_PKCS1_2048_8192_SHA256, RSA_ENCRYPTION, None),
        "PS256" => (&signature::RSA_PSS_2048_8192_SHA256, RSA_ENCRYPTION, None),
        other => return Err(AttestationError::Invalid(format!("JWS algorithm {:?} is not supported", crate::text::truncate(other)))),
    };
    check_key(cert, key_type, curve).map_err(|e| {
        AttestationError::Invalid(match e {
            CertSignatureError::KeyMismatch(m) => m,
            other => format!("{other:?}"),
        })
    })?;
    signature::UnparsedPublicKey::new(algorithm, &cert.public_key().subject_public_key.data[..])
        .verify(message, sig)
        .map_err(|_| AttestationError::Invalid("the signature does not verify with the signing certificate's key".to_owned()))
}

/// The certificate's key is of `key_type` (and on `curve`).
fn check_key(cert: &X509Certificate<'_>, key_type: &str, curve: Option<&str>) -> Result<(), CertSignatureError> {
    let spki = cert.public_key();
    let oid = spki.algorithm.algorithm.to_id_string();
    if oid != key_type {
        return Err(CertSignatureError::KeyMismatch(format!("the certificate's key is {oid}, not {key_type}")));
    }
    if let Some(curve) = curve {
        let named = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
        if named.as_deref() != Some(curve) {
            return Err(CertSignatureError::KeyMismatch(format!("the certificate's curve is not {curve}")));
        }
    }
    Ok(())
}

/// True when the certificate's subject public key is `key` (§8.4 step
/// "the public key in the first certificate in x5c matches the
/// credentialPublicKey"): the same EC point, Ed25519 key, or RSA modulus and
/// exponent.
pub fn key_matches(cert: &X509Certificate<'_>, key: &crate::cose::PublicKey) -> bool {
    let spki = cert.public_key();
    let bits = &spki.subject_public_key.data[..];
    if let Some(point) = key.ec_point() {
        return bits == point;
    }
    if let Some(k) = key.ed25519() {
        return bits == k.as_slice();
    }
    if let Some((n, e)) = key.rsa_components() {
        // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
        let Ok(([], seq)) = der_parser::der::parse_der_sequence(bits) else { return false };
        let Ok(items) = seq.as_sequence() else { return false };
        return match items.as_slice() {
            [m, x] => match (m.as_slice(), x.as_slice()) {
                (Ok(m), Ok(x)) => crate::cose::strip_zeros(m) == n && crate::cose::strip_zeros(x) == e,
                _ => false,
            },
            _ => false,
        };
    }
    false
}

/// One extension's value (the extnValue contents) and criticality, when the
/// certificate carries it exactly once.
pub fn extension<'c>(cert: &'c X509Certificate<'_>, oid: &str) -> Result<Option<(bool, &'c [u8])>, AttestationError> {
    let mut found = None;
    for e in cert.extensions() {
        if e.oid.to_id_string() == oid {
            if found.is_some() {
                return Err(AttestationError::Malformed(format!("extension {oid} appears twice")));
            }
            found = Some((e.critical, e.value));
        }
    }
    Ok(found)
}

/// The contents of a DER OCTET STRING that fills `bytes` exactly.
pub fn octet_string(bytes: &[u8]) -> Result<&[u8], AttestationError> {
    match der_parser::der::parse_der_octetstring(bytes) {
        Ok(([], o)) => o.as_slice().map_err(|e| AttestationError::Malformed(e.to_string())),
        Ok((rest, _)) => Err(AttestationError::Malformed(format!("{} trailing bytes after an OCTET STRING", rest.len()))),
        Err(e) => Err(AttestationError::Malformed(format!("not an OCTET STRING: {e}"))),
    }
}

/// Accepts any extended key usage (attestation certificates carry vendor
/// usages or none); a malformed EKU extension is still refused.
struct AnyUsage;

impl ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for id in iter {
            id?;
        }
        Ok(())
    }
}

/// The signature algorithms accepted in certificate chains.
static CHAIN_ALGORITHMS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// A root certificate trusted for attestation.
#[derive(Debug, Clone)]
pub struct Anchor {
    /// The root, as webpki keeps it.
    anchor: TrustAnchor<'static>,
    /// Its subject, for reports ("CN=Apple WebAuthn Root CA, O=Apple Inc., ...").
    pub subject: String,
    /// Its subject, DER (as issuers name it).
    subject_der: Vec<u8>,
    /// The certificate, DER (read by the fallback path for its path length
    /// and name constraints).
    der: Vec<u8>,
}

impl Anchor {
    /// A trust anchor from a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, AttestationError> {
        let parsed = parse(der)?;
        let (subject, subject_der) = (parsed.subject().to_string(), parsed.subject().as_raw().to_vec());
        let cert = CertificateDer::from(der);
        let anchor = webpki::anchor_from_trusted_cert(&cert)
            .map_err(|e| AttestationError::Malformed(format!("not usable as a trust anchor: {e}")))?
            .to_owned();
        Ok(Self { anchor, subject, subject_der, der: der.to_vec() })
    }

    /// The same root: the same subject and public key.
    pub fn same_as(&self, other: &Anchor) -> bool {
        self.subject_der == other.subject_der && self.anchor.subject_public_key_info == other.anchor.subject_public_key_info
    }
}

/// Which chains may take the x509-parser path when webpki refuses a
/// critical extension it does not process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// None: webpki decides (every format but tpm, the metadata BLOB).
    Never,
    /// TPM AIK chains (Windows Hello marks certificatePolicies critical).
    TpmAik,
}

/// Validates `chain` (the leaf first, then intermediates) up to one of
/// `anchors` at `now` (Unix seconds); a certificate just outside its
/// validity is accepted within `skew` seconds. Returns the position in
/// `anchors` of the anchor reached.
pub fn verify_chain(chain: &[&[u8]], anchors: &[&Anchor], now: u64, skew: u64, fallback: Fallback) -> Result<usize, AttestationError> {
    let Some((leaf, rest)) = chain.split_first() else {
        return Err(AttestationError::Untrusted("empty certificate chain".into()));
    };
    let may_fall_back = fallback == Fallback::TpmAik && only_known_critical(chain);
    let leaf_der = CertificateDer::from(*leaf);
    let leaf = match EndEntityCert::try_from(&leaf_der) {
        Ok(l) => l,
        Err(webpki::Error::UnsupportedCriticalExtension) if may_fall_back => {
            return verify_chain_x509(chain, anchors, now, skew);
        }
        Err(e) => return Err(AttestationError::Untrusted(format!("attestation certificate: {e:?}"))),
    };
    let intermediates: Vec<CertificateDer<'_>> = rest.iter().map(|c| CertificateDer::from(*c)).collect();
    let roots: Vec<TrustAnchor<'_>> = anchors.iter().map(|a| a.anchor.clone()).collect();
    let attempt = |t: u64| {
        leaf.verify_for_usage(
            CHAIN_ALGORITHMS,
            &roots,
            &intermediates,
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(t)),
            AnyUsage,
            None,
            None,
        )
        .map(|path| {
            let reached = path.anchor();
            anchors.iter().position(|a| {
                a.anchor.subject.as_ref() == reached.subject.as_ref()
                    && a.anchor.subject_public_key_info.as_ref() == reached.subject_public_key_info.as_ref()
            })
        })
    };
    let result = match attempt(now) {
        Err(webpki::Error::CertExpired { .. }) if skew > 0 => attempt(now.saturating_sub(skew)),
        Err(webpki::Error::CertNotValidYet { .. }) if skew > 0 => attempt(now.saturating_add(skew)),
        other => other,
    };
    match result {
        Ok(Some(i)) => Ok(i),
        Ok(None) => Err(AttestationError::Untrusted("no trust anchor".into())),
        Err(webpki::Error::UnknownIssuer) => Err(AttestationError::Untrusted("the chain does not reach a configured trust anchor".into())),
        // TPM AIK certificates (Windows Hello) mark certificatePolicies
        // critical, which webpki refuses to process: those chains are
        // validated with x509-parser (ring-backed signatures) instead.
        Err(webpki::Error::UnsupportedCriticalExtension) if may_fall_back => verify_chain_x509(chain, anchors, now, skew),
        Err(e) => Err(AttestationError::Untrusted(format!("the certificate chain does not validate: {e:?}"))),
    }
}

/// The critical extensions x509-parser's path below may pass over: the ones
/// webpki processes, plus certificatePolicies (2.5.29.32), which neither
/// uses (no policy is required of attestation chains).
const KNOWN_CRITICAL: [&str; 7] = ["2.5.29.15", "2.5.29.17", "2.5.29.19", "2.5.29.30", "2.5.29.31", "2.5.29.37", "2.5.29.32"];

/// Every critical extension in the chain is one of [`KNOWN_CRITICAL`], and
/// none is a name constraint (which the path below does not apply).
fn only_known_critical(chain: &[&[u8]]) -> bool {
    chain.iter().all(|der| {
        parse(der).is_ok_and(|c| {
            c.extensions().iter().filter(|e| e.critical).all(|e| {
                let oid = e.oid.to_id_string();
                KNOWN_CRITICAL.contains(&oid.as_str()) && oid != "2.5.29.30"
            })
        })
    })
}

/// Signature algorithms the fallback path accepts on certificates: SHA-2
/// RSA (PKCS#1 v1.5 and PSS), ECDSA with SHA-256/384/512, Ed25519; never
/// SHA-1 or MD5.
const FALLBACK_SIGNATURES: [&str; 8] = [
    "1.2.840.113549.1.1.11", // sha256WithRSAEncryption
    "1.2.840.113549.1.1.12", // sha384WithRSAEncryption
    "1.2.840.113549.1.1.13", // sha512WithRSAEncryption
    "1.2.840.113549.1.1.10", // RSASSA-PSS
    "1.2.840.10045.4.3.2",   // ecdsa-with-SHA256
    "1.2.840.10045.4.3.3",   // ecdsa-with-SHA384
    "1.2.840.10045.4.3.4",   // ecdsa-with-SHA512
    "1.3.101.112",           // Ed25519
];

/// The certificate's key is strong enough: RSA of at least 2048 bits, EC on
/// P-256 or P-384, or Ed25519 (what webpki's algorithms accept).
fn strong_key(c: &X509Certificate<'_>) -> Result<(), AttestationError> {
    use x509_parser::public_key::PublicKey as Pk;
    let spki = c.public_key();
    match spki.parsed() {
        Ok(Pk::RSA(rsa)) if rsa.key_size() >= 2048 => Ok(()),
        Ok(Pk::RSA(rsa)) => Err(AttestationError::Untrusted(format!("an RSA key of {} bits (2048 or more needed)", rsa.key_size()))),
        Ok(Pk::EC(_)) => {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
            match curve.as_deref() {
                Some(P256 | P384) => Ok(()),
                other => Err(AttestationError::Untrusted(format!("an EC key on {other:?} (P-256 or P-384 needed)"))),
            }
        }
        _ if spki.algorithm.algorithm.to_id_string() == ED25519 => Ok(()),
        _ => Err(AttestationError::Untrusted(format!("a {} key", spki.algorithm.algorithm.to_id_string()))),
    }
}

/// What a CA certificate (or the anchor) must say to issue: CA true, key
/// usage keyCertSign, a path length that allows `below` CAs under it, and
/// no name constraints (the fallback path does not apply them).
fn may_issue(c: &X509Certificate<'_>, below: usize, what: &str) -> Result<(), AttestationError> {
    let bc = c.basic_constraints().map_err(|e| AttestationError::Untrusted(format!("{what}: basic constraints: {e}")))?;
    let Some(bc) = bc.filter(|b| b.value.ca) else {
        return Err(AttestationError::Untrusted(format!("{what} is not a CA")));
    };
    if let Some(max) = bc.value.path_len_constraint
        && usize::try_from(max).unwrap_or(usize::MAX) < below
    {
        return Err(AttestationError::Untrusted(format!("{what} allows {max} CA certificates under it, the chain has {below}")));
    }
    match c.key_usage().map_err(|e| AttestationError::Untrusted(format!("{what}: key usage: {e}")))? {
        Some(ku) if ku.value.key_cert_sign() => {}
        _ => return Err(AttestationError::Untrusted(format!("{what} lacks the key usage keyCertSign"))),
    }
    if c.name_constraints().map_err(|e| AttestationError::Untrusted(format!("{what}: name constraints: {e}")))?.is_some() {
        return Err(AttestationError::Untrusted(format!("{what} has name constraints, which this path does not apply")));
    }
    Ok(())
}

/// Path validation for TPM AIK chains webpki will not process (a critical
/// certificatePolicies), as strict as webpki's on what matters here: each
/// certificate within its validity (± `skew`), signed by the next with a
/// SHA-2 (or Ed25519) signature, every key strong enough; each issuer a CA
/// with keyCertSign whose path length allows the CAs under it and that has
/// no name constraints; the last signed by an anchor whose subject is its
/// issuer, held to the same. Signatures are checked by x509-parser's
/// `verify` (ring).
fn verify_chain_x509(chain: &[&[u8]], anchors: &[&Anchor], now: u64, skew: u64) -> Result<usize, AttestationError> {
    let certs = chain.iter().map(|d| parse(d)).collect::<Result<Vec<_>, _>>()?;
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let skew = i64::try_from(skew).unwrap_or(0);
    // Algorithms and keys first: a weak key is named as such, not as a
    // signature that does not verify.
    for (i, c) in certs.iter().enumerate() {
        let alg = c.signature_algorithm.algorithm.to_id_string();
        if !FALLBACK_SIGNATURES.contains(&alg.as_str()) {
            return Err(AttestationError::Untrusted(format!(
                "certificate {i} of the chain is signed with {alg}, not a SHA-2 or Ed25519 signature"
            )));
        }
        strong_key(c).map_err(|e| AttestationError::Untrusted(format!("certificate {i} of the chain has {e}")))?;
    }
    for (i, c) in certs.iter().enumerate() {
        let v = c.validity();
        if now + skew < v.not_before.timestamp() || now - skew > v.not_after.timestamp() {
            return Err(AttestationError::Untrusted(format!("certificate {i} of the chain is outside its validity")));
        }
        if let Some(issuer) = certs.get(i + 1) {
            if c.issuer() != issuer.subject() {
                return Err(AttestationError::Untrusted(format!(
                    "certificate {} of the chain is not the CA that issued certificate {i}",
                    i + 1
                )));
            }
            // CAs under certificate i + 1: those between it and the leaf.
            may_issue(issuer, i, &format!("certificate {} of the chain", i + 1))?;
            c.verify_signature(Some(issuer.public_key()))
                .map_err(|e| AttestationError::Untrusted(format!("certificate {i} of the chain: signature: {e}")))?;
        }
    }
    let last = certs.last().ok_or_else(|| AttestationError::Untrusted("empty certificate chain".into()))?;
    for (i, a) in anchors.iter().enumerate() {
        if a.subject_der != last.issuer().as_raw() {
            continue;
        }
        let Ok(root) = parse(&a.der) else { continue };
        if last.verify_signature(Some(root.public_key())).is_ok() {
            may_issue(&root, certs.len() - 1, "the trust anchor")?;
            return Ok(i);
        }
    }
    Err(AttestationError::Untrusted("the chain does not reach a configured trust anchor".into()))
}
