//! HAProxy PROXY protocol v1 (text) and v2 (binary) header parser, sans-IO.
//!
//! A load balancer in front of the broker opens the TCP connection itself,
//! so the peer address the kernel reports is the balancer's. The PROXY
//! protocol (haproxy `doc/proxy-protocol.txt`) has the balancer prepend one
//! header naming the real client; per-IP limits and logs need that address.
//!
//! [`parse`] is called with everything read so far and answers
//! [`Parsed::Incomplete`] (read more), [`Parsed::Done`] (drop `len` bytes,
//! the rest is the client's MQTT stream) or a [`ProxyError`]. It decides as
//! early as the bytes allow: a client that sends plain MQTT to a PROXY
//! listener is refused on its first byte, not after the connect timeout.
//! Nothing here reads a socket or a clock.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v1 line, `PROXY ` up to and including CRLF, is at most 107 bytes
/// (the spec's worst case, `UNKNOWN` with two full IPv6 addresses).
pub const V1_MAX_LEN: usize = 107;

/// The most bytes of v2 address block plus TLVs accepted after the 16-byte
/// fixed part. The largest address block (AF_UNIX) is 216 bytes; what real
/// balancers add as TLVs (ALPN, authority ≤ 255, unique id ≤ 128, AWS/GCP/
/// Azure endpoint ids, a few SSL facts) fits in the remaining ~800. The
/// format allows 64 KiB, but this header arrives before any authentication,
/// so the buffer an unauthenticated socket may make us hold stays ~1 KiB.
pub const V2_MAX_PAYLOAD: usize = 1024;

/// The most bytes a caller must buffer before [`parse`] decides: a longer
/// header is refused with [`ProxyError::V1TooLong`] or
/// [`ProxyError::V2TooLong`].
pub const MAX_HEADER_LEN: usize = V2_HEADER_LEN + V2_MAX_PAYLOAD;

const V1_SIGNATURE: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V2_HEADER_LEN: usize = 16;

/// What [`parse`] found at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Not enough bytes yet: read more and call again with the whole buffer.
    Incomplete,
    /// `len` bytes are the header (drop them; what follows is the client's
    /// stream). `source`/`destination` are None for v2 LOCAL, v1 `UNKNOWN`,
    /// or non-IP families (AF_UNIX, AF_UNSPEC): the caller then keeps the
    /// connection's real endpoints, as the spec asks.
    Done {
        len: usize,
        source: Option<SocketAddr>,
        destination: Option<SocketAddr>,
    },
}

/// Why the bytes are not an acceptable PROXY header. Every variant is the
/// peer's fault and fatal: the stream cannot be resynchronised, so the
/// connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The first bytes match neither the v1 nor the v2 signature (typically
    /// a client speaking MQTT directly to a PROXY listener).
    #[error("not a PROXY protocol header (starts {0:02X?})")]
    NotProxy(Vec<u8>),
    /// No CRLF within the first [`V1_MAX_LEN`] bytes.
    #[error("PROXY v1 line has no CRLF within {V1_MAX_LEN} bytes")]
    V1TooLong,
    /// The v1 line breaks the grammar; the text says where.
    #[error("malformed PROXY v1 line: {0}")]
    V1Malformed(&'static str),
    /// The v2 version nibble is not 2.
    #[error("PROXY v2 version {0} is not 2")]
    V2Version(u8),
    /// The v2 command nibble is neither LOCAL (0) nor PROXY (1).
    #[error("PROXY v2 command {0:#x} is neither LOCAL nor PROXY")]
    V2Command(u8),
    /// The v2 family/transport byte is none of the seven the spec defines.
    #[error("PROXY v2 family/transport byte {0:#04x} is undefined")]
    V2Family(u8),
    /// The v2 length cannot hold the addresses its family announces.
    #[error("PROXY v2 length {len} is shorter than its {need}-byte address block")]
    V2Short { len: usize, need: usize },
    /// The v2 address block plus TLVs exceed [`V2_MAX_PAYLOAD`].
    #[error("PROXY v2 payload of {0} bytes exceeds {V2_MAX_PAYLOAD}")]
    V2TooLong(usize),
}

/// Parses the PROXY header at the start of `buf` (everything read so far).
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if buf.is_empty() {
        return Ok(Parsed::Incomplete);
    }
    if starts_like(buf, V1_SIGNATURE) {
        parse_v1(buf)
    } else if starts_like(buf, V2_SIGNATURE) {
        parse_v2(buf)
    } else {
        Err(ProxyError::NotProxy(buf[..buf.len().min(16)].to_vec()))
    }
}

/// Whether `buf` and `signature` agree on their common prefix.
fn starts_like(buf: &[u8], signature: &[u8]) -> bool {
    let n = buf.len().min(signature.len());
    buf[..n] == signature[..n]
}

