//! Where trust in a registration comes from (issue 26 §1), through the real
//! binary: an AAGUID is vouched for only by a root the FIDO metadata lists
//! for it or the operator bound to it; any other root the chain reaches
//! makes the credential attested, never that model.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::pki::Ca;
use assertd_testkit::{Alg, Attestation, SoftAuthenticator};
use common::ceremony::*;
use common::*;
use pb::{Decision, ReasonCode};
use std::path::Path;

/// A security key model an admin approved, a vendor's other model, a third.
const YUBIKEY: [u8; 16] = [0x11; 16];
const COMPROMISED: [u8; 16] = [0x22; 16];
const THIRD: [u8; 16] = [0x33; 16];
/// UV set.
const UV: u8 = 0x04;

fn pem_file(dir: &Path, name: &str, ca: &Ca) -> String {
    let path = dir.join(name);
    std::fs::write(&path, ca.pem()).unwrap();
    path.display().to_string()
}

/// tier0 allows YUBIKEY only, attested; `attested` needs a trusted
/// attestation; `roots` are `[[attestation_roots]]` entries; `extra` may
/// define a `certified` profile (allowed for the RP when it does).
fn config(roots: &str, extra: &str) -> String {
    format!(
        r#"
[[relying_parties]]
id = "{RP}"
origins = ["{ORIGIN}"]
allowed_profiles = ["tier0", "attested"{certified}]

[profiles.tier0]
passkey_types = ["device_bound"]
attestation_enforcement = "registration_only"
key_restrictions = {{ enforced = true, enforcement_type = "allow", aaguids = ["{y}"] }}

[profiles.attested]
attestation_enforcement = "registration_only"
{roots}
{extra}"#,
        y = uuid(YUBIKEY),
        certified = if extra.contains("[profiles.certified]") { r#", "certified""# } else { "" }
    )
}

/// A chain that reaches an operator's root without `aaguids` (as Google's
/// hardware root vouches for every Android key) claims an approved model:
/// attested by that root, never that model. Red before: ALLOW, stored as a
/// trusted YubiKey, and its sign-ins passed tier0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_vouches_only_for_the_models_bound_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let android = Ca::new("a hardware root for any device");
    let vendor = Ca::new("the key vendor's root");
    let roots = format!(
        "[[attestation_roots]]\nformat = \"packed\"\nfile = \"{}\"\n\n[[attestation_roots]]\nformat = \"packed\"\nfile = \"{}\"\naaguids = [\"{}\"]\n",
        pem_file(dir.path(), "any.pem", &android),
        pem_file(dir.path(), "vendor.pem", &vendor),
        uuid(YUBIKEY)
    );
    let server = Server::start(&config(&roots, ""));
    let challenge = b"a registration challenge";

    // Any device under the unbound root, claiming the approved model.
    let forged = android.attestation(YUBIKEY, false);
    let key = SoftAuthenticator::new(Alg::Es256);
    let parts = key.register(RP, ORIGIN, challenge, UV, YUBIKEY, Attestation::Packed(&forged));
    let r = register(&server, request(b"mallory", challenge, parts.clone(), "tier0")).await;
    assert_eq!(reasons(&r), (Decision::Deny, vec![ReasonCode::AaguidNotAllowed]));
    let a = r.attestation.unwrap();
    assert!(a.trusted && !a.aaguid_vouched, "{a:?}");
    assert!(a.trust_anchor.contains("a hardware root for any device"), "{a:?}");
    assert!(stored(&server, &key).await.is_none());

    // Under a profile that needs attestation only: stored attested, its
    // AAGUID not vouched, the root named; tier0 refuses its sign-ins.
    let r = register(&server, request(b"mallory", challenge, parts, "attested")).await;
    assert_eq!(reasons(&r), (Decision::Allow, vec![]));
    let c = r.credential.unwrap();
    assert_eq!((c.attested, c.aaguid_vouched, c.aaguid.as_slice()), (true, false, &YUBIKEY[..]));
    assert!(c.trust_anchor.contains("a hardware root for any device"), "{c:?}");
    let stored_record = stored(&server, &key).await.unwrap();
    assert_eq!((stored_record.aaguid_vouched, stored_record.trust_anchor), (false, c.trust_anchor.clone()));
    let v = sign_in(&server, &key, UV, 1, "tier0").await;
    assert_eq!((v.decision(), codes(&v)), (Decision::Deny, vec![ReasonCode::AaguidNotAllowed]));
    assert_eq!(sign_in(&server, &key, UV, 2, "attested").await.decision(), Decision::Allow);

    // The vendor's root, bound to the model, vouches for it.
    let genuine = vendor.attestation(YUBIKEY, true);
    let key = SoftAuthenticator::new(Alg::Es256);
    let r = register(
        &server,
        request(b"alice", challenge, key.register(RP, ORIGIN, challenge, UV, YUBIKEY, Attestation::Packed(&genuine)), "tier0"),
    )
    .await;
    assert_eq!(reasons(&r), (Decision::Allow, vec![]));
    let c = r.credential.unwrap();
    assert!(c.attested && c.aaguid_vouched && c.trust_anchor.contains("the key vendor's root"), "{c:?}");
    assert!(r.attestation.unwrap().aaguid_vouched);
    assert_eq!(sign_in(&server, &key, UV, 1, "tier0").await.decision(), Decision::Allow);

    // ...and only for the model bound to it.
    let other = vendor.attestation(THIRD, true);
    let key = SoftAuthenticator::new(Alg::Es256);
    let r = register(
        &server,
        request(b"alice", challenge, key.register(RP, ORIGIN, challenge, UV, THIRD, Attestation::Packed(&other)), "attested"),
    )
    .await;
    assert_eq!(reasons(&r), (Decision::Allow, vec![]));
    assert!(!r.credential.unwrap().aaguid_vouched);
}

