#![no_main]
//! clientDataJSON parsing: never panics, and a parse is consistent.
use assertd_verify::ClientData;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = ClientData::parse(data) {
        // A parsed topOrigin implies a cross-origin ceremony.
        assert!(c.top_origin.is_none() || c.is_cross_origin());
    }
});
