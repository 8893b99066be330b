//! The FIDO2 server conformance tool's assertion-side cases
//! (Server-ServerAuthenticatorAssertionResponse-Resp-1, -2 and -3),
//! restated against assertd's gRPC API, following WebAuthn Level 3 where
//! the tool's older list differs. docs/development.md ("FIDO2 conformance, assertion
//! side") lists each case and what assertd answers.
//!
//! The API takes raw bytes, not the JSON/base64url envelope the tool sends
//! to a web server: "not base64url" and "not a DOMString" cases about the
//! envelope are the gateway's to reject before it calls assertd; their
//! nearest equivalents here are empty or garbage bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assertd_api::v1 as pb;
use assertd_testkit::{Alg, SoftAuthenticator, b64url};
use common::*;
use pb::{Decision, ReasonCode};

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const ED: u8 = 0x80;
/// An RP whose built-in profile discourages user verification.
const RP_DISC: &str = "discouraged.example.com";
const ORIGIN_DISC: &str = "https://discouraged.example.com";
const CHALLENGE: &[u8] = b"conformance challenge";

fn config() -> String {
    format!(
        "{}\n[[relying_parties]]\nid = \"{RP_DISC}\"\norigins = [\"{ORIGIN_DISC}\"]\nuser_verification = \"discouraged\"\n",
        default_config()
    )
}

fn client_data(type_: &str, challenge: &str, origin: &str) -> String {
    format!(r#"{{"type":{type_},"challenge":{challenge},"origin":{origin}}}"#)
}

fn good_client_data(origin: &str) -> String {
    client_data("\"webauthn.get\"", &format!("\"{}\"", b64url(CHALLENGE)), &format!("\"{origin}\""))
}

/// One case: its id in the tool's list, the assertion, and the answer.
struct Case {
    id: &'static str,
    assertion: pb::Assertion,
    decision: Decision,
    codes: Vec<ReasonCode>,
}

struct Builder<'a> {
    auth: &'a SoftAuthenticator,
    rp: &'a str,
}

impl Builder<'_> {
    /// An assertion over `client_data` and `auth_data`, correctly signed.
    fn signed(&self, client_data: &[u8], auth_data: &[u8]) -> pb::Assertion {
        let signature = self.auth.sign(auth_data, client_data);
        pb::Assertion {
            rp_id: self.rp.into(),
            credential_id: self.auth.credential_id.clone(),
            client_data_json: client_data.to_vec(),
            authenticator_data: auth_data.to_vec(),
            signature,
            expected_challenge: CHALLENGE.to_vec(),
            ..Default::default()
        }
    }

    fn with_flags(&self, origin: &str, flags: u8) -> pb::Assertion {
        self.signed(good_client_data(origin).as_bytes(), &SoftAuthenticator::authenticator_data(self.rp, flags, 0))
    }

    fn with_client_data(&self, client_data: &str) -> pb::Assertion {
        self.signed(client_data.as_bytes(), &SoftAuthenticator::authenticator_data(self.rp, UP | UV, 0))
    }
}

fn case(id: &'static str, assertion: pb::Assertion, decision: Decision, codes: &[ReasonCode]) -> Case {
    Case { id, assertion, decision, codes: codes.to_vec() }
}

fn deny(id: &'static str, assertion: pb::Assertion, codes: &[ReasonCode]) -> Case {
    case(id, assertion, Decision::Deny, codes)
}

