//! TLS for mqtts:// and wss:// listeners with rustls: server configs from
//! PEM files (rebuilt on SIGHUP), the handshake on the shard that accepted
//! the socket, and opening/sealing records for a connection's tasks.
//!
//! rustls is sans-IO: a `ServerConnection` takes ciphertext and gives
//! plaintext, so the session travels with a connection's transport state
//! (a hand-off to its home shard, parking) like the WebSocket decoder, and
//! the reader and writer tasks share it through `WriteSide::tls`, borrowed
//! only between awaits.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use rustls::server::{Acceptor, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

use super::io::{self, ReadHint, SharedStream};
use super::pacer::Pacer;
use crate::config::TlsFiles;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{path}: {why}")]
    File { path: String, why: String },
    #[error("TLS settings: {0}")]
    Config(String),
    #[error("TLS: {0}")]
    Protocol(#[from] rustls::Error),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("peer closed the connection during the TLS handshake")]
    Eof,
}

/// The ALPN protocol ids this broker speaks.
const ALPN_MQTT: &[u8] = b"mqtt";
const ALPN_HTTP: &[u8] = b"http/1.1";

/// One TLS listener's server configs, one per ALPN answer: a client that
/// offers `mqtt` (or `http/1.1` on wss) gets it confirmed; one that offers
/// only other protocols, or none, gets no ALPN rather than a failed
/// handshake (rustls refuses a client whose offer has no overlap with the
/// configured list, and MQTT clients rarely send ALPN at all).
pub struct TlsConfigs {
    no_alpn: Arc<ServerConfig>,
    mqtt: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
    /// The subject of the certificate served, for the reload log.
    pub subject: String,
}

impl TlsConfigs {
    /// Builds the configs from the listener's files: TLS 1.2 and 1.3 only,
    /// the ring provider, client certificates verified against
    /// `client_ca` when it is set.
    pub fn load(files: &TlsFiles) -> Result<TlsConfigs, TlsError> {
        let certs = read_certs(&files.cert)?;
        let subject = certs
            .first()
            .and_then(|c| subject_cn(c.as_ref()))
            .unwrap_or_else(|| "?".to_string());
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::File {
            path: files.key.display().to_string(),
            why: format!("no usable private key ({e})"),
        })?;
        // ring, not aws-lc-rs: no C toolchain (cmake) to build. rustls
        // deprecates it for lacking post-quantum key exchange; classic
        // X25519/P-256 is what MQTT clients offer today.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &files.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(ca)? {
                    roots.add(cert).map_err(|e| TlsError::File {
                        path: ca.display().to_string(),
                        why: format!("not a usable CA certificate ({e})"),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let base = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::File {
                path: files.cert.display().to_string(),
                why: format!("certificate and key do not fit ({e})"),
            })?;
        let with_alpn = |proto: &[u8]| {
            let mut c = base.clone();
            c.alpn_protocols = vec![proto.to_vec()];
            Arc::new(c)
        };
        Ok(TlsConfigs {
            mqtt: with_alpn(ALPN_MQTT),
            http: with_alpn(ALPN_HTTP),
            no_alpn: Arc::new(base),
            subject,
        })
    }

