//! Registration (`CredentialService.RegisterCredential`, WebAuthn L3 §7.1)
//! through the real binary and a tonic client on loopback: attestation
//! verified against configured roots, the profile enforced before anything
//! is stored, and the registered credential signing in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::pki::{AttestationCert, Ca};
use assertd_testkit::{Alg, Attestation, SoftAuthenticator};
use common::ceremony::*;
use common::*;
use pb::{Decision, ReasonCode};
use std::path::Path;

/// The approved security-key model, and another.
const MODEL: [u8; 16] = [0x11; 16];
const OTHER_MODEL: [u8; 16] = [0x22; 16];
/// UP and UV; BE and BS.
const UV: u8 = 0x04;
const SYNCED: u8 = 0x18;

/// The default config, a tier0 profile allowed for the RP, and `ca` as
/// the root for packed (vouching for MODEL) and fido-u2f attestations.
fn config(dir: &Path, ca: &Ca) -> String {
    let root = dir.join("attestation-root.pem");
    std::fs::write(&root, ca.pem()).unwrap();
    let model = uuid(MODEL);
    format!(
        r#"
[[relying_parties]]
id = "{RP}"
origins = ["{ORIGIN}"]
allowed_profiles = ["tier0"]

[profiles.tier0]
passkey_types = ["device_bound"]
attestation_enforcement = "registration_only"
key_restrictions = {{ enforced = true, enforcement_type = "allow", aaguids = ["{model}"] }}
user_verification = "required"

[[attestation_roots]]
format = "packed"
file = "{root}"
aaguids = ["{model}"]

[[attestation_roots]]
format = "fido-u2f"
file = "{root}"
"#,
        root = root.display()
    )
}

