//! Rules both ceremonies apply: cross-origin use and AAGUID restrictions.

use crate::profile::{EnforcementType, Profile};
use assertd_verify::metadata::format_uuid;
use assertd_verify::{Finding, ReasonCode, truncate};

/// §7.2 steps 13–14 / §7.1 steps 10–11 (crossOrigin, topOrigin): a cross-origin ceremony (with its top
/// origin, if any) is acceptable only where the profile expects to be
/// embedded. A profile that lists top origins accepts only those: a
/// cross-origin ceremony that names none is refused too. Top origins are
/// compared in full, and quoted truncated. `Ok` is the risk signal's text.
pub(crate) fn cross_origin(profile: &Profile, top: &Option<String>) -> Result<String, Finding> {
    let listed = |t: &str| profile.allowed_top_origins.iter().any(|a| a == t);
    let allowed = profile.allow_cross_origin
        && match top {
            Some(t) => listed(t),
            None => profile.allowed_top_origins.is_empty(),
        };
    match (allowed, top) {
        (true, Some(t)) => Ok(format!("cross-origin ceremony under top origin {:?}", truncate(t))),
        (true, None) => Ok("cross-origin ceremony".into()),
        (false, Some(t)) => Err(Finding::new(ReasonCode::CrossOrigin, format!("top origin {:?} is not allowed", truncate(t)))),
        (false, None) if profile.allow_cross_origin => {
            Err(Finding::new(ReasonCode::CrossOrigin, "the profile lists allowed top origins, and this cross-origin ceremony names none"))
        }
        (false, None) => Err(Finding::new(ReasonCode::CrossOrigin, "cross-origin ceremonies are not allowed")),
    }
}

/// Entra keyRestrictions: the AAGUID on the profile's allow list (and
/// vouched: an AAGUID no root vouched for never satisfies an allow list),
/// or not on its block list.
pub(crate) fn key_restriction(profile: &Profile, aaguid: &[u8; 16], vouched: bool) -> Option<Finding> {
    let k = profile.key_restrictions.as_ref()?;
    let uuid = format_uuid(aaguid);
    match k.enforcement_type {
        EnforcementType::Allow if k.permits(aaguid) && !vouched => Some(Finding::new(
            ReasonCode::AaguidNotAllowed,
            format!("AAGUID {uuid} is on the profile's allow list, but no attestation root vouched for this model"),
        )),
        _ if k.permits(aaguid) => None,
        EnforcementType::Allow => {
            Some(Finding::new(ReasonCode::AaguidNotAllowed, format!("AAGUID {uuid} is not on the profile's allow list")))
        }
        EnforcementType::Block => Some(Finding::new(ReasonCode::AaguidNotAllowed, format!("AAGUID {uuid} is on the profile's block list"))),
    }
}
