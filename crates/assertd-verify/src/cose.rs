//! COSE_Key (RFC 9052 §7, RFC 9053) parsing into a key prepared for `ring`.
//!
//! A credential public key is parsed once (at registration, or when the key
//! cache loads it) into a [`PublicKey`]; verification then hands the prepared
//! bytes straight to `ring`.

use crate::cbor::{CborError, Reader};
// The signature backend: ring by default; aws-lc-rs with the feature of
// that name (same API; every vector and property test runs on both).
#[cfg(feature = "aws-lc-rs")]
use aws_lc_rs::signature;
#[cfg(not(feature = "aws-lc-rs"))]
use ring::signature;

/// Which library verifies assertion signatures in this build: `ring`, or
/// `aws-lc-rs` (the cargo feature of that name).
pub const SIGNATURE_BACKEND: &str = if cfg!(feature = "aws-lc-rs") { "aws-lc-rs" } else { "ring" };

/// A COSE signature algorithm assertd can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256 (COSE -7).
    Es256,
    /// ECDSA P-384 with SHA-384 (COSE -35).
    Es384,
    /// EdDSA over Ed25519 (COSE -8 with crv 6).
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (COSE -257).
    Rs256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt (COSE -37).
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-1 (COSE -65535). Legacy: only where a
    /// profile allows legacy algorithms.
    Rs1,
}

impl Algorithm {
    /// Every algorithm assertd verifies, in the order it prefers them in
    /// `pubKeyCredParams`: EdDSA and ES256 first (small keys, fast to
    /// verify), RSA after, the legacy RS1 last.
    pub const PREFERENCE: [Algorithm; 6] =
        [Algorithm::EdDsa, Algorithm::Es256, Algorithm::Es384, Algorithm::Ps256, Algorithm::Rs256, Algorithm::Rs1];

    /// The COSE algorithm identifier.
    pub fn cose_id(self) -> i64 {
        match self {
            Self::Es256 => -7,
            Self::Es384 => -35,
            Self::EdDsa => -8,
            Self::Rs256 => -257,
            Self::Ps256 => -37,
            Self::Rs1 => -65535,
        }
    }

    /// The JOSE-style name ("ES256", ...), stable for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::Rs1 => "RS1",
        }
    }

    /// True for algorithms only accepted under `allow_legacy_algorithms`.
    pub fn is_legacy(self) -> bool {
        self == Self::Rs1
    }
}

/// Names of COSE algorithms we recognise but do not verify, for messages.
fn unsupported_name(alg: i64) -> &'static str {
    match alg {
        -36 => "ES512",
        -47 => "ES256K",
        -38 => "PS384",
        -39 => "PS512",
        -258 => "RS384",
        -259 => "RS512",
        -48 => "ML-DSA-44",
        -49 => "ML-DSA-65",
        -50 => "ML-DSA-87",
        -53 => "Ed448",
        -9 => "ESP256",
        -19 => "Ed25519 (fully specified)",
        _ => "unknown",
    }
}

/// Why a COSE_Key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The bytes are not a well-formed COSE_Key for their algorithm.
    #[error("malformed COSE key: {0}")]
    Malformed(String),
    /// A well-formed key of an algorithm assertd does not verify.
    #[error("unsupported COSE algorithm {alg} ({name})")]
    Unsupported {
        /// The COSE algorithm identifier.
        alg: i64,
        /// Its name, or "unknown".
        name: &'static str,
    },
}

