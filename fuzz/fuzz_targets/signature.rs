#![no_main]
//! Signature handling (DER structure checks, lengths) for each algorithm:
//! arbitrary bytes never panic and never verify.
use assertd_verify::PublicKey;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Keys of the W3C §16 / Yubico vectors (ES256, ES384, EdDSA, RS256).
fn keys() -> &'static [PublicKey] {
    static KEYS: OnceLock<Vec<PublicKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let v: Vec<serde_like::Vector> = serde_like::load();
        v.into_iter().filter_map(|x| PublicKey::from_cose(&x.key).ok()).collect()
    })
}

mod serde_like {
    //! The COSE keys of the shared vectors, extracted without a JSON crate.
    pub struct Vector {
        pub key: Vec<u8>,
    }

    fn b64url(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            _ => 63,
        };
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in s.bytes() {
            acc = (acc << 6) | u32::from(val(c));
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }

    pub fn load() -> Vec<Vector> {
        let text = include_str!("../../crates/assertd-testkit/data/assertions.json");
        text.split("\"public_key_cose_b64url\": \"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .take(40)
            .map(|k| Vector { key: b64url(k) })
            .collect()
    }
}

fuzz_target!(|data: &[u8]| {
    for k in keys() {
        assert!(k.verify(b"assertd fuzz message", data).is_err());
    }
});
