#!/usr/bin/env python3
"""MQTT over TLS (mqtts://) and secure WebSocket (wss://) with Eclipse
paho-mqtt 2.x against a real ringmq.

Makes a throw-away PKI with the openssl CLI (a CA, a server certificate for
localhost/127.0.0.1, client certificates CN=alice and CN=bob; no key is
committed), starts the broker itself (binary from $RINGMQ_BIN, default
target/debug/ringmq) twice with mqtt://, mqtts:// and wss:// listeners on
free ports, the second with --tls-client-ca (client certificates required).
Runs each check, prints "N passed, M failed" and exits 1 if any check
failed. Every wait is bounded; the script is cut off after 180 s.

    RINGMQ_BIN=target/debug/ringmq .venv/bin/python tests/tls_paho.py
"""

import os
import queue
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

import paho.mqtt.client as mqtt

import ringmq_proc

TIMEOUT = 5.0

SERVER_EXT = """basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
"""
CLIENT_EXT = """basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
"""


class Pki:
    """CA, server and client certificates in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ringmq-paho-pki-")
        self.ca = self.path("ca.pem")
        self.openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-out", "ca.key")
        self.openssl("req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "3650",
                     "-subj", "/CN=ringmq paho test CA",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.pem")
        with open(self.path("server.ext"), "w") as f:
            f.write(SERVER_EXT)
        with open(self.path("client.ext"), "w") as f:
            f.write(CLIENT_EXT)
        self.server = self.issue("server", "ringmq-test-server", "server.ext", 1001)
        self.alice = self.issue("alice", "alice", "client.ext", 2001)
        self.bob = self.issue("bob", "bob", "client.ext", 2002)

    def path(self, name):
        return os.path.join(self.dir, name)

    def openssl(self, *args):
        subprocess.run(["openssl", *args], cwd=self.dir, check=True, timeout=30,
                       stdin=subprocess.DEVNULL, capture_output=True)

    def issue(self, name, cn, ext, serial):
        """(cert, key) for CN=cn signed by the CA."""
        self.openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-out", f"{name}.key")
        self.openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/CN={cn}",
                     "-out", f"{name}.csr")
        self.openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                     "-set_serial", str(serial), "-days", "365", "-sha256", "-extfile", ext,
                     "-out", f"{name}.pem")
        return self.path(f"{name}.pem"), self.path(f"{name}.key")

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Broker:
    def __init__(self, pki, *extra):
        cert, key = pki.server
        self.log = tempfile.TemporaryFile(mode="w+")
        try:
            self.proc, line = ringmq_proc.start(
                ["--listen", "mqtt://127.0.0.1:0", "--listen", "mqtts://127.0.0.1:0",
                 "--listen", "wss://127.0.0.1:0/mqtt", "--tls-cert", cert, "--tls-key", key,
                 "--shards", "2", "--log-level", "info", *extra], stderr=self.log)
        except RuntimeError as e:
            self.log.seek(0)
            raise RuntimeError(f"{e}\n--- ringmq stderr ---\n{self.log.read()[-4000:]}") from None
        m = re.search(r"mqtt://127\.0\.0\.1:(\d+)", line)
        t = re.search(r"mqtts://127\.0\.0\.1:(\d+)", line)
        w = re.search(r"wss://127\.0\.0\.1:(\d+)(/\S*)", line)
        if not m or not t or not w:
            self.stop()
            raise RuntimeError(f"ready line lacks mqtt://, mqtts:// or wss://: {line!r}")
        self.mqtt_port = int(m.group(1))
        self.mqtts_port = int(t.group(1))
        self.wss_port = int(w.group(1))
        self.wss_path = w.group(2)

    def stop(self):
        return ringmq_proc.stop(self.proc)


class Client:
    """A paho client over mqtts, wss or tcp whose events land in queues."""

    def __init__(self, broker, pki, client_id, transport="mqtts", cert=None,
                 protocol=mqtt.MQTTv311, expect_ok=True):
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             transport="websockets" if transport == "wss" else "tcp",
                             protocol=protocol)
        if transport == "wss":
            self.c.ws_set_options(path=broker.wss_path)
            port = broker.wss_port
        elif transport == "mqtts":
            port = broker.mqtts_port
        else:
            port = broker.mqtt_port
        if transport != "tcp":
            certfile, keyfile = cert if cert else (None, None)
            self.c.tls_set(ca_certs=pki.ca, certfile=certfile, keyfile=keyfile,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.connacks = queue.Queue()
        self.subacks = queue.Queue()
        self.messages = queue.Queue()
        self.c.on_connect = lambda c, u, flags, rc, props: self.connacks.put(rc)
        self.c.on_subscribe = lambda c, u, mid, rcs, props: self.subacks.put((mid, rcs))
        self.c.on_message = lambda c, u, msg: self.messages.put(msg)
        # A close before the CONNACK (a refused client certificate under
        # TLS 1.3 shows only then) ends the wait for it at once.
        self.c.on_disconnect = lambda c, u, flags, rc, props: self.connacks.put(rc)
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        if expect_ok:
            rc = self.connacks.get(timeout=TIMEOUT)
            assert not rc.is_failure, f"CONNACK refused: {rc}"

    def subscribe(self, topic, qos):
        result, mid = self.c.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS, result
        got_mid, rcs = self.subacks.get(timeout=TIMEOUT)
        assert got_mid == mid
        return [rc.value for rc in rcs]

    def publish(self, topic, payload, qos=0):
        info = self.c.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=TIMEOUT)
        assert info.is_published(), f"publish to {topic} at QoS {qos} not acknowledged"

    def recv(self):
        try:
            return self.messages.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no message within {TIMEOUT} s") from None

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def connect_fails(broker, pki, client_id, transport, cert=None):
    """True when a TLS client cannot get a CONNACK (handshake refused or
    the connection closed right after it)."""
    try:
        c = Client(broker, pki, client_id, transport=transport, cert=cert, expect_ok=False)
    except (ssl.SSLError, OSError, mqtt.WebsocketConnectionError):
        return True
    try:
        rc = c.connacks.get(timeout=TIMEOUT)
        return rc.is_failure
    except queue.Empty:
        return True
    finally:
        c.c.loop_stop()
        try:
            c.c.socket() and c.c.socket().close()
        except Exception:
            pass


# --------------------------------------------------------------------------
# Checks against a broker without client certificates (b) and one that
# requires them (bc).


def check_pubsub(b, pki, transport, protocol, tag):
    sub = Client(b, pki, f"paho-{tag}-sub", transport=transport, protocol=protocol)
    pub = Client(b, pki, f"paho-{tag}-pub", transport=transport, protocol=protocol)
    assert sub.subscribe(f"paho/{tag}/#", 2) == [2]
    for qos in (0, 1, 2):
        payload = f"{tag} qos {qos}".encode()
        pub.publish(f"paho/{tag}/{qos}", payload, qos)
        m = sub.recv()
        assert (m.topic, m.payload, m.qos) == (f"paho/{tag}/{qos}", payload, qos), \
            (m.topic, m.payload, m.qos)
    pub.close()
    sub.close()


def test_mqtts_v311(b, bc, pki):
    check_pubsub(b, pki, "mqtts", mqtt.MQTTv311, "mqtts311")


def test_mqtts_v5(b, bc, pki):
    check_pubsub(b, pki, "mqtts", mqtt.MQTTv5, "mqtts5")


def test_wss_v311(b, bc, pki):
    check_pubsub(b, pki, "wss", mqtt.MQTTv311, "wss311")


def test_wss_v5(b, bc, pki):
    check_pubsub(b, pki, "wss", mqtt.MQTTv5, "wss5")


def test_cross_transport(b, bc, pki):
    subs = {t: Client(b, pki, f"paho-x-{t}", transport=t) for t in ("tcp", "mqtts", "wss")}
    for c in subs.values():
        assert c.subscribe("paho/x/#", 1) == [1]
    for t, c in subs.items():
        c.publish(f"paho/x/{t}", t.encode(), 1)
        for name, other in subs.items():
            m = other.recv()
            assert (m.topic, m.payload) == (f"paho/x/{t}", t.encode()), (name, m.topic)
    for c in subs.values():
        c.close()


def test_client_cert_mqtts_and_wss(b, bc, pki):
    alice = Client(bc, pki, "paho-cc-alice", transport="mqtts", cert=pki.alice,
                   protocol=mqtt.MQTTv5)
    bob = Client(bc, pki, "paho-cc-bob", transport="wss", cert=pki.bob)
    assert alice.subscribe("paho/cc", 1) == [1]
    bob.publish("paho/cc", b"from bob over wss", 1)
    m = alice.recv()
    assert m.payload == b"from bob over wss", m.payload
    bob.close()
    alice.close()


def test_client_cert_missing_is_refused(b, bc, pki):
    assert connect_fails(bc, pki, "paho-cc-none", "mqtts"), "mqtts without a cert connected"
    assert connect_fails(bc, pki, "paho-cc-none-wss", "wss"), "wss without a cert connected"
    # And the broker still serves a good client.
    alice = Client(bc, pki, "paho-cc-after", transport="mqtts", cert=pki.alice)
    assert alice.subscribe("paho/cc/after", 1) == [1]
    alice.publish("paho/cc/after", b"ok", 1)
    assert alice.recv().payload == b"ok"
    alice.close()


def test_untrusted_server_is_refused_by_the_client(b, bc, pki):
    other = Pki()
    try:
        assert connect_fails(b, other, "paho-untrusted", "mqtts"), \
            "a client trusting another CA connected"
    finally:
        other.remove()


TESTS = [v for k, v in list(globals().items()) if k.startswith("test_")]


def main():
    signal.signal(signal.SIGALRM, lambda *_: (print("tls_paho.py: global timeout"), os._exit(1)))
    signal.alarm(180)
    if not os.path.exists(ringmq_proc.BIN):
        print(f"RINGMQ_BIN {ringmq_proc.BIN} does not exist (run cargo build first)")
        return 1
    pki = Pki()
    brokers = []
    passed = failed = 0
    try:
        try:
            brokers.append(Broker(pki))
            brokers.append(Broker(pki, "--tls-client-ca", pki.ca))
        except Exception:
            traceback.print_exc()
            print("FAIL broker with TLS listeners did not start")
            print(f"0 passed, {len(TESTS)} failed")
            return 1
        b, bc = brokers
        passed, failed = ringmq_proc.run_checks(TESTS, (b, bc, pki), [x.proc for x in brokers])
    finally:
        for x in brokers:
            code = x.stop()
            if code != 0:
                print(f"FAIL broker exit status after SIGTERM: {code}")
                failed += 1
        pki.remove()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
