//! assertd's events as CAEP events: which Security Event Tokens one event
//! of the log yields for one receiver, and their claims. Pure: the caller
//! signs and sends them.
//!
//! Sources: OpenID Continuous Access Evaluation Profile 1.0 (final,
//! 2025-08-29) §2 (optional claims), §3.1 session-revoked, §3.3
//! credential-change, §3.4 assurance-level-change, §3.8 risk-level-change;
//! OpenID Shared Signals Framework 1.0 §3 (`sub_id`, complex subjects) and
//! §4.1 (no `sub`, no `exp`, `txn`), both at openid/sharedsignals e47d2a0.
//!
//! | assertd event | SETs |
//! |---|---|
//! | `credential_registered` / `_replaced` / `_revoked` / `_deleted` | credential-change `create` / `update` / `revoke` / `delete` |
//! | `user_credentials_revoked` | session-revoked |
//! | `user_risk_set` high | session-revoked, risk-level-change `HIGH` |
//! | `user_risk_set` medium | risk-level-change `MEDIUM` |
//! | `user_risk_cleared` / `_expired` | risk-level-change `LOW` |
//! | `user_risk_remediated` | risk-level-change `LOW`, assurance-level-change (`NIST-AAL`) |
//! | access passes, `authenticator_model_revoked`, anything newer | none |

use crate::config::Receiver;
use crate::engine::events::{Facts, Kind};
use assertd_policy::options::b64url;
use assertd_store::Event;
use serde_json::{Map, Value, json};

/// The base of CAEP's event type URIs.
pub const EVENT_TYPE_BASE: &str = "https://schemas.openid.net/secevent/caep/event-type/";

/// One SET to sign: its CAEP event type (the URI's last segment) and claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Set {
    /// E.g. `session-revoked`.
    pub event_type: &'static str,
    /// The JWT claims.
    pub claims: Value,
}

