//! Request bodies charged to `limits.max_request_bytes_in_flight`: a unary
//! call's whole body until it has answered ([`Budgeted`]), a stream's
//! messages until each has arrived whole ([`StreamBudgeted`]).

use crate::engine::admission::BytesHeld;
use crate::status::RequestError;
use crate::telemetry;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;

/// The status of a request refused for want of request-bytes budget.
fn out_of_bytes() -> tonic::Status {
    telemetry::rejected("request_bytes");
    let status: tonic::Status = RequestError::Overloaded(Some(std::time::Duration::from_millis(10))).into();
    tonic::Status::with_metadata(
        status.code(),
        "the server holds as many request bytes as limits.max_request_bytes_in_flight allows: retry shortly",
        status.metadata().clone(),
    )
}

/// A stream's request body: the bytes of each gRPC message are taken from
/// the request-bytes budget as they arrive and given back once the message
/// has arrived whole (it is then decoded and verified, one of the few the
/// stream has in flight). A frame with no room ends the stream with
/// RESOURCE_EXHAUSTED.
pub(super) struct StreamBudgeted {
    body: Body,
    held: BytesHeld,
    /// The current message's 5-byte gRPC prefix, as far as it arrived.
    header: [u8; 5],
    header_len: usize,
    /// Payload bytes of the current message still to come.
    remaining: u64,
    /// Bytes of the current message taken so far.
    message: u64,
}

impl StreamBudgeted {
    pub(super) fn new(body: Body, held: BytesHeld) -> Self {
        Self { body, held, header: [0; 5], header_len: 0, remaining: 0, message: 0 }
    }

    /// Follows the gRPC framing (a flag byte, a 4-byte length, the payload)
    /// through one data frame, giving back each message that completes in
    /// it.
    fn complete_messages(&mut self, mut data: &[u8]) {
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
                self.held.give(self.message);
                (self.header_len, self.message) = (0, 0);
            }
        }
    }
}

impl http_body::Body for StreamBudgeted {
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
            self.complete_messages(&data);
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

/// A request body whose bytes are taken from the request-bytes budget as
/// they arrive; a frame with no room ends the call with RESOURCE_EXHAUSTED
/// (a refusal, not a wait: calls waiting for each other's bytes could wait
/// for ever).
pub(super) struct Budgeted {
    body: Body,
    held: Arc<BytesHeld>,
}

impl Budgeted {
    pub(super) fn new(body: Body, held: Arc<BytesHeld>) -> Self {
        Self { body, held }
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
            && !self.held.take(data.len() as u64)
        {
            return Poll::Ready(Some(Err(out_of_bytes())));
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
