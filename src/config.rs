//! Command line and configuration file.
//!
//! Every option can be given on the command line or, with the same name, in
//! a TOML file passed with `--config` (`max-inflight = 64`). The command
//! line wins over the file, the file over the defaults.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use thiserror::Error;

use crate::broker::retain::RetainLimits;
use crate::broker::shared::Strategy;
use crate::broker::BrokerLimits;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error(
        "listener {0:?}: expected mqtt://HOST:PORT, ws://HOST:PORT/PATH, mqtts://HOST:PORT or \
         wss://HOST:PORT/PATH (optionally followed by ?proxy-protocol)"
    )]
    BadListener(String),
    #[error("listener {0:?}: cannot resolve the address")]
    Unresolvable(String),
    #[error("{0}")]
    Invalid(String),
}

/// ringmq: a thread-per-core MQTT broker on io_uring.
#[derive(Debug, Parser, Default)]
#[command(version, about)]
pub struct Cli {
    /// TOML file with any of the options below (same names).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listener URL, repeatable: mqtt://HOST:PORT, or ws://HOST:PORT/PATH for
    /// MQTT over WebSocket (path default /mqtt; repeat with other paths to
    /// serve several on one port). Port 0 picks a free port (the `ready` line
    /// tells which). Default: mqtt://127.0.0.1:1883.
    #[arg(long = "listen")]
    pub listen: Vec<String>,
    /// Number of shards (one executor thread each, pinned to a core).
    /// Default: one per available core.
    #[arg(long)]
    pub shards: Option<usize>,
    /// Largest packet accepted, in bytes (fixed header included); announced
    /// to MQTT 5 clients. Default 2 MiB: a 1 MiB payload with its headers.
    #[arg(long)]
    pub max_packet_size: Option<usize>,
    /// Topic aliases per MQTT 5 connection, each way (Topic Alias Maximum).
    #[arg(long)]
    pub max_topic_alias: Option<u16>,
    /// Longest keepalive granted, in seconds: an MQTT 5 client asking for
    /// more (or 0) is told this one (Server Keep Alive). Default 65535.
    #[arg(long)]
    pub max_keepalive: Option<u16>,
    /// Outbound QoS 1/2 messages in flight per client.
    #[arg(long)]
    pub max_inflight: Option<usize>,
    /// Messages queued per session behind the in-flight window or while
    /// the client is offline; beyond it QoS 1/2 messages are dropped and
    /// counted (with a warning).
    #[arg(long)]
    pub max_queued: Option<usize>,
    /// Bytes of payload and topic queued per session (same treatment as
    /// --max-queued).
    #[arg(long)]
    pub max_queued_bytes: Option<usize>,
    /// Bytes waiting to be written to one client: beyond, QoS 0 messages to
    /// it are dropped, QoS 1/2 messages wait in its session queue, and the
    /// broker stops reading from it.
    #[arg(long)]
    pub max_outbox_bytes: Option<usize>,
    /// Most levels in a topic name or filter (deeper ones are refused).
    #[arg(long)]
    pub max_topic_levels: Option<usize>,
    /// Longest topic name or filter, in bytes.
    #[arg(long)]
    pub max_topic_length: Option<usize>,
    /// Subscriptions per client (SUBACK failure beyond).
    #[arg(long)]
    pub max_subscriptions: Option<usize>,
    /// Longest client identifier accepted, in bytes.
    #[arg(long)]
    pub max_client_id_len: Option<usize>,
    /// Inbound QoS 2 messages a client may have awaiting PUBREL (announced
    /// to 5.0 clients as Receive Maximum); one more closes the connection.
    #[arg(long)]
    pub receive_maximum: Option<u16>,
    /// Seconds a client may leave data the broker has for it unread before
    /// it is disconnected (its will published). 0: never.
    #[arg(long)]
    pub write_timeout: Option<u64>,
    /// Retained messages kept (each shard's replica); a retained publish to
    /// a new topic beyond it is delivered but not stored.
    #[arg(long)]
    pub max_retained_messages: Option<usize>,
    /// Bytes of retained topics and payloads kept (same treatment).
    #[arg(long)]
    pub max_retained_bytes: Option<usize>,
    /// Resident memory (bytes) at which the broker stops reading from
    /// publishers and refuses new connections until it falls. Default: 80%
    /// of physical memory; 0: no mark.
    #[arg(long)]
    pub max_memory: Option<u64>,
    /// New connections per second accepted from one IP address (a token
    /// bucket per shard). 0: no limit.
    #[arg(long)]
    pub max_connect_rate: Option<u32>,
    /// Connections accepted at once, over all shards.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Seconds a new connection has to send its CONNECT.
    #[arg(long)]
    pub connect_timeout: Option<u64>,
    /// How a shared subscription group's member is chosen for a message:
    /// round-robin (default), least-inflight, or local (the publisher's
    /// shard first).
    #[arg(long, value_enum)]
    pub shared_strategy: Option<Strategy>,
    /// Milliseconds a client may stay silent before its connection is
    /// parked: its task and buffers are freed and the socket waits in the
    /// shard's epoll set until it is readable or has output. 0: never park.
    #[arg(long)]
    pub park_after_ms: Option<u64>,
    /// Reads plus writes per second below which a TCP connection is served
    /// light: without tasks, from the shard's epoll set, its packets
    /// handled inline as they come (a device that publishes or pings now
    /// and then). Needs parking (--park-after-ms not 0). 0: never light.
    #[arg(long)]
    pub light_below: Option<u32>,
    /// Microseconds a busy connection's next read or write waits for the
    /// shard's shared tick, so that it takes everything that came meanwhile
    /// in one syscall (less CPU per message, up to one tick more latency
    /// per hop under load). 0: serve everything as it comes.
    #[arg(long)]
    pub pace_us: Option<u64>,
    /// Log filter (tracing EnvFilter syntax): error, warn, info, debug...
    #[arg(long)]
    pub log_level: Option<String>,
    /// io_uring registered memory per shard, in bytes (network I/O does not
    /// use it; glommio takes at least 64 KiB).
    #[arg(long)]
    pub io_memory: Option<usize>,
    /// WebSocket: allowed Origin header values (repeatable). Default: any.
    /// Requests without Origin (non-browser clients) are always allowed.
    #[arg(long = "ws-allowed-origin")]
    pub ws_allowed_origins: Vec<String>,
    /// WebSocket: proxies whose X-Forwarded-For / X-Real-IP are believed
    /// (repeatable IP addresses).
    #[arg(long = "trusted-proxy")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// WebSocket: seconds a client has to finish the HTTP upgrade.
    #[arg(long)]
    pub ws_handshake_timeout: Option<u64>,
    /// WebSocket: largest message (sum of its frames) in bytes. Default: the
    /// max packet size.
    #[arg(long)]
    pub ws_max_message: Option<usize>,
    /// WebSocket: do not serve the built-in page on GET /.
    #[arg(long)]
    pub no_ws_page: bool,
    /// TLS listeners (mqtts://, wss://): the server's certificate chain
    /// (PEM). Reloaded on SIGHUP.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// TLS listeners: the server's private key (PEM: PKCS#8, RSA or SEC1).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// TLS listeners: CA certificates (PEM) that client certificates must
    /// chain to; with it every TLS client must present a valid one.
    #[arg(long)]
    pub tls_client_ca: Option<PathBuf>,
    /// TLS listeners: the client certificate's subject CN is the client's
    /// username (and authenticates it: no password is asked).
    #[arg(long)]
    pub tls_identity_as_username: bool,
    /// mosquitto-format password file (`user:$7$...`, see `ringmq passwd`):
    /// clients must authenticate. Reloaded on SIGHUP.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// With --password-file: also accept clients that give no username.
    /// (Without a password file every client is accepted.)
    #[arg(long)]
    pub allow_anonymous: bool,
    /// mosquitto-format ACL file (`user`, `topic`, `pattern` lines).
    /// Reloaded on SIGHUP.
    #[arg(long)]
    pub acl_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    listen: Option<Vec<String>>,
    shards: Option<usize>,
    max_packet_size: Option<usize>,
    max_topic_alias: Option<u16>,
    max_keepalive: Option<u16>,
    max_inflight: Option<usize>,
    max_queued: Option<usize>,
    max_queued_bytes: Option<usize>,
    max_outbox_bytes: Option<usize>,
    max_topic_levels: Option<usize>,
    max_topic_length: Option<usize>,
    max_subscriptions: Option<usize>,
    max_client_id_len: Option<usize>,
    receive_maximum: Option<u16>,
    write_timeout: Option<u64>,
    max_retained_messages: Option<usize>,
    max_retained_bytes: Option<usize>,
    max_memory: Option<u64>,
    max_connect_rate: Option<u32>,
    max_connections: Option<usize>,
    connect_timeout: Option<u64>,
    park_after_ms: Option<u64>,
    light_below: Option<u32>,
    shared_strategy: Option<Strategy>,
    pace_us: Option<u64>,
    log_level: Option<String>,
    io_memory: Option<usize>,
    ws_allowed_origins: Option<Vec<String>>,
    trusted_proxies: Option<Vec<std::net::IpAddr>>,
    ws_handshake_timeout: Option<u64>,
    ws_max_message: Option<usize>,
    no_ws_page: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    tls_identity_as_username: Option<bool>,
    password_file: Option<PathBuf>,
    allow_anonymous: Option<bool>,
    acl_file: Option<PathBuf>,
    /// `[[listener]]` tables: listeners with settings of their own.
    listener: Option<Vec<FileListener>>,
}

