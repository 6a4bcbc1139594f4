//! # ringmq
//!
//! A thread-per-core MQTT 3.1.1/5.0 broker on io_uring (glommio).
//!
//! A tour, from the wire inwards:
//! - [`protocol`]: the MQTT codec, sans-IO and zero-copy: `decode` turns a
//!   `BytesMut` into a [`protocol::Packet`] whose strings and payload are
//!   slices of the read buffer; `encode` writes one back.
//! - [`broker`]: the broker core, sans-IO and deterministic. A
//!   [`broker::Shard`] owns its connections' sessions and subscriptions and
//!   a replica of the interest index and retained store; shards talk only
//!   through [`broker::ShardMessage`]s.
//! - [`server`]: the only code that knows glommio: one executor per core,
//!   listeners bound by every shard (SO_REUSEPORT), per-connection reader and
//!   writer tasks, and the channel mesh between shards.
//! - [`config`]: the command line and TOML file.
//! - [`auth`]: mosquitto-format password and ACL files, sans-IO: verified
//!   off the shard's executor, compiled per client at CONNECT.
//! - [`proxy_protocol`]: the HAProxy PROXY v1/v2 header a load balancer
//!   puts before the MQTT stream, parsed sans-IO so listeners learn the
//!   real client address.
//!
//! `docs/ARCHITECTURE.md` draws a PUBLISH's path through all of it.

pub mod auth;
pub mod broker;
pub mod config;
pub mod protocol;
pub mod proxy_protocol;
pub mod server;
pub mod websocket;
