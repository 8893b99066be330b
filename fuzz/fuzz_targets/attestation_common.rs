//! Shared by the per-format attestation targets: the input is an attStmt
//! (CBOR) for one format, checked against a fixed, well-formed credential
//! and authenticator data. Whatever the bytes, verification returns (no
//! panic, no hang) and a statement from the fuzzer never verifies with a
//! certificate chain that reaches an anchor (there are none).

use assertd_verify::PublicKey;
use assertd_verify::attestation::{StatementInput, TrustAnchors, assess, verify_statement};

/// An ES256 COSE key (the W3C vectors' credential key).
const COSE: [u8; 77] = [
    0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20, 0xaf, 0xef, 0xa1, 0x6f, 0x97, 0xca, 0x9b, 0x2d, 0x23, 0xeb, 0x86, 0xcc,
    0xb6, 0x40, 0x98, 0xd2, 0x0d, 0xb9, 0x08, 0x56, 0x06, 0x2e, 0xb2, 0x49, 0xc3, 0x3a, 0x9b, 0x67, 0x2f, 0x26, 0xdf, 0x61, 0x22, 0x58,
    0x20, 0x93, 0x0a, 0x56, 0xb8, 0x7a, 0x2f, 0xca, 0x66, 0x33, 0x4b, 0x03, 0x45, 0x8a, 0xbf, 0x87, 0x97, 0x17, 0xc1, 0x2c, 0xc6, 0x8e,
    0xd7, 0x32, 0x90, 0xaf, 0x2e, 0x26, 0x64, 0x79, 0x6b, 0x92, 0x20,
];

pub fn run(fmt: &str, data: &[u8]) {
    let Ok(ciborium::Value::Map(stmt)) = ciborium::de::from_reader_with_recursion_limit::<ciborium::Value, _>(data, 16) else { return };
    let key = PublicKey::from_cose(&COSE).expect("fixed key");
    let auth_data = [7u8; 37];
    let input = StatementInput {
        auth_data: &auth_data,
        client_data_hash: &[1; 32],
        rp_id_hash: &[7; 32],
        aaguid: &[3; 16],
        credential_id: &[9; 16],
        key: &key,
    };
    if let Ok(s) = verify_statement(fmt, &stmt, &input) {
        let anchors = TrustAnchors::default();
        let offered: Vec<_> = anchors.for_format(fmt, &[3; 16]).into_iter().map(|(a, _)| a).collect();
        let t = assess(&s, &offered, 1_800_000_000, 300, true);
        assert!(!t.trusted, "a fuzzed {fmt} statement was trusted without anchors");
    }
}
