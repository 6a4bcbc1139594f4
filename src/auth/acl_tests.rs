//! Tests for ACL files and per-client checks.

use super::error::AuthFileError;
use super::{AclFile, SubscribeAccess};
use SubscribeAccess::{Denied, Granted, GrantedChecked};

const FILE: &str = "\
# anonymous clients
topic read public/#
topic write anon/in

pattern deny devices/%c/locked
user alice
topic readwrite alice/#
topic deny alice/secret
topic read shared/+/status
topic write spaced topic/x
topic readwrite devices/#

user bob
topic bob/#
topic read $SYS/broker/#
topic read #

pattern readwrite devices/%c/#
pattern read users/%u/inbox
";

fn acl() -> AclFile {
    AclFile::parse(FILE).expect("parses")
}

fn error_line(text: &str) -> usize {
    match AclFile::parse(text).expect_err("must fail") {
        AuthFileError::UnknownKeyword { line, .. }
        | AuthFileError::MissingArgument { line, .. }
        | AuthFileError::UnknownAccess { line, .. }
        | AuthFileError::InvalidFilter { line, .. } => line,
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn anonymous_block_applies_only_without_username() {
    let anon = acl().for_client(None, "c1");
    assert!(anon.may_read("public/news"));
    assert!(!anon.may_publish("public/news"));
    assert!(anon.may_publish("anon/in"));
    assert!(!anon.may_read("anon/in"));
    assert!(anon.may_publish("devices/c1/temp"), "%c patterns apply");
    assert!(!anon.may_read("users//inbox"), "%u patterns do not");
    let carol = acl().for_client(Some("carol"), "c2");
    assert!(!carol.may_read("public/news"));
    assert!(carol.may_read("users/carol/inbox"));
    assert!(!carol.may_read("users/alice/inbox"));
}

#[test]
fn rule_kinds() {
    let alice = acl().for_client(Some("alice"), "c1");
    assert!(alice.may_read("alice/x") && alice.may_publish("alice/x/y"));
    assert!(alice.may_read("alice"), "`#` includes the parent");
    assert!(alice.may_read("shared/k/status") && !alice.may_publish("shared/k/status"));
    assert!(alice.may_publish("spaced topic/x") && !alice.may_read("spaced topic/x"));
    let bob = acl().for_client(Some("bob"), "c3");
    assert!(
        bob.may_publish("bob/x") && bob.may_read("bob/x"),
        "no access word = readwrite"
    );
    assert!(!bob.may_publish("alice/x"));
    assert!(!alice.may_publish("a/+"), "wildcards are not topic names");
}

#[test]
fn deny_wins_wherever_it_is() {
    let alice = acl().for_client(Some("alice"), "c1");
    assert!(!alice.may_read("alice/secret") && !alice.may_publish("alice/secret"));
    assert!(alice.may_read("alice/secret/sub"));
    // The pattern deny comes before the user block and beats its grant.
    assert!(alice.may_publish("devices/c9/locked"));
    assert!(!alice.may_publish("devices/c1/locked"));
    assert!(!alice.may_read("devices/c1/locked"));
}

#[test]
fn dollar_topics_need_a_dollar_rule() {
    let bob = acl().for_client(Some("bob"), "c3");
    assert!(bob.may_read("anything/at/all"));
    assert!(
        !bob.may_read("$SYS/uptime"),
        "`#` does not reach `$` topics"
    );
    assert!(bob.may_read("$SYS/broker/uptime"));
    assert_eq!(bob.may_subscribe("$SYS/#"), GrantedChecked);
    assert_eq!(bob.may_subscribe("$SYS/broker/+"), Granted);
    assert_eq!(bob.may_subscribe("$other/#"), Denied);
    // The pattern `deny devices/%c/locked` applies to bob too.
    assert_eq!(bob.may_subscribe("#"), GrantedChecked);
    assert_eq!(bob.may_subscribe("bob/#"), Granted);
}

#[test]
fn dangerous_ids_disable_their_patterns() {
    let file =
        AclFile::parse("pattern readwrite devices/%c/#\npattern read u/%u\n").expect("parses");
    for id in ["+", "#", "a/b", "x+y"] {
        let c = file.for_client(Some("u1"), id);
        assert!(!c.may_read("devices/other/x"), "{id}");
        assert!(!c.may_read(&format!("devices/{id}/x")), "{id}");
        assert_eq!(c.may_subscribe("devices/#"), Denied, "{id}");
        assert!(c.may_read("u/u1"), "{id}: the %u pattern still applies");
    }
    let c = file.for_client(Some("a/b"), "ok");
    assert!(!c.may_read("u/a/b") && c.may_read("devices/ok/x"));
    let dollar = AclFile::parse("pattern read %c/#").expect("parses");
    assert!(!dollar.for_client(None, "$SYS").may_read("$SYS/x"));
    assert!(dollar.for_client(None, "dev").may_read("dev/x"));
}

#[test]
fn a_dangerous_id_under_a_deny_pattern_denies_everything() {
    let file = AclFile::parse("topic read #\npattern deny secret/%c/#\n").expect("parses");
    assert!(file.for_client(None, "ok").may_read("public"));
    let c = file.for_client(None, "a/b");
    assert!(!c.may_read("public"));
    assert_eq!(c.may_subscribe("public"), Denied);
}

#[test]
fn substitution_is_one_pass() {
    let file = AclFile::parse("pattern read x/%u/%c/%%c/%x").expect("parses");
    let c = file.for_client(Some("%c"), "id");
    assert!(c.may_read("x/%c/id/%id/%x"));
}

#[test]
fn subscribe_coverage() {
    let alice = acl().for_client(Some("alice"), "c1");
    assert_eq!(alice.may_subscribe("alice/x/+"), Granted);
    assert_eq!(
        alice.may_subscribe("alice/#"),
        GrantedChecked,
        "deny alice/secret overlaps"
    );
    assert_eq!(alice.may_subscribe("alice/+"), GrantedChecked);
    assert_eq!(alice.may_subscribe("alice/secret"), Denied);
    assert_eq!(alice.may_subscribe("shared/+/status"), Granted);
    assert_eq!(
        alice.may_subscribe("shared/#"),
        GrantedChecked,
        "narrower read rule"
    );
    assert_eq!(alice.may_subscribe("#"), GrantedChecked);
    assert_eq!(alice.may_subscribe("nothing/#"), Denied);
    assert_eq!(alice.may_subscribe("spaced topic/x"), Denied, "write only");
    assert_eq!(alice.may_subscribe("$share/g/alice/x/+"), Granted);
    assert_eq!(alice.may_subscribe("$share/g/nothing"), Denied);
    assert_eq!(alice.may_subscribe("$share/g"), Denied);
    assert_eq!(alice.may_subscribe("$share//alice/x"), Denied);
    assert_eq!(alice.may_subscribe("alice/#/x"), Denied, "invalid filter");
}

#[test]
fn parse_errors_name_the_line() {
    assert_eq!(error_line("topic a\n\nbogus a"), 3);
    assert_eq!(error_line("user"), 1);
    assert_eq!(error_line("# c\ntopic"), 2);
    assert_eq!(error_line("topic read"), 1);
    assert_eq!(error_line("topic a\ntopic foo bar"), 2);
    assert_eq!(error_line("pattern read a/#/b"), 1);
    assert_eq!(error_line("topic a+"), 1);
    assert!(AclFile::parse("\n  # indented comment\n\t\n").is_ok());
}

#[test]
fn repeated_user_blocks_merge() {
    let file = AclFile::parse("user a\ntopic x\nuser b\ntopic y\nuser a\ntopic z").expect("parses");
    let a = file.for_client(Some("a"), "c");
    assert!(a.may_read("x") && a.may_read("z") && !a.may_read("y"));
}

#[test]
fn hostile_inputs() {
    let long = format!("topic read {}", "a".repeat(10 << 20));
    let file = AclFile::parse(&long).expect("one long filter");
    assert!(file.for_client(None, "c").may_read(&"a".repeat(10 << 20)));
    assert!(matches!(
        AclFile::parse(&"x".repeat(10 << 20)),
        Err(AuthFileError::UnknownKeyword { line: 1, keyword }) if keyword.len() < 100
    ));
    let many: String = (0..100_000)
        .map(|i| format!("topic read t/{i}\n"))
        .collect();
    let many = AclFile::parse(&format!("user u\n{many}")).expect("100k rules");
    let c = many.for_client(Some("u"), "c");
    assert!(c.may_read("t/99999") && !c.may_read("t/100000"));
    let deep = format!("{}#", "a/".repeat(50_000));
    let file = AclFile::parse(&format!("topic read {deep}\ntopic deny {deep}")).expect("deep");
    let c = file.for_client(None, "c");
    assert!(!c.may_read(&format!("{}x", "a/".repeat(50_000))));
    assert!(!c.may_read("a/a"));
    assert_eq!(c.may_subscribe(&deep), Denied);
    assert_eq!(c.may_subscribe("a/#"), GrantedChecked);
}
