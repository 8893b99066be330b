//! assertd-loadgen: drives a running assertd over gRPC and checks every
//! verdict it gets back.
//!
//! * `calibrate`: raw `ring` ES256 verifications per second on this thread,
//!   the reference a run is compared with (pin both with `taskset`).
//! * `run`: loads credentials through `CredentialService`, pre-generates a
//!   pool of assertions with a software authenticator (valid, tampered,
//!   unknown-credential, in the mix asked for; counters stay 0 so each can
//!   be sent again and again), then sends batches closed-loop (N callers) or
//!   open-loop (a fixed rate, latency measured from the intended send time,
//!   so a stalled server cannot hide its queueing), unary or streaming.
//!   Prints live progress, then a summary table, and writes a JSON report.
//!   Exits 1 if any verdict differs from what was expected for its
//!   assertion (a fast wrong answer is a failure).

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use pb::credential_service_client::CredentialServiceClient;
use pb::verification_service_client::VerificationServiceClient;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// The command line.
#[derive(Debug, Parser)]
#[command(version, about = "Load generator for assertd")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Raw ring ES256 verifications per second on one thread.
    Calibrate {
        /// Seconds to measure.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Load the credentials, then run the load.
    Run(Box<RunArgs>),
    /// Write an import file (JSON Lines) of N credentials for
    /// `run --population N`: Ed25519 keys derived from each index, or
    /// ES256 keys from a key file (credential i uses key i mod its length).
    GenCredentials {
        /// How many.
        #[arg(long)]
        count: usize,
        /// Relying party.
        #[arg(long, default_value = "login.example.com")]
        rp: String,
        /// Key algorithm.
        #[arg(long, value_enum, default_value = "ed25519")]
        alg: PopulationAlg,
        /// ES256: the key file to create (PKCS#8, base64url, one per line),
        /// which `run --population-keys` reads back.
        #[arg(long)]
        keys: Option<std::path::PathBuf>,
    },
    /// Write ES256 assertions with their credentials as a JSON array (all
    /// byte fields base64url), the shared input of the peer comparison in
    /// benches/peers/.
    PeerInput {
        /// Assertions.
        #[arg(long, default_value_t = 2000)]
        count: usize,
        /// Distinct credentials they are spread over.
        #[arg(long, default_value_t = 100)]
        credentials: usize,
    },
}

/// The key algorithm of a seeded population.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PopulationAlg {
    /// Keys derived from each credential's index.
    Ed25519,
    /// ES256 keys shared round-robin from a key file: each credential is
    /// still its own store row and cache entry with its own parsed key, and
    /// ring's ECDSA verification keeps no per-key state.
    Es256,
}

/// Closed or open loop.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Mode {
    /// N callers, each sending its next request when the last is answered.
    Closed,
    /// A fixed rate of requests, whatever the answers do.
    Open,
}

/// Options of `run`.
#[derive(Debug, Clone, Parser)]
#[allow(missing_docs)]
pub struct RunArgs {
    /// assertd's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    target: String,
    /// Relying party (must be configured on the server with --origin).
    #[arg(long, default_value = "login.example.com")]
    rp: String,
    /// Origin the assertions carry.
    #[arg(long, default_value = "https://login.example.com")]
    origin: String,
    /// Credentials to create (spread over the algorithms).
    #[arg(long, default_value_t = 64)]
    credentials: usize,
    /// Algorithms, comma-separated: es256, es384, eddsa, rs256, ps256.
    #[arg(long, default_value = "es256", value_delimiter = ',')]
    algs: Vec<String>,
    /// Percentage of assertions with a tampered signature.
    #[arg(long, default_value_t = 0.0)]
    invalid_pct: f64,
    /// Percentage of assertions for unknown credentials.
    #[arg(long, default_value_t = 0.0)]
    unknown_pct: f64,
    /// Assertions per request.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Closed or open loop.
    #[arg(long, value_enum, default_value = "closed")]
    mode: Mode,
    /// Closed loop: concurrent callers.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Open loop: requests per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Use VerifyAssertionsStream (one stream per caller) instead of unary.
    #[arg(long)]
    stream: bool,
    /// HTTP/2 connections to spread callers over.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Seconds of warm-up (sent, not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many measured requests (0: no limit).
    #[arg(long, default_value_t = 0)]
    requests: u64,
    /// Distinct pre-generated assertions to cycle through.
    #[arg(long, default_value_t = 4096)]
    pool: usize,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// The server's PID, to report its CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Open loop: most requests outstanding before new ones count as errors.
    #[arg(long, default_value_t = 10_000)]
    max_outstanding: usize,
    /// Use N pre-imported seeded credentials (see gen-credentials) instead
    /// of creating --credentials through the API.
    #[arg(long)]
    population: Option<usize>,
    /// With --population: the ES256 key file given to gen-credentials
    /// (without it, the population is Ed25519).
    #[arg(long)]
    population_keys: Option<std::path::PathBuf>,
    /// With --population: pick each pooled assertion's credential from a
    /// Zipf distribution with this exponent (0: uniform).
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// The server's metrics address (host:port), to report the cache hit
    /// ratio and the server's memory.
    #[arg(long)]
    metrics: Option<String>,
    /// Send these assertions (a `peer-input` file) instead of generating
    /// them: their credentials are put first, every verdict must allow.
    #[arg(long)]
    assertions: Option<std::path::PathBuf>,
}

