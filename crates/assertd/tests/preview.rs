//! The policy preview against the truth: a generated population, previewed
//! under a candidate over gRPC and offline, and then every credential
//! signing in for real under the policy in force and under the candidate;
//! the preview's numbers and users must be exactly what the sign-ins say.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator};
use common::{ORIGIN, RP, Server, assertion, put};
use std::collections::{BTreeMap, BTreeSet};
use tokio_stream::StreamExt;

const OTHER: &str = "other.example.com";
const OTHER_ORIGIN: &str = "https://other.example.com";
/// The two AAGUIDs the candidate's admins profile allows (vouched only).
const ALLOWED: [u8; 2] = [0x11, 0x22];

fn in_force() -> String {
    format!(
        r#"
[[relying_parties]]
id = "{RP}"
origins = ["{ORIGIN}"]
default_profile = "baseline"
allowed_profiles = ["admins"]

[[relying_parties]]
id = "{OTHER}"
origins = ["{OTHER_ORIGIN}"]

[profiles.baseline]

[profiles.admins]
passkey_types = ["device_bound"]
"#
    )
}

/// The candidate as a PreviewPolicy overlay: synced passkeys refused
/// everywhere, admins held to attestation and two vouched models, and a
/// report-only profile that denies by score.
fn overlay() -> String {
    let uuid = |b: u8| common::ceremony::uuid([b; 16]);
    format!(
        r#"
[profiles.baseline]
passkey_types = ["device_bound"]

[profiles.admins]
passkey_types = ["device_bound"]
attestation_enforcement = "registration_only"
key_restrictions = {{ enforced = true, enforcement_type = "allow", aaguids = ["{}", "{}"] }}

[profiles.scored.risk]
step_up_at = 20
deny_at = 40
weights = {{ synced_passkey = 30, unattested_credential = 30 }}

[[relying_parties]]
id = "{RP}"
report_only_profiles = ["scored"]
"#,
        uuid(ALLOWED[0]),
        uuid(ALLOWED[1])
    )
}

/// The candidate as a whole config: the policy in force with the overlay
/// applied by hand.
fn candidate() -> String {
    let o = overlay();
    let (profiles, rp) = o.split_once("[[relying_parties]]").unwrap();
    let _ = rp;
    in_force()
        .replace("allowed_profiles = [\"admins\"]\n", "allowed_profiles = [\"admins\"]\nreport_only_profiles = [\"scored\"]\n")
        .replace("[profiles.baseline]\n\n[profiles.admins]\npasskey_types = [\"device_bound\"]\n", profiles)
}

/// One stored credential of the population.
struct Cred {
    auth: SoftAuthenticator,
    rp: &'static str,
    user: Vec<u8>,
    synced: bool,
    attested: bool,
    vouched: bool,
    aaguid: u8,
    revoked: bool,
}

/// A population from a fixed seed: users of 1–3 credentials of every kind.
fn population() -> Vec<Cred> {
    let mut seed: u64 = 0x5eed_cafe;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut out = Vec::new();
    for u in 0..160 {
        let rp = if u % 8 == 7 { OTHER } else { RP };
        for _ in 0..=next(3) {
            let alg = [Alg::Es256, Alg::EdDsa, Alg::Es384][usize::try_from(next(3)).unwrap()];
            let attested = next(2) == 0;
            out.push(Cred {
                auth: SoftAuthenticator::new(alg),
                rp,
                user: format!("user-{u:03}").into_bytes(),
                synced: next(5) < 2,
                attested,
                vouched: attested && next(4) != 0,
                aaguid: [0x11, 0x22, 0x33, 0x44][usize::try_from(next(4)).unwrap()],
                revoked: next(12) == 0,
            });
        }
    }
    out
}

fn record(c: &Cred) -> pb::CredentialRecord {
    pb::CredentialRecord {
        rp_id: c.rp.into(),
        credential_id: c.auth.credential_id.clone(),
        user_handle: c.user.clone(),
        public_key_cose: c.auth.public_key_cose.clone(),
        backup_eligible: c.synced,
        backup_state: c.synced,
        aaguid: vec![c.aaguid; 16],
        attested: c.attested,
        aaguid_vouched: c.vouched,
        revoked: c.revoked,
        ..Default::default()
    }
}

