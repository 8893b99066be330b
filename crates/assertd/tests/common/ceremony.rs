//! Registration helpers shared by the registration and trust tests.

use super::*;
use assertd_api::v1 as pb;
use assertd_testkit::{RegistrationParts, SoftAuthenticator};
use pb::{Decision, ReasonCode};

/// An AAGUID as a UUID string.
pub fn uuid(a: [u8; 16]) -> String {
    let h: String = a.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// A registration request for RP, with an expected challenge.
pub fn request(user: &[u8], challenge: &[u8], parts: RegistrationParts, profile: &str) -> pb::RegisterCredentialRequest {
    pb::RegisterCredentialRequest {
        rp_id: RP.into(),
        user_handle: user.to_vec(),
        client_data_json: parts.client_data_json,
        attestation_object: parts.attestation_object,
        expected_challenge: challenge.to_vec(),
        profile: profile.into(),
        transports: vec!["usb".into()],
        ..Default::default()
    }
}

/// Calls RegisterCredential without credentials.
pub async fn register(server: &Server, r: pb::RegisterCredentialRequest) -> pb::RegisterCredentialResponse {
    server.credentials().await.register_credential(r).await.unwrap().into_inner()
}

/// A registration's decision and reason codes.
pub fn reasons(r: &pb::RegisterCredentialResponse) -> (Decision, Vec<ReasonCode>) {
    let v = r.verdict.as_ref().unwrap();
    (v.decision(), codes(v))
}

/// The stored record of `a`, if any.
pub async fn stored(server: &Server, a: &SoftAuthenticator) -> Option<pb::CredentialRecord> {
    let got = server
        .credentials()
        .await
        .get_credential(pb::GetCredentialRequest { rp_id: RP.into(), credential_id: a.credential_id.clone() })
        .await;
    match got {
        Ok(r) => r.into_inner().credential,
        Err(s) if s.code() == tonic::Code::NotFound => None,
        Err(s) => panic!("{s:?}"),
    }
}

/// One sign-in of `a` under `profile`.
pub async fn sign_in(server: &Server, a: &SoftAuthenticator, flags: u8, count: u32, profile: &str) -> pb::Verdict {
    let challenge = b"a sign-in challenge";
    let item = pb::Assertion {
        profile: profile.into(),
        ..assertion("s", RP, &a.credential_id, challenge, a.assert(RP, ORIGIN, challenge, flags, count))
    };
    let r = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: vec![item], ..Default::default() })
        .await
        .unwrap();
    r.into_inner().verdicts.remove(0)
}
