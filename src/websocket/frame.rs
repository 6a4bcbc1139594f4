//! WebSocket framing (RFC 6455 §5): a streaming decoder for client frames
//! and the writers for server frames.
//!
//! MQTT rides in binary messages, and frame boundaries mean nothing to it: a
//! packet may span frames and a frame may hold several packets
//! (MQTT-6.0.0-2). So the decoder does not collect messages; it unmasks each
//! payload byte once, as it arrives, and appends it to the MQTT read buffer,
//! where the MQTT codec frames packets as it would on plain TCP. Only
//! control frames (≤ 125 bytes) are waited for whole, and handed back to the
//! caller, who answers pings and closes.

use bytes::{BufMut, Bytes, BytesMut};

use super::mask::apply_mask;

/// Largest control frame payload (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcodes (RFC 6455 §5.2). Only the ones RFC 6455 defines.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl OpCode {
    /// Parses the low nibble of a frame's first byte.
    pub fn from_u8(op: u8) -> Option<OpCode> {
        Some(match op {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// Control opcodes have the high bit of the nibble set.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A whole control frame from the client, for the caller to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Answer with a pong carrying the same payload (RFC 6455 §5.5.2).
    Ping(Bytes),
    /// Unsolicited or answering our ping; nothing to do.
    Pong,
    /// The client is closing; echo the code and end the connection.
    Close { code: Option<u16>, reason: Bytes },
}

/// Why the client's frames were refused. Each maps to the close code to
/// send before dropping the connection ([`FrameError::close_code`]).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("client frame is not masked")]
    Unmasked,
    #[error("reserved bits set but no extension was negotiated")]
    ReservedBitsNotZero,
    #[error("text frame: MQTT must be sent in binary frames")]
    TextFrame,
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    #[error("control frame payload over 125 bytes")]
    ControlFrameTooLong,
    #[error("fragmented control frame")]
    ControlFrameFragmented,
    #[error("continuation frame with no fragmented message open")]
    UnexpectedContinuation,
    #[error("new data frame while a fragmented message is open")]
    ExpectedContinuation,
    #[error("64-bit payload length with the most significant bit set")]
    InvalidLength,
    #[error("message of {size} bytes exceeds the limit of {max}")]
    MessageTooBig { size: u64, max: usize },
    #[error("close frame with a 1-byte payload")]
    InvalidClosePayload,
    #[error("close code {0} may not be sent on the wire")]
    InvalidCloseCode(u16),
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
}

impl FrameError {
    /// The close code to send for this error (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::TextFrame => 1003,
            FrameError::InvalidCloseReason => 1007,
            FrameError::MessageTooBig { .. } => 1009,
            _ => 1002,
        }
    }
}

/// Where the decoder is in the client's byte stream.
#[derive(Debug, Clone)]
enum State {
    /// Between frames: the next byte is a frame's first.
    Header,
    /// Inside a data frame's payload.
    Payload {
        remaining: u64,
        mask: [u8; 4],
        /// Payload bytes of this frame already unmasked: the mask phase.
        phase: usize,
    },
    /// A close frame was read; the client may send nothing after it.
    Closed,
    /// This error was returned; the connection is being closed.
    Failed(FrameError),
}

/// The fields of a frame header that the decoder needs.
struct Header {
    fin: bool,
    opcode: OpCode,
    mask: [u8; 4],
    payload_len: u64,
    /// Data frames: the message's size so far, this frame included.
    message_len: u64,
    /// Bytes of the header itself: 2 + extended length + 4 for the mask.
    len: usize,
}

/// Streaming decoder for client→server frames; see the module doc.
#[derive(Debug)]
pub struct FrameDecoder {
    state: State,
    /// A binary message without FIN was started and not yet finished.
    fragmented: bool,
    /// Payload bytes announced so far by the open fragmented message.
    message_len: u64,
    max_message: usize,
}

impl FrameDecoder {
    /// `max_message`: the largest WebSocket message (all fragments) allowed,
    /// checked from each header before any of its payload is read.
    pub fn new(max_message: usize) -> Self {
        FrameDecoder {
            state: State::Header,
            fragmented: false,
            message_len: 0,
            max_message,
        }
    }

