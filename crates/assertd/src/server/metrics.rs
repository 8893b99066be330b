//! The `/metrics` listener and what it samples at scrape time: the
//! admission, the loaded metadata, the change feed and the process (from
//! `/proc`). The metrics themselves are `telemetry`'s.

use crate::engine::Engine;
use crate::telemetry;
use bytes::Bytes;
use http_body_util::Full;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a probe request's headers may take to arrive.
pub const PROBE_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The scrape-time gauges: the admission's wait and target, the metadata,
/// the change feed, and the process (from /proc; absent elsewhere).
fn scrape(engine: &Engine) {
    let admission = engine.admission();
    telemetry::admission_state(admission.queue_wait(), admission.target(), admission.request_bytes());
    if let Some(m) = &engine.reloadable().metadata {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let md = &m.metadata;
        telemetry::metadata_state(md.number, md.next_update_unix, md.models.len(), md.stale(now));
    }
    if let Some(up) = engine.change_feed_up() {
        telemetry::change_feed_up(up);
    }
    telemetry::process_state(process());
}

/// CPU, memory and descriptors of this process, from /proc.
fn process() -> telemetry::Process {
    let mut p = telemetry::Process::default();
    // utime and stime, fields 14 and 15, in clock ticks: USER_HZ, which the
    // Linux ABI fixes at 100.
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some((_, after_comm)) = stat.rsplit_once(')')
    {
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // Field 14 is the 12th after the command's closing parenthesis.
        p.cpu_seconds = Some((ticks(11) + ticks(12)) / 100.0);
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        p.resident_bytes = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb * 1024.0);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        p.open_fds = Some(fds.count());
    }
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        p.max_fds = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<f64>().ok());
    }
    p
}

/// A JSON document.
fn json(v: &serde_json::Value) -> Result<hyper::Response<Full<Bytes>>, hyper::http::Error> {
    hyper::Response::builder().header("content-type", "application/json").body(Full::new(Bytes::from(v.to_string())))
}

/// Serves `GET /metrics` (and `/`), and with `[shared_signals]` the JWK Set
/// and the transmitter's configuration, on an already bound listener until the
/// process ends: at most `limits.max_probe_connections` connections at
/// once (more are closed at accept), each living at most
/// `limits.probe_connection_seconds`, one request per connection, whose
/// headers (at most 16 KiB) must arrive within [`PROBE_HEADER_TIMEOUT`].
pub async fn serve_metrics(
    listener: TcpListener,
    handle: PrometheusHandle,
    engine: Arc<Engine>,
    signals: Option<Arc<crate::config::SharedSignals>>,
) {
    let limits = *engine.limits();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_probe_connections));
    let lifetime = Duration::from_secs(limits.probe_connection_seconds);
    // Histogram samples pile up in the recorder until drained into their
    // buckets; without a scrape that would be unbounded memory.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                telemetry::accept_failed("metrics", &e);
                tokio::time::sleep(crate::tls::ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            telemetry::listener_refused("metrics");
            drop(stream);
            continue;
        };
        let handle = handle.clone();
        let engine = engine.clone();
        let signals = signals.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (handle, engine, signals) = (handle.clone(), engine.clone(), signals.clone());
                async move {
                    match req.uri().path() {
                        "/metrics" | "/" => {
                            let cache = engine.cache();
                            cache.sync().await;
                            telemetry::cache_state(cache);
                            scrape(&engine);
                            hyper::Response::builder()
                                .header("content-type", "text/plain; version=0.0.4")
                                .body(Full::new(Bytes::from(handle.render())))
                        }
                        path => match (&signals, path) {
                            (Some(s), crate::signals::JWKS_PATH) => json(&crate::signals::jwks(s)),
                            (Some(s), p) if p.starts_with(crate::signals::CONFIGURATION_PATH) => json(&crate::signals::configuration(s)),
                            _ => hyper::Response::builder().status(404).body(Full::new(Bytes::from_static(b"not found\n"))),
                        },
                    }
                }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(PROBE_HEADER_TIMEOUT)
                .max_buf_size(16 * 1024)
                .keep_alive(false);
            let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(lifetime, conn).await;
        });
    }
}
