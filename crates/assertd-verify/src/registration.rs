//! The registration verifier: W3C WebAuthn L3 §7.1 "Registering a New
//! Credential", §7.1 steps 5–25 (UTF-8 decode … credentialId length), for a
//! verifier that holds the relying party and the trust anchors. Like
//! [`crate::verify()`] it reports every failed check and the facts the
//! policy engine needs; §7.1 steps 26–27 (credentialId unique, credential
//! record) and §7.1 step 29 (store) are the engine's and the store's; what
//! the profile accepts (UV, passkey types, attestation enforcement, AAGUIDs,
//! algorithms, cross-origin) is `assertd-policy`'s. The step table is in
//! the crate documentation.
//!
//! | step | what | reason code |
//! |---|---|---|
//! | 5–6 | UTF-8 decode and parse `clientDataJSON` | `MALFORMED_CLIENT_DATA` |
//! | 7 | `C.type` is `webauthn.create` | `WRONG_CEREMONY_TYPE` |
//! | 8 | `C.challenge` is the expected (or an issued) challenge | `CHALLENGE_MISMATCH`, `CHALLENGE_INVALID`, `CHALLENGE_EXPIRED` |
//! | 9 | `C.origin` expected by the RP | `ORIGIN_NOT_ALLOWED` |
//! | 10 | `crossOrigin` / `topOrigin` expected | policy: `CROSS_ORIGIN` |
//! | 11 | hash = SHA-256(clientDataJSON) | |
//! | 12 | CBOR-decode the attestation object | `MALFORMED_AUTHENTICATOR_DATA` (authData), `ATTESTATION_INVALID` (object) |
//! | 13 | `rpIdHash` | `RP_ID_MISMATCH` |
//! | 14 | UP set | `USER_NOT_PRESENT` |
//! | 15 | UV set where required | policy: `USER_NOT_VERIFIED` |
//! | 16 | BS not set without BE | `BACKUP_STATE_INVALID` |
//! | 17–18 | BE / BS inform policy | policy: `PASSKEY_TYPE_NOT_ALLOWED` |
//! | 19 | the key's `alg` is acceptable; the key parses | `UNSUPPORTED_ALGORITHM`, `MALFORMED_AUTHENTICATOR_DATA`; legacy: policy |
//! | 20 | extensions well-formed, no trailing bytes; AT set | `MALFORMED_AUTHENTICATOR_DATA` |
//! | 21 | `fmt` is a supported format | `ATTESTATION_FORMAT_UNSUPPORTED` |
//! | 22 | the statement verifies (§8) | `ATTESTATION_INVALID` |
//! | 23–24 | trust anchors (configured per format, and the FIDO metadata's for the AAGUID); the trust path reaches one | [`Registration::attestation`]`.trusted`; policy: `ATTESTATION_UNTRUSTED`, `ATTESTATION_REQUIRED` |
//! | 25 | credentialId ≤ 1023 bytes | `MALFORMED_AUTHENTICATOR_DATA` |
//! | 26 | credentialId not yet registered | store: `CREDENTIAL_ALREADY_REGISTERED` |
//! | 27 | store the record | store |
//! | 28 | fail when not trustworthy | policy (`attestation_enforcement`) |

use crate::attestation::{self, Anchor, AttestationError, AttestationObject, AttestationType, Format, StatementInput, TrustAnchors};
use crate::authenticator_data::AuthenticatorData;
use crate::client_data::ClientData;
use crate::cose::{KeyError, PublicKey};
use crate::reason::{Finding, ReasonCode};
use crate::relying_party::RelyingParty;
use crate::verify::{AuthenticatorFacts, Challenge, check_client_data};
use ring::digest;

/// The longest credential id accepted (§7.1 step 25 (credentialId length)).
pub const MAX_CREDENTIAL_ID: usize = 1023;

/// A registration response, as the client sent it.
#[derive(Debug, Clone, Copy)]
pub struct RegistrationInput<'a> {
    /// `response.clientDataJSON`.
    pub client_data_json: &'a [u8],
    /// `response.attestationObject`.
    pub attestation_object: &'a [u8],
    /// The user the credential is created for (`user.id`).
    pub user_handle: &'a [u8],
    /// How the challenge is checked.
    pub challenge: Challenge<'a>,
}

