//! The HTTP side of a WebSocket listener: the upgrade, the built-in page,
//! and the error answers.

use std::net::SocketAddr;

use bytes::BytesMut;

use super::context::ShardCtx;
use super::io::{self, SharedStream};
use super::transport::{read_plain, Framing, Transport, WriteSide, WsRead};
use crate::websocket::frame::FrameDecoder;
use crate::websocket::handshake::{handshake, HandshakeConfig, HandshakeResult};

/// The page served on `GET /`: subscribe, publish and watch messages live.
const PAGE: &str = include_str!("../../assets/index.html");

/// Runs the handshake within the handshake timeout, over TLS when `write`
/// holds a session; `initial`: request bytes already read. `Some` with the
/// WebSocket transport (holding any frames that came with the request;
/// its TLS session stays in `write`) once upgraded; `None` when the
/// connection was answered and is done.
pub async fn upgrade(
    ctx: &ShardCtx,
    stream: &SharedStream,
    write: &WriteSide,
    cfg: &HandshakeConfig,
    peer: Option<SocketAddr>,
    initial: BytesMut,
) -> Option<Transport> {
    let peer_ip = peer
        .map(|p| p.ip())
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    let mut raw = initial;
    let mut hint = io::ReadHint::default();
    let result = glommio::timer::timeout(ctx.config.ws.handshake_timeout, async {
        loop {
            match handshake(&raw, cfg, peer_ip) {
                HandshakeResult::Incomplete => {}
                done => return Ok(Some(done)),
            }
            match read_plain(stream, write, &mut raw, &mut hint, &ctx.pacer).await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    })
    .await;
    let outcome = match result {
        Ok(Some(outcome)) => outcome,
        Ok(None) => return None,
        Err(_) => {
            tracing::debug!(
                shard = ctx.id,
                ?peer,
                "no WebSocket upgrade within the handshake timeout"
            );
            return None;
        }
    };
    match outcome {
        HandshakeResult::Upgrade {
            response,
            consumed,
            path,
            subprotocol,
            client_addr,
        } => {
            write.send(stream, &response).await.ok()?;
            let _ = raw.split_to(consumed);
            tracing::debug!(shard = ctx.id, %client_addr, %path, ?subprotocol, "WebSocket upgraded");
            Some(Transport {
                framing: Framing::Ws(Box::new(WsRead::new(
                    FrameDecoder::new(ctx.config.ws.max_message),
                    raw,
                ))),
                tls: None,
            })
        }
        HandshakeResult::Page { .. } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
                 Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                PAGE.len()
            );
            let mut answer = head.into_bytes();
            answer.extend_from_slice(PAGE.as_bytes());
            let _ = write.send(stream, &answer).await;
            None
        }
        HandshakeResult::Reject { response, error } => {
            tracing::debug!(shard = ctx.id, ?peer, %error, "WebSocket handshake refused");
            let _ = write.send(stream, &response).await;
            None
        }
        HandshakeResult::Incomplete => None,
    }
}
