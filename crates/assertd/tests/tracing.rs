//! Traces: the binary with `[tracing] otlp_endpoint` sends its spans to an
//! OTLP/gRPC receiver served by this test (the generated
//! `TraceService` server of `opentelemetry-proto`, on loopback; no
//! OpenTelemetry Collector is packaged here). A caller's `traceparent`
//! decides (sampled: traced as a child of the caller's span; not sampled:
//! not traced); a call without one is a root, traced at `sample_ratio`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::time::Duration;
use tokio::sync::mpsc;

/// Collects every span it is sent, with its resource's service.name.
struct Receiver(mpsc::UnboundedSender<(String, Span)>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    let _ = self.0.send((service.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn receiver() -> (String, mpsc::UnboundedReceiver<(String, Span)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Receiver(tx)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), rx)
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn int(span: &Span, key: &str) -> i64 {
    match attr(span, key) {
        Some(Value::IntValue(n)) => *n,
        other => panic!("{key}: {other:?} in {span:?}"),
    }
}

fn string(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("{key}: {other:?} in {span:?}"),
    }
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn traced<T>(msg: T, flags: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(f) = flags {
        r.metadata_mut().insert("traceparent", format!("00-{TRACE}-{PARENT}-{f}").parse().unwrap());
        r.metadata_mut().insert("tracestate", "vendor=abc".parse().unwrap());
    }
    r.metadata_mut().insert("x-request-id", "trace-test-1".parse().unwrap());
    r
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, Span)>) -> (String, Span) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a span within 10 s").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_calls_are_exported_with_their_parent_and_batch() {
    let (endpoint, mut spans) = receiver().await;
    let config =
        format!("{}\n[tracing]\notlp_endpoint = \"{endpoint}\"\nsample_ratio = 1.0\nservice_name = \"assertd-test\"\n", default_config());
    let server = Server::start(&config);
    // A counting credential, so the batch writes its counter to the store.
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"alice", false)).await;
    let mut v = server.verifier().await;
    let good = |n: u32, id: &str| assertion(id, RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", 0x04, n));
    let mut bad = good(3, "bad");
    bad.signature[10] ^= 1;

    // 1. Sampled by the caller: one span, a child of the caller's.
    let r = v
        .verify_assertions(traced(
            pb::VerifyAssertionsRequest { assertions: vec![good(1, "a"), good(2, "b"), bad], ..Default::default() },
            Some("01"),
        ))
        .await;
    assert_eq!(r.unwrap().into_inner().verdicts.len(), 3);
    // The PutCredential above is a root, traced at ratio 1.0: skip it.
    let (service, put_span) = next(&mut spans).await;
    assert_eq!(service, "assertd-test");
    assert_eq!(put_span.name, "assertd.v1.CredentialService/PutCredential");
    assert!(put_span.parent_span_id.is_empty());
    assert_eq!(put_span.trace_id.len(), 16);
    let (_, span) = next(&mut spans).await;
    assert_eq!(span.name, "assertd.v1.VerificationService/VerifyAssertions");
    assert_eq!(span.trace_id, hex(TRACE));
    assert_eq!(span.parent_span_id, hex(PARENT));
    assert_eq!(span.trace_state, "vendor=abc");
    assert_eq!(span.kind, 2, "SERVER");
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    assert_eq!(string(&span, "rpc.system"), "grpc");
    assert_eq!(string(&span, "rpc.service"), "assertd.v1.VerificationService");
    assert_eq!(string(&span, "rpc.method"), "VerifyAssertions");
    assert_eq!(int(&span, "rpc.grpc.status_code"), 0);
    assert_eq!(string(&span, "assertd.request_id"), "trace-test-1");
    assert_eq!(string(&span, "assertd.client"), "-", "no [[clients]]: the open grant");
    assert_eq!(int(&span, "assertd.assertions"), 3);
    assert_eq!(int(&span, "assertd.verdicts.allow"), 2);
    assert_eq!(int(&span, "assertd.verdicts.deny"), 1);
    match attr(&span, "assertd.store.seconds") {
        Some(Value::DoubleValue(s)) => assert!(*s > 0.0 && *s < 10.0, "{s}"),
        other => panic!("store time: {other:?}"),
    }

    // 2. Not sampled by the caller: no span. 3. A stream, sampled: one span
    // for the whole stream, its messages and verdicts added up.
    let r =
        v.verify_assertions(traced(pb::VerifyAssertionsRequest { assertions: vec![good(4, "c")], ..Default::default() }, Some("00"))).await;
    assert_eq!(r.unwrap().into_inner().verdicts[0].decision(), pb::Decision::Allow);
    let messages = vec![
        pb::VerifyAssertionsStreamRequest { assertions: vec![good(5, "d")], ..Default::default() },
        pb::VerifyAssertionsStreamRequest { assertions: vec![good(6, "e"), good(6, "replayed")], ..Default::default() },
    ];
    let mut out = v.verify_assertions_stream(traced(tokio_stream::iter(messages), Some("01"))).await.unwrap().into_inner();
    while out.message().await.unwrap().is_some() {}
    let (_, span) = next(&mut spans).await;
    assert_eq!(span.name, "assertd.v1.VerificationService/VerifyAssertionsStream", "the unsampled call made no span");
    assert_eq!(int(&span, "assertd.messages"), 2);
    assert_eq!(int(&span, "assertd.assertions"), 3);
    assert_eq!(int(&span, "assertd.verdicts.allow"), 2);
    assert_eq!(int(&span, "assertd.verdicts.deny"), 1);

    // 4. A refused call is traced with its status.
    let too_many = pb::VerifyAssertionsRequest { assertions: vec![good(7, "x"); 2000], ..Default::default() };
    let e = v.verify_assertions(traced(too_many, Some("01"))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let (_, span) = next(&mut spans).await;
    assert_eq!(int(&span, "rpc.grpc.status_code"), tonic::Code::InvalidArgument as i64);

    let metrics = server.scrape();
    assert!(metrics.lines().any(|l| l.starts_with("assertd_trace_spans_exported_total") && !l.ends_with(" 0")), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_sampled_parent_a_zero_ratio_traces_nothing_and_a_dead_collector_costs_no_call() {
    // Nothing listens on the endpoint: exports fail, calls do not.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = format!("{}\n[tracing]\notlp_endpoint = \"http://{dead}\"\nsample_ratio = 0.0\n", default_config());
    let server = Server::start(&config);
    let a = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &a, b"bob", false)).await;
    let mut v = server.verifier().await;
    for n in 1..=3 {
        let one = assertion("a", RP, &a.credential_id, b"c", a.assert(RP, ORIGIN, b"c", 0x04, n));
        let flags = (n == 3).then_some("01");
        let r =
            v.verify_assertions(traced(pb::VerifyAssertionsRequest { assertions: vec![one], ..Default::default() }, flags)).await.unwrap();
        assert_eq!(r.into_inner().verdicts[0].decision(), pb::Decision::Allow);
    }
    // The one sampled call's span could not be sent: dropped and counted.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = server.scrape();
        if m.lines().any(|l| l.starts_with("assertd_trace_spans_dropped_total{reason=\"export_failed\"} 1")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no export failure counted:\n{m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn a_bad_tracing_section_names_its_key() {
    for (section, key) in [
        ("otlp_endpoint = \"https://collector:4317\"", "tracing.otlp_endpoint"),
        ("otlp_endpoint = \"collector:4317\"", "tracing.otlp_endpoint"),
        ("otlp_endpoint = \"http://collector:4317\"\nsample_ratio = 1.5", "tracing.sample_ratio"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("assertd.toml");
        std::fs::write(&path, format!("{}\n[tracing]\n{section}\n", default_config())).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_assertd")).args(["config", "check"]).arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(key), "{section}: {stderr}");
    }
}
