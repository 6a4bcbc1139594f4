//! Authentication (`--password-file`, `--allow-anonymous`) and ACLs
//! (`--acl-file`, mosquitto format) end to end: CONNACK refusals that do
//! not tell an unknown user from a wrong password, per-filter SUBACK
//! refusals, publishes that are acknowledged but not routed, retained
//! messages and wills filtered by read/write rights, deny over grant,
//! `%c`/`%u` patterns, and a storm of bad logins that must not slow down
//! an authenticated client.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::auth_kit::*;
use common::hostile_kit::{v5_publish, RawV5, V5};
use common::*;
use ringmq::protocol::{Packet, Properties, ProtocolVersion, QoS};

/// Lines before the first `user` apply to anonymous clients; `pattern`
/// lines apply to everyone.
const ACL: &str = "\
# anonymous clients
topic read public/#

user alice
topic readwrite alice/#
topic write inbox/#
topic read a/#
topic deny a/secret

user admin
topic readwrite #

user dev1

pattern readwrite devices/%u/#
pattern write clients/%c/status
";

const USERS: &[(&str, &str)] = &[
    ("alice", "alice-pw"),
    ("admin", "admin-pw"),
    ("dev1", "dev1-pw"),
];

/// A broker with the users above, the ACL above, and `extra` arguments.
fn auth_broker(tag: &str, extra: &[&str]) -> (Broker, TempDir) {
    let dir = TempDir::new(tag);
    let pw = dir.password_file(USERS);
    let acl = dir.write("acl", ACL);
    let mut args = vec!["--password-file", &pw, "--acl-file", &acl];
    args.extend_from_slice(extra);
    (Broker::start_with(&args), dir)
}

/// Logs `user` in with the password of `USERS`; panics unless accepted.
fn login(port: u16, version: ProtocolVersion, id: &str, user: &str) -> RawV5 {
    let pw = USERS
        .iter()
        .find(|(u, _)| *u == user)
        .map(|(_, p)| *p)
        .expect("known test user");
    raw_login(port, version, id, Some(user), Some(pw))
}

/// A PUBLISH encoded for the client's version.
fn publish_on(c: &mut RawV5, topic: &str, qos: QoS, packet_id: u16, retain: bool, payload: &[u8]) {
    let p = if c.version == V5 {
        match v5_publish(topic, qos, packet_id, payload, Properties::default()) {
            Packet::Publish(mut p) => {
                p.retain = retain;
                Packet::Publish(p)
            }
            other => other,
        }
    } else {
        publish_packet(topic, qos, packet_id, false, retain, payload)
    };
    c.send_packet(&p);
}

fn next_publish(c: &mut RawV5, what: &str) -> (String, Vec<u8>) {
    match c.read_packet(RECV_TIMEOUT) {
        Packet::Publish(p) => (p.topic.to_string(), p.payload.to_vec()),
        other => panic!("{what}: expected PUBLISH, got {other:?}"),
    }
}

/// Wrong password, unknown user, username without password and no
/// username at all: CONNACK 0x05 (3.1.1) / 0x86 (5.0), then close, and the
/// unknown user gets exactly the wrong password's answer.
#[test]
fn bad_credentials_get_one_refusal_and_are_closed() {
    let (broker, _dir) = auth_broker("badcred", &[]);
    let port = broker.port();
    for (version, code) in [(V311, 0x05u8), (V5, 0x86)] {
        let wrong = expect_refused(
            port,
            &credentials_connect(version, "c-wrong", Some("alice"), Some("nope"), None),
            code,
        );
        let unknown = expect_refused(
            port,
            &credentials_connect(version, "c-ghost", Some("ghost"), Some("nope"), None),
            code,
        );
        assert_eq!(wrong, unknown, "{version:?}: unknown user told apart");
        expect_refused(
            port,
            &credentials_connect(version, "c-nopw", Some("alice"), None, None),
            code,
        );
        // No credentials at all: "not authorized" (0x87) in 5.0, as
        // mosquitto answers; 3.1.1 has only 0x05 for both.
        let anon_code = if version == V5 { 0x87 } else { 0x05 };
        expect_refused(
            port,
            &credentials_connect(version, "c-anon", None, None, None),
            anon_code,
        );
        // The right password still works after the refusals.
        let mut ok = raw_login(port, version, "c-ok", Some("alice"), Some("alice-pw"));
        ok.ping();
    }
}

