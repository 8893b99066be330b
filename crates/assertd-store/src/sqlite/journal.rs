//! The counter journal: counted sign-ins appended to a file of their own,
//! a few dozen bytes each and one `fdatasync` per group, instead of a
//! 4 KiB SQLite page per counted credential (BENCHMARKS.md §21–22). The
//! writer folds them into `credentials` later, in key order, many to a
//! page (`pending`).
//!
//! Files: `counters-<generation>.journal` in the data directory, each a
//! header then frames. A frame is one group's records behind its length
//! and CRC-32; it is synced before any job of the group is answered. A
//! crash can tear only the frame being written, which was never
//! acknowledged: reading stops at the first frame whose length or CRC does
//! not hold. `counters.lock` holds an exclusive lock while a store has the
//! directory open: one process appends.

use crate::types::StoreError;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What a journal file starts with: a name and the format's version.
const MAGIC: &[u8; 12] = b"ASSERTDJ\x01\x00\x00\x00";
/// Bytes of a journal file with no frame.
pub(super) const HEADER: u64 = MAGIC.len() as u64;
/// A frame's length and CRC.
const FRAME_HEAD: usize = 8;
/// Longer frames are not ours (a group holds at most 1024 jobs).
const MAX_FRAME: usize = 64 << 20;
/// A file is filled with zeros this much at a time ahead of its frames, so
/// that syncing a frame writes data only: appending past the end made each
/// `fdatasync` also commit the file's new size (600 µs and 160 µs of CPU
/// against 350 µs and 95 µs here, 3.2 KiB frames; BENCHMARKS.md §22).
const GROW: u64 = 1 << 20;

/// One credential's count as a group left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub(super) rp_id: String,
    pub(super) credential_id: Vec<u8>,
    /// The count stored.
    pub(super) count: u32,
    /// When it was used (`last_used_at_ms`).
    pub(super) at_ms: i64,
    /// The row's `created_at_ms` when counted: a record applies only to
    /// that row, never to a credential deleted and registered again with
    /// the same id.
    pub(super) created_ms: i64,
}

/// Appends `records` as one frame's payload.
pub(super) fn encode(records: &[Record], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; FRAME_HEAD]);
    for r in records {
        // Lengths as u32: nothing a store holds is longer.
        for field in [r.rp_id.as_bytes(), &r.credential_id] {
            out.extend_from_slice(&u32::try_from(field.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(field);
        }
        out.extend_from_slice(&r.count.to_le_bytes());
        out.extend_from_slice(&r.at_ms.to_le_bytes());
        out.extend_from_slice(&r.created_ms.to_le_bytes());
    }
    let len = u32::try_from(out.len() - FRAME_HEAD).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(&out[FRAME_HEAD..]);
    out[..4].copy_from_slice(&len.to_le_bytes());
    out[4..FRAME_HEAD].copy_from_slice(&crc.to_le_bytes());
}

/// The records of a journal file's bytes, up to the first frame that does
/// not hold (a torn write, never acknowledged). `None` when the file is
/// not a journal.
pub(super) fn decode(bytes: &[u8]) -> Option<Vec<Record>> {
    if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
        // Created, its header not yet synced: empty.
        return Some(Vec::new());
    }
    let mut rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let mut out = Vec::new();
    while rest.len() >= FRAME_HEAD {
        let len = u32::from_le_bytes(rest[..4].try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(rest[4..FRAME_HEAD].try_into().ok()?);
        let Some(payload) = rest.get(FRAME_HEAD..FRAME_HEAD.saturating_add(len)) else { break };
        if len == 0 || len > MAX_FRAME || crc32fast::hash(payload) != crc {
            break;
        }
        let Some(records) = records(payload) else { break };
        out.extend(records);
        rest = &rest[FRAME_HEAD + len..];
    }
    Some(out)
}

fn records(mut p: &[u8]) -> Option<Vec<Record>> {
    fn take<'a>(p: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (p.get(..n)?, p.get(n..)?);
        *p = tail;
        Some(head)
    }
    let mut out = Vec::new();
    while !p.is_empty() {
        let rp_len = u32::from_le_bytes(take(&mut p, 4)?.try_into().ok()?);
        let rp_id = String::from_utf8(take(&mut p, rp_len as usize)?.to_vec()).ok()?;
        let id_len = u32::from_le_bytes(take(&mut p, 4)?.try_into().ok()?);
        let credential_id = take(&mut p, id_len as usize)?.to_vec();
        let count = u32::from_le_bytes(take(&mut p, 4)?.try_into().ok()?);
        let at_ms = i64::from_le_bytes(take(&mut p, 8)?.try_into().ok()?);
        let created_ms = i64::from_le_bytes(take(&mut p, 8)?.try_into().ok()?);
        out.push(Record { rp_id, credential_id, count, at_ms, created_ms });
    }
    Some(out)
}

