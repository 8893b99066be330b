//! The one row codec both backends share: the credential and user-risk
//! column lists, the values an INSERT binds, and the decoding of a row that
//! was read, with one error taxonomy: a row that does not decode is
//! [`StoreError::Corrupt`] on SQLite and on PostgreSQL alike (an operator
//! must look; retrying cannot help).

use crate::record::StoredCredential;
use crate::types::{StoreError, UserRisk, UserRiskLevel};
use assertd_verify::Attachment;

/// The credential columns, in the order [`values`] binds them and
/// [`credential`] reads them.
pub(crate) const COLUMNS: &str = "rp_id, credential_id, user_handle, public_key_cose, sign_count, backup_eligible, backup_state, aaguid, attested, transports, revoked, created_at_ms, last_used_at_ms, aaguid_vouched, trust_anchor, discoverable, attachment, uv_initialized, access_pass_id";

/// How many columns [`COLUMNS`] names.
pub(crate) const WIDTH: usize = 19;

/// The placeholders binding [`COLUMNS`] on SQLite.
pub(crate) const QMARKS: &str = "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19";

/// The placeholders binding [`COLUMNS`] on PostgreSQL.
pub(crate) const DOLLARS: &str = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19";

/// The user-risk columns, in the order [`user_risk`] reads them.
pub(crate) const RISK_COLUMNS: &str = "rp_id, user_handle, level, expires_at_ms, note, set_at_ms";

