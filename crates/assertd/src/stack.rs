//! The tower stack in front of every gRPC service on the main listener,
//! top to bottom:
//!
//! 1. [`RequestId`]: the caller's `x-request-id` (when sane) is put in the
//!    request's extensions for logs and echoed on every response.
//! 2. [`Metrics`]: `assertd_rpc_duration_seconds{rpc,code}` for the whole
//!    call (a stream: until its last message), `assertd_rpcs_in_flight`,
//!    and `message_too_large` refusals made by the codec; and, when tracing
//!    is on and the call sampled, its span (`trace`), whose [`trace::Notes`]
//!    go into the request's extensions for the handler.
//! 3. Deadline: tonic's server wraps this stack in its `GrpcTimeout`, which
//!    cancels a call when the caller's `grpc-timeout` expires; the engine
//!    then drops the work nobody waits for.
//! 4. [`Shed`]: a unary RPC takes one of `limits.max_concurrent_rpcs`
//!    slots, and `VerifyAssertions` is refused from its headers alone when
//!    not even the smallest batch callers offered lately would fit the wait
//!    target (the exact, batch-weighted admission follows in the handler,
//!    once the batch size is known).
//! 5. [`Auth`]: the caller's identity (client certificate or bearer token)
//!    and its grant for the route's RPC group, from the headers, before the
//!    body is read; the grant and the identity ([`Caller`]) go into the
//!    request's extensions for the handler (a stream re-checks the grant
//!    for every message, so a reload that revokes it takes effect at once).
//!
//! Refusals become statuses through `status`, like every other error.

mod budget;

use crate::authz::{Grant, Rpc};
use crate::engine::Engine;
use crate::status::RequestError;
use crate::telemetry::{self, InFlight};
use crate::tls::Peer;
use crate::trace;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};

type HttpRequest = http::Request<Body>;
type HttpResponse = http::Response<Body>;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health checks).
    Public,
    /// Any authenticated caller (reflection, unknown paths).
    Authenticated,
    /// Callers whose grant includes the group.
    Group(Rpc),
    /// Callers whose grant includes either group; the handler checks which
    /// one the request needs (IssueChallenge: `verify` for a sign-in
    /// challenge, `credentials.register` for a registration one).
    Either(Rpc, Rpc),
}

/// What the stack knows of one RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The metric label (`rpc`); `None`: not measured.
    pub name: Option<&'static str>,
    /// Who may call it.
    pub access: Access,
    /// A unary assertd RPC: it takes a `max_concurrent_rpcs` slot.
    pub unary: bool,
    /// It verifies assertions (weighed by the assertion budget).
    pub verifies: bool,
}

const fn rpc(name: &'static str, group: Rpc, unary: bool, verifies: bool) -> Route {
    Route { name: Some(name), access: Access::Group(group), unary, verifies }
}

