#![no_main]
//! authenticatorData parsing (fixed part, attested credential data,
//! extensions): never panics; what parses accounts for every byte.
use assertd_verify::AuthenticatorData;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ad) = AuthenticatorData::parse(data) {
        let acd = ad.attested_credential.as_ref().map_or(0, |a| 18 + a.credential_id.len() + a.public_key_cose.len());
        let ext = ad.extensions.map_or(0, <[u8]>::len);
        assert_eq!(37 + acd + ext, data.len(), "no trailing or missing bytes");
        assert_eq!(ad.attested_credential.is_some(), ad.flags.attested_credential_data());
        assert_eq!(ad.extensions.is_some(), ad.flags.extension_data());
    }
});
