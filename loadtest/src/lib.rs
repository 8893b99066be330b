//! assertd-loadgen: drives a running assertd over gRPC and checks every
//! verdict it gets back.
//!
//! * `calibrate`: raw `ring` ES256 verifications per second on this thread,
//!   the reference a run is compared with (pin both with `taskset`).
//! * `run`: loads credentials through `CredentialService`, pre-generates a
//!   pool of assertions with a software authenticator (valid, tampered,
//!   unknown-credential, in the mix asked for; counters stay 0 so each can
//!   be sent again and again), then sends batches closed-loop (N callers) or
//!   open-loop (a fixed rate, latency measured from the intended send time,
//!   so a stalled server cannot hide its queueing), unary or streaming.
//!   Prints live progress, then a summary table, and writes a JSON report.
//!   Exits 1 if any verdict differs from what was expected for its
//!   assertion (a fast wrong answer is a failure).

mod args;
mod checks;
mod cli;
mod drive;
mod generator;
mod population;
mod report;

pub use args::{Mode, PopulationAlg, RunArgs};
pub use cli::{Cli, main_with};
pub use drive::{run, run_until};
pub use population::gen_credentials;
