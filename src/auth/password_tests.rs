//! Tests for password files and the verified cache.

use super::error::AuthFileError;
use super::{hash_password, PasswordFile, VerifiedCache};

/// Written by Debian's `mosquitto_passwd` 2.0.11: `-c -b f alice secret`
/// and `-H sha512 -c -b f bob pw`.
const REAL: &str = "alice:$7$101$KPJK6YJcRcXF+0rm$b8WPe9C/+TR+Za2Rs6bpjpWVtt5cMMUDUpiRzEVs1wzRpXt0i3Qdk0GAPfH+Grsexae4bSBIX0BsL9WQ9Vri/Q==\n\
bob:$6$LTOvaa3wocyviSPP$5ltPpxDKoX63TDPRP+CEvFFXTao6aljqPH3x6NhhTeVHxHhvIjd/woApE9SSlOlqglMfuwNKbDBByS/l8tsaLg==\n";

fn err_line(text: &str) -> (usize, String) {
    let e = PasswordFile::parse(text).expect_err("must fail");
    let line = match &e {
        AuthFileError::MissingColon { line }
        | AuthFileError::EmptyUser { line }
        | AuthFileError::DuplicateUser { line, .. }
        | AuthFileError::UnknownHashType { line }
        | AuthFileError::MalformedHash { line, .. }
        | AuthFileError::Iterations { line, .. } => *line,
        other => panic!("unexpected {other}"),
    };
    (line, e.to_string())
}

#[test]
fn verifies_files_from_mosquitto_passwd() {
    let pw = PasswordFile::parse(REAL).expect("parses");
    assert_eq!(pw.len(), 2);
    assert!(pw.verify("alice", b"secret"));
    assert!(!pw.verify("alice", b"secreT"));
    assert!(pw.verify("bob", b"pw"));
    assert!(!pw.verify("bob", b"pw "));
    assert!(!pw.verify("carol", b"secret"));
    assert!(!pw.verify("", b""));
}

#[test]
fn skips_comments_blanks_and_crlf() {
    let text = format!("# users\n\n   \r\n{}", REAL.replace('\n', "\r\n"));
    let pw = PasswordFile::parse(&text).expect("parses");
    assert!(pw.verify("alice", b"secret"));
    assert!(PasswordFile::parse("").expect("empty").is_empty());
}

#[test]
fn errors_name_the_line() {
    let ok = REAL.lines().next().unwrap_or_default();
    let cases: [(String, usize, &str); 8] = [
        (format!("{ok}\n\nnocolon"), 3, "no `:`"),
        (format!("{ok}\n:$7$1$a$b"), 2, "empty user"),
        (format!("{ok}\n{ok}"), 2, "twice"),
        ("u:plaintext".into(), 1, "unknown hash"),
        ("u:$5$abc$def".into(), 1, "unknown hash"),
        ("u:$7$101$c2FsdA==$aGFzaA==".into(), 1, "salt"),
        ("u:$7$0$KPJK6YJcRcXF+0rm$aGFzaA==".into(), 1, "iterations"),
        (
            "u:$7$20000000$KPJK6YJcRcXF+0rm$aGFzaA==".into(),
            1,
            "iterations",
        ),
    ];
    for (text, line, word) in cases {
        let (got, message) = err_line(&text);
        assert_eq!(got, line, "{text}: {message}");
        assert!(message.contains(word), "{message}");
    }
    let (line, _) = err_line("u:$7$abc$KPJK6YJcRcXF+0rm$aGFzaA==");
    assert_eq!(line, 1);
    let (line, _) = err_line("u:$7$101$KPJK6YJcRcXF+0rm");
    assert_eq!(line, 1);
}

#[test]
fn hash_password_round_trips_with_fresh_salts() {
    let a = hash_password(b"pw", 0);
    let b = hash_password(b"pw", 7);
    assert!(a.starts_with("$7$101$"), "{a}");
    assert!(b.starts_with("$7$7$"), "{b}");
    assert_ne!(a[7..23], b[5..21]);
    let pw = PasswordFile::parse(&format!("a:{a}\nb:{b}\n")).expect("parses");
    assert!(pw.verify("a", b"pw") && pw.verify("b", b"pw"));
    assert!(!pw.verify("a", b"px"));
}

#[test]
fn binary_passwords_are_hashed_whole() {
    let h = hash_password(b"a\0b", 1);
    let pw = PasswordFile::parse(&format!("u:{h}")).expect("parses");
    assert!(pw.verify("u", b"a\0b"));
    assert!(!pw.verify("u", b"a"));
}

#[test]
fn hostile_ten_megabyte_lines_fail_fast() {
    let long = "A".repeat(10 << 20);
    assert_eq!(err_line(&long).0, 1);
    assert_eq!(err_line(&format!("u:$7$101${long}$x")).0, 1);
    assert_eq!(err_line(&format!("u:$7${long}$x$y")).0, 1);
    let (_, message) = err_line(&format!("{long}:x"));
    assert!(message.len() < 200);
}

#[test]
fn twenty_thousand_users_parse() {
    let line = REAL
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("alice");
    let text: String = (0..20_000).map(|i| format!("user{i}{line}\n")).collect();
    let pw = PasswordFile::parse(&text).expect("parses");
    assert_eq!(pw.len(), 20_000);
    assert!(pw.verify("user19999", b"secret"));
}

#[test]
fn debug_does_not_print_hashes() {
    let pw = PasswordFile::parse(REAL).expect("parses");
    assert_eq!(format!("{pw:?}"), "PasswordFile(2 users)");
}

#[test]
fn cache_remembers_only_the_verified_password() {
    let mut c = VerifiedCache::new(10);
    assert!(!c.check("alice", b"secret"));
    c.remember("alice", b"secret");
    assert!(c.check("alice", b"secret"));
    assert!(!c.check("alice", b"wrong"));
    assert!(!c.check("bob", b"secret"));
    c.remember("alice", b"changed");
    assert!(!c.check("alice", b"secret"));
    assert!(c.check("alice", b"changed"));
    c.clear();
    assert!(!c.check("alice", b"changed"));
    assert!(c.is_empty());
}

#[test]
fn cache_is_bounded() {
    let mut c = VerifiedCache::new(3);
    for i in 0..100 {
        c.remember(&format!("u{i}"), b"pw");
        assert!(c.len() <= 3);
        assert!(c.check(&format!("u{i}"), b"pw"), "the newest stays");
    }
    let mut none = VerifiedCache::new(0);
    none.remember("u", b"pw");
    assert!(!none.check("u", b"pw"));
    assert_eq!(VerifiedCache::default().len(), 0);
}

#[test]
fn caches_use_different_keys() {
    let a = VerifiedCache::new(1);
    let b = VerifiedCache::new(1);
    assert_ne!(a.tag(b"pw"), b.tag(b"pw"));
}

#[test]
fn types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<PasswordFile>();
    check::<super::AclFile>();
    check::<super::ClientAcl>();
}
