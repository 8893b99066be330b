//! Logging: stderr (text or JSON lines) and the audit stream.

/// Sets up logging to stderr: `ASSERTD_LOG` (or `RUST_LOG`) filters,
/// `ASSERTD_LOG_FORMAT=json` switches to JSON lines. With
/// `ASSERTD_AUDIT_LOG=PATH`, the audit events (target `assertd::audit`:
/// credential writes and registrations, revocations, risk flags) go to that
/// file instead, as JSON lines appended one write per event, whatever the
/// log filter: a stream of its own for the audit trail.
pub fn init_logging() -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ASSERTD_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let audit = match std::env::var_os("ASSERTD_AUDIT_LOG").filter(|p| !p.is_empty()) {
        None => None,
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            Some(options.open(&path).map_err(|e| format!("ASSERTD_AUDIT_LOG {}: {e}", std::path::Path::new(&path).display()))?)
        }
    };
    let json = std::env::var("ASSERTD_LOG_FORMAT").is_ok_and(|f| f == "json");
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing::subscriber::set_global_default(log_subscriber(filter, audit, json, ansi)).map_err(|e| e.to_string())
}

/// The log subscriber: the main log on stderr under `filter`, and the
/// audit events in `audit` (then not in the main log) when given.
///
/// One filter per layer, never one filter nested in another: nested
/// per-layer filters left every callsite's interest undecided, so the
/// registry built and dropped the disabled spans of every call (h2's,
/// tonic's, the handlers' debug spans), measured at ~14% of the server's
/// CPU with single-assertion calls.
fn log_subscriber(
    filter: tracing_subscriber::EnvFilter,
    audit: Option<std::fs::File>,
    json: bool,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync> {
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::prelude::*;
    let main = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
    let main = if json { main.json().boxed() } else { main.boxed() };
    match audit {
        None => Box::new(tracing_subscriber::registry().with(main.with_filter(filter))),
        Some(file) => {
            let audit = tracing_subscriber::fmt::layer()
                .json()
                .with_ansi(false)
                .with_writer(std::sync::Arc::new(file))
                .with_filter(filter_fn(|m| m.target() == AUDIT_TARGET));
            let not_audit = filter_fn(|m| m.target() != AUDIT_TARGET);
            Box::new(tracing_subscriber::registry().with(main.with_filter(filter.and(not_audit))).with(audit))
        }
    }
}

/// The tracing target of audit events.
pub const AUDIT_TARGET: &str = "assertd::audit";

#[cfg(test)]
mod log_tests {
    use super::*;

    /// Disabled spans are not built: with `warn`, a debug span on the hot
    /// path is disabled, with and without the audit file (nested per-layer
    /// filters used to build every one of them).
    #[test]
    fn disabled_spans_are_not_built() {
        for audit in [None, Some(tempfile::tempfile().unwrap())] {
            let with_audit = audit.is_some();
            let sub = log_subscriber(tracing_subscriber::EnvFilter::new("warn"), audit, false, false);
            tracing::subscriber::with_default(sub, || {
                let span = tracing::debug_span!("hot_path", batch = 64);
                assert!(span.is_disabled(), "a debug span was built under warn (audit file: {with_audit})");
                assert!(tracing::info_span!("also_off").is_disabled());
                assert!(tracing::enabled!(tracing::Level::WARN));
            });
        }
    }
}
