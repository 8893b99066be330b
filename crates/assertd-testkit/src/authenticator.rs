//! A software authenticator: holds one credential key and signs assertions
//! exactly as a real authenticator and client would lay them out.

use crate::cbor::Value;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

/// The fixed 2048-bit RSA test key (generated for these tests with
/// `openssl genpkey`; ring cannot generate RSA keys).
const RSA_TEST_KEY: &[u8] = include_bytes!("../data/rsa2048-test-key.der");

/// Credential algorithms the software authenticator can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// ECDSA P-256 / SHA-256.
    Es256,
    /// ECDSA P-384 / SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
    /// RSA PKCS#1 v1.5 / SHA-256.
    Rs256,
    /// RSA-PSS / SHA-256.
    Ps256,
}

impl Alg {
    /// Every algorithm.
    /// (`ring` cannot sign RS1; the RS1 vector in `assertions_derived.json`
    /// covers it.)
    pub const ALL: [Alg; 5] = [Alg::Es256, Alg::Es384, Alg::EdDsa, Alg::Rs256, Alg::Ps256];

    /// The COSE algorithm identifier.
    pub fn cose(self) -> i64 {
        match self {
            Alg::Es256 => -7,
            Alg::Es384 => -35,
            Alg::EdDsa => -8,
            Alg::Rs256 => -257,
            Alg::Ps256 => -37,
        }
    }
}

enum Key {
    Ecdsa(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
}

/// The three byte strings of an assertion response.
#[derive(Debug, Clone)]
pub struct AssertionParts {
    /// clientDataJSON.
    pub client_data_json: Vec<u8>,
    /// authenticatorData.
    pub authenticator_data: Vec<u8>,
    /// signature.
    pub signature: Vec<u8>,
}

/// A public key in the form signature libraries take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawPublicKey {
    /// ECDSA: the uncompressed SEC1 point; Ed25519: the 32 key bytes.
    Bytes(Vec<u8>),
    /// RSA: big-endian modulus and exponent.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
}

/// One credential on a software authenticator.
pub struct SoftAuthenticator {
    alg: Alg,
    key: Key,
    rng: SystemRandom,
    /// The credential ID.
    pub credential_id: Vec<u8>,
    /// The COSE_Key of the credential's public key.
    pub public_key_cose: Vec<u8>,
}

impl std::fmt::Debug for SoftAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftAuthenticator").field("alg", &self.alg).finish_non_exhaustive()
    }
}

#[allow(clippy::unwrap_used, clippy::expect_used)]
impl SoftAuthenticator {
    /// A new credential with a fresh key (RSA algorithms share the fixed test
    /// key) and a random 16-byte credential ID.
    pub fn new(alg: Alg) -> Self {
        let rng = SystemRandom::new();
        let key = match alg {
            Alg::Es256 | Alg::Es384 => {
                let a =
                    if alg == Alg::Es256 { &signature::ECDSA_P256_SHA256_ASN1_SIGNING } else { &signature::ECDSA_P384_SHA384_ASN1_SIGNING };
                let pk8 = EcdsaKeyPair::generate_pkcs8(a, &rng).unwrap();
                Key::Ecdsa(EcdsaKeyPair::from_pkcs8(a, pk8.as_ref(), &rng).unwrap())
            }
            Alg::EdDsa => {
                let pk8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
                Key::Ed(Ed25519KeyPair::from_pkcs8(pk8.as_ref()).unwrap())
            }
            Alg::Rs256 | Alg::Ps256 => {
                let enc: &'static dyn signature::RsaEncoding =
                    if alg == Alg::Rs256 { &signature::RSA_PKCS1_SHA256 } else { &signature::RSA_PSS_SHA256 };
                Key::Rsa(RsaKeyPair::from_der(RSA_TEST_KEY).unwrap(), enc)
            }
        };
        let public_key_cose = cose_key(alg, &key);
        let mut credential_id = vec![0u8; 16];
        ring::rand::SecureRandom::fill(&rng, &mut credential_id).unwrap();
        Self { alg, key, rng, credential_id, public_key_cose }
    }

