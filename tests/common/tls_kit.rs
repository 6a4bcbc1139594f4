//! Helpers for the TLS tests (`tests/tls.rs`): a throw-away PKI made with
//! the `openssl` CLI at run time (no private key is ever committed), the
//! broker started with TLS listeners, rumqttc clients over rustls, and a
//! blocking rustls client for what only the handshake shows (the server's
//! certificate, ALPN, the protocol version) and for the hostile cases.
//!
//! Two rustls versions meet here: rumqttc 0.24 speaks rustls 0.22 (reached
//! through `rumqttc::tokio_rustls::rustls`), the blocking client uses the
//! crate's own rustls 0.23. Both read PEM through the one `rustls-pki-types`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::*;

/// Subject CN of the broker's first and second (reload) certificates.
pub const SERVER_CN: &str = "ringmq-test-server";
pub const SERVER2_CN: &str = "ringmq-test-server-2";
/// How long a handshake (or its refusal) may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

static PKI_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A client certificate and its key (PEM files).
#[derive(Debug, Clone)]
pub struct ClientCert {
    pub cn: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The test PKI, in a temporary directory removed on drop.
pub struct Pki {
    pub dir: PathBuf,
    /// The CA that signs the server and the good client certificates.
    pub ca: PathBuf,
    /// CN=ringmq-test-server, SAN DNS:localhost + IP:127.0.0.1; EC P-256
    /// key in SEC1 form (`BEGIN EC PRIVATE KEY`).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// The same key in PKCS#8 form (`BEGIN PRIVATE KEY`).
    pub server_key_pkcs8: PathBuf,
    /// CN=ringmq-test-server-2, other serial, RSA 2048 key in PKCS#1 form
    /// (`BEGIN RSA PRIVATE KEY`): what a SIGHUP reload switches to.
    pub server2_cert: PathBuf,
    pub server2_key: PathBuf,
    /// CN=alice and CN=bob, signed by `ca` (PKCS#8 EC keys).
    pub alice: ClientCert,
    pub bob: ClientCert,
    /// CN=alice, signed by `ca`, valid 2020-01-01 .. 2021-01-01 only.
    pub expired: ClientCert,
    /// Another CA nobody configured, and a CN=alice certificate it signed.
    pub rogue_ca: PathBuf,
    pub rogue: ClientCert,
}

impl Pki {
    /// Makes every key and certificate (about a second of `openssl`).
    pub fn generate() -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "ringmq-pki-{}-{}",
            std::process::id(),
            PKI_SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("newcerts")).expect("create the PKI directory");
        let p = |name: &str| dir.join(name);

        make_ca(&dir, "ca", "ringmq test CA");
        make_ca(&dir, "rogue-ca", "some other CA");
        ec_key(&dir, "server.key", false);
        openssl(&dir, &["pkcs8", "-topk8", "-nocrypt", "-in", "server.key"])
            .with_out("server-pkcs8.key");
        write(&p("server.ext"), SERVER_EXT);
        write(&p("client.ext"), CLIENT_EXT);
        sign(&dir, "server", SERVER_CN, "ca", "server.ext", 1001);
        openssl(
            &dir,
            &["genrsa", "-traditional", "-out", "server2.key", "2048"],
        )
        .run();
        sign(&dir, "server2", SERVER2_CN, "ca", "server.ext", 1002);
        let client = |name: &str, cn: &str, ca: &str, serial: u32| {
            ec_key(&dir, &format!("{name}.key"), true);
            sign(&dir, name, cn, ca, "client.ext", serial);
            ClientCert {
                cn: cn.to_string(),
                cert: p(&format!("{name}.pem")),
                key: p(&format!("{name}.key")),
            }
        };
        let alice = client("alice", "alice", "ca", 2001);
        let bob = client("bob", "bob", "ca", 2002);
        let rogue = client("rogue", "alice", "rogue-ca", 3001);
        let expired = make_expired(&dir);
        Pki {
            ca: p("ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server.key"),
            server_key_pkcs8: p("server-pkcs8.key"),
            server2_cert: p("server2.pem"),
            server2_key: p("server2.key"),
            alice,
            bob,
            expired,
            rogue_ca: p("rogue-ca.pem"),
            rogue,
            dir,
        }
    }

    /// `--tls-cert SERVER --tls-key SERVER_KEY`.
    pub fn server_args(&self) -> Vec<String> {
        tls_args(&self.server_cert, &self.server_key)
    }

    /// Copies `from` to `name` in the PKI directory (a file the broker
    /// reads and a reload test replaces); returns the new path.
    pub fn copy_as(&self, from: &Path, name: &str) -> PathBuf {
        let to = self.dir.join(name);
        replace_file(from, &to);
        to
    }

    /// A file in the PKI directory with `text` in it.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let to = self.dir.join(name);
        write(&to, text);
        to
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `--tls-cert CERT --tls-key KEY`.
pub fn tls_args(cert: &Path, key: &Path) -> Vec<String> {
    vec![
        "--tls-cert".into(),
        path_str(cert),
        "--tls-key".into(),
        path_str(key),
    ]
}

