//! The one place where errors become gRPC statuses, and where refused
//! requests are counted (`assertd_rpcs_rejected_total{reason}`), each once:
//! nothing else calls `telemetry::rejected`.
//!
//! A rejected *assertion* is never an error: it is a verdict with a reason
//! code. Statuses are for requests that cannot be evaluated at all.

use crate::authz::Denied;
#[cfg(test)]
use crate::engine::Shed;
use crate::engine::{EngineError, Refusal};
use crate::telemetry;
use assertd_policy::ReasonCode;
use assertd_store::StoreError;
use tonic::Status;

/// Why a request is refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Refused before any work (INVALID_ARGUMENT over a size limit,
    /// RESOURCE_EXHAUSTED with pushback when a budget is full).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A required field is missing or a value is invalid (INVALID_ARGUMENT).
    #[error("{0}")]
    Invalid(String),
    /// The named credential does not exist (NOT_FOUND).
    #[error("no such credential")]
    NotFound,
    /// A create of a credential id that exists (ALREADY_EXISTS).
    #[error("the credential id is already registered at this relying party; to change it, replace it (replace = true) as its user")]
    AlreadyExists,
    /// A replace of another user's credential (FAILED_PRECONDITION).
    #[error("{0}")]
    Precondition(String),
    /// The store failed (UNAVAILABLE when it may recover, INTERNAL when its
    /// data is corrupt).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RequestError {
    /// The `assertd_rpcs_rejected_total` reason, for refusals counted there.
    fn rejected_reason(&self) -> Option<&'static str> {
        match self {
            Self::Refused(r) => Some(r.reason()),
            Self::Invalid(_) | Self::NotFound | Self::AlreadyExists | Self::Precondition(_) | Self::Store(_) => None,
        }
    }
}

impl From<RequestError> for Status {
    fn from(e: RequestError) -> Self {
        if let Some(reason) = e.rejected_reason() {
            telemetry::rejected(reason);
        }
        let message = e.to_string();
        match e {
            RequestError::Refused(Refusal::BatchTooLarge { .. }) | RequestError::Invalid(_) => Status::invalid_argument(message),
            RequestError::Refused(Refusal::Overloaded { retry_after, .. }) => {
                let mut status = Status::resource_exhausted(message);
                // gRPC's retry pushback: clients with a retry policy wait
                // this long before trying again.
                if let Some(after) = retry_after
                    && let Ok(v) = after.as_millis().max(1).to_string().parse()
                {
                    status.metadata_mut().insert("grpc-retry-pushback-ms", v);
                }
                status
            }
            RequestError::NotFound => Status::not_found(message),
            RequestError::AlreadyExists => Status::already_exists(message),
            RequestError::Precondition(_) => Status::failed_precondition(message),
            RequestError::Store(e @ (StoreError::Unavailable(_) | StoreError::Unreachable(_))) => Status::unavailable(e.to_string()),
            RequestError::Store(StoreError::Corrupt(m)) => Status::internal(m),
            RequestError::Store(other) => Status::internal(other.to_string()),
        }
    }
}

/// Counts a call the codec refused before any handler ran (a message over
/// `limits.max_message_bytes`: `OUT_OF_RANGE`), with the other refusals.
pub fn codec_refused(code: tonic::Code) {
    if code == tonic::Code::OutOfRange {
        telemetry::rejected("message_too_large");
    }
}

impl From<Denied> for Status {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Unauthenticated(m) => {
                telemetry::rejected("unauthenticated");
                Status::unauthenticated(m)
            }
            Denied::PermissionDenied(m) => {
                telemetry::rejected("permission_denied");
                Status::permission_denied(m)
            }
        }
    }
}

impl From<crate::engine::begin::BeginError> for Status {
    fn from(e: crate::engine::begin::BeginError) -> Self {
        use crate::engine::begin::BeginError;
        match e {
            BeginError::NoChallenges => RequestError::Precondition(e.to_string()).into(),
            BeginError::Invalid(m) => RequestError::Invalid(m).into(),
            BeginError::Target(ReasonCode::RpNotAuthorized | ReasonCode::ProfileNotAuthorized, m) => Denied::PermissionDenied(m).into(),
            BeginError::Target(_, m) => RequestError::Invalid(m).into(),
            BeginError::Random => Status::internal(e.to_string()),
            BeginError::Store(s) => RequestError::Store(s).into(),
        }
    }
}

impl From<crate::engine::access_pass::PassError> for Status {
    fn from(e: crate::engine::access_pass::PassError) -> Self {
        use crate::engine::access_pass::PassError;
        match e {
            PassError::Off => RequestError::Precondition(e.to_string()).into(),
            PassError::Invalid(m) => RequestError::Invalid(m).into(),
            PassError::Random => Status::internal(e.to_string()),
            PassError::Store(s) => RequestError::Store(s).into(),
        }
    }
}

impl From<EngineError> for Status {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Refused(r) => RequestError::Refused(r).into(),
            e => Status::internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn each_error_has_its_code() {
        let cases: Vec<(Status, Code)> = vec![
            (RequestError::from(Refusal::BatchTooLarge { n: 2, max: 1 }).into(), Code::InvalidArgument),
            (RequestError::from(Refusal::Overloaded { shed: Shed::QueueWait, retry_after: None }).into(), Code::ResourceExhausted),
            (RequestError::Invalid("x".into()).into(), Code::InvalidArgument),
            (RequestError::NotFound.into(), Code::NotFound),
            (RequestError::AlreadyExists.into(), Code::AlreadyExists),
            (RequestError::Precondition("x".into()).into(), Code::FailedPrecondition),
            (Denied::Unauthenticated("x".into()).into(), Code::Unauthenticated),
            (Denied::PermissionDenied("x".into()).into(), Code::PermissionDenied),
            (RequestError::from(StoreError::Unavailable("x".into())).into(), Code::Unavailable),
            (RequestError::from(StoreError::Unreachable("x".into())).into(), Code::Unavailable),
            (RequestError::from(StoreError::Corrupt("x".into())).into(), Code::Internal),
            (EngineError::PoolFailed.into(), Code::Internal),
            (EngineError::from(Refusal::Overloaded { shed: Shed::RegistrationShare, retry_after: None }).into(), Code::ResourceExhausted),
            (EngineError::from(Refusal::BatchTooLarge { n: 2, max: 1 }).into(), Code::InvalidArgument),
        ];
        for (status, code) in cases {
            assert_eq!(status.code(), code, "{status:?}");
        }
    }
}
