//! The server's pipeline without the network: the key-cache hit path (one
//! key, and hits spread over 64 vs 40 000 cached credentials),
//! protobuf decode/encode of a 64-assertion batch, and whole batches through
//! the engine (field checks, cache, rayon pool, counter compare-and-set on
//! SQLite, policy) for batch sizes 1, 16, 64, 256, with 1 and 2 verification
//! threads; and batches of 64 counting credentials (64 counter writes each)
//! with 1 and 2 threads.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use assertd::config::Config;
use assertd::engine::Engine;
use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use std::hint::black_box;
use std::sync::Arc;

const RP: &str = "login.example.com";
const ORIGIN: &str = "https://login.example.com";
const CHALLENGE: &[u8] = b"0123456789abcdef0123456789abcdef";

fn config(dir: &std::path::Path, threads: usize) -> Config {
    let mut c: Config = toml::from_str(&format!("[[relying_parties]]\nid = \"{RP}\"\norigins = [\"{ORIGIN}\"]\n")).unwrap();
    c.data_dir = dir.to_owned();
    c.pool.threads = threads;
    c
}

/// An engine with `n` ES256 credentials, and a batch of `size` valid
/// assertions over them. Counters stay 0 (as most synced passkeys'), so the
/// same batch verifies (allow) every iteration.
fn setup(rt: &tokio::runtime::Runtime, threads: usize, creds: usize) -> (tempfile::TempDir, Arc<Engine>, Vec<SoftAuthenticator>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = rt.block_on(assertd::server::engine(&config(dir.path(), threads))).unwrap();
    let auths: Vec<_> = (0..creds).map(|_| SoftAuthenticator::new(Alg::Es256)).collect();
    for a in &auths {
        let rec = pb::CredentialRecord {
            rp_id: RP.into(),
            credential_id: a.credential_id.clone(),
            user_handle: b"user".to_vec(),
            public_key_cose: a.public_key_cose.clone(),
            attested: true,
            ..Default::default()
        };
        rt.block_on(engine.put(assertd::convert::record_from_pb(rec, 0))).unwrap();
    }
    (dir, engine, auths)
}

fn batch(auths: &[SoftAuthenticator], size: usize) -> Vec<pb::Assertion> {
    counted_batch(auths, size, 0)
}

