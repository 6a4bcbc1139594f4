//! Command line, its validation, and the loopback-only target.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use clap::{Parser, ValueEnum};
use ringmq::protocol::{ProtocolVersion, QoS};

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// N publishers → N subscribers, one topic per pair.
    P2p,
    /// P publishers → S subscribers, all on one topic.
    Fanout,
    /// P publishers (one topic each) → S subscribers of `bench/fanin/+`.
    Fanin,
    /// C idle connections opened at R/s, held, then closed.
    Storm,
    /// Bounded attack phases (deep topics, duplicate filters with readers
    /// that never read, ping flood, connection storm) while a probe client
    /// measures latency; then: is the broker alive, does it still serve.
    Hostile,
    /// Many slow publishers (a topic each, `bench/fanin/<i>`) → a few consumers of
    /// `bench/fanin/+` (or one `$share` group with `--shared`), at the totals of `--rates`.
    IotFanin,
    /// `--pairs` low-rate publisher/subscriber pairs, a topic each, at the totals of `--rates`.
    IotPairs,
    /// Clients that connect, publish one message, disconnect; `--rates` in connections/s.
    Churn,
    /// `--connections` clients each holding one subscription and pinging every `--keepalive` s.
    IdleFleet,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Ws,
}

#[derive(Parser, Debug, Clone)]
#[command(
    about = "MQTT load generator (loopback only): p2p, fanout, fanin, storm, hostile, \
             iot-fanin, iot-pairs, churn, idle-fleet",
    after_help = "The many-connection scenarios (iot-fanin, iot-pairs, churn, idle-fleet) run \
                  MQTT 3.1.1 or 5 over TCP or TLS (--tls-ca), QoS 0 or 1, a few threads each driving \
                  thousands of non-blocking connections."
)]
pub struct Args {
    #[arg(long, value_enum, default_value = "p2p")]
    pub scenario: Scenario,
    /// Broker host: loopback only (127.0.0.0/8, ::1, localhost).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    #[arg(long, value_enum, default_value = "tcp")]
    pub transport: Transport,
    /// WebSocket path (with --transport ws).
    #[arg(long, default_value = "/mqtt")]
    pub ws_path: String,
    /// MQTT protocol: 3 (3.1.1) or 5.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(3..=5))]
    pub mqtt: u8,
    /// QoS of publishes and subscriptions: 0, 1 or 2.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// p2p, iot-pairs (default 5,000): publisher/subscriber pairs (p2p: same as
    /// --publishers N --subscribers N).
    #[arg(long)]
    pub pairs: Option<usize>,
    /// Publishing connections (p2p default 4, fanout 1, fanin 16, iot-fanin 1,000).
    #[arg(long)]
    pub publishers: Option<usize>,
    /// Subscribing connections (p2p: = publishers, fanout default 16, fanin 2, iot-fanin 1).
    #[arg(long)]
    pub subscribers: Option<usize>,
    /// fanin, iot-fanin: the subscribers form one group, `$share/g/.../fanin/+`, so each
    /// message should arrive once at the group.
    #[arg(long)]
    pub shared: bool,
    /// Payload bytes (at least 16; the first 20 carry ts, publisher id, seq when they fit).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Messages per second per publisher; 0 = as fast as flow control allows.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// QoS 1/2: unacknowledged publishes per publisher (1..=65535).
    #[arg(long, default_value_t = 64)]
    pub inflight: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds to wait for the last deliveries after publishing stops (at most 5).
    #[arg(long, default_value_t = 5)]
    pub drain: u64,
    /// Seconds a connection (TCP, upgrade, CONNACK, SUBACK) may take.
    #[arg(long, default_value_t = 5)]
    pub connect_timeout: u64,
    /// storm (default 1,000), idle-fleet (default 15,000): connections to open.
    #[arg(long)]
    pub connections: Option<usize>,
    /// storm (default 500), fleet scenarios (default 5,000): connections opened per second
    /// (0 = as fast as possible).
    #[arg(long)]
    pub connect_rate: Option<u64>,
    /// iot-fanin, iot-pairs: total offered msg/s of each step; churn: connections/s of each
    /// step (comma-separated, e.g. 20000,40000,80000).
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<u64>,
    /// Seconds each step of --rates lasts.
    #[arg(long, default_value_t = 5)]
    pub step_secs: u64,
    /// churn: client connections in progress at most (an offered start beyond it is skipped
    /// and counted).
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// idle-fleet: keep-alive seconds; each client sends PINGREQ this often.
    #[arg(long, default_value_t = 60)]
    pub keepalive: u16,
    /// idle-fleet: seconds of measurement once every client has pinged once.
    #[arg(long, default_value_t = 60)]
    pub window: u64,
    /// storm: seconds to hold the connections idle once all are open.
    #[arg(long, default_value_t = 5)]
    pub hold: u64,
    /// storm: client threads holding the sockets; fleet scenarios: publishing threads
    /// (subscribers get threads of their own).
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Broker process id: report its CPU seconds and RSS (from /proc).
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Also write the JSON result to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Label copied into the result.
    #[arg(long, default_value = "broker")]
    pub label: String,
    /// PEM file of the CA that signed the broker's certificate: every client connects over
    /// TLS (rustls; TCP transport; all scenarios but hostile).
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// With --tls-ca: the client certificate chain (PEM) to present; needs --tls-key.
    #[arg(long, requires = "tls_ca")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// With --tls-cert: its private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// With --tls-ca: the name the broker's certificate must carry.
    #[arg(long, default_value = "localhost")]
    pub tls_server_name: String,
    /// With --tls-ca: resume sessions from tickets of earlier connections (default: every
    /// connection makes a full handshake).
    #[arg(long, requires = "tls_ca")]
    pub tls_resume: bool,
}

