//! A consistent copy of the SQLite database while it serves: SQLite's
//! online backup API (<https://www.sqlite.org/backup.html>) copies every
//! page under one read transaction, which in WAL mode never blocks the
//! server's writer; the copy is checked, synced and renamed into place, so
//! a file at the destination is always a whole backup. Counts still in the
//! counter journal are read first and written into the copy: every count
//! acknowledged before the backup started is in it.

use super::unavailable;
use crate::types::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// What a backup copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupReport {
    /// Database pages copied.
    pub pages: u64,
    /// Bytes of the copy.
    pub bytes: u64,
    /// Credentials in the copy.
    pub credentials: u64,
}

/// Copies `credentials.db` in `data_dir` to `to` (a file; replaced only once
/// the copy is whole and checked). `busy` bounds the wait for a lock.
pub fn backup(data_dir: &Path, to: &Path, busy: Duration) -> Result<BackupReport, StoreError> {
    let from = data_dir.join("credentials.db");
    if !from.exists() {
        return Err(StoreError::Unavailable(format!("no database at {}", from.display())));
    }
    // Read and write (never written): a WAL database's readers share its
    // -shm index with the server.
    let src =
        Connection::open_with_flags(&from, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(unavailable)?;
    src.busy_timeout(busy).map_err(unavailable)?;
    let name = to.file_name().ok_or_else(|| StoreError::Unavailable(format!("{} names no file", to.display())))?;
    let partial = to.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    let _ = std::fs::remove_file(&partial);
    // The journal before the pages: a journal file folded and removed in
    // between was folded into pages the copy then reads.
    let journal = super::journal::read_all(data_dir)?;
    let result = copy(&src, &partial, busy, &journal);
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, to).map_err(|e| StoreError::Unavailable(format!("cannot move the backup to {}: {e}", to.display())))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself survives a crash once the directory is synced.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::Unavailable(format!("cannot sync {}: {e}", dir.display())))?;
    }
    Ok(report)
}

fn copy(src: &Connection, partial: &Path, busy: Duration, journal: &[super::journal::Record]) -> Result<BackupReport, StoreError> {
    use rusqlite::backup::StepResult;
    // Readable by the owner only, like the database (user handles).
    let mut create = std::fs::OpenOptions::new();
    create.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o600);
    create.open(partial).map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", partial.display())))?;
    let mut dst = Connection::open(partial).map_err(unavailable)?;
    {
        let b = rusqlite::backup::Backup::new(src, &mut dst).map_err(unavailable)?;
        // Every page in one step (-1): one read transaction, so the copy is
        // one moment of the database (smaller steps would restart whenever
        // the server writes in between).
        let since = std::time::Instant::now();
        loop {
            match b.step(-1).map_err(unavailable)? {
                StepResult::Done => break,
                StepResult::More => continue,
                StepResult::Busy | StepResult::Locked if since.elapsed() < busy => std::thread::sleep(Duration::from_millis(50)),
                r => return Err(StoreError::Unavailable(format!("the database stayed locked for {busy:?} ({r:?})"))),
            }
        }
    }
    super::pending::apply_journal(&mut dst, journal)?;
    // Nothing of the copy waits in a journal.
    super::schema::mark_folded(&dst);
    // The copy stays in rollback-journal mode: one self-contained file.
    dst.pragma_update(None, "journal_mode", "DELETE").map_err(unavailable)?;
    let check: String = dst.pragma_query_value(None, "quick_check", |r| r.get(0)).map_err(unavailable)?;
    if check != "ok" {
        return Err(StoreError::Corrupt(format!("the copy failed its check: {check}")));
    }
    let pages: i64 = dst.pragma_query_value(None, "page_count", |r| r.get(0)).map_err(unavailable)?;
    let credentials: i64 = dst.query_row("SELECT count(*) FROM credentials", [], |r| r.get(0)).map_err(unavailable)?;
    drop(dst);
    let file = std::fs::File::open(partial).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    file.sync_all().map_err(|e| StoreError::Unavailable(format!("cannot sync the backup: {e}")))?;
    let bytes = file.metadata().map_err(|e| StoreError::Unavailable(e.to_string()))?.len();
    Ok(BackupReport { pages: pages.try_into().unwrap_or(0), bytes, credentials: credentials.try_into().unwrap_or(0) })
}
