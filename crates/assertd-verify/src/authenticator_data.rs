//! `authenticatorData` (WebAuthn L3 §6.1) parsing.

use crate::cbor::{CborError, Major, Reader};

/// Length of the fixed part: rpIdHash (32) + flags (1) + signCount (4).
pub const MIN_LEN: usize = 37;

/// The flags byte (§6.1, "flags").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// Bit 0, UP: user present.
    pub fn user_present(self) -> bool {
        self.0 & 0x01 != 0
    }
    /// Bit 2, UV: user verified.
    pub fn user_verified(self) -> bool {
        self.0 & 0x04 != 0
    }
    /// Bit 3, BE: backup eligible (a multi-device credential).
    pub fn backup_eligible(self) -> bool {
        self.0 & 0x08 != 0
    }
    /// Bit 4, BS: backup state (currently backed up).
    pub fn backup_state(self) -> bool {
        self.0 & 0x10 != 0
    }
    /// Bit 6, AT: attested credential data included.
    pub fn attested_credential_data(self) -> bool {
        self.0 & 0x40 != 0
    }
    /// Bit 7, ED: extension data included.
    pub fn extension_data(self) -> bool {
        self.0 & 0x80 != 0
    }
}

/// Parsed authenticator data, borrowing the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorData<'a> {
    /// SHA-256 of the RP ID the authenticator scoped the credential to.
    pub rp_id_hash: &'a [u8; 32],
    /// The flags byte.
    pub flags: Flags,
    /// The signature counter.
    pub sign_count: u32,
    /// Attested credential data (AT set): AAGUID, credential ID, and the raw
    /// COSE key. Unusual in assertions, but allowed.
    pub attested_credential: Option<AttestedCredential<'a>>,
    /// The raw CBOR extensions map (ED set).
    pub extensions: Option<&'a [u8]>,
}

/// Attested credential data (§6.5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedCredential<'a> {
    /// The authenticator model's AAGUID.
    pub aaguid: &'a [u8; 16],
    /// The credential ID.
    pub credential_id: &'a [u8],
    /// The credential public key, as COSE_Key bytes (not parsed here).
    pub public_key_cose: &'a [u8],
}

/// Why authenticator data could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthenticatorDataError {
    /// Shorter than the 37-byte fixed part.
    #[error("authenticatorData is {0} bytes, shorter than the 37-byte minimum")]
    TooShort(usize),
    /// AT set but the attested credential data is malformed.
    #[error("malformed attested credential data: {0}")]
    AttestedCredentialData(String),
    /// ED set but the extensions are not one well-formed CBOR map.
    #[error("malformed extensions: {0}")]
    Extensions(String),
    /// Bytes left over after everything the flags announce.
    #[error("{0} trailing bytes after authenticatorData")]
    TrailingBytes(usize),
}

impl<'a> AuthenticatorData<'a> {
    /// Parses authenticator data, refusing truncation and trailing bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, AuthenticatorDataError> {
        if bytes.len() < MIN_LEN {
            return Err(AuthenticatorDataError::TooShort(bytes.len()));
        }
        let (rp_id_hash, rest) = bytes.split_at(32);
        let rp_id_hash: &[u8; 32] = rp_id_hash.try_into().map_err(|_| AuthenticatorDataError::TooShort(bytes.len()))?;
        let flags = Flags(rest[0]);
        let sign_count = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let mut rest = &rest[5..];

        let attested_credential = if flags.attested_credential_data() {
            let bad = |m: &str| AuthenticatorDataError::AttestedCredentialData(m.to_owned());
            if rest.len() < 18 {
                return Err(bad("truncated before the credential ID"));
            }
            let (aaguid, r) = rest.split_at(16);
            let aaguid: &[u8; 16] = aaguid.try_into().map_err(|_| bad("truncated AAGUID"))?;
            let id_len = usize::from(u16::from_be_bytes([r[0], r[1]]));
            let r = &r[2..];
            if id_len > r.len() {
                return Err(bad("credential ID runs past the end"));
            }
            let (credential_id, r) = r.split_at(id_len);
            let mut cbor = Reader::new(r);
            cbor.skip().map_err(|e: CborError| AuthenticatorDataError::AttestedCredentialData(format!("credential public key: {e}")))?;
            let (public_key_cose, r) = r.split_at(cbor.position());
            rest = r;
            Some(AttestedCredential { aaguid, credential_id, public_key_cose })
        } else {
            None
        };

