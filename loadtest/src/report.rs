//! What a run reports: latency quantiles, server CPU and memory read from
//! /proc and /metrics, the raw ring calibration, and the summary table.

use assertd_testkit::Alg;
use assertd_testkit::RawPublicKey;
use assertd_testkit::SoftAuthenticator;
use hdrhistogram::Histogram;
use std::time::Instant;

/// CPU seconds (user + system) of a process, from /proc.
pub(crate) fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Reads a Prometheus text exposition: (cache hits, cache misses).
pub(crate) fn scrape_cache(addr: &str) -> Option<(f64, f64)> {
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
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Raw `ring` verifying one `alg` signature with the key already decoded,
/// for `seconds` on the calling thread: the floor every ratio divides by.
/// Reports `raw_ring_verifies_per_second` (and, for ES256, the older key
/// `raw_ring_es256_verifies_per_second`).
pub(crate) fn calibrate(seconds: f64, alg: Alg) -> serde_json::Value {
    use ring::signature;
    let a = SoftAuthenticator::new(alg);
    let p = a.assert("login.example.com", "https://login.example.com", b"calibrate", 0x05, 0);
    let mut msg = p.authenticator_data.clone();
    msg.extend(ring::digest::digest(&ring::digest::SHA256, &p.client_data_json).as_ref());
    let verify: Box<dyn Fn() -> bool> = match (alg, a.raw_public_key()) {
        (Alg::Rs256 | Alg::Ps256, RawPublicKey::Rsa { n, e }) => {
            let params = if alg == Alg::Rs256 { &signature::RSA_PKCS1_2048_8192_SHA256 } else { &signature::RSA_PSS_2048_8192_SHA256 };
            Box::new(move || signature::RsaPublicKeyComponents { n: &n, e: &e }.verify(params, &msg, &p.signature).is_ok())
        }
        (_, RawPublicKey::Bytes(k)) => {
            let v: &'static dyn signature::VerificationAlgorithm = match alg {
                Alg::Es384 => &signature::ECDSA_P384_SHA384_ASN1,
                Alg::EdDsa => &signature::ED25519,
                _ => &signature::ECDSA_P256_SHA256_ASN1,
            };
            let k = signature::UnparsedPublicKey::new(v, k);
            Box::new(move || k.verify(&msg, &p.signature).is_ok())
        }
        _ => return serde_json::json!({"error": "the test key does not match its algorithm"}),
    };
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        for _ in 0..100 {
            if !verify() {
                return serde_json::json!({"error": "calibration signature did not verify"});
            }
        }
        n += 100;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let mut r = serde_json::json!({"alg": format!("{alg:?}"), "raw_ring_verifies_per_second": rate, "seconds": seconds});
    if alg == Alg::Es256 {
        r["raw_ring_es256_verifies_per_second"] = rate.into();
    }
    r
}

pub(crate) fn quantiles(h: &Histogram<u64>) -> serde_json::Value {
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

pub(crate) fn print_summary(r: &serde_json::Value) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::histogram;

    #[test]
    fn quantiles_are_in_milliseconds() {
        let mut h = histogram();
        for us in 1..=1000u64 {
            h.record(us * 10).unwrap();
        }
        let q = quantiles(&h);
        assert_eq!(q["count"], 1000);
        let p50 = q["p50_ms"].as_f64().unwrap();
        let p99 = q["p99_ms"].as_f64().unwrap();
        assert!((4.9..5.1).contains(&p50), "{q}");
        assert!((9.8..10.0).contains(&p99), "{q}");
        assert!(q["max_ms"].as_f64().unwrap() >= p99);
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(cpu_seconds(&pid.to_string()).is_some());
        assert!(rss_bytes(pid).unwrap() > 0);
    }
}
