//! What a shard holds, checked against its limits: for the fuzzer that
//! drives whole shards with arbitrary packets, and for simulation tests.

use super::Shard;

impl Shard {
    /// Checks every bound a client could push against, and that the queue
    /// counters add up (nothing left a queue uncounted). `slack` is how far
    /// one step may overshoot a byte bound: the largest packet the decoder
    /// admits plus the replies one read's packets can add to a full outbox
    /// (the server stops reading only after a read). The error names the
    /// breach.
    pub fn check_bounds(&self, slack: usize) -> Result<(), String> {
        let limits = &self.limits;
        // A delivery is written while the outbox is under its bound, so it
        // ends at most one packet over it, plus replies.
        let bound = limits.max_outbox_bytes + slack;
        for (id, c) in self.conns.iter() {
            if !c.resent && c.outbox.len() > bound {
                return Err(format!("conn {id}: outbox {} bytes", c.outbox.len()));
            }
        }
        let mut queued = 0u64;
        for (id, s) in self.sessions.iter() {
            queued += s.queue.len() as u64;
            let bytes: usize = s.queue.iter().map(|q| q.msg.size()).sum();
            if bytes != s.queued_bytes {
                return Err(format!(
                    "session {id}: queued_bytes {} but queue holds {bytes}",
                    s.queued_bytes
                ));
            }
            if s.queue.len() > limits.max_queued
                || (s.queue.len() > 1 && s.queued_bytes > limits.max_queued_bytes)
            {
                return Err(format!(
                    "session {id}: queue of {} messages, {} bytes",
                    s.queue.len(),
                    s.queued_bytes
                ));
            }
            if s.inflight.len() > limits.max_inflight {
                return Err(format!("session {id}: {} in flight", s.inflight.len()));
            }
            if s.subscriptions.len() > limits.max_subscriptions {
                return Err(format!(
                    "session {id}: {} subscriptions",
                    s.subscriptions.len()
                ));
            }
            let qos2 = s.inbound_qos2.as_ref().map_or(0, |ids| ids.len());
            if qos2 > usize::from(limits.receive_maximum) {
                return Err(format!("session {id}: {qos2} inbound QoS 2 ids"));
            }
        }
        let stats = &self.stats;
        if stats.queue_arrivals != stats.queue_departures + queued {
            return Err(format!(
                "queues: {} arrived, {} left, {queued} held",
                stats.queue_arrivals, stats.queue_departures
            ));
        }
        if self.retain.len() > limits.retained.max_messages
            || self.retain.bytes() > limits.retained.max_bytes
        {
            return Err(format!(
                "retained store: {} messages, {} bytes",
                self.retain.len(),
                self.retain.bytes()
            ));
        }
        Ok(())
    }
}
