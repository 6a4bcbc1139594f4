//! The MQTT wire codec: 3.1, 3.1.1 and 5.0 control packets.
//!
//! [`decode`] frames and parses one packet from a read buffer without
//! copying: strings, binary data and payloads in the returned [`Packet`]
//! are slices of the buffer it came from. It rejects everything the specs
//! call malformed or a protocol error that can be seen in one packet alone
//! (stateful rules such as topic alias ranges are the session's job).
//! [`encode`] writes any packet; [`encode_publish`] is the allocation-free
//! path for the broker's fan-out.

pub mod decode;
pub mod encode;
pub mod error;
pub mod packet;
pub mod properties;
pub mod reason;
pub mod strings;
pub mod topic;
pub mod varint;

pub use decode::decode;
pub use encode::{encode, encode_publish};
pub use error::DecodeError;
pub use packet::*;
pub use topic::{valid_topic_filter, valid_topic_name};

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod roundtrip_tests;
