//! Temporary access passes as the store keeps them: never the pass, only
//! its keyed hash (made by `assertd_verify::access_pass`), with its
//! lifetime and use; and the row codec both backends share.

use crate::row::Columns;
use crate::types::{PassRefusal, StoreError};

/// The pass columns, in the order [`pass`] reads them and the backends
/// bind them.
pub(crate) const PASS_COLUMNS: &str =
    "rp_id, pass_id, user_handle, key_id, hash, one_time, created_at_ms, expires_at_ms, revoked_at_ms, used_at_ms, uses, issued_by, note";

/// One temporary access pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPass {
    /// The relying party.
    pub rp_id: String,
    /// Its id (not secret: shown in lists and the audit log).
    pub pass_id: String,
    /// The user it lets in.
    pub user_handle: Vec<u8>,
    /// The id of the key its hash was made with.
    pub key_id: String,
    /// HMAC-SHA256 of the pass, bound to the relying party and user.
    pub hash: Vec<u8>,
    /// Usable once (true) or until it expires.
    pub one_time: bool,
    /// Issued, Unix milliseconds.
    pub created_at_ms: i64,
    /// Expires, Unix milliseconds.
    pub expires_at_ms: i64,
    /// Revoked (or replaced by a newer pass of the user), Unix ms.
    pub revoked_at_ms: Option<i64>,
    /// First redeemed, Unix milliseconds.
    pub used_at_ms: Option<i64>,
    /// Times redeemed.
    pub uses: u64,
    /// The client that issued it.
    pub issued_by: String,
    /// Why (free text from the issuer, for people).
    pub note: String,
}

impl AccessPass {
    /// Why it cannot be redeemed at `now_ms`; `None`: it can.
    pub fn refusal(&self, now_ms: i64) -> Option<PassRefusal> {
        if self.revoked_at_ms.is_some() {
            Some(PassRefusal::Revoked)
        } else if self.one_time && self.used_at_ms.is_some() {
            Some(PassRefusal::Used)
        } else if now_ms >= self.expires_at_ms {
            Some(PassRefusal::Expired)
        } else {
            None
        }
    }

    /// Whether it can still be redeemed at `now_ms`.
    pub fn usable(&self, now_ms: i64) -> bool {
        self.refusal(now_ms).is_none()
    }
}

/// Decodes a row of [`PASS_COLUMNS`].
pub(crate) fn pass(r: &impl Columns) -> Result<AccessPass, StoreError> {
    let c = |column: &'static str| move |why: String| StoreError::Corrupt(format!("access_passes.{column}: {why}"));
    let uses = r.int(10).map_err(c("uses"))?;
    Ok(AccessPass {
        rp_id: r.text(0).map_err(c("rp_id"))?,
        pass_id: r.text(1).map_err(c("pass_id"))?,
        user_handle: r.bytes(2).map_err(c("user_handle"))?,
        key_id: r.text(3).map_err(c("key_id"))?,
        hash: r.bytes(4).map_err(c("hash"))?,
        one_time: r.flag(5).map_err(c("one_time"))?,
        created_at_ms: r.int(6).map_err(c("created_at_ms"))?,
        expires_at_ms: r.int(7).map_err(c("expires_at_ms"))?,
        revoked_at_ms: r.opt_int(8).map_err(c("revoked_at_ms"))?,
        used_at_ms: r.opt_int(9).map_err(c("used_at_ms"))?,
        uses: u64::try_from(uses).map_err(|_| StoreError::Corrupt(format!("access_passes.uses: {uses} is negative")))?,
        issued_by: r.text(11).map_err(c("issued_by"))?,
        note: r.text(12).map_err(c("note"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(one_time: bool) -> AccessPass {
        AccessPass {
            rp_id: "rp".into(),
            pass_id: "p".into(),
            user_handle: b"u".to_vec(),
            key_id: "k".into(),
            hash: vec![0; 32],
            one_time,
            created_at_ms: 0,
            expires_at_ms: 100,
            revoked_at_ms: None,
            used_at_ms: None,
            uses: 0,
            issued_by: "helpdesk".into(),
            note: String::new(),
        }
    }

    #[test]
    fn refusals_in_order_revoked_used_expired() {
        let mut p = pass(true);
        assert_eq!(p.refusal(99), None);
        assert_eq!(p.refusal(100), Some(PassRefusal::Expired));
        p.used_at_ms = Some(5);
        assert_eq!(p.refusal(50), Some(PassRefusal::Used));
        assert_eq!(p.refusal(200), Some(PassRefusal::Used));
        p.revoked_at_ms = Some(6);
        assert_eq!(p.refusal(50), Some(PassRefusal::Revoked));
        let mut reusable = pass(false);
        reusable.used_at_ms = Some(5);
        assert!(reusable.usable(50), "a pass that is not one-time is used until it expires");
        assert!(!reusable.usable(100));
    }
}
