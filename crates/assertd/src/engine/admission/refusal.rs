//! What a refused request is told: which budget refused it, and when to
//! come back.

use std::time::Duration;

/// A request refused before any work, as a whole (a rejected assertion is
/// a verdict instead): over a size limit, or a budget full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// More assertions than `limits.max_batch_size` (INVALID_ARGUMENT).
    #[error("batch of {n} assertions exceeds max_batch_size {max}")]
    BatchTooLarge {
        /// Assertions sent.
        n: usize,
        /// The limit.
        max: usize,
    },
    /// A budget is full (RESOURCE_EXHAUSTED); room is expected after about
    /// `retry_after` (`grpc-retry-pushback-ms`).
    #[error("{}", .shed.message())]
    Overloaded {
        /// Which budget.
        shed: Shed,
        /// When to try again.
        retry_after: Option<Duration>,
    },
}

impl Refusal {
    /// The `assertd_rpcs_rejected_total` reason.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Refusal::BatchTooLarge { .. } => "batch_too_large",
            Refusal::Overloaded { shed, .. } => shed.reason(),
        }
    }
}

/// Which budget shed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// The pool's queue wait (`limits.max_queue_wait_ms`).
    QueueWait,
    /// `limits.max_request_bytes_in_flight`.
    RequestBytes,
    /// The registrations' share of the pool.
    RegistrationShare,
}

impl Shed {
    /// The `assertd_rpcs_rejected_total` reason.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Shed::QueueWait => "overloaded",
            Shed::RequestBytes => "request_bytes",
            Shed::RegistrationShare => "registration_share",
        }
    }

    pub(crate) fn message(self) -> &'static str {
        match self {
            Shed::QueueWait => "assertd is at capacity; retry with backoff",
            Shed::RequestBytes => "the server holds as many request bytes as limits.max_request_bytes_in_flight allows: retry shortly",
            Shed::RegistrationShare => "registrations are using their share of the verification pool; retry with backoff",
        }
    }
}
