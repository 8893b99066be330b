//! Protobuf at the edge: API messages into the engine's and the store's
//! types (fields moved, payload bytes never copied), and back.

use crate::engine::{AssertionRequest, Outcome, RegistrationOutcome, RegistrationRequest};
use assertd_api::v1 as pb;
use assertd_policy::{Decision, RiskLevel, SignInContext};
use assertd_store::StoredCredential;
use assertd_verify::Attachment;
use assertd_verify::attestation::AttestationType;
use assertd_verify::metadata::NameSource;

/// An API assertion as the engine takes it.
pub fn assertion(a: pb::Assertion) -> AssertionRequest {
    let include_report_only = a.include_report_only;
    let context = context(a.context.as_ref());
    let additional_factor_verified = a.context.as_ref().and_then(|c| c.additional_factor_verified) == Some(true);
    AssertionRequest {
        request_id: a.request_id,
        rp_id: a.rp_id,
        credential_id: a.credential_id,
        client_data_json: a.client_data_json,
        authenticator_data: a.authenticator_data,
        signature: a.signature,
        user_handle: a.user_handle,
        expected_user_handle: a.expected_user_handle,
        allowed_credential_ids: a.allowed_credential_ids,
        expected_challenge: a.expected_challenge,
        appid_used: a.appid_used,
        server_issued_challenge: a.server_issued_challenge,
        profile: a.profile,
        context,
        additional_factor_verified,
        response_json: a.response_json,
        include_report_only,
    }
}

/// A batch of API assertions as the engine takes it; `include_report_only`
/// (the request's flag) asks for every item's report-only verdicts.
pub fn assertions(a: Vec<pb::Assertion>, include_report_only: bool) -> Vec<AssertionRequest> {
    a.into_iter()
        .map(|a| {
            let mut r = assertion(a);
            r.include_report_only |= include_report_only;
            r
        })
        .collect()
}

/// The gateway's sign-in context, as policy reads it.
pub fn context(c: Option<&pb::SignInContext>) -> SignInContext {
    let Some(c) = c else { return SignInContext::default() };
    SignInContext {
        // Set by the engine from the user's flag, never by the caller.
        user_risk: RiskLevel::Unspecified,
        user_risk_set_at_ms: 0,
        device_compliant: c.device_compliant,
        trusted_network: c.trusted_network,
        upstream_risk: match c.upstream_risk() {
            pb::RiskLevel::Unspecified => RiskLevel::Unspecified,
            pb::RiskLevel::Low => RiskLevel::Low,
            pb::RiskLevel::Medium => RiskLevel::Medium,
            pb::RiskLevel::High => RiskLevel::High,
        },
    }
}

/// The engine's outcome as the API answers it.
pub fn verdict(o: Outcome) -> pb::Verdict {
    let Outcome {
        request_id,
        verdict: v,
        authenticator: facts,
        credential: cred,
        backup_state_changed,
        signal_unknown_credential,
        authenticator_name,
        report_only,
    } = o;
    let authenticator = (facts.is_some() || cred.is_some()).then(|| {
        let mut info = pb::AuthenticatorInfo::default();
        if let Some(f) = facts {
            info.sign_count = f.sign_count;
            info.user_present = f.flags.user_present();
            info.user_verified = f.flags.user_verified();
            info.backup_eligible = f.flags.backup_eligible();
            info.backup_state = f.flags.backup_state();
            info.set_kind(if f.flags.backup_eligible() { pb::CredentialKind::Synced } else { pb::CredentialKind::DeviceBound });
        }
        if let Some(c) = cred {
            info.aaguid = c.aaguid.to_vec();
            info.user_handle = c.user_handle.to_vec();
            info.backup_state_changed = backup_state_changed;
            if let Some((name, source)) = authenticator_name {
                info.authenticator_name = name.to_string();
                info.set_authenticator_name_source(name_source(source));
            }
        }
        info
    });
    let mut out = pb::Verdict {
        request_id,
        risk_score: v.risk_score,
        reasons: reasons(v.reasons),
        retryable: v.retryable,
        authenticator,
        signal_unknown_credential_json: signal_unknown_credential.unwrap_or_default(),
        ..Default::default()
    };
    out.set_decision(decision(v.decision));
    out.report_only = report_only
        .into_iter()
        .map(|r| {
            let mut p = pb::ReportOnlyVerdict {
                profile: r.profile.to_string(),
                risk_score: r.verdict.risk_score,
                reasons: reasons(r.verdict.reasons),
                ..Default::default()
            };
            p.set_decision(decision(r.verdict.decision));
            p
        })
        .collect();
    out
}