/// A security key with a packed attestation from the configured root
/// registers (attested, its AAGUID trusted) and then signs in; the same
/// credential id never registers twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attested_security_key_registers_and_signs_in() {
    let ca = Ca::new("assertd test attestation root");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(dir.path(), &ca));
    let cert = ca.attestation(MODEL, true);
    let key = SoftAuthenticator::new(Alg::Es256);
    let challenge = b"a registration challenge";

    let r = register(
        &server,
        request(b"alice", challenge, key.register(RP, ORIGIN, challenge, UV, MODEL, Attestation::Packed(&cert)), "tier0"),
    )
    .await;
    assert_eq!(reasons(&r), (Decision::Allow, vec![]));
    let a = r.attestation.as_ref().unwrap();
    assert_eq!((a.format.as_str(), a.r#type(), a.trusted), ("packed", pb::AttestationType::Basic, true));
    assert!(a.trust_anchor.contains("assertd test attestation root"), "{a:?}");
    let c = r.credential.unwrap();
    assert_eq!((c.attested, c.aaguid.as_slice(), c.user_handle.as_slice(), c.backup_eligible), (true, &MODEL[..], &b"alice"[..], false));
    assert_eq!(c.transports, vec!["usb".to_owned()]);
    assert_eq!(stored(&server, &key).await.unwrap().public_key_cose, key.public_key_cose);

    // Signs in under tier0 (attested, allowed model, UV), counting.
    let v = sign_in(&server, &key, UV, 1, "tier0").await;
    assert_eq!(v.decision(), Decision::Allow, "{:?}", v.reasons);

    // The same response again, and the same credential from another user:
    // never replaced.
    let again = key.register(RP, ORIGIN, challenge, UV, MODEL, Attestation::Packed(&cert));
    let r = register(&server, request(b"mallory", challenge, again, "tier0")).await;
    assert_eq!(reasons(&r), (Decision::Deny, vec![ReasonCode::CredentialAlreadyRegistered]));
    assert!(r.credential.is_none());
    assert_eq!(stored(&server, &key).await.unwrap().user_handle, b"alice");

    // fido-u2f, under the default profile: trusted (zero AAGUID).
    let u2f = SoftAuthenticator::new(Alg::Es256);
    let r = register(&server, request(b"bob", challenge, u2f.register(RP, ORIGIN, challenge, 0, [0; 16], Attestation::FidoU2f(&cert)), ""))
        .await;
    assert_eq!(reasons(&r), (Decision::Allow, vec![]));
    assert!(r.credential.unwrap().attested);

    // The registrations are counted.
    let metrics = server.scrape();
    assert!(
        metrics.contains(r#"assertd_registrations_total{decision="allow",format="packed",attestation="trusted",kind="device_bound"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"assertd_registration_reasons_total{code="CREDENTIAL_ALREADY_REGISTERED"} 1"#), "{metrics}");
}

/// What a case registers: flags, AAGUID, the attestation certificate (or
/// self attestation when the flag is set, none otherwise), what it gets.
type Case<'a> = (&'static str, u8, [u8; 16], Option<&'a AttestationCert>, bool, Vec<ReasonCode>);

/// tier0 at registration: every rule of the profile refuses before
/// anything is stored, with the same reasons as at sign-in; and a
/// credential registered without attestation under the lax default profile
/// is refused by tier0 at sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_refuses_before_anything_is_stored() {
    let ca = Ca::new("assertd test attestation root");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(dir.path(), &ca));
    let cert = ca.attestation(MODEL, true);
    let other_model = ca.attestation(OTHER_MODEL, true);
    let stranger = Ca::new("an unconfigured root").attestation(MODEL, true);
    let challenge = b"a registration challenge";

    let cases: Vec<Case<'_>> = vec![
        ("no attestation", UV, MODEL, None, false, vec![ReasonCode::AttestationRequired, ReasonCode::AaguidNotAllowed]),
        ("self attestation", UV, MODEL, None, true, vec![ReasonCode::AttestationUntrusted, ReasonCode::AaguidNotAllowed]),
        ("an unconfigured root", UV, MODEL, Some(&stranger), false, vec![ReasonCode::AttestationUntrusted, ReasonCode::AaguidNotAllowed]),
        ("another model", UV, OTHER_MODEL, Some(&other_model), false, vec![ReasonCode::AaguidNotAllowed]),
        ("synced", UV | SYNCED, MODEL, Some(&cert), false, vec![ReasonCode::PasskeyTypeNotAllowed]),
        ("no UV", 0, MODEL, Some(&cert), false, vec![ReasonCode::UserNotVerified]),
    ];
    for (what, flags, model, att, self_att, want) in cases {
        let key = SoftAuthenticator::new(Alg::Es256);
        let statement = match (att, self_att) {
            (Some(c), _) => Attestation::Packed(c),
            (None, true) => Attestation::PackedSelf,
            (None, false) => Attestation::None,
        };
        let r =
            register(&server, request(b"carol", challenge, key.register(RP, ORIGIN, challenge, flags, model, statement), "tier0")).await;
        assert_eq!(reasons(&r), (Decision::Deny, want), "{what}");
        assert!(r.credential.is_none() && stored(&server, &key).await.is_none(), "{what}: nothing stored");
    }

    // Under the default profile the same none registration is stored, not
    // attested (its AAGUID kept, untrusted)...
    let key = SoftAuthenticator::new(Alg::Es256);
    let r = register(&server, request(b"carol", challenge, key.register(RP, ORIGIN, challenge, UV, MODEL, Attestation::None), "")).await;
    assert_eq!(reasons(&r), (Decision::Allow, vec![]));
    let c = r.credential.unwrap();
    assert_eq!((c.attested, c.aaguid.as_slice()), (false, &MODEL[..]));
    assert_eq!(r.attestation.unwrap().r#type(), pb::AttestationType::None);
    // ...and tier0 refuses it at sign-in: its listed AAGUID vouched by nothing.
    let v = sign_in(&server, &key, UV, 1, "tier0").await;
    assert_eq!((v.decision(), codes(&v)), (Decision::Deny, vec![ReasonCode::AttestationRequired, ReasonCode::AaguidNotAllowed]));
}

/// Request-level problems are INVALID_ARGUMENT; a ceremony that does not
/// verify is a verdict with its reason; a caller needs `credentials.register`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registrations_and_callers_are_refused() {
    let ca = Ca::new("root");
    let dir = tempfile::tempdir().unwrap();
    let tokens = format!(
        r#"
[[clients]]
name = "gateway"
token_sha256 = ["{}"]
relying_parties = ["{RP}"]
rpcs = ["verify", "credentials.register"]

[[clients]]
name = "verifier"
token_sha256 = ["{}"]
relying_parties = ["*"]
rpcs = ["verify", "credentials.read"]
"#,
        sha256_hex("gateway-token"),
        sha256_hex("verifier-token")
    );
    let server = Server::start(&(config(dir.path(), &ca) + &tokens));
    let key = SoftAuthenticator::new(Alg::Es256);
    let challenge = b"a registration challenge";
    let good = request(b"dave", challenge, key.register(RP, ORIGIN, challenge, UV, MODEL, Attestation::None), "");
    let mut client = server.credentials().await;

    let status =
        |r: Result<tonic::Response<pb::RegisterCredentialResponse>, tonic::Status>| r.map(|_| tonic::Code::Ok).unwrap_or_else(|s| s.code());
    // Not in the caller's groups; no caller at all.
    assert_eq!(status(client.register_credential(with_bearer("verifier-token", good.clone())).await), tonic::Code::PermissionDenied);
    assert_eq!(status(client.register_credential(good.clone()).await), tonic::Code::Unauthenticated);
    // The gateway may register, not write credentials.
    let put = pb::PutCredentialRequest { credential: Some(record(RP, &key, b"dave", false)), ..Default::default() };
    assert_eq!(client.put_credential(with_bearer("gateway-token", put)).await.unwrap_err().code(), tonic::Code::PermissionDenied);

    let bad = |edit: fn(&mut pb::RegisterCredentialRequest)| {
        let mut r = good.clone();
        edit(&mut r);
        with_bearer("gateway-token", r)
    };
    for (what, req) in [
        ("no attestation object", bad(|r| r.attestation_object.clear())),
        ("no user", bad(|r| r.user_handle.clear())),
        ("a user handle over 64 bytes", bad(|r| r.user_handle = vec![1; 65])),
        ("no challenge", bad(|r| r.expected_challenge.clear())),
        ("both challenges", bad(|r| r.server_issued_challenge = true)),
        ("nine transports", bad(|r| r.transports = vec!["usb".into(); 9])),
        ("a transport that is not a name", bad(|r| r.transports = vec!["USB!".into()])),
        ("an attestation object over 64 KiB", bad(|r| r.attestation_object = vec![0; 64 * 1024 + 1])),
    ] {
        assert_eq!(status(client.register_credential(req).await), tonic::Code::InvalidArgument, "{what}");
    }
    // Another RP than the grant's.
    assert_eq!(status(client.register_credential(bad(|r| r.rp_id = "other.example".into())).await), tonic::Code::PermissionDenied);

    // Verdicts: a garbage object, a sign-in response, another origin.
    let verdict = |r: Result<tonic::Response<pb::RegisterCredentialResponse>, tonic::Status>| reasons(&r.unwrap().into_inner());
    let garbage = client.register_credential(bad(|r| r.attestation_object = vec![0xa1, 0x01])).await;
    assert_eq!(verdict(garbage), (Decision::Deny, vec![ReasonCode::AttestationInvalid]));
    let mut get = good.clone();
    get.client_data_json = String::from_utf8(get.client_data_json).unwrap().replace("webauthn.create", "webauthn.get").into_bytes();
    assert_eq!(
        verdict(client.register_credential(with_bearer("gateway-token", get)).await),
        (Decision::Deny, vec![ReasonCode::WrongCeremonyType])
    );
    let elsewhere = request(b"dave", challenge, key.register(RP, "https://evil.example", challenge, UV, MODEL, Attestation::None), "");
    assert_eq!(
        verdict(client.register_credential(with_bearer("gateway-token", elsewhere)).await),
        (Decision::Deny, vec![ReasonCode::OriginNotAllowed])
    );
    let unknown_profile = client.register_credential(bad(|r| r.profile = "nope".into())).await;
    assert_eq!(verdict(unknown_profile), (Decision::Deny, vec![ReasonCode::ProfileUnknown]));
    let get = pb::GetCredentialRequest { rp_id: RP.into(), credential_id: key.credential_id.clone() };
    assert_eq!(
        client.get_credential(with_bearer("verifier-token", get)).await.unwrap_err().code(),
        tonic::Code::NotFound,
        "nothing stored"
    );

    // And the good one registers.
    assert_eq!(verdict(client.register_credential(with_bearer("gateway-token", good)).await), (Decision::Allow, vec![]));
}