/// `--allow-anonymous` admits clients without a username; a wrong password
/// is still refused.
#[test]
fn allow_anonymous_admits_clients_without_username_only() {
    let (broker, _dir) = auth_broker("anon", &["--allow-anonymous"]);
    let port = broker.port();
    raw_login(port, V311, "anon-1", None, None).ping();
    raw_login(port, V5, "anon-2", None, None).ping();
    expect_refused(
        port,
        &credentials_connect(V311, "anon-w", Some("alice"), Some("nope"), None),
        0x05,
    );
}

/// Without a password file anonymous clients are allowed (today's default).
#[test]
fn without_password_file_anonymous_is_allowed() {
    let dir = TempDir::new("noauth");
    let acl = dir.write("acl", ACL);
    let broker = Broker::start_with(&["--acl-file", &acl]);
    raw_login(broker.port(), V311, "free-1", None, None).ping();
}

/// rumqttc (3.1.1 and 5.0) with credentials: accepted with the right
/// password, refused with the wrong one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_clients_log_in() {
    let (broker, _dir) = auth_broker("rumqttc", &[]);
    let port = broker.port();
    let mut o = rumqttc::MqttOptions::new("rq-alice", "127.0.0.1", port);
    o.set_credentials("alice", "alice-pw");
    let (mut alice, ack) =
        MqttClient::connect_options(o, "rq-alice".into(), ConnectOpts::default()).await;
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    assert_eq!(alice.subscribe("alice/#", q(1)).await, vec![1]);
    alice.publish("alice/x", q(1), false, b"self").await;
    assert_eq!(&alice.recv_publish().await.payload[..], b"self");

    let mut bad5 = V5Client::start(port, "rq5-bad", Some("alice"), Some("nope"));
    let refused = bad5.wait(RECV_TIMEOUT, "CONNACK", |_| None::<()>).await;
    let err = refused.expect_err("a wrong password was accepted over 5.0");
    assert!(err.contains("BadUserNamePassword"), "5.0 refusal: {err}");

    let mut good5 = V5Client::start(port, "rq5-ok", Some("alice"), Some("alice-pw"));
    let code = good5
        .wait(RECV_TIMEOUT, "CONNACK", |p| match p {
            rumqttc::v5::mqttbytes::v5::Packet::ConnAck(a) => Some(a.code),
            _ => None,
        })
        .await
        .expect("5.0 login with the right password");
    assert_eq!(code, rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success);
}