/// FIDO metadata naming YUBIKEY (root `yubico`, certified L2) and
/// COMPROMISED and THIRD (one root `vendor` for both; COMPROMISED's
/// attestation key reported compromised).
fn metadata(yubico: &Ca, vendor: &Ca) -> String {
    metadata_numbered(yubico, vendor, 7, "UPDATE_AVAILABLE")
}

/// [`metadata`] with serial `no` and YUBIKEY's latest status.
fn metadata_numbered(yubico: &Ca, vendor: &Ca, no: u64, yubikey_status: &str) -> String {
    use base64::Engine;
    let b64 = |ca: &Ca| base64::engine::general_purpose::STANDARD.encode(ca.der());
    let entry = |aaguid: [u8; 16], name: &str, root: &Ca, status: &str| {
        format!(
            r#"{{"aaguid":"{}","metadataStatement":{{"description":"{name}","attestationRootCertificates":["{}"]}},
   "statusReports":[{{"status":"FIDO_CERTIFIED_L2","effectiveDate":"2025-01-01"}},{{"status":"{status}","effectiveDate":"2026-01-01"}}]}}"#,
            uuid(aaguid),
            b64(root)
        )
    };
    format!(
        r#"{{"legalHeader":"test","no":{no},"nextUpdate":"2099-01-01","entries":[{},{},{}]}}"#,
        entry(YUBIKEY, "YubiKey", yubico, yubikey_status),
        entry(COMPROMISED, "Leaky Key", vendor, "ATTESTATION_KEY_COMPROMISE"),
        entry(THIRD, "Other Key", vendor, "UPDATE_AVAILABLE")
    )
}

