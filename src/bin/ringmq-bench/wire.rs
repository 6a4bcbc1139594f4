//! The load generator's side of a connection: plain TCP, TLS over TCP, or
//! MQTT over WebSocket (HTTP upgrade, masked binary frames out, frames parsed in).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use bytes::{Buf, BytesMut};
use ringmq::websocket::{apply_mask, write_frame_header, OpCode};

use crate::tls::{Session, TlsClient};

pub struct Wire {
    stream: TcpStream,
    ws: bool,
    /// TLS: the session, shared with clones of this wire (a publisher's writer and its
    /// ack reader), so records are sealed and opened in order on one session.
    tls: Option<Arc<Mutex<Session>>>,
    /// WebSocket: raw bytes not yet parsed into frames.
    raw: BytesMut,
    /// WebSocket: payload bytes still to come of the current frame.
    in_frame: usize,
    mask_state: u32,
    chunk: Vec<u8>,
}

/// Binds `socket` to source address `ip`, leaving the port to connect()
/// (IP_BIND_ADDRESS_NO_PORT): ports are then picked per 4-tuple, not per
/// address, so one source address serves many connections.
pub fn bind_source(socket: &Socket, ip: IpAddr) -> io::Result<()> {
    if ip.is_ipv4() {
        let one: libc::c_int = 1;
        // SAFETY: valid fd, option value is a c_int that outlives the call.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    socket.bind(&SockAddr::from(SocketAddr::new(ip, 0)))
}

impl Wire {
    /// Connects from `local` (any port) within `timeout`; `ws_path` =
    /// Some("/mqtt") upgrades to WebSocket first; `tls` completes a TLS
    /// handshake first (not with WebSocket).
    pub fn connect(
        target: SocketAddr,
        local: Option<IpAddr>,
        ws_path: Option<&str>,
        tls: Option<&TlsClient>,
        timeout: Duration,
    ) -> io::Result<Wire> {
        let socket = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
        if let Some(ip) = local {
            bind_source(&socket, ip)?;
        }
        socket.connect_timeout(&SockAddr::from(target), timeout)?;
        let mut stream: TcpStream = socket.into();
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(timeout))?;
        let ws = ws_path.is_some();
        let session = match tls {
            Some(_) if ws => return Err(io::Error::other("TLS with WebSocket: not supported")),
            Some(t) => {
                let mut session = t.session()?;
                stream.set_read_timeout(Some(timeout))?;
                session.handshake(&mut stream)?;
                Some(Arc::new(Mutex::new(session)))
            }
            None => None,
        };
        if let Some(path) = ws_path {
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: {target}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Protocol: mqtt\r\n\r\n"
            );
            stream.write_all(req.as_bytes())?;
            stream.set_read_timeout(Some(timeout))?;
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if stream.read(&mut byte)? == 0 || head.len() > 8192 {
                    return Err(io::Error::other("WebSocket upgrade: connection closed"));
                }
                head.push(byte[0]);
            }
            if !head.starts_with(b"HTTP/1.1 101") {
                return Err(io::Error::other(format!(
                    "WebSocket upgrade refused: {}",
                    String::from_utf8_lossy(&head).lines().next().unwrap_or("")
                )));
            }
        }
        let mut wire = Wire::plain(stream);
        wire.ws = ws;
        wire.tls = session;
        Ok(wire)
    }

    /// Plain TCP with the socket's receive buffer set to `rcvbuf` bytes
    /// before connecting (so the window the broker sees stays small): the
    /// hostile scenario's clients that read slowly, or never.
    pub fn tcp_small_rcvbuf(
        target: SocketAddr,
        rcvbuf: usize,
        timeout: Duration,
    ) -> io::Result<Wire> {
        let socket = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
        socket.set_recv_buffer_size(rcvbuf)?;
        socket.connect_timeout(&SockAddr::from(target), timeout)?;
        let stream: TcpStream = socket.into();
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Wire::plain(stream))
    }

    fn plain(stream: TcpStream) -> Wire {
        Wire {
            stream,
            ws: false,
            tls: None,
            raw: BytesMut::new(),
            in_frame: 0,
            mask_state: 0x9E37_79B9,
            chunk: vec![0; 1 << 16],
        }
    }

    pub fn try_clone(&self) -> io::Result<Wire> {
        Ok(Wire {
            stream: self.stream.try_clone()?,
            ws: self.ws,
            tls: self.tls.clone(),
            raw: BytesMut::new(),
            in_frame: 0,
            mask_state: self.mask_state.rotate_left(7) ^ 0x5bd1_e995,
            chunk: vec![0; 1 << 16],
        })
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(t)
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.stream.set_write_timeout(t)
    }

    /// One `write` of raw bytes (plain TCP only): how many went out, or the
    /// write timeout's error when none could. Keeps packet framing intact
    /// where `write_all` would stop part-way through one.
    pub fn write_some(&mut self, bytes: &[u8]) -> io::Result<usize> {
        debug_assert!(
            !self.ws && self.tls.is_none(),
            "write_some is for plain TCP"
        );
        self.stream.write(bytes)
    }

    /// The kernel's TCP state of the socket (1 = established, 7 = closed,
    /// 8 = close-wait: the peer sent FIN), `None` if it cannot be read.
    /// Unlike [`Wire::peer_closed`] it sees a close behind unread data.
    pub fn tcp_state(&self) -> Option<u8> {
        // SAFETY: tcp_info is plain old data; zeroed is a valid value.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: valid fd; `info` and `len` outlive the call and `len` is its size.
        let rc = unsafe {
            libc::getsockopt(
                self.stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        (rc == 0).then_some(info.tcpi_state)
    }

    /// Whether the peer closed (or reset) the connection, without blocking.
    pub fn peer_closed(&self) -> bool {
        let mut b = [0u8; 1];
        if self.stream.set_nonblocking(true).is_err() {
            return true;
        }
        let closed = match self.stream.peek(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        };
        let _ = self.stream.set_nonblocking(false);
        closed
    }

    /// Sends MQTT bytes (one masked binary frame over WebSocket).
    pub fn send(&mut self, mqtt: &[u8]) -> io::Result<()> {
        if let Some(tls) = &self.tls {
            // Sealed and written under the lock: records reach the socket in sequence order.
            let mut s = tls.lock().unwrap_or_else(|e| e.into_inner());
            s.seal(mqtt)?;
            return match s.write_to(&mut &self.stream)? {
                true => Ok(()),
                false => Err(io::ErrorKind::TimedOut.into()),
            };
        }
        if !self.ws {
            return self.stream.write_all(mqtt);
        }
        let mut frame = BytesMut::with_capacity(mqtt.len() + 14);
        write_frame_header(&mut frame, OpCode::Binary, true, mqtt.len());
        // Client frames carry the mask bit and a key.
        frame[1] |= 0x80;
        self.mask_state ^= self.mask_state << 13;
        self.mask_state ^= self.mask_state >> 17;
        self.mask_state ^= self.mask_state << 5;
        let key = self.mask_state.to_be_bytes();
        frame.extend_from_slice(&key);
        let start = frame.len();
        frame.extend_from_slice(mqtt);
        apply_mask(&mut frame[start..], key, 0);
        self.stream.write_all(&frame)
    }

    /// Reads and appends MQTT bytes to `mqtt`; `Ok(0)` at EOF or close.
    pub fn recv(&mut self, mqtt: &mut BytesMut) -> io::Result<usize> {
        if let Some(tls) = self.tls.clone() {
            return self.recv_tls(&tls, mqtt);
        }
        if !self.ws {
            let n = self.stream.read(&mut self.chunk)?;
            mqtt.extend_from_slice(&self.chunk[..n]);
            return Ok(n);
        }
        loop {
            let before = mqtt.len();
            if let Some(closed) = self.parse_frames(mqtt) {
                return Ok(if closed { 0 } else { mqtt.len() - before });
            }
            let n = self.stream.read(&mut self.chunk)?;
            if n == 0 {
                return Ok(0);
            }
            self.raw.extend_from_slice(&self.chunk[..n]);
        }
    }

    /// TLS: reads records (outside the session's lock, so a writer is not held up while
    /// this blocks) until some plaintext or the end comes.
    fn recv_tls(&mut self, tls: &Mutex<Session>, mqtt: &mut BytesMut) -> io::Result<usize> {
        let before = mqtt.len();
        loop {
            let n = self.stream.read(&mut self.chunk)?;
            if n == 0 {
                return Ok(0);
            }
            let mut s = tls.lock().unwrap_or_else(|e| e.into_inner());
            let open = s.open(&self.chunk[..n], mqtt)?;
            if s.wants_write() {
                // An alert or a key update answered.
                s.write_to(&mut &self.stream)?;
            }
            if !open {
                return Ok(0);
            }
            if mqtt.len() > before {
                return Ok(mqtt.len() - before);
            }
        }
    }

    /// Moves frame payload from `raw` to `mqtt`. `Some(true)` on a close
    /// frame, `Some(false)` when payload was moved, `None` when more raw
    /// bytes are needed.
    fn parse_frames(&mut self, mqtt: &mut BytesMut) -> Option<bool> {
        let mut moved = false;
        loop {
            if self.in_frame > 0 {
                let n = self.in_frame.min(self.raw.len());
                if n == 0 {
                    return moved.then_some(false);
                }
                mqtt.extend_from_slice(&self.raw[..n]);
                self.raw.advance(n);
                self.in_frame -= n;
                moved = true;
                continue;
            }
            if self.raw.len() < 2 {
                return moved.then_some(false);
            }
            let opcode = self.raw[0] & 0x0F;
            let (len, header) = match self.raw[1] & 0x7F {
                126 if self.raw.len() >= 4 => {
                    (u16::from_be_bytes([self.raw[2], self.raw[3]]) as usize, 4)
                }
                127 if self.raw.len() >= 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&self.raw[2..10]);
                    (u64::from_be_bytes(b) as usize, 10)
                }
                126 | 127 => return moved.then_some(false),
                n => (n as usize, 2),
            };
            match opcode {
                0x8 => return Some(true),
                0x0 | 0x2 => {
                    self.raw.advance(header);
                    self.in_frame = len;
                }
                _ => {
                    // Ping/pong/other: skip the whole frame once buffered.
                    if self.raw.len() < header + len {
                        return moved.then_some(false);
                    }
                    self.raw.advance(header + len);
                }
            }
        }
    }
}
