//! Shared subscriptions and 5.0 session timers, stepped across shards.

use bytes::Bytes;
use bytestring::ByteString;

use super::tests::{id_on, publishes, Sim};
use crate::protocol::{Packet, QoS};

/// Members on two shards, the publisher on a third: each message reaches
/// exactly one member, both members get a share, a plain subscriber gets
/// everything.
#[test]
fn each_message_to_exactly_one_member_across_shards() {
    let mut sim = Sim::new(3);
    let a = sim.connect(&id_on(0, 3, "a"), true);
    let b = sim.connect(&id_on(1, 3, "b"), true);
    let plain = sim.connect(&id_on(1, 3, "plain"), true);
    let publ = sim.connect(&id_on(2, 3, "pub"), true);
    sim.subscribe(a, "$share/g/t/#", QoS::AtMostOnce);
    sim.subscribe(b, "$share/g/t/#", QoS::AtMostOnce);
    sim.subscribe(plain, "t/#", QoS::AtMostOnce);
    sim.settle();
    for c in [a, b, plain] {
        assert!(matches!(sim.recv(c)[..], [Packet::SubAck(ref s)] if s.codes == [0]));
    }
    for _ in 0..100 {
        sim.publish(publ, "t/x", b"m", QoS::AtMostOnce, false, 0);
        sim.settle();
    }
    let (got_a, got_b) = (publishes(&sim.recv(a)).len(), publishes(&sim.recv(b)).len());
    assert_eq!(got_a + got_b, 100, "a {got_a}, b {got_b}");
    assert!(
        got_a >= 40 && got_b >= 40,
        "round robin: a {got_a}, b {got_b}"
    );
    assert_eq!(publishes(&sim.recv(plain)).len(), 100);
    // No retained message for a shared subscription.
    sim.publish(publ, "t/r", b"kept", QoS::AtMostOnce, true, 0);
    sim.settle();
    let _ = (sim.recv(a), sim.recv(b), sim.recv(plain));
    let late = sim.connect(&id_on(0, 3, "late"), true);
    sim.subscribe(late, "$share/g/t/#", QoS::AtMostOnce);
    sim.settle();
    assert!(matches!(sim.recv(late)[..], [Packet::SubAck(_)]));
}

/// A member that leaves with unacknowledged QoS 1 messages: they go to the
/// other member; after it unsubscribes, the rest all go to the other one.
#[test]
fn a_leaving_member_hands_its_messages_on() {
    let mut sim = Sim::new(2);
    let a = sim.connect(&id_on(0, 2, "a"), true);
    let b = sim.connect(&id_on(1, 2, "b"), true);
    let publ = sim.connect(&id_on(1, 2, "pub"), true);
    sim.subscribe(a, "$share/g/q", QoS::AtLeastOnce);
    sim.subscribe(b, "$share/g/q", QoS::AtLeastOnce);
    sim.settle();
    let _ = (sim.recv(a), sim.recv(b));
    for i in 0..10 {
        sim.publish(publ, "q", b"m", QoS::AtLeastOnce, false, i + 1);
        sim.settle();
    }
    let to_a = publishes(&sim.recv(a)).len();
    let to_b = publishes(&sim.recv(b)).len();
    assert_eq!(to_a + to_b, 10);
    assert!(to_a > 0, "a got none");
    // a never acknowledges and its connection drops.
    sim.shards[a.shard].connection_lost(a.conn, sim.now);
    sim.settle();
    let handed = publishes(&sim.recv(b));
    assert_eq!(handed.len(), to_a, "b gets what a had not acknowledged");
    assert!(handed.iter().all(|p| p.2 == QoS::AtLeastOnce));
    assert_eq!(sim.shards[a.shard].stats.shared_redistributed, to_a as u64);
}

