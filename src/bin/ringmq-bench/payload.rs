//! The bench header at the front of every payload.
//!
//! Payloads of 20 bytes or more start with `u64 send time (ns since the run's
//! epoch) | u32 publisher id | u64 sequence`, little endian. Payloads of 16 to
//! 19 bytes use a compact form, `u48 time | u16 publisher id | u64 sequence`;
//! the length tells the reader which.

pub const FULL: usize = 20;
pub const MIN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub ts_ns: u64,
    pub publisher: u32,
    pub seq: u64,
}

pub fn write(buf: &mut [u8], h: Header) {
    if buf.len() >= FULL {
        buf[..8].copy_from_slice(&h.ts_ns.to_le_bytes());
        buf[8..12].copy_from_slice(&h.publisher.to_le_bytes());
        buf[12..20].copy_from_slice(&h.seq.to_le_bytes());
    } else {
        buf[..6].copy_from_slice(&h.ts_ns.to_le_bytes()[..6]);
        buf[6..8].copy_from_slice(&(h.publisher as u16).to_le_bytes());
        buf[8..16].copy_from_slice(&h.seq.to_le_bytes());
    }
}

pub fn read(buf: &[u8]) -> Option<Header> {
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[i..i + 8]);
        u64::from_le_bytes(b)
    };
    if buf.len() >= FULL {
        let mut id = [0u8; 4];
        id.copy_from_slice(&buf[8..12]);
        Some(Header {
            ts_ns: u64_at(0),
            publisher: u32::from_le_bytes(id),
            seq: u64_at(12),
        })
    } else if buf.len() >= MIN {
        let mut ts = [0u8; 8];
        ts[..6].copy_from_slice(&buf[..6]);
        Some(Header {
            ts_ns: u64::from_le_bytes(ts),
            publisher: u16::from_le_bytes([buf[6], buf[7]]) as u32,
            seq: u64_at(8),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_both_forms() {
        let h = Header {
            ts_ns: 123_456_789_012,
            publisher: 513,
            seq: 1 << 40,
        };
        for len in [16, 19, 20, 64] {
            let mut b = vec![0u8; len];
            write(&mut b, h);
            assert_eq!(read(&b), Some(h), "len {len}");
        }
        assert_eq!(read(&[0u8; 15]), None);
    }
}
