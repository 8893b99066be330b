//! Opening server-issued challenges: arbitrary bytes never panic and never
//! open, and a challenge the keys issued opens only for its own RP and
//! user.
#![no_main]

use assertd_verify::ChallengeKeys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = ChallengeKeys::new(vec![("k1".into(), vec![1; 32]), ("k2".into(), vec![2; 32])]).unwrap();
    // Forged bytes: nothing opens without the key.
    assert!(keys.open(data, "rp", b"u", 0, 0).is_err(), "forged challenge opened");
    assert!(keys.open(data, "rp", b"", 0, 0).is_err(), "forged challenge opened");
    // A real one, bound to a user taken from the input.
    let (user, rp) = data.split_at(data.len().min(64));
    let rp = String::from_utf8_lossy(rp);
    let c = keys.issue(&rp, user, 1000, [7; 16]);
    assert!(keys.open(&c, &rp, user, 1000, 0).is_ok());
    let mut other_rp = rp.to_string();
    other_rp.push('x');
    assert!(keys.open(&c, &other_rp, user, 1000, 0).is_err());
});