/// The route of a request path.
pub fn route(path: &str) -> Route {
    match path {
        "/assertd.v1.VerificationService/VerifyAssertions" => rpc("VerifyAssertions", Rpc::Verify, true, true),
        "/assertd.v1.VerificationService/VerifyAssertionsStream" => rpc("VerifyAssertionsStream", Rpc::Verify, false, true),
        "/assertd.v1.VerificationService/IssueChallenge" => Route {
            name: Some("IssueChallenge"),
            access: Access::Either(Rpc::Verify, Rpc::CredentialsRegister),
            unary: true,
            verifies: false,
        },
        "/assertd.v1.VerificationService/BeginAuthentication" => rpc("BeginAuthentication", Rpc::Verify, true, false),
        "/assertd.v1.VerificationService/GetUserSignals" => rpc("GetUserSignals", Rpc::Verify, true, false),
        "/assertd.v1.CredentialService/RegisterCredential" => rpc("RegisterCredential", Rpc::CredentialsRegister, true, false),
        "/assertd.v1.CredentialService/BeginRegistration" => rpc("BeginRegistration", Rpc::CredentialsRegister, true, false),
        "/assertd.v1.CredentialService/PutCredential" => rpc("PutCredential", Rpc::CredentialsWrite, true, false),
        "/assertd.v1.CredentialService/RevokeCredential" => rpc("RevokeCredential", Rpc::CredentialsWrite, true, false),
        "/assertd.v1.CredentialService/DeleteCredential" => rpc("DeleteCredential", Rpc::CredentialsWrite, true, false),
        "/assertd.v1.CredentialService/GetCredential" => rpc("GetCredential", Rpc::CredentialsRead, true, false),
        "/assertd.v1.CredentialService/ListCredentials" => rpc("ListCredentials", Rpc::CredentialsRead, true, false),
        "/assertd.v1.CredentialService/GetCredentialStats" => rpc("GetCredentialStats", Rpc::CredentialsRead, true, false),
        "/assertd.v1.CredentialService/SetUserRisk" => rpc("SetUserRisk", Rpc::CredentialsWrite, true, false),
        "/assertd.v1.CredentialService/ClearUserRisk" => rpc("ClearUserRisk", Rpc::CredentialsWrite, true, false),
        "/assertd.v1.CredentialService/RevokeUserCredentials" => rpc("RevokeUserCredentials", Rpc::CredentialsWrite, true, false),
        "/assertd.v1.CredentialService/IssueTemporaryAccessPass" => rpc("IssueTemporaryAccessPass", Rpc::CredentialsRecover, true, false),
        "/assertd.v1.CredentialService/RevokeTemporaryAccessPass" => rpc("RevokeTemporaryAccessPass", Rpc::CredentialsRecover, true, false),
        "/assertd.v1.CredentialService/ListTemporaryAccessPasses" => rpc("ListTemporaryAccessPasses", Rpc::CredentialsRecover, true, false),
        "/assertd.v1.CredentialService/WatchEvents" => rpc("WatchEvents", Rpc::EventsRead, false, false),
        "/assertd.v1.CredentialService/PreviewPolicy" => rpc("PreviewPolicy", Rpc::CredentialsRead, false, false),
        "/assertd.v1.VerificationService/RedeemTemporaryAccessPass" => rpc("RedeemTemporaryAccessPass", Rpc::Verify, true, false),
        p if p.starts_with("/grpc.health.v1.Health/") => Route { name: None, access: Access::Public, unary: false, verifies: false },
        _ => Route { name: None, access: Access::Authenticated, unary: false, verifies: false },
    }
}

/// The stack, outermost first, around `inner` (tonic's router).
pub fn layer<S>(engine: Arc<Engine>) -> impl tower::Layer<S, Service = RequestId<Metrics<Shed<Auth<S>>>>> + Clone
where
    S: Clone,
{
    let shed_engine = engine.clone();
    tower::ServiceBuilder::new()
        .layer_fn(|inner| RequestId { inner })
        .layer_fn(|inner| Metrics { inner })
        .layer_fn(move |inner| Shed { inner, engine: shed_engine.clone() })
        .layer_fn(move |inner| Auth { inner, engine: engine.clone() })
        .into_inner()
}

/// The caller's `x-request-id`, as the handlers find it in the request's
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIdValue(pub String);

/// Layer 1: `x-request-id` in, and echoed out.
#[derive(Debug, Clone)]
pub struct RequestId<S> {
    inner: S,
}

impl<S> Service<HttpRequest> for RequestId<S>
where
    S: Service<HttpRequest, Response = HttpResponse> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = BoxFuture<HttpResponse, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: HttpRequest) -> Self::Future {
        // Only a sane value is logged and echoed: printable ASCII, 128 bytes.
        let id = req.headers().get("x-request-id").filter(|v| v.len() <= 128 && v.as_bytes().iter().all(u8::is_ascii_graphic)).cloned();
        if let Some(v) = &id
            && let Ok(s) = v.to_str()
        {
            req.extensions_mut().insert(RequestIdValue(s.to_owned()));
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            if let Some(v) = id {
                resp.headers_mut().insert("x-request-id", v);
            }
            Ok(resp)
        })
    }
}

