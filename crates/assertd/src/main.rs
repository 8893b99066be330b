//! The `assertd` command line.

use assertd::config::Config;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: the batch path allocates per assertion (decoded fields,
/// verdicts); glibc's malloc showed as ~4% of the server's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// assertd: verifies WebAuthn / passkey assertions in batches over gRPC.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC service (embedded SQLite store, no TLS, loopback by default).
    Serve {
        /// Configuration file (TOML). Flags and environment override it.
        #[arg(long, env = "ASSERTD_CONFIG")]
        config: Option<PathBuf>,
        /// gRPC listen address [default: 127.0.0.1:50051].
        #[arg(long, env = "ASSERTD_LISTEN")]
        listen: Option<SocketAddr>,
        /// Prometheus /metrics listen address [default: 127.0.0.1:9464].
        #[arg(long, env = "ASSERTD_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
        /// Data directory of the embedded store [default: ./data].
        #[arg(long, env = "ASSERTD_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Serve plaintext gRPC on a non-loopback address (TLS terminated
        /// by a mesh sidecar); same as `insecure_allow_plaintext = true`.
        #[arg(long, alias = "allow-plaintext", env = "ASSERTD_INSECURE_ALLOW_PLAINTEXT")]
        insecure_allow_plaintext: bool,
        /// Serve a non-loopback address without `[[clients]]`: any caller
        /// may write credentials; same as `insecure_allow_unauthenticated =
        /// true`.
        #[arg(long, env = "ASSERTD_INSECURE_ALLOW_UNAUTHENTICATED")]
        insecure_allow_unauthenticated: bool,
    },
    /// Migrate the store's schema to this release's and exit (for a
    /// migration step before the rollout, when serving replicas run with
    /// `store.migrate = false` and no DDL rights).
    Migrate {
        /// Configuration file: its [store] (and data_dir) are used.
        #[arg(long, env = "ASSERTD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Copy the embedded SQLite store to a file while the server runs (one
    /// consistent moment, checked, then moved into place). PostgreSQL:
    /// use pg_dump or the database's own backups.
    Backup(assertd::cli::BackupArgs),
    /// Manage stored credentials offline.
    Credentials {
        #[command(subcommand)]
        command: CredentialsCommand,
    },
    /// Ask a running assertd's gRPC health service; exits 0 when SERVING
    /// (for exec probes, `helm test`, scripts).
    Health {
        /// The server's gRPC address.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        target: String,
        /// Health service name: "" (overall), "readiness", "liveness", or a
        /// gRPC service name.
        #[arg(long, default_value = "")]
        service: String,
        /// Seconds to wait for an answer.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Passkey policy: what a change would do before it is made.
    Policy {
        #[command(subcommand)]
        command: assertd::cli::PolicyCommand,
    },
    /// Reports for people: adoption as a self-contained HTML page.
    Report {
        #[command(subcommand)]
        command: assertd::cli::ReportCommand,
    },
    /// FIDO metadata: the serial in force.
    Metadata {
        #[command(subcommand)]
        command: MetadataCommand,
    },
}

#[derive(Debug, Subcommand)]
enum MetadataCommand {
    /// Make the configured metadata file's serial (no) the one in force,
    /// even when it is lower: a deliberate rollback to an older BLOB (it
    /// lifts the revocations reported since). Replicas then start, and
    /// reload, with that file. Audited.
    Accept {
        /// Configuration file: its [metadata] and [store] are used.
        #[arg(long, env = "ASSERTD_CONFIG")]
        config: PathBuf,
        /// Data directory of the embedded store [default: the config's].
        #[arg(long, env = "ASSERTD_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file and print the effective profiles; exits 1 if
    /// it is invalid.
    Check {
        /// The file.
        file: PathBuf,
    },
    /// Print the relying party's `/.well-known/webauthn` document (WebAuthn
    /// L3 §5.11, related origins) from its configured origins, for the
    /// gateway to serve at `https://RP_ID/.well-known/webauthn` as
    /// `application/json`; exits 1 when the RP needs none or browsers
    /// would not honour it (more than five registrable origin labels).
    WellKnown {
        /// Configuration file.
        #[arg(long, env = "ASSERTD_CONFIG")]
        config: PathBuf,
        /// The relying party ID.
        #[arg(long)]
        rp: String,
    },
}

#[derive(Debug, Subcommand)]
enum CredentialsCommand {
    /// Bulk-load credential records from a JSON array or JSON Lines file
    /// into the configured store (SQLite or PostgreSQL).
    Import {
        /// The file.
        file: PathBuf,
        /// Configuration file: its [store] (and data_dir) are used.
        #[arg(long, env = "ASSERTD_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory of the embedded store [default: ./data].
        #[arg(long, env = "ASSERTD_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Replace credentials that already exist, as PutCredential with
        /// `replace` does: only of the same user (never moved to another),
        /// a revoked one stays revoked, its sign count never goes back.
        /// Without it, an id that exists stops the import before anything
        /// is written.
        #[arg(long)]
        replace: bool,
    },
    /// Erase one credential (e.g. for an erasure request); exits 1 if it
    /// does not exist. Audited like the API's DeleteCredential.
    Delete {
        /// The relying party.
        #[arg(long)]
        rp_id: String,
        /// The credential ID, base64url (as in the import format; it may
        /// start with '-').
        #[arg(long, allow_hyphen_values = true)]
        credential_id: String,
        /// Configuration file: its [store] (and data_dir) are used.
        #[arg(long, env = "ASSERTD_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory of the embedded store [default: ./data].
        #[arg(long, env = "ASSERTD_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Write every stored credential as JSON Lines (the import format).
    Export {
        /// Output file [default: standard output].
        file: Option<PathBuf>,
        /// Configuration file: its [store] (and data_dir) are used.
        #[arg(long, env = "ASSERTD_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory of the embedded store [default: ./data].
        #[arg(long, env = "ASSERTD_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

/// The config file (parsed; compiled where it is used), or the defaults.
pub(crate) fn load(config: Option<PathBuf>) -> Result<Config, String> {
    match config {
        Some(p) => Config::load(&p).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = assertd::telemetry::init_logging() {
        eprintln!("assertd: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("assertd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { config, listen, metrics_listen, data_dir, insecure_allow_plaintext, insecure_allow_unauthenticated } => {
                let mut c = load(config.clone())?;
                c.listen = listen.unwrap_or(c.listen);
                c.metrics_listen = metrics_listen.unwrap_or(c.metrics_listen);
                c.data_dir = data_dir.unwrap_or(c.data_dir);
                c.insecure_allow_plaintext |= insecure_allow_plaintext;
                c.insecure_allow_unauthenticated |= insecure_allow_unauthenticated;
                // Compiled after the flags: they can make a valid file unsafe
                // (e.g. --listen 0.0.0.0).
                let policy = c.compile().map_err(|e| match &config {
                    Some(p) => assertd::config::ConfigError::invalid(p, e).to_string(),
                    None => format!("invalid settings: {e}"),
                })?;
                assertd::server::serve(c, policy, config, assertd::server::shutdown_signal()).await.map_err(|e| e.to_string())
            }
            Command::Health { target, service, timeout } => {
                let status = tokio::time::timeout(std::time::Duration::from_secs(timeout), async {
                    let channel = tonic::transport::Channel::from_shared(target.clone())
                        .map_err(|e| e.to_string())?
                        .connect()
                        .await
                        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
                    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
                    let r =
                        client.check(tonic_health::pb::HealthCheckRequest { service: service.clone() }).await.map_err(|e| e.to_string())?;
                    Ok::<_, String>(r.into_inner().status())
                })
                .await
                .map_err(|_| format!("no answer from {target} within {timeout} s"))??;
                println!("{service:?}: {}", status.as_str_name());
                if status == tonic_health::pb::health_check_response::ServingStatus::Serving {
                    Ok(())
                } else {
                    Err(format!("{service:?} is {}", status.as_str_name()))
                }
            }
            Command::Migrate { config } => {
                let mut c = load(config)?;
                c.store.migrate = true;
                assertd::server::open_tool_store(&c).await.map_err(|e| format!("migrate: {e}"))?;
                println!("the {:?} store's schema is current", c.store.backend);
                Ok(())
            }
            Command::Metadata { command: MetadataCommand::Accept { config, data_dir } } => {
                let (mut c, policy) = Config::load_compiled(&config).map_err(|e| e.to_string())?;
                c.data_dir = data_dir.unwrap_or(c.data_dir);
                let m = policy.metadata.as_ref().ok_or("the config has no [metadata]")?;
                let store = assertd::server::open_tool_store(&c).await.map_err(|e| e.to_string())?;
                let number = m.metadata.number;
                let before = store.raise_metadata_serial(0, assertd::engine::now_ms()).await.map_err(|e| e.to_string())?;
                store.set_metadata_serial(number, assertd::engine::now_ms()).await.map_err(|e| e.to_string())?;
                tracing::warn!(target: "assertd::audit", action = "metadata_accept", client = "cli", number, before, "metadata serial set");
                println!("the metadata serial in force is now {number} (was {before}); running replicas take it at their next reload");
                Ok(())
            }
            Command::Policy { command } => assertd::cli::policy(command).await,
            Command::Backup(args) => assertd::cli::backup(args, load),
            Command::Report { command } => assertd::cli::report(command).await,
            Command::Config { command: ConfigCommand::WellKnown { config, rp } } => {
                let (c, _) = Config::load_compiled(&config).map_err(|e| e.to_string())?;
                let entry = c
                    .relying_parties
                    .iter()
                    .find(|r| r.id == rp)
                    .ok_or_else(|| format!("relying party {rp:?} is not in {}", config.display()))?;
                let w = assertd::config::well_known::well_known(&entry.id, &entry.origins)?;
                for (origin, why) in &w.skipped {
                    eprintln!("left out {origin}: {why}");
                }
                eprintln!("registrable origin labels: {} of {}", w.labels.join(", "), assertd::config::well_known::MAX_LABELS);
                println!("{}", w.json);
                Ok(())
            }
            Command::Config { command: ConfigCommand::Check { file } } => {
                let (c, policy) = Config::load_compiled(&file).map_err(|e| e.to_string())?;
                print!("{}", c.describe(&policy)?);
                Ok(())
            }
            Command::Credentials { command: CredentialsCommand::Import { file, config, data_dir, replace } } => {
                use assertd::import::ImportMode;
                let mut c = load(config)?;
                c.data_dir = data_dir.unwrap_or(c.data_dir);
                let store = assertd::server::open_tool_store(&c).await.map_err(|e| e.to_string())?;
                let mode = if replace { ImportMode::Replace } else { ImportMode::Create };
                let n = assertd::import::import(&file, store, assertd::engine::now_ms(), mode)
                    .await
                    .map_err(|e| format!("import {}: {e}", file.display()))?;
                tracing::info!(target: "assertd::audit", action = "import", client = "cli", created = n.created, replaced = n.replaced, "credentials import");
                println!(
                    "imported {} credentials into the {:?} store ({} created, {} replaced)",
                    n.created + n.replaced,
                    c.store.backend,
                    n.created,
                    n.replaced
                );
                Ok(())
            }
            Command::Credentials { command: CredentialsCommand::Delete { rp_id, credential_id, config, data_dir } } => {
                use base64::Engine as _;
                let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(credential_id.trim_end_matches('='))
                    .map_err(|e| format!("--credential-id is not base64url: {e}"))?;
                let mut c = load(config)?;
                c.data_dir = data_dir.unwrap_or(c.data_dir);
                let store = assertd::server::open_tool_store(&c).await.map_err(|e| e.to_string())?;
                let deleted = store.delete(&rp_id, &id).await.map_err(|e| e.to_string())?;
                let deleted = deleted.ok_or_else(|| format!("no credential {credential_id} at {rp_id:?}"))?;
                tracing::info!(target: "assertd::audit", action = "delete", client = "cli", rp_id = %rp_id, credential_id = %credential_id, "credential delete");
                // Watchers (and Shared Signals receivers) hear of it as of
                // the API's DeleteCredential: an erasure ends sessions too.
                let happened = assertd::engine::events::Happened {
                    kind: assertd::engine::events::Kind::CredentialDeleted,
                    rp_id: &deleted.rp_id,
                    user_handle: &deleted.user_handle,
                    credential_id: &deleted.credential_id,
                    actor: "cli",
                    detail: "assertd credentials delete".into(),
                    facts: assertd::engine::events::Facts::of_credential(&deleted, "admin"),
                };
                if let Err(e) = store.append_events(vec![happened.at(assertd::engine::now_ms())]).await {
                    eprintln!("deleted, but the event log did not take the deletion (watchers will not hear of it): {e}");
                }
                println!("deleted credential {credential_id} of relying party {:?}", deleted.rp_id);
                Ok(())
            }
            Command::Credentials { command: CredentialsCommand::Export { file, config, data_dir } } => {
                let mut c = load(config)?;
                c.data_dir = data_dir.unwrap_or(c.data_dir);
                let store = assertd::server::open_tool_store(&c).await.map_err(|e| e.to_string())?;
                let n = match &file {
                    Some(path) => {
                        let f = std::fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                        assertd::import::export(store.as_ref(), &mut std::io::BufWriter::new(f)).await?
                    }
                    None => assertd::import::export(store.as_ref(), &mut std::io::BufWriter::new(std::io::stdout())).await?,
                };
                eprintln!("exported {n} credentials");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("assertd: {e}");
            ExitCode::FAILURE
        }
    }
}