/// One `[[listener]]` table: a listener URL and the settings it does not
/// take from the top level (mosquitto's `per_listener_settings`).
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileListener {
    url: String,
    proxy_protocol: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    tls_identity_as_username: Option<bool>,
    password_file: Option<PathBuf>,
    allow_anonymous: Option<bool>,
    acl_file: Option<PathBuf>,
}

/// The command line's value, else the file's, else the default.
fn pick<T>(cli: Option<T>, file: Option<T>, default: T) -> T {
    cli.or(file).unwrap_or(default)
}

/// 80% of physical memory (`MemTotal`), the default --max-memory: the
/// broker holds back before the kernel's OOM killer would end it. 0 (no
/// mark) when /proc/meminfo cannot be read.
fn default_max_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024 / 10 * 8)
        })
        .unwrap_or(0)
}

/// Transport of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Mqtt,
    /// MQTT over WebSocket (RFC 6455, MQTT-6.0).
    Ws,
    /// MQTT over TLS.
    Mqtts,
    /// MQTT over WebSocket over TLS.
    Wss,
}

impl Scheme {
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Mqtts | Scheme::Wss)
    }

    pub fn is_ws(self) -> bool {
        matches!(self, Scheme::Ws | Scheme::Wss)
    }

    fn prefix(self) -> &'static str {
        match self {
            Scheme::Mqtt => "mqtt://",
            Scheme::Ws => "ws://",
            Scheme::Mqtts => "mqtts://",
            Scheme::Wss => "wss://",
        }
    }
}

