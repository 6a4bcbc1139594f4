//! SIGHUP reloads the password and ACL files: new logins use the new
//! passwords (a password verified before is not remembered past the
//! reload), connected clients get the new ACL, open connections stay open,
//! and a file that no longer parses keeps the previous version.

mod common;

use std::time::{Duration, Instant};

use common::auth_kit::*;
use common::hostile_kit::{RawV5, V5};
use common::*;
use ringmq::protocol::{Packet, QoS};

fn sighup(broker: &Broker) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &broker.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -HUP failed");
}

/// Waits until the log holds `needle` `n` times (5 s at most).
fn wait_for(broker: &Broker, needle: &str, n: usize) {
    broker.wait_log_count(needle, n);
}

#[test]
fn sighup_reloads_passwords_and_forgets_verified_ones() {
    let dir = TempDir::new("reload-pw");
    let pw = dir.password_file(&[("alice", "old-pw")]);
    let broker = Broker::start_with(&["--password-file", &pw]);
    let port = broker.port();
    // Verified (and remembered by the shard) before the reload: several
    // logins, so that both shards (the kernel spreads connections) hold it.
    for i in 0..6 {
        raw_login(
            port,
            V311,
            &format!("c-warm{i}"),
            Some("alice"),
            Some("old-pw"),
        )
        .ping();
    }
    let mut before = raw_login(port, V311, "c-before", Some("alice"), Some("old-pw"));
    let _ = dir.password_file(&[("alice", "new-pw")]);
    sighup(&broker);
    wait_for(&broker, "reloaded", 1);
    for version in [V311, V5] {
        let code = if version == V5 { 0x86 } else { 0x05 };
        for _ in 0..4 {
            expect_refused(
                port,
                &credentials_connect(version, "c-old", Some("alice"), Some("old-pw"), None),
                code,
            );
        }
        let mut new = raw_login(port, version, "c-new", Some("alice"), Some("new-pw"));
        new.ping();
    }
    // The connection made before the reload is not dropped.
    before.ping();
}

#[test]
fn sighup_recompiles_connected_clients_acls() {
    let dir = TempDir::new("reload-acl");
    let pw = dir.password_file(&[("alice", "a-pw"), ("admin", "ad-pw")]);
    let acl = dir.write(
        "acl",
        "user alice\ntopic readwrite a/#\nuser admin\ntopic readwrite #\n",
    );
    let broker = Broker::start_with(&["--password-file", &pw, "--acl-file", &acl]);
    let port = broker.port();
    let mut alice = raw_login(port, V5, "c-alice", Some("alice"), Some("a-pw"));
    assert_eq!(alice.subscribe(1, &[("a/#", QoS::AtMostOnce)]), vec![0]);
    let mut admin = raw_login(port, V5, "c-admin", Some("admin"), Some("ad-pw"));
    publish(&mut admin, "a/1", b"before");
    expect_publish(&mut alice, "a/1", b"before");

    // alice loses a/# and gains b/#.
    dir.write(
        "acl",
        "user alice\ntopic readwrite b/#\nuser admin\ntopic readwrite #\n",
    );
    sighup(&broker);
    // Each shard recompiles on its next tick.
    wait_for(&broker, "ACLs recompiled", 2);
    publish(&mut admin, "a/2", b"after");
    publish(&mut admin, "b/1", b"other");
    // Her a/# subscription no longer lets a/2 through; her connection is
    // still open (a ping answers).
    alice.ping();
    assert!(
        matches!(
            alice.read_outcome(Duration::from_millis(300)),
            ReadOutcome::TimedOut
        ),
        "a message the new ACL denies was delivered"
    );
    assert_eq!(alice.subscribe(2, &[("b/#", QoS::AtMostOnce)]), vec![0]);
    assert_eq!(alice.subscribe(3, &[("a/#", QoS::AtMostOnce)]), vec![0x87]);
    publish(&mut admin, "b/2", b"now");
    expect_publish(&mut alice, "b/2", b"now");
}

#[test]
fn a_broken_file_keeps_the_previous_version() {
    let dir = TempDir::new("reload-bad");
    let pw = dir.password_file(&[("alice", "a-pw")]);
    let acl = dir.write("acl", "user alice\ntopic readwrite a/#\n");
    let mut broker = Broker::start_with(&["--password-file", &pw, "--acl-file", &acl]);
    let port = broker.port();
    dir.write("acl", "user alice\ntopic sideways a/#\n");
    dir.write("passwd", "alice has no colon\n");
    sighup(&broker);
    wait_for(&broker, "reload failed", 1);
    let deadline = Instant::now() + Duration::from_secs(2);
    while broker.stderr_count("ACLs recompiled") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut alice = raw_login(port, V5, "c-alice", Some("alice"), Some("a-pw"));
    assert_eq!(alice.subscribe(1, &[("a/#", QoS::AtMostOnce)]), vec![0]);
    assert_eq!(alice.subscribe(2, &[("b/#", QoS::AtMostOnce)]), vec![0x87]);
    assert!(broker.is_running(), "the broker exited on a bad reload");
}

fn publish(c: &mut RawV5, topic: &str, payload: &[u8]) {
    c.send_packet(&common::hostile_kit::v5_publish(
        topic,
        QoS::AtMostOnce,
        0,
        payload,
        Default::default(),
    ));
}

fn expect_publish(c: &mut RawV5, topic: &str, payload: &[u8]) {
    match c.read_packet(RECV_TIMEOUT) {
        Packet::Publish(p) => {
            assert_eq!((p.topic.as_ref(), p.payload.as_ref()), (topic, payload));
        }
        other => panic!("expected PUBLISH on {topic}, got {other:?}"),
    }
}
