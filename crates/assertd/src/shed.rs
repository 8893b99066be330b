//! Load shedding before decoding: when the engine's admission limits are
//! full, a unary `VerifyAssertions` call is answered RESOURCE_EXHAUSTED from
//! its headers alone, without reading or decoding its body. Under overload
//! that keeps the price of a rejection far below the price of the work it
//! refuses, so goodput stays near capacity. (Calls that get past this check
//! still go through the exact, cost-weighted admission in the service.)
//! It also counts messages the codec refuses for their size.

use crate::engine::Engine;
use crate::telemetry;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;

const UNARY_VERIFY: &str = "/assertd.v1.VerificationService/VerifyAssertions";

/// Wraps the verification service.
#[derive(Debug, Clone)]
pub struct Shed<S> {
    inner: S,
    engine: Arc<Engine>,
}

impl<S> Shed<S> {
    /// Sheds in front of `inner`.
    pub fn new(inner: S, engine: Arc<Engine>) -> Self {
        Self { inner, engine }
    }
}

impl<S: NamedService> NamedService for Shed<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Shed<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if req.uri().path() == UNARY_VERIFY && self.engine.saturated() {
            telemetry::rejected("overloaded");
            telemetry::rpc("VerifyAssertions", tonic::Code::ResourceExhausted, std::time::Duration::ZERO);
            let status = tonic::Status::resource_exhausted("assertd is at capacity; retry with backoff");
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            // A message over max_message_bytes is refused by the codec before
            // any handler runs (a trailers-only OUT_OF_RANGE answer): count it
            // with the other refusals.
            if resp.headers().get("grpc-status").is_some_and(|v| v.as_bytes() == b"11") {
                telemetry::rejected("message_too_large");
            }
            Ok(resp)
        })
    }
}
