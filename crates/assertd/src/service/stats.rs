//! `CredentialService.GetCredentialStats`: the store's counts per group,
//! with the models' names for people.

#[allow(clippy::wildcard_imports)]
use super::*;
use assertd_store::StatsGroup;
use assertd_verify::metadata::{display_name, format_uuid};

/// What "active" means: used in the last 30 days.
const ACTIVE_DAYS: i64 = 30;

fn group(g: pb::CredentialGrouping) -> StatsGroup {
    match g {
        pb::CredentialGrouping::Unspecified | pb::CredentialGrouping::Kind => StatsGroup::Kind,
        pb::CredentialGrouping::Attested => StatsGroup::Attested,
        pb::CredentialGrouping::Model => StatsGroup::Model,
        pb::CredentialGrouping::Transport => StatsGroup::Transport,
        pb::CredentialGrouping::RegistrationWeek => StatsGroup::RegistrationWeek,
        pb::CredentialGrouping::Active => StatsGroup::Active,
    }
}

/// The rows for `rp_id` grouped by `by`; a model's key becomes its UUID and
/// its label the name the metadata (vouched) or the AAGUID list gives it
/// (an AAGUID vouched for and the same AAGUID merely claimed are two rows).
pub(super) async fn credential_stats(
    engine: &Engine,
    rp_id: &str,
    by: pb::CredentialGrouping,
) -> Result<Vec<pb::CredentialStatsRow>, Status> {
    let g = group(by);
    let since = now_ms().saturating_sub(ACTIVE_DAYS * 86_400_000);
    let rows = engine.credential_stats(rp_id, g, since).await.map_err(RequestError::from)?;
    let policy = engine.reloadable();
    let metadata = policy.metadata.as_ref().map(|m| &m.metadata);
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (key, label) = match g {
            StatsGroup::Model => {
                let (hex, vouched) = r.key.strip_suffix(":vouched").map_or((r.key.as_str(), false), |h| (h, true));
                match crate::trace::hex::<16>(hex.as_bytes()) {
                    Some(a) => (format_uuid(&a), display_name(metadata, &policy.aaguid_names, &a, vouched).map(|(n, _)| n.to_string())),
                    None => (r.key.clone(), None),
                }
            }
            _ => (r.key.clone(), None),
        };
        let vouched = g == StatsGroup::Model && r.key.ends_with(":vouched");
        out.push(pb::CredentialStatsRow {
            key,
            label: label.unwrap_or_default(),
            credentials: r.credentials,
            users: r.users,
            active_30d: r.active,
            vouched,
        });
    }
    Ok(out)
}