/// The journal files of `dir`, oldest generation first.
pub(super) fn files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(generation) = name
            .to_str()
            .and_then(|n| n.strip_prefix("counters-"))
            .and_then(|n| n.strip_suffix(".journal"))
            .and_then(|g| u64::from_str_radix(g, 16).ok())
        else {
            continue;
        };
        out.push((generation, e.path()));
    }
    out.sort();
    Ok(out)
}

/// Every record in `dir`'s journal files, in the order written. A file
/// gone meanwhile (folded and removed) is skipped.
pub(super) fn read_all(dir: &Path) -> Result<Vec<Record>, StoreError> {
    let mut out = Vec::new();
    for (_, path) in files(dir).map_err(|e| unavailable(dir, e))? {
        let mut bytes = Vec::new();
        match File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(unavailable(&path, e)),
        }
        out.extend(decode(&bytes).ok_or_else(|| StoreError::Corrupt(format!("{} is not a counter journal", path.display())))?);
    }
    Ok(out)
}

fn lock_path(dir: &Path) -> PathBuf {
    dir.join("counters.lock")
}

fn unavailable(path: &Path, e: io::Error) -> StoreError {
    StoreError::Unavailable(format!("counter journal {}: {e}", path.display()))
}

/// The file being appended to.
pub(super) struct Journal {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    generation: u64,
    /// Where the next frame goes.
    end: u64,
    /// Bytes written (frames, then zeros).
    allocated: u64,
    _lock: File,
}

impl Journal {
    /// Takes `dir`'s lock; `None` when another process holds it.
    pub(super) fn try_lock(dir: &Path) -> Result<Option<File>, StoreError> {
        let path = lock_path(dir);
        let f = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| unavailable(&path, e))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(unavailable(&path, e)),
        }
    }

    /// Takes `dir`'s lock, refusing when another process holds it.
    pub(super) fn lock(dir: &Path) -> Result<File, StoreError> {
        Self::try_lock(dir)?.ok_or_else(|| {
            StoreError::Unavailable(format!(
                "{} is in use by another assertd (it holds {}); one server per data directory",
                dir.display(),
                lock_path(dir).display()
            ))
        })
    }

    /// A new, empty generation after `after`.
    pub(super) fn create(dir: &Path, after: u64, lock: File) -> Result<Self, StoreError> {
        let generation = after + 1;
        let path = dir.join(format!("counters-{generation:016x}.journal"));
        let file = new_file(dir, &path).map_err(|e| unavailable(&path, e))?;
        Ok(Self { dir: dir.to_path_buf(), file, path, generation, end: HEADER, allocated: HEADER, _lock: lock })
    }

    /// Writes one frame (from [`encode`]) and syncs it. A failed write
    /// leaves the end where it was: the next frame overwrites it.
    pub(super) fn append(&mut self, frame: &[u8]) -> io::Result<()> {
        let end = self.end + frame.len() as u64;
        if end > self.allocated {
            let to = end.div_ceil(GROW) * GROW;
            let zeros = vec![0; usize::try_from(to - self.allocated).unwrap_or(0)];
            self.file.write_all_at(&zeros, self.allocated)?;
            self.file.sync_all()?;
            self.allocated = to;
        }
        self.file.write_all_at(frame, self.end)?;
        self.file.sync_data()?;
        self.end += frame.len() as u64;
        Ok(())
    }

    /// The open generation's file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written to this generation.
    pub(super) fn len(&self) -> u64 {
        self.end
    }

    /// Starts the next generation; the file left behind, to remove once
    /// everything in it is folded.
    pub(super) fn rotate(&mut self) -> io::Result<PathBuf> {
        let generation = self.generation + 1;
        let path = self.dir.join(format!("counters-{generation:016x}.journal"));
        self.file = new_file(&self.dir, &path)?;
        self.generation = generation;
        self.end = HEADER;
        self.allocated = HEADER;
        Ok(std::mem::replace(&mut self.path, path))
    }
}