/// A batch whose every assertion carries `count` (0: counter-less).
fn counted_batch(auths: &[SoftAuthenticator], size: usize, count: u32) -> Vec<pb::Assertion> {
    (0..size)
        .map(|i| {
            let a = &auths[i % auths.len()];
            let p = a.assert(RP, ORIGIN, CHALLENGE, 0x05, count);
            pb::Assertion {
                request_id: i.to_string(),
                rp_id: RP.into(),
                credential_id: a.credential_id.clone(),
                client_data_json: p.client_data_json,
                authenticator_data: p.authenticator_data,
                signature: p.signature,
                expected_challenge: CHALLENGE.to_vec(),
                ..Default::default()
            }
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn cache_hit(c: &mut Criterion) {
    let rt = runtime();
    let (_dir, engine, auths) = setup(&rt, 1, 1);
    let id = auths[0].credential_id.clone();
    rt.block_on(engine.cache().get(RP, &id));
    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Elements(1));
    g.bench_function("cache_hit", |b| {
        b.iter(|| {
            let (l, hit) = rt.block_on(engine.cache().get(RP, black_box(&id)));
            assert!(hit);
            l
        })
    });
    g.finish();
}

/// Hits spread over many cached credentials (the cache and its entries miss
/// the CPU caches) against hits on 64: 64 lookups per iteration, uniformly
/// random over the cached set.
fn cache_spread(c: &mut Criterion) {
    use assertd_store::{CacheConfig, Credentials, KeyCache, SqliteStore, StoredCredential};
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let cose = SoftAuthenticator::new(Alg::EdDsa).public_key_cose;
    let id = |i: usize| {
        let mut id = vec![0x5a; 32];
        id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        id
    };
    let many = 40_000;
    let records: Vec<_> = (0..many)
        .map(|i| StoredCredential {
            rp_id: RP.into(),
            credential_id: id(i),
            user_handle: b"user".to_vec(),
            public_key_cose: cose.clone(),
            sign_count: 0,
            backup_eligible: true,
            backup_state: true,
            aaguid: vec![0; 16],
            attested: false,
            transports: Vec::new(),
            revoked: false,
            created_at_ms: 0,
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
    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Elements(64));
    for n in [64usize, many] {
        let cache = KeyCache::new(store.clone(), CacheConfig::default());
        let ids: Vec<Vec<u8>> = (0..n).map(id).collect();
        for i in &ids {
            rt.block_on(cache.get(RP, i));
        }
        // A fixed pseudo-random order (64-bit LCG), the same every run.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let order: Vec<usize> = (0..64 * 1024)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                ((x >> 33) as usize) % n
            })
            .collect();
        let mut at = 0;
        g.bench_function(format!("cache_hit_64_over_{n}"), |b| {
            b.iter(|| {
                let keys = &order[at..at + 64];
                at = (at + 64) % order.len();
                rt.block_on(async {
                    for &k in keys {
                        let (l, hit) = cache.get(RP, black_box(&ids[k])).await;
                        assert!(hit);
                        black_box(l);
                    }
                })
            })
        });
    }
    g.finish();
}

fn protobuf(c: &mut Criterion) {
    let auths: Vec<_> = (0..8).map(|_| SoftAuthenticator::new(Alg::Es256)).collect();
    let req = pb::VerifyAssertionsRequest { assertions: batch(&auths, 64), ..Default::default() };
    let bytes = req.encode_to_vec();
    let verdicts = pb::VerifyAssertionsResponse {
        verdicts: (0..64)
            .map(|i| pb::Verdict {
                request_id: i.to_string(),
                decision: pb::Decision::Allow as i32,
                reasons: vec![pb::Reason {
                    code: pb::ReasonCode::SyncedPasskey as i32,
                    message: "synced (multi-device) passkey (risk +10)".into(),
                }],
                authenticator: Some(pb::AuthenticatorInfo {
                    sign_count: 7,
                    user_present: true,
                    aaguid: vec![0; 16],
                    user_handle: b"user".to_vec(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
    };
    let mut g = c.benchmark_group("protobuf_batch64");
    g.throughput(Throughput::Elements(64));
    g.bench_function("decode_request", |b| b.iter(|| pb::VerifyAssertionsRequest::decode(black_box(bytes.as_slice())).unwrap()));
    g.bench_function("encode_response", |b| b.iter(|| black_box(&verdicts).encode_to_vec()));
    g.finish();
}

fn engine_batches(c: &mut Criterion) {
    let rt = runtime();
    for threads in [1usize, 2] {
        let (_dir, engine, auths) = setup(&rt, threads, 64);
        let mut g = c.benchmark_group(format!("engine_batch_threads{threads}"));
        for size in [1usize, 16, 64, 256] {
            if threads == 2 && size != 256 && size != 64 {
                continue;
            }
            let b = batch(&auths, size);
            g.throughput(Throughput::Elements(size as u64));
            g.bench_function(format!("es256_{size}"), |bench| {
                bench.iter(|| {
                    let v = assertd::convert::verdicts(
                        rt.block_on(engine.verify_batch(assertd::convert::assertions(black_box(b.clone()), false))).unwrap(),
                    );
                    debug_assert!(v.iter().all(|v| v.decision() == pb::Decision::Allow));
                    v
                })
            });
        }
        g.finish();
    }
}

/// Counting credentials through the engine, 1 and 2 verification threads:
/// 64 credentials, every batch carries each one's next count (one update
/// per credential, compared and set in SQLite), so every iteration writes
/// 64 counters. The batch is signed outside the measured time.
fn engine_counting(c: &mut Criterion) {
    let rt = runtime();
    for threads in [1usize, 2] {
        let (_dir, engine, auths) = setup(&rt, threads, 64);
        let mut g = c.benchmark_group(format!("engine_counting_threads{threads}"));
        g.throughput(Throughput::Elements(64));
        let mut count = 0u32;
        g.bench_function("es256_64", |bench| {
            bench.iter_batched(
                || {
                    count += 1;
                    counted_batch(&auths, 64, count)
                },
                |b| {
                    let v = assertd::convert::verdicts(rt.block_on(engine.verify_batch(assertd::convert::assertions(b, false))).unwrap());
                    assert!(v.iter().all(|v| v.decision() == pb::Decision::Allow));
                    v
                },
                criterion::BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, cache_hit, cache_spread, protobuf, engine_batches, engine_counting);
criterion_main!(benches);
