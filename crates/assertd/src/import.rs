//! `assertd credentials import` / `export`: credential records as JSON.
//!
//! The file is either a JSON array of records or JSON Lines (one record per
//! line). Byte fields are base64url (padding optional); `aaguid` may also be
//! a UUID string. The whole file is validated first; nothing is written
//! unless every record is valid and, by default, new: an import creates
//! credentials and never overwrites one ([`ImportMode::Create`]); with
//! `--replace` ([`ImportMode::Replace`]) an existing credential of the same
//! user is replaced under `PutCredential`'s replace rules (the user never
//! changes, a revoked credential stays revoked, the sign count never goes
//! back). Records are written in transactions of [`CHUNK`].

use assertd_store::{CredentialStore, Replaced, StoredCredential};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

/// Records per write transaction.
pub const CHUNK: usize = 1000;

/// What an import may do to credentials that already exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportMode {
    /// Create only: a record whose id exists at its relying party stops the
    /// import before anything is written.
    #[default]
    Create,
    /// Create new ids, and replace existing credentials of the same user
    /// (as `PutCredential` with `replace`); a record naming another user's
    /// credential stops the import before anything is written.
    Replace,
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Imported {
    /// New credentials.
    pub created: usize,
    /// Existing credentials replaced (only with [`ImportMode::Replace`]).
    pub replaced: usize,
}

/// One record in an import file.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ImportRecord {
    rp_id: String,
    credential_id: String,
    #[serde(default)]
    user_handle: String,
    public_key_cose: String,
    #[serde(default)]
    sign_count: u32,
    #[serde(default)]
    backup_eligible: bool,
    #[serde(default)]
    backup_state: bool,
    #[serde(default)]
    aaguid: Option<String>,
    #[serde(default)]
    attested: bool,
    #[serde(default)]
    transports: Vec<String>,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    created_at_ms: Option<i64>,
    #[serde(default)]
    last_used_at_ms: Option<i64>,
    #[serde(default)]
    aaguid_vouched: bool,
    #[serde(default)]
    trust_anchor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    discoverable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attachment: Option<assertd_verify::Attachment>,
    #[serde(default)]
    uv_initialized: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    access_pass_id: String,
}

fn b64(field: &str, s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|e| format!("{field}: not base64url: {e}"))
}

/// Parses a UUID ("cb69481e-8ff7-4039-93ec-0a2729a154a8") or base64url.
fn aaguid(s: &str) -> Result<Vec<u8>, String> {
    if s.contains('-') && s.len() == 36 {
        return crate::config::parse_uuid(s).map(|a| a.to_vec()).ok_or_else(|| format!("aaguid: {s:?} is not a UUID"));
    }
    b64("aaguid", s)
}

impl ImportRecord {
    fn into_stored(self, now_ms: i64) -> Result<StoredCredential, String> {
        let r = StoredCredential {
            credential_id: b64("credential_id", &self.credential_id)?,
            user_handle: b64("user_handle", &self.user_handle)?,
            public_key_cose: b64("public_key_cose", &self.public_key_cose)?,
            aaguid: self.aaguid.as_deref().map(aaguid).transpose()?.unwrap_or_default(),
            rp_id: self.rp_id,
            sign_count: self.sign_count,
            backup_eligible: self.backup_eligible,
            backup_state: self.backup_state,
            attested: self.attested,
            transports: self.transports,
            revoked: self.revoked,
            created_at_ms: self.created_at_ms.unwrap_or(now_ms),
            last_used_at_ms: self.last_used_at_ms,
            aaguid_vouched: self.aaguid_vouched,
            trust_anchor: self.trust_anchor,
            discoverable: self.discoverable,
            attachment: self.attachment,
            uv_initialized: self.uv_initialized,
            access_pass_id: self.access_pass_id,
        };
        r.validate().map_err(|e| e.to_string())?;
        Ok(r)
    }
}

