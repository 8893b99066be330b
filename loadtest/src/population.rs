//! Credential populations: algorithms, seeded keys, the import file of a
//! population, peer-comparison input, and the Zipf sampler over ranks.

use crate::args::PopulationAlg;
use assertd_testkit::Alg;
use assertd_testkit::SoftAuthenticator;

pub(crate) fn alg(name: &str) -> Result<Alg, String> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "es256" => Alg::Es256,
        "es384" => Alg::Es384,
        "eddsa" => Alg::EdDsa,
        "rs256" => Alg::Rs256,
        "ps256" => Alg::Ps256,
        other => return Err(format!("unknown algorithm {other:?}")),
    })
}

/// ES256 key pairs of a population (credential i uses key i mod len).
pub(crate) const POPULATION_ES256_KEYS: usize = 1024;

/// The keys of a seeded population.
pub(crate) enum Population {
    /// Ed25519 keys from SHA-256("assertd-loadgen" || i).
    Ed25519,
    /// ES256 keys shared round-robin.
    Es256(Vec<ring::signature::EcdsaKeyPair>, ring::rand::SystemRandom),
}

impl Population {
    /// Reads an ES256 key file (PKCS#8, base64url, one per line).
    pub(crate) fn es256(path: &std::path::Path) -> Result<Self, String> {
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
    pub(crate) fn id(i: usize) -> Vec<u8> {
        format!("seeded-{i}").into_bytes()
    }

    /// Credential `i`'s COSE key.
    pub(crate) fn cose(&self, i: usize) -> Vec<u8> {
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
    pub(crate) fn sign(&self, i: usize, msg: &[u8]) -> Vec<u8> {
        match self {
            Self::Ed25519 => seeded_ed25519(i).sign(msg).as_ref().to_vec(),
            #[allow(clippy::expect_used)]
            Self::Es256(keys, rng) => keys[i % keys.len()].sign(rng, msg).expect("ECDSA signing").as_ref().to_vec(),
        }
    }
}

pub(crate) fn seeded_ed25519(i: usize) -> ring::signature::Ed25519KeyPair {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"assertd-loadgen");
    ctx.update(&(i as u64).to_be_bytes());
    let seed = ctx.finish();
    #[allow(clippy::expect_used)]
    ring::signature::Ed25519KeyPair::from_seed_unchecked(seed.as_ref()).expect("32-byte seed")
}

/// Writes the import file (JSON Lines) of a seeded population of `count`
/// credentials to `out`; for ES256, creates the key file `keys` first.
/// `mixed`: two per user, of every kind (see `gen-credentials --mixed`).
pub fn gen_credentials(
    count: usize,
    rp: &str,
    alg: PopulationAlg,
    keys: Option<&std::path::Path>,
    mixed: bool,
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
        if mixed {
            let synced = i % 5 < 2;
            let attested = (i / 5) % 2 == 0;
            let model = [1, 2, 3, 4][(i / 10) % 4];
            let aaguid =
                format!("{0}{0}{0}{0}{0}{0}{0}{0}-{0}{0}{0}{0}-{0}{0}{0}{0}-{0}{0}{0}{0}-{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}", model);
            writeln!(
                out,
                r#"{{"rp_id":"{rp}","credential_id":"{}","user_handle":"{}","public_key_cose":"{}","backup_eligible":{synced},"backup_state":{synced},"attested":{attested},"aaguid_vouched":{attested},"aaguid":"{}"}}"#,
                b64(&id),
                b64(format!("user-{}", i / 2).as_bytes()),
                b64(&cose),
                aaguid,
            )
            .map_err(io)?;
            continue;
        }
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
pub(crate) fn peer_input(count: usize, credentials: usize) -> serde_json::Value {
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
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Samples ranks 0..n with probability proportional to 1/(rank+1)^s.
pub(crate) fn zipf_sampler(n: usize, s: f64) -> impl FnMut(&mut Rng) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_in_unit_interval() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        for _ in 0..1000 {
            let x = a.next_f64();
            assert_eq!(x, b.next_f64());
            assert!((0.0..1.0).contains(&x));
        }
    }

    #[test]
    fn zipf_stays_in_range_and_favours_low_ranks() {
        let n = 100;
        let mut sample = zipf_sampler(n, 1.0);
        let mut rng = Rng(1);
        let mut counts = vec![0u32; n];
        for _ in 0..50_000 {
            counts[sample(&mut rng)] += 1;
        }
        // Rank 0 carries 1/H(100) ≈ 19% of the mass, rank 1 half of that.
        assert!(counts[0] > counts[1] && counts[1] > counts[9] && counts[9] > counts[99], "{counts:?}");
        let share = f64::from(counts[0]) / 50_000.0;
        assert!((0.17..0.22).contains(&share), "{share}");
        // s = 0 is uniform.
        let mut uniform = zipf_sampler(4, 0.0);
        let mut c = [0u32; 4];
        for _ in 0..40_000 {
            c[uniform(&mut rng)] += 1;
        }
        assert!(c.iter().all(|k| (9_000..11_000).contains(k)), "{c:?}");
    }

    #[test]
    fn seeded_population_file_is_deterministic_and_importable() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        gen_credentials(3, "rp.example", PopulationAlg::Ed25519, None, false, &mut a).unwrap();
        gen_credentials(3, "rp.example", PopulationAlg::Ed25519, None, false, &mut b).unwrap();
        assert_eq!(a, b);
        let lines: Vec<serde_json::Value> = String::from_utf8(a).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["rp_id"], "rp.example");
        assert_ne!(lines[0]["credential_id"], lines[1]["credential_id"]);
        // Each line's key is the one the population signs with.
        let cose = assertd_testkit::from_b64url(lines[2]["public_key_cose"].as_str().unwrap()).unwrap();
        assert_eq!(cose, Population::Ed25519.cose(2));
        assert!(gen_credentials(1, "rp", PopulationAlg::Es256, None, false, Vec::new()).is_err());
        // Mixed: two per user, synced 2 in 5, attested 5 in 10.
        let mut m = Vec::new();
        gen_credentials(20, "rp.example", PopulationAlg::Ed25519, None, true, &mut m).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(m).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["user_handle"], lines[1]["user_handle"]);
        assert_ne!(lines[1]["user_handle"], lines[2]["user_handle"]);
        assert_eq!(lines.iter().filter(|l| l["backup_eligible"] == true).count(), 8);
        assert_eq!(lines.iter().filter(|l| l["attested"] == true).count(), 10);
        assert_eq!(lines[10]["aaguid"], "22222222-2222-2222-2222-222222222222");
    }
}