    /// The public key as `ring` (and aws-lc-rs) take it: an uncompressed
    /// SEC1 point (ECDSA), the 32 key bytes (Ed25519), or RSA's modulus and
    /// exponent.
    pub fn raw_public_key(&self) -> RawPublicKey {
        match &self.key {
            Key::Ecdsa(k) => RawPublicKey::Bytes(k.public_key().as_ref().to_vec()),
            Key::Ed(k) => RawPublicKey::Bytes(k.public_key().as_ref().to_vec()),
            Key::Rsa(k, _) => {
                let c: signature::RsaPublicKeyComponents<Vec<u8>> = k.public().into();
                RawPublicKey::Rsa { n: c.n, e: c.e }
            }
        }
    }

    /// The credential's algorithm.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// authenticatorData with the given RP ID, flags byte and counter.
    pub fn authenticator_data(rp_id: &str, flags: u8, sign_count: u32) -> Vec<u8> {
        let mut ad = ring::digest::digest(&ring::digest::SHA256, rp_id.as_bytes()).as_ref().to_vec();
        ad.push(flags);
        ad.extend(sign_count.to_be_bytes());
        ad
    }

    /// clientDataJSON for a get ceremony.
    pub fn client_data_json(challenge: &[u8], origin: &str) -> Vec<u8> {
        format!(
            r#"{{"type":"webauthn.get","challenge":"{}","origin":"{}","crossOrigin":false}}"#,
            crate::encoding::b64url(challenge),
            origin
        )
        .into_bytes()
    }

    /// Signs `authenticator_data || SHA-256(client_data_json)`.
    pub fn sign(&self, authenticator_data: &[u8], client_data_json: &[u8]) -> Vec<u8> {
        let mut msg = authenticator_data.to_vec();
        msg.extend(ring::digest::digest(&ring::digest::SHA256, client_data_json).as_ref());
        match &self.key {
            Key::Ecdsa(k) => k.sign(&self.rng, &msg).unwrap().as_ref().to_vec(),
            Key::Ed(k) => k.sign(&msg).as_ref().to_vec(),
            Key::Rsa(k, enc) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(*enc, &self.rng, &msg, &mut sig).unwrap();
                sig
            }
        }
    }

    /// A complete assertion: UP set, plus `extra_flags` (e.g. 0x04 for UV,
    /// 0x18 for BE|BS).
    pub fn assert(&self, rp_id: &str, origin: &str, challenge: &[u8], extra_flags: u8, sign_count: u32) -> AssertionParts {
        let authenticator_data = Self::authenticator_data(rp_id, 0x01 | extra_flags, sign_count);
        let client_data_json = Self::client_data_json(challenge, origin);
        let signature = self.sign(&authenticator_data, &client_data_json);
        AssertionParts { client_data_json, authenticator_data, signature }
    }
}

/// The two byte strings of a registration response.
#[derive(Debug, Clone)]
pub struct RegistrationParts {
    /// clientDataJSON (type webauthn.create).
    pub client_data_json: Vec<u8>,
    /// attestationObject.
    pub attestation_object: Vec<u8>,
}

