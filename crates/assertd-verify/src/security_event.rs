//! Security Event Tokens (RFC 8417) as the OpenID Shared Signals Framework
//! 1.0 profiles them, signed ES256: a compact JWS (RFC 7515) whose header
//! is explicitly typed `secevent+jwt` (SSF 1.0 §4.1.1) and names the key,
//! and whose signature is ECDSA P-256 over SHA-256 as `R‖S`, 64 bytes
//! (RFC 7518 §3.4: ring's fixed-size form). The public key is published as
//! a JSON Web Key (RFC 7517, RFC 7518 §6.2).
//!
//! What this module does **not** do: it builds no event (the server maps
//! its events to CAEP's), delivers nothing, and reads no clock or file: the
//! caller passes the key's bytes, the claims and the randomness ECDSA needs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SecureRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use serde_json::{Value, json};

/// The JOSE `typ` of a SET (RFC 8417 §2.3).
pub const TYP: &str = "secevent+jwt";

/// Why a key or a token is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetError {
    /// The signing key is not a PKCS#8 P-256 key.
    #[error(
        "the signing key is not a PKCS#8 ECDSA P-256 private key (e.g. `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)"
    )]
    Key,
    /// Signing failed (the system RNG).
    #[error("signing failed")]
    Sign,
    /// Not three base64url parts, or a part not JSON.
    #[error("not a compact JWS: {0}")]
    Malformed(&'static str),
    /// A header that is not `typ` `secevent+jwt`, `alg` `ES256`.
    #[error("not an ES256 security event token")]
    Header,
    /// No published key has the token's `kid`.
    #[error("no published key has this kid")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Signature,
}

/// An ES256 key that signs SETs, with its key id.
#[derive(Debug)]
pub struct EventSigner {
    key: EcdsaKeyPair,
    kid: String,
}

impl EventSigner {
    /// The key from PKCS#8 DER (the body of a PEM `PRIVATE KEY`).
    pub fn from_pkcs8(der: &[u8], kid: &str, rng: &dyn SecureRandom) -> Result<Self, SetError> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, rng).map_err(|_| SetError::Key)?;
        Ok(Self { key, kid: kid.to_owned() })
    }

    /// A new key, as PKCS#8 DER (tests and `assertd` key generation).
    pub fn generate_pkcs8(rng: &dyn SecureRandom) -> Result<Vec<u8>, SetError> {
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng).map(|d| d.as_ref().to_vec()).map_err(|_| SetError::Key)
    }

    /// The key id (`kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The claims as a signed SET, in compact serialization.
    pub fn sign(&self, claims: &Value, rng: &dyn SecureRandom) -> Result<String, SetError> {
        let header = json!({ "alg": "ES256", "typ": TYP, "kid": self.kid });
        let mut token = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let sig = self.key.sign(rng, token.as_bytes()).map_err(|_| SetError::Sign)?;
        token.push('.');
        token.push_str(&B64.encode(sig.as_ref()));
        Ok(token)
    }

    /// The public key as a JWK (RFC 7518 §6.2.1: `x` and `y`, 32 bytes
    /// each, from the uncompressed point `04‖x‖y`).
    pub fn jwk(&self) -> Value {
        let point = self.key.public_key().as_ref();
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": B64.encode(&point[1..33]),
            "y": B64.encode(&point[33..65]),
            "use": "sig",
            "alg": "ES256",
            "kid": self.kid,
        })
    }
}

/// Verifies a SET against a JWK Set (`{"keys": [...]}`) and returns its
/// claims: the receiver's side, for tests and tools.
pub fn verify(token: &str, jwks: &Value) -> Result<Value, SetError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(SetError::Malformed("three parts"));
    };
    let json_part = |p: &str| -> Result<Value, SetError> {
        let bytes = B64.decode(p).map_err(|_| SetError::Malformed("base64url"))?;
        serde_json::from_slice(&bytes).map_err(|_| SetError::Malformed("JSON"))
    };
    let header = json_part(h)?;
    if header["typ"] != TYP || header["alg"] != "ES256" {
        return Err(SetError::Header);
    }
    let key = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == header["kid"] && k["kty"] == "EC" && k["crv"] == "P-256"))
        .ok_or(SetError::UnknownKey)?;
    let coordinate = |name: &str| key[name].as_str().and_then(|v| B64.decode(v).ok()).filter(|v| v.len() == 32);
    let (Some(x), Some(y)) = (coordinate("x"), coordinate("y")) else { return Err(SetError::UnknownKey) };
    let point = [&[4u8][..], &x, &y].concat();
    let sig = B64.decode(s).map_err(|_| SetError::Malformed("base64url"))?;
    let signed = &token[..h.len() + 1 + c.len()];
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(signed.as_bytes(), &sig).map_err(|_| SetError::Signature)?;
    json_part(c)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ring::rand::SystemRandom;

    fn signer(kid: &str) -> EventSigner {
        let rng = SystemRandom::new();
        EventSigner::from_pkcs8(&EventSigner::generate_pkcs8(&rng).unwrap(), kid, &rng).unwrap()
    }

    #[test]
    fn a_signed_set_verifies_with_the_published_key_only() {
        let rng = SystemRandom::new();
        let (k1, k2) = (signer("k1"), signer("k2"));
        let claims = json!({ "iss": "https://assertd.example", "jti": "1", "events": {} });
        let token = k1.sign(&claims, &rng).unwrap();
        let jwks = json!({ "keys": [k2.jwk(), k1.jwk()] });
        assert_eq!(verify(&token, &jwks).unwrap(), claims);
        let header: Value = serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header, json!({ "alg": "ES256", "typ": "secevent+jwt", "kid": "k1" }));
        assert_eq!(B64.decode(token.rsplit('.').next().unwrap()).unwrap().len(), 64, "R‖S");
        // Another key under the same kid, a changed claim, a missing key.
        let mut wrong = k2.jwk();
        wrong["kid"] = json!("k1");
        assert_eq!(verify(&token, &json!({ "keys": [wrong] })), Err(SetError::Signature));
        let (h, _) = token.split_once('.').unwrap();
        let (_, s) = token.rsplit_once('.').unwrap();
        let forged = format!("{h}.{}.{s}", B64.encode(json!({ "iss": "https://evil" }).to_string()));
        assert_eq!(verify(&forged, &jwks), Err(SetError::Signature));
        assert_eq!(verify(&token, &json!({ "keys": [k2.jwk()] })), Err(SetError::UnknownKey));
        assert_eq!(verify("a.b", &jwks), Err(SetError::Malformed("three parts")));
    }

    #[test]
    fn a_token_of_another_type_is_refused() {
        let rng = SystemRandom::new();
        let k = signer("k");
        let header = B64.encode(json!({ "alg": "ES256", "typ": "JWT", "kid": "k" }).to_string());
        let body = B64.encode("{}");
        let signed = format!("{header}.{body}");
        let sig = k.key.sign(&rng, signed.as_bytes()).unwrap();
        let token = format!("{signed}.{}", B64.encode(sig.as_ref()));
        assert_eq!(verify(&token, &json!({ "keys": [k.jwk()] })), Err(SetError::Header));
    }

    #[test]
    fn keys_that_are_not_p256_pkcs8_are_refused() {
        let rng = SystemRandom::new();
        assert_eq!(EventSigner::from_pkcs8(b"not a key", "k", &rng).unwrap_err(), SetError::Key);
    }
}
