//! Several shards stepped in one thread: the broker core's behaviour,
//! deterministic, with the real codec on both sides.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use super::{BrokerLimits, Shard};
use crate::broker::{home_shard, ConnId};
use crate::protocol::{
    decode, encode, Ack, Connect, Disconnect, Packet, ProtocolVersion, Publish, QoS, Subscribe,
    SubscriptionOptions, SubscriptionRequest, Will,
};

const V: ProtocolVersion = ProtocolVersion::V311;

pub(super) struct Sim {
    pub(super) shards: Vec<Shard>,
    pub(super) now: u64,
}

#[derive(Clone, Copy)]
pub(super) struct Client {
    pub(super) shard: usize,
    pub(super) conn: ConnId,
}

/// A client id whose home is `shard` among `n`.
pub(super) fn id_on(shard: usize, n: usize, tag: &str) -> String {
    (0..)
        .map(|i| format!("{tag}-{i}"))
        .find(|id| home_shard(id, n) == shard)
        .unwrap()
}

pub(super) fn opts(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        no_local: false,
        retain_as_published: false,
        retain_handling: 0,
    }
}

impl Sim {
    pub(super) fn new(n: usize) -> Sim {
        Sim::with_limits(n, BrokerLimits::default())
    }

    pub(super) fn with_limits(n: usize, limits: BrokerLimits) -> Sim {
        Sim {
            shards: (0..n).map(|i| Shard::new(i, n, limits.clone())).collect(),
            now: 0,
        }
    }