/// Which attestation statement a registration carries.
pub enum Attestation<'a> {
    /// Format `none`.
    None,
    /// `packed` self attestation (signed with the credential key).
    PackedSelf,
    /// `packed` with an attestation certificate (x5c: just the leaf).
    Packed(&'a crate::pki::AttestationCert),
    /// `fido-u2f` with an attestation certificate (ES256 credentials only).
    FidoU2f(&'a crate::pki::AttestationCert),
}

#[allow(clippy::unwrap_used, clippy::expect_used)]
impl SoftAuthenticator {
    /// authenticatorData of a create() response: the flags (AT added), count
    /// 0, and the attested credential data (this credential's id and key).
    pub fn registration_authenticator_data(&self, rp_id: &str, flags: u8, aaguid: [u8; 16]) -> Vec<u8> {
        let mut ad = Self::authenticator_data(rp_id, flags | 0x40, 0);
        ad.extend(aaguid);
        ad.extend(u16::try_from(self.credential_id.len()).unwrap().to_be_bytes());
        ad.extend(&self.credential_id);
        ad.extend(&self.public_key_cose);
        ad
    }

    /// A complete registration response: UP set plus `extra_flags`, the
    /// model `aaguid`, the statement `attestation`.
    pub fn register(
        &self,
        rp_id: &str,
        origin: &str,
        challenge: &[u8],
        extra_flags: u8,
        aaguid: [u8; 16],
        attestation: Attestation<'_>,
    ) -> RegistrationParts {
        use Value::{Array, Bytes, Int, Map, Text};
        let auth_data = self.registration_authenticator_data(rp_id, 0x01 | extra_flags, aaguid);
        let client_data_json = format!(
            r#"{{"type":"webauthn.create","challenge":"{}","origin":"{}","crossOrigin":false}}"#,
            crate::encoding::b64url(challenge),
            origin
        )
        .into_bytes();
        let cdh = ring::digest::digest(&ring::digest::SHA256, &client_data_json);
        let attestation_key = |cert: &crate::pki::AttestationCert| {
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &cert.key_pkcs8, &self.rng).expect("attestation key")
        };
        let (fmt, stmt) = match attestation {
            Attestation::None => ("none", Vec::new()),
            Attestation::PackedSelf => (
                "packed",
                vec![(Text("alg".into()), Int(self.alg.cose())), (Text("sig".into()), Bytes(self.sign(&auth_data, &client_data_json)))],
            ),
            Attestation::Packed(cert) => {
                let mut msg = auth_data.clone();
                msg.extend(cdh.as_ref());
                let sig = attestation_key(cert).sign(&self.rng, &msg).unwrap().as_ref().to_vec();
                (
                    "packed",
                    vec![
                        (Text("alg".into()), Int(-7)),
                        (Text("sig".into()), Bytes(sig)),
                        (Text("x5c".into()), Array(vec![Bytes(cert.der.clone())])),
                    ],
                )
            }
            Attestation::FidoU2f(cert) => {
                let Key::Ecdsa(k) = &self.key else { panic!("fido-u2f needs an ES256 credential") };
                let mut data = vec![0x00];
                data.extend(&auth_data[..32]);
                data.extend(cdh.as_ref());
                data.extend(&self.credential_id);
                data.extend(k.public_key().as_ref());
                let sig = attestation_key(cert).sign(&self.rng, &data).unwrap().as_ref().to_vec();
                ("fido-u2f", vec![(Text("sig".into()), Bytes(sig)), (Text("x5c".into()), Array(vec![Bytes(cert.der.clone())]))])
            }
        };
        let object = Map(vec![
            (Text("fmt".into()), Text(fmt.into())),
            (Text("attStmt".into()), Map(stmt)),
            (Text("authData".into()), Bytes(auth_data)),
        ]);
        RegistrationParts { client_data_json, attestation_object: object.encode() }
    }
}

#[allow(clippy::unwrap_used)]
fn cose_key(alg: Alg, key: &Key) -> Vec<u8> {
    use Value::{Bytes, Int};
    let map = match key {
        Key::Ecdsa(k) => {
            let p = k.public_key().as_ref();
            let n = (p.len() - 1) / 2;
            let crv = if alg == Alg::Es256 { 1 } else { 2 };
            vec![
                (Int(1), Int(2)),
                (Int(3), Int(alg.cose())),
                (Int(-1), Int(crv)),
                (Int(-2), Bytes(p[1..1 + n].to_vec())),
                (Int(-3), Bytes(p[1 + n..].to_vec())),
            ]
        }
        Key::Ed(k) => vec![(Int(1), Int(1)), (Int(3), Int(-8)), (Int(-1), Int(6)), (Int(-2), Bytes(k.public_key().as_ref().to_vec()))],
        Key::Rsa(k, _) => {
            let c: signature::RsaPublicKeyComponents<Vec<u8>> = k.public().into();
            vec![(Int(1), Int(3)), (Int(3), Int(alg.cose())), (Int(-1), Bytes(c.n)), (Int(-2), Bytes(c.e))]
        }
    };
    Value::Map(map).encode()
}