        // §7.2 step 23 / §7.1 step 28 (extensions): with ED set, the
        // extensions are exactly one well-formed CBOR map (§6.1).
        let extensions = if flags.extension_data() {
            let mut cbor = Reader::new(rest);
            let mut peek = cbor.clone();
            match peek.header() {
                Ok((Major::Map, _)) => {}
                Ok(_) => return Err(AuthenticatorDataError::Extensions("not a CBOR map".into())),
                Err(e) => return Err(AuthenticatorDataError::Extensions(e.to_string())),
            }
            cbor.skip().map_err(|e| AuthenticatorDataError::Extensions(e.to_string()))?;
            let (ext, r) = rest.split_at(cbor.position());
            rest = r;
            Some(ext)
        } else {
            None
        };

        // assertd rule, from §6.1's layout: nothing follows the last part.
        if !rest.is_empty() {
            return Err(AuthenticatorDataError::TrailingBytes(rest.len()));
        }
        Ok(Self { rp_id_hash, flags, sign_count, attested_credential, extensions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(flags: u8, count: u32) -> Vec<u8> {
        let mut b = vec![7u8; 32];
        b.push(flags);
        b.extend(count.to_be_bytes());
        b
    }

    #[test]
    fn parses_fixed_part() {
        let b = base(0x1d, 0x01020304);
        let ad = AuthenticatorData::parse(&b).unwrap();
        assert_eq!(ad.rp_id_hash, &[7u8; 32]);
        assert!(ad.flags.user_present() && ad.flags.user_verified() && ad.flags.backup_eligible() && ad.flags.backup_state());
        assert!(!ad.flags.attested_credential_data() && !ad.flags.extension_data());
        assert_eq!(ad.sign_count, 0x01020304);
    }

    #[test]
    fn too_short_and_trailing() {
        assert_eq!(AuthenticatorData::parse(&[0; 36]), Err(AuthenticatorDataError::TooShort(36)));
        assert_eq!(AuthenticatorData::parse(&[]), Err(AuthenticatorDataError::TooShort(0)));
        let mut b = base(0x01, 0);
        b.push(0);
        assert_eq!(AuthenticatorData::parse(&b), Err(AuthenticatorDataError::TrailingBytes(1)));
    }

    #[test]
    fn extensions_must_be_one_map() {
        let mut b = base(0x81, 1);
        b.extend([0xa1, 0x63, b'f', b'o', b'o', 0xf5]); // {"foo": true}
        let ad = AuthenticatorData::parse(&b).unwrap();
        assert_eq!(ad.extensions.unwrap().len(), 6);

        let missing = base(0x81, 1);
        assert!(matches!(AuthenticatorData::parse(&missing), Err(AuthenticatorDataError::Extensions(_))));
        let mut not_map = base(0x81, 1);
        not_map.push(0x01);
        assert!(matches!(AuthenticatorData::parse(&not_map), Err(AuthenticatorDataError::Extensions(m)) if m.contains("map")));
        let mut huge = base(0x81, 1);
        huge.extend([0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(AuthenticatorData::parse(&huge), Err(AuthenticatorDataError::Extensions(_))));
        // Extension bytes present but ED not set: trailing.
        let mut undeclared = base(0x01, 1);
        undeclared.extend([0xa0]);
        assert_eq!(AuthenticatorData::parse(&undeclared), Err(AuthenticatorDataError::TrailingBytes(1)));
    }

    #[test]
    fn attested_credential_data() {
        let mut b = base(0x41, 1);
        b.extend([0xaa; 16]);
        b.extend([0x00, 0x02, 0xc1, 0xc2]);
        b.extend([0xa1, 0x01, 0x02]); // {1: 2}
        let ad = AuthenticatorData::parse(&b).unwrap();
        let acd = ad.attested_credential.unwrap();
        assert_eq!(acd.credential_id, &[0xc1, 0xc2]);
        assert_eq!(acd.public_key_cose, &[0xa1, 0x01, 0x02]);

        let mut short_id = base(0x41, 1);
        short_id.extend([0xaa; 16]);
        short_id.extend([0xff, 0xff, 0x00]);
        assert!(matches!(AuthenticatorData::parse(&short_id), Err(AuthenticatorDataError::AttestedCredentialData(_))));
    }
}
