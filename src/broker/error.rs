//! Why the broker core closed a connection.

use thiserror::Error;

/// A client broke a rule of the protocol; the broker closes its connection
/// (and publishes its will) and goes on serving everyone else.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolViolation {
    #[error("second CONNECT on one connection [MQTT-3.1.0-2]")]
    SecondConnect,
    #[error("a server never receives {0}")]
    UnexpectedPacket(&'static str),
    #[error("will topic is not a valid topic name")]
    InvalidWillTopic,
    #[error("PUBLISH topic is empty and carries no topic alias")]
    EmptyTopic,
    #[error("No Local set on a shared subscription [MQTT-3.8.3-4]")]
    NoLocalOnSharedSubscription,
    #[error("topic alias {0} stands for no topic yet")]
    TopicAliasUnknown(u16),
    #[error("DISCONNECT sets a session expiry on a session that had none [MQTT-3.14.2-2]")]
    SessionExpiryAfterZero,

    #[error("client id is empty but the session is persistent [MQTT-3.1.3-8]")]
    EmptyClientIdNotClean,
    #[error("keepalive expired (no packet within 1.5 x keepalive)")]
    KeepAliveTimeout,
    #[error("PUBLISH topic is longer or deeper than --max-topic-length / --max-topic-levels")]
    TopicTooLarge,
    #[error("a client PUBLISH carries a Subscription Identifier [MQTT-3.3.4-6]")]
    SubscriptionIdentifierFromClient,
    #[error("topic alias {0} is above the broker's Topic Alias Maximum")]
    TopicAliasInvalid(u16),
    #[error("more QoS 2 messages awaiting PUBREL than --receive-maximum")]
    ReceiveMaximumExceeded,
}

impl ProtocolViolation {
    /// The MQTT 5 reason code for a DISCONNECT sent to a 5.0 client.
    pub fn reason_code(&self) -> u8 {
        match self {
            ProtocolViolation::KeepAliveTimeout => 0x8D,
            ProtocolViolation::InvalidWillTopic | ProtocolViolation::TopicTooLarge => 0x90,
            ProtocolViolation::TopicAliasInvalid(_) => 0x94,
            ProtocolViolation::ReceiveMaximumExceeded => 0x93,
            ProtocolViolation::EmptyClientIdNotClean => 0x85,
            _ => 0x82,
        }
    }
}
