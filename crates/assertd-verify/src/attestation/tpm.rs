//! §8.3 `tpm`: the TPM 2.0 structures the statement carries (`pubArea`, a
//! TPMT_PUBLIC; `certInfo`, a TPMS_ATTEST), read with a bounds-checked
//! big-endian reader (TPM 2.0 Library Part 2, "Structures"), and the AIK
//! certificate requirements (§8.3.1).

use super::cert;
use super::formats::{Result, cert_signature, invalid, leaf_requirements};
use super::{AttestationError, AttestationType, Map, Statement, StatementInput};
use crate::cose::Algorithm;
use crate::cose::strip_zeros;
use ring::digest;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Version;

/// A big-endian reader that never reads past its input.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(invalid(format!("{} is truncated", self.what)));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A TPM2B: a u16 size, then that many bytes.
    fn sized(&mut self) -> Result<&'a [u8]> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
    fn done(&self) -> Result<()> {
        if self.buf.is_empty() { Ok(()) } else { Err(invalid(format!("{} trailing bytes after {}", self.buf.len(), self.what))) }
    }
}

const TPM_ALG_RSA: u16 = 0x0001;
const TPM_ALG_SHA1: u16 = 0x0004;
const TPM_ALG_SHA256: u16 = 0x000B;
const TPM_ALG_SHA384: u16 = 0x000C;
const TPM_ALG_SHA512: u16 = 0x000D;
const TPM_ALG_NULL: u16 = 0x0010;
const TPM_ALG_ECC: u16 = 0x0023;
const TPM_ECC_NIST_P256: u16 = 0x0003;
const TPM_ECC_NIST_P384: u16 = 0x0004;
const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;

/// The key a TPMT_PUBLIC describes.
enum TpmKey<'a> {
    Rsa { n: &'a [u8], exponent: u32 },
    Ecc { curve: u16, x: &'a [u8], y: &'a [u8] },
}

/// TPMA_OBJECT bits (TPM 2.0 Part 2, "TPMA_OBJECT (Object Attributes)"):
/// fixedTPM (bit 1: the object cannot be duplicated out of this TPM),
/// fixedParent (bit 4: nor re-parented), sensitiveDataOrigin (bit 5: the
/// TPM generated its private part). All three: the key never left the TPM.
const FIXED_TPM: u32 = 1 << 1;
const FIXED_PARENT: u32 = 1 << 4;
const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;

/// TPMT_PUBLIC: type, nameAlg, objectAttributes, authPolicy, parameters,
/// unique. The symmetric and scheme fields carry details when they are not
/// TPM_ALG_NULL (TPM 2.0 Part 2, 12.2.3.5); some stacks (and test suites)
/// write the algorithm alone, so that layout is read when the first one
/// does not fill the bytes exactly. Either way the key must then equal the
/// credential key, and the bytes hash to the name the TPM signed.
fn pub_area(bytes: &[u8]) -> Result<(TpmKey<'_>, u32)> {
    pub_area_layout(bytes, true).or_else(|_| pub_area_layout(bytes, false))
}

fn pub_area_layout(bytes: &[u8], details: bool) -> Result<(TpmKey<'_>, u32)> {
    let mut r = Reader { buf: bytes, what: "pubArea" };
    let ty = r.u16()?;
    let _name_alg = r.u16()?;
    let attributes = r.u32()?;
    let _auth_policy = r.sized()?;
    // symmetric (TPMT_SYM_DEF_OBJECT) and scheme: an algorithm, with details
    // unless it is TPM_ALG_NULL.
    let symmetric = r.u16()?;
    if details && symmetric != TPM_ALG_NULL {
        r.take(4)?;
    }
    let scheme = r.u16()?;
    if details && scheme != TPM_ALG_NULL {
        r.take(2)?;
    }
    let key = match ty {
        TPM_ALG_RSA => {
            let _key_bits = r.u16()?;
            let exponent = r.u32()?;
            let n = r.sized()?;
            TpmKey::Rsa { n, exponent: if exponent == 0 { 65_537 } else { exponent } }
        }
        TPM_ALG_ECC => {
            let curve = r.u16()?;
            let kdf = r.u16()?;
            if details && kdf != TPM_ALG_NULL {
                r.take(2)?;
            }
            let x = r.sized()?;
            let y = r.sized()?;
            TpmKey::Ecc { curve, x, y }
        }
        other => return Err(invalid(format!("pubArea type {other:#06x} is neither RSA nor ECC"))),
    };
    r.done()?;
    Ok((key, attributes))
}