/// A challenge issued for the user's registration registers once; the same
/// challenge answered by another authenticator is a replay; one issued for
/// another user, or for a sign-in, does not open; a denied registration
/// whose attestation verified uses its challenge up (red before: a sign-in
/// challenge registered, and a denied registration left its challenge
/// usable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_challenge_registers_once() {
    let ca = Ca::new("root");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("challenge.key"), [7u8; 32]).unwrap();
    let keys = format!("\n[challenges]\nkeys = [{{ id = \"k1\", secret_file = \"{}\" }}]\n", dir.path().join("challenge.key").display());
    let server = Server::start(&(config(dir.path(), &ca) + &keys));
    let issue_for = |user: &'static [u8], ceremony: pb::Ceremony| {
        let server = &server;
        async move {
            let r = pb::IssueChallengeRequest { rp_id: RP.into(), user_handle: user.to_vec(), ttl_seconds: 0, ceremony: ceremony.into() };
            server.verifier().await.issue_challenge(r).await.unwrap().into_inner().challenge
        }
    };
    let issue = |user: &'static [u8]| issue_for(user, pb::Ceremony::Registration);
    let issued_with = |user: &[u8], challenge: &[u8], a: &SoftAuthenticator, profile: &str| pb::RegisterCredentialRequest {
        expected_challenge: Vec::new(),
        server_issued_challenge: true,
        ..request(user, challenge, a.register(RP, ORIGIN, challenge, UV, MODEL, Attestation::None), profile)
    };
    let issued = |user: &[u8], challenge: &[u8], a: &SoftAuthenticator| issued_with(user, challenge, a, "");

    let challenge = issue(b"erin").await;
    let first = SoftAuthenticator::new(Alg::Es256);
    assert_eq!(reasons(&register(&server, issued(b"erin", &challenge, &first)).await), (Decision::Allow, vec![]));
    let second = SoftAuthenticator::new(Alg::EdDsa);
    assert_eq!(
        reasons(&register(&server, issued(b"erin", &challenge, &second)).await),
        (Decision::Deny, vec![ReasonCode::ChallengeReplayed])
    );
    assert!(stored(&server, &second).await.is_none());

    let franks = issue(b"frank").await;
    let third = SoftAuthenticator::new(Alg::Es256);
    assert_eq!(reasons(&register(&server, issued(b"erin", &franks, &third)).await), (Decision::Deny, vec![ReasonCode::ChallengeInvalid]));

    // A sign-in challenge (the default ceremony) does not open here.
    for ceremony in [pb::Ceremony::SignIn, pb::Ceremony::Unspecified] {
        let sign_in = issue_for(b"erin", ceremony).await;
        let v = register(&server, issued(b"erin", &sign_in, &third)).await;
        assert_eq!(reasons(&v), (Decision::Deny, vec![ReasonCode::ChallengeInvalid]), "{ceremony:?}");
        assert!(v.verdict.unwrap().reasons[0].message.contains("issued for a sign-in, not a registration"));
    }

    // A registration the profile denies after its statement verified (no
    // attestation under tier0) is a final verdict: it uses the challenge up.
    let c = issue(b"erin").await;
    let v = register(&server, issued_with(b"erin", &c, &third, "tier0")).await;
    assert_eq!(v.verdict.as_ref().unwrap().decision(), Decision::Deny);
    assert!(!reasons(&v).1.contains(&ReasonCode::ChallengeReplayed));
    assert_eq!(reasons(&register(&server, issued(b"erin", &c, &third)).await), (Decision::Deny, vec![ReasonCode::ChallengeReplayed]));
    // So does a registration of an id already registered.
    let c = issue(b"erin").await;
    assert_eq!(
        reasons(&register(&server, issued(b"erin", &c, &first)).await),
        (Decision::Deny, vec![ReasonCode::CredentialAlreadyRegistered])
    );
    assert_eq!(reasons(&register(&server, issued(b"erin", &c, &third)).await), (Decision::Deny, vec![ReasonCode::ChallengeReplayed]));
    // A response whose statement does not verify (a broken signature over
    // a packed statement) does not: the genuine one still registers.
    let c = issue(b"erin").await;
    let cert = ca.attestation(MODEL, true);
    let mut forged = pb::RegisterCredentialRequest {
        expected_challenge: Vec::new(),
        server_issued_challenge: true,
        ..request(b"erin", &c, third.register(RP, ORIGIN, &c, UV, MODEL, Attestation::Packed(&cert)), "")
    };
    // Still valid JSON, another hash: the statement's signature fails.
    forged.client_data_json.insert(1, b' ');
    assert_eq!(reasons(&register(&server, forged).await).1, vec![ReasonCode::AttestationInvalid]);
    assert_eq!(reasons(&register(&server, issued(b"erin", &c, &third)).await), (Decision::Allow, vec![]));
}

