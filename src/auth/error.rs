//! The one error type for reading password and ACL files.

use std::path::PathBuf;

/// Why a password or ACL file was refused. Every variant but `Io` is the
/// file author's fault and names the 1-based line, so that an operator can
/// fix the file; a broker refuses to start (or to reload) on any of them
/// rather than run with half a policy.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line}: expected `user:hash`, found no `:`")]
    MissingColon { line: usize },
    #[error("line {line}: empty user name")]
    EmptyUser { line: usize },
    #[error("line {line}: user `{user}` appears twice")]
    DuplicateUser { line: usize, user: String },
    #[error("line {line}: unknown hash type (expected `$7$` or `$6$`)")]
    UnknownHashType { line: usize },
    #[error("line {line}: malformed hash: {reason}")]
    MalformedHash { line: usize, reason: &'static str },
    #[error("line {line}: {iterations} iterations is outside 1..={max}")]
    Iterations {
        line: usize,
        iterations: u64,
        max: u32,
    },
    #[error("line {line}: unknown keyword `{keyword}`")]
    UnknownKeyword { line: usize, keyword: String },
    #[error("line {line}: `{keyword}` needs an argument")]
    MissingArgument { line: usize, keyword: &'static str },
    #[error("line {line}: unknown access `{word}` (expected read, write, readwrite or deny)")]
    UnknownAccess { line: usize, word: String },
    #[error("line {line}: invalid topic filter `{filter}`")]
    InvalidFilter { line: usize, filter: String },
}

/// At most 64 characters of `s`, for an error message about a hostile line
/// that may be megabytes long.
pub(crate) fn clip(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s.to_owned(),
    }
}
