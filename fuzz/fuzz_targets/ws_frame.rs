//! Fuzzes the WebSocket frame decoder: arbitrary bytes, fed in chunks of a
//! size the first byte picks, must never panic it, and it must never put
//! out more MQTT bytes than the input bytes it consumed. Run with
//! `cargo +nightly fuzz run ws_frame` from the crate root.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringmq::websocket::frame::FrameDecoder;

const MAX_MESSAGE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first).max(1);
    let mut decoder = FrameDecoder::new(MAX_MESSAGE);
    let mut input = BytesMut::new();
    let mut mqtt = BytesMut::new();
    let mut fed = 0usize;
    for piece in rest.chunks(chunk) {
        input.extend_from_slice(piece);
        fed += piece.len();
        loop {
            let result = decoder.decode(&mut input, &mut mqtt);
            let consumed = fed - input.len();
            assert!(
                mqtt.len() <= consumed,
                "{} MQTT bytes out of {consumed} consumed",
                mqtt.len()
            );
            match result {
                Ok(Some(_control)) => {}
                Ok(None) => break,
                Err(e) => {
                    let _ = e.close_code();
                    return;
                }
            }
        }
    }
});
