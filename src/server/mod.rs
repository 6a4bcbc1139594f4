//! The runtime layer: the only code that knows glommio.
//!
//! `run` checks the host (preflight), loads the TLS, password and ACL
//! files, starts one executor per shard pinned to its own core, waits until
//! every shard listens, prints `ready`, reloads those files on SIGHUP, and
//! on SIGINT/SIGTERM shuts the shards down.

mod admission;
mod authn;
mod connection;
mod context;
mod io;
mod light;
mod listener;
pub mod memory;
mod mesh;
mod notify;
mod pacer;
mod parked_table;
mod parking;
mod preflight;
mod proxy_header;
mod security;
mod shard_main;
mod tls;
mod transport;
mod ws_upgrade;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use thiserror::Error;

use crate::config::Config;

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("preflight: {0}")]
    Preflight(String),
    #[error("cannot bind {url}: {source}")]
    Bind { url: String, source: std::io::Error },
    #[error("starting shards: {0}")]
    Start(String),
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("{0}")]
    Security(String),
}

/// What shards report to the main thread.
pub(crate) enum ShardEvent {
    Ready(usize),
    Failed(String),
}

/// How long a shard runs tasks before it polls the reactor again (glommio's
/// default is 100 ms). Reactor polls are what deliver other shards' batches
/// and SUBACK barriers, so a shard kept busy by one flooding client would
/// otherwise leave every other shard's barrier waiting up to 100 ms per
/// round; connection tasks yield at this point (`yield_if_needed`).
const PREEMPT_AFTER: Duration = Duration::from_millis(5);

/// How long shards get to start before the broker gives up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(mut config: Config) -> Result<(), ServerError> {
    preflight::check(config.shards, config.io_memory)?;
    let nofile = preflight::raise_nofile();
    tracing::info!(shards = config.shards, nofile, "starting");
    // Port 0 means "any free port", but every shard must bind the same one:
    // reserve a port here with SO_REUSEPORT, bound but not listening (so it
    // takes no connections), until the shards hold it.
    let mut reservations = Vec::new();
    for spec in &mut config.listeners {
        if spec.addr.port() != 0 {
            ensure_port_free(spec.addr).map_err(|source| ServerError::Bind {
                url: spec.url(),
                source,
            })?;
        }
        if spec.addr.port() == 0 {
            let (sock, addr) = reserve_port(spec.addr).map_err(|source| ServerError::Bind {
                url: spec.url(),
                source,
            })?;
            spec.addr = addr;
            reservations.push(sock);
        }
    }

    let security = Arc::new(security::Security::load(&config).map_err(ServerError::Security)?);
    let shards = config.shards;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let placement = if shards <= cores {
        PoolPlacement::MaxSpread(shards, None)
    } else {
        PoolPlacement::Unbound(shards)
    };
    let mesh_builder = (shards > 1).then(|| MeshBuilder::full(shards, mesh::CHANNEL_CAPACITY));
    let lanes = Arc::new(mesh::Lanes::new(shards));
    let admission = Arc::new(admission::Admission::new(config.max_memory));
    let (events_tx, events_rx) = mpsc::channel();
    let shutdown = Arc::new(AtomicBool::new(false));
    let handles = {
        let (config, shutdown, security) = (config.clone(), shutdown.clone(), security.clone());
        LocalExecutorPoolBuilder::new(placement)
            .name("ringmq-shard")
            .io_memory(config.io_memory)
            .preempt_timer(PREEMPT_AFTER)
            .on_all_shards(move || {
                shard_main::run(shard_main::ShardSetup {
                    config,
                    lanes,
                    admission,
                    security,
                    mesh_builder,
                    events: events_tx,
                    shutdown,
                })
            })
            .map_err(|e| ServerError::Start(e.to_string()))?
    };

    let mut ready = 0;
    while ready < shards {
        match events_rx.recv_timeout(START_TIMEOUT) {
            Ok(ShardEvent::Ready(id)) => {
                tracing::debug!(shard = id, "shard listening");
                ready += 1;
            }
            Ok(ShardEvent::Failed(why)) => {
                shutdown.store(true, Ordering::Relaxed);
                return Err(ServerError::Start(why));
            }
            Err(_) => {
                shutdown.store(true, Ordering::Relaxed);
                return Err(ServerError::Start(format!(
                    "only {ready} of {shards} shards started within {START_TIMEOUT:?} \
                     (run with --log-level debug; check RLIMIT_MEMLOCK and io_uring)"
                )));
            }
        }
    }
    drop(reservations);
    let urls: Vec<String> = config.listeners.iter().map(|l| l.url()).collect();
    tracing::info!(listeners = ?urls, shards, "ready");
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "ready {} shards={shards}", urls.join(" "));
        let _ = out.flush();
    }

    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(ServerError::Signals)?;
    for sig in signals.forever() {
        if sig == SIGHUP {
            tracing::info!("SIGHUP: reloading certificates, password and ACL files");
            security.reload(&config);
            continue;
        }
        tracing::info!(signal = sig, "shutting down");
        break;
    }
    shutdown.store(true, Ordering::Relaxed);
    handles.join_all();
    tracing::info!("stopped");
    Ok(())
}

/// Fails if another socket already listens on `addr`. glommio binds with
/// SO_REUSEPORT, which the kernel also grants to a second broker started on
/// the same port by the same user: the two would silently split the
/// clients between them. A bind probe cannot tell a live listener from the
/// closing connections of an earlier run, so this reads the kernel's table
/// of TCP sockets instead. A broker that has just exited keeps its
/// listener for some milliseconds (io_uring tears its requests down after
/// the process is gone), so a listener must outlast a short grace period.
fn ensure_port_free(addr: std::net::SocketAddr) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while listening_on(addr) {
        if std::time::Instant::now() >= deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "address already in use (another broker may be running on it)",
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Whether a socket in LISTEN state holds `addr`'s port on its address or
/// a wildcard (from /proc/net/tcp and tcp6).
fn listening_on(addr: std::net::SocketAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let parse_ip = |hex: &str| -> Option<IpAddr> {
        // Each 32-bit word is printed as the host-order value of the
        // network-order bytes.
        let words: Option<Vec<[u8; 4]>> = (0..hex.len() / 8)
            .map(|i| {
                u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                    .ok()
                    .map(u32::to_ne_bytes)
            })
            .collect();
        let bytes: Vec<u8> = words?.concat();
        match bytes.len() {
            4 => Some(IpAddr::V4(Ipv4Addr::new(
                bytes[0], bytes[1], bytes[2], bytes[3],
            ))),
            16 => {
                let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
                Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
            }
            _ => None,
        }
    };
    let ours = addr.ip();
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|file| {
        let Ok(table) = std::fs::read_to_string(file) else {
            return false;
        };
        table.lines().skip(1).any(|line| {
            let cols: Vec<&str> = line.split_whitespace().take(4).collect();
            let (Some(local), Some(&"0A")) = (cols.get(1), cols.get(3)) else {
                return false;
            };
            let Some((ip, port)) = local.split_once(':') else {
                return false;
            };
            if u16::from_str_radix(port, 16).ok() != Some(addr.port()) {
                return false;
            }
            parse_ip(ip)
                .is_some_and(|ip| ip.is_unspecified() || ours.is_unspecified() || ip == ours)
        })
    })
}

fn reserve_port(
    addr: std::net::SocketAddr,
) -> std::io::Result<(socket2::Socket, std::net::SocketAddr)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let sock = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_port(true)?;
    sock.bind(&addr.into())?;
    let bound = sock
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("reserved address is not an IP socket"))?;
    Ok((sock, bound))
}
