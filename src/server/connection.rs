//! One client connection: its CONNECT, its placement, then a reader task
//! (socket → decode → core) and a writer task (core's outbox → socket).

use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use bytes::BytesMut;
use glommio::net::TcpStream;
use thiserror::Error;

use std::net::SocketAddr;

use super::admission::Refusal;
use super::authn;
use super::context::ShardCtx;
use super::io::{self, SharedStream};
use super::light::LightMeter;
use super::listener::{Listener, ListenerKind};
use super::mesh::{Handoff, MeshItem};
use super::pacer::Pacer;
use super::parking;
use super::proxy_header;
use super::security::ListenerSecurity;
use super::tls;
use super::transport::{read_mqtt, Transport, WriteSide};
use super::ws_upgrade;
use crate::broker::{home_shard, Access, ConnId};
use crate::protocol::{self, ConnAck, Connect, DecodeError, Packet, ProtocolVersion};

/// Why a connection ended before or instead of being served.
#[derive(Debug, Error)]
pub enum ConnectionError {
    #[error("no CONNECT within the connect timeout")]
    ConnectTimeout,
    #[error("first packet is not CONNECT [MQTT-3.1.0-1]")]
    NotConnect,
    #[error("malformed packet: {0}")]
    Decode(#[from] DecodeError),
    #[error("peer closed the connection")]
    Eof,
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("WebSocket close received (code {0:?})")]
    WsClosed(Option<u16>),
    #[error("WebSocket frame: {0}")]
    WsFrame(#[from] crate::websocket::frame::FrameError),
    #[error("{0}")]
    Tls(super::tls::TlsError),
}

/// Counts an open socket against --max-connections (broker-wide) and in
/// the shard's `open_sockets` while alive.
pub(super) struct SocketSlot(Rc<ShardCtx>);

impl SocketSlot {
    /// The slot of a socket already counted (a parked one that closes).
    pub(super) fn counted(ctx: Rc<ShardCtx>) -> SocketSlot {
        SocketSlot(ctx)
    }

