//! The per-client bounds of `BrokerLimits`, stepped in the simulation:
//! what a client that never reads, or asks for too much, can make a shard
//! hold.

use bytestring::ByteString;

use super::tests::{opts, publishes, Sim};
use super::BrokerLimits;
use crate::protocol::{Ack, Packet, QoS, Subscribe, SubscriptionRequest};

const PAYLOAD: &[u8] = &[b'x'; 600];

fn sim_with(limits: BrokerLimits) -> Sim {
    Sim::with_limits(1, limits)
}

#[test]
fn qos1_beyond_the_outbox_waits_in_the_queue() {
    let mut sim = sim_with(BrokerLimits {
        max_outbox_bytes: 1000,
        ..Default::default()
    });
    let sub = sim.connect("s", true);
    let publ = sim.connect("p", true);
    sim.subscribe(sub, "t", QoS::AtLeastOnce);
    sim.recv(sub);
    for id in 1..=10 {
        sim.publish(publ, "t", PAYLOAD, QoS::AtLeastOnce, false, id);
    }
    assert!(sim.shards[0].outbox_full(sub.conn));
    let first = sim.recv(sub);
    assert_eq!(
        publishes(&first).len(),
        2,
        "written until the outbox passed 1000 bytes"
    );
    assert_eq!(
        sim.shards[0].stats.dropped_queue_full, 0,
        "queued, not dropped"
    );
    // Nothing more until the server says the batch was written.
    assert!(sim.recv(sub).is_empty());
    sim.shards[0].output_written(sub.conn);
    assert_eq!(publishes(&sim.recv(sub)).len(), 2);
    for _ in 0..3 {
        sim.shards[0].output_written(sub.conn);
        sim.recv(sub);
    }
    sim.shards[0].output_written(sub.conn);
    assert!(
        sim.recv(sub).is_empty(),
        "all ten were written, two at a time"
    );
    sim.shards[0].check_bounds((1 << 20) + (64 << 10)).unwrap();
}

#[test]
fn queue_bytes_are_bounded() {
    let mut sim = sim_with(BrokerLimits {
        max_outbox_bytes: 1,
        max_queued_bytes: 2000,
        ..Default::default()
    });
    let sub = sim.connect("s", true);
    let publ = sim.connect("p", true);
    sim.subscribe(sub, "t", QoS::AtLeastOnce);
    sim.recv(sub);
    for id in 1..=8 {
        sim.publish(publ, "t", PAYLOAD, QoS::AtLeastOnce, false, id);
    }
    // One written (the outbox was empty), three queued (3 x 601 bytes fit
    // in 2000), four dropped.
    assert_eq!(publishes(&sim.recv(sub)).len(), 1);
    assert_eq!(sim.shards[0].stats.dropped_queue_full, 4);
    sim.shards[0].check_bounds((1 << 20) + (64 << 10)).unwrap();
}

#[test]
fn retained_lookups_of_one_subscribe_stop_when_the_session_is_full() {
    let mut sim = sim_with(BrokerLimits {
        max_outbox_bytes: 1000,
        max_inflight: 4,
        max_queued: 5,
        ..Default::default()
    });
    let publ = sim.connect("p", true);
    sim.publish(publ, "big/t", PAYLOAD, QoS::AtLeastOnce, true, 1);
    let sub = sim.connect("s", true);
    let filters = (0..64)
        .map(|_| SubscriptionRequest {
            filter: ByteString::from_static("big/#"),
            options: opts(QoS::AtLeastOnce),
        })
        .collect();
    sim.send(
        sub,
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters,
            properties: None,
        }),
    );
    let out = sim.recv(sub);
    assert!(matches!(out[0], Packet::SubAck(ref s) if s.codes.len() == 64));
    assert_eq!(publishes(&out).len(), 2, "the outbox took two");
    let stats = &sim.shards[0].stats;
    // Two written, five queued: the other 57 filters were not looked up.
    assert_eq!(stats.retained_skipped, 57, "{stats:?}");
    assert_eq!(stats.dropped_queue_full, 0, "{stats:?}");
    sim.shards[0].check_bounds((1 << 20) + (64 << 10)).unwrap();
}

