//! Tests of the parent module.

use super::*;

#[test]
fn routes_cover_every_assertd_rpc() {
    use assertd_api::v1::{credential_service_server::CredentialServiceServer, verification_service_server::VerificationServiceServer};
    use tonic::server::NamedService;
    let services = [
        (
            <VerificationServiceServer<crate::service::VerificationSvc> as NamedService>::NAME,
            [
                "VerifyAssertions",
                "VerifyAssertionsStream",
                "IssueChallenge",
                "BeginAuthentication",
                "GetUserSignals",
                "RedeemTemporaryAccessPass",
            ]
            .as_slice(),
        ),
        (
            <CredentialServiceServer<crate::service::CredentialSvc> as NamedService>::NAME,
            [
                "RegisterCredential",
                "PutCredential",
                "GetCredential",
                "RevokeCredential",
                "DeleteCredential",
                "ListCredentials",
                "SetUserRisk",
                "ClearUserRisk",
                "RevokeUserCredentials",
                "BeginRegistration",
                "IssueTemporaryAccessPass",
                "RevokeTemporaryAccessPass",
                "ListTemporaryAccessPasses",
                "WatchEvents",
                "GetCredentialStats",
                "PreviewPolicy",
            ]
            .as_slice(),
        ),
    ];
    for (service, methods) in services {
        for m in methods {
            let r = route(&format!("/{service}/{m}"));
            assert_eq!(r.name, Some(*m));
            assert!(matches!(r.access, Access::Group(_) | Access::Either(..)), "{m}");
        }
    }
    assert_eq!(route("/grpc.health.v1.Health/Check").access, Access::Public);
    assert_eq!(route("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo").access, Access::Authenticated);
    assert_eq!(route("/nope/Nope").access, Access::Authenticated);
}