/// With FIDO metadata: the model's name and certification come only with a
/// vouched AAGUID; a root the metadata lists for several models vouches
/// only for the model its certificate names (§8.2.1); and a batch key under
/// a root with a compromised model proves nothing when its certificate does
/// not name its model, whatever AAGUID it claims. Red before: the
/// compromised vendor's key claiming another model registered ALLOW,
/// trusted, as that model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_vouches_only_for_the_models_it_lists() {
    let dir = tempfile::tempdir().unwrap();
    let yubico = Ca::new("yubico root");
    let vendor = Ca::new("vendor root with a compromised model");
    std::fs::write(dir.path().join("mds.json"), metadata(&yubico, &vendor)).unwrap();
    // The operator also lists the vendor's root for packed (no models).
    let roots = format!("[[attestation_roots]]\nformat = \"packed\"\nfile = \"{}\"\n", pem_file(dir.path(), "vendor.pem", &vendor));
    let extra = format!(
        "[profiles.certified]\nminimum_certification = \"l2\"\n\n[metadata]\npath = \"{}\"\nformat = \"payload\"\n",
        dir.path().join("mds.json").display()
    );
    let server = Server::start(&config(&roots, &extra));
    let challenge = b"a registration challenge";
    let attempt = |ca: &Ca, aaguid: [u8; 16], in_certificate: bool, profile: &'static str| {
        let cert = ca.attestation(aaguid, in_certificate);
        let key = SoftAuthenticator::new(Alg::Es256);
        let parts = key.register(RP, ORIGIN, challenge, UV, aaguid, Attestation::Packed(&cert));
        let server = &server;
        async move { register(server, request(b"u", challenge, parts, profile)).await }
    };

    // The genuine model: vouched, named, certified.
    let r = attempt(&yubico, YUBIKEY, true, "certified").await;
    assert_eq!(reasons(&r), (Decision::Allow, vec![]));
    let a = r.attestation.unwrap();
    assert!(a.aaguid_vouched && a.authenticator_name == "YubiKey" && a.certification_status == "FIDO_CERTIFIED_L2", "{a:?}");

    // The compromised vendor's batch key (its certificate names no model)
    // claiming the approved model: its root proves nothing.
    let r = attempt(&vendor, YUBIKEY, false, "attested").await;
    assert_eq!(reasons(&r), (Decision::Deny, vec![ReasonCode::AttestationUntrusted]));
    let why = &r.verdict.as_ref().unwrap().reasons[0].message;
    assert!(why.contains("ATTESTATION_KEY_COMPROMISE"), "{why}");
    let a = r.attestation.unwrap();
    assert!(!a.trusted && a.authenticator_name.is_empty(), "{a:?}");

    // The vendor's sound model, its certificate naming it: vouched.
    let r = attempt(&vendor, THIRD, true, "attested").await;
    assert_eq!(reasons(&r), (Decision::Allow, vec![]));
    assert!(r.attestation.unwrap().aaguid_vouched);
    // The same root, the certificate naming no model: the root serves two
    // models, so it vouches for neither (and one of them is compromised).
    let r = attempt(&vendor, THIRD, false, "attested").await;
    assert_eq!(reasons(&r), (Decision::Deny, vec![ReasonCode::AttestationUntrusted]));

    // Yubico's root claiming the vendor's model: not that model's root.
    let r = attempt(&yubico, THIRD, true, "attested").await;
    assert_eq!(reasons(&r), (Decision::Deny, vec![ReasonCode::AttestationUntrusted]));
    // The operator's unbound root (the vendor's, configured for packed)
    // with a certificate naming THIRD is attested, but it does not make the
    // model certified: only the metadata's vouching does...
    let r = attempt(&vendor, THIRD, true, "certified").await;
    assert_eq!(reasons(&r), (Decision::Allow, vec![]), "the metadata lists the vendor's root for THIRD");
    // ...and a model the metadata does not list under the root reached is
    // named by nothing: not certified.
    let r = attempt(&yubico, THIRD, true, "certified").await;
    assert_eq!(reasons(&r), (Decision::Deny, vec![ReasonCode::AuthenticatorNotCertified]));
}