    fn for_offer<'a>(&self, offer: Option<impl Iterator<Item = &'a [u8]>>) -> Arc<ServerConfig> {
        let mut wants = (false, false);
        for proto in offer.into_iter().flatten() {
            wants.0 |= proto == ALPN_MQTT;
            wants.1 |= proto == ALPN_HTTP;
        }
        match wants {
            (true, _) => self.mqtt.clone(),
            (_, true) => self.http.clone(),
            _ => self.no_alpn.clone(),
        }
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |why: String| TlsError::File {
        path: path.display().to_string(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(certs)
}

/// The subject CN of a DER certificate.
fn subject_cn(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// A connection's TLS state, boxed so that plain connections pay one
/// pointer for it.
pub struct TlsSession {
    pub conn: ServerConnection,
    /// Sealed bytes a light connection's send left behind (the kernel took
    /// part): they go out before anything sealed after them.
    pub unsent: BytesMut,
}

/// The subject CN of the client's certificate, when it presented one
/// (the identity `--tls-identity-as-username` makes the username).
pub fn peer_identity(session: &TlsSession) -> Option<String> {
    subject_cn(session.conn.peer_certificates()?.first()?.as_ref())
}

/// A finished handshake: the session, and application bytes that came
/// with the client's last flight (a CONNECT, an HTTP upgrade).
pub struct Established {
    pub session: Box<TlsSession>,
    pub plaintext: BytesMut,
}

/// Runs the server side of the handshake on `stream`, `initial` being
/// bytes already read from it (after a PROXY header). The caller bounds
/// it in time. A failed handshake sends the alert rustls has for it.
pub async fn handshake(
    stream: &SharedStream,
    configs: &TlsConfigs,
    pacer: &Pacer,
    initial: BytesMut,
) -> Result<Established, TlsError> {
    let mut hint = ReadHint::default();
    let mut raw = initial;
    let mut acceptor = Acceptor::default();
    let accepted = loop {
        if raw.is_empty() && read_more(stream, &mut raw, &mut hint, pacer).await? == 0 {
            return Err(TlsError::Eof);
        }
        let mut slice = &raw[..];
        while !slice.is_empty() {
            if acceptor.read_tls(&mut slice)? == 0 {
                break;
            }
        }
        raw.clear();
        match acceptor.accept() {
            Ok(None) => continue,
            Ok(Some(accepted)) => break accepted,
            Err((e, mut alert)) => {
                let mut out = Vec::new();
                let _ = alert.write_all(&mut out);
                let _ = io::write_all(stream, &out).await;
                return Err(e.into());
            }
        }
    };
    let config = configs.for_offer(accepted.client_hello().alpn());
    let mut conn = match accepted.into_connection(config) {
        // Unlimited send buffer: every flush is sealed and written at once,
        // and the broker's outbox limits already bound what one holds.
        Ok(mut conn) => {
            conn.set_buffer_limit(None);
            conn
        }
        Err((e, mut alert)) => {
            let mut out = Vec::new();
            let _ = alert.write_all(&mut out);
            let _ = io::write_all(stream, &out).await;
            return Err(e.into());
        }
    };
    let mut plaintext = BytesMut::new();
    loop {
        let state = conn.process_new_packets();
        let mut out = BytesMut::new();
        drain_records(&mut conn, &mut out)?;
        if !out.is_empty() {
            io::write_all(stream, &out).await?;
        }
        let available = state?.plaintext_bytes_to_read();
        drain_plaintext(&mut conn, &mut plaintext, available)?;
        if !conn.is_handshaking() {
            let session = Box::new(TlsSession {
                conn,
                unsent: BytesMut::new(),
            });
            return Ok(Established { session, plaintext });
        }
        if read_more(stream, &mut raw, &mut hint, pacer).await? == 0 {
            return Err(TlsError::Eof);
        }
        let mut slice = &raw[..];
        while !slice.is_empty() {
            if conn.read_tls(&mut slice)? == 0 {
                break;
            }
        }
        raw.clear();
    }
}

async fn read_more(
    stream: &SharedStream,
    raw: &mut BytesMut,
    hint: &mut ReadHint,
    pacer: &Pacer,
) -> std::io::Result<usize> {
    io::read_into(stream, raw, hint, pacer).await
}

/// Takes the records rustls has to send (handshake, alerts, application
/// data) into `out`.
pub fn drain_records(conn: &mut ServerConnection, out: &mut BytesMut) -> std::io::Result<()> {
    let mut w = out.writer();
    while conn.wants_write() {
        conn.write_tls(&mut w)?;
    }
    Ok(())
}

/// Moves the `available` bytes of plaintext rustls holds (what
/// `process_new_packets` said) to the end of `plain`: sized exactly, since
/// a light connection's PINGREQ is 2 bytes and a larger buffer would be
/// zeroed for nothing.
fn drain_plaintext(
    conn: &mut ServerConnection,
    plain: &mut BytesMut,
    available: usize,
) -> std::io::Result<()> {
    if available == 0 {
        return Ok(());
    }
    let start = plain.len();
    plain.resize(start + available, 0);
    let read = conn.reader().read_exact(&mut plain[start..]);
    if read.is_err() {
        plain.truncate(start);
    }
    read
}

/// What `open` found besides plaintext.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The client sent close_notify: no more data follows.
    pub closed: bool,
    /// rustls has records to send (an alert, a key update answer).
    pub wants_write: bool,
}

/// Feeds all of `raw` (ciphertext just read) to the session and appends
/// the plaintext to `plain`. On a TLS error the session holds the alert
/// to send (`wants_write`), and the connection must end.
pub fn open(
    session: &mut TlsSession,
    raw: &[u8],
    plain: &mut BytesMut,
) -> Result<Opened, TlsError> {
    let conn = &mut session.conn;
    let mut slice = raw;
    let mut opened = Opened::default();
    while !slice.is_empty() {
        if conn.read_tls(&mut slice)? == 0 {
            break;
        }
        let state = conn.process_new_packets()?;
        opened.closed |= state.peer_has_closed();
        drain_plaintext(conn, plain, state.plaintext_bytes_to_read())?;
    }
    opened.wants_write = conn.wants_write();
    Ok(opened)
}

/// Encrypts `plain` into records appended to `out`, after what a light
/// send left unsent.
pub fn seal(session: &mut TlsSession, plain: &[u8], out: &mut BytesMut) -> std::io::Result<()> {
    if !session.unsent.is_empty() {
        out.extend_from_slice(&session.unsent.split());
    }
    if !plain.is_empty() {
        session.conn.writer().write_all(plain)?;
    }
    drain_records(&mut session.conn, out)
}
