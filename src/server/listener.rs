//! A shard's listeners: every shard binds every configured address with
//! SO_REUSEPORT (glommio sets it), and the kernel spreads new connections
//! over them.

use std::rc::Rc;
use std::time::Duration;

use glommio::net::TcpListener;

use super::connection;
use super::context::ShardCtx;
use crate::config::{Config, ListenerSpec};
use crate::websocket::handshake::HandshakeConfig;

/// What a listener speaks.
pub enum ListenerKind {
    Mqtt,
    Ws(HandshakeConfig),
}

/// One configured listener as its connections see it.
pub struct Listener {
    /// Its place in `Config::listeners` (and in `Security`).
    pub index: usize,
    pub kind: ListenerKind,
    /// TLS first (its configs are in `Security`).
    pub tls: bool,
    /// A PROXY protocol header first.
    pub proxy_protocol: bool,
}

impl Listener {
    pub fn for_spec(index: usize, spec: &ListenerSpec, config: &Config) -> Listener {
        let kind = if spec.scheme.is_ws() {
            ListenerKind::Ws(HandshakeConfig {
                paths: spec.paths.clone(),
                allowed_origins: config.ws.allowed_origins.clone(),
                trusted_proxies: config.ws.trusted_proxies.clone(),
                max_header_bytes: 8192,
                serve_page: config.ws.serve_page,
            })
        } else {
            ListenerKind::Mqtt
        };
        Listener {
            index,
            kind,
            tls: spec.scheme.is_tls(),
            proxy_protocol: spec.proxy_protocol,
        }
    }
}

pub fn bind(spec: &ListenerSpec) -> std::io::Result<TcpListener> {
    TcpListener::bind(spec.addr).map_err(std::io::Error::from)
}

/// Accepts until the listener is dropped with the shard.
pub async fn accept_loop(ctx: Rc<ShardCtx>, listener: TcpListener, kind: Rc<Listener>) {
    let mut warned_fd_cap = false;
    loop {
        match listener.accept().await {
            Ok(stream) => {
                warned_fd_cap = false;
                glommio::spawn_local(connection::accept(ctx.clone(), stream, kind.clone()))
                    .detach();
            }
            Err(e) => {
                let err = std::io::Error::from(e);
                match err.raw_os_error() {
                    Some(libc::EMFILE) | Some(libc::ENFILE) => {
                        if !warned_fd_cap {
                            tracing::error!(
                                shard = ctx.id,
                                open_on_shard = ctx.open_sockets.get(),
                                "accept failed: the open-file limit is reached ({err}); \
                                 new connections wait in the backlog. Raise `ulimit -n` (RLIMIT_NOFILE) \
                                 if this host allows it; some sandboxes cap it"
                            );
                            warned_fd_cap = true;
                        }
                    }
                    _ => tracing::warn!(shard = ctx.id, "accept failed: {err}"),
                }
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