/// mosquitto_pub/mosquitto_sub with `-u/-P`: the right password publishes
/// (a retained message alice may write), the wrong one fails in both
/// protocol versions.
#[test]
fn mosquitto_clients_use_username_and_password() {
    let (broker, _dir) = auth_broker("mosq", &[]);
    let port = broker.port().to_string();
    let mosq = |bin: &str, args: &[&str]| {
        let mut cmd = std::process::Command::new(bin);
        cmd.args(["-h", "127.0.0.1", "-p", &port]).args(args);
        run_bounded(cmd, Duration::from_secs(15))
    };
    let out = mosq(
        "mosquitto_pub",
        &[
            "-i", "mp-ok", "-u", "alice", "-P", "alice-pw", "-t", "inbox/m", "-m", "hi", "-r",
            "-q", "1",
        ],
    );
    assert!(out.status.success(), "mosquitto_pub: {out:?}");
    let out = mosq(
        "mosquitto_sub",
        &[
            "-i", "ms-ok", "-u", "admin", "-P", "admin-pw", "-t", "inbox/#", "-v", "-C", "1", "-W",
            "5",
        ],
    );
    assert!(out.status.success(), "mosquitto_sub: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "inbox/m hi");
    for v in ["mqttv311", "mqttv5"] {
        let out = mosq(
            "mosquitto_pub",
            &[
                "-V", v, "-i", "mp-bad", "-u", "alice", "-P", "nope", "-t", "inbox/m", "-m", "x",
            ],
        );
        assert!(
            !out.status.success(),
            "{v}: wrong password accepted: {out:?}"
        );
    }
}

/// A refused filter gets 0x80 (3.1.1) / 0x87 (5.0) in its own slot; the
/// other filters of the same SUBSCRIBE are granted.
#[test]
fn subscribe_refusal_is_per_filter() {
    let (broker, _dir) = auth_broker("suback", &[]);
    let filters = [
        ("alice/x", QoS::AtLeastOnce),
        ("admin/y", QoS::AtLeastOnce),
        ("a/#", QoS::AtMostOnce),
    ];
    let mut c3 = login(broker.port(), V311, "sub3", "alice");
    assert_eq!(c3.subscribe(1, &filters), [1, 0x80, 0]);
    let mut c5 = login(broker.port(), V5, "sub5", "alice");
    assert_eq!(c5.subscribe(1, &filters), [1, 0x87, 0]);
}

/// Publishes without write access reach no one. 3.1.1 QoS 1 is still
/// acknowledged (like mosquitto); 5.0 QoS 1/2 get PUBACK/PUBREC 0x87.
#[test]
fn publish_without_write_access_is_not_routed() {
    let (broker, _dir) = auth_broker("pubacl", &[]);
    let port = broker.port();
    let mut admin = login(port, V311, "pa-admin", "admin");
    assert_eq!(admin.subscribe(1, &[("#", QoS::AtLeastOnce)]), [1]);

    let mut a3 = login(port, V311, "pa-a3", "alice");
    publish_on(&mut a3, "public/q0", QoS::AtMostOnce, 0, false, b"no");
    publish_on(&mut a3, "public/q1", QoS::AtLeastOnce, 7, false, b"no");
    match a3.read_packet(RECV_TIMEOUT) {
        Packet::PubAck(a) => assert_eq!(a.packet_id, 7),
        other => panic!("3.1.1 QoS 1 refused publish: expected PUBACK, got {other:?}"),
    }
    let mut a5 = login(port, V5, "pa-a5", "alice");
    publish_on(&mut a5, "public/v5q1", QoS::AtLeastOnce, 8, false, b"no");
    match a5.read_packet(RECV_TIMEOUT) {
        Packet::PubAck(a) => assert_eq!((a.packet_id, a.reason), (8, 0x87)),
        other => panic!("expected PUBACK 0x87, got {other:?}"),
    }
    publish_on(&mut a5, "public/v5q2", QoS::ExactlyOnce, 9, false, b"no");
    match a5.read_packet(RECV_TIMEOUT) {
        Packet::PubRec(a) => assert_eq!((a.packet_id, a.reason), (9, 0x87)),
        other => panic!("expected PUBREC 0x87, got {other:?}"),
    }
    // A permitted publish after them is the first thing admin sees.
    publish_on(&mut a3, "inbox/ok", QoS::AtMostOnce, 0, false, b"yes");
    assert_eq!(
        next_publish(&mut admin, "admin"),
        ("inbox/ok".to_string(), b"yes".to_vec()),
        "a publish without write access was routed"
    );
}

/// `topic read a/#` + `topic deny a/secret`: a/# is granted, a/public is
/// delivered, a/secret is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_wins_over_grant() {
    let (broker, _dir) = auth_broker("deny", &[]);
    let port = broker.port();
    let mut o = rumqttc::MqttOptions::new("deny-alice", "127.0.0.1", port);
    o.set_credentials("alice", "alice-pw");
    let (mut alice, _) =
        MqttClient::connect_options(o, "deny-alice".into(), ConnectOpts::default()).await;
    assert_eq!(alice.subscribe("a/#", q(1)).await, vec![1]);
    let mut admin = login(port, V311, "deny-admin", "admin");
    for (topic, payload) in [("a/public", "1"), ("a/secret", "2"), ("a/public", "3")] {
        publish_on(
            &mut admin,
            topic,
            QoS::AtMostOnce,
            0,
            false,
            payload.as_bytes(),
        );
    }
    for want in ["1", "3"] {
        let m = alice.recv_publish().await;
        assert_eq!(
            (m.topic.as_str(), &m.payload[..]),
            ("a/public", want.as_bytes())
        );
    }
    alice.expect_no_publish(Duration::from_millis(300)).await;
}

