//! The requests a run sends: credentials put through the API, then a pool
//! of prepared batches (valid, tampered, unknown) with their expected verdicts.

use crate::args::RunArgs;
use crate::population::Population;
use crate::population::Rng;
use crate::population::alg;
use crate::population::zipf_sampler;
use assertd_api::v1 as pb;
use assertd_api::v1::credential_service_client::CredentialServiceClient;
use assertd_testkit::SoftAuthenticator;
use std::sync::Arc;
use tonic::transport::Channel;

/// What the generator expects for one assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expect {
    pub(crate) decision: pb::Decision,
    pub(crate) code: Option<pb::ReasonCode>,
}

/// A request and the verdicts it must get.
pub(crate) struct Prepared {
    pub(crate) assertions: Vec<pb::Assertion>,
    pub(crate) expect: Vec<Expect>,
}

pub(crate) async fn connect(target: &str) -> Result<Channel, String> {
    Channel::from_shared(target.to_owned())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {target}: {e}"))
}

/// Creates the credentials and the pool of requests.
pub(crate) async fn prepare(args: &RunArgs, channel: Channel) -> Result<Vec<Arc<Prepared>>, String> {
    if args.counting && (args.population.is_some() || args.assertions.is_some()) {
        return Err("--counting uses credentials created through the API (--credentials), not --population or --assertions".into());
    }
    if let Some(n) = args.population {
        let population = match &args.population_keys {
            Some(path) => Population::es256(path)?,
            None => Population::Ed25519,
        };
        return Ok(prepare_population(args, n, &population));
    }
    if let Some(path) = &args.assertions {
        return prepare_from_file(args, path, channel).await;
    }
    let algs = args.algs.iter().map(|a| alg(a)).collect::<Result<Vec<_>, _>>()?;
    let mut creds = CredentialServiceClient::new(channel);
    let mut auths = Vec::with_capacity(args.credentials);
    for i in 0..args.credentials.max(1) {
        let a = SoftAuthenticator::new(algs[i % algs.len()]);
        let rec = pb::CredentialRecord {
            rp_id: args.rp.clone(),
            credential_id: a.credential_id.clone(),
            user_handle: format!("user-{i}").into_bytes(),
            public_key_cose: a.public_key_cose.clone(),
            attested: true,
            ..Default::default()
        };
        creds
            .put_credential(pb::PutCredentialRequest { credential: Some(rec), ..Default::default() })
            .await
            .map_err(|e| format!("PutCredential: {e}"))?;
        auths.push(a);
    }
    let challenge = b"assertd-loadgen-challenge-0123456789";
    if args.counting {
        return counting_requests(args, &auths, challenge);
    }
    let mut pool = Vec::with_capacity(args.pool);
    for i in 0..args.pool.max(1) {
        let mut x = signed(args, &auths[i % auths.len()], challenge, 0, i.to_string());
        // Deterministic, evenly spread mix (golden-ratio sequence in 0..100).
        let slot = (i as f64 * 0.618_033_988_749_895).fract() * 100.0;
        let expect = if slot < args.invalid_pct {
            let n = x.signature.len() - 1;
            x.signature[n] ^= 1;
            Expect { decision: pb::Decision::Deny, code: Some(pb::ReasonCode::SignatureInvalid) }
        } else if slot < args.invalid_pct + args.unknown_pct {
            x.credential_id = format!("unknown-{i}").into_bytes();
            Expect { decision: pb::Decision::Deny, code: Some(pb::ReasonCode::CredentialNotFound) }
        } else {
            Expect { decision: pb::Decision::Allow, code: None }
        };
        pool.push((json_form(args, x), expect));
    }
    // Requests of `batch` consecutive pool items, cycling.
    let n_requests = pool.len().div_ceil(args.batch).max(1);
    Ok((0..n_requests)
        .map(|r| {
            let (assertions, expect) = (0..args.batch).map(|k| pool[(r * args.batch + k) % pool.len()].clone()).unzip();
            Arc::new(Prepared { assertions, expect })
        })
        .collect())
}

