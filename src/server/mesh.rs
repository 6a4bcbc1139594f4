//! The channels between shards: glommio's channel mesh (one bounded
//! lock-free SPSC ring per ordered pair of shards).
//!
//! Each destination has one sender task that ships the core's batch for it
//! whenever woken; each source has one receiver task that applies batches.
//! A receiver never awaits a send (replies are queued in the core and
//! shipped by the sender tasks), so two shards cannot deadlock on each
//! other's full channels.

use std::os::fd::{FromRawFd, RawFd};
use std::rc::Rc;

use bytes::BytesMut;
use glommio::channels::channel_mesh::{Receivers, Senders};
use glommio::net::TcpStream;

use super::connection;
use super::context::ShardCtx;
use super::transport::Transport;
use crate::broker::ShardMessage;
use crate::protocol::Connect;

/// Batches in flight per channel; each holds one reactor turn's messages.
pub const CHANNEL_CAPACITY: usize = 256;

/// A connection moved to its client's home shard after its CONNECT.
pub struct Handoff {
    pub fd: RawFd,
    /// Read-side transport state (WebSocket decoder and unread frames).
    pub transport: Transport,
    /// Bytes the client sent after its CONNECT, already read.
    pub buffered: BytesMut,
    pub connect: Box<Connect>,
}

pub enum MeshItem {
    Broker(Vec<ShardMessage>),
    Handoff(Handoff),
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
            loop {
                notify.wait().await;
                loop {
                    let batch = ctx.core.borrow_mut().take_outgoing(dst);
                    if batch.is_empty() {
                        break;
                    }
                    if senders.send_to(dst, MeshItem::Broker(batch)).await.is_err() {
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
                match item {
                    MeshItem::Broker(batch) => {
                        ctx.core.borrow_mut().handle_shard_messages(src, batch);
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