/// What the generator expects for one assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expect {
    decision: pb::Decision,
    code: Option<pb::ReasonCode>,
}

/// A request and the verdicts it must get.
struct Prepared {
    assertions: Vec<pb::Assertion>,
    expect: Vec<Expect>,
}

/// Counters shared by all callers.
#[derive(Default)]
struct Stats {
    rpcs: AtomicU64,
    assertions: AtomicU64,
    mismatches: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    reasons: Mutex<BTreeMap<String, u64>>,
    latency: Mutex<Option<Histogram<u64>>>,
    interval: Mutex<Option<Histogram<u64>>>,
    /// Latency of RESOURCE_EXHAUSTED answers: what one rejection costs the caller.
    rejected: Mutex<Option<Histogram<u64>>>,
    measuring: AtomicBool,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 100 s, 3 significant digits.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

fn alg(name: &str) -> Result<Alg, String> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "es256" => Alg::Es256,
        "es384" => Alg::Es384,
        "eddsa" => Alg::EdDsa,
        "rs256" => Alg::Rs256,
        "ps256" => Alg::Ps256,
        other => return Err(format!("unknown algorithm {other:?}")),
    })
}

/// CPU seconds (user + system) of a process, from /proc.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// ES256 key pairs of a population (credential i uses key i mod len).
const POPULATION_ES256_KEYS: usize = 1024;

/// The keys of a seeded population.
enum Population {
    /// Ed25519 keys from SHA-256("assertd-loadgen" || i).
    Ed25519,
    /// ES256 keys shared round-robin.
    Es256(Vec<ring::signature::EcdsaKeyPair>, ring::rand::SystemRandom),
}

impl Population {
    /// Reads an ES256 key file (PKCS#8, base64url, one per line).
    fn es256(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let rng = ring::rand::SystemRandom::new();
        let keys = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let der = assertd_testkit::from_b64url(l.trim()).map_err(|e| e.to_string())?;
                ring::signature::EcdsaKeyPair::from_pkcs8(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &der, &rng)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if keys.is_empty() {
            return Err(format!("{}: no keys", path.display()));
        }
        Ok(Self::Es256(keys, rng))
    }

    /// Credential `i`'s ID.
    fn id(i: usize) -> Vec<u8> {
        format!("seeded-{i}").into_bytes()
    }

    /// Credential `i`'s COSE key.
    fn cose(&self, i: usize) -> Vec<u8> {
        use ring::signature::KeyPair;
        match self {
            Self::Ed25519 => {
                // COSE_Key {1: 1, 3: -8, -1: 6, -2: x}
                let mut cose = vec![0xa4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21, 0x58, 0x20];
                cose.extend_from_slice(seeded_ed25519(i).public_key().as_ref());
                cose
            }
            Self::Es256(keys, _) => {
                // COSE_Key {1: 2, 3: -7, -1: 1, -2: x, -3: y}
                let p = keys[i % keys.len()].public_key().as_ref();
                let mut cose = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
                cose.extend_from_slice(&p[1..33]);
                cose.extend_from_slice(&[0x22, 0x58, 0x20]);
                cose.extend_from_slice(&p[33..65]);
                cose
            }
        }
    }

