//! mosquitto `password_file` parsing and verification (`$7$` and `$6$`).
//!
//! The formats, as `mosquitto_passwd` 2.0 writes them and
//! `src/security_default.c` reads them (salt 12 bytes, hash 64 bytes,
//! standard base64):
//! - `user:$7$ITERATIONS$SALT$HASH`: PBKDF2-HMAC-SHA512 (the default).
//! - `user:$6$SALT$HASH`: SHA-512(password ‖ salt) (`-H sha512`, and
//!   mosquitto 1.6 and earlier).
//!
//! mosquitto hashes `strlen(password)` bytes, so it stops at a NUL; here the
//! whole MQTT password is hashed. The two differ only for passwords with a
//! NUL byte, which `mosquitto_passwd` cannot write.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use super::error::AuthFileError;

/// mosquitto's default PBKDF2 iteration count.
pub const DEFAULT_ITERATIONS: u32 = 101;
/// The most iterations a file may ask for. A hostile or corrupt file with
/// `$7$4000000000$...` must not make each CONNECT burn minutes of CPU; ten
/// million is already ~10 s per check and far above any sane setting.
pub const MAX_ITERATIONS: u32 = 10_000_000;
const SALT_LEN: usize = 12;
const HASH_LEN: usize = 64;

/// Standard alphabet; padding optional on input (mosquitto decodes with
/// OpenSSL, which does not insist), always written.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Clone)]
enum StoredHash {
    Pbkdf2 {
        iterations: u32,
        salt: [u8; SALT_LEN],
        hash: [u8; HASH_LEN],
    },
    Sha512 {
        salt: [u8; SALT_LEN],
        hash: [u8; HASH_LEN],
    },
}

/// A PBKDF2 hash with the iteration count most common among `users`
/// (the default when none has one): what unknown users are checked
/// against, so that timing does not tell which user names exist.
fn dummy_like(users: &HashMap<String, StoredHash>) -> StoredHash {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for stored in users.values() {
        if let StoredHash::Pbkdf2 { iterations, .. } = stored {
            *counts.entry(*iterations).or_default() += 1;
        }
    }
    let iterations = counts
        .into_iter()
        .max_by_key(|&(iterations, n)| (n, iterations))
        .map_or(DEFAULT_ITERATIONS, |(iterations, _)| iterations);
    StoredHash::Pbkdf2 {
        iterations,
        salt: [0; SALT_LEN],
        hash: [0; HASH_LEN],
    }
}

impl StoredHash {
    fn parse(field: &str, line: usize) -> Result<StoredHash, AuthFileError> {
        let bad = |reason| AuthFileError::MalformedHash { line, reason };
        if let Some(rest) = field.strip_prefix("$7$") {
            let mut parts = rest.split('$');
            let (Some(iter), Some(salt), Some(hash), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("expected $7$ITERATIONS$SALT$HASH"));
            };
            let iterations: u64 = iter
                .parse()
                .map_err(|_| bad("iteration count is not a number"))?;
            let iterations = u32::try_from(iterations)
                .ok()
                .filter(|n| (1..=MAX_ITERATIONS).contains(n))
                .ok_or(AuthFileError::Iterations {
                    line,
                    iterations,
                    max: MAX_ITERATIONS,
                })?;
            Ok(StoredHash::Pbkdf2 {
                iterations,
                salt: decode(salt).ok_or(bad("salt is not 12 bytes of base64"))?,
                hash: decode(hash).ok_or(bad("hash is not 64 bytes of base64"))?,
            })
        } else if let Some(rest) = field.strip_prefix("$6$") {
            let Some((salt, hash)) = rest.split_once('$') else {
                return Err(bad("expected $6$SALT$HASH"));
            };
            Ok(StoredHash::Sha512 {
                salt: decode(salt).ok_or(bad("salt is not 12 bytes of base64"))?,
                hash: decode(hash).ok_or(bad("hash is not 64 bytes of base64"))?,
            })
        } else {
            Err(AuthFileError::UnknownHashType { line })
        }
    }

    fn verify(&self, password: &[u8]) -> bool {
        let mut out = [0u8; HASH_LEN];
        let expected = match self {
            StoredHash::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out);
                hash
            }
            StoredHash::Sha512 { salt, hash } => {
                out.copy_from_slice(
                    &Sha512::new()
                        .chain_update(password)
                        .chain_update(salt)
                        .finalize(),
                );
                hash
            }
        };
        out.ct_eq(expected).into()
    }
}

fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    // A field longer than this cannot be N bytes: refuse before decoding a
    // hostile 10 MB line.
    if text.len() > N * 4 / 3 + 4 {
        return None;
    }
    B64.decode(text).ok()?.try_into().ok()
}

/// A parsed password file: user → stored hash. Immutable once parsed,
/// `Send + Sync`, shared by every shard.
#[derive(Clone)]
pub struct PasswordFile {
    users: HashMap<String, StoredHash>,
    /// What an unknown user is checked against: PBKDF2 with the iteration
    /// count most of the file's users have, so that a name that is not
    /// there costs what one that is costs.
    dummy: StoredHash,
}

/// Lists nothing but the count: hashes are secrets too.
impl fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordFile({} users)", self.users.len())
    }
}

impl PasswordFile {
    pub fn load(path: &Path) -> Result<PasswordFile, AuthFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        PasswordFile::parse(&text)
    }

    /// Blank lines and lines starting with `#` are skipped; every other line
    /// must be a valid `user:hash`. Unlike mosquitto, which drops a bad line
    /// with a log message, a bad line is an error: a user silently locked
    /// out is harder to debug than a refused file.
    pub fn parse(text: &str) -> Result<PasswordFile, AuthFileError> {
        let mut users = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (user, field) = trimmed
                .split_once(':')
                .ok_or(AuthFileError::MissingColon { line })?;
            let user = user.trim();
            if user.is_empty() {
                return Err(AuthFileError::EmptyUser { line });
            }
            let hash = StoredHash::parse(field.trim(), line)?;
            if users.insert(user.to_owned(), hash).is_some() {
                return Err(AuthFileError::DuplicateUser {
                    line,
                    user: super::error::clip(user),
                });
            }
        }
        let dummy = dummy_like(&users);
        Ok(PasswordFile { users, dummy })
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Slow on purpose (PBKDF2): callers run it off the shard's executor.
    /// Constant-time comparison (subtle); an unknown user costs the same
    /// work as a known one with the default iteration count and returns
    /// false.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(stored) => stored.verify(password),
            None => {
                std::hint::black_box(self.dummy.verify(password));
                false
            }
        }
    }
}

/// A `$7$` hash field for `ringmq passwd` (the part after `user:`), with a
/// random 12-byte salt. `iterations` 0 means [`DEFAULT_ITERATIONS`]; more
/// than [`MAX_ITERATIONS`] is capped so that the file stays loadable.
///
/// # Panics
/// If the operating system has no randomness to give (`getrandom` fails):
/// a predictable salt would be worse than no hash.
pub fn hash_password(password: &[u8], iterations: u32) -> String {
    let iterations = match iterations {
        0 => DEFAULT_ITERATIONS,
        n => n.min(MAX_ITERATIONS),
    };
    let mut salt = [0u8; SALT_LEN];
    getrandom::getrandom(&mut salt).expect("the OS random source failed");
    let mut hash = [0u8; HASH_LEN];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, iterations, &mut hash);
    format!("$7${iterations}${}${}", B64.encode(salt), B64.encode(hash))
}
