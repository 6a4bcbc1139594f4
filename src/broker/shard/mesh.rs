//! Messages from other shards.

use super::Shard;
use crate::broker::message::ShardMessage;

impl Shard {
    /// Applies a batch that shard `from` sent, in order. Never waits on
    /// anything: replies are queued like any other outgoing message.
    pub fn handle_shard_messages(
        &mut self,
        from: usize,
        batch: impl IntoIterator<Item = ShardMessage>,
    ) {
        for msg in batch {
            match msg {
                ShardMessage::Publish {
                    msg,
                    retain_stamp,
                    shared,
                } => {
                    if msg.retain {
                        self.apply_retained(&msg, retain_stamp);
                    }
                    self.deliver_local(msg, shared);
                }
                ShardMessage::SharedAdd(share) => self.shared_interest.add(&share, from),
                ShardMessage::SharedRemove(share) => self.shared_interest.remove(&share, from),
                ShardMessage::InterestAdd(filter) => self.interest.add(&filter, from),
                ShardMessage::InterestRemove(filter) => self.interest.remove(&filter, from),
                ShardMessage::Sync(token) => {
                    self.syncs_applied[from] = token;
                    self.send_to_shard(from, ShardMessage::SyncAck(token));
                }
                ShardMessage::SyncAck(token) => self.on_sync_ack(from, token),
            }
        }
    }

    /// The highest of shard `from`'s `Sync` tokens applied here: everything
    /// `from` sent before it has been applied.
    pub fn syncs_applied(&self, from: usize) -> u64 {
        self.syncs_applied[from]
    }

    /// Shard `from` has applied our `Sync` tokens up to `token`. Arrives
    /// twice (the `SyncAck` message, and earlier through the server's fast
    /// path); the second time changes nothing. SUBACKs whose token every
    /// other shard has answered are sent, in token order.
    pub fn on_sync_ack(&mut self, from: usize, token: u64) {
        if token <= self.syncs_acked[from] {
            return;
        }
        self.syncs_acked[from] = token;
        let everyone = (0..self.shards)
            .filter(|&s| s != self.id)
            .map(|s| self.syncs_acked[s])
            .min()
            .unwrap_or(u64::MAX);
        while let Some(entry) = self.pending_subscribes.first_entry() {
            if *entry.key() > everyone {
                break;
            }
            let p = entry.remove();
            // A connection that closed meanwhile gets nothing (write skips
            // closing connections); its session still holds the
            // subscriptions if it is persistent.
            self.finish_subscribe(p.conn, p.session, &p.suback, p.retained);
        }
    }
}
