//! The spec trail as data: one table per ceremony, step by step, as
//! numbered in W3C WebAuthn Level 3 `index.bs` at w3c/webauthn commit
//! [`COMMIT`] (the editor's draft of 2026-07-30 that `shared/vectors` cite).
//!
//! Every comment in the code that names a step writes it as
//! `§7.2 step 21 (signature)`: the section, the number, and in brackets the
//! step's [`Step::name`] (for a range, `steps 13–14 (crossOrigin,
//! topOrigin)`, or `steps 5–25 (UTF-8 decode … credentialId length)` for a
//! long one; several sections share one bracket as `§7.2 step 10 / §7.1
//! step 7 (type)`). `tests/spec_trail.rs` reads every source and document
//! in the workspace and fails on a number that is not in its table or a
//! name that is not the number's, and renders both tables into the crate
//! docs, so docs and code cannot drift from the data.
//!
//! Where the draft's own cross-references disagree with its numbering
//! (§7.1 step 24 links the verification procedure as "step 21" and the
//! trust anchors as "step 22", which its list numbers 22 and 23), the
//! list's numbering wins: it is what a reader counts.

use crate::reason::ReasonCode::{self, *};

/// The w3c/webauthn commit whose `index.bs` the step numbers follow.
pub const COMMIT: &str = "146d0db0";

/// One numbered step of a ceremony.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// The step's number in the spec's list.
    pub number: u8,
    /// The short name comments use after the number.
    pub name: &'static str,
    /// What the spec asks for, abridged.
    pub asks: &'static str,
    /// Who does it in assertd, and where.
    pub done_by: &'static str,
    /// The reason codes a failure of this step reports.
    pub reasons: &'static [ReasonCode],
}

/// A ceremony's procedure: its section and its steps, in order.
#[derive(Debug, Clone, Copy)]
pub struct Procedure {
    /// The section number, `"7.1"` or `"7.2"`.
    pub section: &'static str,
    /// The section's title in the spec.
    pub title: &'static str,
    /// Every step, numbered from 1 without gaps.
    pub steps: &'static [Step],
}

impl Procedure {
    /// The step numbered `n`, if the procedure has one.
    pub fn step(&self, n: u8) -> Option<&'static Step> {
        self.steps.iter().find(|s| s.number == n)
    }

    /// The table the crate docs show, as Markdown inside `//!` comments.
    pub fn render_doc(&self) -> String {
        let mut out = String::from("//! | step | name | the spec asks | done by | reason codes |\n//! |---|---|---|---|---|\n");
        for s in self.steps {
            let reasons: Vec<String> = s.reasons.iter().map(|r| format!("`{}`", r.as_str())).collect();
            out.push_str(&format!("//! | {} | {} | {} | {} | {} |\n", s.number, s.name, s.asks, s.done_by, reasons.join(", ")));
        }
        out
    }
}

const GATEWAY: &str = "the gateway and the browser";

