//! Set-up shared by the benches that drive a broker core directly.

use bytestring::ByteString;
use ringmq::broker::{BrokerLimits, ConnId, Shard};
use ringmq::protocol::{
    Connect, Packet, ProtocolVersion, QoS, Subscribe, SubscriptionOptions, SubscriptionRequest,
};

/// A clean-session 3.1.1 client without keepalive or will.
pub fn connect(shard: &mut Shard, client_id: String) -> ConnId {
    shard.connect(
        Connect {
            protocol: ProtocolVersion::V311,
            clean_start: true,
            keep_alive: 0,
            client_id: ByteString::from(client_id),
            will: None,
            username: None,
            password: None,
            properties: None,
        },
        0,
    )
}

/// A one-shard core with a publisher and `subscribers` clients subscribed
/// to `topic` at `qos` (their CONNACK/SUBACK left in their outboxes).
pub fn fanout_shard(
    subscribers: usize,
    topic: &'static str,
    qos: QoS,
) -> (Shard, ConnId, Vec<ConnId>) {
    let mut shard = Shard::new(0, 1, BrokerLimits::default());
    let publisher = connect(&mut shard, "publisher".into());
    let subscribers = (0..subscribers)
        .map(|i| {
            let conn = connect(&mut shard, format!("subscriber-{i}"));
            let _ = shard.handle_packet(
                conn,
                Packet::Subscribe(Subscribe {
                    packet_id: 1,
                    filters: vec![SubscriptionRequest {
                        filter: ByteString::from_static(topic),
                        options: SubscriptionOptions {
                            qos,
                            no_local: false,
                            retain_as_published: false,
                            retain_handling: 0,
                        },
                    }],
                    properties: None,
                }),
                0,
            );
            conn
        })
        .collect();
    (shard, publisher, subscribers)
}