/// What §8.3 reads from TPMS_ATTEST: extraData and the attested name.
struct CertInfo<'a> {
    extra_data: &'a [u8],
    name: &'a [u8],
}

/// TPMS_ATTEST: magic, type, qualifiedSigner, extraData, clockInfo,
/// firmwareVersion, attested (TPMS_CERTIFY_INFO: name, qualifiedName).
fn cert_info(bytes: &[u8]) -> Result<CertInfo<'_>> {
    let mut r = Reader { buf: bytes, what: "certInfo" };
    if r.u32()? != TPM_GENERATED_VALUE {
        return Err(invalid("certInfo.magic is not TPM_GENERATED_VALUE"));
    }
    if r.u16()? != TPM_ST_ATTEST_CERTIFY {
        return Err(invalid("certInfo.type is not TPM_ST_ATTEST_CERTIFY"));
    }
    let _qualified_signer = r.sized()?;
    let extra_data = r.sized()?;
    r.take(17)?; // clockInfo: clock u64, resetCount u32, restartCount u32, safe u8
    r.take(8)?; // firmwareVersion
    let name = r.sized()?;
    let _qualified_name = r.sized()?;
    r.done()?;
    Ok(CertInfo { extra_data, name })
}

/// The digest a TPM algorithm id names.
fn tpm_hash(alg: u16) -> Option<&'static digest::Algorithm> {
    Some(match alg {
        TPM_ALG_SHA1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        TPM_ALG_SHA256 => &digest::SHA256,
        TPM_ALG_SHA384 => &digest::SHA384,
        TPM_ALG_SHA512 => &digest::SHA512,
        _ => return None,
    })
}

/// The hash a COSE signature algorithm uses (extraData is hashed with it).
fn cose_hash(alg: i64) -> Option<&'static digest::Algorithm> {
    Some(match alg {
        -65535 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        -7 | -257 | -37 | -8 => &digest::SHA256,
        -35 | -258 | -38 => &digest::SHA384,
        -36 | -259 | -39 => &digest::SHA512,
        _ => return None,
    })
}

const OID_TCG_KP_AIK_CERTIFICATE: &str = "2.23.133.8.3";
const OID_TPM_MANUFACTURER: &str = "2.23.133.2.1";
const OID_TPM_MODEL: &str = "2.23.133.2.2";
const OID_TPM_VERSION: &str = "2.23.133.2.3";

/// §8.3.1 "TPM Attestation Statement Certificate Requirements".
fn aik_certificate(aik: &X509Certificate<'_>, aaguid: &[u8; 16]) -> Result<bool> {
    if aik.version() != X509Version::V3 {
        return Err(invalid("the AIK certificate is not X.509 version 3"));
    }
    if aik.subject().iter().next().is_some() {
        return Err(invalid("the AIK certificate's subject is not empty"));
    }
    // The SAN's directoryName names the TPM manufacturer, model and version.
    let san = aik.subject_alternative_name().map_err(|e| invalid(format!("AIK subject alternative name: {e}")))?;
    let mut found = [false; 3];
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        if let GeneralName::DirectoryName(dn) = name {
            for attr in dn.iter_attributes() {
                let oid = attr.attr_type().to_id_string();
                for (i, want) in [OID_TPM_MANUFACTURER, OID_TPM_MODEL, OID_TPM_VERSION].iter().enumerate() {
                    found[i] |= oid == *want;
                }
            }
        }
    }
    if found != [true; 3] {
        return Err(invalid("the AIK certificate's subject alternative name lacks the TPM manufacturer, model or version"));
    }
    let eku = aik.extended_key_usage().map_err(|e| invalid(format!("AIK extended key usage: {e}")))?;
    if !eku.is_some_and(|e| e.value.other.iter().any(|o| o.to_id_string() == OID_TCG_KP_AIK_CERTIFICATE)) {
        return Err(invalid("the AIK certificate's extended key usage lacks tcg-kp-AIKCertificate (2.23.133.8.3)"));
    }
    leaf_requirements(aik, aaguid)
}