/// Who may issue which challenge: `credentials.register` alone issues
/// registration challenges and not sign-in ones; `verify` alone the other
/// way round (red before: a registration-only gateway could issue none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_are_issued_to_the_group_of_their_ceremony() {
    let ca = Ca::new("root");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("challenge.key"), [7u8; 32]).unwrap();
    let extra = format!(
        r#"
[challenges]
keys = [{{ id = "k1", secret_file = "{}" }}]

[[clients]]
name = "enrol"
token_sha256 = ["{}"]
relying_parties = ["{RP}"]
rpcs = ["credentials.register"]

[[clients]]
name = "signin"
token_sha256 = ["{}"]
relying_parties = ["{RP}"]
rpcs = ["verify"]
"#,
        dir.path().join("challenge.key").display(),
        sha256_hex("enrol-token"),
        sha256_hex("signin-token"),
    );
    let server = Server::start(&(config(dir.path(), &ca) + &extra));
    let mut client = server.verifier().await;
    let ask = |token: &str, ceremony: pb::Ceremony| {
        with_bearer(
            token,
            pb::IssueChallengeRequest { rp_id: RP.into(), user_handle: b"u".to_vec(), ttl_seconds: 0, ceremony: ceremony.into() },
        )
    };
    assert!(client.issue_challenge(ask("enrol-token", pb::Ceremony::Registration)).await.is_ok());
    assert!(client.issue_challenge(ask("signin-token", pb::Ceremony::SignIn)).await.is_ok());
    for (token, ceremony) in
        [("enrol-token", pb::Ceremony::SignIn), ("enrol-token", pb::Ceremony::Unspecified), ("signin-token", pb::Ceremony::Registration)]
    {
        let e = client.issue_challenge(ask(token, ceremony)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{token} {ceremony:?}: {e:?}");
    }
    let mut unknown = ask("enrol-token", pb::Ceremony::Registration);
    unknown.get_mut().ceremony = 9;
    assert_eq!(client.issue_challenge(unknown).await.unwrap_err().code(), tonic::Code::InvalidArgument);
}