/// Reads the file's records one at a time, calling `each` with the record's
/// position ("line N" or "record N"). Errors from `each` are returned as
/// they are (they name their record themselves); parse errors are prefixed
/// with the position.
fn for_each_record(path: &Path, mut each: impl FnMut(String, ImportRecord) -> Result<(), String>) -> Result<(), String> {
    let open = || std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()));
    let mut reader = BufReader::new(open()?);
    let first = loop {
        let buf = reader.fill_buf().map_err(|e| e.to_string())?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => break Some(buf[i]),
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    match first {
        None => Ok(()),
        Some(b'[') => {
            // A JSON array: stream its elements without holding the file.
            let mut de = serde_json::Deserializer::from_reader(BufReader::new(open()?));
            let mut n = 0usize;
            struct Visitor<'a, F>(&'a mut F, &'a mut usize);
            impl<'de, F: FnMut(String, ImportRecord) -> Result<(), String>> serde::de::Visitor<'de> for Visitor<'_, F> {
                type Value = ();
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an array of credential records")
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                    loop {
                        *self.1 += 1;
                        let pos = format!("record {}", self.1);
                        match seq.next_element::<ImportRecord>() {
                            Ok(Some(r)) => (self.0)(pos, r).map_err(serde::de::Error::custom)?,
                            Ok(None) => return Ok(()),
                            Err(e) => return Err(serde::de::Error::custom(format!("{pos}: {e}"))),
                        }
                    }
                }
            }
            serde::Deserializer::deserialize_seq(&mut de, Visitor(&mut each, &mut n)).map_err(|e| e.to_string())?;
            de.end().map_err(|e| e.to_string())
        }
        Some(_) => {
            for (i, line) in BufReader::new(open()?).lines().enumerate() {
                let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
                if line.trim().is_empty() {
                    continue;
                }
                let r: ImportRecord = serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", i + 1))?;
                each(format!("line {}", i + 1), r)?;
            }
            Ok(())
        }
    }
}

/// Converts and checks a batch of records on all cores (the public-key
/// checks dominate: an ECDH per EC key), keeping file order; the first
/// invalid record is the one reported.
fn convert(batch: &mut Vec<(String, ImportRecord)>, now_ms: i64) -> Result<Vec<StoredCredential>, String> {
    use rayon::prelude::*;
    let converted: Vec<Result<StoredCredential, String>> =
        std::mem::take(batch).into_par_iter().map(|(pos, r)| r.into_stored(now_ms).map_err(|e| format!("{pos}: {e}"))).collect();
    converted.into_iter().collect()
}

fn show(r: &StoredCredential) -> String {
    format!("credential {} at relying party {:?}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&r.credential_id), r.rp_id)
}

/// A record's key, hashed (16 bytes: memory stays small for millions).
fn key_hash(r: &StoredCredential) -> [u8; 16] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&u32::try_from(r.rp_id.len()).unwrap_or(u32::MAX).to_be_bytes());
    ctx.update(r.rp_id.as_bytes());
    ctx.update(&r.credential_id);
    let mut k = [0u8; 16];
    k.copy_from_slice(&ctx.finish().as_ref()[..16]);
    k
}

/// Checks a converted chunk against the store and the rest of the file:
/// an id twice in the file, an existing id (create mode), or another
/// user's credential (replace mode) is an error naming the record.
fn check_existing(
    handle: &tokio::runtime::Handle,
    store: &Arc<dyn CredentialStore>,
    chunk: &[(String, StoredCredential)],
    seen: &mut HashSet<[u8; 16]>,
    mode: ImportMode,
) -> Result<(), String> {
    for (pos, r) in chunk {
        if !seen.insert(key_hash(r)) {
            return Err(format!("{pos}: {} appears earlier in the file", show(r)));
        }
    }
    let found = handle.block_on(futures_util::future::try_join_all(chunk.iter().map(|(_, r)| store.get(&r.rp_id, &r.credential_id))));
    for ((pos, r), stored) in chunk.iter().zip(found.map_err(|e| e.to_string())?) {
        match (stored, mode) {
            (None, _) => {}
            (Some(_), ImportMode::Create) => {
                return Err(format!("{pos}: {} already exists; pass --replace to replace it (its user stays as stored)", show(r)));
            }
            (Some(s), ImportMode::Replace) if s.user_handle != r.user_handle => {
                return Err(format!("{pos}: {} belongs to another user; a replace never moves a credential to another user", show(r)));
            }
            (Some(_), ImportMode::Replace) => {}
        }
    }
    Ok(())
}