    /// Delivers cross-shard batches until none are left.
    pub(super) fn settle(&mut self) {
        loop {
            let mut moved = false;
            for src in 0..self.shards.len() {
                let dsts: Vec<usize> = self.shards[src].shards_with_outgoing().collect();
                for dst in dsts {
                    let batch = self.shards[src].take_outgoing(dst);
                    self.shards[dst].handle_shard_messages(src, batch);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    pub(super) fn connect_with(
        &mut self,
        client_id: &str,
        clean: bool,
        keep_alive: u16,
        will: Option<Will>,
    ) -> (Client, Vec<Packet>) {
        let shard = if client_id.is_empty() {
            0
        } else {
            home_shard(client_id, self.shards.len())
        };
        let conn = self.shards[shard].connect(
            Connect {
                protocol: V,
                clean_start: clean,
                keep_alive,
                client_id: ByteString::from(client_id),
                will,
                username: None,
                password: None,
                properties: None,
            },
            self.now,
        );
        let c = Client { shard, conn };
        let out = self.recv(c);
        (c, out)
    }

    pub(super) fn connect(&mut self, client_id: &str, clean: bool) -> Client {
        let (c, out) = self.connect_with(client_id, clean, 0, None);
        assert!(
            matches!(out[0], Packet::ConnAck(ref a) if a.code == 0),
            "{out:?}"
        );
        c
    }

    pub(super) fn send(&mut self, c: Client, p: Packet) {
        let _ = self.shards[c.shard].handle_packet(c.conn, p, self.now);
    }

    /// Everything written to the client so far, decoded.
    pub(super) fn recv(&mut self, c: Client) -> Vec<Packet> {
        let mut dirty = Vec::new();
        self.shards[c.shard].take_dirty_conns(&mut dirty);
        let Some((mut out, _)) = self.shards[c.shard].take_output(c.conn) else {
            return Vec::new();
        };
        let mut packets = Vec::new();
        while let Some(p) = decode(&mut out, V, 1 << 20).expect("broker wrote a valid packet") {
            packets.push(p);
        }
        assert!(out.is_empty());
        packets
    }

    pub(super) fn subscribe(&mut self, c: Client, filter: &str, qos: QoS) {
        self.send(
            c,
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                filters: vec![SubscriptionRequest {
                    filter: ByteString::from(filter),
                    options: opts(qos),
                }],
                properties: None,
            }),
        );
    }

    pub(super) fn publish(
        &mut self,
        c: Client,
        topic: &str,
        payload: &'static [u8],
        qos: QoS,
        retain: bool,
        packet_id: u16,
    ) {
        self.send(
            c,
            Packet::Publish(Publish {
                dup: false,
                qos,
                retain,
                topic: ByteString::from(topic),
                packet_id,
                payload: Bytes::from_static(payload),
                properties: None,
            }),
        );
    }
}

pub(super) fn publishes(packets: &[Packet]) -> Vec<(String, Bytes, QoS, bool, bool)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((
                p.topic.to_string(),
                p.payload.clone(),
                p.qos,
                p.retain,
                p.dup,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn suback_waits_for_every_shard_then_cross_shard_delivery() {
    let mut sim = Sim::new(3);
    let sub = sim.connect(&id_on(0, 3, "sub"), true);
    let publ = sim.connect(&id_on(2, 3, "pub"), true);
    sim.subscribe(sub, "a/+", QoS::AtMostOnce);
    assert!(
        sim.recv(sub).is_empty(),
        "SUBACK before the other shards applied the interest"
    );
    sim.settle();
    assert!(matches!(sim.recv(sub)[..], [Packet::SubAck(ref s)] if s.codes == [0]));
    sim.publish(publ, "a/b", b"hi", QoS::AtMostOnce, false, 0);
    sim.settle();
    assert_eq!(
        publishes(&sim.recv(sub)),
        [(
            "a/b".into(),
            Bytes::from_static(b"hi"),
            QoS::AtMostOnce,
            false,
            false
        )]
    );
    // Not sent to a shard without interest.
    sim.publish(publ, "x/y", b"no", QoS::AtMostOnce, false, 0);
    assert_eq!(sim.shards[2].outgoing_backlog(), 0);
}

/// The server's fast path reports a shard's barrier progress before its
/// `SyncAck` message arrives: SUBACKs go out once every other shard has
/// answered, in order, and the late message changes nothing.
#[test]
fn suback_barrier_fast_path_is_ordered_and_idempotent() {
    let mut sim = Sim::new(3);
    let sub = sim.connect(&id_on(0, 3, "sub"), true);
    sim.subscribe(sub, "a/1", QoS::AtMostOnce);
    sim.subscribe(sub, "a/2", QoS::AtLeastOnce);
    // Shards 1 and 2 apply shard 0's batch (interest + Sync 1 and 2), but
    // their SyncAcks stay in their outboxes.
    for dst in [1, 2] {
        let batch = sim.shards[0].take_outgoing(dst);
        sim.shards[dst].handle_shard_messages(0, batch);
        assert_eq!(sim.shards[dst].syncs_applied(0), 2);
    }
    sim.shards[0].on_sync_ack(1, 2);
    assert!(sim.recv(sub).is_empty(), "shard 2 has not answered yet");
    sim.shards[0].on_sync_ack(2, 1);
    assert!(
        matches!(sim.recv(sub)[..], [Packet::SubAck(ref s)] if s.codes == [0]),
        "only the first SUBACK is covered by both shards"
    );
    sim.shards[0].on_sync_ack(2, 2);
    assert!(matches!(sim.recv(sub)[..], [Packet::SubAck(ref s)] if s.codes == [1]));
    // The SyncAck messages arrive afterwards: nothing more is sent.
    sim.settle();
    assert!(sim.recv(sub).is_empty());
}

#[test]
fn delivery_at_minimum_qos_and_once_for_overlapping_subscriptions() {
    let mut sim = Sim::new(1);
    let sub = sim.connect("s", true);
    let publ = sim.connect("p", true);
    sim.subscribe(sub, "a/#", QoS::AtMostOnce);
    sim.subscribe(sub, "a/b", QoS::AtLeastOnce);
    sim.recv(sub);
    sim.publish(publ, "a/b", b"x", QoS::ExactlyOnce, false, 7);
    assert!(matches!(sim.recv(publ)[..], [Packet::PubRec(ref a)] if a.packet_id == 7));
    let got = publishes(&sim.recv(sub));
    assert_eq!(got.len(), 1, "one copy per session [MQTT-3.3.5-1]");
    assert_eq!(got[0].2, QoS::AtLeastOnce);
}

#[test]
fn mqtt_4_3_3_inbound_qos2_is_delivered_once() {
    let mut sim = Sim::new(1);
    let sub = sim.connect("s", true);
    let publ = sim.connect("p", true);
    sim.subscribe(sub, "t", QoS::AtMostOnce);
    sim.recv(sub);
    sim.publish(publ, "t", b"1", QoS::ExactlyOnce, false, 5);
    sim.publish(publ, "t", b"1", QoS::ExactlyOnce, false, 5); // retransmission
    assert_eq!(sim.recv(publ).len(), 2, "PUBREC both times");
    assert_eq!(publishes(&sim.recv(sub)).len(), 1);
    sim.send(
        publ,
        Packet::PubRel(Ack {
            packet_id: 5,
            reason: 0,
            properties: None,
        }),
    );
    assert!(matches!(sim.recv(publ)[..], [Packet::PubComp(ref a)] if a.packet_id == 5));
    // After PUBREL the id is free again: a new message with it is new.
    sim.publish(publ, "t", b"2", QoS::ExactlyOnce, false, 5);
    assert_eq!(publishes(&sim.recv(sub)).len(), 1);
}

#[test]
fn retained_set_replace_clear_across_shards() {
    let mut sim = Sim::new(2);
    let publ = sim.connect(&id_on(0, 2, "p"), true);
    sim.publish(publ, "r/1", b"old", QoS::AtMostOnce, true, 0);
    sim.publish(publ, "r/1", b"new", QoS::AtMostOnce, true, 0);
    sim.publish(publ, "r/2", b"two", QoS::AtLeastOnce, true, 1);
    sim.publish(publ, "r/3", b"three", QoS::AtMostOnce, true, 0);
    sim.publish(publ, "r/3", b"", QoS::AtMostOnce, true, 0);
    sim.settle();
    let sub = sim.connect(&id_on(1, 2, "s"), true);
    sim.subscribe(sub, "r/#", QoS::AtLeastOnce);
    sim.settle();
    let got = sim.recv(sub);
    assert!(matches!(got[0], Packet::SubAck(_)), "SUBACK comes first");
    let mut pubs = publishes(&got);
    pubs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(pubs.len(), 2);
    assert_eq!(
        (pubs[0].0.as_str(), &pubs[0].1[..], pubs[0].2, pubs[0].3),
        ("r/1", &b"new"[..], QoS::AtMostOnce, true)
    );
    assert_eq!(
        (pubs[1].0.as_str(), &pubs[1].1[..], pubs[1].2, pubs[1].3),
        ("r/2", &b"two"[..], QoS::AtLeastOnce, true)
    );
}

#[test]
fn persistent_session_queues_offline_and_redelivers_with_dup() {
    let mut sim = Sim::new(2);
    let id = id_on(1, 2, "durable");
    let sub = sim.connect(&id, false);
    sim.subscribe(sub, "q", QoS::AtLeastOnce);
    sim.settle();
    sim.recv(sub);
    let publ = sim.connect(&id_on(0, 2, "p"), true);
    sim.publish(publ, "q", b"1", QoS::AtLeastOnce, false, 1);
    sim.settle();
    assert_eq!(publishes(&sim.recv(sub)).len(), 1);
    // Connection drops without PUBACK; two more arrive while offline.
    sim.shards[1].connection_lost(sub.conn, sim.now);
    sim.shards[1].release(sub.conn, sim.now);
    sim.publish(publ, "q", b"2", QoS::AtLeastOnce, false, 2);
    sim.publish(publ, "q", b"3", QoS::AtMostOnce, false, 0);
    sim.settle();
    let (sub2, out) = sim.connect_with(&id, false, 0, None);
    assert!(matches!(out[0], Packet::ConnAck(ref a) if a.session_present && a.code == 0));
    let pubs = publishes(&out);
    assert_eq!(pubs.len(), 2, "{out:?}");
    assert_eq!(
        (&pubs[0].1[..], pubs[0].4),
        (&b"1"[..], true),
        "unacked one again, DUP set"
    );
    assert_eq!(
        (&pubs[1].1[..], pubs[1].4),
        (&b"2"[..], false),
        "queued one, QoS 0 not queued"
    );
    let _ = sub2;
}

#[test]
fn clean_session_discards_and_session_present_is_false() {
    let mut sim = Sim::new(1);
    let c = sim.connect("c", false);
    sim.subscribe(c, "t", QoS::AtLeastOnce);
    sim.send(
        c,
        Packet::Disconnect(Disconnect {
            reason: 0,
            properties: None,
        }),
    );
    let (_, out) = sim.connect_with("c", true, 0, None);
    assert!(matches!(out[0], Packet::ConnAck(ref a) if !a.session_present));
    assert_eq!(sim.shards[0].subs.len(), 0, "old subscriptions gone");
}

#[test]
fn will_on_abnormal_close_and_keepalive_but_not_after_disconnect() {
    let mut sim = Sim::new(2);
    let watcher = sim.connect(&id_on(0, 2, "w"), true);
    sim.subscribe(watcher, "will/#", QoS::AtMostOnce);
    sim.settle();
    sim.recv(watcher);
    let will = |t: &'static str| {
        Some(Will {
            topic: ByteString::from_static(t),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: None,
        })
    };
    let (a, _) = sim.connect_with(&id_on(1, 2, "a"), true, 0, will("will/a"));
    let (b, _) = sim.connect_with(&id_on(1, 2, "b"), true, 10, will("will/b"));
    let (c, _) = sim.connect_with(&id_on(1, 2, "c"), true, 0, will("will/c"));
    sim.shards[1].connection_lost(a.conn, sim.now);
    sim.send(
        c,
        Packet::Disconnect(Disconnect {
            reason: 0,
            properties: None,
        }),
    );
    sim.shards[1].connection_lost(c.conn, sim.now);
    sim.now = 14_000;
    sim.shards[1].tick(sim.now);
    assert!(sim.recv(b).is_empty());
    sim.now = 15_001; // 1.5 x 10 s
    sim.shards[1].tick(sim.now);
    sim.settle();
    let topics: Vec<String> = publishes(&sim.recv(watcher))
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(topics, ["will/a", "will/b"]);
}

#[test]
fn takeover_closes_the_first_connection() {
    let mut sim = Sim::new(1);
    let first = sim.connect("same", false);
    let second = sim.connect("same", false);
    assert!(sim.shards[0].is_closing(first.conn));
    assert!(!sim.shards[0].is_closing(second.conn));
}

#[test]
fn inflight_window_and_bounded_queue() {
    let limits = BrokerLimits {
        max_inflight: 2,
        max_queued: 1,
        max_outbox_bytes: 1 << 20,
        ..Default::default()
    };
    let mut sim = Sim::with_limits(1, limits);
    let sub = sim.connect("s", true);
    let publ = sim.connect("p", true);
    sim.subscribe(sub, "t", QoS::AtLeastOnce);
    sim.recv(sub);
    for i in 1..=4 {
        sim.publish(publ, "t", b"m", QoS::AtLeastOnce, false, i);
    }
    let first = sim.recv(sub);
    assert_eq!(publishes(&first).len(), 2, "window of 2");
    assert!(
        sim.shards[0].awaits_acks(sub.conn),
        "window full with a message queued behind it"
    );
    assert!(!sim.shards[0].awaits_acks(publ.conn));
    assert_eq!(
        sim.shards[0].stats.dropped_queue_full, 1,
        "one queued, one dropped and counted"
    );
    let Packet::Publish(p) = &first[0] else {
        panic!()
    };
    sim.send(
        sub,
        Packet::PubAck(Ack {
            packet_id: p.packet_id,
            reason: 0,
            properties: None,
        }),
    );
    assert_eq!(
        publishes(&sim.recv(sub)).len(),
        1,
        "queued one moves into the window"
    );
    assert!(
        !sim.shards[0].awaits_acks(sub.conn),
        "window full but nothing queued"
    );
}

#[test]
fn invalid_filter_gets_failure_code() {
    let mut sim = Sim::new(1);
    let c = sim.connect("c", true);
    sim.subscribe(c, "a/#/b", QoS::AtMostOnce);
    assert!(matches!(sim.recv(c)[..], [Packet::SubAck(ref s)] if s.codes == [0x80]));
}

#[test]
fn empty_client_id_needs_clean_session() {
    let mut sim = Sim::new(2);
    let (_, out) = sim.connect_with("", false, 0, None);
    assert!(matches!(out[..], [Packet::ConnAck(ref a)] if a.code == 0x02));
    let (_, out) = sim.connect_with("", true, 0, None);
    assert!(matches!(out[..], [Packet::ConnAck(ref a)] if a.code == 0));
}

#[test]
fn encode_helper_round_trips() {
    let mut buf = BytesMut::new();
    encode(&Packet::PingReq, V, &mut buf);
    assert_eq!(&buf[..], [0xC0, 0x00]);
}