/// The assertions of a `peer-input` file, in order, in requests of
/// `--batch`; their credentials are put through the API first.
pub(crate) async fn prepare_from_file(args: &RunArgs, path: &std::path::Path, channel: Channel) -> Result<Vec<Arc<Prepared>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let items: Vec<serde_json::Value> = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let field = |it: &serde_json::Value, k: &str| -> Result<Vec<u8>, String> {
        let s = it[k].as_str().ok_or_else(|| format!("{}: an item has no {k}", path.display()))?;
        assertd_testkit::from_b64url(s).map_err(|e| format!("{}: {k}: {e}", path.display()))
    };
    let mut creds = CredentialServiceClient::new(channel);
    let mut seen = std::collections::HashSet::new();
    let mut pool = Vec::with_capacity(items.len());
    for it in &items {
        let rp_id = it["rp_id"].as_str().unwrap_or_default().to_owned();
        let credential_id = field(it, "credential_id")?;
        if seen.insert(credential_id.clone()) {
            let rec = pb::CredentialRecord {
                rp_id: rp_id.clone(),
                credential_id: credential_id.clone(),
                user_handle: format!("user-{}", seen.len()).into_bytes(),
                public_key_cose: field(it, "public_key_cose")?,
                attested: true,
                ..Default::default()
            };
            creds
                .put_credential(pb::PutCredentialRequest { credential: Some(rec), ..Default::default() })
                .await
                .map_err(|e| format!("PutCredential: {e}"))?;
        }
        pool.push(pb::Assertion {
            request_id: pool.len().to_string(),
            rp_id,
            credential_id,
            client_data_json: field(it, "client_data_json")?,
            authenticator_data: field(it, "authenticator_data")?,
            signature: field(it, "signature")?,
            expected_challenge: field(it, "challenge")?,
            ..Default::default()
        });
    }
    if pool.is_empty() {
        return Err(format!("{}: no assertions", path.display()));
    }
    let n_requests = pool.len().div_ceil(args.batch).max(1);
    Ok((0..n_requests)
        .map(|r| {
            let assertions: Vec<_> = (0..args.batch).map(|k| pool[(r * args.batch + k) % pool.len()].clone()).collect();
            let expect = vec![Expect { decision: pb::Decision::Allow, code: None }; assertions.len()];
            Arc::new(Prepared { assertions, expect })
        })
        .collect())
}

/// Pool of valid assertions over seeded credentials, picked by Zipf rank.
pub(crate) fn prepare_population(args: &RunArgs, n: usize, population: &Population) -> Vec<Arc<Prepared>> {
    let challenge = b"assertd-loadgen-challenge-0123456789";
    let mut pick = zipf_sampler(n.max(1), args.zipf);
    let mut rng = Rng(42);
    let pool: Vec<pb::Assertion> = (0..args.pool.max(1))
        .map(|i| {
            let rank = pick(&mut rng);
            let id = Population::id(rank);
            let authenticator_data = SoftAuthenticator::authenticator_data(&args.rp, 0x05, 0);
            let client_data_json = SoftAuthenticator::client_data_json(challenge, &args.origin);
            let mut msg = authenticator_data.clone();
            msg.extend(ring::digest::digest(&ring::digest::SHA256, &client_data_json).as_ref());
            pb::Assertion {
                request_id: i.to_string(),
                rp_id: args.rp.clone(),
                credential_id: id,
                signature: population.sign(rank, &msg),
                client_data_json,
                authenticator_data,
                expected_challenge: challenge.to_vec(),
                ..Default::default()
            }
        })
        .collect();
    let distinct: std::collections::HashSet<&[u8]> = pool.iter().map(|a| a.credential_id.as_slice()).collect();
    eprintln!("population {n}, zipf {}: {} distinct credentials in a pool of {}", args.zipf, distinct.len(), pool.len());
    let n_requests = pool.len().div_ceil(args.batch).max(1);
    (0..n_requests)
        .map(|r| {
            let assertions: Vec<_> = (0..args.batch).map(|k| pool[(r * args.batch + k) % pool.len()].clone()).collect();
            let expect = vec![Expect { decision: pb::Decision::Allow, code: None }; assertions.len()];
            Arc::new(Prepared { assertions, expect })
        })
        .collect()
}