/// A TLS listener's files (reloaded on SIGHUP).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates are required and verified against these CAs.
    pub client_ca: Option<PathBuf>,
    /// The client certificate's CN is the username.
    pub identity_as_username: bool,
}

/// Who may connect to a listener and what they may do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthSettings {
    pub password_file: Option<PathBuf>,
    pub acl_file: Option<PathBuf>,
    /// Clients without a username are accepted even with a password file.
    pub allow_anonymous: bool,
}

impl AuthSettings {
    /// Whether a client that gives no username (and no certificate
    /// identity) is accepted: always without a password file.
    pub fn anonymous_ok(&self) -> bool {
        self.password_file.is_none() || self.allow_anonymous
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub scheme: Scheme,
    pub addr: SocketAddr,
    /// WebSocket upgrade paths served (empty for mqtt:// and mqtts://).
    pub paths: Vec<String>,
    /// Connections start with a PROXY protocol v1/v2 header (HAProxy, a
    /// cloud load balancer) that gives the client's real address.
    pub proxy_protocol: bool,
    /// Set for mqtts:// and wss:// (validated by `Config::validate`).
    pub tls: Option<TlsFiles>,
    pub auth: AuthSettings,
}

impl ListenerSpec {
    pub fn parse(url: &str) -> Result<ListenerSpec, ConfigError> {
        let bad = || ConfigError::BadListener(url.to_string());
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url, None),
        };
        let proxy_protocol = match query {
            None => false,
            Some("proxy-protocol") => true,
            Some(_) => return Err(bad()),
        };
        let (scheme, rest) = [Scheme::Mqtt, Scheme::Ws, Scheme::Mqtts, Scheme::Wss]
            .into_iter()
            .find_map(|s| base.strip_prefix(s.prefix()).map(|rest| (s, rest)))
            .or_else(|| base.strip_prefix("tcp://").map(|rest| (Scheme::Mqtt, rest)))
            .ok_or_else(bad)?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let paths = if scheme.is_ws() {
            if path.is_empty() || path == "/" {
                vec!["/mqtt".to_string()]
            } else {
                vec![path.to_string()]
            }
        } else if path.len() > 1 {
            return Err(bad());
        } else {
            Vec::new()
        };
        let addr = hostport
            .to_socket_addrs()
            .map_err(|_| ConfigError::Unresolvable(url.to_string()))?
            .next()
            .ok_or_else(|| ConfigError::Unresolvable(url.to_string()))?;
        Ok(ListenerSpec {
            scheme,
            addr,
            paths,
            proxy_protocol,
            tls: None,
            auth: AuthSettings::default(),
        })
    }

    pub fn url(&self) -> String {
        let prefix = self.scheme.prefix();
        if self.scheme.is_ws() {
            self.paths
                .iter()
                .map(|p| format!("{prefix}{}{p}", self.addr))
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            format!("{prefix}{}", self.addr)
        }
    }
}

