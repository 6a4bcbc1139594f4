//! The channels between shards.
//!
//! Two paths per ordered pair of shards, used so that batches stay in FIFO
//! order across both:
//! - glommio's channel mesh (a bounded lock-free SPSC ring per pair): a
//!   push wakes the destination if it sleeps (an eventfd write, and a
//!   reactor wake-up on the other core). Used for hand-offs, and for
//!   batches to a shard that is not ticking.
//! - a [`Lane`]: a lock-free ring (crossbeam `ArrayQueue`) that the
//!   destination drains on its own pacer tick (see `pacer`), with no
//!   wake-up at all. Used while the destination is ticking anyway (it has
//!   busy connections), which is exactly when messages flow: under load,
//!   batches cross cores without a syscall.
//!
//! Order: a batch goes into the lane only while no channel batch of that
//! pair is unapplied, and the receiver drains the lane before it applies a
//! channel item. A sender that finds the destination stopped ticking right
//! after its push sends a `Wake` through the channel (the store of the
//! ticking flag and the push are each followed by a SeqCst fence before the
//! other side's check, so one of the two sides sees the other).
//!
//! SUBACK barriers take a shortcut back: a shard that applies another's
//! `Sync` also stores the token in a shared atomic, which the other reads
//! after every batch it applies. So a shard whose outgoing batches are
//! backed up (a client flooding it with SUBSCRIBEs makes interest changes
//! for everyone) does not hold other shards' SUBACKs behind that backlog;
//! the `SyncAck` message still follows, for a shard with nothing else to
//! apply.
//!
//! Each destination has one sender task that ships the core's batch for it
//! whenever woken; each source has one receiver task that applies batches.
//! A receiver never awaits a send (replies are queued in the core and
//! shipped by the sender tasks), so two shards cannot deadlock on each
//! other's full channels.

