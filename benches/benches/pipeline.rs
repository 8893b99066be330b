//! The server's pipeline without the network: the key-cache hit path,
//! protobuf decode/encode of a 64-assertion batch, and whole batches through
//! the engine (field checks, cache, rayon pool, counter compare-and-set on
//! SQLite, policy) for batch sizes 1, 16, 64, 256, with 1 and 2 verification
//! threads.

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
        rt.block_on(engine.put(assertd::service::from_pb(rec, 0))).unwrap();
    }
    (dir, engine, auths)
}

fn batch(auths: &[SoftAuthenticator], size: usize) -> Vec<pb::Assertion> {
    (0..size)
        .map(|i| {
            let a = &auths[i % auths.len()];
            let p = a.assert(RP, ORIGIN, CHALLENGE, 0x05, 0);
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

fn protobuf(c: &mut Criterion) {
    let auths: Vec<_> = (0..8).map(|_| SoftAuthenticator::new(Alg::Es256)).collect();
    let req = pb::VerifyAssertionsRequest { assertions: batch(&auths, 64) };
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
                    let v = rt.block_on(engine.verify_batch(black_box(b.clone()))).unwrap();
                    debug_assert!(v.iter().all(|v| v.decision() == pb::Decision::Allow));
                    v
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, cache_hit, protobuf, engine_batches);
criterion_main!(benches);
