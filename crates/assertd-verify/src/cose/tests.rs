//! Tests of the parent module.

use super::*;

use base64::Engine;

// COSE_Key of the W3C §16 none-ES256 example (shared/vectors).
const W3C_ES256: &str = "pQECAyYgASFYIK_voW-XypstI-uGzLZAmNINuQhWBi6yScM6m2cvJt9hIlggkwpWuHovymYzSwNFir-HlxfBLMaO1zKQry4mZHlrkiA";

fn hex(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}

#[test]
fn parses_es256() {
    let k = PublicKey::from_cose(&hex(W3C_ES256)).unwrap();
    assert_eq!(k.algorithm(), Algorithm::Es256);
}

#[test]
fn trailing_bytes_are_refused() {
    let mut b = hex(W3C_ES256);
    b.push(0);
    assert!(matches!(PublicKey::from_cose(&b), Err(KeyError::Malformed(m)) if m.contains("trailing")));
}

#[test]
fn es512_is_unsupported_not_malformed() {
    // {1: 2, 3: -36, -1: 3}
    let b = [0xa3, 0x01, 0x02, 0x03, 0x38, 0x23, 0x20, 0x03];
    assert_eq!(PublicKey::from_cose(&b), Err(KeyError::Unsupported { alg: -36, name: "ES512" }));
}

#[test]
fn ed448_is_unsupported() {
    // {1: 1, 3: -8, -1: 7}
    let b = [0xa3, 0x01, 0x01, 0x03, 0x27, 0x20, 0x07];
    assert_eq!(PublicKey::from_cose(&b), Err(KeyError::Unsupported { alg: -8, name: "Ed448" }));
}

#[test]
fn missing_alg_and_duplicates_are_malformed() {
    assert!(matches!(PublicKey::from_cose(&[0xa1, 0x01, 0x02]), Err(KeyError::Malformed(m)) if m.contains("alg")));
    assert!(matches!(PublicKey::from_cose(&[0xa2, 0x01, 0x02, 0x01, 0x02]), Err(KeyError::Malformed(m)) if m.contains("duplicate")));
    assert!(matches!(PublicKey::from_cose(&[0x01]), Err(KeyError::Malformed(_))));
}

#[test]
fn small_rsa_modulus_is_refused() {
    // {1: 3, 3: -257, -1: h'c0' * 128 (1024 bits), -2: h'010001'}
    let mut b = vec![0xa4, 0x01, 0x03, 0x03, 0x39, 0x01, 0x00, 0x20, 0x58, 0x80];
    b.extend(std::iter::repeat_n(0xc0, 128));
    b.extend([0x21, 0x43, 0x01, 0x00, 0x01]);
    assert!(matches!(PublicKey::from_cose(&b), Err(KeyError::Malformed(m)) if m.contains("1024 bits")));
}

#[test]
fn der_structure_check() {
    assert!(is_der_ecdsa_signature(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01], 32));
    assert!(!is_der_ecdsa_signature(&[], 32));
    assert!(!is_der_ecdsa_signature(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01], 32));
    assert!(!is_der_ecdsa_signature(&[0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00], 32));
    let mut long = vec![0x30, 0x46, 0x02, 0x22];
    long.extend([1; 34]);
    long.extend([0x02, 0x20]);
    long.extend([1; 32]);
    assert!(!is_der_ecdsa_signature(&long, 32), "34-byte r exceeds P-256");
}

/// The feature really changes who does the math (a build with it that
/// still verified on ring would pass every other test unnoticed).
#[test]
fn the_signature_backend_is_the_one_the_build_names() {
    let used = std::any::type_name::<signature::UnparsedPublicKey<&[u8]>>();
    let expected = if cfg!(feature = "aws-lc-rs") { "aws_lc_rs::" } else { "ring::" };
    assert!(used.starts_with(expected), "{used} (SIGNATURE_BACKEND {SIGNATURE_BACKEND})");
    assert_eq!(SIGNATURE_BACKEND, if cfg!(feature = "aws-lc-rs") { "aws-lc-rs" } else { "ring" });
}
