//! Property tests for the parsers: arbitrary bytes never panic, and what a
//! parser accepts holds exactly the fields that were encoded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assertd_verify::cbor::Reader;
use assertd_verify::{AuthenticatorData, ClientData, Flags, PublicKey};
use proptest::prelude::*;

/// Authenticator data without attested credential data or extensions.
fn encode(rp_id_hash: &[u8; 32], flags: u8, sign_count: u32) -> Vec<u8> {
    let mut out = rp_id_hash.to_vec();
    out.push(flags);
    out.extend_from_slice(&sign_count.to_be_bytes());
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn client_data_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = ClientData::parse(&bytes);
    }

    #[test]
    fn authenticator_data_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = AuthenticatorData::parse(&bytes);
    }

    #[test]
    fn cose_keys_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = PublicKey::from_cose(&bytes);
    }

    #[test]
    fn cbor_skip_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut r = Reader::new(&bytes);
        if r.skip().is_ok() {
            prop_assert!(r.position() <= bytes.len());
        }
    }

    /// The fixed part round-trips: every field parsed is the field encoded,
    /// and re-encoding what was parsed gives the same bytes.
    #[test]
    fn authenticator_data_round_trips(rp_id_hash in any::<[u8; 32]>(), flags in any::<u8>(), sign_count in any::<u32>()) {
        let flags = flags & !0xC0; // no AT, no ED: nothing follows the fixed part
        let bytes = encode(&rp_id_hash, flags, sign_count);
        let ad = AuthenticatorData::parse(&bytes).unwrap();
        prop_assert_eq!(ad.rp_id_hash, &rp_id_hash);
        prop_assert_eq!(ad.flags, Flags(flags));
        prop_assert_eq!(ad.sign_count, sign_count);
        prop_assert_eq!(encode(ad.rp_id_hash, ad.flags.0, ad.sign_count), bytes.clone());
        // One byte more is refused, one byte less too.
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(AuthenticatorData::parse(&longer).is_err());
        prop_assert!(AuthenticatorData::parse(&bytes[..36]).is_err());
    }

    /// Whatever parses from arbitrary 37 bytes re-encodes to those bytes.
    #[test]
    fn parsed_fixed_parts_re_encode(bytes in proptest::collection::vec(any::<u8>(), 37..=37)) {
        if let Ok(ad) = AuthenticatorData::parse(&bytes) {
            prop_assert_eq!(encode(ad.rp_id_hash, ad.flags.0, ad.sign_count), bytes);
        }
    }

    /// clientDataJSON as a browser serializes it parses to the same members.
    #[test]
    fn client_data_round_trips(
        ty in "webauthn\\.(get|create)",
        challenge in "[A-Za-z0-9_-]{0,64}",
        origin in "https://[a-z0-9.-]{1,40}(:[0-9]{1,5})?",
        cross_origin in proptest::option::of(any::<bool>()),
        extra in "[ -~]{0,32}",
    ) {
        let mut json = serde_json::json!({ "type": ty, "challenge": challenge, "origin": origin, "other": extra });
        if let Some(c) = cross_origin {
            json["crossOrigin"] = serde_json::Value::Bool(c);
        }
        let bytes = serde_json::to_vec(&json).unwrap();
        let c = ClientData::parse(&bytes).unwrap();
        prop_assert_eq!(c.ty.as_ref(), ty.as_str());
        prop_assert_eq!(c.challenge.as_ref(), challenge.as_str());
        prop_assert_eq!(c.origin.as_ref(), origin.as_str());
        prop_assert_eq!(c.cross_origin, cross_origin);
        prop_assert_eq!(c.top_origin, None);
    }
}
