//! A minimal, bounded CBOR (RFC 8949) reader: just what COSE keys and
//! authenticator-data extensions need.
//!
//! It never allocates for skipped items, refuses indefinite lengths (CTAP2's
//! canonical CBOR forbids them), bounds nesting depth, and checks every
//! length against the bytes actually left, so a hostile length prefix
//! (e.g. a claimed 2^64-byte string) is an error, not an allocation.

/// Deepest nesting accepted while skipping an item. COSE keys are flat maps;
/// extension outputs nest a few levels at most.
pub const MAX_DEPTH: usize = 16;

/// Why a CBOR item could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CborError {
    /// The input ended inside an item.
    #[error("truncated CBOR item")]
    Truncated,
    /// A construct this reader refuses: indefinite length, reserved
    /// additional info, or nesting deeper than [`MAX_DEPTH`].
    #[error("unsupported CBOR: {0}")]
    Unsupported(&'static str),
    /// An item of another type than the caller needed.
    #[error("unexpected CBOR type: expected {0}")]
    UnexpectedType(&'static str),
}

/// A CBOR major type (RFC 8949 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Major {
    /// 0: unsigned integer.
    Unsigned,
    /// 1: negative integer.
    Negative,
    /// 2: byte string.
    Bytes,
    /// 3: text string.
    Text,
    /// 4: array.
    Array,
    /// 5: map.
    Map,
    /// 6: tag.
    Tag,
    /// 7: simple value or float.
    Simple,
}

/// A cursor over CBOR bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        let end = self.pos.checked_add(n).ok_or(CborError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(CborError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    /// Reads an item header: its major type and argument.
    pub fn header(&mut self) -> Result<(Major, u64), CborError> {
        let first = self.take(1)?[0];
        let major = match first >> 5 {
            0 => Major::Unsigned,
            1 => Major::Negative,
            2 => Major::Bytes,
            3 => Major::Text,
            4 => Major::Array,
            5 => Major::Map,
            6 => Major::Tag,
            _ => Major::Simple,
        };
        let info = first & 0x1f;
        let arg = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)?[0]),
            25 => u64::from(u16::from_be_bytes([self.take(1)?[0], self.take(1)?[0]])),
            26 => {
                let b = self.take(4)?;
                u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            27 => {
                let b = self.take(8)?;
                u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            }
            28..=30 => return Err(CborError::Unsupported("reserved additional information")),
            _ => return Err(CborError::Unsupported("indefinite length")),
        };
        Ok((major, arg))
    }

    fn len(&self, arg: u64) -> Result<usize, CborError> {
        let n = usize::try_from(arg).map_err(|_| CborError::Truncated)?;
        if n > self.buf.len() - self.pos {
            return Err(CborError::Truncated);
        }
        Ok(n)
    }

    /// Reads an integer (major type 0 or 1) as i64; integers outside i64 are
    /// refused.
    pub fn int(&mut self) -> Result<i64, CborError> {
        match self.header()? {
            (Major::Unsigned, v) => i64::try_from(v).map_err(|_| CborError::Unsupported("integer out of range")),
            (Major::Negative, v) => i64::try_from(v).map(|v| -1 - v).map_err(|_| CborError::Unsupported("integer out of range")),
            _ => Err(CborError::UnexpectedType("integer")),
        }
    }

    /// Reads a byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8], CborError> {
        match self.header()? {
            (Major::Bytes, n) => {
                let n = self.len(n)?;
                self.take(n)
            }
            _ => Err(CborError::UnexpectedType("byte string")),
        }
    }

    /// Reads a map header and returns its number of pairs. The count is
    /// checked against the bytes left (each pair takes at least two bytes).
    pub fn map(&mut self) -> Result<usize, CborError> {
        match self.header()? {
            (Major::Map, n) => {
                let n = usize::try_from(n).map_err(|_| CborError::Truncated)?;
                if n > (self.buf.len() - self.pos) / 2 {
                    return Err(CborError::Truncated);
                }
                Ok(n)
            }
            _ => Err(CborError::UnexpectedType("map")),
        }
    }

    /// Skips one complete item of any type, bounded by [`MAX_DEPTH`].
    pub fn skip(&mut self) -> Result<(), CborError> {
        self.skip_at(0)
    }

    fn skip_at(&mut self, depth: usize) -> Result<(), CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::Unsupported("nesting too deep"));
        }
        let (major, arg) = self.header()?;
        match major {
            Major::Unsigned | Major::Negative | Major::Simple => Ok(()),
            Major::Bytes | Major::Text => {
                let n = self.len(arg)?;
                self.take(n).map(|_| ())
            }
            Major::Array | Major::Map => {
                let per = if major == Major::Map { 2 } else { 1 };
                // Each item takes at least one byte: a count beyond the bytes
                // left is a lie, refuse it before looping.
                let items = self.len(arg)?.checked_mul(per).ok_or(CborError::Truncated)?;
                if items > self.buf.len() - self.pos {
                    return Err(CborError::Truncated);
                }
                for _ in 0..items {
                    self.skip_at(depth + 1)?;
                }
                Ok(())
            }
            Major::Tag => self.skip_at(depth + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ints_of_every_width() {
        let mut r = Reader::new(&[0x17, 0x18, 0xff, 0x19, 0x01, 0x00, 0x20, 0x38, 0x63, 0x39, 0xff, 0xfe]);
        assert_eq!(r.int(), Ok(23));
        assert_eq!(r.int(), Ok(255));
        assert_eq!(r.int(), Ok(256));
        assert_eq!(r.int(), Ok(-1));
        assert_eq!(r.int(), Ok(-100));
        assert_eq!(r.int(), Ok(-65535));
        assert!(r.remaining().is_empty());
    }

    #[test]
    fn refuses_lying_lengths_without_allocating() {
        // A byte string claiming 2^64-1 bytes.
        let mut r = Reader::new(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
        assert_eq!(r.bytes(), Err(CborError::Truncated));
        // A map claiming 2^32 pairs.
        let mut r = Reader::new(&[0xba, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(r.skip(), Err(CborError::Truncated));
        let mut r = Reader::new(&[0xba, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(r.map(), Err(CborError::Truncated));
    }

    #[test]
    fn refuses_indefinite_and_deep_items() {
        assert_eq!(Reader::new(&[0x5f, 0x41, 0x00, 0xff]).skip(), Err(CborError::Unsupported("indefinite length")));
        let deep = vec![0x81; 64];
        assert_eq!(Reader::new(&deep).skip(), Err(CborError::Unsupported("nesting too deep")));
    }

    #[test]
    fn skips_nested_items_exactly() {
        // {1: [h'00', "a"], -1: {2: true}} followed by one extra byte.
        let data = [0xa2, 0x01, 0x82, 0x41, 0x00, 0x61, b'a', 0x20, 0xa1, 0x02, 0xf5, 0x99];
        let mut r = Reader::new(&data);
        r.skip().unwrap();
        assert_eq!(r.remaining(), &[0x99]);
    }

    #[test]
    fn type_errors_name_the_expected_type() {
        assert_eq!(Reader::new(&[0x41, 0x00]).int(), Err(CborError::UnexpectedType("integer")));
        assert_eq!(Reader::new(&[0x01]).bytes(), Err(CborError::UnexpectedType("byte string")));
        assert_eq!(Reader::new(&[0x01]).map(), Err(CborError::UnexpectedType("map")));
    }
}
