//! One non-blocking MQTT connection of a fleet thread: a connect from a chosen source
//! address, writes that keep what the socket would not take, reads decoded with the crate's codec.
//!
//! A fleet thread drives thousands of these from one `mio` loop, so nothing here blocks:
//! a write that would block leaves the rest in `wbuf` for the next writable event, and a
//! read takes what the kernel has. With TLS the connection carries a sans-IO rustls session:
//! queued plaintext is sealed on flush, records read are opened into the read buffer, and
//! the handshake runs on the same readable/writable events.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;
use bytestring::ByteString;
use mio::net::TcpStream;
use ringmq::protocol::{decode, encode, Connect, DecodeError, Disconnect, Packet, ProtocolVersion};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::mqtt::MAX_PACKET;
use crate::tls::{Session, TlsClient};

pub struct Conn {
    pub stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// The TCP connect completed.
    pub established: bool,
    tls: Option<Box<Session>>,
}

impl Conn {
    /// Starts a non-blocking connect from `local` (any port: the kernel picks one per
    /// 4-tuple, so one source address serves many connections); with `tls`, the TLS
    /// handshake follows on the connection's events.
    pub fn open(target: SocketAddr, local: IpAddr, tls: Option<&TlsClient>) -> io::Result<Conn> {
        let tls = tls.map(|t| t.session().map(Box::new)).transpose()?;
        let socket = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.set_nodelay(true)?;
        crate::wire::bind_source(&socket, local)?;
        match socket.connect(&SockAddr::from(target)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let std: std::net::TcpStream = socket.into();
        Ok(Conn {
            stream: TcpStream::from_std(std),
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            established: false,
            tls,
        })
    }

    /// On an event before the connect completed: `Ok(true)` once it has, an error when it
    /// failed (refused, reset, no route).
    pub fn check_established(&mut self) -> io::Result<bool> {
        if self.established {
            return Ok(true);
        }
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.established = true;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds bytes to send; [`Conn::flush`] sends them.
    pub fn queue(&mut self) -> &mut BytesMut {
        &mut self.wbuf
    }

    /// Writes what the socket takes of the queued bytes.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.established {
            return Ok(());
        }
        if let Some(tls) = self.tls.as_mut() {
            if !self.wbuf.is_empty() {
                tls.seal(&self.wbuf)?;
                self.wbuf.clear();
            }
            tls.write_to(&mut self.stream)?;
            return Ok(());
        }
        while !self.wbuf.is_empty() {
            match self.stream.write(&self.wbuf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    let _ = self.wbuf.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// TLS: whether the handshake resumed an earlier session.
    pub fn tls_resumed(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.resumed())
    }

    /// TLS: seals what is queued, then a close_notify after it (nothing with plain TCP);
    /// [`Conn::flush`] sends them.
    pub fn close_notify(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls.as_mut() {
            tls.seal(&self.wbuf)?;
            self.wbuf.clear();
            tls.close();
        }
        Ok(())
    }

    /// Reads everything the kernel has into the read buffer; `Ok(false)` when the broker
    /// closed the connection.
    pub fn read_all(&mut self, scratch: &mut [u8]) -> io::Result<bool> {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => return Ok(false),
                Ok(n) => match self.tls.as_mut() {
                    Some(tls) => {
                        if !tls.open(&scratch[..n], &mut self.rbuf)? {
                            return Ok(false);
                        }
                    }
                    None => self.rbuf.extend_from_slice(&scratch[..n]),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next whole packet read, if any.
    pub fn next_packet(&mut self, v: ProtocolVersion) -> Result<Option<Packet>, DecodeError> {
        decode(&mut self.rbuf, v, MAX_PACKET)
    }
}

/// CONNECT with a clean session, no will and no credentials.
pub fn connect_packet(v: ProtocolVersion, client_id: &str, keep_alive: u16, out: &mut BytesMut) {
    let connect = Connect {
        protocol: v,
        clean_start: true,
        keep_alive,
        client_id: ByteString::from(client_id),
        will: None,
        username: None,
        password: None,
        properties: None,
    };
    encode(&Packet::Connect(Box::new(connect)), v, out);
}

pub fn disconnect_packet(v: ProtocolVersion, out: &mut BytesMut) {
    let d = Disconnect {
        reason: 0,
        properties: None,
    };
    encode(&Packet::Disconnect(d), v, out);
}

pub fn pingreq_packet(v: ProtocolVersion, out: &mut BytesMut) {
    encode(&Packet::PingReq, v, out);
}

/// A short name for an I/O error, to count failures by cause.
pub fn cause(what: &str, e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{what}: {:?} (os error {code})", e.kind()),
        None => format!("{what}: {e}"),
    }
}