/// Real data: the W3C vectors' packed and apple registrations, with the
/// W3C test CA configured as their root, register trusted through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_w3c_vectors_register_trusted_through_the_api() {
    use assertd_testkit::vectors::registrations;
    let vectors = registrations();
    let w3c = |id: &str| vectors.iter().find(|v| v.id == id).unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("w3c-root.pem");
    std::fs::write(&root, w3c("w3c-reg-packed-es256").trust_anchors_pem.unwrap().concat()).unwrap();
    let config = format!(
        "[[relying_parties]]\nid = \"example.org\"\norigins = [\"https://example.org\"]\n\n[[attestation_roots]]\nformat = \"packed\"\nfile = \"{r}\"\n\n[[attestation_roots]]\nformat = \"apple\"\nfile = \"{r}\"\n",
        r = root.display()
    );
    let server = Server::start(&config);
    for (id, kind) in [("w3c-reg-packed-es256", pb::AttestationType::Basic), ("w3c-reg-apple-es256", pb::AttestationType::Anonca)] {
        let v = w3c(id);
        let r = pb::RegisterCredentialRequest {
            rp_id: v.rp_id.clone(),
            user_handle: b"w3c".to_vec(),
            client_data_json: assertd_testkit::from_b64url(&v.client_data_json_b64url).unwrap(),
            attestation_object: assertd_testkit::from_b64url(&v.attestation_object_b64url).unwrap(),
            expected_challenge: v.expected_challenge(),
            ..Default::default()
        };
        let r = server.credentials().await.register_credential(r).await.unwrap().into_inner();
        assert_eq!(reasons(&r), (Decision::Allow, vec![]), "{id}");
        let a = r.attestation.unwrap();
        assert_eq!((a.r#type(), a.trusted), (kind, true), "{id}");
        assert!(r.credential.unwrap().attested, "{id}");
    }
}

/// A decoded MDS3 payload naming MODEL (certified L2, rooted at `ca`) and
/// OTHER_MODEL (revoked); MODEL's status as given.
fn payload(ca: &Ca, model_status: &str) -> String {
    use base64::Engine;
    let root = base64::engine::general_purpose::STANDARD.encode(ca.der());
    format!(
        r#"{{"legalHeader":"test","no":42,"nextUpdate":"2099-01-01","entries":[
  {{"aaguid":"{m}","metadataStatement":{{"description":"Test Key","attestationRootCertificates":["{root}"]}},
   "statusReports":[{{"status":"FIDO_CERTIFIED_L2","effectiveDate":"2025-01-01"}},{{"status":"{model_status}","effectiveDate":"2026-01-01"}}]}},
  {{"aaguid":"{o}","metadataStatement":{{"description":"Recalled Key","attestationRootCertificates":["{root}"]}},
   "statusReports":[{{"status":"FIDO_CERTIFIED_L1","effectiveDate":"2024-01-01"}},{{"status":"REVOKED","effectiveDate":"2025-01-01"}}]}}
]}}"#,
        m = uuid(MODEL),
        o = uuid(OTHER_MODEL)
    )
}

