//! A DER reader for the few structures a signature needs (PKCS#7
//! SignedData, X.509 certificates, SubjectPublicKeyInfo): definite
//! lengths only, every length checked against what is left, offsets kept
//! for error messages. No allocation: values borrow the input.

use std::fmt;

pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const OID: u8 = 0x06;
pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;
/// `[n]` context-specific, constructed (EXPLICIT, or IMPLICIT of a SET/SEQUENCE).
pub const fn context(n: u8) -> u8 {
    0xA0 | n
}

/// Why bytes are not the DER expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DerError {
    /// The input ends inside a tag, length or value.
    Truncated { offset: usize },
    /// Another tag than the structure has at this place.
    Tag {
        offset: usize,
        expected: u8,
        found: u8,
    },
    /// Indefinite (BER) or non-minimal length, or one beyond 2^32.
    Length { offset: usize },
    /// Bytes after the structure's end.
    Trailing { offset: usize },
    /// A multi-byte tag number, which none of these structures uses.
    LongTag { offset: usize },
}

impl fmt::Display for DerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DerError::Truncated { offset } => write!(f, "truncated at byte {offset}"),
            DerError::Tag {
                offset,
                expected,
                found,
            } => write!(
                f,
                "at byte {offset}: expected DER tag 0x{expected:02x}, found 0x{found:02x}"
            ),
            DerError::Length { offset } => write!(
                f,
                "at byte {offset}: not a DER length (indefinite, not minimal or too large)"
            ),
            DerError::Trailing { offset } => write!(f, "unexpected bytes at byte {offset}"),
            DerError::LongTag { offset } => write!(f, "at byte {offset}: unsupported DER tag"),
        }
    }
}

impl std::error::Error for DerError {}

/// One element: its tag, its value, and its whole encoding (tag, length
/// and value: what a hash over a structure covers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub value: Reader<'a>,
    pub raw: &'a [u8],
}

/// A cursor over a run of DER elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader<'a> {
    data: &'a [u8],
    /// Offset of `data[0]` in the outermost input.
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, base: 0 }
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }

    pub fn offset(&self) -> usize {
        self.base
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// The next element, whatever its tag.
    pub fn any(&mut self) -> Result<Tlv<'a>, DerError> {
        let d = self.data;
        let at = self.base;
        let tag = *d.first().ok_or(DerError::Truncated { offset: at })?;
        if tag & 0x1F == 0x1F {
            return Err(DerError::LongTag { offset: at });
        }
        let first = *d.get(1).ok_or(DerError::Truncated { offset: at + 1 })?;
        let (len, header) = match first {
            n if n < 0x80 => (usize::from(n), 2),
            // Up to 4 length bytes; DER wants the shortest form.
            0x81..=0x84 => {
                let n = usize::from(first & 0x7F);
                let bytes = d
                    .get(2..2 + n)
                    .ok_or(DerError::Truncated { offset: at + 2 })?;
                if bytes[0] == 0 {
                    return Err(DerError::Length { offset: at + 1 });
                }
                let len = bytes.iter().fold(0usize, |l, &b| (l << 8) | usize::from(b));
                if len < 0x80 {
                    return Err(DerError::Length { offset: at + 1 });
                }
                (len, 2 + n)
            }
            _ => return Err(DerError::Length { offset: at + 1 }),
        };
        let end = header
            .checked_add(len)
            .filter(|&e| e <= d.len())
            .ok_or(DerError::Truncated {
                offset: at + d.len(),
            })?;
        self.data = &d[end..];
        self.base = at + end;
        Ok(Tlv {
            tag,
            value: Reader {
                data: &d[header..end],
                base: at + header,
            },
            raw: &d[..end],
        })
    }

    /// The next element, which must have `tag`.
    pub fn expect(&mut self, tag: u8) -> Result<Tlv<'a>, DerError> {
        let at = self.base;
        let tlv = self.any()?;
        if tlv.tag != tag {
            return Err(DerError::Tag {
                offset: at,
                expected: tag,
                found: tlv.tag,
            });
        }
        Ok(tlv)
    }

    /// The next element's value if it has `tag`, else nothing is read.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.expect(tag).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Nothing may follow.
    pub fn end(&self) -> Result<(), DerError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(DerError::Trailing { offset: self.base })
        }
    }
}

/// An INTEGER's magnitude, big-endian, without the sign byte; `None` for
/// a negative or empty one.
pub fn unsigned(value: &[u8]) -> Option<&[u8]> {
    match value {
        [] => None,
        [b, ..] if b & 0x80 != 0 => None,
        [0, rest @ ..] if !rest.is_empty() => Some(rest),
        v => Some(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_elements_and_keeps_offsets() {
        // SEQUENCE { INTEGER 5, OCTET STRING "ab" }
        let bytes = [0x30, 0x07, 0x02, 0x01, 0x05, 0x04, 0x02, b'a', b'b'];
        let mut r = Reader::new(&bytes);
        let seq = r.expect(SEQUENCE).unwrap();
        r.end().unwrap();
        assert_eq!(seq.raw, &bytes[..]);
        let mut inner = seq.value;
        assert_eq!(inner.expect(INTEGER).unwrap().value.bytes(), [5]);
        let s = inner.expect(OCTET_STRING).unwrap();
        assert_eq!(s.value.bytes(), b"ab");
        assert_eq!(s.value.offset(), 7);
        inner.end().unwrap();
    }

    #[test]
    fn refuses_what_is_not_der() {
        let e = |b: &[u8]| Reader::new(b).any().unwrap_err();
        assert_eq!(e(&[]), DerError::Truncated { offset: 0 });
        assert_eq!(e(&[0x30]), DerError::Truncated { offset: 1 });
        assert_eq!(e(&[0x30, 0x05, 0x00]), DerError::Truncated { offset: 3 });
        assert_eq!(
            e(&[0x30, 0x80]),
            DerError::Length { offset: 1 },
            "indefinite"
        );
        assert_eq!(
            e(&[0x30, 0x81, 0x05]),
            DerError::Length { offset: 1 },
            "not minimal"
        );
        assert_eq!(e(&[0x30, 0x82, 0x00, 0x80]), DerError::Length { offset: 1 });
        assert_eq!(
            e(&[0x30, 0x85, 1, 1, 1, 1, 1]),
            DerError::Length { offset: 1 }
        );
        assert_eq!(e(&[0x1F, 0x01]), DerError::LongTag { offset: 0 });
        assert_eq!(
            Reader::new(&[0x02, 0x00]).expect(SEQUENCE).unwrap_err(),
            DerError::Tag {
                offset: 0,
                expected: SEQUENCE,
                found: INTEGER
            }
        );
        let mut r = Reader::new(&[0x05, 0x00, 0x05]);
        r.any().unwrap();
        assert_eq!(r.end().unwrap_err(), DerError::Trailing { offset: 2 });
    }

    #[test]
    fn integers_lose_their_sign_byte() {
        assert_eq!(unsigned(&[0x00, 0x80]), Some(&[0x80][..]));
        assert_eq!(unsigned(&[0x00]), Some(&[0x00][..]));
        assert_eq!(unsigned(&[0x80]), None);
        assert_eq!(unsigned(&[]), None);
    }
}
