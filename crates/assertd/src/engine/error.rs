//! The engine's error: a batch or registration that could not be
//! evaluated at all (a rejected assertion is a verdict instead).

use super::admission::Refusal;

/// Why the engine could not evaluate a batch at all (a rejected assertion
/// is a verdict, not an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The verification pool dropped the batch (a task panicked).
    #[error("verification worker failed")]
    PoolFailed,
    /// The admission budget was closed (a bug: it never is).
    #[error("admission closed")]
    AdmissionClosed,
    /// Refused before any work: over a size limit, or a budget full.
    #[error(transparent)]
    Refused(#[from] Refusal),
}