/// Replaces `to` with a copy of `from` in one rename, so that the broker
/// never reads half a file.
pub fn replace_file(from: &Path, to: &Path) {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap_or_else(|e| panic!("copy {from:?}: {e}"));
    std::fs::rename(&tmp, to).unwrap_or_else(|e| panic!("rename to {to:?}: {e}"));
}

pub fn path_str(p: &Path) -> String {
    p.to_str().expect("UTF-8 temp path").to_string()
}

const SERVER_EXT: &str = "basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
";

const CLIENT_EXT: &str = "basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
";

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
}

/// One `openssl` command run in `dir`.
struct Openssl<'a> {
    dir: &'a Path,
    args: Vec<String>,
}

fn openssl<'a>(dir: &'a Path, args: &[&str]) -> Openssl<'a> {
    Openssl {
        dir,
        args: args.iter().map(|s| s.to_string()).collect(),
    }
}

impl Openssl<'_> {
    /// Runs it; panics with its stderr unless it succeeds. Returns stdout.
    fn run(&self) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(&self.args)
            .current_dir(self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl (is the openssl CLI installed?)");
        assert!(
            out.status.success(),
            "openssl {} failed: {}",
            self.args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Runs it and writes its stdout to `name` in the directory.
    fn with_out(&self, name: &str) {
        let out = self.run();
        std::fs::write(self.dir.join(name), out).expect("write openssl output");
    }
}

/// An EC P-256 key: PKCS#8 (`genpkey`) or SEC1 (`ecparam`).
fn ec_key(dir: &Path, name: &str, pkcs8: bool) {
    if pkcs8 {
        let curve = "ec_paramgen_curve:P-256";
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                curve,
                "-out",
                name,
            ],
        )
        .run();
    } else {
        openssl(
            dir,
            &[
                "ecparam",
                "-genkey",
                "-name",
                "prime256v1",
                "-noout",
                "-out",
                name,
            ],
        )
        .run();
    }
}

/// `NAME.key` and the self-signed `NAME.pem` of a CA.
fn make_ca(dir: &Path, name: &str, cn: &str) {
    let key = format!("{name}.key");
    ec_key(dir, &key, true);
    let subj = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &key,
            "-sha256",
            "-days",
            "3650",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            &format!("{name}.pem"),
        ],
    )
    .run();
}

/// `NAME.pem` for the existing `NAME.key`, signed by CA `ca`.
fn sign(dir: &Path, name: &str, cn: &str, ca: &str, ext: &str, serial: u32) {
    let csr = format!("{name}.csr");
    let subj = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &subj,
            "-out",
            &csr,
        ],
    )
    .run();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            &serial.to_string(),
            "-days",
            "365",
            "-sha256",
            "-extfile",
            ext,
            "-out",
            &format!("{name}.pem"),
        ],
    )
    .run();
}

