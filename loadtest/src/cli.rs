//! The command line: subcommands, options, and their dispatch.

use crate::drive::run;
use crate::population::gen_credentials;
use crate::population::peer_input;
use crate::report::calibrate;
use crate::report::print_summary;
use clap::Parser;
use clap::Subcommand;
use clap::ValueEnum;
use std::process::ExitCode;

/// The command line.
#[derive(Debug, Parser)]
#[command(version, about = "Load generator for assertd")]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Raw ring ES256 verifications per second on one thread.
    Calibrate {
        /// Seconds to measure.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Load the credentials, then run the load.
    Run(Box<RunArgs>),
    /// Write an import file (JSON Lines) of N credentials for
    /// `run --population N`: Ed25519 keys derived from each index, or
    /// ES256 keys from a key file (credential i uses key i mod its length).
    GenCredentials {
        /// How many.
        #[arg(long)]
        count: usize,
        /// Relying party.
        #[arg(long, default_value = "login.example.com")]
        rp: String,
        /// Key algorithm.
        #[arg(long, value_enum, default_value = "ed25519")]
        alg: PopulationAlg,
        /// ES256: the key file to create (PKCS#8, base64url, one per line),
        /// which `run --population-keys` reads back.
        #[arg(long)]
        keys: Option<std::path::PathBuf>,
    },
    /// Write ES256 assertions with their credentials as a JSON array (all
    /// byte fields base64url), the shared input of the peer comparison in
    /// benches/peers/.
    PeerInput {
        /// Assertions.
        #[arg(long, default_value_t = 2000)]
        count: usize,
        /// Distinct credentials they are spread over.
        #[arg(long, default_value_t = 100)]
        credentials: usize,
    },
}

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
}

/// Runs the command line; the process exit code.
pub fn main_with(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Calibrate { seconds } => {
            println!("{}", calibrate(seconds));
            ExitCode::SUCCESS
        }
        Command::GenCredentials { count, rp, alg, keys } => {
            match gen_credentials(count, &rp, alg, keys.as_deref(), std::io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("assertd-loadgen: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::PeerInput { count, credentials } => {
            println!("{}", peer_input(count, credentials.max(1)));
            ExitCode::SUCCESS
        }
        Command::Run(args) => {
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("assertd-loadgen: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let json = args.json.clone();
            match rt.block_on(run(*args)) {
                Err(e) => {
                    eprintln!("assertd-loadgen: {e}");
                    ExitCode::FAILURE
                }
                Ok(report) => {
                    print_summary(&report);
                    if let Some(path) = json
                        && let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap_or_default())
                    {
                        eprintln!("assertd-loadgen: cannot write {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                    println!("{report}");
                    if report["mismatches"].as_u64().unwrap_or(1) > 0 || report["assertions"].as_u64() == Some(0) {
                        eprintln!("assertd-loadgen: FAILED: wrong verdicts or no answers");
                        return ExitCode::FAILURE;
                    }
                    ExitCode::SUCCESS
                }
            }
        }
    }
}
