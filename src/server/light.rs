//! Light connections: parked TCP clients served inline from the shard's
//! epoll set, without tasks, glommio stream or read buffer.
//!
//! Why: most MQTT clients are devices that publish or ping now and then.
//! Served as a busy connection, each of their packets costs a task wake-up,
//! an io_uring poll armed and cancelled (whose kernel cost grows with the
//! number of polls armed), and for a parked one a full resume and a park
//! two seconds later. Served light, a packet costs its share of one
//! `epoll_wait`, one `recv` into the stack, the broker core's work and one
//! `send` of the reply: a PINGREQ from a parked client is answered without
//! resuming it, and ten thousand slow publishers cost what their messages
//! cost, not what their connections do.
//!
//! Every TCP client starts light once its CONNECT is handled
//! (`connection::serve`); a served one becomes light again when its tasks
//! see fewer than `--light-below` reads plus writes in a second
//! (`LightMeter`), or when it parks after a silence. It goes back to tasks
//! (`parking::resume_with`) when it gets busy (more than `--light-below`
//! packets in a quarter second, or messages wait behind its full in-flight
//! window), when a read leaves half a packet or fills the stack buffer,
//! when the kernel takes only part of a reply, or when the broker closes it
//! with something to say (the lingering close lives in `connection`).
//! TLS connections are light too: the parked connection keeps its rustls
//! session, inline reads open the records into plaintext and inline writes
//! seal the output (a ciphertext the kernel takes only part of is kept in
//! `TlsSession::unsent`, sent first once the tasks resume). WebSocket
//! connections are resumed on every event (their frames need the
//! transport's decoder), as are all parked connections with
//! `--light-below 0`.

use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use bytes::BytesMut;

use super::connection::{SocketSlot, MESH_BACKLOG_LIMIT};
use super::context::ShardCtx;
use super::parking;
use super::tls;
use crate::broker::ConnId;
use crate::protocol::{self, ProtocolVersion};

/// Bytes one inline read takes; a read that fills it is a busy client.
const READ_CHUNK: usize = 4096;
/// Output rounds one flush writes before the connection counts as busy.
const FLUSH_ROUNDS: usize = 4;

/// Counts a served connection's reads and writes per second, to tell when
/// it has become light.
pub struct LightMeter {
    window_start: u64,
    at_start_writes: u32,
    reads: u32,
    /// Reads plus writes in the last whole second; `None` before one passed.
    last: Option<u32>,
}

impl LightMeter {
    pub fn new(now_ms: u64, writes: u32) -> LightMeter {
        LightMeter {
            window_start: now_ms,
            at_start_writes: writes,
            reads: 0,
            last: None,
        }
    }

    pub fn read(&mut self) {
        self.reads += 1;
    }

    /// Whether the connection was below `below` events a second in the
    /// last whole second and is so far in this one. `writes` is the
    /// connection's running count of writes.
    pub fn is_light(&mut self, now_ms: u64, writes: u32, below: u32) -> bool {
        let so_far = self.reads + writes.wrapping_sub(self.at_start_writes);
        if now_ms >= self.window_start + 1000 {
            self.last = Some(so_far);
            self.window_start = now_ms;
            self.at_start_writes = writes;
            self.reads = 0;
            return so_far < below;
        }
        below > 0 && self.last.is_some_and(|last| last < below) && so_far < below
    }
}

