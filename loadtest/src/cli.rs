//! The command line: subcommands, options, and their dispatch.

use crate::args::{PopulationAlg, RunArgs};
use crate::drive::run;
use crate::population::gen_credentials;
use crate::population::peer_input;
use crate::report::calibrate;
use crate::report::print_summary;
use clap::Parser;
use clap::Subcommand;
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
        /// Algorithm: es256, es384, eddsa, rs256, ps256.
        #[arg(long, default_value = "es256")]
        alg: String,
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
        /// A rollout's population instead of one device-bound attested
        /// credential per user: two credentials per user, 40% synced, half
        /// attested (with the AAGUID vouched), four AAGUIDs
        /// (11111111-…, 22222222-…, 33333333-…, 44444444-…), all from the
        /// index (for `assertd policy preview` measurements).
        #[arg(long)]
        mixed: bool,
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

/// Runs the command line; the process exit code.
pub fn main_with(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Calibrate { seconds, alg } => match crate::population::alg(&alg) {
            Ok(alg) => {
                println!("{}", calibrate(seconds, alg));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("assertd-loadgen: {e}");
                ExitCode::FAILURE
            }
        },
        Command::GenCredentials { count, rp, alg, keys, mixed } => {
            match gen_credentials(count, &rp, alg, keys.as_deref(), mixed, std::io::stdout().lock()) {
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