/// A 5.0-style session: kept while its expiry runs, gone after it; a
/// delayed will is published when the delay passes, not before.
#[test]
fn session_expiry_and_will_delay_follow_the_clock() {
    use crate::protocol::{Connect, Properties, ProtocolVersion, Will};
    let mut sim = Sim::new(2);
    let watcher = sim.connect(&id_on(0, 2, "w"), true);
    sim.subscribe(watcher, "will/#", QoS::AtMostOnce);
    sim.settle();
    let _ = sim.recv(watcher);
    let id = id_on(1, 2, "dev");
    let connect = |delay: u32, expiry: u32, clean_start: bool| Connect {
        protocol: ProtocolVersion::V5,
        clean_start,
        keep_alive: 0,
        client_id: ByteString::from(id.as_str()),
        will: Some(Will {
            topic: ByteString::from_static("will/dev"),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Some(Box::new(Properties {
                will_delay_interval: Some(delay),
                ..Default::default()
            })),
        }),
        username: None,
        password: None,
        properties: Some(Box::new(Properties {
            session_expiry_interval: Some(expiry),
            ..Default::default()
        })),
    };
    let conn = sim.shards[1].connect(connect(2, 10, true), sim.now);
    sim.shards[1].connection_lost(conn, sim.now);
    sim.settle();
    assert!(sim.recv(watcher).is_empty(), "will delayed");
    sim.now += 1_500;
    sim.shards[1].tick(sim.now);
    sim.settle();
    assert!(sim.recv(watcher).is_empty(), "not before its delay");
    sim.now += 1_000;
    sim.shards[1].tick(sim.now);
    sim.settle();
    assert_eq!(publishes(&sim.recv(watcher)).len(), 1, "will after 2 s");
    assert_eq!(sim.shards[1].session_count(), 1, "session kept for 10 s");
    sim.now += 8_000;
    sim.shards[1].tick(sim.now);
    assert_eq!(sim.shards[1].session_count(), 0, "session expired");
    assert_eq!(sim.shards[1].stats.sessions_expired, 1);

    // A reconnect to the session within the delay cancels the will.
    let conn = sim.shards[1].connect(connect(2, 10, true), sim.now);
    sim.shards[1].connection_lost(conn, sim.now);
    let again = sim.shards[1].connect(connect(2, 10, false), sim.now + 500);
    sim.now += 5_000;
    sim.shards[1].tick(sim.now);
    sim.settle();
    assert!(sim.recv(watcher).is_empty(), "reconnected: no will");
    // A clean start ends the old session: its delayed will goes at once.
    sim.shards[1].connection_lost(again, sim.now);
    let fresh = sim.shards[1].connect(connect(2, 10, true), sim.now);
    sim.settle();
    assert_eq!(publishes(&sim.recv(watcher)).len(), 1, "session ended");
    // Will delay longer than the session: published when it ends.
    sim.shards[1].connection_lost(fresh, sim.now);
    let conn = sim.shards[1].connect(connect(60, 1, true), sim.now);
    sim.settle();
    assert_eq!(publishes(&sim.recv(watcher)).len(), 1, "clean start again");
    sim.shards[1].connection_lost(conn, sim.now);
    sim.now += 1_000;
    sim.shards[1].tick(sim.now);
    sim.settle();
    assert_eq!(
        publishes(&sim.recv(watcher)).len(),
        1,
        "will at session end"
    );
}

/// `--shared-strategy local`: a member on the publisher's shard gets every
/// message (no hop between cores); `least-inflight`: a member that does
/// not acknowledge gets fewer than one that does.
#[test]
fn strategies_local_and_least_inflight() {
    use crate::broker::shared::Strategy;
    let mut sim = Sim::new(2);
    for s in &mut sim.shards {
        s.set_shared_strategy(Strategy::Local);
    }
    let here = sim.connect(&id_on(0, 2, "here"), true);
    let there = sim.connect(&id_on(1, 2, "there"), true);
    let publ = sim.connect(&id_on(0, 2, "pub"), true);
    sim.subscribe(here, "$share/g/l", QoS::AtMostOnce);
    sim.subscribe(there, "$share/g/l", QoS::AtMostOnce);
    sim.settle();
    let _ = (sim.recv(here), sim.recv(there));
    for _ in 0..20 {
        sim.publish(publ, "l", b"m", QoS::AtMostOnce, false, 0);
        sim.settle();
    }
    assert_eq!(publishes(&sim.recv(here)).len(), 20);
    assert!(sim.recv(there).is_empty());

    let mut sim = Sim::new(1);
    sim.shards[0].set_shared_strategy(Strategy::LeastInflight);
    let slow = sim.connect("slow", true);
    let fast = sim.connect("fast", true);
    let publ = sim.connect("pub", true);
    sim.subscribe(slow, "$share/g/q", QoS::AtLeastOnce);
    sim.subscribe(fast, "$share/g/q", QoS::AtLeastOnce);
    let _ = (sim.recv(slow), sim.recv(fast));
    let (mut to_slow, mut to_fast) = (0, 0);
    for i in 0..40 {
        sim.publish(publ, "q", b"m", QoS::AtLeastOnce, false, i + 1);
        to_slow += publishes(&sim.recv(slow)).len();
        for p in sim.recv(fast) {
            if let Packet::Publish(p) = p {
                to_fast += 1;
                sim.send(
                    fast,
                    Packet::PubAck(crate::protocol::Ack {
                        packet_id: p.packet_id,
                        reason: 0,
                        properties: None,
                    }),
                );
            }
        }
    }
    assert_eq!(to_slow + to_fast, 40);
    assert!(to_slow <= 2, "slow member got {to_slow}, fast {to_fast}");
}