/// FIDO metadata at registration and at sign-in: its roots make an
/// attestation trusted without [[attestation_roots]]; its name and
/// certification come back; a revoked model does not register; a minimum
/// certification is enforced; and a model compromised later stops signing
/// in as soon as the new metadata file is seen, without touching the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fido_metadata_vouches_and_revokes() {
    let ca = Ca::new("vendor attestation root");
    let dir = tempfile::tempdir().unwrap();
    let mds = dir.path().join("mds.json");
    std::fs::write(&mds, payload(&ca, "UPDATE_AVAILABLE")).unwrap();
    let config = format!(
        r#"config_watch_interval_seconds = 1
[[relying_parties]]
id = "{RP}"
origins = ["{ORIGIN}"]
allowed_profiles = ["certified", "l3"]

[profiles.certified]
attestation_enforcement = "registration_only"
minimum_certification = "l2"

[profiles.l3]
minimum_certification = "l3"

[metadata]
path = "{}"
format = "payload"
"#,
        mds.display()
    );
    let server = Server::start(&config);
    let challenge = b"a registration challenge";
    let key = SoftAuthenticator::new(Alg::Es256);
    let cert = ca.attestation(MODEL, true);

    let r = register(
        &server,
        request(b"gina", challenge, key.register(RP, ORIGIN, challenge, UV, MODEL, Attestation::Packed(&cert)), "certified"),
    )
    .await;
    assert_eq!(reasons(&r), (Decision::Allow, vec![]));
    let a = r.attestation.unwrap();
    assert!(a.trusted, "the metadata's root anchors it: {a:?}");
    assert_eq!((a.authenticator_name.as_str(), a.certification_status.as_str()), ("Test Key", "FIDO_CERTIFIED_L2"));
    assert!(a.trust_anchor.contains("vendor attestation root"));
    // The record and each sign-in name the model from the metadata.
    let record = r.credential.unwrap();
    assert_eq!(
        (record.authenticator_name.as_str(), record.authenticator_name_source()),
        ("Test Key", pb::AuthenticatorNameSource::Metadata)
    );

    // Below the profile's certification, and a revoked model.
    let l3 = SoftAuthenticator::new(Alg::Es256);
    let r = register(&server, request(b"gina", challenge, l3.register(RP, ORIGIN, challenge, UV, MODEL, Attestation::Packed(&cert)), "l3"))
        .await;
    assert_eq!(reasons(&r), (Decision::Deny, vec![ReasonCode::AuthenticatorNotCertified]));
    let recalled = SoftAuthenticator::new(Alg::Es256);
    let other = ca.attestation(OTHER_MODEL, true);
    let r = register(
        &server,
        request(b"gina", challenge, recalled.register(RP, ORIGIN, challenge, UV, OTHER_MODEL, Attestation::Packed(&other)), ""),
    )
    .await;
    assert_eq!(reasons(&r), (Decision::Deny, vec![ReasonCode::AuthenticatorStatusRevoked]));

    let v = sign_in(&server, &key, UV, 1, "certified").await;
    assert_eq!(v.decision(), Decision::Allow);
    let info = v.authenticator.unwrap();
    assert_eq!((info.authenticator_name.as_str(), info.authenticator_name_source()), ("Test Key", pb::AuthenticatorNameSource::Metadata));
    let metrics = server.scrape();
    assert!(metrics.contains("assertd_metadata_number 42") && metrics.contains("assertd_metadata_stale 0"), "{metrics}");

    // The model's attestation key is reported compromised: a new file.
    let next = dir.path().join("mds.json.new");
    std::fs::write(&next, payload(&ca, "ATTESTATION_KEY_COMPROMISE").replace("\"no\":42", "\"no\":43")).unwrap();
    std::fs::rename(&next, &mds).unwrap();
    server.wait_for_metric("assertd_metadata_number 43").await;
    let v = sign_in(&server, &key, UV, 2, "certified").await;
    assert_eq!((v.decision(), codes(&v)), (Decision::Deny, vec![ReasonCode::AuthenticatorStatusRevoked]));
    let record = stored(&server, &key).await.unwrap();
    assert!(!record.revoked && record.attested, "the record is untouched");
}