    /// Consumes bytes from `input`. Payload of binary and continuation frames is unmasked and
    /// appended to `mqtt` as it arrives (a frame need not be complete: a packet may span frames
    /// and a frame may hold several packets, MQTT-6.0.0-2). Returns Ok(Some(control)) as soon as
    /// a whole control frame has been read (the caller loops), Ok(None) when `input` is used up.
    ///
    /// A partial frame header or partial control frame is left in `input`
    /// until more bytes arrive. After a close frame, further input is
    /// discarded; after an error, the same error is returned again.
    pub fn decode(
        &mut self,
        input: &mut BytesMut,
        mqtt: &mut BytesMut,
    ) -> Result<Option<Control>, FrameError> {
        loop {
            match self.state {
                State::Failed(ref e) => return Err(e.clone()),
                State::Closed => {
                    input.clear();
                    return Ok(None);
                }
                State::Payload {
                    remaining,
                    mask,
                    phase,
                } => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    let mut chunk = input.split_to(n);
                    apply_mask(&mut chunk, mask, phase);
                    // O(1) when `mqtt` is empty or ends where `chunk` starts.
                    mqtt.unsplit(chunk);
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        State::Header
                    } else {
                        State::Payload {
                            remaining,
                            mask,
                            phase: (phase + n) % 4,
                        }
                    };
                }
                State::Header => {
                    let header = match self.parse_header(input) {
                        Ok(Some(header)) => header,
                        Ok(None) => return Ok(None),
                        Err(e) => return Err(self.fail(e)),
                    };
                    if header.opcode.is_control() {
                        // Wait for the whole control frame (at most 139 bytes).
                        // payload_len <= 125 was checked by parse_header.
                        let payload_len = header.payload_len as usize;
                        if input.len() < header.len + payload_len {
                            return Ok(None);
                        }
                        let _ = input.split_to(header.len);
                        let mut payload = input.split_to(payload_len);
                        apply_mask(&mut payload, header.mask, 0);
                        match self.control(header.opcode, payload.freeze()) {
                            Ok(control) => return Ok(Some(control)),
                            Err(e) => return Err(self.fail(e)),
                        }
                    }
                    let _ = input.split_to(header.len);
                    self.fragmented = !header.fin;
                    self.message_len = if header.fin { 0 } else { header.message_len };
                    if header.payload_len > 0 {
                        self.state = State::Payload {
                            remaining: header.payload_len,
                            mask: header.mask,
                            phase: 0,
                        };
                    }
                }
            }
        }
    }

    /// Parses and checks the header at the start of `input` without
    /// consuming it. `Ok(None)`: not all of it is there yet. Every check that
    /// the bytes at hand allow is made before waiting for more, so a bad
    /// frame is refused as early as possible.
    fn parse_header(&self, input: &[u8]) -> Result<Option<Header>, FrameError> {
        let (b0, b1) = match input {
            [b0, b1, ..] => (*b0, *b1),
            _ => return Ok(None),
        };
        let fin = b0 & 0x80 != 0;
        if b0 & 0x70 != 0 {
            return Err(FrameError::ReservedBitsNotZero);
        }
        let op = b0 & 0x0f;
        let opcode = OpCode::from_u8(op).ok_or(FrameError::UnknownOpcode(op))?;
        if opcode == OpCode::Text {
            return Err(FrameError::TextFrame);
        }
        if b1 & 0x80 == 0 {
            return Err(FrameError::Unmasked);
        }
        let len7 = b1 & 0x7f;
        if opcode.is_control() {
            if !fin {
                return Err(FrameError::ControlFrameFragmented);
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(FrameError::ControlFrameTooLong);
            }
        } else if opcode == OpCode::Continuation && !self.fragmented {
            return Err(FrameError::UnexpectedContinuation);
        } else if opcode == OpCode::Binary && self.fragmented {
            return Err(FrameError::ExpectedContinuation);
        }
        // Non-minimal length encodings are accepted: refusing them would
        // protect nothing, and the size limit below still applies.
        let (payload_len, ext) = match len7 {
            126 => match input.get(2..4) {
                Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 2),
                _ => return Ok(None),
            },
            127 => match input.get(2..10) {
                Some(bytes) => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(bytes);
                    let len = u64::from_be_bytes(be);
                    if len & (1 << 63) != 0 {
                        return Err(FrameError::InvalidLength);
                    }
                    (len, 8)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 0),
        };
        let message_len = match opcode {
            OpCode::Continuation => self.message_len.saturating_add(payload_len),
            _ => payload_len,
        };
        // Refused on the header alone, before any payload is buffered.
        if !opcode.is_control() && message_len > self.max_message as u64 {
            return Err(FrameError::MessageTooBig {
                size: message_len,
                max: self.max_message,
            });
        }
        let mask = match input.get(2 + ext..6 + ext) {
            Some(&[a, b, c, d]) => [a, b, c, d],
            _ => return Ok(None),
        };
        Ok(Some(Header {
            fin,
            opcode,
            mask,
            payload_len,
            message_len,
            len: 6 + ext,
        }))
    }

    /// Turns a whole, unmasked control frame into a [`Control`].
    fn control(&mut self, opcode: OpCode, payload: Bytes) -> Result<Control, FrameError> {
        match opcode {
            OpCode::Ping => Ok(Control::Ping(payload)),
            OpCode::Pong => Ok(Control::Pong),
            _ => {
                let (code, reason) = parse_close(payload)?;
                self.state = State::Closed;
                Ok(Control::Close { code, reason })
            }
        }
    }

    /// Records `e` so later calls repeat it, and returns it.
    fn fail(&mut self, e: FrameError) -> FrameError {
        self.state = State::Failed(e.clone());
        e
    }
}