fn reasons(findings: Vec<assertd_policy::Finding>) -> Vec<pb::Reason> {
    findings.into_iter().map(|f| pb::Reason { code: f.code.as_i32(), message: f.message }).collect()
}

fn decision(d: Decision) -> pb::Decision {
    match d {
        Decision::Allow => pb::Decision::Allow,
        Decision::StepUp => pb::Decision::StepUp,
        Decision::Deny => pb::Decision::Deny,
    }
}

/// The engine's outcomes as the API answers them, in order.
pub fn verdicts(o: Vec<Outcome>) -> Vec<pb::Verdict> {
    o.into_iter().map(verdict).collect()
}

/// A protobuf timestamp of Unix milliseconds.
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    // rem_euclid(1000) * 1e6 < 1e9 fits in i32.
    prost_types::Timestamp { seconds: ms.div_euclid(1000), nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0) }
}

/// A stored record as the API shows it.
pub fn record_to_pb(r: StoredCredential) -> pb::CredentialRecord {
    pb::CredentialRecord {
        rp_id: r.rp_id,
        credential_id: r.credential_id,
        user_handle: r.user_handle,
        public_key_cose: r.public_key_cose,
        sign_count: r.sign_count,
        backup_eligible: r.backup_eligible,
        backup_state: r.backup_state,
        aaguid: r.aaguid,
        attested: r.attested,
        transports: r.transports,
        revoked: r.revoked,
        created_at: Some(timestamp(r.created_at_ms)),
        last_used_at: r.last_used_at_ms.map(timestamp),
        aaguid_vouched: r.aaguid_vouched,
        trust_anchor: r.trust_anchor,
        discoverable: r.discoverable,
        authenticator_attachment: attachment_to_pb(r.attachment) as i32,
        uv_initialized: r.uv_initialized,
        // Filled by the service, which knows the metadata and the names.
        authenticator_name: String::new(),
        authenticator_name_source: pb::AuthenticatorNameSource::Unspecified as i32,
        temporary_access_pass_id: r.access_pass_id,
    }
}

/// Where a display name came from, as the API says it.
pub fn name_source(s: NameSource) -> pb::AuthenticatorNameSource {
    match s {
        NameSource::Metadata => pb::AuthenticatorNameSource::Metadata,
        NameSource::List => pb::AuthenticatorNameSource::List,
    }
}

fn attachment_to_pb(a: Option<Attachment>) -> pb::AuthenticatorAttachment {
    match a {
        None => pb::AuthenticatorAttachment::Unspecified,
        Some(Attachment::Platform) => pb::AuthenticatorAttachment::Platform,
        Some(Attachment::CrossPlatform) => pb::AuthenticatorAttachment::CrossPlatform,
    }
}

/// A `pb::RegisterCredentialRequest` as the engine's request.
pub fn registration(r: pb::RegisterCredentialRequest) -> RegistrationRequest {
    RegistrationRequest {
        rp_id: r.rp_id,
        user_handle: r.user_handle,
        client_data_json: r.client_data_json,
        attestation_object: r.attestation_object,
        expected_challenge: r.expected_challenge,
        profile: r.profile,
        transports: r.transports,
        server_issued_challenge: r.server_issued_challenge,
        response_json: r.response_json,
        temporary_access_pass: r.temporary_access_pass,
        ..Default::default()
    }
}

/// A registration's outcome as the response.
pub fn registration_outcome(o: RegistrationOutcome) -> pb::RegisterCredentialResponse {
    pb::RegisterCredentialResponse {
        verdict: Some(verdict(Outcome {
            request_id: String::new(),
            verdict: o.verdict,
            authenticator: o.authenticator,
            credential: None,
            backup_state_changed: false,
            signal_unknown_credential: None,
            authenticator_name: None,
            report_only: Vec::new(),
        })),
        credential: o.credential.map(record_to_pb),
        attestation: o.attestation.map(|a| pb::AttestationResult {
            format: a.format,
            r#type: match a.kind {
                None => pb::AttestationType::Unspecified,
                Some(AttestationType::None) => pb::AttestationType::None,
                Some(AttestationType::SelfAttestation) => pb::AttestationType::Self_,
                Some(AttestationType::Basic) => pb::AttestationType::Basic,
                Some(AttestationType::AttCa) => pb::AttestationType::Attca,
                Some(AttestationType::AnonCa) => pb::AttestationType::Anonca,
            } as i32,
            trusted: a.trusted,
            authenticator_name: a.authenticator_name.unwrap_or_default(),
            certification_status: a.certification_status.unwrap_or_default(),
            trust_anchor: a.trust_anchor.unwrap_or_default(),
            aaguid_vouched: a.aaguid_vouched,
        }),
    }
}

