#![no_main]
//! COSE_Key parsing: never panics; a parsed key verifies nothing random.
use assertd_verify::PublicKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = PublicKey::from_cose(data) {
        assert!(k.verify(b"message", data).is_err());
    }
});
