//! `assertd-peers webauthn-rs INPUT SECONDS`: webauthn-rs-core 0.6 verifying
//! every assertion of INPUT (from `assertd-loadgen peer-input`) in a loop on
//! one thread, from the JSON a browser sends; prints verifies/s as JSON.
//!
//! `assertd-peers raw SECONDS`: ring and aws-lc-rs verifying one prepared
//! signature per algorithm (ES256, ES384, Ed25519, RS256, PS256) on one
//! thread; prints verifies/s per library and algorithm as JSON.

use base64::Engine;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use webauthn_rs_core::proto::{
    AttestationFormat, AttestationMetadata, AuthenticationState, COSEKey, Credential, ParsedAttestation, ParsedAttestationData,
    PublicKeyCredential, RegisteredExtensions, UserVerificationPolicy,
};
use webauthn_rs_core::WebauthnCore;

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).expect("base64url")
}

/// Calls `f` until `seconds` pass; returns calls per second.
fn rate(seconds: f64, mut f: impl FnMut() -> usize) -> f64 {
    let (start, mut n) = (Instant::now(), 0usize);
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        n += f();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn webauthn_rs(input: &str, seconds: f64) -> Value {
    let items: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(input).expect("input")).expect("JSON");
    let first = &items[0];
    let rp = first["rp_id"].as_str().expect("rp_id");
    let origin = url::Url::parse(first["origin"].as_str().expect("origin")).expect("origin URL");
    let core = WebauthnCore::new_unsafe_experts_only(rp, rp, vec![origin], Duration::from_secs(60), None, None);
    // Per assertion: the state the library would have kept since it issued
    // the challenge (its own state, with our challenge put in), and the
    // response JSON as the browser posts it.
    let mut prepared = Vec::new();
    for it in &items {
        let s = |k: &str| it[k].as_str().expect("field").to_owned();
        let cose: serde_cbor_2::Value = serde_cbor_2::from_slice(&b64(&s("public_key_cose"))).expect("COSE CBOR");
        let cred = Credential {
            cred_id: b64(&s("credential_id")),
            cred: COSEKey::try_from(&cose).expect("COSE key"),
            counter: 0,
            transports: None,
            user_verified: true,
            backup_eligible: false,
            backup_state: false,
            registration_policy: UserVerificationPolicy::Required,
            extensions: RegisteredExtensions::none(),
            attestation: ParsedAttestation { data: ParsedAttestationData::None, metadata: AttestationMetadata::None },
            attestation_format: AttestationFormat::None,
        };
        let builder = core.new_challenge_authenticate_builder(vec![cred], Some(UserVerificationPolicy::Required)).expect("builder");
        let (_, state) = core.generate_challenge_authenticate(builder).expect("state");
        let mut state = serde_json::to_value(&state).expect("state JSON");
        state["challenge"] = json!(s("challenge"));
        let state: AuthenticationState = serde_json::from_value(state).expect("state with our challenge");
        let response = json!({
            "id": s("credential_id"),
            "rawId": s("credential_id"),
            "type": "public-key",
            "response": {
                "authenticatorData": s("authenticator_data"),
                "clientDataJSON": s("client_data_json"),
                "signature": s("signature"),
                "userHandle": null,
            },
            "extensions": {},
        })
        .to_string();
        prepared.push((state, response));
    }
    let verify = |(state, response): &(AuthenticationState, String)| {
        let pkc: PublicKeyCredential = serde_json::from_str(response).expect("response JSON");
        core.authenticate_credential(&pkc, state)
    };
    for (i, p) in prepared.iter().enumerate() {
        if let Err(e) = verify(p) {
            panic!("webauthn-rs-core refused assertion {i}: {e:?}");
        }
    }
    let mut i = 0;
    let per_second = rate(seconds, || {
        let _ = verify(&prepared[i % prepared.len()]).expect("verifies");
        i += 1;
        1
    });
    json!({ "peer": "webauthn-rs-core 0.6.2", "assertions": prepared.len(), "verifies_per_second": per_second })
}