/// Creates a journal file with its header, synced with its directory
/// entry, so frames synced into it later are found after a power loss.
fn new_file(dir: &Path, path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new().create_new(true).read(true).write(true).mode(0o600).open(path)?;
    file.write_all_at(MAGIC, 0)?;
    file.sync_all()?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}

/// Removes folded journal files (a removal lost to a crash only replays
/// records already in the database).
pub(super) fn remove(paths: &[PathBuf]) {
    for p in paths {
        if let Err(e) = std::fs::remove_file(p)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(file = %p.display(), error = %e, "cannot remove a folded counter journal; it is replayed (harmlessly) at the next start");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: &str, count: u32) -> Record {
        Record { rp_id: "example.com".into(), credential_id: id.as_bytes().to_vec(), count, at_ms: 7, created_ms: 3 }
    }

    fn file_of(frames: &[&[Record]]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        let mut buf = Vec::new();
        for f in frames {
            encode(f, &mut buf);
            bytes.extend_from_slice(&buf);
        }
        bytes
    }

    #[test]
    fn frames_read_back_in_order() {
        let bytes = file_of(&[&[r("a", 1), r("b", 2)], &[r("a", 5)]]);
        assert_eq!(decode(&bytes), Some(vec![r("a", 1), r("b", 2), r("a", 5)]));
    }

    #[test]
    fn reading_stops_at_a_torn_or_damaged_frame() {
        let whole = file_of(&[&[r("a", 1)], &[r("b", 2), r("c", 3)]]);
        let first = file_of(&[&[r("a", 1)]]).len();
        // Every cut inside the second frame reads as the first frame only.
        for cut in first..whole.len() {
            assert_eq!(decode(&whole[..cut]), Some(vec![r("a", 1)]), "cut at {cut}");
        }
        // A flipped bit in the second frame's payload fails its CRC.
        let mut flipped = whole.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(decode(&flipped), Some(vec![r("a", 1)]));
        // Zeros after the last frame (a preallocated tail) end the file.
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0; 64]);
        assert_eq!(decode(&zeros).unwrap().len(), 3);
        assert_eq!(decode(b"not a journal"), None);
        assert_eq!(decode(b"ASSERT"), Some(vec![]), "a header cut short is an empty file");
    }

    #[test]
    fn an_append_that_failed_is_overwritten_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let lock = Journal::lock(dir.path()).unwrap();
        assert!(Journal::lock(dir.path()).is_err(), "a second store on the directory is refused");
        let mut j = Journal::create(dir.path(), 0, lock).unwrap();
        let mut buf = Vec::new();
        encode(&[r("a", 1)], &mut buf);
        j.append(&buf).unwrap();
        // A torn frame past the end, as a failed write leaves it.
        j.file.write_all_at(&buf[..5], j.end).unwrap();
        encode(&[r("b", 2)], &mut buf);
        j.append(&buf).unwrap();
        assert_eq!(read_all(dir.path()).unwrap(), vec![r("a", 1), r("b", 2)]);
        let old = j.rotate().unwrap();
        encode(&[r("c", 3)], &mut buf);
        j.append(&buf).unwrap();
        assert_eq!(read_all(dir.path()).unwrap(), vec![r("a", 1), r("b", 2), r("c", 3)]);
        remove(&[old]);
        assert_eq!(read_all(dir.path()).unwrap(), vec![r("c", 3)]);
    }
}
