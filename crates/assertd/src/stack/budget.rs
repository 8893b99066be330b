//! Request bodies charged to `limits.max_request_bytes_in_flight`: a unary
//! call's whole body until it has answered, a stream's messages until each
//! has arrived whole ([`Budgeted`]).

use crate::engine::admission::BytesHeld;
use crate::engine::{Refusal, Shed};
use crate::status::RequestError;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;

/// The status of a request refused for want of request-bytes budget.
fn out_of_bytes() -> tonic::Status {
    RequestError::from(Refusal::Overloaded { shed: Shed::RequestBytes, retry_after: Some(std::time::Duration::from_millis(10)) }).into()
}

/// Where a stream's body stands in the gRPC framing (a flag byte, a 4-byte
/// length, the payload), so each message's bytes can be given back once it
/// has arrived whole.
#[derive(Default)]
struct Framing {
    /// The current message's 5-byte prefix, as far as it arrived.
    header: [u8; 5],
    header_len: usize,
    /// Payload bytes of the current message still to come.
    remaining: u64,
    /// Bytes of the current message taken so far.
    message: u64,
}

impl Framing {
    /// Follows one data frame; the bytes of the messages that completed in
    /// it.
    fn complete(&mut self, mut data: &[u8]) -> u64 {
        let mut done = 0;
        while !data.is_empty() {
            if self.header_len < 5 {
                let k = (5 - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + k].copy_from_slice(&data[..k]);
                self.header_len += k;
                self.message += k as u64;
                data = &data[k..];
                if self.header_len < 5 {
                    break;
                }
                let mut len = [0u8; 4];
                len.copy_from_slice(&self.header[1..]);
                self.remaining = u64::from(u32::from_be_bytes(len));
            } else {
                let k = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(data.len());
                self.remaining -= k as u64;
                self.message += k as u64;
                data = &data[k..];
            }
            if self.header_len == 5 && self.remaining == 0 {
                done += self.message;
                (self.header_len, self.message) = (0, 0);
            }
        }
        done
    }
}

/// A request body whose bytes are taken from the request-bytes budget as
/// they arrive; a frame with no room ends the call with RESOURCE_EXHAUSTED
/// (a refusal, not a wait: calls waiting for each other's bytes could wait
/// for ever). A unary call holds its bytes until it has answered; a stream
/// gives each message's bytes back once it has arrived whole (it is then
/// decoded and verified, one of the few the stream has in flight).
pub(super) struct Budgeted {
    body: Body,
    held: Arc<BytesHeld>,
    /// `Some` for a stream.
    framing: Option<Framing>,
}

impl Budgeted {
    /// A unary call's body.
    pub(super) fn unary(body: Body, held: Arc<BytesHeld>) -> Self {
        Self { body, held, framing: None }
    }

    /// A stream's body.
    pub(super) fn stream(body: Body, held: BytesHeld) -> Self {
        Self { body, held: Arc::new(held), framing: Some(Framing::default()) }
    }
}

impl http_body::Body for Budgeted {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            if !self.held.take(data.len() as u64) {
                return Poll::Ready(Some(Err(out_of_bytes())));
            }
            let data = data.clone();
            let this = &mut *self;
            if let Some(framing) = &mut this.framing {
                this.held.give(framing.complete(&data));
            }
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