fn raw(seconds: f64) -> Value {
    let msg = b"assertd raw verification benchmark: authenticatorData || SHA-256(clientDataJSON)".to_vec();
    let rng = ring::rand::SystemRandom::new();
    let mut out = serde_json::Map::new();
    // ECDSA and Ed25519: sign with ring, verify with both.
    let ec = |alg_sign: &'static ring::signature::EcdsaSigningAlgorithm| {
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg_sign, &rng).expect("key");
        let k = ring::signature::EcdsaKeyPair::from_pkcs8(alg_sign, pkcs8.as_ref(), &rng).expect("key");
        use ring::signature::KeyPair;
        (k.public_key().as_ref().to_vec(), k.sign(&rng, &msg).expect("sign").as_ref().to_vec())
    };
    let (p256, s256) = ec(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING);
    let (p384, s384) = ec(&ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING);
    let ed = {
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        let k = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
        use ring::signature::KeyPair;
        (k.public_key().as_ref().to_vec(), k.sign(&msg).as_ref().to_vec())
    };
    // RSA-2048: a key generated by aws-lc-rs (ring cannot generate RSA keys).
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
    let rsa_pub = {
        use aws_lc_rs::signature::KeyPair;
        rsa.public_key().as_ref().to_vec()
    };
    let rsa_sig = |pad: &'static dyn aws_lc_rs::signature::RsaEncoding| {
        let mut sig = vec![0; rsa.public_modulus_len()];
        rsa.sign(pad, &aws_lc_rs::rand::SystemRandom::new(), &msg, &mut sig).expect("RSA sign");
        sig
    };
    let (rs256, ps256) = (rsa_sig(&aws_lc_rs::signature::RSA_PKCS1_SHA256), rsa_sig(&aws_lc_rs::signature::RSA_PSS_SHA256));

    macro_rules! both {
        ($name:expr, $key:expr, $sig:expr, $ring:expr, $awslc:expr) => {{
            let rk = ring::signature::UnparsedPublicKey::new($ring, $key.clone());
            let ak = aws_lc_rs::signature::UnparsedPublicKey::new($awslc, $key.clone());
            rk.verify(&msg, &$sig).expect("ring verifies");
            ak.verify(&msg, &$sig).expect("aws-lc-rs verifies");
            let r = rate(seconds, || {
                rk.verify(&msg, &$sig).expect("ring");
                1
            });
            let a = rate(seconds, || {
                ak.verify(&msg, &$sig).expect("aws-lc-rs");
                1
            });
            out.insert($name.into(), json!({ "ring": r, "aws_lc_rs": a, "aws_lc_rs_over_ring": a / r }));
        }};
    }
    both!("ES256", p256, s256, &ring::signature::ECDSA_P256_SHA256_ASN1, &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1);
    both!("ES384", p384, s384, &ring::signature::ECDSA_P384_SHA384_ASN1, &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1);
    both!("EdDSA", ed.0, ed.1, &ring::signature::ED25519, &aws_lc_rs::signature::ED25519);
    both!("RS256", rsa_pub, rs256, &ring::signature::RSA_PKCS1_2048_8192_SHA256, &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256);
    both!("PS256", rsa_pub, ps256, &ring::signature::RSA_PSS_2048_8192_SHA256, &aws_lc_rs::signature::RSA_PSS_2048_8192_SHA256);
    Value::Object(out)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = |i: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(5.0);
    match args.get(1).map(String::as_str) {
        Some("webauthn-rs") => println!("{}", webauthn_rs(&args[2], seconds(3))),
        Some("raw") => println!("{}", raw(seconds(2))),
        _ => {
            eprintln!("usage: assertd-peers webauthn-rs INPUT [SECONDS] | raw [SECONDS]");
            std::process::exit(2);
        }
    }
}