/// A parked socket is readable: read it and handle its packets inline, or
/// resume the connection where inline will not do. `now`: the broker clock
/// (read once per batch of sockets).
pub fn on_readable(ctx: &Rc<ShardCtx>, conn: ConnId, now: u64) {
    if must_wait(ctx, conn) {
        // Level-triggered: the socket is reported again on a later poll.
        return;
    }
    let Some((fd, version, carriage)) = view(ctx, conn) else {
        return;
    };
    if carriage == Carriage::Other || ctx.config.light_below == 0 {
        parking::resume(ctx, conn);
        return;
    }
    let mut scratch = [0u8; READ_CHUNK];
    // SAFETY: scratch is valid for READ_CHUNK bytes; fd is open while parked.
    let n = unsafe {
        libc::recv(
            fd,
            scratch.as_mut_ptr().cast(),
            READ_CHUNK,
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ) {
            tracing::debug!(shard = ctx.id, conn, error = %e, "light connection failed");
            lost(ctx, conn);
        }
        return;
    }
    let n = n as usize;
    if n == 0 {
        tracing::debug!(
            shard = ctx.id,
            conn,
            "light connection closed by the client"
        );
        lost(ctx, conn);
        return;
    }
    let mut buf = match carriage {
        Carriage::Tls => match open_tls(ctx, conn, &scratch[..n]) {
            Ok((plain, opened)) => {
                if opened.wants_write {
                    // An answer of the TLS layer's own (a key update).
                    flush(ctx, conn);
                }
                if plain.is_empty() {
                    if opened.closed {
                        tracing::debug!(
                            shard = ctx.id,
                            conn,
                            "light TLS connection closed by the client"
                        );
                        lost(ctx, conn);
                    }
                    return;
                }
                plain
            }
            Err(e) => {
                tracing::debug!(shard = ctx.id, conn, error = %e, "light TLS connection failed");
                lost(ctx, conn);
                return;
            }
        },
        _ => BytesMut::from(&scratch[..n]),
    };
    if n == READ_CHUNK {
        // More is waiting: a busy client.
        parking::resume_with(ctx, conn, buf);
        return;
    }
    let max = ctx.config.max_packet_size;
    let mut packets = 0;
    loop {
        match protocol::decode(&mut buf, version, max) {
            Ok(Some(packet)) => {
                packets += 1;
                let mut core = ctx.core.borrow_mut();
                if let Err(violation) = core.handle_packet(conn, packet, now) {
                    tracing::debug!(shard = ctx.id, conn, %violation, "protocol violation");
                }
                if core.is_closing(conn) {
                    break;
                }
            }
            Ok(None) if buf.is_empty() => break,
            Ok(None) => {
                // Half a packet: the rest comes through the tasks.
                parking::resume_with(ctx, conn, buf);
                return;
            }
            Err(e) => {
                tracing::debug!(shard = ctx.id, conn, error = %e, "closing a light connection");
                let mut core = ctx.core.borrow_mut();
                core.disconnect_v5(conn, e.reason_code(), &e.to_string());
                core.connection_lost(conn, now);
                break;
            }
        }
    }
    if count(ctx, conn, now, packets) {
        // Busy: its tasks write what the packets produced.
        parking::resume(ctx, conn);
        return;
    }
    flush(ctx, conn);
}

/// Writes a parked connection's output straight to its socket; resumes it
/// when that will not do (WebSocket, a reply the kernel takes only part of,
/// a close with something to say, a flow of output).
pub fn flush(ctx: &Rc<ShardCtx>, conn: ConnId) {
    let Some((fd, _, carriage)) = view(ctx, conn) else {
        return;
    };
    if carriage == Carriage::Other || ctx.config.light_below == 0 {
        parking::resume(ctx, conn);
        return;
    }
    for _ in 0..FLUSH_ROUNDS {
        let Some((out, closing)) = ctx.core.borrow_mut().take_output(conn) else {
            return;
        };
        if closing {
            if out.is_empty() {
                // Nothing to say (the client sent DISCONNECT): no lingering
                // close is needed.
                close(ctx, conn);
            } else {
                ctx.core.borrow_mut().return_output(conn, out);
                parking::resume(ctx, conn);
            }
            return;
        }
        let mut wire = match carriage {
            Carriage::Tls => match seal_tls(ctx, conn, &out) {
                Ok(sealed) => sealed,
                Err(e) => {
                    tracing::debug!(shard = ctx.id, conn, error = %e, "light TLS connection: cannot seal");
                    lost(ctx, conn);
                    return;
                }
            },
            _ => out,
        };
        if wire.is_empty() {
            return;
        }
        match send_some(fd, &wire) {
            Ok(sent) if sent == wire.len() => {}
            Ok(sent) => {
                tracing::debug!(
                    shard = ctx.id,
                    conn,
                    sent,
                    left = wire.len() - sent,
                    "light send: the kernel took part; resuming"
                );
                let rest = wire.split_off(sent);
                if carriage == Carriage::Tls {
                    // Sealed already: the tasks send these bytes first.
                    let mut parked = ctx.parking.parked.borrow_mut();
                    if let Some(session) = parked
                        .get_mut(conn)
                        .and_then(|p| p.transport.tls.as_deref_mut())
                    {
                        session.unsent = rest;
                    }
                } else {
                    ctx.core.borrow_mut().return_output(conn, rest);
                }
                parking::resume(ctx, conn);
                return;
            }
            Err(e) => {
                tracing::debug!(shard = ctx.id, conn, error = %e, "light connection write failed");
                lost(ctx, conn);
                return;
            }
        }
        if count(ctx, conn, ctx.now(), 1) {
            parking::resume(ctx, conn);
            return;
        }
        ctx.core.borrow_mut().output_written(conn);
        if !ctx.core.borrow().has_output(conn) {
            break;
        }
    }
    // More output than a few rounds, or messages waiting behind a full
    // in-flight window: a busy subscriber, whose acknowledgements must be
    // read as they come (at the poll cadence a window would be
    // acknowledged every few milliseconds at best).
    let core = ctx.core.borrow();
    let busy = core.has_output(conn) || core.awaits_acks(conn);
    drop(core);
    if busy {
        parking::resume(ctx, conn);
    }
}