/// `[metadata] format = "blob"`: a BLOB signed under the configured root
/// loads; a tampered one, or one under another root, is refused by
/// `config check` (and so at start and reload), naming the key.
#[test]
fn a_metadata_blob_is_checked_against_its_root() {
    let ca = Ca::new("vendor attestation root");
    let mds_root = Ca::new("test MDS root");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("root.pem"), mds_root.pem()).unwrap();
    let config = format!(
        "[[relying_parties]]\nid = \"{RP}\"\norigins = [\"{ORIGIN}\"]\n\n[metadata]\npath = \"{d}/blob.jwt\"\nformat = \"blob\"\nroot_file = \"{d}/root.pem\"\n",
        d = dir.path().display()
    );
    std::fs::write(dir.path().join("assertd.toml"), &config).unwrap();
    let check = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_assertd"))
            .args(["config", "check"])
            .arg(dir.path().join("assertd.toml"))
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let signer = mds_root.attestation([0; 16], false);
    std::fs::write(dir.path().join("blob.jwt"), assertd_testkit::pki::signed_blob(&signer, &payload(&ca, "UPDATE_AVAILABLE"))).unwrap();
    let (ok, err) = check();
    assert!(ok, "{err}");

    let mut tampered = assertd_testkit::pki::signed_blob(&signer, &payload(&ca, "UPDATE_AVAILABLE"));
    let n = tampered.len() - 3;
    tampered[n] = if tampered[n] == b'A' { b'B' } else { b'A' };
    std::fs::write(dir.path().join("blob.jwt"), tampered).unwrap();
    let (ok, err) = check();
    assert!(!ok && err.contains("metadata.path") && err.contains("signature"), "{err}");

    let stranger = Ca::new("someone else").attestation([0; 16], false);
    std::fs::write(dir.path().join("blob.jwt"), assertd_testkit::pki::signed_blob(&stranger, &payload(&ca, "UPDATE_AVAILABLE"))).unwrap();
    let (ok, err) = check();
    assert!(!ok && err.contains("trust anchor"), "{err}");
}
