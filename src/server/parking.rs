//! Parked connections: sockets without tasks, waiting in the shard's epoll
//! set — light clients (`light`, every TCP client at first) and clients
//! silent for `--park-after-ms`.
//!
//! Why: a served connection costs two tasks, a glommio stream and the
//! readiness source it keeps armed in io_uring — about 2.5 KB of user
//! memory, and an io_uring poll armed and cancelled per packet, whose kernel
//! cost grows with the number of polls armed. A parked connection keeps
//! only its socket, its transport state (WebSocket decoder) and the broker
//! core's `Conn`/`Session`: the socket waits in one epoll set per shard
//! (kernel memory, not ours), which the shard polls itself (`waiter`) or,
//! when nothing happens, sleeps on from its blocking thread. A readable
//! socket or output for a parked connection is handled inline for plain
//! TCP (`light`); anything inline will not do (WebSocket, a busy client,
//! half a packet, a close with something to say) resumes the connection:
//! a new glommio stream and its tasks, exactly as after a hand-off.
//!
//! Parking and resuming cost a few syscalls each (dup, close, epoll_ctl):
//! once per connection for a device that stays light, once per silence of
//! `--park-after-ms` for a busy one that goes quiet.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use glommio::net::TcpStream;
use thiserror::Error;

use super::connection;
use super::context::ShardCtx;
use super::notify::Notify;
use super::parked_table::ParkedTable;
use super::transport::Transport;
use crate::broker::ConnId;
use crate::protocol::ProtocolVersion;

/// Most events taken from one `epoll_wait`.
const EVENTS_PER_WAIT: usize = 256;
/// Longest `epoll_wait`, so the blocking thread notices shutdown.
const WAIT_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Error)]
pub enum ParkingError {
    #[error("epoll_create1: {0}")]
    Create(std::io::Error),
    #[error("dup: {0}")]
    Dup(std::io::Error),
    #[error("epoll_ctl: {0}")]
    Register(std::io::Error),
}

/// What a parked connection keeps.
pub(super) struct Parked {
    pub fd: OwnedFd,
    pub transport: Transport,
    pub version: ProtocolVersion,
    /// Packets and flushes served inline in the current quarter second
    /// (`light`), and when it began (ms on the broker clock).
    pub events: u32,
    pub window_start: u64,
}

/// One shard's parked connections and its epoll set.
pub struct Parking {
    epoll: OwnedFd,
    pub(super) parked: RefCell<ParkedTable<Parked>>,
    /// Wakes the waiter task when the first connection is parked.
    first: Notify,
    parks_since_trim: Cell<usize>,
}