/// CN=alice signed by the CA with a validity wholly in the past: `x509
/// -req -days` cannot go negative (and OpenSSL 3.0 lacks `-not_before`),
/// so `openssl ca` with explicit dates and a minimal configuration.
fn make_expired(dir: &Path) -> ClientCert {
    let d = path_str(dir);
    write(&dir.join("index.txt"), "");
    write(&dir.join("serial"), "4001\n");
    write(
        &dir.join("ca.cnf"),
        &format!(
            "[ca]\ndefault_ca = test_ca\n[test_ca]\ndatabase = {d}/index.txt\n\
             new_certs_dir = {d}/newcerts\nserial = {d}/serial\ndefault_md = sha256\n\
             policy = any\nunique_subject = no\nemail_in_dn = no\n[any]\ncommonName = supplied\n\
             [client_ext]\n{CLIENT_EXT}"
        ),
    );
    ec_key(dir, "expired.key", true);
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "expired.key",
            "-subj",
            "/CN=alice",
            "-out",
            "expired.csr",
        ],
    )
    .run();
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            "expired.csr",
            "-out",
            "expired.pem",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20210101000000Z",
            "-extensions",
            "client_ext",
            "-notext",
        ],
    )
    .run();
    ClientCert {
        cn: "alice".into(),
        cert: dir.join("expired.pem"),
        key: dir.join("expired.key"),
    }
}

// ---------------------------------------------------------------------------
// The broker with TLS listeners
// ---------------------------------------------------------------------------

/// `ringmq --listen mqtt://127.0.0.1:0 --listen mqtts://127.0.0.1:0
/// --listen wss://127.0.0.1:0/mqtt --tls-cert .. --tls-key ..`, then
/// `extra`. Panics with the broker's stderr when it does not come up (a
/// broker without TLS refuses the `mqtts://` listener and exits).
pub fn start_tls(pki: &Pki, extra: &[&str]) -> Broker {
    start_tls_with(&pki.server_args(), extra)
}

/// Same, with the given `--tls-cert`/`--tls-key` arguments.
pub fn start_tls_with(tls: &[String], extra: &[&str]) -> Broker {
    let mut args: Vec<&str> = tls.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    let listeners = ["mqtts://127.0.0.1:0", "wss://127.0.0.1:0/mqtt"];
    let b = Broker::start_listeners(&listeners, &args);
    assert!(
        b.mqtts_urls().len() == 1 && b.wss_urls().len() == 1,
        "ready line lacks the mqtts:// or wss:// listener: {:?}",
        b.ready_line()
    );
    b
}

// ---------------------------------------------------------------------------
// rumqttc over rustls 0.22
// ---------------------------------------------------------------------------

/// A rumqttc TLS configuration trusting `ca`, with a client certificate
/// when `client` is given, offering ALPN `mqtt` when `alpn`.
pub fn rumqttc_tls(
    ca: &Path,
    client: Option<&ClientCert>,
    alpn: bool,
) -> rumqttc::TlsConfiguration {
    use rumqttc::tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(ca) {
        roots.add(cert).expect("add the test CA");
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match client {
        Some(c) => builder
            .with_client_auth_cert(read_certs(&c.cert), read_key(&c.key))
            .expect("client certificate and key"),
        None => builder.with_no_client_auth(),
    };
    if alpn {
        config.alpn_protocols = vec![b"mqtt".to_vec()];
    }
    rumqttc::TlsConfiguration::Rustls(Arc::new(config))
}

/// Options for a 3.1.1 client of the broker's mqtts:// listener.
pub fn mqtts_options(b: &Broker, id: &str, tls: rumqttc::TlsConfiguration) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", b.mqtts_port());
    o.set_transport(rumqttc::Transport::tls_with_config(tls));
    o
}