/// The slots the candidate judges each RP's users under: (RP, profile
/// name, the profile a live assertion names, judged as report-only).
const SLOTS: [(&str, &str, &str, bool); 4] =
    [(RP, "baseline", "", false), (RP, "admins", "admins", false), (RP, "scored", "", true), (OTHER, "(built-in)", "", false)];

/// Every unrevoked credential signs in for real under each slot (a clean
/// sign-in: UV, the stored backup flags, counter-less): the verdict per
/// (slot, credential index). Under the policy in force a slot it does not
/// have is judged by the RP's default, as the preview's counterpart is.
async fn sign_everyone_in(server: &Server, pop: &[Cred], report_only: bool) -> BTreeMap<(usize, usize), pb::Verdict> {
    let mut out = BTreeMap::new();
    let mut client = server.verifier().await;
    for (s, (rp, _, profile, ro)) in SLOTS.iter().enumerate() {
        let live: Vec<usize> = (0..pop.len()).filter(|i| pop[*i].rp == *rp && !pop[*i].revoked).collect();
        for chunk in live.chunks(50) {
            let assertions = chunk
                .iter()
                .map(|i| {
                    let c = &pop[*i];
                    let origin = if c.rp == RP { ORIGIN } else { OTHER_ORIGIN };
                    let flags = 0x04 | if c.synced { 0x18 } else { 0 };
                    pb::Assertion {
                        profile: (*profile).into(),
                        include_report_only: *ro && report_only,
                        ..assertion(
                            &i.to_string(),
                            c.rp,
                            &c.auth.credential_id,
                            b"challenge",
                            c.auth.assert(c.rp, origin, b"challenge", flags, 0),
                        )
                    }
                })
                .collect();
            let r = client.verify_assertions(pb::VerifyAssertionsRequest { assertions, ..Default::default() }).await.unwrap().into_inner();
            for (i, v) in chunk.iter().zip(r.verdicts) {
                let v = if *ro && report_only {
                    let ro = v.report_only.iter().find(|p| p.profile == "scored").expect("the report-only verdict");
                    pb::Verdict { decision: ro.decision, risk_score: ro.risk_score, reasons: ro.reasons.clone(), ..Default::default() }
                } else {
                    v
                };
                out.insert((s, *i), v);
            }
        }
    }
    out
}

/// The refusal reasons of a deny: its hard failures, or all its reasons
/// when the score denied (no hard failure: every reason is a signal).
fn refusal(v: &pb::Verdict) -> Vec<i32> {
    let hard: Vec<i32> = v
        .reasons
        .iter()
        .map(|r| r.code)
        .filter(|c| !matches!(pb::ReasonCode::try_from(*c), Ok(pb::ReasonCode::SyncedPasskey | pb::ReasonCode::UnattestedCredential)))
        .collect();
    if hard.is_empty() { v.reasons.iter().map(|r| r.code).collect() } else { hard }
}

/// A user without a usable credential: RP, profile, handle, reasons, newly.
type UserKey = (String, String, Vec<u8>, Vec<i32>, bool);

/// What the sign-ins say, in the preview's shape.
fn brute_force(
    pop: &[Cred],
    before: &BTreeMap<(usize, usize), pb::Verdict>,
    after: &BTreeMap<(usize, usize), pb::Verdict>,
) -> (Vec<pb::ProfilePreview>, BTreeSet<UserKey>) {
    let deny = pb::Decision::Deny as i32;
    let mut profiles = Vec::new();
    let mut users_out = BTreeSet::new();
    for (s, (rp, name, _, ro)) in SLOTS.iter().enumerate() {
        let mut p = pb::ProfilePreview {
            rp_id: (*rp).into(),
            profile: (*name).into(),
            role: (if *ro {
                "report_only"
            } else if *name == "admins" {
                "allowed"
            } else {
                "default"
            })
            .into(),
            ..Default::default()
        };
        let mut reasons: BTreeMap<i32, u64> = BTreeMap::new();
        let mut users: BTreeMap<&[u8], (u32, bool, bool, BTreeSet<i32>)> = BTreeMap::new();
        for (i, c) in pop.iter().enumerate().filter(|(_, c)| c.rp == *rp) {
            let u = users.entry(&c.user).or_default();
            u.0 += 1;
            if c.revoked {
                p.revoked += 1;
                continue;
            }
            p.credentials += 1;
            let (a, b) = (&after[&(s, i)], &before[&(s, i)]);
            match pb::Decision::try_from(a.decision).unwrap() {
                pb::Decision::Allow => p.allowed += 1,
                pb::Decision::StepUp => p.stepped_up += 1,
                _ => {
                    p.refused += 1;
                    if b.decision != deny {
                        p.newly_refused += 1;
                    }
                    for r in refusal(a) {
                        *reasons.entry(r).or_default() += 1;
                        u.3.insert(r);
                    }
                }
            }
            u.1 |= a.decision != deny;
            u.2 |= b.decision != deny;
        }
        p.refused_by_reason = reasons.into_iter().map(|(reason, credentials)| pb::ReasonCount { reason, credentials }).collect();
        for (user, (_, usable, before, why)) in &users {
            p.users += 1;
            if !usable {
                p.users_without_usable += 1;
                p.users_newly_without_usable += u64::from(*before);
                users_out.insert(((*rp).to_owned(), (*name).to_owned(), user.to_vec(), why.iter().copied().collect(), *before));
            }
        }
        profiles.push(p);
    }
    (profiles, users_out)
}