/// Validated settings derived from [`Args`].
#[derive(Debug, Clone)]
pub struct Config {
    pub args: Args,
    pub target: SocketAddr,
    pub version: ProtocolVersion,
    pub qos: QoS,
    pub publishers: usize,
    pub subscribers: usize,
    /// storm, idle-fleet: connections to open.
    pub connections: usize,
    pub connect_rate: u64,
    /// `--tls-ca`: connect over TLS.
    pub tls: Option<crate::tls::TlsClient>,
}

impl Config {
    pub fn ws_path(&self) -> Option<&str> {
        (self.args.transport == Transport::Ws).then_some(self.args.ws_path.as_str())
    }
}

/// Most publishing/subscribing connections (one thread or two each).
pub const MAX_PUBSUB_CONNECTIONS: usize = 1000;

pub fn parse() -> Result<Config, String> {
    validate(Args::parse())
}

/// Checks `args` and derives the [`Config`].
pub fn validate(args: Args) -> Result<Config, String> {
    let ip = loopback_ip(&args.host)
        .ok_or_else(|| format!("refusing non-loopback host {:?}", args.host))?;
    let version = match args.mqtt {
        3 | 4 => ProtocolVersion::V311,
        _ => ProtocolVersion::V5,
    };
    let qos = QoS::from_u8(args.qos).ok_or("--qos must be 0, 1 or 2")?;
    if args.payload < 16 {
        return Err("--payload must be at least 16".into());
    }
    if args.inflight == 0 || args.inflight > 65535 {
        return Err("--inflight must be 1..=65535".into());
    }
    if args.drain > 5 {
        return Err("--drain is at most 5 seconds".into());
    }
    if args.shared && !matches!(args.scenario, Scenario::Fanin | Scenario::IotFanin) {
        return Err("--shared only applies to --scenario fanin or iot-fanin".into());
    }
    let tls = crate::tls::TlsClient::from_args(&args)?;
    if tls.is_some() && (args.transport != Transport::Tcp || args.scenario == Scenario::Hostile) {
        return Err("--tls-ca: TCP transport only, and not with --scenario hostile".into());
    }
    if crate::fleet_args::is_fleet(args.scenario) {
        let mut cfg = crate::fleet_args::validate(args, SocketAddr::new(ip, 0), version, qos)?;
        cfg.tls = tls;
        return Ok(cfg);
    }
    let (publishers, subscribers) = match args.scenario {
        Scenario::P2p => {
            let n = args.pairs.or(args.publishers).unwrap_or(4);
            if args.subscribers.is_some_and(|s| s != n) {
                return Err("p2p: --subscribers must equal --publishers".into());
            }
            (n, n)
        }
        Scenario::Fanout => (args.publishers.unwrap_or(1), args.subscribers.unwrap_or(16)),
        Scenario::Fanin => (args.publishers.unwrap_or(16), args.subscribers.unwrap_or(2)),
        _ => (0, 0),
    };
    if args.scenario == Scenario::Hostile {
        if args.transport != Transport::Tcp {
            return Err("hostile: TCP only (its clients set the socket's receive buffer)".into());
        }
    } else if args.scenario != Scenario::Storm {
        if publishers == 0 || subscribers == 0 {
            return Err("need at least one publisher and one subscriber".into());
        }
        if publishers + subscribers > MAX_PUBSUB_CONNECTIONS {
            return Err(format!(
                "at most {MAX_PUBSUB_CONNECTIONS} publishing+subscribing connections \
                 (one thread each); use --scenario storm for many connections"
            ));
        }
    } else if args.connections == Some(0) || args.threads == 0 {
        return Err("storm: --connections and --threads must be at least 1".into());
    }
    Ok(Config {
        target: SocketAddr::new(ip, args.port),
        connections: args.connections.unwrap_or(1000),
        connect_rate: args.connect_rate.unwrap_or(500),
        args,
        version,
        qos,
        publishers,
        subscribers,
        tls,
    })
}

/// The address of a loopback host, `None` for anything else.
pub fn loopback_ip(host: &str) -> Option<IpAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Some(ip),
        Ok(_) => None,
        Err(_) if host.eq_ignore_ascii_case("localhost") => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Err(_) => None,
    }
}

/// Source address for the `i`-th connection: 127.0.0.x with x from 2 up,
/// a new x every `PER_ADDR` connections, so one address's ephemeral ports
/// never run out; `::1` for an IPv6 target.
pub fn source_ip(target: IpAddr, i: usize) -> IpAddr {
    const PER_ADDR: usize = 10_000;
    match target {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i / PER_ADDR % 253) as u8)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        assert!(loopback_ip("127.0.0.1").is_some());
        assert!(loopback_ip("127.3.2.1").is_some());
        assert!(loopback_ip("::1").is_some());
        assert!(loopback_ip("[::1]").is_some());
        assert!(loopback_ip("localhost").is_some());
        assert!(loopback_ip("10.0.0.1").is_none());
        assert!(loopback_ip("example.com").is_none());
        assert!(loopback_ip("0.0.0.0").is_none());
    }

    #[test]
    fn source_addresses_spread() {
        let t = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(source_ip(t, 0).to_string(), "127.0.0.2");
        assert_eq!(source_ip(t, 10_000).to_string(), "127.0.0.3");
    }
}
