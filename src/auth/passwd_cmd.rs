//! `ringmq passwd`: add, change or delete a user in a mosquitto password file.
//!
//! `ringmq passwd [-c] [-b] [-D] [-I ITERATIONS] FILE USER [PASSWORD]`, like
//! `mosquitto_passwd`: `-c` creates (or overwrites) the file, `-b` takes the
//! password from the command line, `-D` deletes the user; otherwise the
//! password is asked twice without echo. Other lines are kept byte for byte;
//! the file is replaced atomically (temporary file + rename) with mode 0600.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::password::{hash_password, DEFAULT_ITERATIONS, MAX_ITERATIONS};

const USAGE: &str = "usage: ringmq passwd [-c] [-b] [-D] [-I ITERATIONS] FILE USER [PASSWORD]";

/// Why `ringmq passwd` failed; printed on stderr, exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("{0}\n{USAGE}")]
    Usage(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the password from the terminal: {0}")]
    Prompt(std::io::Error),
    #[error("passwords do not match")]
    Mismatch,
    #[error("user name {0}")]
    BadUser(&'static str),
    #[error("user {0} not found in the password file")]
    UserNotFound(String),
}

#[derive(Debug, PartialEq, Eq)]
struct Options {
    create: bool,
    delete: bool,
    iterations: u32,
    file: PathBuf,
    user: String,
    /// `Some` with `-b`.
    password: Option<String>,
}

/// Runs the command with the arguments after `passwd`; 0 on success, 1
/// with a message on stderr otherwise.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    match parse_args(args).and_then(|o| execute(&o)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringmq passwd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Options, PasswdError> {
    let usage = |m: &str| PasswdError::Usage(m.to_owned());
    let (mut create, mut batch, mut delete) = (false, false, false);
    let mut iterations = DEFAULT_ITERATIONS;
    let mut positional = Vec::new();
    let mut args = args.into_iter();
    let mut flags_done = false;
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|_| usage("arguments must be UTF-8"))?;
        match arg.as_str() {
            "--" if !flags_done => flags_done = true,
            "-c" if !flags_done => create = true,
            "-b" if !flags_done => batch = true,
            "-D" if !flags_done => delete = true,
            "-I" if !flags_done => {
                let n = args.next().and_then(|n| n.into_string().ok());
                iterations = n
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=MAX_ITERATIONS).contains(n))
                    .ok_or_else(|| usage(&format!("-I needs a count in 1..={MAX_ITERATIONS}")))?;
            }
            s if s.starts_with('-') && s.len() > 1 && !flags_done => {
                return Err(usage(&format!("unknown option {s}")))
            }
            _ => positional.push(arg),
        }
    }
    if create && delete {
        return Err(usage("-c and -D cannot be combined"));
    }
    let expected = if batch { 3 } else { 2 };
    if positional.len() != expected {
        return Err(usage(if batch {
            "-b needs FILE USER PASSWORD"
        } else {
            "expected FILE USER (a password on the command line needs -b)"
        }));
    }
    if batch && delete {
        return Err(usage("-D takes no password"));
    }
    let mut positional = positional.into_iter();
    let (file, user) = match (positional.next(), positional.next()) {
        (Some(f), Some(u)) => (PathBuf::from(f), u),
        _ => return Err(usage("expected FILE USER")),
    };
    check_user(&user)?;
    Ok(Options {
        create,
        delete,
        iterations,
        file,
        user,
        password: positional.next(),
    })
}

/// A name that the file format can hold and that reads back as itself.
fn check_user(user: &str) -> Result<(), PasswdError> {
    if user.is_empty() {
        Err(PasswdError::BadUser("must not be empty"))
    } else if user.contains([':', '\n', '\r']) {
        Err(PasswdError::BadUser("must not contain ':' or a line break"))
    } else if user.starts_with('#') || user.trim() != user {
        Err(PasswdError::BadUser(
            "must not start with '#' or blanks, nor end with blanks",
        ))
    } else if user.len() > 65535 {
        Err(PasswdError::BadUser("is longer than 65535 bytes"))
    } else {
        Ok(())
    }
}

fn execute(o: &Options) -> Result<(), PasswdError> {
    let io = |source| PasswdError::Io {
        path: o.file.clone(),
        source,
    };
    let existing = if o.create {
        String::new()
    } else {
        std::fs::read_to_string(&o.file).map_err(io)?
    };
    let line = if o.delete {
        None
    } else {
        let password = match &o.password {
            Some(p) => p.clone(),
            None => prompt()?,
        };
        Some(format!(
            "{}:{}",
            o.user,
            hash_password(password.as_bytes(), o.iterations)
        ))
    };
    let (text, found) = edit(&existing, &o.user, line.as_deref());
    if o.delete && !found {
        return Err(PasswdError::UserNotFound(o.user.clone()));
    }
    write_atomically(&o.file, &text).map_err(io)
}

fn prompt() -> Result<String, PasswdError> {
    let first = rpassword::prompt_password("Password: ").map_err(PasswdError::Prompt)?;
    let second = rpassword::prompt_password("Reenter password: ").map_err(PasswdError::Prompt)?;
    if first != second {
        return Err(PasswdError::Mismatch);
    }
    Ok(first)
}

/// The user name of a `user:hash` line, as `PasswordFile::parse` reads it.
fn line_user(line: &str) -> Option<&str> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    t.split_once(':').map(|(u, _)| u.trim())
}

/// `text` with `user`'s line replaced by `new_line` (appended if absent) or,
/// with `None`, removed; every other line is kept as it was. Also says
/// whether `user` was there. Later duplicates of `user` are dropped so that
/// the result parses.
fn edit(text: &str, user: &str, new_line: Option<&str>) -> (String, bool) {
    let mut out = String::with_capacity(text.len() + 200);
    let mut found = false;
    for line in text.split_inclusive('\n') {
        if line_user(line) != Some(user) {
            out.push_str(line);
            continue;
        }
        if let (Some(new), false) = (new_line, found) {
            out.push_str(new);
            out.push('\n');
        }
        found = true;
    }
    if let (Some(new), false) = (new_line, found) {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(new);
        out.push('\n');
    }
    (out, found)
}

/// Writes a sibling temporary file (0600), syncs it and renames it over
/// `path`, so that a reader sees the old file or the new one, never half.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".ringmq-tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
#[path = "passwd_cmd_tests.rs"]
mod tests;