/// Layer 2: latency and outcome of every assertd RPC.
#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
}

/// Records one call when its status is known (or it was dropped).
struct Finish {
    name: &'static str,
    started: Instant,
    _in_flight: InFlight,
    /// The call's span, when it is traced.
    span: Option<trace::RpcSpan>,
}

impl Finish {
    fn record(self, code: tonic::Code) {
        telemetry::rpc(self.name, code, self.started.elapsed());
        if let Some(span) = self.span {
            span.finish(code);
        }
        // A message over max_message_bytes is refused by the codec before
        // any handler runs: counted with the other refusals.
        crate::status::codec_refused(code);
    }
}

fn code_of(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers.get("grpc-status").map(|v| tonic::Code::from_bytes(v.as_bytes()))
}

/// A response body that records the call once its trailers (its status)
/// went out, or it was dropped before (the caller went away).
struct Observed {
    body: Body,
    finish: Option<Finish>,
}

impl http_body::Body for Observed {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().map(|t| code_of(t).unwrap_or(tonic::Code::Ok)),
            Poll::Ready(Some(Err(s))) => Some(s.code()),
            Poll::Ready(None) => Some(tonic::Code::Ok),
            Poll::Pending => None,
        };
        // Taken only once the status is known: a data frame leaves it.
        if let Some(code) = code
            && let Some(finish) = self.finish.take()
        {
            finish.record(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(finish) = self.finish.take() {
            finish.record(tonic::Code::Cancelled);
        }
    }
}

impl<S> Service<HttpRequest> for Metrics<S>
where
    S: Service<HttpRequest, Response = HttpResponse> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = BoxFuture<HttpResponse, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: HttpRequest) -> Self::Future {
        let Some(name) = route(req.uri().path()).name else { return Box::pin(self.inner.call(req)) };
        // Off, or not sampled: None, at the price of one load.
        let span = trace::start(req.uri().path(), req.headers());
        if let Some(s) = &span {
            if let Some(id) = req.extensions().get::<RequestIdValue>() {
                s.notes().string("assertd.request_id", id.0.clone());
            }
            req.extensions_mut().insert(s.notes().clone());
        }
        let finish = Finish { name, started: Instant::now(), _in_flight: InFlight::start(), span };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            // A trailers-only answer (every refusal) carries its status in
            // the headers.
            if let Some(code) = code_of(resp.headers()) {
                finish.record(code);
                return Ok(resp);
            }
            Ok(resp.map(|body| Body::new(Observed { body, finish: Some(finish) })))
        })
    }
}

/// Layer 4: refuses unary RPCs the server has no room for, before their
/// bodies are read or decoded. Under overload that keeps the price of a
/// refusal far below the price of the work it refuses.
#[derive(Debug, Clone)]
pub struct Shed<S> {
    inner: S,
    engine: Arc<Engine>,
}