/// Top-level (or command-line) security settings, which listeners take
/// unless their `[[listener]]` table says otherwise.
#[derive(Debug, Clone, Default)]
struct SecurityDefaults {
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    tls_identity_as_username: bool,
    password_file: Option<PathBuf>,
    acl_file: Option<PathBuf>,
    allow_anonymous: bool,
}

impl SecurityDefaults {
    /// Gives `spec` these settings, `own` (a `[[listener]]` table) first.
    fn apply(&self, spec: &mut ListenerSpec, own: Option<&FileListener>) {
        let own_path = |f: fn(&FileListener) -> &Option<PathBuf>, d: &Option<PathBuf>| {
            own.and_then(|o| f(o).clone()).or_else(|| d.clone())
        };
        let own_bool = |f: fn(&FileListener) -> Option<bool>, d: bool| own.and_then(f).unwrap_or(d);
        if let Some(o) = own {
            spec.proxy_protocol |= o.proxy_protocol.unwrap_or(false);
        }
        if spec.scheme.is_tls() {
            spec.tls = Some(TlsFiles {
                cert: own_path(|o| &o.tls_cert, &self.tls_cert).unwrap_or_default(),
                key: own_path(|o| &o.tls_key, &self.tls_key).unwrap_or_default(),
                client_ca: own_path(|o| &o.tls_client_ca, &self.tls_client_ca),
                identity_as_username: own_bool(
                    |o| o.tls_identity_as_username,
                    self.tls_identity_as_username,
                ),
            });
        }
        spec.auth = AuthSettings {
            password_file: own_path(|o| &o.password_file, &self.password_file),
            acl_file: own_path(|o| &o.acl_file, &self.acl_file),
            allow_anonymous: own_bool(|o| o.allow_anonymous, self.allow_anonymous),
        };
    }
}

