//! The broker core, sans-IO: deterministic state machines that take packets,
//! shard messages and the current time, and produce bytes to write and
//! messages to send. Nothing here touches a socket, a clock or a thread, so
//! several shards can be stepped in one test thread (see `shard::tests`).

pub mod access;
pub mod client_index;
pub mod deadlines;
pub mod enhanced_auth;
pub mod error;
pub mod id_map;
pub mod interest;
pub mod limits;
pub mod message;
pub mod placement;
pub mod retain;
pub mod session;
pub mod session_subs;
pub mod shard;
pub mod shard_set;
pub mod shared;
pub mod subscribers;
pub mod topic_alias;
pub mod topic_trie;

pub use access::Access;
pub use error::ProtocolViolation;
pub use message::{Message, ShardMessage};
pub use placement::home_shard;
pub use session::{ConnId, SessionId};
pub use shard::{BrokerLimits, Shard, ShardStats};
