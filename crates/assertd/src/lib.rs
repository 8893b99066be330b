//! The assertd server: configuration, the batch verification engine, the
//! tonic services, telemetry and the CLI's commands.
//!
//! What this crate does **not** do: WebAuthn parsing and verification
//! (`assertd-verify`), policy (`assertd-policy`), storage
//! (`assertd-store`). It wires them to threads, sockets and signals.

pub mod authz;
pub mod cli;
pub mod config;
pub mod convert;
pub mod engine;
pub mod import;
pub mod preview;
pub mod report;
pub mod server;
pub mod service;
pub mod signals;
pub mod stack;
pub mod status;
pub mod telemetry;
pub mod tls;
pub mod trace;
