//! Tests for `ringmq passwd`'s argument parsing, editing and file writing.

use super::*;

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

#[test]
fn parses_batch_create() {
    let o = parse_args(args(&["-c", "-b", "f", "alice", "pw"])).expect("valid");
    assert_eq!(
        o,
        Options {
            create: true,
            delete: false,
            iterations: DEFAULT_ITERATIONS,
            file: PathBuf::from("f"),
            user: "alice".into(),
            password: Some("pw".into()),
        }
    );
}

#[test]
fn parses_iterations_and_delete() {
    let o = parse_args(args(&["-I", "1000", "f", "bob"])).expect("valid");
    assert_eq!((o.iterations, o.password), (1000, None));
    assert!(parse_args(args(&["-D", "f", "bob"])).expect("valid").delete);
}

#[test]
fn refuses_bad_arguments() {
    for bad in [
        &["f"][..],
        &["f", "u", "pw"],
        &["-b", "f", "u"],
        &["-c", "-D", "f", "u"],
        &["-D", "-b", "f", "u", "pw"],
        &["-I", "0", "f", "u"],
        &["-I", "99999999999", "f", "u"],
        &["-I"],
        &["-x", "f", "u"],
        &["f", "a:b"],
        &["f", ""],
        &["f", "#x"],
        &["f", " x"],
    ] {
        assert!(parse_args(args(bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn edit_replaces_in_place_and_keeps_other_lines() {
    let text = "# comment\nalice:old\n\nbob:x\nalice:dup\ncarol:y";
    let (out, found) = edit(text, "alice", Some("alice:new"));
    assert!(found);
    assert_eq!(out, "# comment\nalice:new\n\nbob:x\ncarol:y");
}

#[test]
fn edit_appends_a_new_user() {
    assert_eq!(
        edit("bob:x", "al", Some("al:h")),
        ("bob:x\nal:h\n".into(), false)
    );
    assert_eq!(edit("", "al", Some("al:h")), ("al:h\n".into(), false));
}

#[test]
fn edit_deletes() {
    assert_eq!(edit("a:1\nb:2\n", "a", None), ("b:2\n".into(), true));
    assert_eq!(edit("a:1\n", "zz", None), ("a:1\n".into(), false));
}

#[test]
fn writes_0600_and_round_trips() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("ringmq-passwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("pw");
    let o = parse_args(vec![
        OsString::from("-c"),
        OsString::from("-b"),
        OsString::from("-I"),
        OsString::from("2"),
        file.clone().into_os_string(),
        OsString::from("alice"),
        OsString::from("s3cret"),
    ])
    .expect("valid");
    execute(&o).expect("written");
    let mode = std::fs::metadata(&file)
        .expect("exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let pw = crate::auth::PasswordFile::load(&file).expect("parses");
    assert!(pw.verify("alice", b"s3cret"));
    let del = Options {
        create: false,
        delete: true,
        iterations: 1,
        file: file.clone(),
        user: "alice".into(),
        password: None,
    };
    execute(&del).expect("deleted");
    assert!(matches!(execute(&del), Err(PasswdError::UserNotFound(_))));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