/// Where trust comes from and when it is judged.
#[derive(Debug, Clone, Copy)]
pub struct TrustInput<'a> {
    /// Roots by statement format (`[[attestation_roots]]`).
    pub anchors: &'a TrustAnchors,
    /// FIDO metadata: the roots it lists for the AAGUID anchor too.
    pub metadata: Option<&'a crate::metadata::Metadata>,
    /// Now, Unix seconds (certificate validity).
    pub now: u64,
    /// Seconds a certificate may be outside its validity.
    pub skew: u64,
    /// Trust statements signed with SHA-1 (RS1), e.g. older Windows Hello
    /// TPMs; otherwise they verify but are not trusted.
    pub insecure_allow_sha1: bool,
}

/// The new credential, as authenticator data described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCredential {
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// The credential public key, COSE_Key bytes as sent.
    pub public_key_cose: Vec<u8>,
    /// The parsed key.
    pub key: PublicKey,
    /// The AAGUID from authenticator data (trusted only if the attestation is).
    pub aaguid: [u8; 16],
}

/// What the attestation statement established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationReport {
    /// The format identifier, as sent (capped at 32 bytes).
    pub format: String,
    /// The type, when the statement verified.
    pub kind: Option<AttestationType>,
    /// The trust path reached an anchor.
    pub trusted: bool,
    /// The anchor's subject, when trusted.
    pub trust_anchor: Option<String>,
    /// The anchor reached vouches for the AAGUID (the model): the FIDO
    /// metadata lists it for that AAGUID, or the operator bound it to it.
    /// Only then do the model's name, certification and a profile's AAGUID
    /// allow list apply.
    pub aaguid_vouched: bool,
    /// Why the attestation is not trusted, when it verified but is not.
    pub untrusted_because: Option<String>,
    /// The model's name in the FIDO metadata, when the AAGUID is vouched
    /// for (a claim names nothing).
    pub authenticator_name: Option<String>,
    /// The model's certification status in the FIDO metadata, when the
    /// AAGUID is vouched for.
    pub certification_status: Option<String>,
    /// The status the FIDO metadata reports blocking the claimed AAGUID's
    /// model (e.g. `REVOKED`), vouched for or not: a model blocked on its
    /// claim is refused either way.
    pub metadata_blocked: Option<String>,
}

/// The verifier's report for one registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Every check that failed.
    pub failures: Vec<Finding>,
    /// Set when authenticator data parsed.
    pub authenticator: Option<AuthenticatorFacts>,
    /// Set when the attested credential data and its key parsed.
    pub credential: Option<NewCredential>,
    /// Set when the attestation object decoded.
    pub attestation: Option<AttestationReport>,
    /// The cross-origin report, as [`crate::verify::Verification::cross_origin`].
    pub cross_origin: Option<Option<String>>,
    /// The server-issued challenge, when it opened.
    pub issued_challenge: Option<crate::challenge::Opened>,
}

impl Registration {
    /// True when no check failed.
    pub fn is_valid(&self) -> bool {
        self.failures.is_empty()
    }

    /// True when the attestation statement verified (§7.1 step 22 (attestation statement)): its
    /// signature, where the format has one, covers the client data hash.
    pub fn statement_verified(&self) -> bool {
        self.attestation.as_ref().is_some_and(|a| a.kind.is_some())
    }
}

