//! The options of a run and of a population, shared by the command line
//! and the modules that act on them.

use clap::{Parser, ValueEnum};

/// The key algorithm of a seeded population.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PopulationAlg {
    /// Keys derived from each credential's index.
    Ed25519,
    /// ES256 keys shared round-robin from a key file: each credential is
    /// still its own store row and cache entry with its own parsed key, and
    /// ring's ECDSA verification keeps no per-key state.
    Es256,
}

/// Closed or open loop.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Mode {
    /// N callers, each sending its next request when the last is answered.
    Closed,
    /// A fixed rate of requests, whatever the answers do.
    Open,
}

/// Options of `run`.
#[derive(Debug, Clone, Parser)]
#[allow(missing_docs)]
pub struct RunArgs {
    /// assertd's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub(crate) target: String,
    /// Relying party (must be configured on the server with --origin).
    #[arg(long, default_value = "login.example.com")]
    pub(crate) rp: String,
    /// Origin the assertions carry.
    #[arg(long, default_value = "https://login.example.com")]
    pub(crate) origin: String,
    /// Credentials to create (spread over the algorithms).
    #[arg(long, default_value_t = 64)]
    pub(crate) credentials: usize,
    /// Algorithms, comma-separated: es256, es384, eddsa, rs256, ps256.
    #[arg(long, default_value = "es256", value_delimiter = ',')]
    pub(crate) algs: Vec<String>,
    /// Percentage of assertions with a tampered signature.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) invalid_pct: f64,
    /// Percentage of assertions for unknown credentials.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) unknown_pct: f64,
    /// Assertions per request.
    #[arg(long, default_value_t = 64)]
    pub(crate) batch: usize,
    /// Closed or open loop.
    #[arg(long, value_enum, default_value = "closed")]
    pub(crate) mode: Mode,
    /// Closed loop: concurrent callers.
    #[arg(long, default_value_t = 4)]
    pub(crate) concurrency: usize,
    /// Open loop: requests per second.
    #[arg(long, default_value_t = 100.0)]
    pub(crate) rate: f64,
    /// Use VerifyAssertionsStream (one stream per caller) instead of unary.
    #[arg(long)]
    pub(crate) stream: bool,
    /// HTTP/2 connections to spread callers over.
    #[arg(long, default_value_t = 2)]
    pub(crate) connections: usize,
    /// Seconds of warm-up (sent, not counted).
    #[arg(long, default_value_t = 2.0)]
    pub(crate) warmup: f64,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) duration: f64,
    /// Stop after this many measured requests (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub(crate) requests: u64,
    /// Distinct pre-generated assertions to cycle through.
    #[arg(long, default_value_t = 4096)]
    pub(crate) pool: usize,
    /// Write the JSON report here.
    #[arg(long)]
    pub(crate) json: Option<std::path::PathBuf>,
    /// The server's PID, to report its CPU time.
    #[arg(long)]
    pub(crate) server_pid: Option<u32>,
    /// Open loop: most requests outstanding before new ones count as errors.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) max_outstanding: usize,
    /// Use N pre-imported seeded credentials (see gen-credentials) instead
    /// of creating --credentials through the API.
    #[arg(long)]
    pub(crate) population: Option<usize>,
    /// With --population: the ES256 key file given to gen-credentials
    /// (without it, the population is Ed25519).
    #[arg(long)]
    pub(crate) population_keys: Option<std::path::PathBuf>,
    /// With --population: pick each pooled assertion's credential from a
    /// Zipf distribution with this exponent (0: uniform).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) zipf: f64,
    /// The server's metrics address (host:port), to report the cache hit
    /// ratio and the server's memory.
    #[arg(long)]
    pub(crate) metrics: Option<String>,
    /// Send these assertions (a `peer-input` file) instead of generating
    /// them: their credentials are put first, every verdict must allow.
    #[arg(long)]
    pub(crate) assertions: Option<std::path::PathBuf>,
    /// Counting credentials, as security keys: every assertion carries its
    /// credential's next sign count (1, 2, 3, ...), so every verdict writes
    /// a counter. Each in-flight lane owns its own credentials (unary: one
    /// per caller; streaming: one per stream; open loop: --lanes), so the
    /// counts of one credential arrive in order. Each assertion is sent once:
    /// --pool must cover the run (a lane that runs out stops, and the report
    /// says `pool_exhausted`).
    #[arg(long)]
    pub(crate) counting: bool,
    /// Send each assertion as the browser's JSON (`response_json`, an
    /// AuthenticationResponseJSON) instead of the separate byte fields
    /// (with --credentials, with or without --counting).
    #[arg(long)]
    pub(crate) response_json: bool,
    /// Open loop with --counting: credential lanes (request n uses lane
    /// n mod lanes; two requests of one lane are `lanes` intervals apart).
    #[arg(long, default_value_t = 256)]
    pub(crate) lanes: usize,
    /// Closed loop: requests in flight. Unary: this many callers (instead
    /// of --concurrency); streaming: spread over --concurrency streams.
    #[arg(long)]
    pub(crate) in_flight: Option<usize>,
}

impl RunArgs {
    /// Closed loop: (callers, requests in flight per caller).
    pub(crate) fn callers(&self) -> (usize, usize) {
        let callers = self.concurrency.max(1);
        match self.in_flight {
            None if self.stream => (callers, 2),
            None => (callers, 1),
            Some(n) if self.stream => (callers.min(n.max(1)), n.max(1).div_ceil(callers.min(n.max(1)))),
            Some(n) => (n.max(1), 1),
        }
    }

    /// With --counting: how many lanes own credentials.
    pub(crate) fn counting_lanes(&self) -> usize {
        match self.mode {
            Mode::Closed => self.callers().0,
            Mode::Open => self.lanes.max(1),
        }
    }
}
