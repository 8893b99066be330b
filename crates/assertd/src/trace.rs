//! OpenTelemetry traces: one span per assertd RPC, exported over OTLP/gRPC
//! when `[tracing] otlp_endpoint` is set.
//!
//! * Context: a caller's W3C `traceparent` (and `tracestate`) makes the span
//!   a child of the caller's, and its sampled flag decides whether the call
//!   is traced. A call without one is a trace root, traced at
//!   `tracing.sample_ratio`.
//! * The span (kind SERVER, named `assertd.v1.VerificationService/VerifyAssertions`
//!   and so on) carries the gRPC semantic-convention attributes (`rpc.system`,
//!   `rpc.service`, `rpc.method`, `rpc.grpc.status_code`) and what the
//!   handler noted in its [`Notes`]: the caller, the batch size, verdict
//!   counts, time spent in the store.
//! * Spans queue (bounded: [`QUEUE`]) for one exporter task that sends them
//!   in batches of up to [`BATCH`] at least every [`INTERVAL`]; a full queue
//!   or a collector that does not answer drops spans and counts them
//!   (`assertd_trace_spans_dropped_total`), never slows an RPC.
//! * Off (no endpoint): [`start`] is one load of an unset cell; nothing is
//!   allocated, parsed or timed.
//!
//! This module builds the OTLP messages itself (from `opentelemetry-proto`)
//! instead of running the OpenTelemetry SDK: one span kind, one exporter, and
//! the export on the server's own runtime.

use crate::config::TracingSection;
use crate::telemetry;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tonic::codegen::http;

/// Spans waiting for export, at most.
pub const QUEUE: usize = 8192;
/// Spans per export request, at most.
pub const BATCH: usize = 512;
/// Longest a span waits before its batch is sent.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Longest one export request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

static TRACER: OnceLock<Tracer> = OnceLock::new();

/// The installed tracer: the sampler and the exporter's queue.
struct Tracer {
    queue: mpsc::Sender<Message>,
    /// Roots are traced when a random u64 is below this.
    root_threshold: u64,
    /// `u64::MAX`-ratio is inexact at 1.0: trace every root.
    every_root: bool,
}

enum Message {
    Span(Box<Span>),
    Flush(oneshot::Sender<()>),
}

/// Starts the exporter on the current runtime when the section names an
/// endpoint. Once per process; a second call is ignored.
pub fn install(section: &TracingSection) {
    let Some(endpoint) = section.otlp_endpoint.clone() else { return };
    let (queue, rx) = mpsc::channel(QUEUE);
    // A ratio in [0, 1] (checked by the config), scaled to u64.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let root_threshold = (section.sample_ratio * u64::MAX as f64) as u64;
    let tracer = Tracer { queue, root_threshold, every_root: section.sample_ratio >= 1.0 };
    if TRACER.set(tracer).is_err() {
        return;
    }
    let resource = Resource {
        attributes: vec![
            string("service.name", section.service_name.clone()),
            string("service.version", env!("CARGO_PKG_VERSION").to_owned()),
        ],
        ..Default::default()
    };
    tokio::spawn(export(rx, endpoint.clone(), resource));
    tracing::info!(endpoint = %endpoint, sample_ratio = section.sample_ratio, "exporting traces over OTLP/gRPC");
}

/// Sends what is queued and waits for the answer (or `limit`): at shutdown.
pub async fn flush(limit: Duration) {
    let Some(t) = TRACER.get() else { return };
    let (tx, rx) = oneshot::channel();
    if t.queue.send(Message::Flush(tx)).await.is_ok() {
        let _ = tokio::time::timeout(limit, rx).await;
    }
}

/// A caller's W3C trace context (`traceparent`, Trace Context Level 1 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// The trace.
    pub trace_id: [u8; 16],
    /// The caller's span.
    pub span_id: [u8; 8],
    /// The caller's sampled flag.
    pub sampled: bool,
}

/// Parses a `traceparent` value: `version-traceid-parentid-flags` in lower-
/// case hex; version `ff`, all-zero ids and (for version 00) extra fields
/// are invalid; a later version may append `-` fields. `None`: ignore it.
pub fn parse_traceparent(v: &[u8]) -> Option<Parent> {
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = hex::<1>(&v[0..2])?[0];
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    let trace_id = hex::<16>(&v[3..35])?;
    let span_id = hex::<8>(&v[36..52])?;
    let flags = hex::<1>(&v[53..55])?[0];
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(Parent { trace_id, span_id, sampled: flags & 1 == 1 })
}