impl Parking {
    pub fn new() -> Result<Parking, ParkingError> {
        // SAFETY: plain syscall; the fd returned is owned below.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(ParkingError::Create(std::io::Error::last_os_error()));
        }
        Ok(Parking {
            // SAFETY: fd is a fresh descriptor nobody else owns.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            parked: RefCell::new(ParkedTable::default()),
            first: Notify::default(),
            parks_since_trim: Cell::new(0),
        })
    }

    pub fn len(&self) -> usize {
        self.parked.borrow().len()
    }

    pub fn is_parked(&self, conn: ConnId) -> bool {
        self.parked.borrow().contains_key(conn)
    }

    fn register(&self, conn: ConnId, fd: RawFd) -> Result<(), ParkingError> {
        // Level-triggered and lasting: a light connection is read inline
        // on every event without re-arming, and a socket whose data was not
        // taken (its connection resumed meanwhile) is reported again.
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: conn,
        };
        // SAFETY: both fds are open; event is a valid epoll_event.
        let rc =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if rc < 0 {
            return Err(ParkingError::Register(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    pub(super) fn unregister(&self, fd: RawFd) {
        // SAFETY: a DEL of an fd we registered; failure only means it is gone.
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
    }
}

/// Parks a connection whose tasks have stopped: its glommio stream is
/// replaced by a bare descriptor in the epoll set. On failure the stream
/// is closed and the caller ends the connection.
pub fn park(
    ctx: &Rc<ShardCtx>,
    conn: ConnId,
    stream: TcpStream,
    transport: Transport,
    version: ProtocolVersion,
) -> Result<(), ParkingError> {
    // glommio's stream cannot give its fd up: keep a duplicate, then drop
    // the stream (closing its fd and cancelling its armed poll).
    // SAFETY: dup of an fd the stream owns.
    let dup = unsafe { libc::dup(stream.as_raw_fd()) };
    drop(stream);
    if dup < 0 {
        return Err(ParkingError::Dup(std::io::Error::last_os_error()));
    }
    // SAFETY: dup is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(dup) };
    let parking = &ctx.parking;
    parking.register(conn, fd.as_raw_fd())?;
    let was_empty = {
        let mut parked = parking.parked.borrow_mut();
        let was_empty = parked.is_empty();
        parked.insert(
            conn,
            Parked {
                fd,
                transport,
                version,
                events: 0,
                window_start: ctx.now(),
            },
        );
        was_empty
    };
    if was_empty {
        parking.first.notify();
    }
    parking
        .parks_since_trim
        .set(parking.parks_since_trim.get() + 1);
    {
        let mut core = ctx.core.borrow_mut();
        core.set_parked(conn, true, ctx.now());
        core.shed_outbox(conn);
    }
    tracing::debug!(shard = ctx.id, conn, "parked");
    // Output that arrived while the tasks were stopping goes out now.
    if ctx.core.borrow().has_output(conn) {
        super::light::flush(ctx, conn);
    }
    Ok(())
}

/// Gives a parked connection its tasks back. No-op if it is not parked.
pub fn resume(ctx: &Rc<ShardCtx>, conn: ConnId) {
    resume_with(ctx, conn, BytesMut::new());
}

/// Gives a parked connection its tasks back, `buffered` being bytes
/// already read from its socket. No-op if it is not parked.
pub fn resume_with(ctx: &Rc<ShardCtx>, conn: ConnId, buffered: BytesMut) {
    let Some(p) = ctx.parking.parked.borrow_mut().remove(conn) else {
        return;
    };
    ctx.parking.unregister(p.fd.as_raw_fd());
    ctx.core.borrow_mut().set_parked(conn, false, ctx.now());
    tracing::debug!(shard = ctx.id, conn, "resumed");
    // SAFETY: the descriptor is ours alone and handed to the stream.
    let stream = unsafe { TcpStream::from_raw_fd(p.fd.into_raw_fd()) };
    glommio::spawn_local(connection::run(
        ctx.clone(),
        conn,
        stream,
        p.transport,
        buffered,
        p.version,
    ))
    .detach();
}

/// The shard's task that serves parked sockets when they become readable.
///
/// While parked connections are active it polls the epoll set from the
/// executor itself (`epoll_wait` with no timeout) at a cadence that adapts
/// to the traffic: every [`POLL_MIN`] while each poll finds a batch, up to
/// every [`POLL_MAX`] while they are few, so a thousand devices pinging a
/// second cost a few dozen polls, not a thousand wake-ups. Only when polls
/// keep finding nothing does the wait move to the executor's blocking
/// thread (`epoll_wait` for up to [`WAIT_TIMEOUT`]), so an idle shard
/// sleeps. While nothing is parked the task sleeps on a flag.
pub async fn waiter(ctx: Rc<ShardCtx>) {
    let mut interval = POLL_MIN;
    let mut empty = 0;
    let mut ready = Vec::with_capacity(EVENTS_PER_WAIT);
    loop {
        if ctx.parking.len() == 0 {
            ctx.parking.first.wait().await;
            continue;
        }
        let epoll = ctx.parking.epoll.as_raw_fd();
        ready.clear();
        wait_readable(epoll, 0, &mut ready);
        if ready.is_empty() {
            empty += 1;
            if empty < IDLE_POLLS {
                interval = (interval * 2).min(POLL_MAX);
                glommio::timer::sleep(interval).await;
                continue;
            }
            empty = 0;
            ready = glommio::executor()
                .spawn_blocking(move || {
                    let mut found = Vec::new();
                    wait_readable(epoll, WAIT_TIMEOUT.as_millis() as i32, &mut found);
                    found
                })
                .await;
            interval = POLL_MIN;
        } else {
            empty = 0;
        }
        let served = ready.len();
        let now = ctx.now();
        for &conn in &ready {
            super::light::on_readable(&ctx, conn, now);
        }
        ctx.wake();
        // Aim at a batch of BATCH_LOW..BATCH_HIGH sockets per poll: a
        // quieter cadence costs fewer wake-ups, a quicker one keeps batches
        // (and the time a packet waits) small.
        if served >= BATCH_HIGH {
            interval = (interval / 2).max(POLL_MIN);
        } else if served < BATCH_LOW {
            interval = (interval * 2).min(POLL_MAX);
        }
        glommio::timer::sleep(interval).await;
    }
}

/// Serves the parked sockets that are ready now, without waiting. Called
/// before this shard applies what other shards sent and before a CONNECT
/// that resumes a session: what a light client sent earlier (a DISCONNECT
/// just before it reconnects, or before another client's publish reaches
/// this shard) is handled first, as it would be by a task, instead of at
/// the next poll.
pub fn serve_ready_now(ctx: &Rc<ShardCtx>) {
    if ctx.parking.len() == 0 {
        return;
    }
    let mut ready = Vec::new();
    wait_readable(ctx.parking.epoll.as_raw_fd(), 0, &mut ready);
    let now = ctx.now();
    for conn in ready {
        super::light::on_readable(ctx, conn, now);
    }
}

/// Shortest pause between polls of the epoll set (while busy).
const POLL_MIN: Duration = Duration::from_millis(1);
/// Longest pause between polls while parked sockets are active: the most
/// a light connection's packet waits before it is served.
const POLL_MAX: Duration = Duration::from_millis(16);
/// Fewer ready sockets than this in a poll: poll less often.
const BATCH_LOW: usize = 8;
/// This many or more: poll more often.
const BATCH_HIGH: usize = 64;
/// Polls in a row that find nothing before the wait moves to the blocking
/// thread.
const IDLE_POLLS: u32 = 3;

/// Hands memory freed by parked connections back to the system after
/// connections parked (the allocator purges lazily otherwise, and an idle
/// shard would never get to it; idle memory is what parking is for).
pub fn trim_if_due(ctx: &ShardCtx) {
    if ctx.parking.parks_since_trim.get() == 0 {
        return;
    }
    ctx.parking.parks_since_trim.set(0);
    super::memory::release_freed();
}
/// Waits up to `timeout_ms` (0: not at all) for ready parked sockets and
/// appends their connection ids to `out`.
fn wait_readable(epoll: RawFd, timeout_ms: i32, out: &mut Vec<ConnId>) {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
    // SAFETY: events is a valid array of EVENTS_PER_WAIT entries.
    let n = unsafe {
        libc::epoll_wait(
            epoll,
            events.as_mut_ptr(),
            EVENTS_PER_WAIT as i32,
            timeout_ms,
        )
    };
    if n > 0 {
        out.extend(events[..n as usize].iter().map(|e| e.u64));
    }
}