/// One listener per scheme, address and settings; WebSocket paths given for
/// the same listener are served by one. Listeners that differ in settings
/// stay apart (two on port 0 get a port each; two on one port are refused
/// by `validate`).
fn merge_listeners(specs: Vec<ListenerSpec>) -> Vec<ListenerSpec> {
    let mut out: Vec<ListenerSpec> = Vec::new();
    for spec in specs {
        match out.iter_mut().find(|l| {
            l.scheme == spec.scheme
                && l.addr == spec.addr
                && l.proxy_protocol == spec.proxy_protocol
                && l.tls == spec.tls
                && l.auth == spec.auth
        }) {
            Some(existing) => {
                for p in spec.paths {
                    if !existing.paths.contains(&p) {
                        existing.paths.push(p);
                    }
                }
            }
            None => out.push(spec),
        }
    }
    out
}

/// WebSocket listener settings.
#[derive(Debug, Clone)]
pub struct WsConfig {
    pub allowed_origins: Option<Vec<String>>,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub handshake_timeout: Duration,
    pub max_message: usize,
    pub serve_page: bool,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listeners: Vec<ListenerSpec>,
    pub shards: usize,
    pub max_packet_size: usize,
    pub limits: BrokerLimits,
    pub max_connections: usize,
    pub connect_timeout: Duration,
    /// How long a client may leave pending output unread; `None`: forever.
    pub write_timeout: Option<Duration>,
    /// Resident-memory high-water mark in bytes; 0: none.
    pub max_memory: u64,
    /// New connections per second per source IP and shard; 0: no limit.
    pub max_connect_rate: u32,
    /// Silence after which a connection is parked; `None`: never.
    pub park_after: Option<Duration>,
    /// Reads plus writes per second under which a connection is served
    /// light (`server::light`); 0: never.
    pub light_below: u32,
    pub shared_strategy: Strategy,
    /// The pacer's tick; zero: no pacing.
    pub pace: Duration,
    pub log_level: String,
    pub io_memory: usize,
    pub ws: WsConfig,
}

