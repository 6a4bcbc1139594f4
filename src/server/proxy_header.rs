//! Reads the PROXY protocol header (v1 or v2) a load balancer puts before
//! a client's bytes, on listeners configured for it.

use std::net::SocketAddr;

use bytes::BytesMut;
use thiserror::Error;

use super::io::{self, ReadHint, SharedStream};
use super::pacer::Pacer;
use crate::proxy_protocol::{self, Parsed, ProxyError};

#[derive(Debug, Error)]
pub enum HeaderError {
    #[error("{0}")]
    Invalid(#[from] ProxyError),
    #[error("the connection closed before its PROXY header was complete")]
    Eof,
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads until the header is complete. Returns the client's address (None
/// for a LOCAL header or an unknown family) and the bytes read past the
/// header. A stream that cannot start with a header fails at once; the
/// caller's timeout bounds one that never finishes.
pub async fn read(
    stream: &SharedStream,
    pacer: &Pacer,
) -> Result<(Option<SocketAddr>, BytesMut), HeaderError> {
    let mut buf = BytesMut::new();
    let mut hint = ReadHint::default();
    loop {
        if let Parsed::Done { len, source, .. } = proxy_protocol::parse(&buf)? {
            let _ = buf.split_to(len);
            return Ok((source, buf));
        }
        if io::read_into(stream, &mut buf, &mut hint, pacer).await? == 0 {
            return Err(HeaderError::Eof);
        }
    }
}