fn allow(id: &'static str, assertion: pb::Assertion) -> Case {
    case(id, assertion, Decision::Allow, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertion_cases_of_the_fido2_server_conformance_tool() {
    use ReasonCode as R;
    let server = Server::start(&config());
    // A counter-less authenticator (count always 0) for most cases, one
    // with a counter, one for the UV-required RP, one for the
    // UV-discouraged RP.
    let plain = SoftAuthenticator::new(Alg::Es256);
    let counting = SoftAuthenticator::new(Alg::Es256);
    let strict = SoftAuthenticator::new(Alg::Es256);
    let lax = SoftAuthenticator::new(Alg::Es256);
    put(&server, record(RP, &plain, b"user", false)).await;
    put(&server, record(RP, &counting, b"user", false)).await;
    put(&server, record(RP_UV, &strict, b"user", false)).await;
    put(&server, record(RP_DISC, &lax, b"user", false)).await;
    let b = Builder { auth: &plain, rp: RP };
    let req = Builder { auth: &strict, rp: RP_UV };
    let disc = Builder { auth: &lax, rp: RP_DISC };

    let mut cases = vec![
        // Resp-1: the response structure.
        allow("Resp-1 P-1 valid response", b.with_flags(ORIGIN, UP | UV)),
        deny(
            "Resp-1 F-1 no credential id",
            {
                let mut a = b.with_flags(ORIGIN, UP | UV);
                a.credential_id.clear();
                a
            },
            &[R::InvalidRequest],
        ),
        deny(
            "Resp-1 F-3 credential id not one we know",
            {
                let mut a = b.with_flags(ORIGIN, UP | UV);
                a.credential_id = b"not-registered".to_vec();
                a
            },
            &[R::CredentialNotFound],
        ),
        deny(
            "Resp-1 F-9/F-11 clientDataJSON missing or empty",
            {
                let mut a = b.with_flags(ORIGIN, UP | UV);
                a.client_data_json.clear();
                a
            },
            &[R::MalformedClientData, R::SignatureInvalid],
        ),
        deny(
            "Resp-1 F-10 clientDataJSON not text",
            {
                let mut a = b.with_flags(ORIGIN, UP | UV);
                a.client_data_json = vec![0xff, 0xfe, 0x00];
                a
            },
            &[R::MalformedClientData, R::SignatureInvalid],
        ),
        deny(
            "Resp-1 F-12/F-15 authenticatorData missing or empty",
            {
                let mut a = b.with_flags(ORIGIN, UP | UV);
                a.authenticator_data.clear();
                a
            },
            &[R::MalformedAuthenticatorData, R::SignatureInvalid],
        ),
        deny(
            "Resp-1 F-14 authenticatorData garbage",
            {
                let mut a = b.with_flags(ORIGIN, UP | UV);
                a.authenticator_data = b"%%%not-authenticator-data%%%".to_vec();
                a
            },
            &[R::MalformedAuthenticatorData, R::SignatureInvalid],
        ),
        deny(
            "Resp-1 F-16/F-19 signature missing or empty",
            {
                let mut a = b.with_flags(ORIGIN, UP | UV);
                a.signature.clear();
                a
            },
            &[R::MalformedSignature],
        ),
        deny(
            "Resp-1 F-18 signature garbage",
            {
                let mut a = b.with_flags(ORIGIN, UP | UV);
                a.signature = b"%%%".to_vec();
                a
            },
            &[R::MalformedSignature],
        ),
        deny(
            "Resp-1 F-20 unverifiable signature",
            {
                let mut a = b.with_flags(ORIGIN, UP | UV);
                let n = a.signature.len() - 2;
                a.signature[n] ^= 0x40;
                a
            },
            &[R::SignatureInvalid],
        ),
        deny(
            "Resp-1 F-21 userHandle not the credential's",
            {
                let mut a = b.with_flags(ORIGIN, UP | UV);
                a.user_handle = b"someone else".to_vec();
                a
            },
            &[R::UserHandleMismatch],
        ),
        // Resp-2: CollectedClientData.
        deny(
            "Resp-2 F-1 type missing",
            b.with_client_data(&format!(r#"{{"challenge":"{}","origin":"{ORIGIN}"}}"#, b64url(CHALLENGE))),
            &[R::MalformedClientData],
        ),
        deny(
            "Resp-2 F-2 type not a string",
            b.with_client_data(&client_data("42", &format!("\"{}\"", b64url(CHALLENGE)), &format!("\"{ORIGIN}\""))),
            &[R::MalformedClientData],
        ),
        deny(
            "Resp-2 F-3 type empty",
            b.with_client_data(&client_data("\"\"", &format!("\"{}\"", b64url(CHALLENGE)), &format!("\"{ORIGIN}\""))),
            &[R::WrongCeremonyType],
        ),
        deny(
            "Resp-2 F-4 type something else",
            b.with_client_data(&client_data("\"payment.get\"", &format!("\"{}\"", b64url(CHALLENGE)), &format!("\"{ORIGIN}\""))),
            &[R::WrongCeremonyType],
        ),
        deny(
            "Resp-2 F-5 type webauthn.create",
            b.with_client_data(&client_data("\"webauthn.create\"", &format!("\"{}\"", b64url(CHALLENGE)), &format!("\"{ORIGIN}\""))),
            &[R::WrongCeremonyType],
        ),
        deny(
            "Resp-2 F-6 challenge missing",
            b.with_client_data(&format!(r#"{{"type":"webauthn.get","origin":"{ORIGIN}"}}"#)),
            &[R::MalformedClientData],
        ),
        deny(
            "Resp-2 F-7 challenge not a string",
            b.with_client_data(&client_data("\"webauthn.get\"", "[1,2]", &format!("\"{ORIGIN}\""))),
            &[R::MalformedClientData],
        ),
        deny(
            "Resp-2 F-8 challenge empty",
            b.with_client_data(&client_data("\"webauthn.get\"", "\"\"", &format!("\"{ORIGIN}\""))),
            &[R::ChallengeMismatch],
        ),
        deny(
            "Resp-2 F-9 challenge not base64url",
            b.with_client_data(&client_data("\"webauthn.get\"", "\"a+b/c==\"", &format!("\"{ORIGIN}\""))),
            &[R::ChallengeMismatch],
        ),
        deny(
            "Resp-2 F-10 challenge not the one issued",
            b.with_client_data(&client_data("\"webauthn.get\"", &format!("\"{}\"", b64url(b"another")), &format!("\"{ORIGIN}\""))),
            &[R::ChallengeMismatch],
        ),
        deny(
            "Resp-2 F-11 origin missing",
            b.with_client_data(&format!(r#"{{"type":"webauthn.get","challenge":"{}"}}"#, b64url(CHALLENGE))),
            &[R::MalformedClientData],
        ),
        deny(
            "Resp-2 F-12 origin not a string",
            b.with_client_data(&client_data("\"webauthn.get\"", &format!("\"{}\"", b64url(CHALLENGE)), "{}")),
            &[R::MalformedClientData],
        ),
        deny(
            "Resp-2 F-13 origin empty",
            b.with_client_data(&client_data("\"webauthn.get\"", &format!("\"{}\"", b64url(CHALLENGE)), "\"\"")),
            &[R::OriginNotAllowed],
        ),
        deny("Resp-2 F-14 origin not the RP's", b.with_client_data(&good_client_data("https://evil.example.com")), &[R::OriginNotAllowed]),
        // WebAuthn L3 reserves tokenBinding and no longer verifies it: the
        // tool's F-15..F-17 (malformed tokenBinding) are accepted.
        allow(
            "Resp-2 F-15 (L3: reserved) tokenBinding not an object",
            b.with_client_data(&format!(
                r#"{{"type":"webauthn.get","challenge":"{}","origin":"{ORIGIN}","tokenBinding":"x"}}"#,
                b64url(CHALLENGE)
            )),
        ),
        allow(
            "Resp-2 F-17 (L3: reserved) tokenBinding status unknown",
            b.with_client_data(&format!(
                r#"{{"type":"webauthn.get","challenge":"{}","origin":"{ORIGIN}","tokenBinding":{{"status":"bogus"}}}}"#,
                b64url(CHALLENGE)
            )),
        ),
        // Resp-3: authenticatorData.
        allow("Resp-3 P-1 counter always 0 (first)", b.with_flags(ORIGIN, UP | UV)),
        allow("Resp-3 P-1 counter always 0 (again)", b.with_flags(ORIGIN, UP | UV)),
        allow("Resp-3 P-2/P-3 UV and UP, UV required", req.with_flags(ORIGIN_UV, UP | UV)),
        deny("Resp-3 P-2 (L3: UP required) UV without UP, UV required", req.with_flags(ORIGIN_UV, UV), &[R::UserNotPresent]),
        deny("Resp-3 P-4 (L3: UP required) neither flag, UV preferred", b.with_flags(ORIGIN, 0), &[R::UserNotPresent, R::UserNotVerified]),
        allow("Resp-3 P-5 UP only, UV discouraged", disc.with_flags(ORIGIN_DISC, UP)),
        allow("Resp-3 P-6 UV despite discouraged", disc.with_flags(ORIGIN_DISC, UP | UV)),
        deny("Resp-3 P-7 (L3: UP required) neither flag, UV discouraged", disc.with_flags(ORIGIN_DISC, 0), &[R::UserNotPresent]),
        deny("Resp-3 F-5 UP only, UV required", req.with_flags(ORIGIN_UV, UP), &[R::UserNotVerified]),
        {
            // ED set, one extension: {"example.extension": "..."}.
            let mut ad = SoftAuthenticator::authenticator_data(RP, UP | UV | ED, 0);
            ad.extend([0xa1, 0x71]);
            ad.extend(b"example.extension");
            ad.extend([0x6a]);
            ad.extend(b"in a hole.");
            allow("Resp-3 P-8 extension data with ED", b.signed(good_client_data(ORIGIN).as_bytes(), &ad))
        },
        {
            let mut ad = SoftAuthenticator::authenticator_data(RP, UP | UV, 0);
            ad.extend([0xa1, 0x61, b'x', 0x01]);
            deny(
                "Resp-3 F-1 leftover bytes (extension data without ED)",
                b.signed(good_client_data(ORIGIN).as_bytes(), &ad),
                &[R::MalformedAuthenticatorData],
            )
        },
        {
            let ad = SoftAuthenticator::authenticator_data(RP, UP | UV | ED, 0);
            deny(
                "Resp-3 ED set without extension data",
                b.signed(good_client_data(ORIGIN).as_bytes(), &ad),
                &[R::MalformedAuthenticatorData],
            )
        },
        {
            let ad = SoftAuthenticator::authenticator_data("evil.example.com", UP | UV, 0);
            deny("Resp-3 F-2 rpIdHash of another RP", b.signed(good_client_data(ORIGIN).as_bytes(), &ad), &[R::RpIdMismatch])
        },
        {
            // Signed over another clientDataJSON than the one sent.
            let mut a = b.with_flags(ORIGIN, UP | UV);
            a.signature = plain.sign(&a.authenticator_data, good_client_data("https://other.example.com").as_bytes());
            deny("Resp-3 F-3 clientDataHash does not match", a, &[R::SignatureInvalid])
        },
    ];
    // F-4: a counting authenticator, count 5 then 5 again (in batch order).
    let count = |n| {
        Builder { auth: &counting, rp: RP }
            .signed(good_client_data(ORIGIN).as_bytes(), &SoftAuthenticator::authenticator_data(RP, UP | UV, n))
    };
    cases.push(allow("Resp-3 F-4 setup: counter 5", count(5)));
    cases.push(deny("Resp-3 F-4 counter not increased", count(5), &[R::SignCountRegression]));
    cases.push(deny("Resp-3 F-4 counter decreased", count(4), &[R::SignCountRegression]));

    let batch: Vec<pb::Assertion> =
        cases.iter().enumerate().map(|(i, c)| pb::Assertion { request_id: format!("{i}"), ..c.assertion.clone() }).collect();
    let verdicts = server
        .verifier()
        .await
        .verify_assertions(pb::VerifyAssertionsRequest { assertions: batch, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .verdicts;
    assert_eq!(verdicts.len(), cases.len());
    let mut failures = Vec::new();
    for (c, v) in cases.iter().zip(&verdicts) {
        let got = (v.decision(), codes(v));
        if got != (c.decision, c.codes.clone()) {
            failures.push(format!("{}: want {:?} {:?}, got {:?} {:?}", c.id, c.decision, c.codes, got.0, v.reasons));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
    eprintln!("{} conformance cases as expected", cases.len());
}