/// A whole preview stream: the users, and the summary from the last message.
async fn preview(server: &Server, req: pb::PreviewPolicyRequest) -> Result<(Vec<pb::LockedOutUser>, pb::PreviewSummary), tonic::Status> {
    let max = if req.page_size == 0 { 500 } else { req.page_size as usize };
    let mut stream = server.credentials().await.preview_policy(req).await?.into_inner();
    let mut users = Vec::new();
    let mut summary = None;
    while let Some(m) = stream.next().await {
        let m = m?;
        assert!(summary.is_none(), "a message after the summary");
        assert!(m.users.len() <= max, "pages of at most page_size");
        users.extend(m.users);
        summary = m.summary;
    }
    Ok((users, summary.expect("the summary")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_equals_every_credential_signing_in() {
    let pop = population();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &in_force());
    for c in &pop {
        put(&server, record(c)).await;
    }
    let (users, summary) = preview(
        &server,
        pb::PreviewPolicyRequest { candidate: overlay(), users: pb::PreviewUsers::AllLockedOut.into(), page_size: 7, ..Default::default() },
    )
    .await
    .unwrap();
    // Nothing was enforced: the policy in force still allows a synced
    // passkey.
    let before = sign_everyone_in(&server, &pop, false).await;
    server.terminate();
    let server = Server::start_in(dir.path(), &candidate());
    let after = sign_everyone_in(&server, &pop, true).await;
    let (expected, expected_users) = brute_force(&pop, &before, &after);

    let mut got = summary.profiles.clone();
    for p in &mut got {
        assert!(p.credentials + p.revoked > 0, "{p:?}");
    }
    assert_eq!(got, expected);
    assert_eq!(summary.credentials_scanned, pop.len() as u64);
    assert_eq!(summary.credentials_of_unknown_relying_parties, 0);
    let got_users: BTreeSet<_> =
        users.iter().map(|u| (u.rp_id.clone(), u.profile.clone(), u.user_handle.clone(), u.reasons.clone(), u.newly)).collect();
    assert_eq!(got_users.len(), users.len(), "each user once per profile");
    assert_eq!(got_users, expected_users);

    // The known answer by construction: the default profile refuses
    // exactly the unrevoked synced passkeys, all for their type.
    let synced = pop.iter().filter(|c| c.rp == RP && c.synced && !c.revoked).count() as u64;
    let baseline = &summary.profiles[0];
    assert_eq!((baseline.refused, baseline.newly_refused), (synced, synced));
    assert_eq!(baseline.refused_by_reason, [pb::ReasonCount { reason: pb::ReasonCode::PasskeyTypeNotAllowed.into(), credentials: synced }]);
    // Every profile of the candidate refuses someone, and leaves someone
    // without a usable credential: the test covers each path.
    for p in &summary.profiles[..3] {
        assert!(p.refused > 0 && p.users_without_usable > 0 && p.users_newly_without_usable > 0, "{p:?}");
    }
    assert!(summary.profiles[2].stepped_up > 0, "the scored profile steps some up");

    // Offline, from the two config files, on the same store: the same
    // answer (the store is read while the server runs).
    let cfg = tempfile::tempdir().unwrap();
    std::fs::write(cfg.path().join("candidate.toml"), candidate()).unwrap();
    std::fs::write(cfg.path().join("in-force.toml"), in_force()).unwrap();
    let out = cfg.path().join("preview.jsonl");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_assertd"))
        .args(["policy", "preview", "--users", "all", "--config"])
        .arg(cfg.path().join("candidate.toml"))
        .arg("--in-force")
        .arg(cfg.path().join("in-force.toml"))
        .arg("--out")
        .arg(&out)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let table = String::from_utf8(run.stdout).unwrap();
    assert!(table.contains(&format!("{} credentials read", pop.len())), "{table}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (last, user_lines) = lines.split_last().unwrap();
    assert_eq!(last["type"], "summary");
    let name = |c: i32| pb::ReasonCode::try_from(c).unwrap().as_str_name().trim_start_matches("REASON_CODE_").to_owned();
    for (line, p) in last["profiles"].as_array().unwrap().iter().zip(&summary.profiles) {
        let by_reason: BTreeMap<String, u64> = p.refused_by_reason.iter().map(|r| (name(r.reason), r.credentials)).collect();
        let expected = serde_json::json!({
            "rp_id": p.rp_id, "profile": p.profile, "role": p.role, "credentials": p.credentials, "revoked": p.revoked,
            "allowed": p.allowed, "stepped_up": p.stepped_up, "refused": p.refused, "newly_refused": p.newly_refused,
            "refused_by_reason": by_reason, "users": p.users, "users_without_usable": p.users_without_usable,
            "users_newly_without_usable": p.users_newly_without_usable,
        });
        assert_eq!(*line, expected);
    }
    assert_eq!(last["profiles"].as_array().unwrap().len(), summary.profiles.len());
    use base64::Engine as _;
    let offline_users: BTreeSet<_> = user_lines
        .iter()
        .map(|u| {
            let handle = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(u["user_handle"].as_str().unwrap()).unwrap();
            let reasons: Vec<String> = u["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect();
            (
                u["rp_id"].as_str().unwrap().to_owned(),
                u["profile"].as_str().unwrap().to_owned(),
                handle,
                reasons,
                u["newly"].as_bool().unwrap(),
            )
        })
        .collect();
    let online_users: BTreeSet<_> = got_users
        .iter()
        .map(|(rp, p, h, r, n)| (rp.clone(), p.clone(), h.clone(), r.iter().map(|c| name(*c)).collect::<Vec<_>>(), *n))
        .collect();
    assert_eq!(offline_users, online_users);

    // Newly only (the default), and one relying party.
    let (newly, s) = preview(&server, pb::PreviewPolicyRequest { rp_id: RP.into(), page_size: 7, ..Default::default() }).await.unwrap();
    assert!(newly.iter().all(|u| u.newly && u.rp_id == RP));
    assert_eq!(s.profiles.len(), 3);
    assert_eq!(s.profiles.iter().map(|p| p.users_newly_without_usable).sum::<u64>(), 0, "the candidate is now in force: nothing new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_candidates_get_a_specific_status_and_one_preview_runs_at_a_time() {
    let server = Server::start(&in_force());
    // More users (64-byte handles) than HTTP/2's 64 KiB window holds as
    // one-user messages: a reader that stops reading stops the scan.
    const USERS: usize = 2000;
    let a = SoftAuthenticator::new(Alg::Es256);
    for chunk in (0..USERS).collect::<Vec<_>>().chunks(100) {
        let puts = chunk.iter().map(|u| {
            let rec = pb::CredentialRecord {
                credential_id: format!("credential-{u}").into_bytes(),
                ..common::record(RP, &a, format!("{u:064}").as_bytes(), true)
            };
            put(&server, rec)
        });
        futures_util::future::join_all(puts).await;
    }
    let ask = |candidate: &str| pb::PreviewPolicyRequest { candidate: candidate.into(), ..Default::default() };
    let cases: [(pb::PreviewPolicyRequest, tonic::Code, &str); 6] = [
        (ask("[profiles.baseline]\npasskey_types = []"), tonic::Code::InvalidArgument, "profiles.baseline.passkey_types"),
        (ask("[store]\nbackend = \"postgres\""), tonic::Code::InvalidArgument, "unknown field `store`"),
        (ask("[[relying_parties]]\nid = \"nope.example\""), tonic::Code::InvalidArgument, "relying_parties[0].id"),
        (
            ask("[[relying_parties]]\nid = \"login.example.com\"\ndefault_profile = \"missing\""),
            tonic::Code::InvalidArgument,
            "default_profile",
        ),
        (
            pb::PreviewPolicyRequest { candidate_metadata: b"{}".to_vec(), ..Default::default() },
            tonic::Code::FailedPrecondition,
            "[metadata]",
        ),
        (pb::PreviewPolicyRequest { page_size: 5001, ..Default::default() }, tonic::Code::InvalidArgument, "page_size"),
    ];
    for (req, code, says) in cases {
        let e = preview(&server, req).await.unwrap_err();
        assert_eq!(e.code(), code, "{e:?}");
        assert!(e.message().contains(says), "{e:?}");
    }
    // A reader that stops reading holds the one preview slot: a second
    // preview is refused, and runs once the first is dropped.
    let strict = pb::PreviewPolicyRequest {
        candidate: "[profiles.baseline]\npasskey_types = [\"device_bound\"]".into(),
        page_size: 1,
        ..Default::default()
    };
    let mut first = server.credentials().await.preview_policy(strict.clone()).await.unwrap().into_inner();
    assert_eq!(first.next().await.unwrap().unwrap().users.len(), 1);
    let e = preview(&server, strict.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    drop(first);
    let mut ran = None;
    for _ in 0..50 {
        match preview(&server, strict.clone()).await {
            Ok(r) => {
                ran = Some(r);
                break;
            }
            Err(e) if e.code() == tonic::Code::ResourceExhausted => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            Err(e) => panic!("{e:?}"),
        }
    }
    let (users, summary) = ran.expect("the slot comes back once the first reader went away");
    assert_eq!(users.len(), USERS);
    assert_eq!(summary.profiles[0].users_newly_without_usable, USERS as u64);
}

/// FIDO metadata listing the model of `common::record()`'s credentials
/// (AAGUID aa…aa) with `status` as its latest report.
fn metadata(status: &str) -> String {
    use base64::Engine;
    let root = base64::engine::general_purpose::STANDARD.encode(assertd_testkit::pki::Ca::new("a vendor root").der());
    format!(
        r#"{{"legalHeader":"test","no":7,"nextUpdate":"2099-01-01","entries":[{{"aaguid":"aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",
   "metadataStatement":{{"description":"Leaky Key","attestationRootCertificates":["{root}"]}},
   "statusReports":[{{"status":"FIDO_CERTIFIED_L1","effectiveDate":"2025-01-01"}},{{"status":"{status}","effectiveDate":"2026-01-01"}}]}}]}}"#
    )
}

/// A candidate metadata file that revokes a model: its attested
/// credentials are refused, and the users who hold only those are listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_metadata_file_previews_a_revoked_model() {
    let dir = tempfile::tempdir().unwrap();
    let mds = dir.path().join("mds.json");
    std::fs::write(&mds, metadata("UPDATE_AVAILABLE")).unwrap();
    let server = Server::start_in(dir.path(), &format!("{}\n[metadata]\npath = \"{}\"\nformat = \"payload\"\n", in_force(), mds.display()));
    // alice and bob hold only the model; carol holds another key too.
    for user in [&b"alice"[..], b"bob", b"carol"] {
        put(&server, common::record(RP, &SoftAuthenticator::new(Alg::Es256), user, false)).await;
    }
    let other = SoftAuthenticator::new(Alg::Es256);
    put(&server, pb::CredentialRecord { aaguid: vec![0xbb; 16], ..common::record(RP, &other, b"carol", false) }).await;
    let ask = |m: &str| pb::PreviewPolicyRequest { candidate_metadata: m.as_bytes().to_vec(), rp_id: RP.into(), ..Default::default() };
    let (users, summary) = preview(&server, ask(&metadata("REVOKED"))).await.unwrap();
    let baseline = &summary.profiles[0];
    assert_eq!((baseline.refused, baseline.newly_refused, baseline.users_newly_without_usable), (3, 3, 2), "{baseline:?}");
    assert_eq!(baseline.refused_by_reason, [pb::ReasonCount { reason: pb::ReasonCode::AuthenticatorStatusRevoked.into(), credentials: 3 }]);
    let who: BTreeSet<&[u8]> = users.iter().filter(|u| u.profile == "baseline").map(|u| u.user_handle.as_slice()).collect();
    assert_eq!(who, BTreeSet::from([&b"alice"[..], b"bob"]));
    // The same file in force: nothing changes.
    let (_, same) = preview(&server, ask(&metadata("UPDATE_AVAILABLE"))).await.unwrap();
    assert_eq!(same.profiles[0].refused, 0);
    let e = preview(&server, ask("not metadata")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("candidate_metadata"), "{e:?}");
}