/// The SETs `event` yields for `receiver` (none when it filters the event
/// out), issued by `issuer` at `iat` (Unix seconds).
pub fn sets(issuer: &str, receiver: &Receiver, event: &Event, iat: i64) -> Vec<Set> {
    let e = &event.event;
    if receiver.rp_ids.as_ref().is_some_and(|rps| !rps.contains(&e.rp_id)) {
        return Vec::new();
    }
    let facts = Facts::from_json(&e.facts);
    let Some(kind) = Kind::parse(&e.kind) else { return Vec::new() };
    let mut out: Vec<(&'static str, Map<String, Value>)> = Vec::new();
    let level = |l: Option<&str>| match l {
        Some("high") => Some("HIGH"),
        Some("medium") => Some("MEDIUM"),
        _ => None,
    };
    let risk = |current: &'static str, previous: Option<&'static str>, reason: &str| {
        let mut m = Map::new();
        m.insert("principal".into(), json!("USER"));
        m.insert("current_level".into(), json!(current));
        if let Some(p) = previous {
            m.insert("previous_level".into(), json!(p));
        }
        m.insert("risk_reason".into(), json!(reason));
        ("risk-level-change", m)
    };
    let change = |change_type: &str| {
        let mut m = Map::new();
        let platform = facts.authenticator.as_deref() == Some("platform");
        m.insert("credential_type".into(), json!(if platform { "fido2-platform" } else { "fido2-roaming" }));
        m.insert("change_type".into(), json!(change_type));
        if let Some(a) = &facts.aaguid {
            m.insert("fido2_aaguid".into(), json!(a));
        }
        ("credential-change", m)
    };
    match kind {
        Kind::CredentialRegistered => out.push(change("create")),
        Kind::CredentialReplaced => out.push(change("update")),
        Kind::CredentialRevoked => out.push(change("revoke")),
        Kind::CredentialDeleted => out.push(change("delete")),
        Kind::UserCredentialsRevoked => out.push(("session-revoked", Map::new())),
        Kind::UserRiskSet => {
            let current = level(facts.level.as_deref());
            if current == Some("HIGH") {
                out.push(("session-revoked", Map::new()));
            }
            if let Some(c) = current {
                out.push(risk(c, None, "user_risk_set"));
            }
        }
        Kind::UserRiskCleared => out.push(risk("LOW", level(facts.level.as_deref()), "user_risk_cleared")),
        Kind::UserRiskExpired => out.push(risk("LOW", level(facts.level.as_deref()), "user_risk_expired")),
        Kind::UserRiskRemediated => {
            out.push(risk("LOW", level(facts.level.as_deref()), "user_risk_remediated"));
            // SP 800-63B: a multi-factor cryptographic authenticator (a
            // passkey that verified the user) meets AAL2; without user
            // verification it is single-factor, AAL1. The previous level is
            // not known here, so neither it nor a direction is claimed.
            let mut m = Map::new();
            m.insert("namespace".into(), json!("NIST-AAL"));
            m.insert("current_level".into(), json!(if facts.user_verified == Some(true) { "nist-aal2" } else { "nist-aal1" }));
            out.push(("assurance-level-change", m));
        }
        Kind::AccessPassIssued | Kind::AccessPassRedeemed | Kind::AccessPassRevoked | Kind::AuthenticatorModelRevoked => {}
    }
    out.into_iter()
        .filter(|(t, _)| receiver.events.iter().any(|r| r == t))
        .enumerate()
        .map(|(i, (event_type, mut body))| {
            body.insert("event_timestamp".into(), json!(e.at_ms.div_euclid(1000)));
            if let Some(who) = &facts.initiator {
                body.insert("initiating_entity".into(), json!(who));
            }
            let reason =
                if e.detail.is_empty() { format!("{} by {}", e.kind, e.actor) } else { format!("{} by {}: {}", e.kind, e.actor, e.detail) };
            body.insert("reason_admin".into(), json!({ "en": reason }));
            let claims = json!({
                "iss": issuer,
                "aud": receiver.audience,
                "iat": iat,
                "jti": jti(issuer, &receiver.name, event.id, i),
                "txn": event.id.to_string(),
                "sub_id": {
                    "format": "complex",
                    "user": { "format": "opaque", "id": b64url(&e.user_handle) },
                    "tenant": { "format": "opaque", "id": e.rp_id },
                },
                "events": { format!("{EVENT_TYPE_BASE}{event_type}"): body },
            });
            Set { event_type, claims }
        })
        .collect()
}

/// A SET's `jti`: the same for every push of one SET (a retry, or another
/// replica taking over), so a receiver drops a second copy; different for
/// each receiver, event and SET of an event.
pub fn jti(issuer: &str, receiver: &str, cursor: i64, index: usize) -> String {
    let input = format!("{issuer}\0{receiver}\0{cursor}\0{index}");
    let digest = ring::digest::digest(&ring::digest::SHA256, input.as_bytes());
    digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use assertd_store::NewEvent;

    fn receiver(events: &[&str], rp_ids: Option<Vec<String>>) -> Receiver {
        Receiver {
            name: "gw".into(),
            endpoint: "https://gw.example/ssf".parse().unwrap(),
            audience: "https://gw.example".into(),
            authorization: None,
            rp_ids,
            events: events.iter().map(|&e| e.to_owned()).collect(),
            tls: None,
            timeout: std::time::Duration::from_secs(1),
            give_up_after: std::time::Duration::from_secs(60),
        }
    }

    fn event(kind: &str, facts: &Facts) -> Event {
        Event {
            id: 42,
            event: NewEvent {
                at_ms: 1_700_000_000_500,
                rp_id: "example.com".into(),
                kind: kind.into(),
                user_handle: b"alice".to_vec(),
                credential_id: b"c".to_vec(),
                actor: "helpdesk".into(),
                detail: String::new(),
                facts: serde_json::to_string(facts).unwrap(),
            },
        }
    }

    const ALL: [&str; 4] = crate::config::SSF_EVENT_TYPES;

    #[test]
    fn each_event_maps_to_its_caep_events() {
        let r = receiver(&ALL, None);
        let types = |kind: &str, facts: Facts| {
            sets("https://a.example/", &r, &event(kind, &facts), 1).iter().map(|s| s.event_type).collect::<Vec<_>>()
        };
        let high = Facts { level: Some("high".into()), ..Facts::by("admin") };
        let medium = Facts { level: Some("medium".into()), ..Facts::by("admin") };
        assert_eq!(types("credential_revoked", Facts::default()), ["credential-change"]);
        assert_eq!(types("user_credentials_revoked", Facts::default()), ["session-revoked"]);
        assert_eq!(types("user_risk_set", high), ["session-revoked", "risk-level-change"]);
        assert_eq!(types("user_risk_set", medium), ["risk-level-change"]);
        assert_eq!(types("user_risk_remediated", Facts::default()), ["risk-level-change", "assurance-level-change"]);
        assert!(types("access_pass_issued", Facts::default()).is_empty());
        assert!(types("from_a_newer_release", Facts::default()).is_empty());
    }

    #[test]
    fn a_set_has_the_claims_ssf_asks_for() {
        let r = receiver(&ALL, None);
        let facts = Facts {
            aaguid: Some("ee882879-721c-4913-9775-3dfcce97072a".into()),
            authenticator: Some("cross-platform".into()),
            ..Facts::by("admin")
        };
        let s = sets("https://a.example/", &r, &event("credential_revoked", &facts), 1_700_000_100);
        let c = &s[0].claims;
        assert_eq!(c["iss"], "https://a.example/");
        assert_eq!(c["aud"], "https://gw.example");
        assert_eq!(c["txn"], "42");
        assert!(c.get("sub").is_none() && c.get("exp").is_none(), "SSF 1.0 §4.1: neither sub nor exp");
        assert_eq!(c["sub_id"]["user"], json!({ "format": "opaque", "id": "YWxpY2U" }));
        assert_eq!(c["sub_id"]["tenant"]["id"], "example.com");
        let body = &c["events"]["https://schemas.openid.net/secevent/caep/event-type/credential-change"];
        assert_eq!(body["credential_type"], "fido2-roaming");
        assert_eq!(body["change_type"], "revoke");
        assert_eq!(body["fido2_aaguid"], "ee882879-721c-4913-9775-3dfcce97072a");
        assert_eq!(body["event_timestamp"], 1_700_000_000);
        assert_eq!(body["initiating_entity"], "admin");
        assert_eq!(c["jti"].as_str().unwrap().len(), 32);
    }

    #[test]
    fn receivers_filter_by_relying_party_and_type() {
        let e = event("user_risk_set", &Facts { level: Some("high".into()), ..Facts::default() });
        assert!(sets("i", &receiver(&ALL, Some(vec!["other.example".into()])), &e, 1).is_empty());
        let only = sets("i", &receiver(&["session-revoked"], None), &e, 1);
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].event_type, "session-revoked");
    }

    #[test]
    fn jtis_differ_by_receiver_event_and_index_and_repeat_otherwise() {
        assert_eq!(jti("i", "a", 1, 0), jti("i", "a", 1, 0));
        let all = [jti("i", "a", 1, 0), jti("i", "b", 1, 0), jti("i", "a", 2, 0), jti("i", "a", 1, 1), jti("j", "a", 1, 0)];
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
    }
}