/// One column's value, as a backend binds it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    /// TEXT.
    Text(&'a str),
    /// BLOB / bytea.
    Bytes(&'a [u8]),
    /// INTEGER / bigint.
    Int(i64),
    /// A nullable INTEGER / bigint.
    OptInt(Option<i64>),
    /// INTEGER 0/1 / boolean.
    Flag(bool),
    /// A nullable INTEGER 0/1 / boolean.
    OptFlag(Option<bool>),
    /// A list of short strings: comma-joined TEXT on SQLite, text[] on
    /// PostgreSQL.
    List(&'a [String]),
}

/// The values of [`COLUMNS`], in order, for an INSERT of `r`.
pub(crate) fn values(r: &StoredCredential) -> [Value<'_>; WIDTH] {
    use Value::*;
    [
        Text(&r.rp_id),
        Bytes(&r.credential_id),
        Bytes(&r.user_handle),
        Bytes(&r.public_key_cose),
        Int(i64::from(r.sign_count)),
        Flag(r.backup_eligible),
        Flag(r.backup_state),
        Bytes(&r.aaguid),
        Flag(r.attested),
        List(&r.transports),
        Flag(r.revoked),
        Int(r.created_at_ms),
        OptInt(r.last_used_at_ms),
        Flag(r.aaguid_vouched),
        Text(&r.trust_anchor),
        OptFlag(r.discoverable),
        Text(r.attachment.map_or("", Attachment::as_str)),
        Flag(r.uv_initialized),
        Text(&r.access_pass_id),
    ]
}

/// Reading one column of a row; each backend implements it for its row.
/// An error says why the column did not decode.
pub(crate) trait Columns {
    /// TEXT.
    fn text(&self, i: usize) -> Result<String, String>;
    /// BLOB / bytea.
    fn bytes(&self, i: usize) -> Result<Vec<u8>, String>;
    /// INTEGER / bigint.
    fn int(&self, i: usize) -> Result<i64, String>;
    /// A nullable INTEGER / bigint.
    fn opt_int(&self, i: usize) -> Result<Option<i64>, String>;
    /// A boolean.
    fn flag(&self, i: usize) -> Result<bool, String>;
    /// A nullable boolean.
    fn opt_flag(&self, i: usize) -> Result<Option<bool>, String>;
    /// A list of short strings (see [`Value::List`]).
    fn list(&self, i: usize) -> Result<Vec<String>, String>;
}

fn corrupt(table: &str, column: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{table}.{column}: {why}"))
}

/// Decodes a row of [`COLUMNS`].
pub(crate) fn credential(r: &impl Columns) -> Result<StoredCredential, StoreError> {
    let c = |column: &'static str| move |why: String| corrupt("credentials", column, why);
    let count = r.int(4).map_err(c("sign_count"))?;
    Ok(StoredCredential {
        rp_id: r.text(0).map_err(c("rp_id"))?,
        credential_id: r.bytes(1).map_err(c("credential_id"))?,
        user_handle: r.bytes(2).map_err(c("user_handle"))?,
        public_key_cose: r.bytes(3).map_err(c("public_key_cose"))?,
        sign_count: u32::try_from(count).map_err(|_| corrupt("credentials", "sign_count", format!("{count} is out of range")))?,
        backup_eligible: r.flag(5).map_err(c("backup_eligible"))?,
        backup_state: r.flag(6).map_err(c("backup_state"))?,
        aaguid: r.bytes(7).map_err(c("aaguid"))?,
        attested: r.flag(8).map_err(c("attested"))?,
        transports: r.list(9).map_err(c("transports"))?,
        revoked: r.flag(10).map_err(c("revoked"))?,
        created_at_ms: r.int(11).map_err(c("created_at_ms"))?,
        last_used_at_ms: r.opt_int(12).map_err(c("last_used_at_ms"))?,
        aaguid_vouched: r.flag(13).map_err(c("aaguid_vouched"))?,
        trust_anchor: r.text(14).map_err(c("trust_anchor"))?,
        discoverable: r.opt_flag(15).map_err(c("discoverable"))?,
        attachment: match r.text(16).map_err(c("attachment"))?.as_str() {
            "" => None,
            a => Some(Attachment::parse(a).ok_or_else(|| corrupt("credentials", "attachment", format!("{a:?} is not an attachment")))?),
        },
        uv_initialized: r.flag(17).map_err(c("uv_initialized"))?,
        access_pass_id: r.text(18).map_err(c("access_pass_id"))?,
    })
}

/// Decodes a row of [`RISK_COLUMNS`].
pub(crate) fn user_risk(r: &impl Columns) -> Result<UserRisk, StoreError> {
    let c = |column: &'static str| move |why: String| corrupt("user_risk", column, why);
    let level = r.text(2).map_err(c("level"))?;
    Ok(UserRisk {
        rp_id: r.text(0).map_err(c("rp_id"))?,
        user_handle: r.bytes(1).map_err(c("user_handle"))?,
        level: UserRiskLevel::parse(&level).map_err(|e| corrupt("user_risk", "level", e))?,
        expires_at_ms: r.opt_int(3).map_err(c("expires_at_ms"))?,
        note: r.text(4).map_err(c("note"))?,
        set_at_ms: r.int(5).map_err(c("set_at_ms"))?,
    })
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String, String> {
        self.get(i).map_err(|e| e.to_string())
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, String> {
        self.get(i).map_err(|e| e.to_string())
    }
    fn int(&self, i: usize) -> Result<i64, String> {
        self.get(i).map_err(|e| e.to_string())
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, String> {
        self.get(i).map_err(|e| e.to_string())
    }
    fn flag(&self, i: usize) -> Result<bool, String> {
        self.get(i).map_err(|e| e.to_string())
    }
    fn opt_flag(&self, i: usize) -> Result<Option<bool>, String> {
        self.get(i).map_err(|e| e.to_string())
    }
    fn list(&self, i: usize) -> Result<Vec<String>, String> {
        let joined: String = self.get(i).map_err(|e| e.to_string())?;
        Ok(joined.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect())
    }
}

impl Columns for tokio_postgres::Row {
    fn text(&self, i: usize) -> Result<String, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn int(&self, i: usize) -> Result<i64, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn flag(&self, i: usize) -> Result<bool, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn opt_flag(&self, i: usize) -> Result<Option<bool>, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn list(&self, i: usize) -> Result<Vec<String>, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value as V, ValueRef};
        Ok(match *self {
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Int(n) => ToSqlOutput::Owned(V::Integer(n)),
            Value::OptInt(n) => ToSqlOutput::Owned(n.map_or(V::Null, V::Integer)),
            Value::Flag(f) => ToSqlOutput::Owned(V::Integer(i64::from(f))),
            Value::OptFlag(f) => ToSqlOutput::Owned(f.map_or(V::Null, |f| V::Integer(i64::from(f)))),
            Value::List(l) => ToSqlOutput::Owned(V::Text(l.join(","))),
        })
    }
}

impl tokio_postgres::types::ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Value::Text(s) => s.to_sql(ty, out),
            Value::Bytes(b) => b.to_sql(ty, out),
            Value::Int(n) => n.to_sql(ty, out),
            Value::OptInt(n) => n.to_sql(ty, out),
            Value::Flag(f) => f.to_sql(ty, out),
            Value::OptFlag(f) => f.to_sql(ty, out),
            Value::List(l) => l.to_sql(ty, out),
        }
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <&str as tokio_postgres::types::ToSql>::accepts(ty)
            || <&[u8] as tokio_postgres::types::ToSql>::accepts(ty)
            || <i64 as tokio_postgres::types::ToSql>::accepts(ty)
            || <bool as tokio_postgres::types::ToSql>::accepts(ty)
            || <&[String] as tokio_postgres::types::ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholders_bind_every_column() {
        assert_eq!(COLUMNS.split(", ").count(), WIDTH);
        let numbered = |sigil: char| (1..=WIDTH).map(|i| format!("{sigil}{i}")).collect::<Vec<_>>().join(", ");
        assert_eq!(QMARKS, numbered('?'));
        assert_eq!(DOLLARS, numbered('$'));
    }
}
