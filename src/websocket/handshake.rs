//! The HTTP/1.1 upgrade that opens a WebSocket (RFC 6455 §4.2), server side.
//!
//! No HTTP library: a WebSocket handshake is one small GET request, and the
//! few rules that matter are clearer spelled out here than configured in a
//! general parser. [`handshake`] is called with everything read so far; it
//! says to read more, or gives the whole answer to write, so the server's
//! loop is `read → handshake → write`.
//!
//! Leniency is deliberate where real clients differ: MQTT.js, paho and
//! browsers offer `mqtt`, `mqttv3.1` or no sub-protocol at all, and all are
//! served. Strictness is deliberate where it guards the broker: header size,
//! the key, the version, the Origin allow-list.

use std::net::{IpAddr, SocketAddr};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// Appended to the client's key before hashing (RFC 6455 §1.3).
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Sub-protocols served, as echoed back. MQTT 3.1.1 and 5.0 name `mqtt`
/// (MQTT-6.0.0-3); old paho clients offer the 3.1 name.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// How a WebSocket listener answers upgrade requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeConfig {
    /// Served upgrade paths, e.g. `["/mqtt"]`.
    pub paths: Vec<String>,
    /// `None`: any Origin. `Some(list)`: a present `Origin` header must
    /// equal one (ASCII case-insensitive). A missing Origin is allowed:
    /// only browsers send one, and the check exists to stop other sites'
    /// pages from using a visitor's browser against the broker.
    pub allowed_origins: Option<Vec<String>>,
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` are believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Largest request head accepted, terminator included (8192).
    pub max_header_bytes: usize,
    /// Answer a plain `GET /` with the built-in page.
    pub serve_page: bool,
}

impl Default for HandshakeConfig {
    fn default() -> Self {
        HandshakeConfig {
            paths: vec!["/mqtt".to_string()],
            allowed_origins: None,
            trusted_proxies: Vec::new(),
            max_header_bytes: 8192,
            serve_page: false,
        }
    }
}

/// What to do with the bytes read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeResult {
    /// No `\r\n\r\n` yet and the head is still within the limit: read more.
    Incomplete,
    /// Write `response`; the connection now carries frames. Bytes after
    /// `consumed` are frames that came with the request.
    Upgrade {
        response: Vec<u8>,
        consumed: usize,
        path: String,
        subprotocol: Option<&'static str>,
        client_addr: IpAddr,
    },
    /// A plain `GET /` with `serve_page`: the server writes the page itself.
    Page { consumed: usize },
    /// Write `response`, then close.
    Reject {
        response: Vec<u8>,
        error: HandshakeError,
    },
}

/// Why an upgrade was refused; [`HandshakeError::status`] is the HTTP status.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    #[error("request head over {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("method is not GET")]
    MethodNotGet,
    #[error("malformed request line")]
    BadRequestLine,
    #[error("HTTP version is not HTTP/1.1")]
    UnsupportedHttpVersion,
    #[error("malformed header line")]
    MalformedHeader,
    #[error("plain HTTP request, not a WebSocket upgrade")]
    NotWebSocket,
    #[error("Connection header lacks the Upgrade token")]
    MissingConnectionUpgrade,
    #[error("Sec-WebSocket-Version is not 13")]
    UnsupportedVersion,
    #[error("Sec-WebSocket-Key missing or not 16 bytes of base64")]
    InvalidKey,
    #[error("no WebSocket endpoint at {0}")]
    PathNotFound(String),
    #[error("origin {0} not allowed")]
    OriginNotAllowed(String),
}

impl HandshakeError {
    /// The HTTP status answering this error.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::HeadersTooLarge { .. } => 431,
            HandshakeError::UnsupportedVersion => 426,
            HandshakeError::PathNotFound(_) => 404,
            HandshakeError::OriginNotAllowed(_) => 403,
            _ => 400,
        }
    }
}

/// `base64(sha1(key + GUID))`, the `Sec-WebSocket-Accept` value that proves
/// to the client that the server understood its handshake.
pub fn accept_key(client_key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(client_key.as_bytes());
    sha.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// Examines the request bytes read so far from `peer`; see
/// [`HandshakeResult`]. Bytes that cannot begin `GET ` are refused at once,
/// so a client speaking raw MQTT to this port is not left waiting.
pub fn handshake(buf: &[u8], cfg: &HandshakeConfig, peer: IpAddr) -> HandshakeResult {
    let prefix = buf.len().min(4);
    if buf[..prefix] != b"GET "[..prefix] {
        return reject(cfg, HandshakeError::MethodNotGet);
    }
    // Only the first `max_header_bytes` may hold the head, terminator too.
    let window = &buf[..buf.len().min(cfg.max_header_bytes)];
    let end = match memchr::memmem::find(window, b"\r\n\r\n") {
        Some(end) => end,
        None if buf.len() > cfg.max_header_bytes => {
            let limit = cfg.max_header_bytes;
            return reject(cfg, HandshakeError::HeadersTooLarge { limit });
        }
        None => return HandshakeResult::Incomplete,
    };
    let consumed = end + 4;
    match examine(&buf[..end], cfg, peer, consumed) {
        Ok(result) => result,
        Err(error) => reject(cfg, error),
    }
}

/// The parts of the request head the handshake looks at.
#[derive(Default)]
struct Request<'a> {
    path: &'a str,
    /// Any `Upgrade` header lists the `websocket` token.
    upgrade_websocket: bool,
    /// Any `Connection` header lists the `Upgrade` token.
    connection_upgrade: bool,
    version: Option<&'a [u8]>,
    keys: Vec<&'a [u8]>,
    /// Each `Sec-WebSocket-Protocol` header, in order.
    protocols: Vec<&'a [u8]>,
    origin: Option<&'a [u8]>,
    /// Each `X-Forwarded-For` header, in order.
    forwarded_for: Vec<&'a [u8]>,
    real_ip: Option<&'a [u8]>,
}

/// Checks a complete head (without its terminator) and decides.
fn examine(
    head: &[u8],
    cfg: &HandshakeConfig,
    peer: IpAddr,
    consumed: usize,
) -> Result<HandshakeResult, HandshakeError> {
    let req = parse(head)?;
    if !req.upgrade_websocket {
        if req.path == "/" && cfg.serve_page {
            return Ok(HandshakeResult::Page { consumed });
        }
        return Err(HandshakeError::NotWebSocket);
    }
    if !cfg.paths.iter().any(|p| p == req.path) {
        return Err(HandshakeError::PathNotFound(req.path.to_string()));
    }
    if !req.connection_upgrade {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    if req.version.map(trim) != Some(b"13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let key = match req.keys.as_slice() {
        [key] => std::str::from_utf8(trim(key)).map_err(|_| HandshakeError::InvalidKey)?,
        _ => return Err(HandshakeError::InvalidKey),
    };
    match BASE64.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(HandshakeError::InvalidKey),
    }
    if let (Some(allowed), Some(origin)) = (&cfg.allowed_origins, req.origin) {
        let origin = trim(origin);
        if !allowed
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(origin))
        {
            let shown = String::from_utf8_lossy(origin).into_owned();
            return Err(HandshakeError::OriginNotAllowed(shown));
        }
    }
    let subprotocol = choose_subprotocol(&req.protocols);
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_key(key)
    );
    if let Some(p) = subprotocol {
        response.push_str("Sec-WebSocket-Protocol: ");
        response.push_str(p);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    Ok(HandshakeResult::Upgrade {
        response: response.into_bytes(),
        consumed,
        path: req.path.to_string(),
        subprotocol,
        client_addr: client_addr(&req, cfg, peer),
    })
}

/// Parses the request line and the headers the handshake needs.
fn parse(head: &[u8]) -> Result<Request<'_>, HandshakeError> {
    let mut lines = head.split(|&b| b == b'\n').map(|line| {
        // Every line but the last ended in "\r\n"; the last had its "\r\n"
        // cut with the terminator. A bare "\n" leaves no '\r' to strip.
        line.strip_suffix(b"\r").unwrap_or(line)
    });
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(|&b| b == b' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(HandshakeError::BadRequestLine),
    };
    if method != b"GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    if version != b"HTTP/1.1" {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    let target = std::str::from_utf8(target).map_err(|_| HandshakeError::BadRequestLine)?;
    let path = target.split(['?', '#']).next().unwrap_or_default();
    if !path.starts_with('/') {
        return Err(HandshakeError::BadRequestLine);
    }
    let mut req = Request {
        path,
        ..Request::default()
    };
    for line in lines {
        let colon = memchr::memchr(b':', line).ok_or(HandshakeError::MalformedHeader)?;
        let (name, rest) = line.split_at(colon);
        let value = trim(rest.get(1..).unwrap_or_default());
        // Empty names, obsolete line folding and "Name :" are all refused
        // (RFC 9112 §5.1, §5.2): each has smuggled requests past proxies.
        if name.is_empty() || name.iter().any(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            return Err(HandshakeError::MalformedHeader);
        }
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("upgrade") {
            req.upgrade_websocket |= has_token(value, "websocket");
        } else if is("connection") {
            req.connection_upgrade |= has_token(value, "upgrade");
        } else if is("sec-websocket-version") {
            req.version = Some(value);
        } else if is("sec-websocket-key") {
            req.keys.push(value);
        } else if is("sec-websocket-protocol") {
            req.protocols.push(value);
        } else if is("origin") {
            req.origin = Some(value);
        } else if is("x-forwarded-for") {
            req.forwarded_for.push(value);
        } else if is("x-real-ip") {
            req.real_ip = Some(value);
        }
    }
    Ok(req)
}

/// The first sub-protocol the client offers that the broker serves, in the
/// client's order. Names are compared exactly: the client fails the
/// connection unless the echo is one of the strings it sent.
fn choose_subprotocol(headers: &[&[u8]]) -> Option<&'static str> {
    headers
        .iter()
        .flat_map(|h| h.split(|&b| b == b','))
        .map(trim)
        .find_map(|offered| SUBPROTOCOLS.into_iter().find(|p| p.as_bytes() == offered))
}

/// The client's address: `peer`, or what a trusted proxy says it is.
fn client_addr(req: &Request<'_>, cfg: &HandshakeConfig, peer: IpAddr) -> IpAddr {
    let trusted = cfg
        .trusted_proxies
        .iter()
        .any(|p| p.to_canonical() == peer.to_canonical());
    if !trusted {
        return peer;
    }
    req.forwarded_for
        .iter()
        .flat_map(|h| h.split(|&b| b == b','))
        .chain(req.real_ip)
        .find_map(parse_ip)
        .unwrap_or(peer)
}

/// An address as proxies write it: `1.2.3.4`, `::1`, `1.2.3.4:5678` or
/// `[::1]:5678`.
fn parse_ip(text: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(trim(text)).ok()?;
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// Whether the comma list `value` holds `token`, ASCII case-insensitively.
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
}

/// `bytes` without leading and trailing spaces and tabs.
fn trim(bytes: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t');
    let start = bytes.iter().position(|b| !is_ws(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// The answer to a refused request: status line, `Content-Length`,
/// `Connection: close`, and a short text body saying what was wrong.
fn reject(cfg: &HandshakeConfig, error: HandshakeError) -> HandshakeResult {
    let status = error.status();
    let (reason, extra) = match status {
        431 => ("Request Header Fields Too Large", ""),
        426 => ("Upgrade Required", "Sec-WebSocket-Version: 13\r\n"),
        404 => ("Not Found", ""),
        403 => ("Forbidden", ""),
        _ => ("Bad Request", ""),
    };
    let body = match &error {
        HandshakeError::NotWebSocket => {
            let path = cfg.paths.first().map_or("/mqtt", String::as_str);
            format!(
                "this is an MQTT over WebSocket endpoint; connect with a WebSocket client to {path}\n"
            )
        }
        other => format!("{other}\n"),
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    HandshakeResult::Reject {
        response: response.into_bytes(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn cfg() -> HandshakeConfig {
        HandshakeConfig {
            paths: vec!["/mqtt".into()],
            allowed_origins: None,
            trusted_proxies: vec![],
            max_header_bytes: 8192,
            serve_page: true,
        }
    }

    /// What Chromium sends for `new WebSocket("ws://localhost:8083/mqtt", ["mqtt"])`.
    const CHROMIUM: &str = "GET /mqtt HTTP/1.1\r\n\
        Host: localhost:8083\r\n\
        Connection: Upgrade\r\n\
        Pragma: no-cache\r\n\
        Cache-Control: no-cache\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
        Upgrade: websocket\r\n\
        Origin: http://localhost:8080\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Accept-Encoding: gzip, deflate, br, zstd\r\n\
        Accept-Language: en-US,en;q=0.9\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
        Sec-WebSocket-Protocol: mqtt\r\n\r\n";

    /// What MQTT.js (through the `ws` package) sends from Node.
    const MQTTJS: &str = "GET /mqtt?client=js HTTP/1.1\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Connection: Upgrade\r\n\
        Upgrade: websocket\r\n\
        Sec-WebSocket-Protocol: mqtt\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
        Host: localhost:8083\r\n\r\n";

    fn expect_upgrade(
        result: HandshakeResult,
    ) -> (String, usize, String, Option<&'static str>, IpAddr) {
        match result {
            HandshakeResult::Upgrade {
                response,
                consumed,
                path,
                subprotocol,
                client_addr,
            } => (
                String::from_utf8(response).unwrap(),
                consumed,
                path,
                subprotocol,
                client_addr,
            ),
            other => panic!("expected an upgrade, got {other:?}"),
        }
    }

    fn expect_reject(request: &str, cfg: &HandshakeConfig) -> (String, HandshakeError) {
        match handshake(request.as_bytes(), cfg, PEER) {
            HandshakeResult::Reject { response, error } => {
                let response = String::from_utf8(response).unwrap();
                // Every refusal is a complete, self-delimited, closing answer.
                let (head, body) = response.split_once("\r\n\r\n").unwrap();
                assert!(
                    head.contains(&format!("Content-Length: {}\r\n", body.len())),
                    "{head}"
                );
                assert!(head.ends_with("Connection: close"), "{head}");
                assert!(head.starts_with(&format!("HTTP/1.1 {} ", error.status())));
                assert!(!body.is_empty());
                (response, error)
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// A valid upgrade request with `extra` header lines and `key`.
    fn request(path: &str, extra: &str) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
        )
    }

    #[test]
    fn rfc_example_accept_key() {
        assert_eq!(accept_key(KEY), ACCEPT);
    }

    #[test]
    fn chromium_request() {
        let (response, consumed, path, sub, addr) =
            expect_upgrade(handshake(CHROMIUM.as_bytes(), &cfg(), PEER));
        assert_eq!(
            response,
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {ACCEPT}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
            )
        );
        assert_eq!(consumed, CHROMIUM.len());
        assert_eq!((path.as_str(), sub, addr), ("/mqtt", Some("mqtt"), PEER));
    }

    #[test]
    fn mqttjs_request_with_frames_behind_it() {
        let mut bytes = MQTTJS.as_bytes().to_vec();
        bytes.extend_from_slice(&[0x82, 0x82, 1, 2, 3, 4]);
        let (response, consumed, path, sub, _) = expect_upgrade(handshake(&bytes, &cfg(), PEER));
        assert!(response.contains(ACCEPT));
        assert_eq!(consumed, MQTTJS.len(), "frame bytes stay with the caller");
        assert_eq!((path.as_str(), sub), ("/mqtt", Some("mqtt")));
    }

    #[test]
    fn split_at_every_byte_is_incomplete_until_whole() {
        for end in 0..CHROMIUM.len() {
            assert_eq!(
                handshake(&CHROMIUM.as_bytes()[..end], &cfg(), PEER),
                HandshakeResult::Incomplete,
                "at {end}"
            );
        }
        assert!(matches!(
            handshake(CHROMIUM.as_bytes(), &cfg(), PEER),
            HandshakeResult::Upgrade { .. }
        ));
    }

    #[test]
    fn case_insensitive_names_and_token_lists() {
        let req = "GET /mqtt HTTP/1.1\r\nhost: h\r\nUPGRADE: h2c, WebSocket\r\n\
                   connection: keep-alive, upgrade\r\nsec-websocket-version:13\r\n\
                   SEC-WEBSOCKET-KEY:   dGhlIHNhbXBsZSBub25jZQ==  \r\n\r\n";
        let (response, ..) = expect_upgrade(handshake(req.as_bytes(), &cfg(), PEER));
        assert!(response.contains(ACCEPT));
        assert!(!response.contains("Sec-WebSocket-Protocol"));
    }

    #[test]
    fn subprotocol_choice() {
        let cases = [
            ("", None),
            ("Sec-WebSocket-Protocol: mqttv3.1\r\n", Some("mqttv3.1")),
            (
                "Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n",
                Some("mqttv3.1"),
            ),
            ("Sec-WebSocket-Protocol: wamp, mqtt\r\n", Some("mqtt")),
            (
                "Sec-WebSocket-Protocol: wamp\r\nSec-WebSocket-Protocol: x, mqtt\r\n",
                Some("mqtt"),
            ),
            ("Sec-WebSocket-Protocol: wamp, MQTT\r\n", None),
            ("Sec-WebSocket-Protocol: \r\n", None),
        ];
        for (extra, want) in cases {
            let (response, _, _, sub, _) =
                expect_upgrade(handshake(request("/mqtt", extra).as_bytes(), &cfg(), PEER));
            assert_eq!(sub, want, "{extra}");
            match want {
                Some(p) => {
                    assert!(response.contains(&format!("\r\nSec-WebSocket-Protocol: {p}\r\n")))
                }
                None => assert!(!response.contains("Sec-WebSocket-Protocol")),
            }
        }
    }

    #[test]
    fn query_string_is_stripped() {
        let (_, _, path, ..) = expect_upgrade(handshake(
            request("/mqtt?a=1#x", "").as_bytes(),
            &cfg(),
            PEER,
        ));
        assert_eq!(path, "/mqtt");
    }

    #[test]
    fn plain_get_root_serves_page() {
        let req = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(
            handshake(req.as_bytes(), &cfg(), PEER),
            HandshakeResult::Page {
                consumed: req.len()
            }
        );
        let no_page = HandshakeConfig {
            serve_page: false,
            ..cfg()
        };
        let (response, error) = expect_reject(req, &no_page);
        assert_eq!(error, HandshakeError::NotWebSocket);
        assert!(response.ends_with("connect with a WebSocket client to /mqtt\n"));
    }

    #[test]
    fn plain_get_elsewhere_is_400() {
        let (response, error) = expect_reject("GET /mqtt HTTP/1.1\r\nHost: h\r\n\r\n", &cfg());
        assert_eq!(error, HandshakeError::NotWebSocket);
        assert!(response.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(response.contains("MQTT over WebSocket endpoint"));
    }

    #[test]
    fn headers_too_large() {
        let small = HandshakeConfig {
            max_header_bytes: 64,
            ..cfg()
        };
        let mut big = "GET /mqtt HTTP/1.1\r\n".to_string();
        big.push_str(&"X-Pad: aaaaaaaaaa\r\n".repeat(3));
        assert_eq!(big.len(), 20 + 57);
        assert_eq!(
            handshake(&big.as_bytes()[..64], &small, PEER),
            HandshakeResult::Incomplete
        );
        let (response, error) = expect_reject(&big, &small);
        assert_eq!(error, HandshakeError::HeadersTooLarge { limit: 64 });
        assert!(response.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        // Complete, but the head ends past the limit: still too large.
        big.push_str("\r\n");
        assert_eq!(
            expect_reject(&big, &small).1,
            HandshakeError::HeadersTooLarge { limit: 64 }
        );
    }

    #[test]
    fn each_rejection() {
        let no_version = "GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let bad_version = no_version.replace("Key", "Version: 8\r\nSec-WebSocket-Key");
        let no_key = "GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                      Sec-WebSocket-Version: 13\r\n\r\n";
        let no_connection = "GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n\
                             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let cases: Vec<(String, HandshakeError)> = vec![
            (
                "POST /mqtt HTTP/1.1\r\n\r\n".into(),
                HandshakeError::MethodNotGet,
            ),
            ("\x10\x0c\x00\x04MQTT".into(), HandshakeError::MethodNotGet),
            (
                "GET  /mqtt HTTP/1.1\r\n\r\n".into(),
                HandshakeError::BadRequestLine,
            ),
            ("GET /mqtt\r\n\r\n".into(), HandshakeError::BadRequestLine),
            (
                "GET mqtt HTTP/1.1\r\n\r\n".into(),
                HandshakeError::BadRequestLine,
            ),
            (
                "GET /mqtt HTTP/1.0\r\n\r\n".into(),
                HandshakeError::UnsupportedHttpVersion,
            ),
            (
                request("/mqtt", "NoColon\r\n"),
                HandshakeError::MalformedHeader,
            ),
            (
                request("/mqtt", "Bad Name: x\r\n"),
                HandshakeError::MalformedHeader,
            ),
            (
                request("/mqtt", "Name : x\r\n"),
                HandshakeError::MalformedHeader,
            ),
            (
                request("/mqtt", " folded\r\n"),
                HandshakeError::MalformedHeader,
            ),
            (
                request("/other", ""),
                HandshakeError::PathNotFound("/other".into()),
            ),
            (
                no_connection.into(),
                HandshakeError::MissingConnectionUpgrade,
            ),
            (no_version.into(), HandshakeError::UnsupportedVersion),
            (bad_version, HandshakeError::UnsupportedVersion),
            (no_key.into(), HandshakeError::InvalidKey),
            (
                request("/mqtt", "").replace(KEY, "not base64!"),
                HandshakeError::InvalidKey,
            ),
            (
                request("/mqtt", "").replace(KEY, "c2hvcnQ="),
                HandshakeError::InvalidKey,
            ),
            (
                request("/mqtt", &format!("Sec-WebSocket-Key: {KEY}\r\n")),
                HandshakeError::InvalidKey,
            ),
        ];
        for (req, want) in cases {
            assert_eq!(expect_reject(&req, &cfg()).1, want, "{req:?}");
        }
        let (response, _) = expect_reject(no_version, &cfg());
        assert!(
            response.starts_with("HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n")
        );
        let (response, _) = expect_reject(&request("/nope", ""), &cfg());
        assert!(response.starts_with("HTTP/1.1 404 Not Found\r\n"));
    }

    #[test]
    fn origin_allow_list() {
        let strict = HandshakeConfig {
            allowed_origins: Some(vec!["https://app.example.com".into()]),
            ..cfg()
        };
        let ok = request("/mqtt", "Origin: HTTPS://App.Example.com\r\n");
        assert!(matches!(
            handshake(ok.as_bytes(), &strict, PEER),
            HandshakeResult::Upgrade { .. }
        ));
        // Non-browser clients send no Origin and are served.
        assert!(matches!(
            handshake(request("/mqtt", "").as_bytes(), &strict, PEER),
            HandshakeResult::Upgrade { .. }
        ));
        let evil = request("/mqtt", "Origin: https://evil.example\r\n");
        let (response, error) = expect_reject(&evil, &strict);
        assert_eq!(
            error,
            HandshakeError::OriginNotAllowed("https://evil.example".into())
        );
        assert!(response.starts_with("HTTP/1.1 403 Forbidden\r\n"));
        // Without a list, any Origin is fine.
        assert!(matches!(
            handshake(evil.as_bytes(), &cfg(), PEER),
            HandshakeResult::Upgrade { .. }
        ));
    }

    #[test]
    fn forwarded_for_trusted_and_untrusted() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let trusting = HandshakeConfig {
            trusted_proxies: vec![proxy],
            ..cfg()
        };
        let addr = |extra: &str, cfg: &HandshakeConfig, peer: IpAddr| {
            expect_upgrade(handshake(request("/mqtt", extra).as_bytes(), cfg, peer)).4
        };
        let xff = "X-Forwarded-For: 203.0.113.9, 10.0.0.5\r\n";
        assert_eq!(
            addr(xff, &trusting, proxy),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // An untrusted peer cannot claim another address.
        assert_eq!(addr(xff, &trusting, PEER), PEER);
        assert_eq!(addr(xff, &cfg(), proxy), proxy);
        // Leftmost valid entry, across repeated headers; ports allowed.
        let messy = "X-Forwarded-For: unknown\r\nX-Forwarded-For: [2001:db8::1]:443, 1.1.1.1\r\n";
        assert_eq!(
            addr(messy, &trusting, proxy),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        // X-Real-IP when there is no usable X-Forwarded-For.
        let real = "X-Forwarded-For: garbage\r\nX-Real-IP: 198.51.100.4\r\n";
        assert_eq!(
            addr(real, &trusting, proxy),
            "198.51.100.4".parse::<IpAddr>().unwrap()
        );
        // Neither: the proxy itself. An IPv4-mapped peer still matches.
        assert_eq!(addr("", &trusting, proxy), proxy);
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            addr(xff, &trusting, mapped),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }
    /// Mutated requests, truncated anywhere: never a panic, and `consumed`
    /// always within the input.
    #[test]
    fn mutated_requests_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"\r\n :,/?GETHTP1.0-_=+\x00\xff";
        for round in 0..3000 {
            let mut data = if round % 2 == 0 { CHROMIUM } else { MQTTJS }
                .as_bytes()
                .to_vec();
            for _ in 0..next() % 6 {
                let i = next() as usize % data.len();
                data[i] = alphabet[next() as usize % alphabet.len()];
            }
            let len = next() as usize % (data.len() + 1);
            let data = &data[..len];
            match handshake(data, &cfg(), PEER) {
                HandshakeResult::Upgrade { consumed, .. } | HandshakeResult::Page { consumed } => {
                    assert!(consumed <= data.len())
                }
                HandshakeResult::Reject { response, .. } => assert!(!response.is_empty()),
                HandshakeResult::Incomplete => {}
            }
        }
    }
}