    /// Credential `i`'s signature over `msg`.
    fn sign(&self, i: usize, msg: &[u8]) -> Vec<u8> {
        match self {
            Self::Ed25519 => seeded_ed25519(i).sign(msg).as_ref().to_vec(),
            #[allow(clippy::expect_used)]
            Self::Es256(keys, rng) => keys[i % keys.len()].sign(rng, msg).expect("ECDSA signing").as_ref().to_vec(),
        }
    }
}

fn seeded_ed25519(i: usize) -> ring::signature::Ed25519KeyPair {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"assertd-loadgen");
    ctx.update(&(i as u64).to_be_bytes());
    let seed = ctx.finish();
    #[allow(clippy::expect_used)]
    ring::signature::Ed25519KeyPair::from_seed_unchecked(seed.as_ref()).expect("32-byte seed")
}

/// Writes the import file (JSON Lines) of a seeded population of `count`
/// credentials to `out`; for ES256, creates the key file `keys` first.
pub fn gen_credentials(
    count: usize,
    rp: &str,
    alg: PopulationAlg,
    keys: Option<&std::path::Path>,
    out: impl std::io::Write,
) -> Result<(), String> {
    use std::io::Write;
    let b64 = assertd_testkit::b64url;
    let population = match (alg, keys) {
        (PopulationAlg::Ed25519, None) => Population::Ed25519,
        (PopulationAlg::Ed25519, Some(_)) => return Err("--keys is for --alg es256 (Ed25519 keys derive from the index)".into()),
        (PopulationAlg::Es256, None) => return Err("--alg es256 needs --keys FILE".into()),
        (PopulationAlg::Es256, Some(path)) => {
            let rng = ring::rand::SystemRandom::new();
            let mut text = String::new();
            for _ in 0..POPULATION_ES256_KEYS {
                let der = ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                    .map_err(|e| e.to_string())?;
                text.push_str(&b64(der.as_ref()));
                text.push('\n');
            }
            std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            Population::es256(path)?
        }
    };
    let mut out = std::io::BufWriter::new(out);
    let io = |e: std::io::Error| e.to_string();
    for i in 0..count {
        let (id, cose) = (Population::id(i), population.cose(i));
        writeln!(
            out,
            r#"{{"rp_id":"{rp}","credential_id":"{}","user_handle":"{}","public_key_cose":"{}","attested":true}}"#,
            b64(&id),
            b64(format!("user-{i}").as_bytes()),
            b64(&cose)
        )
        .map_err(io)?;
    }
    out.flush().map_err(io)
}

/// ES256 assertions (UP|UV, sign count 0, one challenge each) for
/// login.example.com / https://login.example.com, with each credential's
/// COSE key and id.
fn peer_input(count: usize, credentials: usize) -> serde_json::Value {
    let b64 = assertd_testkit::b64url;
    let auths: Vec<SoftAuthenticator> = (0..credentials).map(|_| SoftAuthenticator::new(Alg::Es256)).collect();
    let (rp, origin) = ("login.example.com", "https://login.example.com");
    let items: Vec<serde_json::Value> = (0..count)
        .map(|i| {
            let a = &auths[i % auths.len()];
            let challenge = format!("peer-challenge-{i:08}");
            let p = a.assert(rp, origin, challenge.as_bytes(), 0x04, 0);
            serde_json::json!({
                "rp_id": rp,
                "origin": origin,
                "challenge": b64(challenge.as_bytes()),
                "credential_id": b64(&a.credential_id),
                "public_key_cose": b64(&a.public_key_cose),
                "client_data_json": b64(&p.client_data_json),
                "authenticator_data": b64(&p.authenticator_data),
                "signature": b64(&p.signature),
            })
        })
        .collect();
    serde_json::Value::Array(items)
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Samples ranks 0..n with probability proportional to 1/(rank+1)^s.
fn zipf_sampler(n: usize, s: f64) -> impl FnMut(&mut Rng) -> usize {
    let mut cdf = Vec::with_capacity(n);
    let mut total = 0.0;
    for k in 1..=n {
        total += 1.0 / (k as f64).powf(s);
        cdf.push(total);
    }
    move |rng: &mut Rng| {
        let u = rng.next_f64() * total;
        cdf.partition_point(|c| *c < u).min(n - 1)
    }
}

/// Reads a Prometheus text exposition: (cache hits, cache misses).
fn scrape_cache(addr: &str) -> Option<(f64, f64)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let value =
        |prefix: &str| body.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).unwrap_or(0.0);
    Some((value("assertd_cache_lookups_total{result=\"hit\"}"), value("assertd_cache_lookups_total{result=\"miss\"}")))
}