/// Options for a 3.1.1 client of the broker's wss:// listener.
pub fn wss_options(b: &Broker, id: &str, tls: rumqttc::TlsConfiguration) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, b.wss_url(), b.wss_port());
    o.set_transport(rumqttc::Transport::wss_with_config(tls));
    o
}

/// Connects (clean session); panics unless the CONNACK accepts.
pub async fn connect_tls(o: rumqttc::MqttOptions, id: &str) -> MqttClient {
    let (c, ack) = MqttClient::connect_options(o, id.to_string(), ConnectOpts::default()).await;
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success, "{id}");
    c
}

/// Tries to connect: `Ok` with an accepting CONNACK, `Err` with what went
/// wrong (TLS error, refusal, close, or no CONNACK within `timeout`).
pub async fn try_connect(o: rumqttc::MqttOptions, timeout: Duration) -> Result<(), String> {
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(o, 10);
    let attempt = async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => {
                    return match a.code {
                        rumqttc::ConnectReturnCode::Success => Ok(()),
                        code => Err(format!("CONNACK {code:?}")),
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("no CONNACK nor error within {timeout:?}")),
    }
}

pub fn read_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .unwrap_or_else(|e| panic!("read {path:?}: {e:?}"))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("parse {path:?}: {e:?}"));
    assert!(!certs.is_empty(), "no certificate in {path:?}");
    certs
}

pub fn read_key(path: &Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path).unwrap_or_else(|e| panic!("key {path:?}: {e:?}"))
}

// ---------------------------------------------------------------------------
// A blocking rustls 0.23 client: handshake-level checks
// ---------------------------------------------------------------------------

/// What a blocking client asks for.
#[derive(Clone, Default)]
pub struct ProbeOpts {
    pub client: Option<ClientCert>,
    /// ALPN protocols offered (none when empty).
    pub alpn: Vec<&'static [u8]>,
    /// TLS versions offered: 0x0303 (1.2) and/or 0x0304 (1.3); both when
    /// empty.
    pub versions: Vec<u16>,
    /// The SNI / verified name: "localhost" sends SNI, an IP sends none.
    pub server_name: Option<String>,
}

impl ProbeOpts {
    /// Defaults, with a client certificate.
    pub fn with_cert(cert: &ClientCert) -> ProbeOpts {
        ProbeOpts {
            client: Some(cert.clone()),
            ..ProbeOpts::default()
        }
    }
}