/// Lower-case hex into N bytes.
pub(crate) fn hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// What a handler notes on its RPC's span (found in the request's
/// extensions when the call is traced). Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Notes(Arc<NotesInner>);

#[derive(Debug, Default)]
struct NotesInner {
    attributes: Mutex<Vec<KeyValue>>,
    /// Added to by the store calls the RPC makes (`telemetry::with_store_clock`).
    store_nanos: Arc<AtomicU64>,
}

impl Notes {
    /// Sets a string attribute.
    pub fn string(&self, key: &'static str, value: impl Into<String>) {
        self.set(string(key, value.into()));
    }

    /// Adds `delta` to an integer attribute (0 when absent).
    pub fn add(&self, key: &'static str, delta: i64) {
        let mut a = self.0.attributes.lock();
        if let Some(Value::IntValue(n)) = a.iter_mut().find(|kv| kv.key == key).and_then(|kv| kv.value.as_mut()?.value.as_mut()) {
            *n = n.saturating_add(delta);
            return;
        }
        a.push(int(key, delta));
    }

    /// The store clock to run the handler's work under.
    pub fn store_clock(&self) -> Arc<AtomicU64> {
        self.0.store_nanos.clone()
    }

    fn set(&self, kv: KeyValue) {
        let mut a = self.0.attributes.lock();
        match a.iter_mut().find(|x| x.key == kv.key) {
            Some(x) => *x = kv,
            None => a.push(kv),
        }
    }
}

/// One traced RPC, from its headers to its status.
#[derive(Debug)]
pub struct RpcSpan {
    path: String,
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    trace_state: String,
    started: u64,
    notes: Notes,
}

/// Starts the span of an RPC when tracing is on and the call is sampled.
pub fn start(path: &str, headers: &http::HeaderMap) -> Option<RpcSpan> {
    let tracer = TRACER.get()?;
    let parent = headers.get("traceparent").and_then(|v| parse_traceparent(v.as_bytes()));
    if parent.is_some_and(|p| !p.sampled) {
        return None;
    }
    // 8 bytes to roll for a root, 16 for its trace id, 8 for the span id.
    let mut random = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).ok()?;
    let mut roll = [0u8; 8];
    roll.copy_from_slice(&random[..8]);
    let trace_id = match parent {
        Some(p) => p.trace_id,
        None => {
            if !tracer.every_root && u64::from_le_bytes(roll) >= tracer.root_threshold {
                return None;
            }
            let mut id = [0u8; 16];
            id.copy_from_slice(&random[8..24]);
            id
        }
    };
    let parent_span = parent.map(|p| p.span_id);
    let mut span_id = [0u8; 8];
    span_id.copy_from_slice(&random[24..32]);
    if span_id == [0; 8] {
        span_id[7] = 1;
    }
    // tracestate is kept only with the traceparent it belongs to, bounded
    // as the spec bounds it (32 members, 512 characters are enough to keep).
    let trace_state = match parent {
        Some(_) => {
            headers.get("tracestate").and_then(|v| v.to_str().ok()).filter(|s| s.len() <= 512).map(str::to_owned).unwrap_or_default()
        }
        None => String::new(),
    };
    Some(RpcSpan {
        path: path.to_owned(),
        trace_id,
        span_id,
        parent: parent_span,
        trace_state,
        started: now_nanos(),
        notes: Notes::default(),
    })
}

impl RpcSpan {
    /// The handler's notes for this span.
    pub fn notes(&self) -> &Notes {
        &self.notes
    }

    /// Ends the span with the call's status and queues it for export.
    pub fn finish(self, code: tonic::Code) {
        let Some(tracer) = TRACER.get() else { return };
        let name = self.path.trim_start_matches('/').to_owned();
        let (service, method) = name.split_once('/').unwrap_or((name.as_str(), ""));
        let mut attributes = vec![
            string("rpc.system", "grpc".to_owned()),
            string("rpc.service", service.to_owned()),
            string("rpc.method", method.to_owned()),
            int("rpc.grpc.status_code", code as i64),
        ];
        attributes.append(&mut self.notes.0.attributes.lock());
        let store = self.notes.0.store_nanos.load(Ordering::Relaxed);
        if store > 0 {
            #[allow(clippy::cast_precision_loss)]
            attributes.push(value("assertd.store.seconds", Value::DoubleValue(store as f64 / 1e9)));
        }
        let span = Span {
            trace_id: self.trace_id.to_vec(),
            span_id: self.span_id.to_vec(),
            trace_state: self.trace_state,
            parent_span_id: self.parent.map(|p| p.to_vec()).unwrap_or_default(),
            // W3C flags: sampled (every exported span is).
            flags: 1,
            name,
            kind: SpanKind::Server as i32,
            start_time_unix_nano: self.started,
            end_time_unix_nano: now_nanos(),
            attributes,
            status: Some(status(code)),
            ..Default::default()
        };
        if tracer.queue.try_send(Message::Span(Box::new(span))).is_err() {
            telemetry::trace_spans_dropped("queue_full", 1);
        }
    }
}