/// Resident memory of a process in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn calibrate(seconds: f64) -> serde_json::Value {
    let a = SoftAuthenticator::new(Alg::Es256);
    let p = a.assert("login.example.com", "https://login.example.com", b"calibrate", 0x05, 0);
    let mut msg = p.authenticator_data.clone();
    msg.extend(ring::digest::digest(&ring::digest::SHA256, &p.client_data_json).as_ref());
    let key = &a.public_key_cose;
    // x and y are the last two 32-byte strings of the COSE key.
    let mut point = vec![4u8];
    point.extend(&key[key.len() - 67..key.len() - 35]);
    point.extend(&key[key.len() - 32..]);
    let verifier = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        for _ in 0..100 {
            if verifier.verify(&msg, &p.signature).is_err() {
                return serde_json::json!({"error": "calibration signature did not verify"});
            }
        }
        n += 100;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    serde_json::json!({"raw_ring_es256_verifies_per_second": rate, "seconds": seconds})
}

async fn connect(target: &str) -> Result<Channel, String> {
    Channel::from_shared(target.to_owned())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {target}: {e}"))
}

/// Creates the credentials and the pool of requests.
async fn prepare(args: &RunArgs, channel: Channel) -> Result<Vec<Arc<Prepared>>, String> {
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
        creds.put_credential(pb::PutCredentialRequest { credential: Some(rec) }).await.map_err(|e| format!("PutCredential: {e}"))?;
        auths.push(a);
    }
    let challenge = b"assertd-loadgen-challenge-0123456789";
    let mut pool = Vec::with_capacity(args.pool);
    for i in 0..args.pool.max(1) {
        let a = &auths[i % auths.len()];
        let p = a.assert(&args.rp, &args.origin, challenge, 0x05, 0);
        let mut x = pb::Assertion {
            request_id: i.to_string(),
            rp_id: args.rp.clone(),
            credential_id: a.credential_id.clone(),
            client_data_json: p.client_data_json,
            authenticator_data: p.authenticator_data,
            signature: p.signature,
            expected_challenge: challenge.to_vec(),
            ..Default::default()
        };
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
        pool.push((x, expect));
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
async fn prepare_from_file(args: &RunArgs, path: &std::path::Path, channel: Channel) -> Result<Vec<Arc<Prepared>>, String> {
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
            creds.put_credential(pb::PutCredentialRequest { credential: Some(rec) }).await.map_err(|e| format!("PutCredential: {e}"))?;
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
fn prepare_population(args: &RunArgs, n: usize, population: &Population) -> Vec<Arc<Prepared>> {
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

/// Records one answered request.
async fn record(stats: &Stats, p: &Prepared, verdicts: &[pb::Verdict], latency: Duration) {
    if !stats.measuring.load(Ordering::Relaxed) {
        return;
    }
    stats.rpcs.fetch_add(1, Ordering::Relaxed);
    stats.assertions.fetch_add(verdicts.len() as u64, Ordering::Relaxed);
    let mut wrong = u64::from(verdicts.len() != p.expect.len());
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for (v, e) in verdicts.iter().zip(&p.expect) {
        let code = v.reasons.first().map(|r| r.code());
        if v.decision() != e.decision || (e.code.is_some() && code != e.code) {
            wrong += 1;
        }
        let key = format!("{}:{}", v.decision().as_str_name(), code.map_or("NONE", |c| c.as_str_name()));
        *reasons.entry(key).or_default() += 1;
    }
    stats.mismatches.fetch_add(wrong, Ordering::Relaxed);
    {
        let mut r = stats.reasons.lock().await;
        for (k, n) in reasons {
            *r.entry(k).or_default() += n;
        }
    }
    let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
    if let Some(h) = stats.latency.lock().await.as_mut() {
        let _ = h.record(us);
    }
    if let Some(h) = stats.interval.lock().await.as_mut() {
        let _ = h.record(us);
    }
}

async fn error(stats: &Stats, e: &tonic::Status, latency: Duration) {
    if stats.measuring.load(Ordering::Relaxed) {
        *stats.errors.lock().await.entry(format!("{:?}", e.code())).or_default() += 1;
        if e.code() == tonic::Code::ResourceExhausted
            && let Some(h) = stats.rejected.lock().await.as_mut()
        {
            let _ = h.record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1));
        }
    }
}

/// One closed-loop caller (unary, or one stream kept `depth` deep).
async fn caller(
    channel: Channel,
    requests: Arc<Vec<Arc<Prepared>>>,
    start_at: usize,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    stream: bool,
) {
    let mut client = VerificationServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let mut i = start_at;
    if !stream {
        while !stop.load(Ordering::Relaxed) {
            let p = &requests[i % requests.len()];
            i += 1;
            let sent = Instant::now();
            match client.verify_assertions(pb::VerifyAssertionsRequest { assertions: p.assertions.clone() }).await {
                Ok(r) => record(&stats, p, &r.into_inner().verdicts, sent.elapsed()).await,
                Err(e) => error(&stats, &e, sent.elapsed()).await,
            }
        }
        return;
    }
    // Streaming: keep two requests in flight on the stream.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::VerifyAssertionsStreamRequest>(2);
    let mut responses = match client.verify_assertions_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(e) => return error(&stats, &e, Duration::ZERO).await,
    };
    let mut in_flight = std::collections::VecDeque::new();
    for _ in 0..2 {
        let p = requests[i % requests.len()].clone();
        i += 1;
        in_flight.push_back((p.clone(), Instant::now()));
        if tx.send(pb::VerifyAssertionsStreamRequest { assertions: p.assertions.clone() }).await.is_err() {
            return;
        }
    }
    while let Some((p, sent)) = in_flight.pop_front() {
        match responses.message().await {
            Ok(Some(r)) => record(&stats, &p, &r.verdicts, sent.elapsed()).await,
            Ok(None) => return,
            Err(e) => return error(&stats, &e, sent.elapsed()).await,
        }
        if !stop.load(Ordering::Relaxed) {
            let next = requests[i % requests.len()].clone();
            i += 1;
            in_flight.push_back((next.clone(), Instant::now()));
            if tx.send(pb::VerifyAssertionsStreamRequest { assertions: next.assertions.clone() }).await.is_err() {
                return;
            }
        }
    }
}