/// A rustls 0.23 client configuration trusting `ca`.
pub fn probe_config(ca: &Path, opts: &ProbeOpts) -> Arc<rustls::ClientConfig> {
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if opts.versions.is_empty() || opts.versions.contains(&0x0303) {
        versions.push(&rustls::version::TLS12);
    }
    if opts.versions.is_empty() || opts.versions.contains(&0x0304) {
        versions.push(&rustls::version::TLS13);
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(ca) {
        roots.add(cert).expect("add the test CA");
    }
    let builder = rustls::ClientConfig::builder_with_protocol_versions(&versions)
        .with_root_certificates(roots);
    let mut config = match &opts.client {
        Some(c) => builder
            .with_client_auth_cert(read_certs(&c.cert), read_key(&c.key))
            .expect("client certificate and key"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = opts.alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A finished handshake.
pub struct Handshake {
    /// Subject CN of the server's end-entity certificate.
    pub peer_cn: String,
    pub alpn: Option<Vec<u8>>,
    pub version: Option<rustls::ProtocolVersion>,
    pub tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

/// Connects to 127.0.0.1:`port` and completes a handshake within
/// `HANDSHAKE_TIMEOUT`; `Err` with the reason otherwise.
pub fn handshake(port: u16, ca: &Path, opts: &ProbeOpts) -> Result<Handshake, String> {
    let name = opts.server_name.as_deref().unwrap_or("127.0.0.1");
    handshake_with(port, probe_config(ca, opts), name)
}

/// Same with a prepared configuration (the storm makes thousands).
pub fn handshake_with(
    port: u16,
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> Result<Handshake, String> {
    let name = ServerName::try_from(server_name.to_string()).expect("server name");
    let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut sock = TcpStream::connect_timeout(&addr, HANDSHAKE_TIMEOUT)
        .map_err(|e| format!("tcp connect: {e}"))?;
    sock.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).unwrap();
    sock.set_write_timeout(Some(HANDSHAKE_TIMEOUT)).unwrap();
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    while conn.is_handshaking() {
        if Instant::now() > deadline {
            return Err(format!("handshake unfinished after {HANDSHAKE_TIMEOUT:?}"));
        }
        match conn.complete_io(&mut sock) {
            Ok((0, 0)) if conn.is_handshaking() => return Err("closed during handshake".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("handshake: {e}")),
        }
    }
    let der = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no server certificate")?;
    let peer_cn = subject_cn(der);
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    let version = conn.protocol_version();
    Ok(Handshake {
        peer_cn,
        alpn,
        version,
        tls: rustls::StreamOwned::new(conn, sock),
    })
}

/// The subject CN of a DER certificate.
pub fn subject_cn(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parse the certificate");
    let cn = cert.subject().iter_common_name().next();
    cn.and_then(|a| a.as_str().ok())
        .unwrap_or("<no CN>")
        .to_string()
}

/// A handshake, then a 3.1.1 CONNECT over it: `Ok` on an accepting
/// CONNACK, `Err` otherwise (with TLS 1.3 a refused client certificate
/// shows only here, after the client's side of the handshake is done).
pub fn tls_mqtt_connect(port: u16, ca: &Path, opts: &ProbeOpts, id: &str) -> Result<(), String> {
    let mut h = handshake(port, ca, opts)?;
    let connect = encode(&Packet::Connect(Box::new(connect_packet(
        id, true, 30, None,
    ))));
    h.tls
        .write_all(&connect)
        .map_err(|e| format!("write CONNECT: {e}"))?;
    let _ = h.tls.flush();
    let mut got = Vec::new();
    let deadline = Instant::now() + RECV_TIMEOUT;
    while got.len() < 4 {
        if Instant::now() > deadline {
            return Err(format!(
                "no CONNACK within {RECV_TIMEOUT:?} (got {got:02X?})"
            ));
        }
        let mut buf = [0u8; 64];
        match h.tls.read(&mut buf) {
            Ok(0) => return Err(format!("closed before CONNACK (got {got:02X?})")),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    match &got[..4] {
        [0x20, 0x02, _, 0x00] => Ok(()),
        other => Err(format!("not an accepting CONNACK: {other:02X?}")),
    }
}

/// The first TLS records a client sends (its ClientHello), made without a
/// socket: the hostile tests send parts of it.
pub fn client_hello(ca: &Path) -> Vec<u8> {
    let config = probe_config(ca, &ProbeOpts::default());
    let name = ServerName::try_from("localhost").expect("server name");
    let mut conn = rustls::ClientConnection::new(config, name).expect("client connection");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write ClientHello");
    }
    assert_eq!(out.first(), Some(&0x16), "a handshake record");
    out
}

// ---------------------------------------------------------------------------
// External tools
// ---------------------------------------------------------------------------

/// Runs a command with stdin closed, killed after `timeout`; returns
/// (success, stdout + stderr).
pub fn run_tool(cmd: &str, args: &[String], timeout: Duration) -> (bool, String) {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                break;
            }
        }
    }
    let out = child.wait_with_output().expect("collect output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `openssl s_client -connect 127.0.0.1:PORT -CAfile CA ARGS` with stdin
/// closed (it sends nothing and leaves after the handshake).
pub fn s_client(port: u16, ca: &Path, args: &[&str]) -> (bool, String) {
    let mut all = vec![
        "s_client".to_string(),
        "-connect".into(),
        format!("127.0.0.1:{port}"),
        "-CAfile".into(),
        path_str(ca),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    run_tool("openssl", &all, Duration::from_secs(10))
}
