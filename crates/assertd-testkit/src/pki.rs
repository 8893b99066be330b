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