/// §7.1 "Registering a New Credential".
pub const REGISTRATION: Procedure = Procedure {
    section: "7.1",
    title: "Registering a New Credential",
    steps: &[
        step(1, "options", "build the creation options", GATEWAY, &[]),
        step(2, "create", "call navigator.credentials.create()", GATEWAY, &[]),
        step(3, "response", "the response is an AuthenticatorAttestationResponse", GATEWAY, &[]),
        step(4, "extension results", "read getClientExtensionResults()", GATEWAY, &[]),
        step(
            5,
            "UTF-8 decode",
            "JSONtext is the UTF-8 decode of clientDataJSON",
            "verifier: [`ClientData::parse`]",
            &[MalformedClientData],
        ),
        step(6, "parse JSON", "C is clientDataJSON parsed", "verifier: [`ClientData::parse`]", &[MalformedClientData]),
        step(7, "type", "`C.type` is `webauthn.create`", "verifier: [`verify_registration`]", &[WrongCeremonyType]),
        step(
            8,
            "challenge",
            "`C.challenge` is the options' challenge",
            "verifier: [`verify_registration`], [`ChallengeKeys::open`]",
            &[ChallengeMismatch, ChallengeInvalid, ChallengeExpired],
        ),
        step(9, "origin", "`C.origin` is expected by the RP", "verifier: [`RelyingParty::origin_allowed`]", &[OriginNotAllowed]),
        step(
            10,
            "crossOrigin",
            "`crossOrigin` true only where the RP expects an iframe",
            "policy: the profile's cross-origin rule",
            &[CrossOrigin],
        ),
        step(11, "topOrigin", "`topOrigin` only where expected, and an expected page", "policy: the profile's top origins", &[CrossOrigin]),
        step(12, "hash", "hash is SHA-256 of clientDataJSON", "verifier: [`verify_registration`]", &[]),
        step(
            13,
            "CBOR decode",
            "decode the attestation object into fmt, authData, attStmt",
            "verifier: `AttestationObject::parse`, [`AuthenticatorData::parse`]",
            &[AttestationInvalid, MalformedAuthenticatorData],
        ),
        step(14, "rpIdHash", "`rpIdHash` is SHA-256 of the RP ID", "verifier: [`verify_registration`]", &[RpIdMismatch]),
        step(15, "UP", "UP set (unless mediation is conditional)", "verifier: [`verify_registration`]", &[UserNotPresent]),
        step(16, "UV", "UV set where the RP requires it", "policy: the profile's `user_verification`", &[UserNotVerified]),
        step(17, "BS without BE", "BS not set when BE is not", "verifier: [`verify_registration`]", &[BackupStateInvalid]),
        step(18, "BE", "BE informs policy", "policy: the profile's passkey types", &[PasskeyTypeNotAllowed]),
        step(19, "BS", "BS informs policy", "policy: the profile's passkey types", &[PasskeyTypeNotAllowed]),
        step(
            20,
            "alg",
            "the key's `alg` is one of `pubKeyCredParams`",
            "verifier: [`PublicKey::from_cose`]; legacy algorithms: policy",
            &[UnsupportedAlgorithm, MalformedAuthenticatorData],
        ),
        step(21, "fmt", "`fmt` is a supported format", "verifier: `attestation::verify_statement`", &[AttestationFormatUnsupported]),
        step(
            22,
            "attestation statement",
            "the statement verifies under its format (§8)",
            "verifier: `attestation::verify_statement`",
            &[AttestationInvalid],
        ),
        step(
            23,
            "trust anchors",
            "acceptable trust anchors for the format, e.g. from FIDO metadata by AAGUID",
            "verifier: configured roots per format and the metadata's for the AAGUID",
            &[],
        ),
        step(
            24,
            "assess trust",
            "none or self attestation acceptable by policy, else the trust path reaches an anchor; fail when not trustworthy",
            "verifier: `attestation::assess`; policy: `attestation_enforcement`",
            &[AttestationUntrusted, AttestationRequired],
        ),
        step(
            25,
            "credentialId length",
            "`credentialId` at most 1023 bytes",
            "verifier: [`verify_registration`]",
            &[MalformedAuthenticatorData],
        ),
        step(
            26,
            "credentialId unique",
            "`credentialId` not yet registered for any user",
            "store: create-only insert",
            &[CredentialAlreadyRegistered],
        ),
        step(27, "credential record", "a new credential record from authData and the response", "engine: the stored record", &[]),
        step(
            28,
            "extensions",
            "process client and authenticator extension outputs as the RP requires",
            "verifier: [`AuthenticatorData::parse`] (well-formed, no trailing bytes); no output changes the verdict",
            &[MalformedAuthenticatorData],
        ),
        step(
            29,
            "store",
            "store the record in the user's account and continue",
            "store: with the challenge's use, one transaction",
            &[StoreUnavailable],
        ),
    ],
};