impl Config {
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            None => FileConfig::default(),
        };
        let defaults = BrokerLimits::default();
        let security = SecurityDefaults {
            tls_cert: cli.tls_cert.or(file.tls_cert),
            tls_key: cli.tls_key.or(file.tls_key),
            tls_client_ca: cli.tls_client_ca.or(file.tls_client_ca),
            tls_identity_as_username: cli.tls_identity_as_username
                || file.tls_identity_as_username.unwrap_or(false),
            password_file: cli.password_file.or(file.password_file),
            acl_file: cli.acl_file.or(file.acl_file),
            allow_anonymous: cli.allow_anonymous || file.allow_anonymous.unwrap_or(false),
        };
        let own_tables = file.listener.unwrap_or_default();
        let listen = if cli.listen.is_empty() {
            file.listen.unwrap_or_else(|| {
                if own_tables.is_empty() {
                    vec!["mqtt://127.0.0.1:1883".to_string()]
                } else {
                    Vec::new()
                }
            })
        } else {
            cli.listen
        };
        let mut specs = Vec::new();
        for url in &listen {
            let mut spec = ListenerSpec::parse(url)?;
            security.apply(&mut spec, None);
            specs.push(spec);
        }
        for table in &own_tables {
            let mut spec = ListenerSpec::parse(&table.url)?;
            security.apply(&mut spec, Some(table));
            specs.push(spec);
        }
        let listeners = merge_listeners(specs);
        let max_packet_size = cli
            .max_packet_size
            .or(file.max_packet_size)
            .unwrap_or(defaults.max_packet_size);
        let origins = if cli.ws_allowed_origins.is_empty() {
            file.ws_allowed_origins.unwrap_or_default()
        } else {
            cli.ws_allowed_origins
        };
        let ws = WsConfig {
            allowed_origins: (!origins.is_empty()).then_some(origins),
            trusted_proxies: if cli.trusted_proxies.is_empty() {
                file.trusted_proxies.unwrap_or_default()
            } else {
                cli.trusted_proxies
            },
            handshake_timeout: Duration::from_secs(
                cli.ws_handshake_timeout
                    .or(file.ws_handshake_timeout)
                    .unwrap_or(10)
                    .max(1),
            ),
            max_message: cli
                .ws_max_message
                .or(file.ws_max_message)
                .unwrap_or(max_packet_size),
            serve_page: !(cli.no_ws_page || file.no_ws_page.unwrap_or(false)),
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let config = Config {
            listeners,
            shards: cli.shards.or(file.shards).unwrap_or(cores),
            max_packet_size,
            limits: BrokerLimits {
                max_inflight: pick(cli.max_inflight, file.max_inflight, defaults.max_inflight),
                max_queued: pick(cli.max_queued, file.max_queued, defaults.max_queued),
                max_queued_bytes: pick(
                    cli.max_queued_bytes,
                    file.max_queued_bytes,
                    defaults.max_queued_bytes,
                ),
                max_outbox_bytes: pick(
                    cli.max_outbox_bytes,
                    file.max_outbox_bytes,
                    defaults.max_outbox_bytes,
                ),
                max_topic_levels: pick(
                    cli.max_topic_levels,
                    file.max_topic_levels,
                    defaults.max_topic_levels,
                ),
                max_topic_length: pick(
                    cli.max_topic_length,
                    file.max_topic_length,
                    defaults.max_topic_length,
                ),
                max_subscriptions: pick(
                    cli.max_subscriptions,
                    file.max_subscriptions,
                    defaults.max_subscriptions,
                ),
                max_client_id_len: pick(
                    cli.max_client_id_len,
                    file.max_client_id_len,
                    defaults.max_client_id_len,
                ),
                receive_maximum: pick(
                    cli.receive_maximum,
                    file.receive_maximum,
                    defaults.receive_maximum,
                ),
                max_packet_size,
                max_topic_alias: pick(
                    cli.max_topic_alias,
                    file.max_topic_alias,
                    defaults.max_topic_alias,
                ),
                max_keepalive: pick(
                    cli.max_keepalive,
                    file.max_keepalive,
                    defaults.max_keepalive,
                ),
                retained: RetainLimits {
                    max_messages: pick(
                        cli.max_retained_messages,
                        file.max_retained_messages,
                        defaults.retained.max_messages,
                    ),
                    max_bytes: pick(
                        cli.max_retained_bytes,
                        file.max_retained_bytes,
                        defaults.retained.max_bytes,
                    ),
                },
            },
            max_connections: cli
                .max_connections
                .or(file.max_connections)
                .unwrap_or(1_000_000),
            connect_timeout: Duration::from_secs(
                cli.connect_timeout.or(file.connect_timeout).unwrap_or(10),
            ),
            write_timeout: match pick(cli.write_timeout, file.write_timeout, 30) {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            max_memory: cli
                .max_memory
                .or(file.max_memory)
                .unwrap_or_else(default_max_memory),
            max_connect_rate: pick(cli.max_connect_rate, file.max_connect_rate, 0),
            park_after: match cli.park_after_ms.or(file.park_after_ms).unwrap_or(2000) {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            light_below: pick(cli.light_below, file.light_below, 50),
            shared_strategy: cli
                .shared_strategy
                .or(file.shared_strategy)
                .unwrap_or_default(),
            pace: Duration::from_micros(cli.pace_us.or(file.pace_us).unwrap_or(1000)),
            log_level: cli
                .log_level
                .or(file.log_level)
                .unwrap_or_else(|| "info".to_string()),
            io_memory: cli.io_memory.or(file.io_memory).unwrap_or(64 << 10),
            ws,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.limits.max_topic_levels == 0 || self.limits.max_topic_length == 0 {
            return Err(ConfigError::Invalid(
                "--max-topic-levels and --max-topic-length must be at least 1".into(),
            ));
        }
        if self.limits.receive_maximum == 0 {
            return Err(ConfigError::Invalid(
                "--receive-maximum must be at least 1".into(),
            ));
        }
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.listeners.is_empty() {
            return bad("at least one --listen is needed");
        }
        for (i, l) in self.listeners.iter().enumerate() {
            if l.addr.port() != 0 && self.listeners[..i].iter().any(|o| o.addr == l.addr) {
                return Err(ConfigError::Invalid(format!(
                    "{} is given for two listeners (transports or settings differ); each port serves one",
                    l.addr
                )));
            }
        }
        for l in &self.listeners {
            self.validate_security(l)?;
        }
        if self.shards == 0 || self.shards > crate::broker::shard_set::MAX_SHARDS {
            return bad("--shards must be between 1 and 256");
        }
        if !(16..=268_435_460).contains(&self.max_packet_size) {
            return bad("--max-packet-size must be between 16 and 268435460");
        }
        if self.limits.max_inflight == 0 || self.limits.max_inflight > 65_000 {
            return bad("--max-inflight must be between 1 and 65000");
        }
        if self.pace > Duration::from_millis(100) {
            return bad("--pace-us must be at most 100000 (100 ms)");
        }
        if self.connect_timeout.is_zero() {
            return bad("--connect-timeout must be at least 1 second");
        }
        Ok(())
    }

    fn validate_security(&self, l: &ListenerSpec) -> Result<(), ConfigError> {
        let url = l.url();
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if let Some(tls) = &l.tls {
            if tls.cert.as_os_str().is_empty() || tls.key.as_os_str().is_empty() {
                return invalid(format!(
                    "{url}: a TLS listener needs --tls-cert and --tls-key"
                ));
            }
            if tls.identity_as_username && tls.client_ca.is_none() {
                return invalid(format!(
                    "{url}: --tls-identity-as-username needs --tls-client-ca (client certificates)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_cli_precedence() {
        let dir = std::env::temp_dir().join(format!("ringmq-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ringmq.toml");
        std::fs::write(
            &path,
            "shards = 3\nmax-inflight = 7\nlisten = [\"mqtt://127.0.0.1:0\"]\n",
        )
        .unwrap();
        let cli = Cli {
            config: Some(path.clone()),
            max_inflight: Some(9),
            ..Default::default()
        };
        let cfg = Config::from_cli(cli).unwrap();
        assert_eq!(cfg.shards, 3);
        assert_eq!(cfg.limits.max_inflight, 9);
        assert_eq!(cfg.listeners[0].addr.port(), 0);
        std::fs::write(&path, "bogus-key = 1\n").unwrap();
        let err = Config::from_cli(Cli {
            config: Some(path),
            ..Default::default()
        });
        assert!(matches!(err, Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn pacing_and_parking_options() {
        let cfg = Config::from_cli(Cli::default()).unwrap();
        assert_eq!(cfg.pace, Duration::from_millis(1));
        assert_eq!(cfg.park_after, Some(Duration::from_secs(2)));
        let cfg = Config::from_cli(Cli {
            pace_us: Some(0),
            park_after_ms: Some(0),
            ..Default::default()
        })
        .unwrap();
        assert!(cfg.pace.is_zero());
        assert_eq!(cfg.park_after, None);
        let err = Config::from_cli(Cli {
            pace_us: Some(200_000),
            ..Default::default()
        });
        assert!(matches!(err, Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn listener_urls() {
        assert_eq!(
            ListenerSpec::parse("mqtt://127.0.0.1:1883")
                .unwrap()
                .addr
                .port(),
            1883
        );
        assert_eq!(
            ListenerSpec::parse("mqtt://[::1]:1884").unwrap().url(),
            "mqtt://[::1]:1884"
        );
        assert!(matches!(
            ListenerSpec::parse("http://x:1"),
            Err(ConfigError::BadListener(_))
        ));
        let ws = ListenerSpec::parse("ws://127.0.0.1:8083").unwrap();
        assert_eq!(
            (ws.scheme, ws.paths.clone()),
            (Scheme::Ws, vec!["/mqtt".to_string()])
        );
        let merged = merge_listeners(vec![
            ws,
            ListenerSpec::parse("ws://127.0.0.1:8083/other").unwrap(),
            ListenerSpec::parse("mqtt://127.0.0.1:8083").unwrap(),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(
            merged[0].url(),
            "ws://127.0.0.1:8083/mqtt ws://127.0.0.1:8083/other"
        );
    }

    #[test]
    fn tls_and_proxy_listener_urls() {
        let l = ListenerSpec::parse("mqtts://127.0.0.1:8883").unwrap();
        assert_eq!((l.scheme, l.proxy_protocol), (Scheme::Mqtts, false));
        assert_eq!(l.url(), "mqtts://127.0.0.1:8883");
        let l = ListenerSpec::parse("wss://127.0.0.1:443?proxy-protocol").unwrap();
        assert_eq!((l.scheme, l.proxy_protocol), (Scheme::Wss, true));
        assert_eq!(l.url(), "wss://127.0.0.1:443/mqtt");
        assert!(ListenerSpec::parse("mqtt://127.0.0.1:1?other").is_err());
        // A TLS listener needs its files.
        let err = Config::from_cli(Cli {
            listen: vec!["mqtts://127.0.0.1:0".into()],
            ..Default::default()
        });
        assert!(matches!(err, Err(ConfigError::Invalid(_))));
        let err = Config::from_cli(Cli {
            listen: vec!["mqtts://127.0.0.1:0".into()],
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            tls_identity_as_username: true,
            ..Default::default()
        });
        assert!(matches!(err, Err(ConfigError::Invalid(_))));
        // Same scheme and address, with and without PROXY: two listeners.
        let cfg = Config::from_cli(Cli {
            listen: vec![
                "mqtt://127.0.0.1:0".into(),
                "mqtt://127.0.0.1:0?proxy-protocol".into(),
            ],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(cfg.listeners.len(), 2);
    }

    #[test]
    fn per_listener_tables_inherit_the_top_level() {
        let dir = std::env::temp_dir().join(format!("ringmq-cfg-l-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ringmq.toml");
        std::fs::write(
            &path,
            r#"
listen = ["mqtt://127.0.0.1:0"]
password-file = "/etc/ringmq/passwd"
tls-cert = "/etc/ringmq/cert.pem"
tls-key = "/etc/ringmq/key.pem"

[[listener]]
url = "mqtts://127.0.0.1:0"
acl-file = "/etc/ringmq/acl"
allow-anonymous = true

[[listener]]
url = "mqtt://127.0.0.1:0"
proxy-protocol = true
password-file = "/etc/ringmq/other"
"#,
        )
        .unwrap();
        let cfg = Config::from_cli(Cli {
            config: Some(path),
            ..Default::default()
        })
        .unwrap();
        let [plain, tls, proxied] = &cfg.listeners[..] else {
            panic!("three listeners expected: {:?}", cfg.listeners);
        };
        assert_eq!(
            plain.auth.password_file.as_deref(),
            Some(std::path::Path::new("/etc/ringmq/passwd"))
        );
        assert!(plain.tls.is_none() && !plain.auth.anonymous_ok());
        let files = tls.tls.as_ref().unwrap();
        assert_eq!(files.cert, PathBuf::from("/etc/ringmq/cert.pem"));
        assert!(tls.auth.anonymous_ok() && tls.auth.acl_file.is_some());
        assert!(proxied.proxy_protocol);
        assert_eq!(
            proxied.auth.password_file.as_deref(),
            Some(std::path::Path::new("/etc/ringmq/other"))
        );
    }
}
