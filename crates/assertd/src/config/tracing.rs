//! `[tracing]`: OpenTelemetry traces over OTLP/gRPC, off unless an endpoint
//! is set. What is traced and how is in `crate::trace`.

use super::invalid::Invalid;
use serde::Deserialize;
use tonic::codegen::http;

/// `[tracing]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingSection {
    /// The OTLP/gRPC collector, `http://host:port` (e.g. a collector agent
    /// on the node, `http://otel-collector:4317`). `None`: no traces, and no
    /// cost.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The share of calls without a sampled or unsampled `traceparent`
    /// (trace roots) that are traced, 0.0–1.0. A caller's sampling decision
    /// in `traceparent` is always followed.
    #[serde(default = "default_ratio")]
    pub sample_ratio: f64,
    /// `service.name` of the spans' resource.
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

fn default_ratio() -> f64 {
    0.01
}
fn default_service_name() -> String {
    "assertd".to_owned()
}

impl Default for TracingSection {
    fn default() -> Self {
        Self { otlp_endpoint: None, sample_ratio: default_ratio(), service_name: default_service_name() }
    }
}

impl TracingSection {
    /// Checks the section: a plain `http://` endpoint with a host, a ratio
    /// within 0–1, a service name.
    pub fn check(&self) -> Result<(), Invalid> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(Invalid::new("tracing.sample_ratio", "must be between 0.0 and 1.0"));
        }
        if self.service_name.is_empty() || self.service_name.len() > 255 {
            return Err(Invalid::new("tracing.service_name", "must be 1 to 255 bytes"));
        }
        let Some(endpoint) = &self.otlp_endpoint else { return Ok(()) };
        let uri: http::Uri =
            endpoint.parse().map_err(|e| Invalid::new("tracing.otlp_endpoint", format!("{endpoint:?} is not a URL: {e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(Invalid::new(
                    "tracing.otlp_endpoint",
                    "https is not supported: send to a collector agent on the node or in the pod (http://...), which forwards over TLS",
                ));
            }
            _ => return Err(Invalid::new("tracing.otlp_endpoint", format!("{endpoint:?} must start with http://"))),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(Invalid::new("tracing.otlp_endpoint", format!("{endpoint:?} names no host")));
        }
        Ok(())
    }
}
