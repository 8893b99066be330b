//! The signature math alone (raw `ring` verification with a prepared key, the
//! reference line; with the feature `aws-lc-rs`, raw aws-lc-rs beside it and
//! assertd's own verification on aws-lc-rs), each parsing/checking stage alone, the full `verify` per
//! algorithm, and policy evaluation.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use assertd_policy::{CounterCheck, CredentialFacts, Profile, SignInContext, evaluate};
use assertd_testkit::{Alg, AssertionParts, RawPublicKey, SoftAuthenticator};
use assertd_verify::{AssertionInput, AuthenticatorData, ClientData, CredentialInput, PublicKey, RelyingParty, verify};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const RP: &str = "login.example.com";
const ORIGIN: &str = "https://login.example.com";
const CHALLENGE: &[u8] = b"0123456789abcdef0123456789abcdef";

fn name(a: Alg) -> &'static str {
    match a {
        Alg::Es256 => "ES256",
        Alg::Es384 => "ES384",
        Alg::EdDsa => "EdDSA",
        Alg::Rs256 => "RS256",
        Alg::Ps256 => "PS256",
    }
}

/// One library verifying one signature with the key already decoded:
/// `ring` (group `raw_ring`, the floor every ratio divides by) and, built
/// with the feature `aws-lc-rs`, aws-lc-rs on the same keys and signatures
/// in the same run (group `raw_aws_lc_rs`).
macro_rules! raw_backend {
    ($module:ident, $krate:ident, $group:literal) => {
        mod $module {
            use super::*;
            use $krate::signature;

            pub fn bench(c: &mut Criterion) {
                let mut g = c.benchmark_group($group);
                g.throughput(Throughput::Elements(1));
                for alg in Alg::ALL {
                    let auth = SoftAuthenticator::new(alg);
                    let p = auth.assert(RP, ORIGIN, CHALLENGE, 0x05, 1);
                    let mut msg = p.authenticator_data.clone();
                    msg.extend(ring::digest::digest(&ring::digest::SHA256, &p.client_data_json).as_ref());
                    // Decode the COSE key once, outside the loop, into the library's inputs.
                    let raw = raw_key(&auth);
                    g.bench_function(name(alg), |b| {
                        b.iter(|| match &raw {
                            Raw::Unparsed(alg, k) => {
                                signature::UnparsedPublicKey::new(*alg, k).verify(black_box(&msg), black_box(&p.signature)).unwrap()
                            }
                            Raw::Rsa(params, n, e) => {
                                signature::RsaPublicKeyComponents { n, e }.verify(params, black_box(&msg), black_box(&p.signature)).unwrap()
                            }
                        })
                    });
                }
                g.finish();
            }

            enum Raw {
                Unparsed(&'static dyn signature::VerificationAlgorithm, Vec<u8>),
                Rsa(&'static signature::RsaParameters, Vec<u8>, Vec<u8>),
            }

            /// The raw key material the library takes.
            fn raw_key(auth: &SoftAuthenticator) -> Raw {
                match (auth.alg(), auth.raw_public_key()) {
                    (Alg::Es256, RawPublicKey::Bytes(k)) => Raw::Unparsed(&signature::ECDSA_P256_SHA256_ASN1, k),
                    (Alg::Es384, RawPublicKey::Bytes(k)) => Raw::Unparsed(&signature::ECDSA_P384_SHA384_ASN1, k),
                    (Alg::EdDsa, RawPublicKey::Bytes(k)) => Raw::Unparsed(&signature::ED25519, k),
                    (Alg::Rs256, RawPublicKey::Rsa { n, e }) => Raw::Rsa(&signature::RSA_PKCS1_2048_8192_SHA256, n, e),
                    (Alg::Ps256, RawPublicKey::Rsa { n, e }) => Raw::Rsa(&signature::RSA_PSS_2048_8192_SHA256, n, e),
                    (alg, _) => panic!("{alg:?}: the test key does not match its algorithm"),
                }
            }
        }
    };
}

raw_backend!(ring_raw, ring, "raw_ring");
#[cfg(feature = "aws-lc-rs")]
raw_backend!(aws_lc_raw, aws_lc_rs, "raw_aws_lc_rs");

/// The assertion as `verify` takes it.
fn input(p: &AssertionParts) -> AssertionInput<'_> {
    AssertionInput {
        client_data_json: &p.client_data_json,
        authenticator_data: &p.authenticator_data,
        signature: &p.signature,
        user_handle: b"",
        expected_user_handle: &[],
        challenge: assertd_verify::Challenge::Expected(CHALLENGE),
        appid_used: false,
    }
}

/// Everything `verify` does for one assertion, per algorithm.
fn full_verify(c: &mut Criterion) {
    let rp = RelyingParty::new(RP, vec![ORIGIN.into()], false, None);
    let mut g = c.benchmark_group("full_verify");
    g.throughput(Throughput::Elements(1));
    for alg in Alg::ALL {
        let auth = SoftAuthenticator::new(alg);
        let key = PublicKey::from_cose(&auth.public_key_cose).unwrap();
        let p = auth.assert(RP, ORIGIN, CHALLENGE, 0x05, 1);
        let input = input(&p);
        g.bench_function(name(alg), |b| {
            b.iter(|| {
                let v = verify(&rp, CredentialInput { key: &key, user_handle: b"user" }, black_box(&input));
                assert!(v.is_valid());
                v
            })
        });
    }
    g.finish();
}

/// Each stage alone.
fn stages(c: &mut Criterion) {
    let auth = SoftAuthenticator::new(Alg::Es256);
    let p = auth.assert(RP, ORIGIN, CHALLENGE, 0x05, 1);
    let rp = RelyingParty::new(RP, vec![ORIGIN.into()], false, None);
    let key = PublicKey::from_cose(&auth.public_key_cose).unwrap();
    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Elements(1));
    g.bench_function("client_data_parse_and_check", |b| {
        b.iter(|| {
            let cd = ClientData::parse(black_box(&p.client_data_json)).unwrap();
            let ok = cd.ty == "webauthn.get" && rp.origin_allowed(&cd.origin) && !cd.challenge.is_empty();
            assert!(ok);
        })
    });
    g.bench_function("authenticator_data_parse", |b| {
        b.iter(|| AuthenticatorData::parse(black_box(&p.authenticator_data)).unwrap().sign_count)
    });
    g.bench_function("cose_key_parse_es256", |b| b.iter(|| PublicKey::from_cose(black_box(&auth.public_key_cose)).unwrap()));
    let rsa = SoftAuthenticator::new(Alg::Rs256);
    g.bench_function("cose_key_parse_rs256", |b| b.iter(|| PublicKey::from_cose(black_box(&rsa.public_key_cose)).unwrap()));
    g.bench_function("sha256_client_data", |b| b.iter(|| ring::digest::digest(&ring::digest::SHA256, black_box(&p.client_data_json))));
    // What Assertion.response_json adds per assertion: the browser's
    // AuthenticationResponseJSON (with a user handle) unpacked into bytes.
    let json = assertd_testkit::json::authentication(&auth.credential_id, &p, Some(b"user-42")).to_string();
    g.bench_function("response_json_parse", |b| {
        b.iter(|| assertd_verify::AuthenticationResponse::parse(black_box(&json), 64 * 1024).unwrap().signature.len())
    });
    let input = input(&p);
    let v = verify(&rp, CredentialInput { key: &key, user_handle: b"user" }, &input);
    let profile = Profile::default();
    let facts = CredentialFacts {
        backup_eligible: false,
        attested: true,
        aaguid: [0; 16],
        aaguid_vouched: false,
        model_blocked: None,
        created_at_ms: 0,
    };
    g.bench_function("policy_evaluate", |b| {
        b.iter_batched(|| v.clone(), |v| evaluate(&profile, &v, &facts, CounterCheck::Ok, &SignInContext::default()), BatchSize::SmallInput)
    });
    g.finish();
}

#[cfg(not(feature = "aws-lc-rs"))]
criterion_group!(benches, ring_raw::bench, full_verify, stages);
// full_verify runs on aws-lc-rs in this build (assertd-verify's feature).
#[cfg(feature = "aws-lc-rs")]
criterion_group!(benches, ring_raw::bench, aws_lc_raw::bench, full_verify, stages);
criterion_main!(benches);