impl<S> Service<HttpRequest> for Shed<S>
where
    S: Service<HttpRequest, Response = HttpResponse> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = BoxFuture<HttpResponse, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: HttpRequest) -> Self::Future {
        let route = route(req.uri().path());
        if !route.unary {
            // A stream's unfinished messages count against the same budget
            // as unary bodies: many streams stalled halfway through large
            // messages cannot pile up memory.
            let req = if route.verifies {
                req.map(|body| Body::new(budget::Budgeted::stream(body, self.engine.admission().bytes_held())))
            } else {
                req
            };
            return Box::pin(self.inner.call(req));
        }
        let admission = self.engine.admission();
        // A retry is not refused for want of room (it waits its turn in
        // line, see `Admission::admit_retry`), only for want of a slot.
        let retry = crate::engine::is_retry(req.headers().get(crate::engine::PREVIOUS_ATTEMPTS).map(|v| v.as_bytes()));
        let full = if route.verifies && !retry { admission.work_exhausted() } else { None };
        let slot = admission.rpc_slot().filter(|_| full.is_none());
        let Some(slot) = slot else {
            // Every refusal says when to come back: without pushback, callers
            // refused for want of a slot re-send at once, and the refusals
            // take the core (measured: 350 000 in 10 s at 64 calls in
            // flight). A slot frees when a call in progress finishes: about
            // the queue's wait, at least a millisecond.
            let retry_after = full.map_or_else(|| admission.queue_wait().max(std::time::Duration::from_millis(1)), |f| f.retry_after);
            let status: tonic::Status = RequestError::from(crate::engine::Refusal::Overloaded {
                shed: crate::engine::Shed::QueueWait,
                retry_after: Some(retry_after),
            })
            .into();
            return Box::pin(async move { Ok(status.into_http()) });
        };
        // The request's bytes count against `max_request_bytes_in_flight`
        // as they arrive, and are given back when the call has answered.
        let held = Arc::new(admission.bytes_held());
        let req = req.map(|body| Body::new(budget::Budgeted::unary(body, held.clone())));
        let fut = self.inner.call(req);
        Box::pin(async move {
            // The slot and the bytes are held until the handler has answered.
            let resp = fut.await;
            drop((slot, held));
            resp
        })
    }
}

/// Layer 5: authentication and the route's authorization.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    engine: Arc<Engine>,
}

/// Who a caller is: its connection's client certificate names and its
/// `authorization` header. Put in the request's extensions, so a stream can
/// re-check its grant against the policy in force for every message.
#[derive(Debug, Clone)]
pub struct Caller {
    certificate_names: Arc<[String]>,
    authorization: Option<http::HeaderValue>,
}

impl Caller {
    fn of(req: &HttpRequest) -> Self {
        Self {
            certificate_names: req.extensions().get::<Peer>().map_or_else(|| Arc::from(Vec::new()), |p| p.certificate_names.clone()),
            authorization: req.headers().get("authorization").cloned(),
        }
    }

    /// The caller's grant for `access` under the policy in force now
    /// (`None` for a public route).
    pub fn grant(&self, engine: &Engine, access: Access) -> Result<Option<Arc<Grant>>, tonic::Status> {
        let header = self.authorization.as_ref().map(|v| v.as_bytes());
        let policy = engine.reloadable();
        let granted = match access {
            Access::Public => return Ok(None),
            Access::Authenticated => policy.clients.authenticate(header, &self.certificate_names),
            Access::Group(rpc) => policy.clients.authorize(header, &self.certificate_names, rpc),
            Access::Either(a, b) => policy.clients.authenticate(header, &self.certificate_names).and_then(|g| {
                if g.may(a) || g.may(b) {
                    Ok(g)
                } else {
                    Err(crate::authz::Denied::PermissionDenied(format!(
                        "client {:?} may not call {} or {} RPCs",
                        g.client,
                        a.as_str(),
                        b.as_str()
                    )))
                }
            }),
        };
        granted.map(Some).map_err(tonic::Status::from)
    }
}

impl<S> Service<HttpRequest> for Auth<S>
where
    S: Service<HttpRequest, Response = HttpResponse> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = BoxFuture<HttpResponse, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: HttpRequest) -> Self::Future {
        let caller = Caller::of(&req);
        match caller.grant(&self.engine, route(req.uri().path()).access) {
            Ok(Some(g)) => {
                if let Some(notes) = req.extensions().get::<trace::Notes>() {
                    notes.string("assertd.client", g.client.to_string());
                }
                req.extensions_mut().insert(g);
                req.extensions_mut().insert(caller);
            }
            Ok(None) => {}
            Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
        }
        Box::pin(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests;
