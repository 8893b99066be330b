//! The counter store alone, in process: one batch of 64 counter updates
//! (one per credential, each advancing, as security keys send them) over
//! 512 stored credentials, compared and set by the SQLite store through its
//! group-committing writer with `synchronous = FULL` (a commit per batch when
//! batches do not overlap). What every counting assertion costs the store,
//! without the network or the signature.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use assertd_store::{CounterUpdate, Credentials, SqliteStore, StoredCredential};
use assertd_testkit::{Alg, SoftAuthenticator};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const RP: &str = "login.example.com";
const CREDENTIALS: u32 = 512;
const BATCH: u32 = 64;

fn id(i: u32) -> Vec<u8> {
    i.to_be_bytes().repeat(8)
}

fn counters(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let key = SoftAuthenticator::new(Alg::Es256).public_key_cose;
    let records = (0..CREDENTIALS)
        .map(|i| StoredCredential {
            rp_id: RP.into(),
            credential_id: id(i),
            user_handle: format!("user-{i}").into_bytes(),
            public_key_cose: key.clone(),
            sign_count: 0,
            backup_eligible: false,
            backup_state: false,
            aaguid: vec![7; 16],
            attested: true,
            transports: vec!["usb".into(), "nfc".into()],
            revoked: false,
            created_at_ms: 1_700_000_000_000,
            last_used_at_ms: None,
            aaguid_vouched: false,
            trust_anchor: String::new(),
            discoverable: None,
            attachment: None,
            uv_initialized: false,
            access_pass_id: String::new(),
        })
        .collect();
    rt.block_on(store.put_many(records)).unwrap();
    let mut counts = vec![0u32; CREDENTIALS as usize];
    let mut next = 0u32;
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(u64::from(BATCH)));
    group.bench_function("sqlite_advance_64_of_512", |b| {
        b.iter(|| {
            let updates: Vec<CounterUpdate> = (0..BATCH)
                .map(|_| {
                    let i = next % CREDENTIALS;
                    next += 1;
                    counts[i as usize] += 1;
                    CounterUpdate { rp_id: RP.into(), credential_id: id(i), received: counts[i as usize] }
                })
                .collect();
            let r = rt.block_on(store.advance_sign_counts(updates.into(), 1)).unwrap();
            assert!(r.iter().all(|r| *r == assertd_store::CounterResult::Advanced));
        });
    });
    group.finish();
}

criterion_group!(benches, counters);
criterion_main!(benches);