/// Open loop: requests at fixed intended times; latency counts from the
/// intended time, so a stall shows up in the tail instead of lowering the
/// offered rate (coordinated omission).
async fn open_loop(
    channels: Vec<Channel>,
    requests: Arc<Vec<Arc<Prepared>>>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    rate: f64,
    max_outstanding: usize,
) {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let start = Instant::now();
    let outstanding = Arc::new(tokio::sync::Semaphore::new(max_outstanding));
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let intended = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(intended.into()).await;
        let p = requests[(n as usize) % requests.len()].clone();
        let mut client =
            VerificationServiceClient::new(channels[(n as usize) % channels.len()].clone()).max_decoding_message_size(64 << 20);
        n += 1;
        let Ok(permit) = outstanding.clone().try_acquire_owned() else {
            *stats.errors.lock().await.entry("GeneratorBackpressure".into()).or_default() += 1;
            continue;
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let sent = Instant::now();
            let r = client.verify_assertions(pb::VerifyAssertionsRequest { assertions: p.assertions.clone() }).await;
            match r {
                Ok(r) => record(&stats, &p, &r.into_inner().verdicts, intended.elapsed()).await,
                // A rejection's cost is its round trip, from when it was sent.
                Err(e) => error(&stats, &e, sent.elapsed()).await,
            }
            drop(permit);
        });
    }
}

fn quantiles(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |v: u64| v as f64 / 1000.0;
    serde_json::json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p90_ms": ms(h.value_at_quantile(0.90)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
        "mean_ms": h.mean() / 1000.0,
    })
}

/// Runs a load and returns the report (see README.md and BENCHMARKS.md).
pub async fn run(args: RunArgs) -> Result<serde_json::Value, String> {
    run_until(args, None).await
}