/// A close payload: empty, or a 2-byte code and a UTF-8 reason (§5.5.1).
fn parse_close(mut payload: Bytes) -> Result<(Option<u16>, Bytes), FrameError> {
    let (a, b) = match payload.as_ref() {
        [] => return Ok((None, Bytes::new())),
        [_] => return Err(FrameError::InvalidClosePayload),
        [a, b, ..] => (*a, *b),
    };
    let code = u16::from_be_bytes([a, b]);
    // §7.4: below 1000 unused; 1004-1006 and 1015 are reserved, never
    // sent; 1016-2999 are for future RFCs. 3000-4999 are for applications.
    let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !valid {
        return Err(FrameError::InvalidCloseCode(code));
    }
    let reason = payload.split_off(2);
    if std::str::from_utf8(&reason).is_err() {
        return Err(FrameError::InvalidCloseReason);
    }
    Ok((Some(code), reason))
}

/// Writes an unmasked (server) frame header for a payload of `payload_len`
/// bytes, in the shortest of the 7-, 16- and 64-bit length forms.
pub fn write_frame_header(out: &mut BytesMut, opcode: OpCode, fin: bool, payload_len: usize) {
    let b0 = if fin { 0x80 } else { 0 } | opcode as u8;
    if payload_len <= 125 {
        out.reserve(2);
        out.put_u8(b0);
        out.put_u8(payload_len as u8);
    } else if let Ok(len) = u16::try_from(payload_len) {
        out.reserve(4);
        out.put_u8(b0);
        out.put_u8(126);
        out.put_u16(len);
    } else {
        out.reserve(10);
        out.put_u8(b0);
        out.put_u8(127);
        out.put_u64(payload_len as u64);
    }
}

/// Writes one final binary frame holding `payload` (MQTT bytes).
pub fn write_binary(out: &mut BytesMut, payload: &[u8]) {
    write_frame_header(out, OpCode::Binary, true, payload.len());
    out.extend_from_slice(payload);
}

/// Writes a pong echoing a ping's `payload`. A ping's payload is at most
/// 125 bytes; anything longer is cut so the frame stays valid.
pub fn write_pong(out: &mut BytesMut, payload: &[u8]) {
    let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    write_frame_header(out, OpCode::Pong, true, payload.len());
    out.extend_from_slice(payload);
}

