//! Observability as a leaf: the catalogue of metrics (Prometheus, through
//! the `metrics` crate), their recorders, and logging. Nothing here imports
//! the server crate's modules: the engine, the stack and the services call
//! in; the `/metrics` listener and the `/proc` sampling are wired with the
//! server (`server::metrics`).
//!
//! Every metric is in [`catalogue`] and in docs/operations.md (a test holds
//! the two together). Label values are low-cardinality: decisions, reason
//! codes, algorithms, RPC names, operations. Never ids or addresses.

pub mod catalogue;
mod logging;
mod record;
mod series;

pub use logging::{AUDIT_TARGET, init_logging};
pub use record::*;

use catalogue::{BATCH_SIZE, CATALOGUE, Kind, PROCESS_START};
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Installs the Prometheus recorder and describes every metric of the
/// catalogue.
pub fn install() -> Result<PrometheusHandle, String> {
    let seconds = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(BATCH_SIZE.name.into()),
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0],
            )
        })
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    record::clear_series();
    for m in CATALOGUE {
        match m.kind {
            Kind::Counter => describe_counter!(m.name, m.help),
            Kind::Gauge => describe_gauge!(m.name, m.help),
            Kind::Histogram if m.name.ends_with("_seconds") => describe_histogram!(m.name, Unit::Seconds, m.help),
            Kind::Histogram => describe_histogram!(m.name, m.help),
        }
    }
    gauge!(PROCESS_START.name).set(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()));
    record::config_reloaded();
    record::series_at_zero();
    build_info();
    Ok(handle)
}
