//! The command line's admin commands that read the store offline:
//! `assertd policy preview` and `assertd report adoption` (the rest are in
//! `main.rs`).

use crate::config::{Config, ConfigError};
use crate::preview::{Policy, UsersWanted};
use clap::Subcommand;
use std::path::{Path, PathBuf};

/// `assertd policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Judge every stored credential under a candidate config (as a clean
    /// sign-in would be judged) and, with --in-force, under the config in
    /// force: per relying party and profile, the credentials it would refuse
    /// and why, and the users it would leave with no usable credential.
    /// Reads the store the candidate names; changes nothing.
    Preview {
        /// The candidate config file (its `[store]` is read).
        #[arg(long)]
        config: PathBuf,
        /// The config in force, to compare against ("newly" refused, users
        /// newly without a usable credential).
        #[arg(long)]
        in_force: Option<PathBuf>,
        /// A candidate FIDO metadata file, in the candidate's `[metadata]`
        /// format (a BLOB is checked against its root_file).
        #[arg(long)]
        metadata: Option<PathBuf>,
        /// Only this relying party.
        #[arg(long)]
        rp: Option<String>,
        /// Which users without a usable credential to write to --out:
        /// newly (had one under --in-force), all, none.
        #[arg(long, default_value = "newly", value_parser = ["newly", "all", "none"])]
        users: String,
        /// Write the users and the summary as JSON Lines (for `assertd
        /// report adoption --preview`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Data directory of the embedded store [default: the config's].
        #[arg(long, env = "ASSERTD_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

/// `assertd report …`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Write one self-contained HTML page (inline SVG charts, nothing
    /// fetched) of passkey adoption per relying party: credentials by kind
    /// over time and by model, users by strongest credential, users without
    /// a usable credential per profile in force, and a policy preview's
    /// summary if given. Reads the store the config names.
    Adoption {
        /// Configuration file: its relying parties, profiles, `[metadata]`
        /// (model names) and `[store]`.
        #[arg(long, env = "ASSERTD_CONFIG")]
        config: PathBuf,
        /// The page to write.
        #[arg(long)]
        out: PathBuf,
        /// A preview file (`assertd policy preview --out`) to summarise.
        #[arg(long)]
        preview: Option<PathBuf>,
        /// Only this relying party.
        #[arg(long)]
        rp: Option<String>,
        /// Data directory of the embedded store [default: the config's].
        #[arg(long, env = "ASSERTD_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

/// A config file, compiled, with the data directory overridden.
fn load(path: &Path, data_dir: Option<PathBuf>) -> Result<(Config, crate::config::Reloadable), String> {
    let (mut c, compiled) = Config::load_compiled(path).map_err(|e| e.to_string())?;
    c.data_dir = data_dir.unwrap_or(c.data_dir);
    Ok((c, compiled))
}

/// Runs `assertd policy …`.
pub async fn policy(command: PolicyCommand) -> Result<(), String> {
    let PolicyCommand::Preview { config, in_force, metadata, rp, users, out, data_dir } = command;
    let (c, compiled) = load(&config, data_dir)?;
    let invalid = |p: &Path, e| ConfigError::invalid(p, e).to_string();
    let mut candidate = Policy::of(&compiled).map_err(|e| invalid(&config, e))?;
    if let Some(path) = &metadata {
        let loaded = compiled.metadata.as_ref().ok_or("--metadata needs [metadata] in the candidate config (its format and root)")?;
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        candidate = candidate.with_metadata(loaded.candidate(&bytes).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    let in_force = match &in_force {
        Some(p) => {
            let (_, compiled) = Config::load_compiled(p).map_err(|e| e.to_string())?;
            Some(Policy::of(&compiled).map_err(|e| invalid(p, e))?)
        }
        None => None,
    };
    let wanted = match users.as_str() {
        "all" => UsersWanted::All,
        "none" => UsersWanted::None,
        _ => UsersWanted::Newly,
    };
    let store = crate::server::open_tool_store(&c).await.map_err(|e| e.to_string())?;
    let (summary, ms) = crate::preview::run_offline(&store, candidate, in_force, rp, wanted, out.as_deref()).await?;
    print!("{}", crate::preview::table(&summary, ms));
    if let Some(p) = &out {
        eprintln!("wrote the users ({users}) and the summary to {}", p.display());
    }
    Ok(())
}

/// Runs `assertd report …`.
pub async fn report(command: ReportCommand) -> Result<(), String> {
    let ReportCommand::Adoption { config, out, preview, rp, data_dir } = command;
    let (c, compiled) = load(&config, data_dir)?;
    let digest = preview.as_deref().map(crate::report::read_preview).transpose()?;
    let store = crate::server::open_tool_store(&c).await.map_err(|e| e.to_string())?;
    let mut adoption = crate::report::collect(&store, &compiled, rp.as_deref(), crate::engine::now_ms()).await?;
    adoption.preview = digest;
    std::fs::write(&out, crate::report::render(&adoption)).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    eprintln!("wrote {} ({} relying parties)", out.display(), adoption.rps.len());
    Ok(())
}

/// `assertd backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write: a file, or a directory that gets
    /// `assertd-<UTC time>.db` (with --keep).
    #[arg(long)]
    to: PathBuf,
    /// Configuration file: its [store] and data_dir are used.
    #[arg(long, env = "ASSERTD_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory of the embedded store [default: the config's].
    #[arg(long, env = "ASSERTD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// With a directory: keep this many newest `assertd-*.db` backups in
    /// it, deleting older ones (0: keep all).
    #[arg(long, default_value_t = 0)]
    keep: usize,
}

/// Copies the SQLite store (see `assertd_store::sqlite_backup`), names the
/// file in a directory by its time, and keeps the newest `--keep`.
pub fn backup(args: BackupArgs, load: fn(Option<PathBuf>) -> Result<Config, String>) -> Result<(), String> {
    let mut c = load(args.config)?;
    c.data_dir = args.data_dir.unwrap_or(c.data_dir);
    if c.store.backend != crate::config::Backend::Sqlite {
        return Err("assertd backup copies the embedded SQLite store; this config uses PostgreSQL: back it up with pg_dump or the database's own backups".into());
    }
    let into_dir = args.to.is_dir();
    if args.keep > 0 && !into_dir {
        return Err(format!("--keep needs --to to be a directory; {} is not one", args.to.display()));
    }
    let file = if into_dir {
        // UTC, to the second: names sort by time.
        let secs = crate::engine::now_ms() / 1000;
        let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let stamp = format!("{}T{:02}{:02}{:02}Z", crate::report::date(days).replace('-', ""), rest / 3600, rest / 60 % 60, rest % 60);
        args.to.join(format!("assertd-{stamp}.db"))
    } else {
        args.to.clone()
    };
    let started = std::time::Instant::now();
    let busy = std::time::Duration::from_millis(c.store.timeout_ms.max(5000));
    let r = assertd_store::sqlite_backup(&c.data_dir, &file, busy).map_err(|e| format!("backup: {e}"))?;
    tracing::info!(target: "assertd::audit", action = "backup", client = "cli", file = %file.display(), credentials = r.credentials, "store backup");
    println!(
        "backed up {} credentials ({} pages, {} bytes) to {} in {:.1} s",
        r.credentials,
        r.pages,
        r.bytes,
        file.display(),
        started.elapsed().as_secs_f64()
    );
    if into_dir && args.keep > 0 {
        for old in prune(&args.to, args.keep)? {
            println!("removed {}", old.display());
        }
    }
    Ok(())
}

/// Deletes all but the newest `keep` `assertd-*.db` files in `dir` (their
/// names sort by time); returns what it deleted.
fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, String> {
    let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("assertd-") && n.ends_with(".db")))
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(keep);
    let old: Vec<PathBuf> = backups.into_iter().take(excess).collect();
    for p in &old {
        std::fs::remove_file(p).map_err(|e| format!("cannot remove {}: {e}", p.display()))?;
    }
    Ok(old)
}
