//! The load generator's TLS client side (`--tls-ca`): a rustls `ClientConfig` from PEM files,
//! and [`Session`], a sans-IO wrapper over `ClientConnection` that both engines drive over
//! their own sockets: the blocking threads of [`crate::wire::Wire`] and the non-blocking
//! `mio` loops of [`crate::fleet_conn::Conn`].
//!
//! Every connection makes a full handshake unless `--tls-resume` is given: a fleet that
//! reconnects after a broker restart has no usable tickets, and that is the expensive case.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::client::Resumption;
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::args::Args;

/// What every TLS connection of a run shares: the config and the name the broker's
/// certificate must carry.
#[derive(Debug, Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl TlsClient {
    /// The client of `--tls-ca` (and `--tls-cert`/`--tls-key`), `None` without `--tls-ca`.
    pub fn from_args(a: &Args) -> Result<Option<TlsClient>, String> {
        let Some(ca) = &a.tls_ca else {
            return Ok(None);
        };
        let mut roots = RootCertStore::empty();
        for cert in read_certs(ca)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: not a usable CA certificate ({e})", ca.display()))?;
        }
        // ring, as the broker uses: no C toolchain to build. Key exchange groups in the order
        // MQTT clients (OpenSSL, Go, browsers) offer them: X25519 first. ring's default list
        // in rustls 0.23.48 starts with P-384, whose key share a server then accepts, and
        // P-384 in ring costs about 15 times X25519 per handshake on each side.
        #[allow(deprecated)]
        let provider = {
            use rustls::crypto::ring::{default_provider, kx_group};
            let mut p = default_provider();
            p.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
            Arc::new(p)
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS settings: {e}"))?
            .with_root_certificates(roots);
        let mut config = match (&a.tls_cert, &a.tls_key) {
            (Some(cert), Some(key)) => {
                let k = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("{}: no usable private key ({e})", key.display()))?;
                builder
                    .with_client_auth_cert(read_certs(cert)?, k)
                    .map_err(|e| {
                        format!("{}: certificate and key do not fit ({e})", cert.display())
                    })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("--tls-cert and --tls-key go together".into()),
        };
        if !a.tls_resume {
            config.resumption = Resumption::disabled();
        }
        let server_name = ServerName::try_from(a.tls_server_name.clone())
            .map_err(|e| format!("--tls-server-name {:?}: {e}", a.tls_server_name))?;
        Ok(Some(TlsClient {
            config: Arc::new(config),
            server_name,
        }))
    }

    /// A new session, its ClientHello queued.
    pub fn session(&self) -> io::Result<Session> {
        let mut conn = ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(io::Error::other)?;
        // Our own buffers bound what is queued (publish windows, batches); rustls's 64 KiB
        // default would make a large batch a short write to handle here.
        conn.set_buffer_limit(None);
        Ok(Session { conn })
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

/// One client connection's TLS state: plaintext in, records out; records in, plaintext out.
/// No socket: the caller reads and writes.
pub struct Session {
    conn: ClientConnection,
}

impl Session {
    /// Queues plaintext; before the handshake ends rustls holds it and sends it after.
    pub fn seal(&mut self, plain: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(plain)
    }

    /// Queues a close_notify alert: nothing sealed after it.
    pub fn close(&mut self) {
        self.conn.send_close_notify();
    }

    /// The handshake resumed an earlier session (`--tls-resume`) rather than a full one.
    pub fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Writes queued records to `w` until none are left (`Ok(true)`) or `w` would block
    /// (`Ok(false)`; the rest stays queued).
    pub fn write_to(&mut self, w: &mut dyn Write) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(w) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Takes ciphertext read from the socket, appends what it decrypts to `plain`.
    /// `Ok(false)` once the broker sent close_notify; a TLS error (bad certificate, alert,
    /// corrupt record) is `InvalidData` with rustls's description.
    pub fn open(&mut self, mut raw: &[u8], plain: &mut BytesMut) -> io::Result<bool> {
        let mut open = true;
        while !raw.is_empty() {
            if self.conn.read_tls(&mut raw)? == 0 {
                // close_notify seen: rustls reads nothing more.
                return Ok(false);
            }
            let st = self
                .conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let n = st.plaintext_bytes_to_read();
            if n > 0 {
                let at = plain.len();
                plain.resize(at + n, 0);
                self.conn.reader().read_exact(&mut plain[at..])?;
            }
            open &= !st.peer_has_closed();
        }
        Ok(open)
    }

    /// Completes the handshake over a blocking socket (its read and write timeouts bound it).
    pub fn handshake<S: Read + Write>(&mut self, s: &mut S) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        let mut early = BytesMut::new();
        loop {
            while self.conn.wants_write() {
                self.conn.write_tls(s)?;
            }
            if !self.conn.is_handshaking() {
                return Ok(());
            }
            let n = s.read(&mut chunk)?;
            if n == 0 || !self.open(&chunk[..n], &mut early)? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "broker closed the connection during the TLS handshake",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The session stepped against a rustls server in memory, no sockets; the PKI is made by
    //! the `openssl` CLI (as compare.sh makes it), and the tests skip where it is missing.
    use std::path::PathBuf;
    use std::process::Command;

    use clap::Parser;
    use rustls::{ServerConfig, ServerConnection};

    use super::*;

    /// A CA and a server certificate for localhost (X.509 v3, SAN) in a fresh directory.
    fn pki(tag: &str) -> Option<PathBuf> {
        let dir =
            std::env::temp_dir().join(format!("ringmq-bench-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let d = dir.display();
        let script = format!(
            "set -e; cd {d}; k() {{ openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1; }}
             k ca.key; openssl req -x509 -new -key ca.key -days 1 -subj /CN=ca \
               -addext basicConstraints=critical,CA:true -out ca.pem
             k server.key; openssl req -new -key server.key -subj /CN=localhost -out s.csr
             printf 'basicConstraints=CA:FALSE\\nsubjectAltName=DNS:localhost,IP:127.0.0.1\\n' >s.ext
             openssl x509 -req -in s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
               -extfile s.ext -out server.pem"
        );
        let ok = Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .ok()?
            .status
            .success();
        if !ok {
            eprintln!("openssl missing or failing: test skipped");
        }
        ok.then_some(dir)
    }

    fn client(dir: &Path, name: &str) -> TlsClient {
        let ca = dir.join("ca.pem").display().to_string();
        let a = Args::parse_from(["ringmq-bench", "--tls-ca", &ca, "--tls-server-name", name]);
        TlsClient::from_args(&a)
            .expect("client config")
            .expect("TLS on")
    }

    fn server(dir: &Path) -> ServerConnection {
        let certs = read_certs(&dir.join("server.pem")).expect("server cert");
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server key");
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        ServerConnection::new(Arc::new(cfg)).expect("server")
    }

    /// Moves records both ways until neither side has any left; returns the server's
    /// plaintext and the client's (or the client's error).
    fn step(c: &mut Session, s: &mut ServerConnection, got: &mut BytesMut) -> io::Result<Vec<u8>> {
        let mut at_server = Vec::new();
        for _ in 0..20 {
            let mut wire = Vec::new();
            c.write_to(&mut wire)?;
            if !wire.is_empty() {
                // An empty read would tell the server the client closed.
                s.read_tls(&mut wire.as_slice())?;
            }
            let st = s.process_new_packets().map_err(io::Error::other)?;
            let mut buf = vec![0; st.plaintext_bytes_to_read()];
            s.reader().read_exact(&mut buf)?;
            at_server.extend(buf);
            let mut back = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut back)?;
            }
            if !back.is_empty() && !c.open(&back, got)? {
                break;
            }
            if wire.is_empty() && back.is_empty() {
                break;
            }
        }
        Ok(at_server)
    }

    #[test]
    fn session_carries_mqtt_both_ways_and_sees_close_notify() {
        let Some(dir) = pki("ok") else { return };
        let (mut c, mut s) = (
            client(&dir, "localhost").session().expect("session"),
            server(&dir),
        );
        // Queued before the handshake: sent once it is done.
        c.seal(b"CONNECT").expect("seal");
        let mut got = BytesMut::new();
        assert_eq!(
            step(&mut c, &mut s, &mut got).expect("handshake"),
            b"CONNECT"
        );
        assert!(!s.is_handshaking() && !c.resumed());
        s.writer().write_all(b"CONNACK").expect("server write");
        s.send_close_notify();
        let mut back = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut back).expect("server records");
        }
        assert!(
            !c.open(&back, &mut got).expect("open"),
            "close_notify ends it"
        );
        assert_eq!(&got[..], b"CONNACK");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn wrong_server_name_is_refused() {
        let Some(dir) = pki("name") else { return };
        let (mut c, mut s) = (
            client(&dir, "example.org").session().expect("session"),
            server(&dir),
        );
        let err = step(&mut c, &mut s, &mut BytesMut::new()).expect_err("must fail");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