/// An API record as the store keeps it (timestamps are the server's).
pub fn record_from_pb(r: pb::CredentialRecord, now_ms: i64) -> StoredCredential {
    let attachment = match r.authenticator_attachment() {
        pb::AuthenticatorAttachment::Unspecified => None,
        pb::AuthenticatorAttachment::Platform => Some(Attachment::Platform),
        pb::AuthenticatorAttachment::CrossPlatform => Some(Attachment::CrossPlatform),
    };
    StoredCredential {
        rp_id: r.rp_id,
        credential_id: r.credential_id,
        user_handle: r.user_handle,
        public_key_cose: r.public_key_cose,
        sign_count: r.sign_count,
        backup_eligible: r.backup_eligible,
        backup_state: r.backup_state,
        aaguid: r.aaguid,
        attested: r.attested,
        transports: r.transports,
        revoked: r.revoked,
        created_at_ms: now_ms,
        last_used_at_ms: None,
        aaguid_vouched: r.aaguid_vouched,
        trust_anchor: r.trust_anchor,
        discoverable: r.discoverable,
        attachment,
        uv_initialized: r.uv_initialized,
        // Set only by a registration that redeemed a pass.
        access_pass_id: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use assertd_verify::ReasonCode;

    /// The verifier's reason codes and the API's are one vocabulary: same
    /// numbers, same names (with the proto's `REASON_CODE_` prefix), and no
    /// code on either side without its twin.
    #[test]
    fn reason_codes_match_the_proto_enum() {
        for code in ReasonCode::ALL {
            let api = pb::ReasonCode::try_from(code.as_i32()).unwrap_or_else(|_| panic!("{code} ({}) is not in the proto", code.as_i32()));
            assert_eq!(api.as_str_name(), format!("REASON_CODE_{}", code.as_str()), "{code}");
        }
        let mut api_codes = 0;
        for n in 0..1000 {
            let Ok(api) = pb::ReasonCode::try_from(n) else { continue };
            if api == pb::ReasonCode::Unspecified {
                continue;
            }
            api_codes += 1;
            assert!(ReasonCode::ALL.iter().any(|c| c.as_i32() == n), "{} has no ReasonCode", api.as_str_name());
        }
        assert_eq!(api_codes, ReasonCode::ALL.len());
    }

    /// The reason-code table of docs/api.md lists every code once (grouped
    /// by kind, not in the enum's order), and nothing else.
    #[test]
    fn the_api_guide_lists_every_reason_code() {
        let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md")).unwrap();
        let start = guide.find("| code | kind | when |").unwrap();
        let mut listed: Vec<&str> =
            guide[start..].lines().skip(2).take_while(|l| l.starts_with('|')).filter_map(|l| l.split('`').nth(1)).collect();
        let mut all: Vec<&str> = ReasonCode::ALL.iter().map(|c| c.as_str()).collect();
        listed.sort_unstable();
        all.sort_unstable();
        assert_eq!(listed, all);
    }

    #[test]
    fn decisions_and_risk_levels_map_one_to_one() {
        use assertd_policy::Verdict;
        for (d, want) in
            [(Decision::Allow, pb::Decision::Allow), (Decision::StepUp, pb::Decision::StepUp), (Decision::Deny, pb::Decision::Deny)]
        {
            let v = Verdict { decision: d, risk_score: 0, reasons: vec![], failures: 0, retryable: false };
            let o = Outcome {
                request_id: String::new(),
                verdict: v,
                authenticator: None,
                credential: None,
                backup_state_changed: false,
                signal_unknown_credential: None,
                authenticator_name: None,
                report_only: Vec::new(),
            };
            assert_eq!(verdict(o).decision(), want);
        }
        for (level, want) in [
            (pb::RiskLevel::Unspecified, RiskLevel::Unspecified),
            (pb::RiskLevel::Low, RiskLevel::Low),
            (pb::RiskLevel::Medium, RiskLevel::Medium),
            (pb::RiskLevel::High, RiskLevel::High),
        ] {
            let c = pb::SignInContext { upstream_risk: level as i32, ..Default::default() };
            assert_eq!(context(Some(&c)).upstream_risk, want);
        }
    }
}
