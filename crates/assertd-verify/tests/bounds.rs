//! Bounded work for end-user input (issue 26 §4): an attestation object
//! whose maps hold thousands of keys is refused for their number, before
//! any key is compared with another (it was a search per key: ~216 ms of
//! pool time for 16 380 keys in 64 KiB).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assertd_verify::attestation::{AttestationObject, MAX_ATTESTATION_OBJECT, MAX_MAP_ENTRIES};

/// A CBOR map header for `n` entries (n < 65 536).
fn map_header(n: usize) -> Vec<u8> {
    let n = u16::try_from(n).unwrap();
    if n < 24 { vec![0xa0 | n as u8] } else { [vec![0xb9], n.to_be_bytes().to_vec()].concat() }
}

/// The text key `k` (at most 23 bytes) with the value 0.
fn entry(k: &str) -> Vec<u8> {
    [vec![0x60 | u8::try_from(k.len()).unwrap()], k.as_bytes().to_vec(), vec![0x00]].concat()
}

#[test]
fn a_map_of_thousands_of_keys_is_refused_for_its_size() {
    // Distinct 3-letter keys, 5 bytes an entry: as many as fit in 64 KiB.
    let whole = (MAX_ATTESTATION_OBJECT - 3) / 5;
    let mut object = map_header(whole);
    for i in 0..whole {
        let k = [
            b'a' + u8::try_from(i / 26 / 26 % 26).unwrap(),
            b'a' + u8::try_from(i / 26 % 26).unwrap(),
            b'a' + u8::try_from(i % 26).unwrap(),
        ];
        object.extend(entry(std::str::from_utf8(&k).unwrap()));
    }
    assert!(object.len() <= MAX_ATTESTATION_OBJECT);
    let started = std::time::Instant::now();
    let e = AttestationObject::parse(&object).unwrap_err();
    eprintln!("{whole} keys refused in {:?}", started.elapsed());
    assert!(e.to_string().contains(&format!("{whole} keys (at most {MAX_MAP_ENTRIES})")), "{e}");
}
