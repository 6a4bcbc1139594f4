//! Client-to-server payload masking (RFC 6455 §5.3).
//!
//! Every payload byte a client sends is XORed with one byte of a 4-byte key,
//! cycling. The decoder unmasks each byte exactly once, so this is the
//! hottest loop on the WebSocket read path: it works a `u64` at a time (safe
//! code, `chunks_exact_mut`) and falls back to single bytes only to reach
//! mask phase 0 and for the tail.

/// XORs `buf` in place with `mask`, starting at mask phase `offset % 4`.
///
/// `offset` is how many payload bytes of this frame came before `buf`, so a
/// payload unmasked in several pieces (as it trickles in) gives the same
/// result as unmasking it whole.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    // Rotate the key so that index 0 of `key` is the phase `buf[0]` needs.
    let phase = offset % 4;
    let key = [
        mask[phase],
        mask[(phase + 1) % 4],
        mask[(phase + 2) % 4],
        mask[(phase + 3) % 4],
    ];
    // Byte-wise head: buffers shorter than a word are not worth the setup.
    if buf.len() < 8 {
        xor_bytes(buf, key, 0);
        return;
    }
    // The word pattern repeats every 4 bytes, and 8 is a multiple of 4, so
    // every 8-byte chunk sees the key at the same phase as the first.
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(bytes) ^ word;
        chunk.copy_from_slice(&x.to_ne_bytes());
    }
    // The tail starts at a multiple of 8 bytes in, so at phase 0 of `key`.
    xor_bytes(chunks.into_remainder(), key, 0);
}

/// The plain loop, for short buffers and the tail.
fn xor_bytes(buf: &mut [u8], key: [u8; 4], phase: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(phase + i) % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= mask[(offset + i) % 4];
        }
    }

    #[test]
    fn matches_naive_for_many_lengths_and_offsets() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..70 {
            for offset in 0..9 {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut fast = data.clone();
                let mut slow = data.clone();
                apply_mask(&mut fast, mask, offset);
                naive(&mut slow, mask, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn unaligned_subslices_match_naive() {
        // Slices that start at odd addresses exercise the copy-based words.
        let mask = [1, 2, 4, 8];
        let data: Vec<u8> = (0..100u8).collect();
        for start in 0..8 {
            let mut fast = data.clone();
            let mut slow = data.clone();
            apply_mask(&mut fast[start..], mask, start);
            naive(&mut slow[start..], mask, start);
            assert_eq!(fast, slow);
        }
    }

    #[test]
    fn pieces_equal_whole() {
        let mask = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..53u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, mask, 0);
        for split in 0..data.len() {
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, mask, 0);
            apply_mask(b, mask, split);
            assert_eq!(pieces, whole, "split at {split}");
        }
    }

    #[test]
    fn masking_twice_is_identity() {
        let mask = [9, 8, 7, 6];
        let data: Vec<u8> = (0..40u8).collect();
        let mut buf = data.clone();
        apply_mask(&mut buf, mask, 3);
        apply_mask(&mut buf, mask, 3);
        assert_eq!(buf, data);
    }
}
