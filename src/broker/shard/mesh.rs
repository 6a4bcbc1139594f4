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
                ShardMessage::Publish { msg, retain_stamp } => {
                    if msg.retain {
                        self.apply_retained(&msg, retain_stamp);
                    }
                    self.deliver_local(msg);
                }
                ShardMessage::InterestAdd(filter) => self.interest.add(&filter, from),
                ShardMessage::InterestRemove(filter) => self.interest.remove(&filter, from),
                ShardMessage::Sync(token) => self.send_to_shard(from, ShardMessage::SyncAck(token)),
                ShardMessage::SyncAck(token) => self.on_sync_ack(token),
            }
        }
    }

    fn on_sync_ack(&mut self, token: u64) {
        let Some(pending) = self.pending_subscribes.get_mut(&token) else {
            return;
        };
        pending.acks_missing -= 1;
        if pending.acks_missing > 0 {
            return;
        }
        if let Some(p) = self.pending_subscribes.remove(&token) {
            // A connection that closed meanwhile gets nothing (write skips
            // closing connections); its session still holds the
            // subscriptions if it is persistent.
            self.finish_subscribe(p.conn, p.session, &p.suback, p.retained);
        }
    }
}
