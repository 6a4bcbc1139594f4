//! The byte stream under MQTT: plain TCP, or WebSocket frames (MQTT-6.0),
//! either of them optionally inside TLS.
//!
//! Reading: `read_mqtt` appends MQTT bytes to the packet buffer, through
//! TLS (`read_plain`) and then the frame decoder for WebSocket (which
//! unmasks straight into that buffer). Writing: `seal_output` wraps one
//! flush's MQTT bytes in one binary frame, puts control frames (pong,
//! close) behind it and encrypts the lot, so a flush is one write.

use std::cell::{Cell, RefCell};

use bytes::BytesMut;

use super::connection::ConnectionError;
use super::io::{self, ReadHint, SharedStream};
use super::notify::Notify;
use super::pacer::Pacer;
use super::tls;
use crate::websocket::frame::{self, Control, FrameDecoder};

/// A connection's transport state. Moves with a hand-off and with parking.
pub struct Transport {
    pub framing: Framing,
    /// The TLS session (mqtts, wss). While tasks serve the connection it
    /// lives in their `WriteSide` instead, shared by reader and writer.
    pub tls: Option<Box<tls::TlsSession>>,
}

/// How MQTT bytes are framed on the (plaintext) stream.
pub enum Framing {
    Tcp(ReadHint),
    Ws(Box<WsRead>),
}

impl Transport {
    pub fn tcp(tls: Option<Box<tls::TlsSession>>) -> Transport {
        Transport {
            framing: Framing::Tcp(ReadHint::default()),
            tls,
        }
    }

    pub fn is_ws(&self) -> bool {
        matches!(self.framing, Framing::Ws(_))
    }

    /// What light connections serve inline (`light`): MQTT on TCP, in TLS
    /// or not.
    pub fn can_be_light(&self) -> bool {
        !self.is_ws()
    }
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
    /// The TLS session while tasks serve the connection (see `Transport`).
    pub tls: RefCell<Option<Box<tls::TlsSession>>>,
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

    /// Moves the transport's TLS session here (tasks start serving).
    pub fn with_tls(self, transport: &mut Transport) -> WriteSide {
        *self.tls.borrow_mut() = transport.tls.take();
        self
    }

    /// What to write for one flush of `mqtt` bytes: framed, then sealed.
    /// `closing`: the broker is ending the connection, so a WebSocket close
    /// frame and a TLS close_notify go last.
    pub fn seal_output(&self, mqtt: BytesMut, closing: bool) -> std::io::Result<BytesMut> {
        let out = self.frame_output(mqtt, closing);
        let mut tls = self.tls.borrow_mut();
        let Some(session) = tls.as_mut() else {
            return Ok(out);
        };
        if closing {
            session.conn.send_close_notify();
        }
        let mut sealed = BytesMut::new();
        tls::seal(session, &out, &mut sealed)?;
        Ok(sealed)
    }

    /// Seals `plain` and writes it (the direct writes before a writer task
    /// exists: an HTTP answer, a refusal).
    pub async fn send(&self, stream: &SharedStream, plain: &[u8]) -> std::io::Result<()> {
        let sealed = {
            let mut tls = self.tls.borrow_mut();
            match tls.as_mut() {
                Some(conn) => {
                    let mut sealed = BytesMut::new();
                    tls::seal(conn, plain, &mut sealed)?;
                    Some(sealed)
                }
                None => None,
            }
        };
        match sealed {
            Some(sealed) => io::write_all(stream, &sealed).await,
            None => io::write_all(stream, plain).await,
        }
    }

    /// Frames one flush of `mqtt` bytes (see `seal_output`).
    fn frame_output(&self, mqtt: BytesMut, closing: bool) -> BytesMut {
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
        match &self.framing {
            Framing::Tcp(_) => true,
            Framing::Ws(ws) => ws.raw.is_empty() && ws.ended.is_none(),
        }
    }

    /// The next read does not wait for the pacer's tick.
    pub fn unpace(&mut self) {
        match &mut self.framing {
            Framing::Tcp(hint) => hint.unpace(),
            Framing::Ws(ws) => ws.hint.unpace(),
        }
    }

    /// Lets an idle connection's buffers go (`mqtt` is the packet buffer,
    /// empty after decoding).
    pub fn release_if_idle(&mut self, mqtt: &mut BytesMut) {
        match &mut self.framing {
            Framing::Tcp(hint) => io::release_if_idle(mqtt, hint),
            Framing::Ws(ws) => {
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
    let ws = match &mut transport.framing {
        Framing::Tcp(hint) => return read_plain(stream, write, mqtt, hint, pacer).await,
        Framing::Ws(ws) => ws,
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
                write.send(stream, &control).await?;
            }
        }
        if read_plain(stream, write, &mut ws.raw, &mut ws.hint, pacer).await? == 0 {
            return Ok(0);
        }
    }
}

/// Reads what is available into `buf`, decrypted when the connection is
/// TLS (ciphertext that carries no application data, such as a key
/// update, is taken and read past); `Ok(0)` at EOF or close_notify.
pub async fn read_plain(
    stream: &SharedStream,
    write: &WriteSide,
    buf: &mut BytesMut,
    hint: &mut ReadHint,
    pacer: &Pacer,
) -> Result<usize, ConnectionError> {
    if write.tls.borrow().is_none() {
        return Ok(io::read_into(stream, buf, hint, pacer).await?);
    }
    let mut raw = BytesMut::new();
    loop {
        if io::read_into(stream, &mut raw, hint, pacer).await? == 0 {
            return Ok(0);
        }
        let before = buf.len();
        let opened = {
            let mut tls = write.tls.borrow_mut();
            let Some(conn) = tls.as_mut() else {
                return Ok(0);
            };
            tls::open(conn, &raw, buf)
        };
        raw.clear();
        let opened = opened.map_err(ConnectionError::Tls)?;
        if opened.wants_write {
            if write.direct {
                write.send(stream, &[]).await?;
            } else {
                write.notify.notify();
            }
        }
        if buf.len() > before {
            return Ok(buf.len() - before);
        }
        if opened.closed {
            return Ok(0);
        }
    }
}
