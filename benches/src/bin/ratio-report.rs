//! Prints the ratios the performance targets are stated in, from criterion's
//! results of the last `cargo bench -p assertd-benches` run:
//! full verify ÷ raw ring per algorithm (throughput ratio), and the engine's
//! scaling from 1 to 2 verification threads.
//!
//! Usage: `cargo run -p assertd-benches --bin ratio-report [CRITERION_DIR]`
//! (default `$CARGO_TARGET_DIR/criterion`, else `target/criterion`).

use std::path::{Path, PathBuf};

/// Median time per iteration in nanoseconds, from criterion's estimates.
fn median_ns(dir: &Path, group: &str, bench: &str) -> Option<f64> {
    let p = dir.join(group).join(bench).join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn main() {
    let dir = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        Path::new(&target).join("criterion")
    });
    println!("criterion results: {}", dir.display());
    println!("\n{:<8} {:>14} {:>14} {:>10} {:>8}", "alg", "raw ring/s", "full verify/s", "ratio", "target");
    for alg in ["ES256", "ES384", "EdDSA", "RS256", "PS256"] {
        match (median_ns(&dir, "raw_ring", alg), median_ns(&dir, "full_verify", alg)) {
            (Some(raw), Some(full)) => {
                let target = if alg == "ES256" { ">= 0.95" } else { "" };
                println!("{alg:<8} {:>14.0} {:>14.0} {:>10.3} {target:>8}", 1e9 / raw, 1e9 / full, raw / full);
            }
            _ => println!("{alg:<8} (no results)"),
        }
    }
    println!("\nengine batch (ES256, assertions/s):");
    for size in [1, 16, 64, 256] {
        if let Some(t) = median_ns(&dir, "engine_batch_threads1", &format!("es256_{size}")) {
            println!("  1 thread,  batch {size:>3}: {:>10.0}", size as f64 * 1e9 / t);
        }
    }
    for size in [64, 256] {
        let one = median_ns(&dir, "engine_batch_threads1", &format!("es256_{size}"));
        let two = median_ns(&dir, "engine_batch_threads2", &format!("es256_{size}"));
        if let (Some(one), Some(two)) = (one, two) {
            println!(
                "  2 threads, batch {size:>3}: {:>10.0}  scaling 1->2 threads: {:.2}x (target >= 1.8x)",
                size as f64 * 1e9 / two,
                one / two
            );
        }
    }
    if let Some(raw) = median_ns(&dir, "raw_ring", "ES256")
        && let Some(t) = median_ns(&dir, "engine_batch_threads1", "es256_64")
    {
        println!("\nengine batch 64 on 1 thread ÷ raw ring ES256: {:.3}", raw * 64.0 / t);
    }
}