/// The span status of a gRPC code, as the RPC semantic conventions set it
/// for servers: errors are the codes that mean the server failed.
fn status(code: tonic::Code) -> Status {
    use tonic::Code::*;
    let error = matches!(code, Unknown | DeadlineExceeded | Unimplemented | Internal | Unavailable | DataLoss);
    Status {
        code: if error { StatusCode::Error } else { StatusCode::Unset } as i32,
        message: if error { telemetry::code_name(code).to_owned() } else { String::new() },
    }
}

fn value(key: &str, v: Value) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(v) }), ..Default::default() }
}

fn string(key: &str, v: String) -> KeyValue {
    value(key, Value::StringValue(v))
}

fn int(key: &str, v: i64) -> KeyValue {
    value(key, Value::IntValue(v))
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The exporter: batches of up to [`BATCH`] spans, sent at least every
/// [`INTERVAL`] while spans wait; a failed batch is dropped and counted
/// (warned at most once a minute).
async fn export(mut rx: mpsc::Receiver<Message>, endpoint: String, resource: Resource) {
    let channel = match tonic::transport::Endpoint::from_shared(endpoint.clone()) {
        Ok(e) => e.connect_timeout(Duration::from_secs(5)).timeout(EXPORT_TIMEOUT).connect_lazy(),
        Err(e) => {
            tracing::error!(endpoint = %endpoint, error = %e, "cannot export traces: bad endpoint");
            return;
        }
    };
    let mut client = TraceServiceClient::new(channel);
    let mut last_warning: Option<tokio::time::Instant> = None;
    let mut batch: Vec<Span> = Vec::with_capacity(BATCH);
    let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let until = tokio::time::Instant::now() + INTERVAL;
        let mut next = Some(first);
        loop {
            match next.take() {
                Some(Message::Span(s)) => batch.push(*s),
                Some(Message::Flush(done)) => {
                    flushed.push(done);
                    break;
                }
                None => {}
            }
            if batch.len() >= BATCH {
                break;
            }
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(m)) => next = Some(m),
                Ok(None) | Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let n = batch.len();
            let request = ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(resource.clone()),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "assertd".to_owned(),
                            version: env!("CARGO_PKG_VERSION").to_owned(),
                            ..Default::default()
                        }),
                        spans: std::mem::take(&mut batch),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            match client.export(request).await {
                Ok(_) => telemetry::trace_spans_exported(n),
                Err(e) => {
                    telemetry::trace_spans_dropped("export_failed", n);
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        tracing::warn!(endpoint = %endpoint, error = %e, spans = n, "trace export failed; spans dropped");
                        last_warning = Some(tokio::time::Instant::now());
                    }
                }
            }
        }
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_parses() {
        let p = parse_traceparent(VALID.as_bytes()).unwrap();
        assert_eq!(p.trace_id[0], 0x4b);
        assert_eq!(p.span_id[7], 0xb7);
        assert!(p.sampled);
        assert!(!parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap().sampled);
        // A later version may carry more fields.
        assert!(parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later").is_some());
    }

    #[test]
    fn an_invalid_traceparent_is_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn notes_add_up_and_replace() {
        let n = Notes::default();
        n.add("assertd.assertions", 3);
        n.add("assertd.assertions", 4);
        n.string("assertd.client", "a");
        n.string("assertd.client", "b");
        let a = n.0.attributes.lock();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].value.as_ref().unwrap().value, Some(Value::IntValue(7)));
        assert_eq!(a[1].value.as_ref().unwrap().value, Some(Value::StringValue("b".into())));
    }

    #[test]
    fn server_faults_are_errors_and_caller_faults_are_not() {
        assert_eq!(status(tonic::Code::Internal).code, StatusCode::Error as i32);
        assert_eq!(status(tonic::Code::Unavailable).code, StatusCode::Error as i32);
        assert_eq!(status(tonic::Code::InvalidArgument).code, StatusCode::Unset as i32);
        assert_eq!(status(tonic::Code::Ok).code, StatusCode::Unset as i32);
    }
}
