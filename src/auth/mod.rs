//! Authentication and authorisation from mosquitto-format files, sans-IO.
//!
//! - [`password`]: `password_file` parsing and verification (`$7$`
//!   PBKDF2-HMAC-SHA512 and `$6$` salted SHA-512), [`hash_password`] for
//!   `ringmq passwd`.
//! - [`cache`]: a per-shard [`VerifiedCache`] so that a reconnecting device
//!   does not pay PBKDF2 again.
//! - [`acl`]: `acl_file` parsing, compiled once per client at CONNECT into a
//!   [`ClientAcl`] that answers publish, delivery and subscribe checks
//!   without touching the file again.
//! - [`topic`]: the MQTT filter algebra the ACL needs (match, cover,
//!   intersect), iterative so that hostile depth cannot blow the stack.
//! - [`passwd_cmd`]: the `ringmq passwd` command line, like
//!   `mosquitto_passwd`.
//!
//! Nothing here knows glommio; only `load` and `passwd_cmd` touch the disk.

pub mod acl;
pub mod cache;
mod client_acl;
mod error;
pub mod passwd_cmd;
pub mod password;
pub mod topic;

#[cfg(test)]
mod acl_tests;
#[cfg(test)]
mod password_tests;
#[cfg(test)]
mod topic_tests;

pub use acl::{AclFile, ClientAcl, SubscribeAccess};
pub use cache::VerifiedCache;
pub use error::AuthFileError;
pub use password::{hash_password, PasswordFile};