/// Writes a close frame with `code` and `reason`, the reason cut at a char
/// boundary to fit the 125-byte control payload.
pub fn write_close(out: &mut BytesMut, code: u16, reason: &str) {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    write_frame_header(out, OpCode::Close, true, 2 + reason.len());
    out.put_u16(code);
    out.extend_from_slice(reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked client frame, as a browser would send it.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_frame_header(&mut out, OpCode::Binary, true, payload.len());
        let mut v = out.to_vec();
        v[0] = first;
        v[1] |= 0x80;
        v.extend_from_slice(&MASK);
        let mut p = payload.to_vec();
        apply_mask(&mut p, MASK, 0);
        v.extend_from_slice(&p);
        v
    }

    fn binary(fin: bool, payload: &[u8]) -> Vec<u8> {
        client_frame(if fin { 0x82 } else { 0x02 }, payload)
    }

    fn cont(fin: bool, payload: &[u8]) -> Vec<u8> {
        client_frame(if fin { 0x80 } else { 0x00 }, payload)
    }

    /// Runs `bytes` through a fresh decoder in one go, collecting controls.
    fn run(bytes: &[u8], max: usize) -> (Vec<u8>, Vec<Control>, Option<FrameError>) {
        let mut dec = FrameDecoder::new(max);
        let mut input = BytesMut::from(bytes);
        let mut mqtt = BytesMut::new();
        let mut controls = Vec::new();
        loop {
            match dec.decode(&mut input, &mut mqtt) {
                Ok(Some(c)) => controls.push(c),
                Ok(None) => return (mqtt.to_vec(), controls, None),
                Err(e) => return (mqtt.to_vec(), controls, Some(e)),
            }
        }
    }

    /// Feeds `bytes` one at a time, as a slow network would.
    fn run_bytewise(bytes: &[u8], max: usize) -> (Vec<u8>, Vec<Control>, Option<FrameError>) {
        let mut dec = FrameDecoder::new(max);
        let mut input = BytesMut::new();
        let mut mqtt = BytesMut::new();
        let mut controls = Vec::new();
        for b in bytes {
            input.extend_from_slice(&[*b]);
            loop {
                match dec.decode(&mut input, &mut mqtt) {
                    Ok(Some(c)) => controls.push(c),
                    Ok(None) => break,
                    Err(e) => return (mqtt.to_vec(), controls, Some(e)),
                }
            }
        }
        (mqtt.to_vec(), controls, None)
    }

    fn err(bytes: &[u8]) -> FrameError {
        run(bytes, 1 << 20).2.expect("expected an error")
    }

    #[test]
    fn rfc_masked_hello_text_is_refused() {
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(err(&frame), FrameError::TextFrame);
        assert_eq!(FrameError::TextFrame.close_code(), 1003);
    }

    #[test]
    fn rfc_masked_hello_as_binary() {
        let frame = [
            0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (mqtt, controls, e) = run(&frame, 1024);
        assert_eq!(mqtt, b"Hello");
        assert!(controls.is_empty());
        assert_eq!(e, None);
        assert_eq!(frame.to_vec(), binary(true, b"Hello"));
    }

    #[test]
    fn fragmented_message_across_continuations() {
        let mut bytes = binary(false, b"Hel");
        bytes.extend(cont(false, b""));
        bytes.extend(cont(false, b"l"));
        bytes.extend(cont(true, b"o"));
        bytes.extend(binary(true, b"!"));
        assert_eq!(run(&bytes, 1024), (b"Hello!".to_vec(), vec![], None));
    }

    #[test]
    fn ping_between_fragments() {
        let mut bytes = binary(false, b"ab");
        bytes.extend(client_frame(0x89, b"hi"));
        bytes.extend(cont(true, b"cd"));
        let (mqtt, controls, e) = run(&bytes, 1024);
        assert_eq!(mqtt, b"abcd");
        assert_eq!(controls, vec![Control::Ping(Bytes::from_static(b"hi"))]);
        assert_eq!(e, None);
    }

    /// A stream exercising every path: several frames, controls, lengths.
    fn mixed_stream() -> (Vec<u8>, Vec<u8>) {
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let mut bytes = binary(true, b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c");
        bytes.extend(client_frame(0x89, b"p"));
        bytes.extend(binary(false, &big[..300]));
        bytes.extend(cont(true, &big[300..]));
        bytes.extend(client_frame(0x8A, b""));
        bytes.extend(binary(true, b"\xc0\x00"));
        let mut want = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c".to_vec();
        want.extend(&big);
        want.extend(b"\xc0\x00");
        (bytes, want)
    }

    #[test]
    fn split_at_every_byte_boundary_gives_same_bytes() {
        let mut bytes = binary(true, b"\x30\x05\x00\x01tab");
        bytes.extend(client_frame(0x89, b"x"));
        bytes.extend(binary(false, &[7; 130]));
        bytes.extend(cont(true, b"\xe0\x00"));
        let whole = run(&bytes, 1024);
        assert_eq!(whole.2, None);
        for split in 0..=bytes.len() {
            let mut dec = FrameDecoder::new(1024);
            let mut mqtt = BytesMut::new();
            let mut controls = Vec::new();
            let mut input = BytesMut::new();
            for part in [&bytes[..split], &bytes[split..]] {
                input.extend_from_slice(part);
                while let Some(c) = dec.decode(&mut input, &mut mqtt).unwrap() {
                    controls.push(c);
                }
            }
            assert!(input.is_empty());
            assert_eq!(
                (mqtt.to_vec(), controls),
                (whole.0.clone(), whole.1.clone())
            );
        }
    }

    #[test]
    fn byte_at_a_time_gives_same_bytes() {
        let (bytes, want) = mixed_stream();
        let (mqtt, controls, e) = run_bytewise(&bytes, 1 << 20);
        assert_eq!(e, None);
        assert_eq!(mqtt, want);
        assert_eq!(
            controls,
            vec![Control::Ping(Bytes::from_static(b"p")), Control::Pong]
        );
        assert_eq!(run(&bytes, 1 << 20).0, want);
    }

    #[test]
    fn several_packets_in_one_frame() {
        // PINGREQ, PINGREQ, DISCONNECT in one frame.
        let bytes = binary(true, b"\xc0\x00\xc0\x00\xe0\x00");
        assert_eq!(run(&bytes, 64).0, b"\xc0\x00\xc0\x00\xe0\x00");
    }

    #[test]
    fn one_packet_across_three_frames() {
        let packet = b"\x30\x0a\x00\x03a/bhello";
        let mut bytes = binary(false, &packet[..3]);
        bytes.extend(cont(false, &packet[3..7]));
        bytes.extend(cont(true, &packet[7..]));
        assert_eq!(run(&bytes, 64).0, packet);
        // Also as three separate whole messages.
        let mut bytes = binary(true, &packet[..1]);
        bytes.extend(binary(true, &packet[1..9]));
        bytes.extend(binary(true, &packet[9..]));
        assert_eq!(run(&bytes, 64).0, packet);
    }

    #[test]
    fn length_forms_126_and_127() {
        let p126: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let f = binary(true, &p126);
        assert_eq!(&f[..4], &[0x82, 0xfe, 0x01, 0x2c]);
        assert_eq!(run(&f, 1 << 20).0, p126);

        let p127: Vec<u8> = (0..65_536u32).map(|i| (i * 3) as u8).collect();
        let f = binary(true, &p127);
        assert_eq!(&f[..10], &[0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(run(&f, 1 << 20).0, p127);

        // Non-minimal forms are accepted.
        let mut f = vec![0x82, 0xfe, 0, 2];
        f.extend(MASK);
        f.extend([b'a' ^ MASK[0], b'b' ^ MASK[1]]);
        assert_eq!(run(&f, 64).0, b"ab");
    }

    #[test]
    fn server_header_length_forms() {
        let mut out = BytesMut::new();
        write_frame_header(&mut out, OpCode::Binary, true, 125);
        assert_eq!(&out[..], &[0x82, 125]);
        out.clear();
        write_frame_header(&mut out, OpCode::Binary, false, 126);
        assert_eq!(&out[..], &[0x02, 126, 0, 126]);
        out.clear();
        write_frame_header(&mut out, OpCode::Binary, true, 65_535);
        assert_eq!(&out[..], &[0x82, 126, 0xff, 0xff]);
        out.clear();
        write_frame_header(&mut out, OpCode::Binary, true, 65_536);
        assert_eq!(&out[..], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn server_writers() {
        let mut out = BytesMut::new();
        write_binary(&mut out, b"\xd0\x00");
        assert_eq!(&out[..], b"\x82\x02\xd0\x00");
        out.clear();
        write_pong(&mut out, b"hi");
        assert_eq!(&out[..], b"\x8a\x02hi");
        out.clear();
        write_close(&mut out, 1000, "");
        assert_eq!(&out[..], b"\x88\x02\x03\xe8");
        out.clear();
        write_close(&mut out, 1001, "bye");
        assert_eq!(&out[..], b"\x88\x05\x03\xe9bye");
        out.clear();
        // A long reason is cut at a char boundary to fit 125 bytes.
        write_close(&mut out, 1000, &"é".repeat(100));
        assert_eq!(out[1], 124);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
        out.clear();
        write_pong(&mut out, &[1; 200]);
        assert_eq!(out.len(), 2 + 125);
    }

    #[test]
    fn ping_and_pong() {
        let (_, controls, e) = run(&client_frame(0x89, b"are you there"), 64);
        assert_eq!(e, None);
        assert_eq!(
            controls,
            vec![Control::Ping(Bytes::from_static(b"are you there"))]
        );
        let (_, controls, _) = run(&client_frame(0x8A, b"x"), 64);
        assert_eq!(controls, vec![Control::Pong]);
        // A 125-byte ping is the largest allowed.
        let (_, controls, e) = run(&client_frame(0x89, &[5; 125]), 64);
        assert_eq!(e, None);
        assert_eq!(controls, vec![Control::Ping(Bytes::from(vec![5; 125]))]);
    }

    #[test]
    fn close_frames() {
        let (_, controls, e) = run(&client_frame(0x88, b"\x03\xe8bye"), 64);
        assert_eq!(e, None);
        assert_eq!(
            controls,
            vec![Control::Close {
                code: Some(1000),
                reason: Bytes::from_static(b"bye")
            }]
        );
        let (_, controls, _) = run(&client_frame(0x88, b""), 64);
        assert_eq!(
            controls,
            vec![Control::Close {
                code: None,
                reason: Bytes::new()
            }]
        );
        // Nothing after a close is delivered.
        let mut bytes = client_frame(0x88, b"\x0f\xa0");
        bytes.extend(binary(true, b"late"));
        let (mqtt, controls, e) = run(&bytes, 64);
        assert_eq!((mqtt.len(), controls.len(), e), (0, 1, None));
    }

    #[test]
    fn every_error() {
        let cases: Vec<(Vec<u8>, FrameError, u16)> = vec![
            (vec![0x82, 0x00], FrameError::Unmasked, 1002),
            (
                client_frame(0xc2, b"x"),
                FrameError::ReservedBitsNotZero,
                1002,
            ),
            (
                client_frame(0x92, b"x"),
                FrameError::ReservedBitsNotZero,
                1002,
            ),
            (client_frame(0x81, b"x"), FrameError::TextFrame, 1003),
            (client_frame(0x83, b"x"), FrameError::UnknownOpcode(3), 1002),
            (
                client_frame(0x8b, b"x"),
                FrameError::UnknownOpcode(0xb),
                1002,
            ),
            (
                client_frame(0x89, &[0; 126]),
                FrameError::ControlFrameTooLong,
                1002,
            ),
            (
                client_frame(0x09, b"x"),
                FrameError::ControlFrameFragmented,
                1002,
            ),
            (cont(true, b"x"), FrameError::UnexpectedContinuation, 1002),
            (
                [binary(false, b"a"), binary(true, b"b")].concat(),
                FrameError::ExpectedContinuation,
                1002,
            ),
            (
                vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0],
                FrameError::InvalidLength,
                1002,
            ),
            (
                client_frame(0x88, b"\x03"),
                FrameError::InvalidClosePayload,
                1002,
            ),
            (
                client_frame(0x88, b"\x03\xed"),
                FrameError::InvalidCloseCode(1005),
                1002,
            ),
            (
                client_frame(0x88, b"\x00\x10"),
                FrameError::InvalidCloseCode(16),
                1002,
            ),
            (
                client_frame(0x88, b"\x03\xe8\xff"),
                FrameError::InvalidCloseReason,
                1007,
            ),
        ];
        for (bytes, want, code) in cases {
            assert_eq!(err(&bytes), want, "{bytes:02x?}");
            assert_eq!(want.close_code(), code);
            // Split anywhere, the same error.
            assert_eq!(run_bytewise(&bytes, 1 << 20).2, Some(want));
        }
    }

    #[test]
    fn message_too_big_from_header_alone() {
        // Only the header is there: refused before any payload arrives.
        let mut header = vec![0x82, 0xfe, 0x01, 0x00];
        header.extend(MASK);
        let want = FrameError::MessageTooBig {
            size: 256,
            max: 255,
        };
        assert_eq!(run(&header, 255).2, Some(want.clone()));
        assert_eq!(want.close_code(), 1009);
        assert_eq!(run(&header, 256).2, None);
        // Fragments add up.
        let mut bytes = binary(false, &[1; 200]);
        bytes.extend(cont(false, &[1; 50]));
        bytes.extend(cont(true, &[1; 10]));
        assert_eq!(
            run(&bytes, 255).2,
            Some(FrameError::MessageTooBig {
                size: 260,
                max: 255
            })
        );
        // ...but each message starts from zero.
        let mut bytes = binary(true, &[1; 200]);
        bytes.extend(binary(true, &[1; 200]));
        assert_eq!(run(&bytes, 255).2, None);
        // A huge 64-bit length is refused, not allocated.
        let huge = vec![0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            run(&huge, 1 << 20).2,
            Some(FrameError::MessageTooBig { .. })
        ));
    }

    #[test]
    fn error_is_sticky() {
        let mut dec = FrameDecoder::new(64);
        let mut input = BytesMut::from(&client_frame(0x81, b"x")[..]);
        let mut mqtt = BytesMut::new();
        assert_eq!(
            dec.decode(&mut input, &mut mqtt),
            Err(FrameError::TextFrame)
        );
        let mut more = BytesMut::from(&binary(true, b"ok")[..]);
        assert_eq!(dec.decode(&mut more, &mut mqtt), Err(FrameError::TextFrame));
        assert!(mqtt.is_empty());
    }

    #[test]
    fn partial_header_is_left_in_input() {
        let f = binary(true, b"abc");
        let mut dec = FrameDecoder::new(64);
        let mut input = BytesMut::from(&f[..5]);
        let mut mqtt = BytesMut::new();
        assert_eq!(dec.decode(&mut input, &mut mqtt), Ok(None));
        assert_eq!(input.len(), 5);
        input.extend_from_slice(&f[5..7]);
        assert_eq!(dec.decode(&mut input, &mut mqtt), Ok(None));
        assert!(input.is_empty());
        assert_eq!(&mqtt[..], b"a");
    }
    /// A cheap stand-in for the fuzz target that runs with `cargo test`:
    /// random and mutated-valid streams, random chunking, no panics, and
    /// never more MQTT bytes out than bytes consumed.
    #[test]
    fn random_input_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (valid, _) = mixed_stream();
        for round in 0..2000 {
            let mut data: Vec<u8> = if round % 2 == 0 {
                (0..next() % 300).map(|_| next() as u8).collect()
            } else {
                valid[..(next() as usize % 400).min(valid.len())].to_vec()
            };
            for _ in 0..next() % 4 {
                if !data.is_empty() {
                    let i = next() as usize % data.len();
                    data[i] = next() as u8;
                }
            }
            let chunk = (next() % 17 + 1) as usize;
            let mut dec = FrameDecoder::new(1000);
            let (mut input, mut mqtt, mut fed) = (BytesMut::new(), BytesMut::new(), 0);
            'feed: for piece in data.chunks(chunk) {
                input.extend_from_slice(piece);
                fed += piece.len();
                loop {
                    let result = dec.decode(&mut input, &mut mqtt);
                    assert!(mqtt.len() <= fed - input.len());
                    match result {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }
    }
}
