//! Paging the store through a [`Tally`]: a page read, judged on a blocking
//! thread (the judging is CPU work), the users it finished handed on in
//! pages; memory holds one page of credentials, one user and the counts.

use super::tally::{LockedOut, Summary, Tally};
use assertd_store::{CredentialStore, StoreError, StoredCredential, UserCursor};
use std::future::Future;

/// Where credentials come from, in (RP, user, credential) order.
pub trait Pages: Sync {
    /// Up to `limit` credentials after `after`.
    fn page(&self, after: UserCursor, limit: usize) -> impl Future<Output = Result<Vec<StoredCredential>, StoreError>> + Send;
}

impl Pages for crate::engine::Engine {
    fn page(&self, after: UserCursor, limit: usize) -> impl Future<Output = Result<Vec<StoredCredential>, StoreError>> + Send {
        self.credentials_by_user(after, limit)
    }
}

impl Pages for std::sync::Arc<dyn CredentialStore> {
    fn page(&self, after: UserCursor, limit: usize) -> impl Future<Output = Result<Vec<StoredCredential>, StoreError>> + Send {
        self.page_by_user(after, limit)
    }
}

/// Credentials read per store round trip.
const PAGE: usize = 1000;

/// Which credentials to read.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every one (those of relying parties the candidate does not configure
    /// are counted, not judged).
    All,
    /// Those of these relying parties, each read as its own range.
    Only(Vec<String>),
}

/// Reads the credentials `scope` names from `pages` through `tally`,
/// sending the users without a usable credential to `tx` (as `wrap` makes
/// them) `page_size` at a time (the last page may be shorter); a slow
/// receiver slows the scan. `Ok(None)`: the receiver went away.
pub async fn scan<T: Send>(
    pages: &impl Pages,
    mut tally: Tally,
    scope: Scope,
    page_size: usize,
    tx: &tokio::sync::mpsc::Sender<T>,
    wrap: impl Fn(Vec<LockedOut>) -> T,
) -> Result<Option<Summary>, StoreError> {
    let page_size = page_size.max(1);
    let ranges: Vec<Option<String>> = match scope {
        Scope::All => vec![None],
        Scope::Only(rps) => rps.into_iter().map(Some).collect(),
    };
    let mut pending: Vec<LockedOut> = Vec::new();
    for only in ranges {
        let mut cursor = (only.clone().unwrap_or_default(), Vec::new(), Vec::new());
        loop {
            let mut page = pages.page(cursor, PAGE).await?;
            let full = page.len() == PAGE;
            let Some(last) = page.last() else { break };
            cursor = (last.rp_id.clone(), last.user_handle.clone(), last.credential_id.clone());
            let past = only.as_ref().and_then(|rp| page.iter().position(|c| c.rp_id != *rp));
            if let Some(i) = past {
                page.truncate(i);
            }
            let (t, out) = tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                for c in &page {
                    tally.add(c, &mut out);
                }
                (tally, out)
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("the preview's judging stopped: {e}")))?;
            tally = t;
            pending.extend(out);
            while pending.len() >= page_size {
                let rest = pending.split_off(page_size);
                if tx.send(wrap(std::mem::replace(&mut pending, rest))).await.is_err() {
                    return Ok(None);
                }
            }
            if !full || past.is_some() {
                break;
            }
        }
    }
    let summary = tally.finish(&mut pending);
    while !pending.is_empty() {
        let rest = pending.split_off(page_size.min(pending.len()));
        if tx.send(wrap(std::mem::replace(&mut pending, rest))).await.is_err() {
            return Ok(None);
        }
    }
    Ok(Some(summary))
}
