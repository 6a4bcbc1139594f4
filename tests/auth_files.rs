//! Password files against the real mosquitto tools: files written by
//! `mosquitto_passwd` verify with [`PasswordFile`], and a file written by
//! `ringmq passwd` is accepted by a real `mosquitto` broker. Every process
//! runs under a deadline; the broker is killed by a drop guard. Missing
//! mosquitto binaries fail the tests (CI installs them), they never skip.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ringmq::auth::PasswordFile;

const RINGMQ: &str = env!("CARGO_BIN_EXE_ringmq");

fn require(path: &str) -> &str {
    assert!(
        Path::new(path).exists(),
        "{path} not found: install the Debian packages mosquitto and mosquitto-clients"
    );
    path
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringmq-auth-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Runs `cmd` to completion, killing it after `limit`.
fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("wait") {
            Some(_) => return child.wait_with_output().expect("output"),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not finish within {limit:?}");
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn ok(cmd: &mut Command) -> Output {
    let out = run(cmd, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn mosquitto_passwd() -> Command {
    Command::new(require("/usr/bin/mosquitto_passwd"))
}

fn ringmq_passwd() -> Command {
    let mut c = Command::new(RINGMQ);
    c.arg("passwd");
    c
}

#[test]
fn files_from_mosquitto_passwd_verify() {
    let dir = scratch("real");
    let file = dir.join("pw");
    ok(mosquitto_passwd()
        .args(["-c", "-b"])
        .arg(&file)
        .args(["alice", "right one"]));
    ok(mosquitto_passwd()
        .args(["-H", "sha512", "-b"])
        .arg(&file)
        .args(["bob", "b0b"]));
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.contains("alice:$7$101$"), "{text}");
    assert!(text.contains("bob:$6$"), "{text}");
    let pw = PasswordFile::load(&file).expect("parses");
    assert_eq!(pw.len(), 2);
    assert!(pw.verify("alice", b"right one"));
    assert!(!pw.verify("alice", b"wrong"));
    assert!(pw.verify("bob", b"b0b"));
    assert!(!pw.verify("bob", b"right one"));
    assert!(!pw.verify("carol", b"right one"));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// A `mosquitto -c CONF` that is killed when dropped.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first port of 19951–19959 that nothing listens on now.
fn free_port() -> u16 {
    (19951..=19959)
        .find(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, *p)).is_ok())
        .expect("all of ports 19951-19959 are busy")
}

fn start_mosquitto(dir: &Path, password_file: &Path) -> (Broker, u16) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    let text = format!(
        "listener {port} 127.0.0.1\npassword_file {}\nallow_anonymous false\nuser root\n",
        password_file.display()
    );
    std::fs::write(&conf, text).expect("write conf");
    let child = Command::new(require("/usr/sbin/mosquitto"))
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mosquitto");
    let mut broker = Broker(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if let Ok(Some(status)) = broker.0.try_wait() {
            panic!("mosquitto exited early ({status}); password file refused?");
        }
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen on {port} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (broker, port)
}

fn publish(port: u16, user: &str, password: &str) -> Output {
    let port = port.to_string();
    run(
        Command::new(require("/usr/bin/mosquitto_pub"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-q",
                "1",
                "-t",
                "auth/test",
                "-m",
                "hi",
            ])
            .args(["-u", user, "-P", password]),
        Duration::from_secs(15),
    )
}

#[test]
fn mosquitto_accepts_a_file_from_ringmq_passwd() {
    let dir = scratch("broker");
    let file = dir.join("pw");
    ok(ringmq_passwd()
        .args(["-c", "-b"])
        .arg(&file)
        .args(["alice", "s3cret"]));
    ok(ringmq_passwd()
        .args(["-b", "-I", "1000"])
        .arg(&file)
        .args(["bob", "other"]));
    let (broker, port) = start_mosquitto(&dir, &file);
    let right = publish(port, "alice", "s3cret");
    assert!(
        right.status.success(),
        "{}",
        String::from_utf8_lossy(&right.stderr)
    );
    let right = publish(port, "bob", "other");
    assert!(
        right.status.success(),
        "{}",
        String::from_utf8_lossy(&right.stderr)
    );
    let wrong = publish(port, "alice", "wrong");
    assert!(!wrong.status.success(), "a wrong password was accepted");
    let unknown = publish(port, "mallory", "s3cret");
    assert!(!unknown.status.success(), "an unknown user was accepted");
    drop(broker);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn ringmq_passwd_edits_and_deletes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("edit");
    let file = dir.join("pw");
    ok(ringmq_passwd()
        .args(["-c", "-b"])
        .arg(&file)
        .args(["alice", "a"]));
    // The real tool appends to our file, ours then changes and deletes.
    ok(mosquitto_passwd().arg("-b").arg(&file).args(["bob", "b"]));
    ok(ringmq_passwd().arg("-b").arg(&file).args(["alice", "a2"]));
    let mode = std::fs::metadata(&file).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let pw = PasswordFile::load(&file).expect("parses");
    assert!(pw.verify("alice", b"a2") && !pw.verify("alice", b"a") && pw.verify("bob", b"b"));

    ok(ringmq_passwd().arg("-D").arg(&file).arg("bob"));
    let pw = PasswordFile::load(&file).expect("parses");
    assert_eq!(pw.len(), 1);
    assert!(!pw.verify("bob", b"b") && pw.verify("alice", b"a2"));

    let missing = run(
        ringmq_passwd().arg("-D").arg(&file).arg("bob"),
        Duration::from_secs(10),
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
    let usage = run(ringmq_passwd().arg(&file), Duration::from_secs(10));
    assert_eq!(usage.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("usage"));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