/// `run`, ending early when `stop` turns true: callers send nothing more,
/// and requests already sent are waited for (up to 30 s) and counted. So
/// with `stop` set just before a server is told to shut down, the report
/// covers exactly the requests sent before that.
pub async fn run_until(args: RunArgs, stop_when: Option<Arc<AtomicBool>>) -> Result<serde_json::Value, String> {
    if args.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(connect(&args.target).await?);
    }
    eprintln!("setup: {} credentials ({}), pool of {} assertions", args.credentials, args.algs.join(","), args.pool);
    let requests = Arc::new(prepare(&args, channels[0].clone()).await?);
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    match args.mode {
        Mode::Closed => {
            for c in 0..args.concurrency.max(1) {
                let start_at = c * requests.len() / args.concurrency.max(1);
                tasks.push(tokio::spawn(caller(
                    channels[c % channels.len()].clone(),
                    requests.clone(),
                    start_at,
                    stats.clone(),
                    stop.clone(),
                    args.stream,
                )));
            }
        }
        Mode::Open => {
            tasks.push(tokio::spawn(open_loop(
                channels.clone(),
                requests.clone(),
                stats.clone(),
                stop.clone(),
                args.rate,
                args.max_outstanding,
            )));
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    *stats.latency.lock().await = Some(histogram());
    *stats.interval.lock().await = Some(histogram());
    *stats.rejected.lock().await = Some(histogram());
    stats.measuring.store(true, Ordering::SeqCst);
    let rss_start = args.server_pid.and_then(rss_bytes);
    let mut rss_max = rss_start;
    let server_cpu0 = args.server_pid.and_then(|p| cpu_seconds(&p.to_string()));
    let cache0 = args.metrics.as_deref().and_then(scrape_cache);
    let self_cpu0 = cpu_seconds("self");
    let started = Instant::now();
    let mut last = (0u64, Instant::now());
    let stopped = || stop_when.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
    while started.elapsed().as_secs_f64() < args.duration
        && (args.requests == 0 || stats.rpcs.load(Ordering::Relaxed) < args.requests)
        && !stopped()
    {
        let tick = Duration::from_millis(1000).min(Duration::from_secs_f64(args.duration));
        let tick_started = Instant::now();
        while tick_started.elapsed() < tick && !stopped() {
            tokio::time::sleep(Duration::from_millis(5).min(tick)).await;
        }
        let a = stats.assertions.load(Ordering::Relaxed);
        let h = stats.interval.lock().await.replace(histogram());
        let (p50, p99) =
            h.as_ref().map_or((0.0, 0.0), |h| (h.value_at_quantile(0.5) as f64 / 1000.0, h.value_at_quantile(0.99) as f64 / 1000.0));
        let errors: u64 = stats.errors.lock().await.values().sum();
        if let Some(now) = args.server_pid.and_then(rss_bytes) {
            rss_max = Some(rss_max.map_or(now, |m| m.max(now)));
        }
        eprintln!(
            "[{:5.1}s] {:>9.0} assertions/s  errors {:>6}  mismatches {:>4}  p50 {:>7.2} ms  p99 {:>7.2} ms",
            started.elapsed().as_secs_f64(),
            (a - last.0) as f64 / last.1.elapsed().as_secs_f64(),
            errors,
            stats.mismatches.load(Ordering::Relaxed),
            p50,
            p99
        );
        last = (a, Instant::now());
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Rates are of the window; answers to requests still in flight are
    // checked and counted below, but their time is not in `elapsed`.
    let (rpcs_window, assertions_window) = (stats.rpcs.load(Ordering::SeqCst), stats.assertions.load(Ordering::SeqCst));
    stop.store(true, Ordering::SeqCst);
    let server_cpu = args.server_pid.and_then(|p| cpu_seconds(&p.to_string())).zip(server_cpu0).map(|(b, a)| b - a);
    let self_cpu = cpu_seconds("self").zip(self_cpu0).map(|(b, a)| b - a);
    let cache1 = args.metrics.as_deref().and_then(scrape_cache);
    let hit_ratio = cache0.zip(cache1).map(|((h0, m0), (h1, m1))| (h1 - h0) / ((h1 - h0) + (m1 - m0)).max(1.0));
    let server_rss = args.server_pid.and_then(rss_bytes);
    // Requests already sent still count: wait for their answers.
    let wait = if stop_when.is_some() { Duration::from_secs(30) } else { Duration::from_secs(5) };
    for t in tasks {
        let _ = tokio::time::timeout(wait, t).await;
    }
    stats.measuring.store(false, Ordering::SeqCst);
    let latency = stats.latency.lock().await.take().unwrap_or_else(histogram);
    let rejected = stats.rejected.lock().await.take().unwrap_or_else(histogram);
    let rpcs = stats.rpcs.load(Ordering::Relaxed);
    let assertions = stats.assertions.load(Ordering::Relaxed);
    Ok(serde_json::json!({
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "stream": args.stream,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "rate_rpcs_per_second": if args.mode == Mode::Open { Some(args.rate) } else { None },
        "algs": args.algs,
        "invalid_pct": args.invalid_pct,
        "unknown_pct": args.unknown_pct,
        "seconds": elapsed,
        "rpcs": rpcs,
        "assertions": assertions,
        "drained_rpcs": rpcs - rpcs_window,
        "rpcs_per_second": rpcs_window as f64 / elapsed,
        "assertions_per_second": assertions_window as f64 / elapsed,
        "latency": quantiles(&latency),
        "rejected_latency": quantiles(&rejected),
        "errors": *stats.errors.lock().await,
        "decisions": *stats.reasons.lock().await,
        "mismatches": stats.mismatches.load(Ordering::Relaxed),
        "server_cpu_seconds": server_cpu,
        "generator_cpu_seconds": self_cpu,
        "server_cpu_per_assertion_us": server_cpu.map(|c| c * 1e6 / assertions_window.max(1) as f64),
        "cache_hit_ratio": hit_ratio,
        "server_rss_bytes": server_rss,
        "server_rss_start_bytes": rss_start,
        "server_rss_max_bytes": rss_max,
        "population": args.population,
        "zipf": args.population.map(|_| args.zipf),
    }))
}

fn print_summary(r: &serde_json::Value) {
    let g = |k: &str| r[k].as_f64().unwrap_or(0.0);
    let l = &r["latency"];
    eprintln!("\n==== assertd-loadgen summary ====");
    eprintln!("mode {} stream {} batch {} concurrency {}", r["mode"], r["stream"], r["batch"], r["concurrency"]);
    eprintln!("{:<26} {:>12.0}", "assertions/s", g("assertions_per_second"));
    eprintln!("{:<26} {:>12.1}", "RPCs/s", g("rpcs_per_second"));
    eprintln!("{:<26} {:>12}", "RPCs answered after window", r["drained_rpcs"]);
    for q in ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"] {
        eprintln!("{:<26} {:>12.3}", format!("latency {q}"), l[q].as_f64().unwrap_or(0.0));
    }
    eprintln!("{:<26} {:>12}", "errors", r["errors"]);
    eprintln!("{:<26} {:>12}", "verdict mismatches", r["mismatches"]);
    eprintln!("{:<26} {}", "decisions", r["decisions"]);
    eprintln!("{:<26} {:>12}", "server CPU s", r["server_cpu_seconds"]);
    eprintln!("{:<26} {:>12}", "generator CPU s", r["generator_cpu_seconds"]);
    eprintln!("{:<26} {:>12}", "cache hit ratio", r["cache_hit_ratio"]);
    eprintln!("{:<26} {:>12}", "server RSS bytes", r["server_rss_bytes"]);
}

/// Runs the command line; the process exit code.
pub fn main_with(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Calibrate { seconds } => {
            println!("{}", calibrate(seconds));
            ExitCode::SUCCESS
        }
        Command::GenCredentials { count, rp, alg, keys } => {
            match gen_credentials(count, &rp, alg, keys.as_deref(), std::io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("assertd-loadgen: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::PeerInput { count, credentials } => {
            println!("{}", peer_input(count, credentials.max(1)));
            ExitCode::SUCCESS
        }
        Command::Run(args) => {
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("assertd-loadgen: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let json = args.json.clone();
            match rt.block_on(run(*args)) {
                Err(e) => {
                    eprintln!("assertd-loadgen: {e}");
                    ExitCode::FAILURE
                }
                Ok(report) => {
                    print_summary(&report);
                    if let Some(path) = json
                        && let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap_or_default())
                    {
                        eprintln!("assertd-loadgen: cannot write {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                    println!("{report}");
                    if report["mismatches"].as_u64().unwrap_or(1) > 0 || report["assertions"].as_u64() == Some(0) {
                        eprintln!("assertd-loadgen: FAILED: wrong verdicts or no answers");
                        return ExitCode::FAILURE;
                    }
                    ExitCode::SUCCESS
                }
            }
        }
    }
}