use std::os::fd::{FromRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;

use bytes::BytesMut;
use glommio::channels::channel_mesh::{Receivers, Senders};
use glommio::net::TcpStream;

use super::connection;
use super::context::ShardCtx;
use super::parking;
use super::transport::Transport;
use crate::broker::Access;
use crate::broker::ShardMessage;
use crate::protocol::Connect;

/// Batches in flight per channel; each holds one reactor turn's messages.
pub const CHANNEL_CAPACITY: usize = 256;

/// A connection moved to its client's home shard after its CONNECT.
pub struct Handoff {
    pub fd: RawFd,
    /// Transport state (TLS session, WebSocket decoder and unread frames).
    pub transport: Transport,
    /// Bytes the client sent after its CONNECT, already read.
    pub buffered: BytesMut,
    pub connect: Box<Connect>,
    /// What the listener it came through allows (ACL).
    pub access: Access,
}

pub enum MeshItem {
    Broker(Vec<ShardMessage>),
    Handoff(Handoff),
    /// Drain the lane: a batch was pushed into it as the destination
    /// stopped ticking.
    Wake,
}

/// Batches one lane holds before senders fall back to the channel.
const LANE_CAPACITY: usize = 1024;

/// The tick-drained path from one shard to another.
pub struct Lane {
    ring: ArrayQueue<Vec<ShardMessage>>,
    /// Channel items (batches, wakes) sent and not yet applied.
    in_channel: AtomicUsize,
    /// Weight (`ShardMessage::weight`) of the batches taken from the
    /// source's core and not yet applied by the destination, by either
    /// path: part of the source's backlog bound.
    weight: AtomicUsize,
}

/// The lanes of all ordered pairs, and which shards are ticking; shared by
/// all executors.
pub struct Lanes {
    shards: usize,
    lanes: Vec<Lane>,
    ticking: Vec<CachePadded<AtomicBool>>,
    /// `[src * shards + dst]`: the highest of `src`'s `Sync` tokens that
    /// `dst` has applied.
    synced: Vec<CachePadded<AtomicU64>>,
}

impl Lanes {
    pub fn new(shards: usize) -> Lanes {
        Lanes {
            shards,
            lanes: (0..shards * shards)
                .map(|_| Lane {
                    ring: ArrayQueue::new(LANE_CAPACITY),
                    in_channel: AtomicUsize::new(0),
                    weight: AtomicUsize::new(0),
                })
                .collect(),
            ticking: (0..shards).map(|_| CachePadded::default()).collect(),
            synced: (0..shards * shards)
                .map(|_| CachePadded::default())
                .collect(),
        }
    }

    fn lane(&self, src: usize, dst: usize) -> &Lane {
        &self.lanes[src * self.shards + dst]
    }

    /// Called by shard `id`'s pacer when it starts or stops ticking.
    pub fn set_ticking(&self, id: usize, ticking: bool) {
        self.ticking[id].store(ticking, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    fn is_ticking(&self, id: usize) -> bool {
        self.ticking[id].load(Ordering::SeqCst)
    }

    /// Weight shard `src` has sent that other shards have not applied yet.
    pub fn in_flight_from(&self, src: usize) -> usize {
        (0..self.shards)
            .map(|dst| self.lane(src, dst).weight.load(Ordering::Relaxed))
            .sum()
    }

    fn synced(&self, src: usize, dst: usize) -> &AtomicU64 {
        &self.synced[src * self.shards + dst]
    }
}

/// Applies one batch from `src`, then exchanges barrier progress: ours
/// for `src` (its `Sync`s we just applied) and everyone's for us.
fn apply_batch(ctx: &ShardCtx, src: usize, batch: Vec<ShardMessage>) {
    let weight: usize = batch.iter().map(ShardMessage::weight).sum();
    let mut core = ctx.core.borrow_mut();
    core.advance_clock(ctx.now());
    core.handle_shard_messages(src, batch);
    ctx.lanes
        .lane(src, ctx.id)
        .weight
        .fetch_sub(weight, Ordering::Relaxed);
    ctx.lanes
        .synced(src, ctx.id)
        .fetch_max(core.syncs_applied(src), Ordering::Release);
    for other in (0..ctx.shards).filter(|&s| s != ctx.id) {
        let token = ctx.lanes.synced(ctx.id, other).load(Ordering::Acquire);
        core.on_sync_ack(other, token);
    }
}

/// Applies every batch waiting in the lanes into this shard (on a tick,
/// and before any channel item).
pub fn drain_lanes(ctx: &Rc<ShardCtx>) {
    let waiting =
        (0..ctx.shards).any(|src| src != ctx.id && !ctx.lanes.lane(src, ctx.id).ring.is_empty());
    if !waiting {
        return;
    }
    parking::serve_ready_now(ctx);
    let mut applied = false;
    for src in 0..ctx.shards {
        if src != ctx.id {
            applied |= drain_lane(ctx, src);
        }
    }
    if applied {
        ctx.wake();
    }
}

fn drain_lane(ctx: &ShardCtx, src: usize) -> bool {
    let lane = ctx.lanes.lane(src, ctx.id);
    let mut applied = false;
    while let Some(batch) = lane.ring.pop() {
        apply_batch(ctx, src, batch);
        applied = true;
    }
    applied
}

/// Starts the sender and receiver tasks of this shard.
pub fn start(
    ctx: &Rc<ShardCtx>,
    senders: Senders<MeshItem>,
    mut receivers: Receivers<MeshItem>,
) -> Rc<Senders<MeshItem>> {
    let senders = Rc::new(senders);
    for dst in 0..ctx.shards {
        if dst == ctx.id {
            continue;
        }
        let (ctx, senders) = (ctx.clone(), senders.clone());
        glommio::spawn_local(async move {
            let notify = ctx.mesh_senders[dst].clone();
            let lane = ctx.lanes.lane(ctx.id, dst);
            loop {
                notify.wait().await;
                loop {
                    let batch = ctx.core.borrow_mut().take_outgoing(dst);
                    if batch.is_empty() {
                        break;
                    }
                    let weight = batch.iter().map(ShardMessage::weight).sum();
                    lane.weight.fetch_add(weight, Ordering::Relaxed);
                    let item = match push_to_lane(&ctx.lanes, lane, dst, batch) {
                        Pushed::Done => continue,
                        Pushed::NeedsWake => MeshItem::Wake,
                        Pushed::UseChannel(batch) => MeshItem::Broker(batch),
                    };
                    lane.in_channel.fetch_add(1, Ordering::SeqCst);
                    if senders.send_to(dst, item).await.is_err() {
                        tracing::debug!(shard = ctx.id, dst, "mesh channel closed");
                        return;
                    }
                }
            }
        })
        .detach();
    }
    for (src, receiver) in receivers.streams() {
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            while let Some(item) = receiver.recv().await {
                let lane = ctx.lanes.lane(src, ctx.id);
                match item {
                    MeshItem::Broker(batch) => {
                        parking::serve_ready_now(&ctx);
                        drain_lane(&ctx, src);
                        apply_batch(&ctx, src, batch);
                        lane.in_channel.fetch_sub(1, Ordering::SeqCst);
                        ctx.wake();
                    }
                    MeshItem::Wake => {
                        parking::serve_ready_now(&ctx);
                        drain_lane(&ctx, src);
                        lane.in_channel.fetch_sub(1, Ordering::SeqCst);
                        ctx.wake();
                    }
                    MeshItem::Handoff(h) => {
                        // SAFETY: the sending shard dup'ed this fd for us and
                        // closed its own; we are its only owner now.
                        let stream = unsafe { TcpStream::from_raw_fd(h.fd) };
                        let ctx = ctx.clone();
                        ctx.open_sockets.set(ctx.open_sockets.get() + 1);
                        glommio::spawn_local(connection::serve(
                            ctx,
                            stream,
                            h.transport,
                            h.buffered,
                            h.connect,
                            h.access,
                        ))
                        .detach();
                    }
                }
            }
        })
        .detach();
    }
    senders
}

enum Pushed {
    /// In the lane; the destination will drain it on its tick.
    Done,
    /// In the lane, but the destination stopped ticking: wake it.
    NeedsWake,
    UseChannel(Vec<ShardMessage>),
}

fn push_to_lane(lanes: &Lanes, lane: &Lane, dst: usize, batch: Vec<ShardMessage>) -> Pushed {
    if lane.in_channel.load(Ordering::SeqCst) != 0 || !lanes.is_ticking(dst) {
        return Pushed::UseChannel(batch);
    }
    if let Err(batch) = lane.ring.push(batch) {
        // Full: the channel keeps the order (the receiver drains the lane
        // before applying it).
        return Pushed::UseChannel(batch);
    }
    fence(Ordering::SeqCst);
    if lanes.is_ticking(dst) {
        Pushed::Done
    } else {
        Pushed::NeedsWake
    }
}