/// Retained messages the subscriber may not read stay undelivered.
#[test]
fn retained_messages_without_read_access_are_not_delivered() {
    let (broker, _dir) = auth_broker("retain", &[]);
    let port = broker.port();
    let mut admin = login(port, V311, "ret-admin", "admin");
    publish_on(&mut admin, "a/secret", QoS::AtLeastOnce, 1, true, b"hidden");
    publish_on(&mut admin, "a/public", QoS::AtLeastOnce, 2, true, b"shown");
    for id in [1, 2] {
        match admin.read_packet(RECV_TIMEOUT) {
            Packet::PubAck(a) => assert_eq!(a.packet_id, id),
            other => panic!("expected PUBACK {id}, got {other:?}"),
        }
    }
    let mut alice = login(port, V311, "ret-alice", "alice");
    assert_eq!(alice.subscribe(1, &[("a/#", QoS::AtMostOnce)]), [0]);
    assert_eq!(
        next_publish(&mut alice, "alice"),
        ("a/public".to_string(), b"shown".to_vec())
    );
    match alice.read_outcome(Duration::from_millis(500)) {
        ReadOutcome::TimedOut => {}
        other => panic!("a retained message alice may not read: {other:?}"),
    }
}

/// A will on a topic the client may not write is dropped; one it may
/// write is published.
#[test]
fn will_without_write_access_is_not_published() {
    let (broker, _dir) = auth_broker("will", &[]);
    let port = broker.port();
    let mut admin = login(port, V311, "will-admin", "admin");
    assert_eq!(admin.subscribe(1, &[("#", QoS::AtMostOnce)]), [0]);
    for (id, topic) in [("will-denied", "admin/will"), ("will-ok", "alice/will")] {
        let w = will(topic, topic.as_bytes(), QoS::AtMostOnce, false);
        let c = credentials_connect(V311, id, Some("alice"), Some("alice-pw"), Some(w));
        let (raw, ack) = raw_connect(port, &c);
        assert_eq!(ack.code, 0, "{id}");
        drop(raw); // no DISCONNECT: the will is due
    }
    assert_eq!(
        next_publish(&mut admin, "admin"),
        ("alice/will".to_string(), b"alice/will".to_vec()),
        "the will on admin/will was published"
    );
}

/// `pattern readwrite devices/%u/#` and `pattern write clients/%c/status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_substitute_username_and_client_id() {
    let (broker, _dir) = auth_broker("pattern", &[]);
    let port = broker.port();
    let mut admin = login(port, V311, "pat-admin", "admin");
    assert_eq!(admin.subscribe(1, &[("clients/#", QoS::AtMostOnce)]), [0]);

    let mut dev = login(port, V311, "cid-7", "dev1");
    assert_eq!(
        dev.subscribe(
            1,
            &[
                ("devices/dev1/#", QoS::AtMostOnce),
                ("devices/dev2/#", QoS::AtMostOnce)
            ]
        ),
        [0, 0x80]
    );
    publish_on(
        &mut dev,
        "clients/other/status",
        QoS::AtMostOnce,
        0,
        false,
        b"no",
    );
    publish_on(
        &mut dev,
        "clients/cid-7/status",
        QoS::AtMostOnce,
        0,
        false,
        b"up",
    );
    assert_eq!(
        next_publish(&mut admin, "admin"),
        ("clients/cid-7/status".to_string(), b"up".to_vec()),
        "%c: only the client's own status topic is writable"
    );

    // The same rights through rumqttc 5.0.
    let mut dev5 = V5Client::start(port, "cid-8", Some("dev1"), Some("dev1-pw"));
    use rumqttc::v5::mqttbytes::v5::{Packet as P5, SubscribeReasonCode};
    dev5.client
        .subscribe("devices/dev1/#", rumqttc::v5::mqttbytes::QoS::AtMostOnce)
        .await
        .expect("queue SUBSCRIBE");
    let codes = dev5
        .wait(RECV_TIMEOUT, "SUBACK", |p| match p {
            P5::SubAck(s) => Some(s.return_codes.clone()),
            _ => None,
        })
        .await
        .expect("SUBACK for the %u filter");
    assert!(
        matches!(codes[..], [SubscribeReasonCode::Success(_)]),
        "{codes:?}"
    );
    publish_on(
        &mut admin,
        "devices/dev1/temp",
        QoS::AtMostOnce,
        0,
        false,
        b"21",
    );
    let topic = dev5
        .wait(RECV_TIMEOUT, "PUBLISH", |p| match p {
            P5::Publish(m) => Some(m.topic.clone()),
            _ => None,
        })
        .await
        .expect("PUBLISH on devices/dev1/temp");
    assert_eq!(&topic[..], b"devices/dev1/temp");
}