// ---------------------------------------------------------------------------
// v1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or "PROXY UNKNOWN ...\r\n"
// ---------------------------------------------------------------------------

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    check_v1_protocol_prefix(window)?;
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        // A CR must be the last byte seen so far (its LF may follow).
        if let Some(cr) = window.iter().position(|&b| b == b'\r') {
            if cr + 1 != window.len() {
                return Err(ProxyError::V1Malformed("CR not followed by LF"));
            }
        }
        return if buf.len() >= V1_MAX_LEN {
            Err(ProxyError::V1TooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    if lf == 0 || window[lf - 1] != b'\r' {
        return Err(ProxyError::V1Malformed("LF not preceded by CR"));
    }
    let line = &window[V1_SIGNATURE.len()..lf - 1];
    if line.contains(&b'\r') {
        return Err(ProxyError::V1Malformed("CR inside the line"));
    }
    let len = lf + 1;
    if line == b"UNKNOWN" || line.starts_with(b"UNKNOWN ") {
        // The spec: the receiver must ignore whatever precedes the CRLF.
        return Ok(done(len, None));
    }
    let text = std::str::from_utf8(line).map_err(|_| ProxyError::V1Malformed("not ASCII"))?;
    let mut fields = text.split(' ');
    let v6 = match fields.next() {
        Some("TCP4") => false,
        Some("TCP6") => true,
        _ => {
            return Err(ProxyError::V1Malformed(
                "protocol is not TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(ProxyError::V1Malformed(
            "expected exactly: addresses and ports separated by single spaces",
        ));
    };
    let source = SocketAddr::new(v1_ip(src, v6)?, v1_port(sport)?);
    let destination = SocketAddr::new(v1_ip(dst, v6)?, v1_port(dport)?);
    Ok(done(len, Some((source, destination))))
}

/// Refuses as soon as the word after `PROXY ` cannot become a protocol.
fn check_v1_protocol_prefix(window: &[u8]) -> Result<(), ProxyError> {
    let rest = &window[V1_SIGNATURE.len().min(window.len())..];
    let ok = [&b"TCP4 "[..], b"TCP6 ", b"UNKNOWN\r", b"UNKNOWN "]
        .iter()
        .any(|word| starts_like(rest, word));
    if ok {
        Ok(())
    } else {
        Err(ProxyError::V1Malformed(
            "protocol is not TCP4, TCP6 or UNKNOWN",
        ))
    }
}

/// An address of the announced family in its canonical text form (std's
/// parser refuses leading zeros in IPv4 octets, which could mean octal).
fn v1_ip(text: &str, v6: bool) -> Result<IpAddr, ProxyError> {
    if v6 {
        text.parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| ProxyError::V1Malformed("bad IPv6 address"))
    } else {
        text.parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| ProxyError::V1Malformed("bad IPv4 address"))
    }
}

/// 0..=65535 in plain decimal: no sign, no leading zero, at most 5 digits.
fn v1_port(text: &str) -> Result<u16, ProxyError> {
    let bad = ProxyError::V1Malformed("bad port");
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || text.len() > 5 || (text.len() > 1 && text.starts_with('0')) {
        return Err(bad);
    }
    text.parse::<u16>().map_err(|_| bad)
}

// ---------------------------------------------------------------------------
// v2: 12-byte signature, ver/cmd, family/transport, u16 length, addresses
// ---------------------------------------------------------------------------

const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if let Some(&ver_cmd) = buf.get(12) {
        let version = ver_cmd >> 4;
        if version != 2 {
            return Err(ProxyError::V2Version(version));
        }
        let command = ver_cmd & 0x0F;
        if command != CMD_LOCAL && command != CMD_PROXY {
            return Err(ProxyError::V2Command(command));
        }
    }
    let local = buf.get(12).is_some_and(|b| b & 0x0F == CMD_LOCAL);
    // LOCAL: the spec has the receiver ignore the family entirely.
    let need = match buf.get(13) {
        Some(_) if local => 0,
        Some(&family) => address_block_len(family)?,
        None => 0,
    };
    if buf.len() < V2_HEADER_LEN {
        return Ok(Parsed::Incomplete);
    }
    let payload = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if payload > V2_MAX_PAYLOAD {
        return Err(ProxyError::V2TooLong(payload));
    }
    if payload < need {
        return Err(ProxyError::V2Short { len: payload, need });
    }
    let len = V2_HEADER_LEN + payload;
    let Some(block) = buf.get(V2_HEADER_LEN..len) else {
        return Ok(Parsed::Incomplete);
    };
    if local {
        return Ok(done(len, None));
    }
    // Whatever follows the address block is TLVs: skipped, not validated,
    // since nothing here uses them and a bound was already applied.
    Ok(done(len, v2_addresses(buf[13], block)))
}

/// The address block size for a family/transport byte; the seven values
/// the spec defines, every other one refused.
fn address_block_len(family: u8) -> Result<usize, ProxyError> {
    match family {
        0x00 => Ok(0),
        0x11 | 0x12 => Ok(12),
        0x21 | 0x22 => Ok(36),
        0x31 | 0x32 => Ok(216),
        other => Err(ProxyError::V2Family(other)),
    }
}

/// Source and destination for INET/INET6; None for UNSPEC and UNIX. The
/// caller checked that `block` holds the family's whole address block.
fn v2_addresses(family: u8, block: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    match family >> 4 {
        0x1 => {
            let src: [u8; 4] = block[0..4].try_into().ok()?;
            let dst: [u8; 4] = block[4..8].try_into().ok()?;
            Some((
                SocketAddr::from((src, port(8))),
                SocketAddr::from((dst, port(10))),
            ))
        }
        0x2 => {
            let src: [u8; 16] = block[0..16].try_into().ok()?;
            let dst: [u8; 16] = block[16..32].try_into().ok()?;
            Some((
                SocketAddr::from((src, port(32))),
                SocketAddr::from((dst, port(34))),
            ))
        }
        _ => None,
    }
}

fn done(len: usize, addrs: Option<(SocketAddr, SocketAddr)>) -> Parsed {
    Parsed::Done {
        len,
        source: addrs.map(|a| a.0),
        destination: addrs.map(|a| a.1),
    }
}

#[cfg(test)]
mod tests;