/// §8.3 `tpm`.
pub(super) fn verify(map: &Map<'_>, input: &StatementInput<'_>) -> Result<Statement> {
    map.only(&["ver", "alg", "x5c", "sig", "certInfo", "pubArea"])?;
    match map.get("ver") {
        Some(ciborium::Value::Text(v)) if v == "2.0" => {}
        _ => return Err(invalid("attStmt.ver is not \"2.0\"")),
    }
    let alg = map.int("alg")?;
    let sig = map.bytes("sig")?;
    let cert_info_bytes = map.bytes("certInfo")?;
    let pub_area_bytes = map.bytes("pubArea")?;
    let x5c = map.x5c()?.ok_or_else(|| invalid("attStmt.x5c is missing (ECDAA is not supported)"))?;

    // "Verify that the public key specified by the parameters and unique
    // fields of pubArea is identical to the credentialPublicKey".
    let (tpm_key, attributes) = pub_area(pub_area_bytes)?;
    let same = match (tpm_key, input.key.algorithm()) {
        (TpmKey::Rsa { n, exponent }, Algorithm::Rs256 | Algorithm::Ps256 | Algorithm::Rs1) => {
            input.key.rsa_components().is_some_and(|(kn, ke)| strip_zeros(n) == kn && strip_zeros(&exponent.to_be_bytes()) == ke)
        }
        (TpmKey::Ecc { curve, x, y }, alg @ (Algorithm::Es256 | Algorithm::Es384)) => {
            let (want_curve, size) = if alg == Algorithm::Es256 { (TPM_ECC_NIST_P256, 32) } else { (TPM_ECC_NIST_P384, 48) };
            // Coordinates as fixed-size integers (some TPM stacks pad or
            // strip leading zeros).
            let fixed = |c: &[u8]| -> Option<Vec<u8>> {
                let c: Vec<u8> = c.iter().copied().skip_while(|b| *b == 0).collect();
                (c.len() <= size).then(|| [vec![0; size - c.len()], c].concat())
            };
            let point = fixed(x).zip(fixed(y)).map(|(x, y)| [vec![0x04], x, y].concat());
            curve == want_curve && point.is_some_and(|p| input.key.ec_point() == Some(p.as_slice()))
        }
        _ => false,
    };
    if !same {
        return Err(invalid("pubArea's key is not the credential public key"));
    }
    let info = cert_info(cert_info_bytes)?;
    // "Verify that extraData is set to the hash of attToBeSigned using the
    // hash algorithm employed in alg."
    let hash = cose_hash(alg).ok_or_else(|| AttestationError::Unsupported(format!("statement algorithm {alg} is not supported")))?;
    let mut att_to_be_signed = input.auth_data.to_vec();
    att_to_be_signed.extend_from_slice(input.client_data_hash);
    if info.extra_data != digest::digest(hash, &att_to_be_signed).as_ref() {
        return Err(invalid("certInfo.extraData is not the hash of authenticatorData and clientDataHash"));
    }
    // "Verify that attested contains a TPMS_CERTIFY_INFO structure ...
    // whose name field contains a valid Name for pubArea": nameAlg ‖
    // H_nameAlg(pubArea).
    if info.name.len() < 2 {
        return Err(invalid("certInfo's attested name is truncated"));
    }
    let name_alg = u16::from_be_bytes([info.name[0], info.name[1]]);
    let name_hash = tpm_hash(name_alg).ok_or_else(|| invalid(format!("attested name algorithm {name_alg:#06x} is not a hash")))?;
    if info.name[2..] != *digest::digest(name_hash, pub_area_bytes).as_ref() {
        return Err(invalid("certInfo's attested name is not pubArea's"));
    }
    // "Verify the sig is a valid signature over certInfo using the
    // attestation public key in aikCert with the algorithm specified in alg."
    let aik = cert::parse(x5c[0]).map_err(|e| e.within("AIK certificate"))?;
    cert::verify_signature(&aik, alg, cert_info_bytes, sig).map_err(cert_signature)?;
    let aaguid_in_certificate = aik_certificate(&aik, input.aaguid)?;
    Ok(Statement {
        kind: AttestationType::AttCa,
        x5c: x5c.iter().map(|c| c.to_vec()).collect(),
        covers_aaguid: true,
        aaguid_in_certificate,
        // assertd rule: a TPM attests a device-bound key only when the key
        // cannot leave it.
        untrusted: (attributes & (FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN) != FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN)
            .then(|| format!("pubArea's objectAttributes {attributes:#010x} do not say the key cannot leave the TPM (fixedTPM, fixedParent, sensitiveDataOrigin)")),
        sha1_signature: alg == -65535,
    })
}