/// Topic lines before the first `user` are the anonymous clients' rights.
#[test]
fn anonymous_rights_come_before_the_first_user() {
    let (broker, _dir) = auth_broker("anonacl", &["--allow-anonymous"]);
    let port = broker.port();
    let mut anon = raw_login(port, V311, "anon-acl", None, None);
    assert_eq!(
        anon.subscribe(
            1,
            &[("public/#", QoS::AtMostOnce), ("alice/#", QoS::AtMostOnce)]
        ),
        [0, 0x80]
    );
    let mut admin = login(port, V311, "anonacl-admin", "admin");
    assert_eq!(admin.subscribe(1, &[("public/#", QoS::AtMostOnce)]), [0]);
    publish_on(
        &mut anon,
        "public/from-anon",
        QoS::AtMostOnce,
        0,
        false,
        b"read-only",
    );
    publish_on(
        &mut admin,
        "public/news",
        QoS::AtMostOnce,
        0,
        false,
        b"news",
    );
    assert_eq!(
        next_publish(&mut anon, "anonymous"),
        ("public/news".to_string(), b"news".to_vec())
    );
    assert_eq!(
        next_publish(&mut admin, "admin"),
        ("public/news".to_string(), b"news".to_vec()),
        "anonymous clients may only read public/#"
    );
}

/// 200 wrong-password CONNECTs from 4 threads while an authenticated
/// client ping-pongs QoS 0 messages through the broker: every storm
/// connection gets 0x05, the round trip's p99 stays under 50 ms (password
/// checks must not stall a shard), and the broker survives.
#[test]
fn connect_storm_of_wrong_passwords_does_not_stall_others() {
    let (mut broker, _dir) = auth_broker("storm", &[]);
    let port = broker.port();
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = {
        let stop = stop.clone();
        let mut c = login(port, V311, "storm-pinger", "alice");
        assert_eq!(c.subscribe(1, &[("alice/rtt", QoS::AtMostOnce)]), [0]);
        std::thread::spawn(move || {
            let mut rtts = Vec::new();
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) || rtts.len() < 100 {
                seq += 1;
                let t = Instant::now();
                publish_on(
                    &mut c,
                    "alice/rtt",
                    QoS::AtMostOnce,
                    0,
                    false,
                    &seq.to_be_bytes(),
                );
                let (_, payload) = next_publish(&mut c, "pinger");
                assert_eq!(payload, seq.to_be_bytes(), "ping {seq} out of order");
                rtts.push(t.elapsed());
                std::thread::sleep(Duration::from_millis(2));
            }
            rtts
        })
    };
    let storm: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..50 {
                    let user = if i % 5 == 0 { "ghost" } else { "alice" };
                    let id = format!("storm-{t}-{i}");
                    let c = credentials_connect(V311, &id, Some(user), Some("wrong"), None);
                    expect_refused(port, &c, 0x05);
                }
            })
        })
        .collect();
    for s in storm {
        s.join()
            .expect("a storm connection was not refused with 0x05");
    }
    stop.store(true, Ordering::Relaxed);
    let mut rtts = pinger.join().expect("the authenticated client failed");
    rtts.sort();
    let p99 = rtts[(rtts.len() * 99).div_ceil(100) - 1];
    eprintln!(
        "storm: {} pings, p99 {p99:?}, max {:?}",
        rtts.len(),
        rtts.last()
    );
    assert!(
        p99 < Duration::from_millis(50),
        "p99 round trip {p99:?} during the storm"
    );
    assert!(broker.is_running(), "the broker died in the storm");
    login(port, V311, "storm-after", "alice").ping();
}
