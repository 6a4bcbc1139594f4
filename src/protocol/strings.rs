//! Field-level reading and writing: integers, UTF-8 strings and binary
//! data (spec 1.5.2 - 1.5.7).
//!
//! [`Reader`] walks a frozen packet [`Bytes`] with explicit bounds, so a
//! lying length can only produce [`DecodeError::Malformed`], never a panic;
//! strings and binary data come out as slices of that `Bytes` (zero copy).

use bytes::{BufMut, Bytes};
use bytestring::ByteString;

use super::error::DecodeError;
use super::varint;

const TRUNCATED: DecodeError = DecodeError::Malformed("truncated packet");

/// A bounds-checked cursor over `buf[pos..end]`.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf[start..]`.
    pub fn new(buf: &'a Bytes, start: usize) -> Reader<'a> {
        Reader {
            buf,
            pos: start.min(buf.len()),
            end: buf.len(),
        }
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.end
    }

    /// Fails with `Malformed` unless everything was consumed: trailing
    /// bytes mean the sender and we disagree on the layout.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed("trailing bytes"))
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(TRUNCATED);
        }
        let s = self.buf.get(self.pos..self.pos + n).ok_or(TRUNCATED)?;
        self.pos += n;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        match *self.take(1)? {
            [a] => Ok(a),
            _ => Err(TRUNCATED),
        }
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        match *self.take(2)? {
            [a, b] => Ok(u16::from_be_bytes([a, b])),
            _ => Err(TRUNCATED),
        }
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        match *self.take(4)? {
            [a, b, c, d] => Ok(u32::from_be_bytes([a, b, c, d])),
            _ => Err(TRUNCATED),
        }
    }

    /// A variable byte integer that must lie within this reader.
    pub fn varint(&mut self) -> Result<u32, DecodeError> {
        let rest = self.buf.get(self.pos..self.end).ok_or(TRUNCATED)?;
        let (v, n) = varint::read(rest)?;
        self.pos += n;
        Ok(v)
    }

    /// The next `n` bytes as a zero-copy slice.
    pub fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if n > self.remaining() {
            return Err(TRUNCATED);
        }
        let s = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(s)
    }

    /// Everything left (a PUBLISH payload, SUBACK codes).
    pub fn rest(&mut self) -> Bytes {
        let s = self.buf.slice(self.pos..self.end);
        self.pos = self.end;
        s
    }

    /// Binary Data: u16 length then that many bytes (spec 1.5.6).
    pub fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.u16()?;
        self.bytes(usize::from(n))
    }

    /// UTF-8 Encoded String (spec 1.5.4), validated by [`to_string`].
    pub fn string(&mut self) -> Result<ByteString, DecodeError> {
        to_string(self.binary()?)
    }

    /// A sub-reader over the next `n` bytes (a property block); this
    /// reader skips past them.
    pub fn sub(&mut self, n: usize) -> Result<Reader<'a>, DecodeError> {
        if n > self.remaining() {
            return Err(TRUNCATED);
        }
        let sub = Reader {
            buf: self.buf,
            pos: self.pos,
            end: self.pos + n,
        };
        self.pos += n;
        Ok(sub)
    }
}

/// Validates MQTT UTF-8 and wraps the bytes without copying: well-formed
/// UTF-8 (which excludes the surrogates U+D800..U+DFFF [MQTT-1.5.4-1]) and
/// no U+0000 [MQTT-1.5.4-2]. NUL is looked for first with memchr because
/// `ByteString::try_from` then validates UTF-8 exactly once.
pub fn to_string(b: Bytes) -> Result<ByteString, DecodeError> {
    if memchr::memchr(0, &b).is_some() {
        return Err(DecodeError::InvalidUtf8);
    }
    ByteString::try_from(b).map_err(|_| DecodeError::InvalidUtf8)
}

/// Encoded size of a string or binary field.
pub fn field_len(s: &[u8]) -> usize {
    2 + s.len()
}

/// Writes Binary Data or a UTF-8 string (same layout). Callers keep
/// fields ≤ 65 535 bytes; the encoder is infallible by design.
pub fn write_binary<B: BufMut>(out: &mut B, s: &[u8]) {
    debug_assert!(s.len() <= usize::from(u16::MAX), "field over 65535 bytes");
    out.put_u16(s.len() as u16);
    out.put_slice(s);
}

/// Writes a UTF-8 Encoded String.
pub fn write_string<B: BufMut>(out: &mut B, s: &str) {
    write_binary(out, s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_str(raw: &'static [u8]) -> Result<ByteString, DecodeError> {
        let b = Bytes::from_static(raw);
        Reader::new(&b, 0).string()
    }

    #[test]
    fn reads_string_zero_copy() {
        let b = Bytes::from_static(b"\x00\x03abcX");
        let mut r = Reader::new(&b, 0);
        let s = r.string().unwrap();
        assert_eq!(&*s, "abc");
        assert_eq!(s.as_bytes().as_ptr(), b[2..].as_ptr());
        assert_eq!(r.remaining(), 1);
        assert!(r.finish().is_err());
    }

    #[test]
    fn mqtt_1_5_4_2_rejects_null_char() {
        assert_eq!(read_str(b"\x00\x03a\x00b"), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn mqtt_1_5_4_1_rejects_ill_formed_utf8() {
        // Overlong encoding of U+0000.
        assert_eq!(read_str(b"\x00\x02\xC0\x80"), Err(DecodeError::InvalidUtf8));
        // Encoded surrogate U+D800.
        assert_eq!(
            read_str(b"\x00\x03\xED\xA0\x80"),
            Err(DecodeError::InvalidUtf8)
        );
    }

    #[test]
    fn accepts_multibyte_and_empty() {
        assert_eq!(
            &*read_str("\x00\x03\u{20AC}".as_bytes()).unwrap(),
            "\u{20AC}"
        );
        assert_eq!(&*read_str(b"\x00\x00").unwrap(), "");
    }

    #[test]
    fn truncated_fields_are_malformed() {
        assert!(matches!(read_str(b"\x00"), Err(DecodeError::Malformed(_))));
        assert!(matches!(
            read_str(b"\x00\x05ab"),
            Err(DecodeError::Malformed(_))
        ));
        let b = Bytes::from_static(b"\x01\x02\x03");
        let mut r = Reader::new(&b, 0);
        assert!(r.u32().is_err());
        assert_eq!(r.u16(), Ok(0x0102));
        assert!(r.sub(2).is_err());
        let mut s = r.sub(1).unwrap();
        assert_eq!(s.u8(), Ok(3));
        assert!(s.u8().is_err());
    }

    #[test]
    fn writes_length_prefixed() {
        let mut out = Vec::new();
        write_string(&mut out, "ab");
        write_binary(&mut out, &[9]);
        assert_eq!(out, [0, 2, b'a', b'b', 0, 1, 9]);
        assert_eq!(field_len(b"ab"), 4);
    }
}
