//! Opening server-issued challenges: arbitrary bytes never panic and never
//! open, and a challenge the keys issued opens only for its own RP, user
//! and ceremony.
#![no_main]

use assertd_verify::{Ceremony, ChallengeKeys};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = ChallengeKeys::new(vec![("k1".into(), vec![1; 32]), ("k2".into(), vec![2; 32])]).unwrap();
    // Forged bytes: nothing opens without the key.
    assert!(keys.open(data, "rp", b"u", Ceremony::SignIn, 0, 0).is_err(), "forged challenge opened");
    assert!(keys.open(data, "rp", b"", Ceremony::Registration, 0, 0).is_err(), "forged challenge opened");
    // A real one, bound to a user taken from the input.
    let (user, rp) = data.split_at(data.len().min(64));
    let rp = String::from_utf8_lossy(rp);
    let c = keys.issue(&rp, user, Ceremony::SignIn, 1000, [7; 16]);
    assert!(keys.open(&c, &rp, user, Ceremony::SignIn, 1000, 0).is_ok());
    assert!(keys.open(&c, &rp, user, Ceremony::Registration, 1000, 0).is_err());
    let mut other_rp = rp.to_string();
    other_rp.push('x');
    assert!(keys.open(&c, &other_rp, user, Ceremony::SignIn, 1000, 0).is_err());
});
