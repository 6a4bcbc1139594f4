//! Fuzzes the MQTT decoder: arbitrary bytes must never panic it, and every
//! packet it accepts must survive encode → decode unchanged, in 3.1.1 and
//! in 5.0. Run with `cargo +nightly fuzz run decode` from the crate root.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringmq::protocol::{decode, encode, ProtocolVersion};

const MAX_PACKET_SIZE: usize = 64 * 1024;

fn round_trip_all(data: &[u8], version: ProtocolVersion) {
    let mut buf = BytesMut::from(data);
    // Keep framing packets until the input is used up or refused.
    while let Ok(Some(packet)) = decode(&mut buf, version, MAX_PACKET_SIZE) {
        let mut out = BytesMut::new();
        encode(&packet, version, &mut out);
        let again = decode(&mut out, version, MAX_PACKET_SIZE);
        assert_eq!(again, Ok(Some(packet)), "round trip changed the packet");
        assert!(out.is_empty(), "encoder wrote more than one packet");
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip_all(data, ProtocolVersion::V311);
    round_trip_all(data, ProtocolVersion::V5);
});