    /// The socket went to another shard with its broker-wide count: only
    /// this shard's count drops.
    fn pass_on(self) {
        let ctx = &self.0;
        ctx.open_sockets
            .set(ctx.open_sockets.get().saturating_sub(1));
        std::mem::forget(self);
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0
            .open_sockets
            .set(self.0.open_sockets.get().saturating_sub(1));
        self.0.admission.closed();
    }
}

/// A socket just accepted by one of this shard's listeners.
pub async fn accept(ctx: Rc<ShardCtx>, stream: TcpStream, listener: Rc<Listener>) {
    let socket_peer = stream.peer_addr().ok();
    // Behind a proxy the socket's peer is the proxy: the per-address rate
    // applies to the address its header gives (below).
    let refusal = if ctx.admission.memory_high() {
        Some(Refusal::MemoryHigh)
    } else if !listener.proxy_protocol && !admit_rate(&ctx, socket_peer) {
        Some(Refusal::ConnectRate)
    } else if !ctx.admission.try_open(ctx.config.max_connections) {
        Some(Refusal::MaxConnections)
    } else {
        None
    };
    if let Some(why) = refusal {
        ctx.admission.refuse(why, ctx.id);
        return;
    }
    ctx.open_sockets.set(ctx.open_sockets.get() + 1);
    let slot = SocketSlot(ctx.clone());
    let _ = stream.set_nodelay(true);
    let stream: SharedStream = Rc::new(RefCell::new(stream));
    let security = ctx.security_for(listener.index);
    // The PROXY header and the TLS handshake come within the connect
    // timeout, like the CONNECT after them.
    let opened = glommio::timer::timeout(ctx.config.connect_timeout, async {
        Ok(open(&ctx, &stream, &listener, &security, socket_peer).await)
    })
    .await
    .unwrap_or(Err(OpenError::Timeout));
    let opened = match opened {
        Ok(o) => o,
        Err(e) => {
            e.log(&ctx, socket_peer);
            return;
        }
    };
    let peer = opened.peer;
    if listener.proxy_protocol && !admit_rate(&ctx, peer) {
        ctx.admission.refuse(Refusal::ConnectRate, ctx.id);
        return;
    }
    let write = opened.write;
    let mut transport = match &listener.kind {
        ListenerKind::Mqtt => Transport::tcp(None),
        ListenerKind::Ws(cfg) => {
            match ws_upgrade::upgrade(&ctx, &stream, &write, cfg, peer, opened.plaintext).await {
                Some(t) => t,
                None => return,
            }
        }
    };
    let write = WriteSide {
        ws: transport.is_ws(),
        ..write
    };
    let mut buf = match &listener.kind {
        ListenerKind::Mqtt => opened.initial_mqtt,
        ListenerKind::Ws(_) => BytesMut::new(),
    };
    let max = ctx.config.max_packet_size;
    let first = glommio::timer::timeout(ctx.config.connect_timeout, async {
        Ok(read_connect(&ctx.pacer, &stream, &mut transport, &write, &mut buf, max).await)
    })
    .await
    .unwrap_or(Err(ConnectionError::ConnectTimeout));
    let mut connect = match first {
        Ok(c) => c,
        Err(e) => {
            if let ConnectionError::Decode(DecodeError::UnsupportedProtocolLevel(level)) = e {
                // [MQTT-3.1.2-2]: answer 0x01 "unacceptable protocol version".
                tracing::debug!(shard = ctx.id, level, "unsupported protocol level");
                let code = protocol::reason::connack_v3::UNACCEPTABLE_PROTOCOL_VERSION;
                refuse(&stream, &write, code, ProtocolVersion::V311).await;
            } else {
                tracing::debug!(shard = ctx.id, ?peer, error = %e, "closing connection before CONNECT completed");
                if let Ok(out) = write.seal_output(BytesMut::new(), true) {
                    let _ = io::write_all(&stream, &out).await;
                }
            }
            return;
        }
    };
    let identity = write.tls.borrow().as_deref().and_then(tls::peer_identity);
    if let Err(why) =
        authn::authenticate(&ctx, listener.index, &security, &mut connect, identity).await
    {
        tracing::info!(
            shard = ctx.id,
            ?peer,
            client_id = %connect.client_id,
            username = connect.username.as_deref().unwrap_or(""),
            ?why,
            "CONNECT refused: not authenticated"
        );
        refuse(
            &stream,
            &write,
            why.code(connect.protocol.is_v5()),
            connect.protocol,
        )
        .await;
        return;
    }
    tracing::debug!(shard = ctx.id, ?peer, client_id = %connect.client_id, "CONNECT accepted");
    transport.tls = write.tls.borrow_mut().take();
    let access = Access {
        listener: listener.index as u16,
        acl: security.acl.clone(),
    };
    let home = if connect.client_id.is_empty() {
        ctx.id
    } else {
        home_shard(&connect.client_id, ctx.shards)
    };
    if home == ctx.id {
        let Ok(stream) = Rc::try_unwrap(stream) else {
            return;
        };
        // Counted on: `run` holds a slot of its own from now on.
        std::mem::forget(slot);
        // A task of its own: the handshake state above is freed, so an idle
        // connection carries only what serving it needs.
        glommio::spawn_local(serve(
            ctx,
            stream.into_inner(),
            transport,
            buf,
            connect,
            access,
        ))
        .detach();
        return;
    }
    hand_off(&ctx, slot, stream, transport, buf, connect, access, home).await;
}

/// Whether the per-address connection rate lets `peer` in.
fn admit_rate(ctx: &ShardCtx, peer: Option<SocketAddr>) -> bool {
    peer.is_none_or(|p| {
        ctx.connect_rate
            .admit(p.ip(), ctx.config.max_connect_rate, ctx.now())
    })
}

/// Answers a CONNECT with a refusal code and closes.
async fn refuse(stream: &SharedStream, write: &WriteSide, code: u8, version: ProtocolVersion) {
    let refusal = ConnAck {
        session_present: false,
        code,
        properties: None,
    };
    let mut out = BytesMut::new();
    protocol::encode(&Packet::ConnAck(refusal), version, &mut out);
    if let Ok(out) = write.seal_output(out, true) {
        let _ = io::write_all(stream, &out).await;
    }
}

/// A connection past its PROXY header and TLS handshake.
struct Opened {
    /// The client's address: from the PROXY header, else the socket's.
    peer: Option<SocketAddr>,
    /// Holds the TLS session, if any, for the writes before the tasks.
    write: WriteSide,
    /// Plaintext bytes already read (an HTTP request, a CONNECT).
    plaintext: BytesMut,
    /// The same, for an MQTT listener (moved, not copied).
    initial_mqtt: BytesMut,
}

/// Why a connection ended before its CONNECT could be read.
#[derive(Debug, Error)]
enum OpenError {
    #[error("no PROXY header and TLS handshake within the connect timeout")]
    Timeout,
    #[error("PROXY header: {0}")]
    Proxy(String),
    #[error("TLS handshake failed: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

impl OpenError {
    /// Logged once per connection: at info for what an operator may have
    /// to act on (a client with a bad certificate), debug for the rest.
    fn log(&self, ctx: &ShardCtx, peer: Option<SocketAddr>) {
        match self {
            OpenError::Tls(tls::TlsError::Protocol(_)) | OpenError::Proxy(_) => {
                tracing::info!(shard = ctx.id, ?peer, "connection closed: {self}")
            }
            _ => tracing::debug!(shard = ctx.id, ?peer, "connection closed: {self}"),
        }
    }
}

/// Reads the PROXY header (if the listener expects one) and runs the TLS
/// handshake (if it is a TLS listener).
async fn open(
    ctx: &ShardCtx,
    stream: &SharedStream,
    listener: &Listener,
    security: &ListenerSecurity,
    socket_peer: Option<SocketAddr>,
) -> Result<Opened, OpenError> {
    let mut peer = socket_peer;
    let mut initial = BytesMut::new();
    if listener.proxy_protocol {
        let (source, rest) = proxy_header::read(stream, &ctx.pacer)
            .await
            .map_err(|e| OpenError::Proxy(e.to_string()))?;
        // LOCAL (a health check) or an unknown family: the socket's peer.
        if let Some(source) = source {
            tracing::debug!(shard = ctx.id, proxy = ?socket_peer, client = %source, "PROXY header");
            peer = Some(source);
        }
        initial = rest;
    }
    let Some(configs) = security.tls.as_ref().filter(|_| listener.tls) else {
        return Ok(Opened {
            peer,
            write: WriteSide::direct(false),
            plaintext: initial.clone(),
            initial_mqtt: initial,
        });
    };
    let established = tls::handshake(stream, configs, &ctx.pacer, initial).await?;
    let write = WriteSide::direct(false);
    *write.tls.borrow_mut() = Some(established.session);
    Ok(Opened {
        peer,
        write,
        plaintext: established.plaintext.clone(),
        initial_mqtt: established.plaintext,
    })
}

/// Hands the socket to the client's home shard: dups the fd for it, then
/// closes ours (glommio's stream has no way to give its fd up).
#[allow(clippy::too_many_arguments)]
async fn hand_off(
    ctx: &ShardCtx,
    slot: SocketSlot,
    stream: SharedStream,
    transport: Transport,
    buffered: BytesMut,
    connect: Box<Connect>,
    access: Access,
    home: usize,
) {
    let fd = stream.borrow().as_raw_fd();
    // SAFETY: dup of an fd we own; the copy goes to exactly one receiver.
    let dup = unsafe { libc::dup(fd) };
    drop(stream);
    if dup < 0 {
        tracing::warn!(shard = ctx.id, error = %std::io::Error::last_os_error(), "dup failed: cannot hand the connection to its home shard");
        return;
    }
    let Some(mesh) = ctx.mesh.get() else {
        // SAFETY: dup is ours and was not handed to anyone.
        unsafe { libc::close(dup) };
        return;
    };
    tracing::trace!(shard = ctx.id, home, "handing connection to its home shard");
    let item = MeshItem::Handoff(Handoff {
        fd: dup,
        transport,
        buffered,
        connect,
        access,
    });
    match mesh.send_to(home, item).await {
        Ok(()) => slot.pass_on(),
        Err(e) => tracing::warn!(shard = ctx.id, home, error = %e, "handoff failed"),
    }
}

/// Reads until a whole first packet is there; it must be a CONNECT.
async fn read_connect(
    pacer: &Pacer,
    stream: &SharedStream,
    transport: &mut Transport,
    write: &WriteSide,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Box<Connect>, ConnectionError> {
    loop {
        match protocol::decode(buf, ProtocolVersion::V311, max)? {
            Some(Packet::Connect(c)) => return Ok(c),
            Some(_) => return Err(ConnectionError::NotConnect),
            None => {}
        }
        if read_mqtt(pacer, stream, transport, write, buf).await? == 0 {
            return Err(ConnectionError::Eof);
        }
    }
}

/// Serves a connection whose CONNECT has been read, on its home shard.
/// The caller has counted the socket in `open_sockets`.
pub async fn serve(
    ctx: Rc<ShardCtx>,
    stream: TcpStream,
    transport: Transport,
    buf: BytesMut,
    connect: Box<Connect>,
    access: Access,
) {
    let version = connect.protocol;
    // A DISCONNECT its previous connection sent just before (if that one
    // is light and not yet read) must count first.
    if ctx.core.borrow().has_session(&connect.client_id) {
        parking::serve_ready_now(&ctx);
    }
    let conn = ctx
        .core
        .borrow_mut()
        .connect_with(*connect, access, ctx.now());
    // Most clients are devices that say little: they start light (served
    // from the epoll set, `light`) and get tasks only once they are busy.
    let starts_light = ctx.config.light_below > 0
        && ctx.config.park_after.is_some()
        && transport.can_be_light()
        && buf.is_empty();
    if !starts_light {
        run(ctx, conn, stream, transport, buf, version).await;
        return;
    }
    match parking::park(&ctx, conn, stream, transport, version) {
        // Counted as open while parked (the caller counted it).
        Ok(()) => {}
        Err(e) => {
            tracing::warn!(shard = ctx.id, conn, error = %e, "could not serve a connection light: closing it");
            ctx.core.borrow_mut().release(conn, ctx.now());
            drop(SocketSlot(ctx.clone()));
        }
    }
    ctx.wake();
}

/// Serves a connection the core knows (new, handed off, or resumed from
/// parking) until it ends or parks. The caller has counted the socket in
/// `open_sockets`.
pub(super) async fn run(
    ctx: Rc<ShardCtx>,
    conn: ConnId,
    stream: TcpStream,
    mut transport: Transport,
    buf: BytesMut,
    version: ProtocolVersion,
) {
    let slot = SocketSlot(ctx.clone());
    let stream: SharedStream = Rc::new(RefCell::new(stream));
    let write = Rc::new(WriteSide::new(transport.is_ws()).with_tls(&mut transport));
    ctx.writers.borrow_mut().insert(conn, write.clone());
    // The writer looks at the core's output once at start: a resumed
    // connection's output (or close) was flagged before it had a writer.
    write.notify.notify();
    let writer =
        glommio::spawn_local(write_loop(ctx.clone(), conn, stream.clone(), write.clone())).detach();
    ctx.wake();
    // Some(transport): silent for --park-after-ms, to be parked.
    let ended = read_loop(&ctx, conn, &stream, transport, &write, buf, version).await;
    // The broker closed it (or the client sent DISCONNECT, or a packet it
    // refused): the socket may still hold what the client sent meanwhile.
    let linger = matches!(ended, Ok(None) | Err(ConnectionError::Decode(_)));
    let park = match ended {
        Ok(park) => park,
        Err(e) => {
            tracing::debug!(shard = ctx.id, conn, error = %e, "connection ended");
            if let ConnectionError::Decode(d) = &e {
                // 5.0 clients learn why (e.g. 0x95 packet too large).
                ctx.core
                    .borrow_mut()
                    .disconnect_v5(conn, d.reason_code(), &d.to_string());
            }
            None
        }
    };
    if park.is_some() {
        // The writer flushes what is there and stops, leaving the socket open.
        write.parking.set(true);
    } else {
        ctx.core.borrow_mut().connection_lost(conn, ctx.now());
        ctx.wake();
    }
    write.notify.notify();
    writer.await;
    ctx.writers.borrow_mut().remove(&conn);
    if linger {
        io::drain_for(&stream, LINGER).await;
    }
    if let Some(mut transport) = park {
        // The TLS session goes back to the transport, to wait with it.
        transport.tls = write.tls.borrow_mut().take();
        if !ctx.core.borrow().is_closing(conn) {
            if let Ok(stream) = Rc::try_unwrap(stream) {
                match parking::park(&ctx, conn, stream.into_inner(), transport, version) {
                    Ok(()) => {
                        // The socket stays counted while parked.
                        std::mem::forget(slot);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(shard = ctx.id, conn, error = %e, "could not park a connection: closing it")
                    }
                }
            }
        }
    }
    // Ends the connection (as lost, if nothing closed it before).
    ctx.core.borrow_mut().release(conn, ctx.now());
    ctx.wake();
}

/// How long a closed connection's socket is drained before it is closed
/// (see `io::drain_for`).
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// How many messages may wait for other shards before readers pause.
pub(super) const MESH_BACKLOG_LIMIT: usize = 64 * 1024;

/// Reads and handles packets until the connection ends (`Ok(None)` or an
/// error) or should park (`Ok(Some(transport))`: asked to by the shard's
/// ticker while no partial packet is buffered).
async fn read_loop(
    ctx: &Rc<ShardCtx>,
    conn: ConnId,
    stream: &SharedStream,
    mut transport: Transport,
    write: &WriteSide,
    mut buf: BytesMut,
    version: ProtocolVersion,
) -> Result<Option<Transport>, ConnectionError> {
    let max = ctx.config.max_packet_size;
    let mut meter = LightMeter::new(ctx.now(), write.writes.get());
    let light_below = match ctx.config.park_after {
        Some(_) if transport.can_be_light() => ctx.config.light_below,
        _ => 0,
    };
    loop {
        while let Some(packet) = protocol::decode(&mut buf, version, max)? {
            let result = ctx.core.borrow_mut().handle_packet(conn, packet, ctx.now());
            ctx.wake();
            if let Err(violation) = result {
                tracing::debug!(shard = ctx.id, conn, %violation, "protocol violation");
            }
            if ctx.core.borrow().is_closing(conn) {
                return Ok(None);
            }
        }
        transport.release_if_idle(&mut buf);
        // A client that reads and writes little is served from the epoll
        // set from now on (`light`).
        if light_below > 0
            && buf.is_empty()
            && meter.is_light(ctx.now(), write.writes.get(), light_below)
            && !ctx.core.borrow().awaits_acks(conn)
        {
            return Ok(Some(transport));
        }
        // A client that always has data ready never makes this task wait:
        // let the reactor and the other tasks run once the preempt timer
        // says so (`server::PREEMPT_AFTER`).
        glommio::yield_if_needed().await;
        // Backpressure: stop reading while other shards are behind (what
        // waits in our core, and what is on its way to them).
        while ctx.core.borrow().outgoing_backlog() + ctx.lanes.in_flight_from(ctx.id)
            > MESH_BACKLOG_LIMIT
        {
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
        if !wait_until_readable(ctx, conn).await {
            return Ok(None);
        }
        // Acknowledgements that free a full in-flight window are urgent:
        // pacing them would cap a QoS 1/2 subscriber at a window per tick.
        if ctx.core.borrow().awaits_acks(conn) {
            transport.unpace();
            write.urgent.set(true);
        }
        // Reads are cancel-safe, so a park request may interrupt one.
        let read = futures_lite::future::or(
            async {
                read_mqtt(&ctx.pacer, stream, &mut transport, write, &mut buf)
                    .await
                    .map(Some)
            },
            async {
                write.park.wait().await;
                Ok(None)
            },
        )
        .await?;
        match read {
            Some(0) => return Err(ConnectionError::Eof),
            Some(_) => meter.read(),
            None if buf.is_empty() && transport.is_idle() => return Ok(Some(transport)),
            None => {}
        }
    }
}

/// Waits while reading from `conn` must pause: its outbox is full (a
/// client that sends but does not read would pile up our replies), or the
/// broker is above its memory mark (except for a client with messages in
/// flight, whose acknowledgements free memory). False if the connection
/// closed meanwhile (e.g. by the write timeout).
async fn wait_until_readable(ctx: &Rc<ShardCtx>, conn: ConnId) -> bool {
    ctx.admission.check_memory_if_due();
    loop {
        let wait = {
            let core = ctx.core.borrow();
            if core.is_closing(conn) {
                return false;
            }
            if core.outbox_full(conn) {
                OUTBOX_FULL_POLL
            } else if ctx.admission.memory_high() && !core.has_inflight(conn) {
                MEMORY_HIGH_POLL
            } else {
                return true;
            }
        };
        glommio::timer::sleep(wait).await;
    }
}

/// How often a reader paused on a full outbox looks again.
const OUTBOX_FULL_POLL: std::time::Duration = std::time::Duration::from_millis(5);
/// How often a reader paused on the memory mark looks again.
const MEMORY_HIGH_POLL: std::time::Duration = std::time::Duration::from_millis(50);

async fn write_loop(ctx: Rc<ShardCtx>, conn: ConnId, stream: SharedStream, write: Rc<WriteSide>) {
    loop {
        write.notify.wait().await;
        if !write.urgent.replace(false) && ctx.pacer.is_busy(write.last_write.get()) {
            // Busy: let the output of this tick gather into one write.
            ctx.pacer.next_tick().await;
        }
        let Some((out, closing)) = ctx.core.borrow_mut().take_output(conn) else {
            break;
        };
        let out = match write.seal_output(out, closing) {
            Ok(out) => out,
            Err(e) => {
                tracing::debug!(shard = ctx.id, conn, error = %e, "TLS: cannot seal output");
                ctx.core.borrow_mut().connection_lost(conn, ctx.now());
                ctx.wake();
                break;
            }
        };
        if !out.is_empty() {
            write.last_write.set(ctx.pacer.stamp());
            write.writes.set(write.writes.get().wrapping_add(1));
            if let Err(e) = io::write_all_within(&stream, &out, ctx.config.write_timeout).await {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    tracing::debug!(
                        shard = ctx.id,
                        conn,
                        "client read nothing within --write-timeout: disconnecting"
                    );
                } else {
                    tracing::debug!(shard = ctx.id, conn, error = %e, "write failed");
                }
                ctx.core.borrow_mut().connection_lost(conn, ctx.now());
                ctx.wake();
                break;
            }
            // Room again: queued messages may follow.
            ctx.core.borrow_mut().output_written(conn);
            ctx.wake();
        }
        if closing {
            // Our side ends after the last bytes; the reader side lingers
            // (see `run`).
            io::shutdown_write(&stream);
            return;
        }
        if write.parking.get() {
            // The connection parks: the socket stays open.
            return;
        }
    }
    io::shutdown(&stream);
}
