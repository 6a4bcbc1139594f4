//! mosquitto `acl_file` parsing into an [`AclFile`], shared by all shards.
//!
//! Semantics follow mosquitto 2.0 (`src/security_default.c`), with these
//! deliberate differences, each safer than the original:
//! - A matching `deny` wins over every grant. mosquitto checks a user's own
//!   rules before the patterns, so a user's grant beats a pattern's deny;
//!   here the order of the file and of the kinds never matters.
//! - `topic read` (an access word and no filter) is an error; mosquitto
//!   takes `read` as the filter, which is almost certainly not what the
//!   author meant.
//! - A line that starts with spaces and then `#` is a comment; mosquitto
//!   only skips `#` in the first column.
//! - A `%c`/`%u` value with `+`, `#` or `/` (or one that would move the rule
//!   into the `$` topics) disables the grant patterns that use it and turns
//!   the deny patterns that use it into "deny everything": see
//!   [`AclFile::for_client`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub use super::client_acl::{ClientAcl, SubscribeAccess};
use super::error::{clip, AuthFileError};
use super::topic::is_valid_filter;

/// What a rule grants, or `Deny`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Access {
    fn parse(word: &str) -> Option<Access> {
        match word {
            "read" => Some(Access::Read),
            "write" => Some(Access::Write),
            "readwrite" => Some(Access::ReadWrite),
            "deny" => Some(Access::Deny),
            _ => None,
        }
    }

    pub(crate) fn reads(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }

    pub(crate) fn writes(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

/// One rule with a concrete filter (no `%c`/`%u` left).
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) access: Access,
    pub(crate) filter: Box<str>,
}

/// A `pattern` line, substituted per client.
#[derive(Debug)]
struct Pattern {
    access: Access,
    filter: Box<str>,
    uses_c: bool,
    uses_u: bool,
}

/// A parsed ACL file: immutable, `Send + Sync`, shared in an `Arc`. Each
/// client's view is compiled once at CONNECT by [`AclFile::for_client`].
#[derive(Debug)]
pub struct AclFile {
    /// `topic` lines before the first `user` line: for clients with no
    /// username.
    anonymous: Arc<[Rule]>,
    /// `topic` lines per `user` block; a user named twice gets both blocks.
    users: HashMap<String, Arc<[Rule]>>,
    patterns: Vec<Pattern>,
    empty: Arc<[Rule]>,
}

impl AclFile {
    pub fn load(path: &Path) -> Result<AclFile, AuthFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        AclFile::parse(&text)
    }

    pub fn parse(text: &str) -> Result<AclFile, AuthFileError> {
        let mut anonymous = Vec::new();
        let mut users: HashMap<String, Vec<Rule>> = HashMap::new();
        let mut patterns = Vec::new();
        let mut current: Option<String> = None;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (keyword, rest) = split_word(trimmed);
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(AuthFileError::MissingArgument {
                            line,
                            keyword: "user",
                        });
                    }
                    users.entry(rest.to_owned()).or_default();
                    current = Some(rest.to_owned());
                }
                "topic" => {
                    let rule = parse_rule(line, "topic", rest)?;
                    match &current {
                        Some(user) => users.entry(user.clone()).or_default().push(rule),
                        None => anonymous.push(rule),
                    }
                }
                "pattern" => {
                    let Rule { access, filter } = parse_rule(line, "pattern", rest)?;
                    patterns.push(Pattern {
                        access,
                        uses_c: filter.contains("%c"),
                        uses_u: filter.contains("%u"),
                        filter,
                    });
                }
                other => {
                    return Err(AuthFileError::UnknownKeyword {
                        line,
                        keyword: clip(other),
                    })
                }
            }
        }
        Ok(AclFile {
            anonymous: anonymous.into(),
            users: users.into_iter().map(|(u, r)| (u, r.into())).collect(),
            patterns,
            empty: Arc::from(Vec::new()),
        })
    }

    /// The rules that apply to one client, with `%c`/`%u` substituted.
    ///
    /// A client without a username gets the anonymous block and no pattern
    /// that uses `%u` (as in mosquitto). A value that contains `+`, `#` or
    /// `/`, or that would make a pattern's filter start with `$` when the
    /// pattern itself does not, could widen a pattern into someone else's
    /// topics: the grant patterns that use it are dropped, and a deny pattern
    /// that uses it denies everything, since what it was meant to deny can
    /// no longer be said.
    pub fn for_client(&self, username: Option<&str>, client_id: &str) -> ClientAcl {
        let fixed = match username {
            None => self.anonymous.clone(),
            Some(user) => self.users.get(user).unwrap_or(&self.empty).clone(),
        };
        let mut own = Vec::new();
        let mut deny_all = false;
        for p in &self.patterns {
            if p.uses_u && username.is_none() {
                continue;
            }
            let user = username.unwrap_or("");
            let mut dangerous =
                (p.uses_c && unsafe_value(client_id)) || (p.uses_u && unsafe_value(user));
            let filter = substitute(&p.filter, client_id, user);
            dangerous |= filter.starts_with('$') && !p.filter.starts_with('$');
            if dangerous {
                tracing::debug!(
                    client_id,
                    ?username,
                    "ACL pattern skipped: client id or username has a wildcard, `/` or `$`"
                );
                deny_all |= p.access == Access::Deny;
                continue;
            }
            own.push(Rule {
                access: p.access,
                filter: filter.into_boxed_str(),
            });
        }
        ClientAcl::new(fixed, own, deny_all)
    }
}

/// Splits at the first blank: (first word, rest trimmed).
fn split_word(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    }
}

/// `[ACCESS] FILTER`: with two or more words the first is the access and
/// the rest (spaces included) the filter, as in mosquitto.
fn parse_rule(line: usize, keyword: &'static str, rest: &str) -> Result<Rule, AuthFileError> {
    if rest.is_empty() {
        return Err(AuthFileError::MissingArgument { line, keyword });
    }
    let (word, tail) = split_word(rest);
    let (access, filter) = if tail.is_empty() {
        if Access::parse(word).is_some() {
            return Err(AuthFileError::MissingArgument { line, keyword });
        }
        (Access::ReadWrite, word)
    } else {
        let access = Access::parse(word).ok_or_else(|| AuthFileError::UnknownAccess {
            line,
            word: clip(word),
        })?;
        (access, tail)
    };
    if !is_valid_filter(filter) {
        return Err(AuthFileError::InvalidFilter {
            line,
            filter: clip(filter),
        });
    }
    Ok(Rule {
        access,
        filter: filter.into(),
    })
}

fn unsafe_value(value: &str) -> bool {
    value.contains(['+', '#', '/'])
}

/// Replaces `%c` and `%u` in one left-to-right pass (a value that itself
/// contains `%u` is not substituted again).
fn substitute(pattern: &str, client_id: &str, username: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + client_id.len());
    let mut rest = pattern;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('c') {
            out.push_str(client_id);
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('u') {
            out.push_str(username);
            rest = tail;
        } else {
            out.push('%');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}
