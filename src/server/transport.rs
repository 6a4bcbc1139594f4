//! The byte stream under MQTT: plain TCP, or WebSocket frames (MQTT-6.0).
//!
//! Reading: `read_mqtt` appends MQTT bytes to the packet buffer, through the
//! frame decoder for WebSocket (which unmasks straight into that buffer).
//! Writing: `frame_output` wraps one flush's MQTT bytes in one binary frame
//! and puts control frames (pong, close) behind it, so a flush is one write.

use std::cell::{Cell, RefCell};

use bytes::BytesMut;

use super::connection::ConnectionError;
use super::io::{self, ReadHint, SharedStream};
use super::notify::Notify;
use super::pacer::Pacer;
use crate::websocket::frame::{self, Control, FrameDecoder};

/// Read-side state of a connection's transport. Moves with a hand-off.
pub enum Transport {
    Tcp(ReadHint),
    Ws(Box<WsRead>),
}

pub struct WsRead {
    pub decoder: FrameDecoder,
    /// Raw bytes from the socket not yet through the decoder.
    pub raw: BytesMut,
    pub hint: ReadHint,
    /// A close frame or frame error seen after MQTT bytes that were not yet
    /// handed over: those are processed first (a DISCONNECT followed by a
    /// close in one read must still suppress the will).
    pub ended: Option<ConnectionError>,
}

impl WsRead {
    pub fn new(decoder: FrameDecoder, raw: BytesMut) -> WsRead {
        WsRead {
            decoder,
            raw,
            hint: ReadHint::default(),
            ended: None,
        }
    }
}

/// Write-side state shared by a connection's reader and writer tasks.
#[derive(Default)]
pub struct WriteSide {
    pub notify: Notify,
    pub ws: bool,
    /// Control frames the reader wants sent (pong, close).
    pub control: RefCell<BytesMut>,
    pub close_sent: Cell<bool>,
    /// No writer task exists yet (before CONNECT): the reader writes control
    /// frames itself before it waits for more input.
    pub direct: bool,
    /// Set by the shard's ticker when the client has been silent for
    /// --park-after-ms: the reader stops at its next wait.
    pub park: Notify,
    /// The connection is parking: the writer flushes and stops without
    /// closing the socket.
    pub parking: Cell<bool>,
    /// [`Pacer::stamp`] of the last write: paces the next one, and a
    /// connection that receives messages is not silent (not parked), even
    /// if its client sends nothing.
    pub last_write: Cell<u32>,
    /// Writes so far (wrapping): with the reads, what tells a light
    /// connection (`light::LightMeter`).
    pub writes: Cell<u32>,
    /// The reader took acknowledgements that reopen a full in-flight
    /// window: the next write goes out at once, not on the tick, or a
    /// QoS 1/2 subscriber would get one window per tick.
    pub urgent: Cell<bool>,
}

impl WriteSide {
    pub fn new(ws: bool) -> WriteSide {
        WriteSide {
            ws,
            ..Default::default()
        }
    }

    /// For the time before the connection is served: no writer task yet.
    pub fn direct(ws: bool) -> WriteSide {
        WriteSide {
            ws,
            direct: true,
            ..Default::default()
        }
    }

    /// Queues a close frame (once) and wakes the writer.
    pub fn queue_close(&self, code: u16) {
        self.push_close(code);
        self.notify.notify();
    }

    /// Appends a close frame to the control bytes, once per connection.
    fn push_close(&self, code: u16) {
        if self.ws && !self.close_sent.replace(true) {
            frame::write_close(&mut self.control.borrow_mut(), code, "");
        }
    }

    /// What to write for one flush of `mqtt` bytes. `closing`: the broker is
    /// ending the connection, so a WebSocket close frame goes last.
    pub fn frame_output(&self, mqtt: BytesMut, closing: bool) -> BytesMut {
        if !self.ws {
            return mqtt;
        }
        let mut out = BytesMut::new();
        if !mqtt.is_empty() && !self.close_sent.get() {
            out.reserve(mqtt.len() + 10);
            frame::write_frame_header(&mut out, frame::OpCode::Binary, true, mqtt.len());
            out.extend_from_slice(&mqtt);
        }
        if closing {
            self.push_close(1000);
        }
        out.extend_from_slice(&self.control.borrow_mut().split());
        out
    }
}

impl Transport {
    /// No bytes or end-of-stream pending in the transport itself (a
    /// WebSocket frame half read, or a close seen but not yet reported).
    pub fn is_idle(&self) -> bool {
        match self {
            Transport::Tcp(_) => true,
            Transport::Ws(ws) => ws.raw.is_empty() && ws.ended.is_none(),
        }
    }

    /// The next read does not wait for the pacer's tick.
    pub fn unpace(&mut self) {
        match self {
            Transport::Tcp(hint) => hint.unpace(),
            Transport::Ws(ws) => ws.hint.unpace(),
        }
    }

    /// Lets an idle connection's buffers go (`mqtt` is the packet buffer,
    /// empty after decoding).
    pub fn release_if_idle(&mut self, mqtt: &mut BytesMut) {
        match self {
            Transport::Tcp(hint) => io::release_if_idle(mqtt, hint),
            Transport::Ws(ws) => {
                io::release_if_idle(&mut ws.raw, &ws.hint);
                // Filled by copies from `raw`, so it never needs to be large.
                if mqtt.is_empty() {
                    *mqtt = BytesMut::new();
                }
            }
        }
    }
}

/// Reads until at least one more MQTT byte is in `mqtt`; `Ok(0)` at EOF.
pub async fn read_mqtt(
    pacer: &Pacer,
    stream: &SharedStream,
    transport: &mut Transport,
    write: &WriteSide,
    mqtt: &mut BytesMut,
) -> Result<usize, ConnectionError> {
    let ws = match transport {
        Transport::Tcp(hint) => return Ok(io::read_into(stream, mqtt, hint, pacer).await?),
        Transport::Ws(ws) => ws,
    };
    if let Some(end) = ws.ended.take() {
        return Err(end);
    }
    loop {
        let before = mqtt.len();
        loop {
            let end = match ws.decoder.decode(&mut ws.raw, mqtt) {
                Ok(None) => break,
                Ok(Some(Control::Ping(payload))) => {
                    frame::write_pong(&mut write.control.borrow_mut(), &payload);
                    write.notify.notify();
                    continue;
                }
                Ok(Some(Control::Pong)) => continue,
                Ok(Some(Control::Close { code, .. })) => {
                    // Answer the close with the same code [RFC 6455 5.5.1].
                    write.queue_close(code.unwrap_or(1000));
                    ConnectionError::WsClosed(code)
                }
                Err(e) => {
                    write.queue_close(e.close_code());
                    ConnectionError::WsFrame(e)
                }
            };
            if mqtt.len() > before {
                ws.ended = Some(end);
                return Ok(mqtt.len() - before);
            }
            return Err(end);
        }
        if mqtt.len() > before {
            return Ok(mqtt.len() - before);
        }
        if write.direct {
            let control = write.control.borrow_mut().split();
            if !control.is_empty() {
                io::write_all(stream, &control).await?;
            }
        }
        if io::read_into(stream, &mut ws.raw, &mut ws.hint, pacer).await? == 0 {
            return Ok(0);
        }
    }
}