/// §7.2 "Verifying an Authentication Assertion".
pub const AUTHENTICATION: Procedure = Procedure {
    section: "7.2",
    title: "Verifying an Authentication Assertion",
    steps: &[
        step(1, "options", "build the request options", GATEWAY, &[]),
        step(2, "get", "call navigator.credentials.get()", GATEWAY, &[]),
        step(3, "response", "the response is an AuthenticatorAssertionResponse", GATEWAY, &[]),
        step(4, "extension results", "read getClientExtensionResults()", GATEWAY, &[]),
        step(
            5,
            "allowCredentials",
            "`credential.id` is one of `allowCredentials`, when it is not empty",
            "engine: field checks (`Assertion.allowed_credential_ids`)",
            &[CredentialNotAllowed],
        ),
        step(
            6,
            "credential record",
            "the identified user's credential record for `rawId`; `userHandle` equals the user's",
            "engine: the store lookup; verifier: [`verify()`]",
            &[CredentialNotFound, CredentialRevoked, StoreUnavailable, UserHandleMismatch],
        ),
        step(7, "response parts", "name the response's three parts", "verifier: [`AssertionInput`]", &[]),
        step(8, "UTF-8 decode", "JSONtext is the UTF-8 decode of cData", "verifier: [`ClientData::parse`]", &[MalformedClientData]),
        step(9, "parse JSON", "C is cData parsed", "verifier: [`ClientData::parse`]", &[MalformedClientData]),
        step(10, "type", "`C.type` is `webauthn.get`", "verifier: [`verify()`]", &[WrongCeremonyType]),
        step(
            11,
            "challenge",
            "`C.challenge` is the options' challenge",
            "verifier: [`verify()`], [`ChallengeKeys::open`]",
            &[ChallengeMismatch, ChallengeInvalid, ChallengeExpired],
        ),
        step(12, "origin", "`C.origin` is expected by the RP", "verifier: [`RelyingParty::origin_allowed`]", &[OriginNotAllowed]),
        step(
            13,
            "crossOrigin",
            "`crossOrigin` true only where the RP expects an iframe",
            "policy: the profile's cross-origin rule",
            &[CrossOrigin],
        ),
        step(14, "topOrigin", "`topOrigin` only where expected, and an expected page", "policy: the profile's top origins", &[CrossOrigin]),
        step(15, "rpIdHash", "`rpIdHash` is SHA-256 of the RP ID (or the AppID's, §10.1.1)", "verifier: [`verify()`]", &[RpIdMismatch]),
        step(16, "UP", "UP set", "verifier: [`verify()`]", &[UserNotPresent]),
        step(17, "UV", "UV set when user verification is required", "policy: the profile's `user_verification`", &[UserNotVerified]),
        step(18, "BS without BE", "BS not set when BE is not", "verifier: [`verify()`]", &[BackupStateInvalid]),
        step(
            19,
            "backup state",
            "BE equals the record's; RP policy on BE and BS",
            "policy: `assertd_policy::evaluate`",
            &[BackupEligibilityChanged, PasskeyTypeNotAllowed],
        ),
        step(20, "hash", "hash is SHA-256 of cData", "verifier: [`verify()`]", &[]),
        step(
            21,
            "signature",
            "`sig` verifies over authData ‖ hash with the record's key",
            "verifier: [`verify()`], [`PublicKey::verify`]",
            &[SignatureInvalid, MalformedSignature, UnsupportedAlgorithm],
        ),
        step(
            22,
            "signCount",
            "a nonzero count must exceed the record's; otherwise a signal of a cloned authenticator",
            "store: compare-and-set, [`sign_count_advances`]; policy: deny or step up",
            &[SignCountRegression, SignCountDeferred],
        ),
        step(
            23,
            "extensions",
            "process client and authenticator extension outputs as the RP requires",
            "verifier: [`AuthenticatorData::parse`] (well-formed, no trailing bytes); no output changes the verdict",
            &[MalformedAuthenticatorData],
        ),
        step(
            24,
            "update record",
            "update signCount, backupState and uvInitialized, after any further checks",
            "store: signCount in the same compare-and-set; a BE upgrade the profile allows, after policy and for an allowed verdict only; backupState and uvInitialized are kept as registered",
            &[],
        ),
        step(25, "continue", "continue the ceremony when every step succeeded", "engine: the verdict", &[]),
    ],
};

/// Both procedures.
pub const PROCEDURES: [&Procedure; 2] = [&REGISTRATION, &AUTHENTICATION];

const fn step(number: u8, name: &'static str, asks: &'static str, done_by: &'static str, reasons: &'static [ReasonCode]) -> Step {
    Step { number, name, asks, done_by, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_numbered_from_one_without_gaps() {
        for p in PROCEDURES {
            for (i, s) in p.steps.iter().enumerate() {
                assert_eq!(usize::from(s.number), i + 1, "§{} step {}", p.section, s.name);
            }
        }
    }
}