/// Verifies one registration response against an RP and trust anchors.
pub fn verify_registration(rp: &RelyingParty, input: &RegistrationInput<'_>, trust: &TrustInput<'_>) -> Registration {
    let mut failures = Vec::new();
    let mut fail = |code: ReasonCode, message: String| failures.push(Finding::new(code, message));

    // §7.1 steps 5–6 (UTF-8 decode, parse JSON): JSONtext = UTF-8
    // decode(response.clientDataJSON); C = parse JSON. Then §7.1 steps 7–9
    // (type, challenge, origin), and the cross-origin report for §7.1 steps
    // 10–11 (crossOrigin, topOrigin).
    let (mut cross_origin, mut issued_challenge) = (None, None);
    match ClientData::parse(input.client_data_json) {
        Err(e) => fail(ReasonCode::MalformedClientData, e.to_string()),
        Ok(c) => {
            (cross_origin, issued_challenge) =
                check_client_data(rp, &c, crate::challenge::Ceremony::Registration, input.challenge, input.user_handle, &mut fail)
        }
    }
    // §7.1 step 12 (hash): hash = SHA-256(response.clientDataJSON).
    let hash = digest::digest(&digest::SHA256, input.client_data_json);
    let client_data_hash: &[u8; 32] = hash.as_ref().try_into().unwrap_or(&[0; 32]);

    // §7.1 step 13 (CBOR decode): CBOR-decode the attestation object into fmt, authData
    // and attStmt.
    let object = match AttestationObject::parse(input.attestation_object) {
        Ok(o) => o,
        Err(e) => {
            fail(e.reason(), e.to_string());
            return Registration { failures, authenticator: None, credential: None, attestation: None, cross_origin, issued_challenge };
        }
    };
    let mut report = AttestationReport {
        format: crate::text::truncate_to(&object.fmt, 32).to_owned(),
        kind: None,
        trusted: false,
        trust_anchor: None,
        aaguid_vouched: false,
        untrusted_because: None,
        authenticator_name: None,
        certification_status: None,
        metadata_blocked: None,
    };
    let ad = match AuthenticatorData::parse(&object.auth_data) {
        Ok(ad) => ad,
        Err(e) => {
            // The authData layout (§6.1) and §7.1 step 28 (extensions): the
            // extensions well-formed, no trailing bytes. Nothing more can be
            // checked.
            fail(ReasonCode::MalformedAuthenticatorData, e.to_string());
            return Registration {
                failures,
                authenticator: None,
                credential: None,
                attestation: Some(report),
                cross_origin,
                issued_challenge,
            };
        }
    };
    let authenticator = Some(AuthenticatorFacts { flags: ad.flags, sign_count: ad.sign_count });

    // §7.1 step 14 (rpIdHash): "Verify that the rpIdHash in authData is the SHA-256
    // hash of the RP ID expected by the Relying Party."
    if ad.rp_id_hash != rp.rp_id_hash() {
        fail(ReasonCode::RpIdMismatch, format!("rpIdHash is not SHA-256 of {:?}", rp.id()));
    }
    // §7.1 step 15 (UP): "verify that the UP bit of the flags in authData is
    // set" (assertd offers no conditional create, where it may be unset).
    if !ad.flags.user_present() {
        fail(ReasonCode::UserNotPresent, "the UP flag is not set".into());
    }
    // §7.1 step 17 (BS without BE): "If the BE bit of the flags in authData is not set,
    // verify that the BS bit is not set."
    if !ad.flags.backup_eligible() && ad.flags.backup_state() {
        fail(ReasonCode::BackupStateInvalid, "BS is set while BE is not".into());
    }
    // assertd rule, from §6.5.2: a create() response carries attested
    // credential data (AT set); without it there is no key to register.
    let Some(acd) = &ad.attested_credential else {
        fail(ReasonCode::MalformedAuthenticatorData, "the AT flag is not set: no attested credential data".into());
        return Registration { failures, authenticator, credential: None, attestation: Some(report), cross_origin, issued_challenge };
    };
    // §7.1 step 25 (credentialId length): "Verify that the credentialId is ≤ 1023 bytes."
    if acd.credential_id.is_empty() || acd.credential_id.len() > MAX_CREDENTIAL_ID {
        fail(
            ReasonCode::MalformedAuthenticatorData,
            format!("the credential id is {} bytes (1 to {MAX_CREDENTIAL_ID} allowed)", acd.credential_id.len()),
        );
    }
    // §7.1 step 20 (alg): the key's alg must be one the RP accepts: one assertd
    // verifies (legacy algorithms are the profile's), in a well-formed key.
    let key = match PublicKey::from_cose(acd.public_key_cose) {
        Ok(k) => k,
        Err(KeyError::Unsupported { alg, name }) => {
            fail(ReasonCode::UnsupportedAlgorithm, format!("the credential key's algorithm {alg} ({name}) is not supported"));
            return Registration { failures, authenticator, credential: None, attestation: Some(report), cross_origin, issued_challenge };
        }
        Err(e) => {
            fail(ReasonCode::MalformedAuthenticatorData, format!("credential public key: {e}"));
            return Registration { failures, authenticator, credential: None, attestation: Some(report), cross_origin, issued_challenge };
        }
    };

    // §7.1 steps 21–22 (fmt, attestation statement): a supported format, and its verification procedure.
    let statement_input = StatementInput {
        auth_data: &object.auth_data,
        client_data_hash,
        rp_id_hash: ad.rp_id_hash,
        aaguid: acd.aaguid,
        credential_id: acd.credential_id,
        key: &key,
    };
    // The claimed model in the FIDO metadata, looked up once: its roots are
    // candidates, its status and (when vouched) its name go in the report.
    let model = trust.metadata.and_then(|m| m.model(acd.aaguid));
    report.metadata_blocked = model.and_then(|m| m.blocked.clone());
    match attestation::verify_statement(&object.fmt, &object.att_stmt, &statement_input) {
        Err(e @ AttestationError::Unsupported(_)) => fail(e.reason(), e.to_string()),
        Err(e) => fail(e.reason(), format!("{} attestation: {e}", report.format)),
        Ok(statement) => {
            // §7.1 steps 23–24 (trust anchors, assess trust): trust anchors for the format and model; the
            // trust path must reach one. Each anchor offered says whether it
            // vouches for the claimed AAGUID: the operator's roots only for
            // the models bound to them, the metadata's roots of that AAGUID.
            let mut candidates = trust.anchors.for_format(&object.fmt, acd.aaguid);
            if let Some(model) = model {
                candidates.extend(model.roots.iter().map(|r| (r, true)));
            }
            let anchors: Vec<&Anchor> = candidates.iter().map(|(a, _)| *a).collect();
            let mut t = attestation::assess(&statement, &anchors, trust.now, trust.skew, trust.insecure_allow_sha1);
            // assertd rule (FIDO MDS3): a root the metadata lists for a model
            // whose attestation key is compromised proves nothing for a
            // certificate that does not name its model.
            if let (Some(reached), Some(mds)) = (t.reached.and_then(|i| anchors.get(i)), trust.metadata)
                && !statement.aaguid_in_certificate
                && let Some((aaguid, _)) =
                    mds.models_under(reached).find(|(_, m)| m.blocked.as_deref() == Some("ATTESTATION_KEY_COMPROMISE"))
            {
                let why = format!(
                    "the metadata reports ATTESTATION_KEY_COMPROMISE for a model under this root ({}), and the certificate does not name its model",
                    crate::metadata::format_uuid(aaguid)
                );
                t = attestation::Trust { trusted: false, anchor: None, reached: None, why_not: Some(why) };
            }
            let shared = |root: &Anchor| trust.metadata.is_some_and(|m| m.shared_root(root));
            report.aaguid_vouched =
                Format::parse(&object.fmt).is_some_and(|f| attestation::vouches(f, &statement, &t, &candidates, acd.aaguid, shared));
            if let Some(m) = model.filter(|_| report.aaguid_vouched) {
                report.authenticator_name = Some(m.description.to_string());
                report.certification_status = m.certification.clone();
            }
            report.kind = Some(statement.kind);
            report.trusted = t.trusted;
            report.trust_anchor = t.anchor;
            report.untrusted_because = t.why_not;
        }
    }

    let credential = Some(NewCredential {
        credential_id: acd.credential_id.to_vec(),
        public_key_cose: acd.public_key_cose.to_vec(),
        key,
        aaguid: *acd.aaguid,
    });
    Registration { failures, authenticator, credential, attestation: Some(report), cross_origin, issued_challenge }
}