/// Validates the whole file (each record, and against the store as `mode`
/// allows), then writes it in chunks while reading it again, so memory
/// stays bounded whatever the file's size. Returns what was written.
pub async fn import(path: &Path, store: Arc<dyn CredentialStore>, now_ms: i64, mode: ImportMode) -> Result<Imported, String> {
    let path = path.to_owned();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(CHUNK);
        let mut seen = HashSet::new();
        let mut check = |batch: &mut Vec<(String, ImportRecord)>| -> Result<(), String> {
            let positions: Vec<String> = batch.iter().map(|(p, _)| p.clone()).collect();
            let chunk: Vec<(String, StoredCredential)> = positions.into_iter().zip(convert(batch, now_ms)?).collect();
            check_existing(&handle, &store, &chunk, &mut seen, mode)
        };
        for_each_record(&path, |pos, r| {
            batch.push((pos, r));
            if batch.len() == CHUNK {
                check(&mut batch)?;
            }
            Ok(())
        })?;
        check(&mut batch)?;
        drop(seen);
        // Checked again while writing: the file is read twice, and what is
        // written must be what was checked. A credential created or moved
        // by someone else since the check is never overwritten.
        let mut done = Imported::default();
        let mut flush = |batch: &mut Vec<(String, ImportRecord)>| -> Result<(), String> {
            let chunk = convert(batch, now_ms)?;
            if chunk.is_empty() {
                return Ok(());
            }
            let after = |done: &Imported| done.created + done.replaced;
            let created = handle.block_on(store.create_many(chunk.clone())).map_err(|e| format!("after {} records: {e}", after(&done)))?;
            for (r, created) in chunk.into_iter().zip(created) {
                if created {
                    done.created += 1;
                    continue;
                }
                let what = show(&r);
                if mode == ImportMode::Create {
                    return Err(format!(
                        "after {} records: {what} was created by someone else since the check; not overwritten",
                        after(&done)
                    ));
                }
                match handle.block_on(store.replace(r)).map_err(|e| format!("after {} records: {e}", after(&done)))? {
                    Replaced::Replaced(_) => done.replaced += 1,
                    Replaced::OtherUser | Replaced::NotFound => {
                        return Err(format!(
                            "after {} records: {what} changed owner or was deleted since the check; not written",
                            after(&done)
                        ));
                    }
                }
            }
            Ok(())
        };
        for_each_record(&path, |pos, r| {
            batch.push((pos, r));
            if batch.len() == CHUNK {
                flush(&mut batch)?;
            }
            Ok(())
        })?;
        flush(&mut batch)?;
        Ok(done)
    })
    .await
    .map_err(|e| format!("import task failed: {e}"))?
}

/// Records per page read from the store while exporting.
pub const PAGE: usize = 1000;

/// Writes every stored credential as JSON Lines (the import format), page
/// by page: memory stays bounded whatever the store's size. Returns the
/// number written.
pub async fn export(store: &dyn CredentialStore, out: &mut (dyn std::io::Write + Send)) -> Result<usize, String> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let mut after = None;
    let mut n = 0usize;
    loop {
        let page = store.page(after.take(), PAGE).await.map_err(|e| format!("after {n} records: {e}"))?;
        let Some(last) = page.last() else { break };
        after = Some((last.rp_id.clone(), last.credential_id.clone()));
        for r in page {
            let rec = ImportRecord {
                credential_id: b64(&r.credential_id),
                user_handle: b64(&r.user_handle),
                public_key_cose: b64(&r.public_key_cose),
                aaguid: (r.aaguid.len() == 16).then(|| crate::config::format_uuid(&r.aaguid16())),
                rp_id: r.rp_id,
                sign_count: r.sign_count,
                backup_eligible: r.backup_eligible,
                backup_state: r.backup_state,
                attested: r.attested,
                transports: r.transports,
                revoked: r.revoked,
                created_at_ms: Some(r.created_at_ms),
                last_used_at_ms: r.last_used_at_ms,
                aaguid_vouched: r.aaguid_vouched,
                trust_anchor: r.trust_anchor,
                discoverable: r.discoverable,
                attachment: r.attachment,
                uv_initialized: r.uv_initialized,
                access_pass_id: r.access_pass_id,
            };
            serde_json::to_writer(&mut *out, &rec).map_err(|e| e.to_string())?;
            out.write_all(b"\n").map_err(|e| e.to_string())?;
            n += 1;
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(n)
}