/// Whether reading `conn` must wait, as a served connection's reader
/// would (`connection::read_loop`): other shards are behind, or the broker
/// is above its memory mark and this client has nothing in flight whose
/// acknowledgements would free memory.
fn must_wait(ctx: &ShardCtx, conn: ConnId) -> bool {
    let core = ctx.core.borrow();
    core.outgoing_backlog() + ctx.lanes.in_flight_from(ctx.id) > MESH_BACKLOG_LIMIT
        || (ctx.admission.memory_high() && !core.has_inflight(conn))
}

/// How a parked connection's MQTT bytes travel on its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carriage {
    /// Straight on TCP.
    Plain,
    /// In TLS records (the session is in the parked transport).
    Tls,
    /// Anything light does not serve inline (WebSocket frames).
    Other,
}

/// The parked connection's fd, protocol, and how its bytes travel.
fn view(ctx: &ShardCtx, conn: ConnId) -> Option<(RawFd, ProtocolVersion, Carriage)> {
    let parked = ctx.parking.parked.borrow();
    let p = parked.get(conn)?;
    let carriage = if p.transport.is_ws() {
        Carriage::Other
    } else if p.transport.tls.is_some() {
        Carriage::Tls
    } else {
        Carriage::Plain
    };
    Some((p.fd.as_raw_fd(), p.version, carriage))
}

/// Opens TLS records just read from a parked connection's socket.
fn open_tls(
    ctx: &ShardCtx,
    conn: ConnId,
    raw: &[u8],
) -> Result<(BytesMut, tls::Opened), tls::TlsError> {
    let mut parked = ctx.parking.parked.borrow_mut();
    let Some(session) = parked
        .get_mut(conn)
        .and_then(|p| p.transport.tls.as_deref_mut())
    else {
        return Ok((BytesMut::new(), tls::Opened::default()));
    };
    let mut plain = BytesMut::new();
    let opened = tls::open(session, raw, &mut plain)?;
    Ok((plain, opened))
}

/// Seals a parked connection's output (and any records rustls has of its
/// own) for its socket.
fn seal_tls(ctx: &ShardCtx, conn: ConnId, plain: &[u8]) -> std::io::Result<BytesMut> {
    let mut parked = ctx.parking.parked.borrow_mut();
    let Some(session) = parked
        .get_mut(conn)
        .and_then(|p| p.transport.tls.as_deref_mut())
    else {
        return Ok(BytesMut::new());
    };
    let mut sealed = BytesMut::new();
    tls::seal(session, plain, &mut sealed)?;
    Ok(sealed)
}

/// Counts `n` packets read or flushes written for a light connection at
/// `now`; true when it has become busy — more than four times
/// --light-below this second — and should get its tasks back. Packets,
/// not polls: a poll may find many of a busy client's packets at once.
fn count(ctx: &ShardCtx, conn: ConnId, now: u64, n: u32) -> bool {
    let mut parked = ctx.parking.parked.borrow_mut();
    let Some(p) = parked.get_mut(conn) else {
        return false;
    };
    if now >= p.window_start + BUSY_WINDOW_MS {
        p.window_start = now;
        p.events = 0;
    }
    p.events = p.events.saturating_add(n);
    // Four times --light-below a second is --light-below per quarter.
    p.events > ctx.config.light_below.max(1)
}

/// The span light connections' packets are counted over: short, so a
/// client that starts busy gets its tasks within a quarter second.
const BUSY_WINDOW_MS: u64 = 250;

/// Writes what the socket takes now without waiting.
fn send_some(fd: RawFd, data: &[u8]) -> std::io::Result<usize> {
    let mut off = 0;
    while off < data.len() {
        // SAFETY: data[off..] is valid; fd is open while parked.
        let n = unsafe {
            libc::send(
                fd,
                data[off..].as_ptr().cast(),
                data.len() - off,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock => Ok(off),
                std::io::ErrorKind::Interrupted => continue,
                _ => Err(e),
            };
        }
        off += n as usize;
    }
    Ok(off)
}

/// The socket ended (EOF or error): the connection is lost (its will goes
/// out) and closed here.
fn lost(ctx: &Rc<ShardCtx>, conn: ConnId) {
    ctx.core.borrow_mut().connection_lost(conn, ctx.now());
    close(ctx, conn);
}

/// Closes a parked connection's socket and forgets the connection.
fn close(ctx: &Rc<ShardCtx>, conn: ConnId) {
    let Some(p) = ctx.parking.parked.borrow_mut().remove(conn) else {
        return;
    };
    ctx.parking.unregister(p.fd.as_raw_fd());
    drop(p);
    ctx.core.borrow_mut().release(conn, ctx.now());
    // The socket was counted while parked.
    drop(SocketSlot::counted(ctx.clone()));
    tracing::debug!(shard = ctx.id, conn, "light connection closed");
}
