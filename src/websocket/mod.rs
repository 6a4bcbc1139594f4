//! WebSocket transport for MQTT (RFC 6455, server side; MQTT-6.0), sans-IO.
//!
//! Browsers cannot open raw TCP sockets, so MQTT reaches them framed in
//! WebSocket binary messages on `ws://host:8083/mqtt` with sub-protocol
//! `mqtt`. Nothing here touches a socket: the server hands in bytes and
//! writes out what comes back, which keeps every rule unit-testable and
//! fuzzable.
//!
//! - [`handshake`]: parses the HTTP/1.1 upgrade request, checks it, and
//!   builds the `101 Switching Protocols` answer (or the error answer).
//! - [`frame`]: a streaming decoder that turns client frames into the MQTT
//!   byte stream (frame boundaries carry no meaning for MQTT, MQTT-6.0.0-2),
//!   plus the writers for server frames.
//! - [`mask`]: the word-at-a-time XOR unmasking the decoder runs over every
//!   payload byte.

pub mod frame;
pub mod handshake;
pub mod mask;

pub use frame::{
    write_binary, write_close, write_frame_header, write_pong, Control, FrameDecoder, FrameError,
    OpCode,
};
pub use handshake::{accept_key, handshake, HandshakeConfig, HandshakeError, HandshakeResult};
pub use mask::apply_mask;
