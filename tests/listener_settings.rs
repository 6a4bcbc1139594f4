//! Per-listener settings from the TOML file (`[[listener]]` tables) end to
//! end: a listener given on the command line takes the top-level password
//! file; a `[[listener]]` table on another port admits anonymous clients
//! and applies its own ACL.

mod common;

use common::auth_kit::*;
use common::hostile_kit::V5;
use common::*;
use ringmq::protocol::QoS;

#[test]
fn listener_tables_have_their_own_auth_and_acl() {
    let dir = TempDir::new("listener-tables");
    let pw = dir.password_file(&[("alice", "a-pw")]);
    let acl = dir.write(
        "acl",
        "topic read public/#\nuser alice\ntopic readwrite #\n",
    );
    let config = dir.write(
        "ringmq.toml",
        &format!(
            "password-file = \"{pw}\"\n\n[[listener]]\nurl = \"mqtt://127.0.0.1:0\"\n\
             allow-anonymous = true\nacl-file = \"{acl}\"\n"
        ),
    );
    let broker = Broker::start_with(&["--config", &config]);
    let ports = broker.mqtt_ports();
    assert_eq!(ports.len(), 2, "two listeners expected: {:?}", ports);
    let (strict, open) = (ports[0], ports[1]);

    // The command-line listener: the top-level password file, no anonymous.
    expect_refused(
        strict,
        &credentials_connect(V5, "anon-1", None, None, None),
        0x87,
    );
    let mut alice = raw_login(strict, V5, "alice-1", Some("alice"), Some("a-pw"));
    // No ACL there: anything goes.
    assert_eq!(
        alice.subscribe(1, &[("private/x", QoS::AtMostOnce)]),
        vec![0]
    );

    // The table's listener: anonymous allowed, its ACL applies.
    let mut anon = raw_login(open, V5, "anon-2", None, None);
    assert_eq!(
        anon.subscribe(
            1,
            &[
                ("public/x", QoS::AtMostOnce),
                ("private/x", QoS::AtMostOnce)
            ]
        ),
        vec![0, 0x87]
    );
    // The password file still applies to clients that give a username.
    expect_refused(
        open,
        &credentials_connect(V5, "alice-2", Some("alice"), Some("wrong"), None),
        0x86,
    );
}
