//! MQTT Variable Byte Integer (spec 1.5.5): 7 bits per byte, low groups
//! first, continuation in the top bit, at most 4 bytes (max 268 435 455).
//!
//! Two readers because the two uses fail differently: the fixed header's
//! remaining length may simply not have arrived yet ([`read_header`] says
//! `Ok(None)`), while a varint inside a complete packet that runs off its
//! end is malformed ([`read`]).

use bytes::BufMut;

use super::error::DecodeError;

/// Largest value a 4-byte variable byte integer can hold.
pub const MAX: u32 = 268_435_455;

/// Reads the remaining length from the bytes after the first header byte.
/// `Ok(Some((value, bytes_used)))`, `Ok(None)` when more bytes are needed,
/// and an error as soon as a 4th byte still has the continuation bit: that
/// decision never needs a 5th byte, so a garbage stream is refused early.
pub fn read_header(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for (i, &b) in buf.iter().take(4).enumerate() {
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
        if i == 3 {
            return Err(DecodeError::MalformedRemainingLength);
        }
    }
    Ok(None)
}

/// Reads a varint that must lie entirely in `buf`; returns value and length.
pub fn read(buf: &[u8]) -> Result<(u32, usize), DecodeError> {
    match read_header(buf) {
        Ok(Some((v, n))) => Ok((v as u32, n)),
        Ok(None) => Err(DecodeError::Malformed("truncated variable byte integer")),
        Err(_) => Err(DecodeError::Malformed("variable byte integer over 4 bytes")),
    }
}

/// Number of bytes [`write`] uses for `v`.
pub fn len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes `v` (callers keep it ≤ [`MAX`]) in the minimal number of bytes
/// [MQTT-1.5.5-1].
pub fn write<B: BufMut>(out: &mut B, v: usize) {
    debug_assert!(v <= MAX as usize, "variable byte integer too large");
    let mut v = v;
    loop {
        let mut b = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if v == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_table_1_boundaries_round_trip() {
        for &(v, n) in &[
            (0usize, 1usize),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (2_097_151, 3),
            (2_097_152, 4),
            (MAX as usize, 4),
        ] {
            let mut out = Vec::new();
            write(&mut out, v);
            assert_eq!(out.len(), n);
            assert_eq!(len(v), n);
            assert_eq!(read_header(&out), Ok(Some((v, n))));
            assert_eq!(read(&out), Ok((v as u32, n)));
        }
    }

    #[test]
    fn known_encodings() {
        let mut out = Vec::new();
        write(&mut out, 321);
        assert_eq!(out, [0xC1, 0x02]);
        assert_eq!(
            read_header(&[0xFF, 0xFF, 0xFF, 0x7F]),
            Ok(Some((MAX as usize, 4)))
        );
    }

    #[test]
    fn incomplete_then_malformed() {
        assert_eq!(read_header(&[]), Ok(None));
        assert_eq!(read_header(&[0x80, 0x80, 0x80]), Ok(None));
        assert_eq!(
            read_header(&[0x80, 0x80, 0x80, 0x80]),
            Err(DecodeError::MalformedRemainingLength)
        );
        assert_eq!(
            read_header(&[0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(DecodeError::MalformedRemainingLength)
        );
        assert!(matches!(read(&[0x80]), Err(DecodeError::Malformed(_))));
        assert!(matches!(read(&[0x80; 5]), Err(DecodeError::Malformed(_))));
    }
}
