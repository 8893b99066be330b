//! Tests of the parent module.

#![allow(clippy::unwrap_used)]

use super::*;

fn tls() -> PostgresTls {
    PostgresTls::default()
}

fn mode(url: &str, t: &PostgresTls) -> Result<Resolved, String> {
    resolve(url, t).map(|(_, r)| r).map_err(|e| e.to_string())
}

#[test]
fn defaults_verify_full_beyond_loopback_and_prefer_on_it() {
    let r = mode("postgres://u@db.example.internal:5432/assertd", &tls()).unwrap();
    assert_eq!((r.mode, r.roots), (SslMode::VerifyFull, Some(RootCert::System)));
    for local in ["postgres://u@127.0.0.1/db", "postgres://u@localhost/db", "postgres://u@[::1]:5432/db", "host=/run/postgresql user=u"] {
        assert_eq!(mode(local, &tls()).unwrap().mode, SslMode::Prefer, "{local}");
    }
    // One remote host among several is enough.
    assert_eq!(mode("postgres://u@127.0.0.1,db.example.internal/db", &tls()).unwrap().mode, SslMode::VerifyFull);
}

#[test]
fn an_unchecked_server_beyond_loopback_needs_the_insecure_setting() {
    for m in ["disable", "prefer", "require"] {
        let e = mode(&format!("postgres://u@10.0.0.5/db?sslmode={m}"), &tls()).unwrap_err();
        assert!(e.contains("insecure_allow_unverified_postgres") && e.contains("verify-full"), "{e}");
        let ok = PostgresTls { insecure_allow_unverified: true, ..tls() };
        assert_eq!(mode(&format!("postgres://u@10.0.0.5/db?sslmode={m}"), &ok).unwrap().mode.as_str(), m);
    }
    // require with a root checks the chain (libpq), so it is accepted.
    let r = mode("postgres://u@10.0.0.5/db?sslmode=require&sslrootcert=/ca.pem", &tls()).unwrap();
    assert_eq!(r.roots, Some(RootCert::File("/ca.pem".into())));
}

#[test]
fn url_parameters_are_taken_out_and_must_agree_with_the_settings() {
    let (pg, r) = resolve(
        "postgres://u@db.internal/db?application_name=x&sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem&sslcert=/c.pem&sslkey=/k.pem",
        &tls(),
    )
    .unwrap();
    assert_eq!(pg.get_application_name(), Some("x"));
    assert_eq!(pg.get_ssl_mode(), PgSslMode::Require);
    assert_eq!(r.mode, SslMode::VerifyCa);
    assert_eq!(r.roots, Some(RootCert::File("/etc/ca.pem".into())));
    assert_eq!(r.client, Some(("/c.pem".into(), "/k.pem".into())));
    let both = PostgresTls { mode: Some(SslMode::VerifyFull), ..tls() };
    let e = mode("postgres://u@db.internal/db?sslmode=verify-ca", &both).unwrap_err();
    assert!(e.contains("store.sslmode") && e.contains("one place"), "{e}");
    assert!(mode("postgres://u@db.internal/db?sslmode=verify-full", &both).is_ok());
    let e = mode("postgres://u@db.internal/db?sslmode=allow", &tls()).unwrap_err();
    assert!(e.contains("verify-full"), "{e}");
    let e = mode("postgres://u@db.internal/db?sslcert=/c.pem", &tls()).unwrap_err();
    assert!(e.contains("ssl_key"), "{e}");
    let e = mode("host=db.internal sslmode=verify-full", &tls()).unwrap_err();
    assert!(e.contains("[store] keys"), "{e}");
}

#[test]
fn disable_reaches_tokio_postgres() {
    let (pg, _) = resolve("postgres://u@127.0.0.1/db?sslmode=disable", &tls()).unwrap();
    assert_eq!(pg.get_ssl_mode(), PgSslMode::Disable);
}

#[test]
fn channel_binding_hashes_with_the_signature_hash() {
    // rcgen signs with ECDSA P-256 / SHA-256 by default.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["db".to_owned()]).unwrap().self_signed(&key).unwrap();
    let der = cert.der().to_vec();
    let bound = server_end_point(&der).unwrap();
    assert_eq!(bound, ring::digest::digest(&ring::digest::SHA256, &der).as_ref());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["db".to_owned()]).unwrap().self_signed(&key).unwrap();
    assert_eq!(server_end_point(cert.der()).unwrap().len(), 48);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["db".to_owned()]).unwrap().self_signed(&key).unwrap();
    assert_eq!(server_end_point(cert.der()), None);
    assert_eq!(server_end_point(b"not a certificate"), None);
}
