#![no_main]
//! The whole verify function on arbitrary clientDataJSON, authenticatorData
//! and signature: never panics, never says "valid" for forged bytes.
use assertd_verify::{AssertionInput, CredentialInput, PublicKey, RelyingParty, verify};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

struct Fixture {
    rp: RelyingParty,
    key: PublicKey,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // COSE_Key of the W3C §16 none-ES256 example (rp example.org).
        let key = [
            0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20, 0xaf, 0xef, 0xa1, 0x6f, 0x97, 0xca, 0x9b, 0x2d, 0x23, 0xeb, 0x86,
            0xcc, 0xb6, 0x40, 0x98, 0xd2, 0x0d, 0xb9, 0x08, 0x56, 0x06, 0x2e, 0xb2, 0x49, 0xc3, 0x3a, 0x9b, 0x67, 0x2f, 0x26, 0xdf, 0x61,
            0x22, 0x58, 0x20, 0x93, 0x0a, 0x56, 0xb8, 0x7a, 0x2f, 0xca, 0x66, 0x33, 0x4b, 0x03, 0x45, 0x8a, 0xbf, 0x87, 0x97, 0x17, 0xc1,
            0x2c, 0xc6, 0x8e, 0xd7, 0x32, 0x90, 0xaf, 0x2e, 0x26, 0x64, 0x79, 0x6b, 0x92, 0x20,
        ];
        Fixture {
            rp: RelyingParty::new("example.org", vec!["https://example.org".into()], true, Some("https://example.org/appid")),
            key: PublicKey::from_cose(&key).expect("the W3C key parses"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    // Split the input into the three byte strings by two length bytes.
    let (a, rest) = data.split_at(2);
    let n1 = usize::from(a[0]).min(rest.len());
    let (cdj, rest) = rest.split_at(n1);
    let n2 = usize::from(a[1]).min(rest.len());
    let (ad, sig) = rest.split_at(n2);
    let f = fixture();
    let v = verify(
        &f.rp,
        CredentialInput { key: &f.key, user_handle: b"u" },
        &AssertionInput {
            client_data_json: cdj,
            authenticator_data: ad,
            signature: sig,
            user_handle: b"",
            expected_user_handle: b"",
            challenge: assertd_verify::Challenge::Expected(b"challenge"),
            appid_used: a[0] & 1 == 1,
        },
    );
    assert!(!v.is_valid(), "forged bytes verified");
});