impl From<CborError> for KeyError {
    fn from(e: CborError) -> Self {
        Self::Malformed(e.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    /// Uncompressed SEC1 point: 0x04 || x || y, held inline (97 bytes fit
    /// P-384) so a verification does not chase another pointer.
    Ec {
        point: [u8; 97],
        len: u8,
    },
    Ed25519([u8; 32]),
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

/// A credential public key, parsed and checked, ready for `ring`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    alg: Algorithm,
    material: Material,
}

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature is not well-formed for the algorithm (DER structure,
    /// length).
    #[error("malformed signature")]
    Malformed,
    /// Well-formed, but does not verify with the key.
    #[error("signature does not verify")]
    Invalid,
}

const KTY: i64 = 1;
const ALG: i64 = 3;
const CRV_OR_N: i64 = -1;
const X_OR_E: i64 = -2;
const Y: i64 = -3;

/// Smallest RSA modulus accepted, in bits (NIST SP 800-131A; `ring`'s floor).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (`ring`'s ceiling).
pub const MAX_RSA_BITS: usize = 8192;

#[derive(Default)]
struct Fields<'a> {
    kty: Option<i64>,
    alg: Option<i64>,
    crv: Option<i64>,
    n: Option<&'a [u8]>,
    x_or_e: Option<&'a [u8]>,
    y: Option<&'a [u8]>,
}

fn set<T>(slot: &mut Option<T>, v: T, label: i64) -> Result<(), KeyError> {
    if slot.replace(v).is_some() {
        return Err(KeyError::Malformed(format!("duplicate label {label}")));
    }
    Ok(())
}

fn read_fields<'a>(r: &mut Reader<'a>) -> Result<Fields<'a>, KeyError> {
    let pairs = r.map()?;
    let mut f = Fields::default();
    // Labels we skip, to refuse duplicates among them too (CTAP2 canonical
    // CBOR has none). A key has no business carrying many of them.
    let mut other_labels = [0i64; 8];
    let mut others = 0;
    for _ in 0..pairs {
        let label = r.int().map_err(|_| KeyError::Malformed("non-integer label".into()))?;
        match label {
            KTY => set(&mut f.kty, r.int()?, label)?,
            ALG => set(&mut f.alg, r.int()?, label)?,
            // -1 is crv (int) for EC2/OKP, n (bytes) for RSA: decide by type.
            CRV_OR_N => {
                let mut peek = r.clone();
                if peek.int().is_ok() {
                    set(&mut f.crv, r.int()?, label)?;
                } else {
                    set(&mut f.n, r.bytes()?, label)?;
                }
            }
            X_OR_E => set(&mut f.x_or_e, r.bytes()?, label)?,
            Y => {
                // EC2 y may be a bool (compressed point sign); we only take
                // uncompressed points.
                let b =
                    r.bytes().map_err(|_| KeyError::Malformed("y must be a byte string (compressed points are not supported)".into()))?;
                set(&mut f.y, b, label)?;
            }
            _ => {
                if other_labels[..others].contains(&label) {
                    return Err(KeyError::Malformed(format!("duplicate label {label}")));
                }
                let slot = other_labels.get_mut(others).ok_or_else(|| KeyError::Malformed("too many labels".into()))?;
                *slot = label;
                others += 1;
                r.skip()?;
            }
        }
    }
    Ok(f)
}

impl PublicKey {
    /// Parses a COSE_Key that must fill `bytes` exactly.
    pub fn from_cose(bytes: &[u8]) -> Result<Self, KeyError> {
        let mut r = Reader::new(bytes);
        let key = Self::read(&mut r)?;
        if !r.remaining().is_empty() {
            return Err(KeyError::Malformed(format!("{} trailing bytes after the key", r.remaining().len())));
        }
        Ok(key)
    }

