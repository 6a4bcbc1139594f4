//! Why a byte stream could not be decoded as an MQTT packet.
//!
//! Every variant is fatal for the connection: MQTT has no way to skip a bad
//! packet, because framing itself can no longer be trusted. The variants
//! are precise so that logs say what the peer did wrong, and so that a 5.0
//! server can pick the reason code for the DISCONNECT (or CONNACK) it sends
//! before closing ([`DecodeError::reason_code`]).

use super::reason::v5;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The remaining-length varint of the fixed header runs past 4 bytes.
    #[error("malformed remaining length (more than 4 bytes)")]
    MalformedRemainingLength,
    /// Fixed header + remaining length exceed the negotiated maximum.
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge { size: usize, max: usize },
    /// Packet type 0, or AUTH (15) outside MQTT 5.0.
    #[error("invalid packet type {0}")]
    InvalidPacketType(u8),
    /// The low nibble of the fixed header is not what the type requires
    /// [MQTT-2.2.2-1/2], or DUP is set on a QoS 0 PUBLISH [MQTT-3.3.1-2].
    #[error("invalid fixed header flags {flags:#06b} for packet type {packet_type}")]
    InvalidFixedHeaderFlags { packet_type: u8, flags: u8 },
    /// CONNECT protocol name is neither "MQTT" nor "MQIsdp".
    #[error("invalid protocol name")]
    InvalidProtocolName,
    /// CONNECT protocol level this codec does not speak (answer: CONNACK 0x01).
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolLevel(u8),
    /// CONNECT flags violate [MQTT-3.1.2-3], -11, -13, -15 or -22.
    #[error("invalid CONNECT flags")]
    InvalidConnectFlags,
    /// A QoS field (PUBLISH header, Will QoS) holds the value 3.
    #[error("invalid QoS 3")]
    InvalidQoS,
    /// A string is not well-formed UTF-8 or contains U+0000 [MQTT-1.5.3-1/2].
    #[error("invalid UTF-8 string")]
    InvalidUtf8,
    /// A topic name (PUBLISH, Will) that is empty or contains wildcards.
    #[error("invalid topic name")]
    InvalidTopicName,
    /// A packet identifier that must be non-zero is zero [MQTT-2.2.1-3].
    #[error("packet identifier is zero")]
    ZeroPacketId,
    /// SUBSCRIBE or UNSUBSCRIBE without any topic filter [MQTT-3.8.3-3].
    #[error("SUBSCRIBE/UNSUBSCRIBE without topic filters")]
    EmptySubscription,
    /// Reserved bits set, QoS 3 or Retain Handling 3 in subscription options.
    #[error("invalid subscription options")]
    InvalidSubscriptionOptions,
    /// An unknown property id, or one the packet kind does not allow.
    #[error("property {id:#04x} not allowed here")]
    InvalidProperty { id: u8 },
    /// A property that may appear once appears twice.
    #[error("duplicate property {id:#04x}")]
    DuplicateProperty { id: u8 },
    /// A property whose value is out of its allowed range.
    #[error("invalid value for property {id:#04x}")]
    InvalidPropertyValue { id: u8 },
    /// Any other structural problem: truncated fields, trailing bytes...
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
}

impl DecodeError {
    /// The MQTT 5.0 reason code a server reports for this error, following
    /// the spec's split between "Malformed Packet" (cannot be parsed as the
    /// spec describes) and "Protocol Error" (parsed, but not allowed).
    pub fn reason_code(&self) -> u8 {
        match self {
            DecodeError::PacketTooLarge { .. } => v5::PACKET_TOO_LARGE,
            DecodeError::InvalidProtocolName | DecodeError::UnsupportedProtocolLevel(_) => {
                v5::UNSUPPORTED_PROTOCOL_VERSION
            }
            DecodeError::InvalidTopicName => v5::TOPIC_NAME_INVALID,
            DecodeError::ZeroPacketId
            | DecodeError::EmptySubscription
            | DecodeError::DuplicateProperty { .. }
            | DecodeError::InvalidPropertyValue { .. } => v5::PROTOCOL_ERROR,
            DecodeError::MalformedRemainingLength
            | DecodeError::InvalidPacketType(_)
            | DecodeError::InvalidFixedHeaderFlags { .. }
            | DecodeError::InvalidConnectFlags
            | DecodeError::InvalidQoS
            | DecodeError::InvalidUtf8
            | DecodeError::InvalidSubscriptionOptions
            | DecodeError::InvalidProperty { .. }
            | DecodeError::Malformed(_) => v5::MALFORMED_PACKET,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes() {
        assert_eq!(DecodeError::Malformed("x").reason_code(), 0x81);
        assert_eq!(DecodeError::MalformedRemainingLength.reason_code(), 0x81);
        assert_eq!(DecodeError::ZeroPacketId.reason_code(), 0x82);
        assert_eq!(DecodeError::DuplicateProperty { id: 1 }.reason_code(), 0x82);
        assert_eq!(
            DecodeError::PacketTooLarge { size: 2, max: 1 }.reason_code(),
            0x95
        );
        assert_eq!(DecodeError::UnsupportedProtocolLevel(6).reason_code(), 0x84);
        assert_eq!(DecodeError::InvalidTopicName.reason_code(), 0x90);
        assert_eq!(DecodeError::InvalidUtf8.reason_code(), 0x81);
    }
}
