//! A deterministic, in-tree stand-in for the cargo-fuzz target: mutated
//! golden packets and random bytes must never panic the decoder, and
//! whatever decodes must survive encode → decode unchanged.

use bytes::BytesMut;

use super::*;

const SEEDS: &[&[u8]] = &[
    b"\x10\x1b\x00\x04MQTT\x04\xee\x00\x3c\x00\x01c\x00\x01w\x00\x03bye\x00\x01u\x00\x01p",
    b"\x10\x21\x00\x04MQTT\x05\xc6\x00\x3c\x00\x00\x01c\x05\x18\x00\x00\x00\x05\x00\x01w\x00\x02hi\x00\x01u\x00\x01p",
    b"\x10\x0f\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x01c",
    b"\x20\x0b\x01\x00\x08\x12\x00\x01x\x24\x01\x25\x00",
    b"\x32\x1c\x00\x03a/b\x00\x01\x13\x01\x01\x02\x00\x00\x00\x3c\x0b\x07\x23\x00\x05\x26\x00\x01k\x00\x01vx",
    b"\x3b\x09\x00\x03a/b\x00\x0ahi",
    b"\x40\x0a\x00\x01\x80\x06\x1f\x00\x03err",
    b"\x62\x03\x00\x03\x92",
    b"\x82\x0b\x00\x0a\x02\x0b\x05\x00\x03a/b\x2d",
    b"\x82\x0c\x00\x0a\x00\x03a/b\x01\x00\x01#\x02",
    b"\x90\x05\x00\x0a\x00\x01\x8f",
    b"\xa2\x0a\x00\x0b\x00\x03a/b\x00\x01+",
    b"\xb0\x05\x00\x0b\x00\x00\x11",
    b"\xc0\x00\xd0\x00\xe0\x00",
    b"\xe0\x07\x8e\x05\x11\x00\x00\x00\x00",
    b"\xf0\x0d\x18\x0b\x15\x00\x03abc\x16\x00\x02\x01\x02",
];

/// What the fuzz target does for one input and one protocol version.
fn round_trip_all(data: &[u8], version: ProtocolVersion) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(packet)) = decode(&mut buf, version, 64 * 1024) {
        let mut out = BytesMut::new();
        encode(&packet, version, &mut out);
        let again = decode(&mut out, version, 64 * 1024);
        assert_eq!(again, Ok(Some(packet)), "input {data:02x?}");
        assert!(out.is_empty());
    }
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_packets_never_panic_and_round_trip() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut decoded = 0usize;
    for _ in 0..100_000 {
        let seed = SEEDS[rng.below(SEEDS.len())];
        let mut data = seed.to_vec();
        for _ in 0..=rng.below(3) {
            let i = rng.below(data.len());
            match rng.below(4) {
                0 => data[i] = rng.next() as u8,
                1 => data[i] ^= 1 << rng.below(8),
                2 => data.insert(i, rng.next() as u8),
                _ => {
                    data.remove(i);
                }
            }
            if data.is_empty() {
                break;
            }
        }
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            let mut probe = BytesMut::from(&data[..]);
            if let Ok(Some(_)) = decode(&mut probe, version, 64 * 1024) {
                decoded += 1;
            }
            round_trip_all(&data, version);
        }
    }
    // The mutations must leave plenty of decodable packets to be useful.
    assert!(decoded > 10_000, "only {decoded} decoded");
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    for _ in 0..20_000 {
        let len = rng.below(40);
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        round_trip_all(&data, ProtocolVersion::V311);
        round_trip_all(&data, ProtocolVersion::V5);
    }
}
