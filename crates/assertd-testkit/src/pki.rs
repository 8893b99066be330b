//! A throwaway PKI for TLS tests: a CA, server certificates for
//! `localhost`, and client certificates with chosen names.

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType};

/// A certificate authority that can issue leaves.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
}

/// A name in a certificate.
#[derive(Debug, Clone, Copy)]
pub enum Name<'a> {
    /// A DNS subject alternative name.
    Dns(&'a str),
    /// A URI subject alternative name (e.g. a SPIFFE ID).
    Uri(&'a str),
    /// The subject common name only.
    CommonName(&'a str),
}

impl Ca {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.self_signed(&key).expect("CA certificate");
        Self { cert, key }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    fn issue(&self, mut p: CertificateParams, usage: ExtendedKeyUsagePurpose, not_after_year: i32) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        p.extended_key_usages = vec![usage];
        p.not_after = rcgen::date_time_ymd(not_after_year, 1, 1);
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("leaf certificate");
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    /// A server certificate for `localhost` and 127.0.0.1, valid until the
    /// start of `not_after_year`.
    pub fn server(&self, not_after_year: i32) -> Leaf {
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
        p.subject_alt_names.push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        p.distinguished_name.push(DnType::CommonName, "assertd test server");
        self.issue(p, ExtendedKeyUsagePurpose::ServerAuth, not_after_year)
    }

    /// A server certificate for these DNS names only.
    pub fn server_named(&self, names: &[&str], not_after_year: i32) -> Leaf {
        let mut p = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("server params");
        p.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("server"));
        self.issue(p, ExtendedKeyUsagePurpose::ServerAuth, not_after_year)
    }

    /// A client certificate carrying `name`.
    pub fn client(&self, name: Name<'_>) -> Leaf {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("client params");
        match name {
            Name::Dns(n) => p.subject_alt_names.push(SanType::DnsName(n.try_into().expect("DNS name"))),
            Name::Uri(n) => p.subject_alt_names.push(SanType::URI(n.try_into().expect("URI"))),
            Name::CommonName(_) => {}
        }
        let cn = match name {
            Name::CommonName(n) => n,
            _ => "assertd test client",
        };
        p.distinguished_name.push(DnType::CommonName, cn);
        self.issue(p, ExtendedKeyUsagePurpose::ClientAuth, 2099)
    }
}

/// An attestation certificate (FIDO packed requirements, §8.2.1) and its
/// signing key.
pub struct AttestationCert {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Its P-256 key, PKCS#8 DER.
    pub key_pkcs8: Vec<u8>,
}

impl Ca {
    /// An attestation certificate for authenticator model `aaguid`, with
    /// the id-fido-gen-ce-aaguid extension (set `with_aaguid_extension`
    /// false to leave it out), valid until the start of 2099.
    pub fn attestation(&self, aaguid: [u8; 16], with_aaguid_extension: bool) -> AttestationCert {
        let key = KeyPair::generate().expect("attestation key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("attestation params");
        p.distinguished_name.push(DnType::CountryName, "US");
        p.distinguished_name.push(DnType::OrganizationName, "assertd tests");
        p.distinguished_name.push(DnType::OrganizationalUnitName, "Authenticator Attestation");
        p.distinguished_name.push(DnType::CommonName, "assertd test authenticator");
        p.is_ca = IsCa::ExplicitNoCa;
        if with_aaguid_extension {
            let mut content = vec![0x04, 0x10];
            content.extend(aaguid);
            p.custom_extensions.push(rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4], content));
        }
        p.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("attestation certificate");
        AttestationCert { der: cert.der().to_vec(), key_pkcs8: key.serialize_der() }
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }
}

/// A FIDO MDS3 BLOB: `payload` as a JWT signed (ES256) by `signer`, whose
/// certificate is the `x5c` header.
pub fn signed_blob(signer: &AttestationCert, payload: &str) -> Vec<u8> {
    use base64::Engine;
    let b64url = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = format!(r#"{{"alg":"ES256","typ":"JWT","x5c":["{}"]}}"#, base64::engine::general_purpose::STANDARD.encode(&signer.der));
    let signed = format!("{}.{}", b64url(header.as_bytes()), b64url(payload.as_bytes()));
    let rng = ring::rand::SystemRandom::new();
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &signer.key_pkcs8, &rng)
        .expect("signing key");
    let sig = key.sign(&rng, signed.as_bytes()).expect("signature");
    format!("{signed}.{}", b64url(sig.as_ref())).into_bytes()
}