/// An older metadata file (a lower serial) renamed over the newer one is
/// refused at reload: the revocation it would lift stays, and the refusal
/// is counted. Red before: the older file loaded and the revoked model
/// signed in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_metadata_file_does_not_lift_a_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let (yubico, vendor) = (Ca::new("yubico root"), Ca::new("vendor root"));
    let mds = dir.path().join("mds.json");
    let write = |no: u64, status: &str| {
        let next = dir.path().join("mds.json.new");
        std::fs::write(&next, metadata_numbered(&yubico, &vendor, no, status)).unwrap();
        std::fs::rename(&next, &mds).unwrap();
    };
    write(42, "UPDATE_AVAILABLE");
    let extra = format!("[metadata]\npath = \"{}\"\nformat = \"payload\"\n", mds.display());
    let server = Server::start(&format!("config_watch_interval_seconds = 1\n{}", config("", &extra)));
    let challenge = b"a registration challenge";
    let key = SoftAuthenticator::new(Alg::Es256);
    let cert = yubico.attestation(YUBIKEY, true);
    let parts = key.register(RP, ORIGIN, challenge, UV, YUBIKEY, Attestation::Packed(&cert));
    assert_eq!(reasons(&register(&server, request(b"u", challenge, parts, "tier0")).await), (Decision::Allow, vec![]));
    assert_eq!(sign_in(&server, &key, UV, 1, "tier0").await.decision(), Decision::Allow);

    // no=43 revokes the model.
    write(43, "REVOKED");
    server.wait_for_metric("assertd_metadata_number 43").await;
    let v = sign_in(&server, &key, UV, 2, "tier0").await;
    assert_eq!(codes(&v), vec![ReasonCode::AuthenticatorStatusRevoked]);

    // The older, validly formed no=42 renamed over it: refused.
    write(42, "UPDATE_AVAILABLE");
    server.wait_for_metric(r#"assertd_metadata_refused_total{reason="older_serial"}"#).await;
    let v = sign_in(&server, &key, UV, 3, "tier0").await;
    assert_eq!(codes(&v), vec![ReasonCode::AuthenticatorStatusRevoked]);
    assert!(server.scrape().contains("assertd_metadata_number 43"));

    // The serial in force survives a restart: with the older file the
    // server refuses to start (red before: it started on no=42 and the
    // revoked model signed in).
    let mut server = server;
    server.terminate();
    let (cfg, data) = (server.dir.join("assertd.toml"), server.dir.join("data"));
    let bin = env!("CARGO_BIN_EXE_assertd");
    let mut child = std::process::Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // If the refusal broke, serve would run on: bound the wait, then fail.
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(15) {
            child.kill().unwrap();
            panic!("serve started on an older metadata file");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("older than the one in force (43") && err.contains("assertd metadata accept"), "{err}");
    // A deliberate rollback is an explicit step; then it starts on no=42.
    let out =
        std::process::Command::new(bin).args(["metadata", "accept", "--config"]).arg(&cfg).arg("--data-dir").arg(&data).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("now 42 (was 43)"), "{out:?}");
    let config = std::fs::read_to_string(&cfg).unwrap();
    let server = Server::start_in(&server.dir.clone(), &config);
    assert!(server.scrape().contains("assertd_metadata_number 42"));
    assert_eq!(sign_in(&server, &key, UV, 4, "tier0").await.decision(), Decision::Allow);
}

/// Issue 26 §3: what stale metadata does is the operator's choice. With
/// `when_stale = "refuse_registrations"`, metadata more than a day past its
/// nextUpdate refuses every registration (METADATA_STALE) and leaves
/// sign-ins alone; with the default ("keep") the same registration goes
/// through. Red before: there was no choice (stale metadata was used as is).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_metadata_does_what_the_operator_chose() {
    let dir = tempfile::tempdir().unwrap();
    let (yubico, vendor) = (Ca::new("yubico root"), Ca::new("vendor root"));
    let mds = dir.path().join("mds.json");
    std::fs::write(&mds, metadata_numbered(&yubico, &vendor, 7, "UPDATE_AVAILABLE").replace("2099-01-01", "2020-01-01")).unwrap();
    let challenge = b"a registration challenge";
    for (when, expect) in [("keep", (Decision::Allow, vec![])), ("refuse_registrations", (Decision::Deny, vec![ReasonCode::MetadataStale]))]
    {
        let extra = format!("[metadata]\npath = \"{}\"\nformat = \"payload\"\nwhen_stale = \"{when}\"\n", mds.display());
        let server = Server::start(&config("", &extra));
        assert!(server.scrape().contains("assertd_metadata_stale 1"));
        let key = SoftAuthenticator::new(Alg::Es256);
        let cert = yubico.attestation(YUBIKEY, true);
        let parts = key.register(RP, ORIGIN, challenge, UV, YUBIKEY, Attestation::Packed(&cert));
        assert_eq!(reasons(&register(&server, request(b"u", challenge, parts, "")).await), expect, "{when}");
        // Sign-ins go on either way.
        let other = SoftAuthenticator::new(Alg::Es256);
        put(&server, record(RP, &other, b"v", false)).await;
        let v = sign_in(&server, &other, UV, 0, "").await;
        assert_eq!(v.decision(), Decision::Allow, "{when}: {:?}", v.reasons);
    }
}
