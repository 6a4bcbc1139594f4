//! Fuzzes the WebSocket upgrade: arbitrary request bytes must never panic
//! the handshake, and what it says it consumed must lie within the input.
//! Run with `cargo +nightly fuzz run ws_handshake` from the crate root.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use ringmq::websocket::handshake::{handshake, HandshakeConfig, HandshakeResult};

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

fuzz_target!(|data: &[u8]| {
    let cfg = HandshakeConfig {
        paths: vec!["/mqtt".to_string()],
        allowed_origins: Some(vec!["http://localhost".to_string()]),
        // The peer is trusted, so the forwarding headers are parsed too.
        trusted_proxies: vec![PEER],
        max_header_bytes: 8192,
        serve_page: true,
    };
    match handshake(data, &cfg, PEER) {
        HandshakeResult::Upgrade { consumed, .. } | HandshakeResult::Page { consumed } => {
            assert!(consumed <= data.len());
        }
        HandshakeResult::Reject { response, .. } => assert!(!response.is_empty()),
        HandshakeResult::Incomplete => assert!(data.len() <= cfg.max_header_bytes),
    }
});