/// `x` as the browser's JSON (`response_json`) with --response-json; else
/// unchanged.
fn json_form(args: &RunArgs, x: pb::Assertion) -> pb::Assertion {
    if !args.response_json {
        return x;
    }
    let parts = assertd_testkit::AssertionParts {
        client_data_json: x.client_data_json,
        authenticator_data: x.authenticator_data,
        signature: x.signature,
    };
    let handle = (!x.user_handle.is_empty()).then_some(x.user_handle.as_slice());
    pb::Assertion {
        response_json: assertd_testkit::json::authentication(&x.credential_id, &parts, handle).to_string(),
        request_id: x.request_id,
        rp_id: x.rp_id,
        expected_challenge: x.expected_challenge,
        ..Default::default()
    }
}

/// A valid assertion (UP|UV) by `a` over `challenge` with this sign count.
fn signed(args: &RunArgs, a: &SoftAuthenticator, challenge: &[u8], count: u32, request_id: String) -> pb::Assertion {
    let p = a.assert(&args.rp, &args.origin, challenge, 0x05, count);
    pb::Assertion {
        request_id,
        rp_id: args.rp.clone(),
        credential_id: a.credential_id.clone(),
        client_data_json: p.client_data_json,
        authenticator_data: p.authenticator_data,
        signature: p.signature,
        expected_challenge: challenge.to_vec(),
        ..Default::default()
    }
}

/// `--counting`: requests in lane order (request r belongs to lane
/// r mod lanes), each lane cycling over its own credentials with counts
/// rising by one per use. Signed on every core the generator may use.
fn counting_requests(args: &RunArgs, auths: &[SoftAuthenticator], challenge: &[u8]) -> Result<Vec<Arc<Prepared>>, String> {
    let lanes = args.counting_lanes();
    if auths.len() < lanes {
        return Err(format!("--counting needs at least one credential per lane: --credentials {} < {lanes} lanes", auths.len()));
    }
    if args.invalid_pct > 0.0 || args.unknown_pct > 0.0 {
        return Err("--counting sends valid assertions only (no --invalid-pct / --unknown-pct)".into());
    }
    let n_requests = args.pool.div_ceil(args.batch).max(lanes);
    // Which credential and count each item of each request gets, decided in
    // order; then the signing runs in parallel.
    let mut next_cred = vec![0usize; lanes];
    let mut counts = vec![0u32; auths.len()];
    let plan: Vec<Vec<(usize, u32)>> = (0..n_requests)
        .map(|r| {
            let lane = r % lanes;
            (0..args.batch)
                .map(|_| {
                    // Lane `lane` owns credentials lane, lane + lanes, ...
                    let owned = (auths.len() - lane).div_ceil(lanes);
                    let i = lane + (next_cred[lane] % owned) * lanes;
                    next_cred[lane] += 1;
                    counts[i] += 1;
                    (i, counts[i])
                })
                .collect()
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = plan.len().div_ceil(threads);
    let started = std::time::Instant::now();
    let requests: Vec<Arc<Prepared>> = std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .chunks(chunk.max(1))
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|items| {
                            let assertions: Vec<pb::Assertion> = items
                                .iter()
                                .map(|&(i, count)| json_form(args, signed(args, &auths[i], challenge, count, format!("{i}:{count}"))))
                                .collect();
                            let expect = vec![Expect { decision: pb::Decision::Allow, code: None }; assertions.len()];
                            Arc::new(Prepared { assertions, expect })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    eprintln!(
        "counting: {} requests of {} over {lanes} lanes, {} credentials, signed in {:.1} s",
        requests.len(),
        args.batch,
        auths.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(requests)
}