    /// Parses a COSE_Key at the reader's position and leaves the reader after
    /// it (attested credential data has more bytes after the key).
    pub fn read(r: &mut Reader<'_>) -> Result<Self, KeyError> {
        let f = read_fields(r)?;
        let kty = f.kty.ok_or_else(|| KeyError::Malformed("missing kty (1)".into()))?;
        let alg = f.alg.ok_or_else(|| KeyError::Malformed("missing alg (3)".into()))?;
        let (alg, material) = match alg {
            -7 | -35 => {
                let (alg, crv, size) = if alg == -7 { (Algorithm::Es256, 1, 32) } else { (Algorithm::Es384, 2, 48) };
                if kty != 2 {
                    return Err(KeyError::Malformed(format!("{} needs kty 2 (EC2), got {kty}", alg.name())));
                }
                if f.crv != Some(crv) {
                    return Err(KeyError::Malformed(format!("{} needs crv {crv}, got {:?}", alg.name(), f.crv)));
                }
                let x = need(f.x_or_e, "x (-2)")?;
                let y = need(f.y, "y (-3)")?;
                if x.len() != size || y.len() != size {
                    return Err(KeyError::Malformed(format!("{} coordinates must be {size} bytes", alg.name())));
                }
                let mut point = [0u8; 97];
                point[0] = 0x04;
                point[1..=size].copy_from_slice(x);
                point[1 + size..=2 * size].copy_from_slice(y);
                // size is 32 or 48: 1 + 2 * size fits a u8.
                (alg, Material::Ec { point, len: (1 + 2 * size) as u8 })
            }
            -8 => {
                if kty != 1 {
                    return Err(KeyError::Malformed(format!("EdDSA needs kty 1 (OKP), got {kty}")));
                }
                match f.crv {
                    Some(6) => {}
                    Some(7) => return Err(KeyError::Unsupported { alg: -8, name: "Ed448" }),
                    other => return Err(KeyError::Malformed(format!("EdDSA needs crv 6 (Ed25519), got {other:?}"))),
                }
                let x = need(f.x_or_e, "x (-2)")?;
                let x: [u8; 32] = x.try_into().map_err(|_| KeyError::Malformed("Ed25519 key must be 32 bytes".into()))?;
                (Algorithm::EdDsa, Material::Ed25519(x))
            }
            -257 | -37 | -65535 => {
                let alg = match alg {
                    -257 => Algorithm::Rs256,
                    -37 => Algorithm::Ps256,
                    _ => Algorithm::Rs1,
                };
                if kty != 3 {
                    return Err(KeyError::Malformed(format!("{} needs kty 3 (RSA), got {kty}", alg.name())));
                }
                let n = strip_zeros(need(f.n, "n (-1)")?);
                let e = strip_zeros(need(f.x_or_e, "e (-2)")?);
                let bits = bit_len(n);
                if bits < MIN_RSA_BITS {
                    return Err(KeyError::Malformed(format!("RSA modulus of {bits} bits is below {MIN_RSA_BITS}")));
                }
                if bits > MAX_RSA_BITS {
                    return Err(KeyError::Malformed(format!("RSA modulus of {bits} bits is above {MAX_RSA_BITS}")));
                }
                // ring accepts 3 <= e < 2^33, odd.
                if e.is_empty() || e.len() > 5 || e[e.len() - 1] & 1 == 0 || (e.len() == 1 && e[0] < 3) || (e.len() == 5 && e[0] > 1) {
                    return Err(KeyError::Malformed("RSA exponent must be odd, at least 3 and below 2^33".into()));
                }
                (alg, Material::Rsa { n: n.to_vec(), e: e.to_vec() })
            }
            other => return Err(KeyError::Unsupported { alg: other, name: unsupported_name(other) }),
        };
        Ok(Self { alg, material })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The uncompressed SEC1 point (0x04 || x || y) of an ECDSA key.
    pub fn ec_point(&self) -> Option<&[u8]> {
        match &self.material {
            Material::Ec { point, len } => Some(&point[..usize::from(*len)]),
            _ => None,
        }
    }

    /// The modulus and exponent of an RSA key (no leading zeros).
    pub fn rsa_components(&self) -> Option<(&[u8], &[u8])> {
        match &self.material {
            Material::Rsa { n, e } => Some((n, e)),
            _ => None,
        }
    }

    /// The 32-byte public key of an Ed25519 key.
    pub fn ed25519(&self) -> Option<&[u8; 32]> {
        match &self.material {
            Material::Ed25519(k) => Some(k),
            _ => None,
        }
    }

    /// Verifies `signature` over `message` (WebAuthn L3 §7.2 step 21
    /// (signature): the message is authenticatorData || SHA-256(clientDataJSON)).
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> Result<(), SignatureError> {
        match &self.material {
            Material::Ec { point, len } => {
                let point = &point[..usize::from(*len)];
                let (field, alg): (usize, &'static signature::EcdsaVerificationAlgorithm) = match self.alg {
                    Algorithm::Es384 => (48, &signature::ECDSA_P384_SHA384_ASN1),
                    _ => (32, &signature::ECDSA_P256_SHA256_ASN1),
                };
                if !is_der_ecdsa_signature(sig, field) {
                    return Err(SignatureError::Malformed);
                }
                signature::UnparsedPublicKey::new(alg, point).verify(message, sig).map_err(|_| SignatureError::Invalid)
            }
            Material::Ed25519(key) => {
                if sig.len() != 64 {
                    return Err(SignatureError::Malformed);
                }
                signature::UnparsedPublicKey::new(&signature::ED25519, key).verify(message, sig).map_err(|_| SignatureError::Invalid)
            }
            Material::Rsa { n, e } => {
                if sig.len() != n.len() {
                    return Err(SignatureError::Malformed);
                }
                let params: &signature::RsaParameters = match self.alg {
                    Algorithm::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Algorithm::Rs1 => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                    _ => &signature::RSA_PKCS1_2048_8192_SHA256,
                };
                signature::RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }
                    .verify(params, message, sig)
                    .map_err(|_| SignatureError::Invalid)
            }
        }
    }
}

fn need<'a>(v: Option<&'a [u8]>, what: &str) -> Result<&'a [u8], KeyError> {
    v.ok_or_else(|| KeyError::Malformed(format!("missing {what}")))
}

/// `b` without its leading zero bytes (big-endian integers compared by value).
pub(crate) fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

fn bit_len(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(&top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// Checks that `sig` is a DER `SEQUENCE { INTEGER r, INTEGER s }` (RFC 3279
/// §2.2.3) whose integers fit the curve: structure only, the math is ring's.
fn is_der_ecdsa_signature(sig: &[u8], field: usize) -> bool {
    fn der_len(b: &[u8]) -> Option<(usize, &[u8])> {
        let (&first, rest) = b.split_first()?;
        match first {
            0..=0x7f => Some((first as usize, rest)),
            0x81 => {
                let (&l, rest) = rest.split_first()?;
                (l >= 0x80).then_some((l as usize, rest))
            }
            _ => None,
        }
    }
    fn integer(b: &[u8], field: usize) -> Option<&[u8]> {
        let (&tag, rest) = b.split_first()?;
        if tag != 0x02 {
            return None;
        }
        let (len, rest) = der_len(rest)?;
        if len == 0 || len > field + 1 || rest.len() < len {
            return None;
        }
        Some(&rest[len..])
    }
    let Some((&0x30, rest)) = sig.split_first() else { return false };
    let Some((len, body)) = der_len(rest) else { return false };
    if body.len() != len {
        return false;
    }
    integer(body, field).and_then(|rest| integer(rest, field)).is_some_and(<[u8]>::is_empty)
}

#[cfg(test)]
mod tests;