#[test]
fn inbound_qos2_ids_are_bounded_by_receive_maximum() {
    let mut sim = sim_with(BrokerLimits {
        receive_maximum: 2,
        ..Default::default()
    });
    let c = sim.connect("c", true);
    sim.publish(c, "t", b"1", QoS::ExactlyOnce, false, 1);
    sim.publish(c, "t", b"2", QoS::ExactlyOnce, false, 2);
    sim.publish(c, "t", b"1", QoS::ExactlyOnce, false, 1); // a retransmission
    assert_eq!(sim.recv(c).len(), 3, "three PUBRECs");
    assert!(!sim.shards[0].is_closing(c.conn));
    sim.publish(c, "t", b"3", QoS::ExactlyOnce, false, 3);
    assert!(
        sim.shards[0].is_closing(c.conn),
        "a third id awaiting PUBREL"
    );
    let c = sim.connect("d", true);
    for id in 1..=5 {
        sim.publish(c, "t", b"x", QoS::ExactlyOnce, false, id);
        sim.send(
            c,
            Packet::PubRel(Ack {
                packet_id: id,
                reason: 0,
                properties: None,
            }),
        );
    }
    assert!(!sim.shards[0].is_closing(c.conn), "released ids free room");
}

#[test]
fn subscriptions_per_client_are_bounded() {
    let mut sim = sim_with(BrokerLimits {
        max_subscriptions: 3,
        ..Default::default()
    });
    let c = sim.connect("c", true);
    let subscribe = |sim: &mut Sim, filters: &[&str]| {
        sim.send(
            c,
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                filters: filters
                    .iter()
                    .map(|f| SubscriptionRequest {
                        filter: ByteString::from(*f),
                        options: opts(QoS::AtMostOnce),
                    })
                    .collect(),
                properties: None,
            }),
        );
        match &sim.recv(c)[..] {
            [Packet::SubAck(s)] => s.codes.clone(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        subscribe(&mut sim, &["a", "b", "c", "d", "e"]),
        [0, 0, 0, 0x80, 0x80]
    );
    assert_eq!(subscribe(&mut sim, &["b"]), [0], "a replacement is not new");
    assert_eq!(sim.shards[0].stats.subscriptions_refused, 2);
}

#[test]
fn topics_beyond_the_length_and_level_bounds_are_refused() {
    let mut sim = sim_with(BrokerLimits {
        max_topic_levels: 3,
        max_topic_length: 16,
        ..Default::default()
    });
    let c = sim.connect("c", true);
    sim.subscribe(c, "a/b/c/d", QoS::AtMostOnce);
    assert!(matches!(sim.recv(c)[..], [Packet::SubAck(ref s)] if s.codes == [0x80]));
    sim.subscribe(c, "aaaaaaaaaaaaaaaaa", QoS::AtMostOnce);
    assert!(matches!(sim.recv(c)[..], [Packet::SubAck(ref s)] if s.codes == [0x80]));
    sim.publish(c, "a/b/c", b"ok", QoS::AtMostOnce, false, 0);
    assert!(!sim.shards[0].is_closing(c.conn));
    sim.publish(c, "a/b/c/d", b"deep", QoS::AtMostOnce, false, 0);
    assert!(sim.shards[0].is_closing(c.conn));
}

#[test]
fn long_client_ids_are_rejected() {
    let mut sim = sim_with(BrokerLimits {
        max_client_id_len: 4,
        ..Default::default()
    });
    let (c, out) = sim.connect_with("abcde", true, 0, None);
    assert!(matches!(out[..], [Packet::ConnAck(ref a)] if a.code == 0x02));
    assert!(sim.shards[0].is_closing(c.conn));
    sim.connect("abcd", true);
}
