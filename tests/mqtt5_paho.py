#!/usr/bin/env python3
"""MQTT 5.0 broker semantics, end to end, with Eclipse paho-mqtt 2.x.

Starts the broker binary itself ($RINGMQ_BIN, default target/debug/ringmq)
on free ports, once per configuration that a check needs, runs each check,
prints "N passed, M failed" and exits 1 if any check failed. Every wait is
bounded; the whole script is cut off after 240 s. Checks that paho's API
cannot express (exact packets, reason codes, topic aliases on the wire) use
the small raw MQTT 5 client at the top of this file.

    RINGMQ_BIN=target/debug/ringmq .venv/bin/python tests/mqtt5_paho.py
    .venv/bin/python tests/mqtt5_paho.py shared_exactly_once will_delay_published_after_delay
    .venv/bin/python tests/mqtt5_paho.py --list

Clients that must live on a given shard get ids from id_on(): the broker
places a client on shard FNV-1a-64(client id) % shards (2 here).
"""

import os
import queue
import re
import signal
import socket
import struct
import sys
import tempfile
import time
import traceback
from collections import namedtuple

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

import ringmq_proc

TIMEOUT = 5.0
SHARDS = 2
HOST = "127.0.0.1"


# ---------------------------------------------------------------- brokers


class Broker:
    def __init__(self, *extra):
        self.extra = extra
        self.log = tempfile.TemporaryFile(mode="w+")
        try:
            self.proc, line = ringmq_proc.start(
                ["--listen", f"mqtt://{HOST}:0", "--shards", str(SHARDS),
                 "--log-level", "info", *extra], stderr=self.log)
        except RuntimeError as e:
            raise RuntimeError(f"{e}: {self.log_tail()}") from None
        m = re.search(r"mqtt://127\.0\.0\.1:(\d+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"unparsable ready line {line!r}")
        self.port = int(m.group(1))

    def log_tail(self, n=15):
        self.log.seek(0)
        return "".join(self.log.readlines()[-n:]).strip()

    def stop(self):
        return ringmq_proc.stop(self.proc)


BROKERS = {}


def broker(*extra):
    """The shared broker for this set of extra arguments (started on first use)."""
    if extra not in BROKERS:
        BROKERS[extra] = Broker(*extra)
    return BROKERS[extra]


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def id_on(shard, tag):
    """The first of tag-0, tag-1, ... that the broker places on this shard."""
    i = 0
    while fnv1a64(f"{tag}-{i}".encode()) % SHARDS != shard:
        i += 1
    return f"{tag}-{i}"


# ------------------------------------------------------- raw MQTT 5 client

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT = 8, 9, 10, 11, 14
# Property ids used by name below.
P_SUBID, P_SEI, P_ACI, P_SKA, P_AUTHM, P_RPI = 0x0B, 0x11, 0x12, 0x13, 0x15, 0x17
P_REASON, P_RECVMAX, P_TAMAX, P_TA, P_USER, P_MAXPKT, P_SHARED = 0x1F, 0x21, 0x22, 0x23, 0x26, 0x27, 0x2A
# B byte, H u16, I u32, V varint, S UTF-8 string, D binary, P string pair.
PROP_TYPES = {0x01: "B", 0x02: "I", 0x03: "S", 0x08: "S", 0x09: "D", 0x0B: "V", 0x11: "I",
              0x12: "S", 0x13: "H", 0x15: "S", 0x16: "D", 0x17: "B", 0x18: "I", 0x19: "B",
              0x1A: "S", 0x1C: "S", 0x1F: "S", 0x21: "H", 0x22: "H", 0x23: "H", 0x24: "B",
              0x25: "B", 0x26: "P", 0x27: "I", 0x28: "B", 0x29: "B", 0x2A: "B"}

Packet = namedtuple("Packet", "type flags body")
Pub = namedtuple("Pub", "topic payload qos retain dup pid props")
EOF = "EOF"


def varint(n):
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(buf, i):
    value, mult = 0, 1
    for _ in range(4):
        if i >= len(buf):
            return None, i
        byte = buf[i]
        i += 1
        value += (byte & 0x7F) * mult
        if not byte & 0x80:
            return value, i
        mult *= 128
    raise ValueError("malformed variable byte integer")


def lstr(x):
    if isinstance(x, str):
        x = x.encode()
    return struct.pack(">H", len(x)) + x


def enc_props(props):
    out = bytearray()
    for pid, v in props:
        t = PROP_TYPES[pid]
        out += varint(pid)
        if t == "B":
            out.append(v)
        elif t == "H":
            out += struct.pack(">H", v)
        elif t == "I":
            out += struct.pack(">I", v)
        elif t == "V":
            out += varint(v)
        elif t in "SD":
            out += lstr(v)
        else:
            out += lstr(v[0]) + lstr(v[1])
    return varint(len(out)) + bytes(out)


def dec_props(buf, i):
    n, i = read_varint(buf, i)
    end, props = i + n, []
    while i < end:
        pid, i = read_varint(buf, i)
        t = PROP_TYPES[pid]
        if t == "B":
            v, i = buf[i], i + 1
        elif t == "H":
            v, i = struct.unpack_from(">H", buf, i)[0], i + 2
        elif t == "I":
            v, i = struct.unpack_from(">I", buf, i)[0], i + 4
        elif t == "V":
            v, i = read_varint(buf, i)
        else:
            items = []
            for _ in range(2 if t == "P" else 1):
                n2 = struct.unpack_from(">H", buf, i)[0]
                raw = bytes(buf[i + 2:i + 2 + n2])
                items.append(raw if t == "D" else raw.decode())
                i += 2 + n2
            v = tuple(items) if t == "P" else items[0]
        props.append((pid, v))
    assert i == end, "property length mismatch"
    return props, end


def prop(props, pid, default=None):
    return next((v for p, v in props if p == pid), default)


def dec_publish(p):
    b = p.body
    n = struct.unpack_from(">H", b, 0)[0]
    topic, i = bytes(b[2:2 + n]).decode(), 2 + n
    qos = (p.flags >> 1) & 3
    pid = None
    if qos:
        pid, i = struct.unpack_from(">H", b, i)[0], i + 2
    props, i = dec_props(b, i)
    return Pub(topic, bytes(b[i:]), qos, bool(p.flags & 1), bool(p.flags & 8), pid, props)


def dec_reason(p):
    """(reason code, properties) of a DISCONNECT (or CONNACK without its flags)."""
    b = p.body
    if not b:
        return 0, []
    return b[0], (dec_props(b, 1)[0] if len(b) > 1 else [])


def dec_ack_list(p):
    """(packet id, properties, reason codes) of a SUBACK / UNSUBACK."""
    pid = struct.unpack_from(">H", p.body, 0)[0]
    props, i = dec_props(p.body, 2)
    return pid, props, list(p.body[i:])


class Raw:
    """A hand-driven MQTT 5.0 client over one TCP socket."""

    def __init__(self, b, client_id, keepalive=30, clean=True, props=(), will=None,
                 expect_rc=0):
        self.sock = socket.create_connection((HOST, b.port), timeout=TIMEOUT)
        self.buf = bytearray()
        self.eof = False
        self.next_pid = 1
        flags = 0x02 if clean else 0
        payload = lstr(client_id)
        if will:
            topic, message, qos, retain, wprops = will
            flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
            payload += enc_props(wprops) + lstr(topic) + lstr(message)
        self.send(CONNECT, 0, lstr("MQTT") + bytes([5, flags]) + struct.pack(">H", keepalive)
                  + enc_props(props) + payload)
        p = self.expect(CONNACK)
        self.session_present = bool(p.body[0] & 1)
        self.rc = p.body[1]
        self.props = dec_props(p.body, 2)[0] if len(p.body) > 2 else []
        if expect_rc is not None:
            assert self.rc == expect_rc, f"CONNACK reason 0x{self.rc:02x}, expected 0x{expect_rc:02x}"

    def send(self, ptype, flags, body):
        self.sock.sendall(bytes([ptype << 4 | flags]) + varint(len(body)) + body)

    def _parse(self):
        if len(self.buf) < 2:
            return None
        n, i = read_varint(self.buf, 1)
        if n is None or len(self.buf) < i + n:
            return None
        p = Packet(self.buf[0] >> 4, self.buf[0] & 0x0F, bytes(self.buf[i:i + n]))
        del self.buf[:i + n]
        return p

    def read(self, timeout=TIMEOUT):
        """The next packet, EOF once the broker closed, or None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            p = self._parse()
            if p:
                return p
            if self.eof:
                return EOF
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                return None
            except OSError:
                data = b""
            if not data:
                self.eof = True
            self.buf += data

    def expect(self, ptype, timeout=TIMEOUT):
        p = self.read(timeout)
        assert p not in (None, EOF), f"expected packet type {ptype}, got {p or 'nothing'}"
        assert p.type == ptype, f"expected packet type {ptype}, got {p.type}: {p.body!r:.80}"
        return p

    def pid(self):
        self.next_pid = self.next_pid % 65535 + 1
        return self.next_pid

    def subscribe(self, *filters, props=()):
        """filters: (filter, options byte) pairs; returns the SUBACK reason codes."""
        pid = self.pid()
        body = struct.pack(">H", pid) + enc_props(props)
        for f, opts in filters:
            body += lstr(f) + bytes([opts])
        self.send(SUBSCRIBE, 2, body)
        got_pid, self.suback_props, codes = dec_ack_list(self.expect(SUBACK))
        assert got_pid == pid
        return codes

    def unsubscribe(self, *filters):
        pid = self.pid()
        self.send(UNSUBSCRIBE, 2, struct.pack(">H", pid) + enc_props([])
                  + b"".join(lstr(f) for f in filters))
        got_pid, self.unsuback_props, codes = dec_ack_list(self.expect(UNSUBACK))
        assert got_pid == pid
        return codes

    def publish(self, topic, payload, qos=0, retain=False, props=()):
        if isinstance(payload, str):
            payload = payload.encode()
        pid = self.pid() if qos else None
        body = lstr(topic) + (struct.pack(">H", pid) if qos else b"") + enc_props(props) + payload
        self.send(PUBLISH, (qos << 1) | int(retain), body)
        return pid

    def puback(self, pid):
        self.send(PUBACK, 0, struct.pack(">H", pid))

    def recv_publish(self, timeout=TIMEOUT):
        p = self.read(timeout)
        assert p not in (None, EOF), f"no PUBLISH within {timeout} s ({p or 'timeout'})"
        assert p.type == PUBLISH, f"expected PUBLISH, got packet type {p.type}"
        return dec_publish(p)

    def publishes_for(self, secs):
        """Every PUBLISH that arrives within secs."""
        out, deadline = [], time.monotonic() + secs
        while True:
            p = self.read(max(0.0, deadline - time.monotonic()))
            if p is None or p is EOF:
                return out
            if p.type == PUBLISH:
                out.append(dec_publish(p))

    def expect_disconnect(self, reason, timeout=TIMEOUT):
        """Reads until DISCONNECT (asserting its reason code: one, or any of a tuple),
        then expects the close."""
        reasons = reason if isinstance(reason, tuple) else (reason,)
        want = " or ".join(f"0x{r:02x}" for r in reasons)
        deadline = time.monotonic() + timeout
        while True:
            p = self.read(max(0.0, deadline - time.monotonic()))
            assert p is not None, f"no DISCONNECT ({want}) within {timeout} s"
            assert p is not EOF, f"connection closed without DISCONNECT ({want})"
            if p.type == DISCONNECT:
                break
        rc, _ = dec_reason(p)
        assert rc in reasons, f"DISCONNECT reason 0x{rc:02x}, expected {want}"
        self.expect_closed(max(0.5, deadline - time.monotonic()))

    def expect_closed(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            p = self.read(max(0.0, deadline - time.monotonic()))
            assert p is not None, f"connection still open after {timeout} s"
            if p is EOF:
                return

    def disconnect(self, reason=0, props=()):
        self.send(DISCONNECT, 0, bytes([reason]) + enc_props(props))
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def opts(qos, no_local=False, rap=False, rh=0):
    return qos | (4 if no_local else 0) | (8 if rap else 0) | (rh << 4)


# ------------------------------------------------------------ paho client


def props_of(ptype, **kw):
    p = Properties(ptype)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


class Client:
    """A paho client (MQTT 5.0 unless v5=False) whose events land in queues."""

    def __init__(self, b, client_id, v5=True, clean=True, keepalive=30, will=None,
                 expect_rc=0, **connect_props):
        kw = {} if v5 else {"clean_session": clean}
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, **kw)
        self.c.reconnect_delay_set(30, 60)   # never reconnect behind a check's back
        if will:
            topic, payload, qos, retain, wprops = will
            self.c.will_set(topic, payload, qos, retain,
                            properties=props_of(PacketTypes.WILLMESSAGE, **wprops) if wprops else None)
        self.connacks, self.subacks, self.unsubacks = queue.Queue(), queue.Queue(), queue.Queue()
        self.messages, self.disconnects = queue.Queue(), queue.Queue()
        self.c.on_connect = lambda c, u, flags, rc, props: self.connacks.put((flags, rc, props))
        self.c.on_subscribe = lambda c, u, mid, rcs, props: self.subacks.put((mid, rcs))
        self.c.on_unsubscribe = lambda c, u, mid, rcs, props: self.unsubacks.put((mid, rcs))
        self.c.on_message = lambda c, u, msg: self.messages.put(msg)
        self.c.on_disconnect = lambda c, u, flags, rc, props: self.disconnects.put(rc)
        if v5:
            cp = props_of(PacketTypes.CONNECT, **connect_props) if connect_props else None
            self.c.connect(HOST, b.port, keepalive, clean_start=clean, properties=cp)
        else:
            self.c.connect(HOST, b.port, keepalive)
        self.c.loop_start()
        try:
            flags, rc, self.connack_props = self.connacks.get(timeout=TIMEOUT)
        except queue.Empty:
            self.c.loop_stop()
            raise AssertionError(f"{client_id}: no CONNACK within {TIMEOUT} s") from None
        self.session_present = flags.session_present
        self.rc = rc.value if hasattr(rc, "value") else rc
        if expect_rc is not None:
            assert self.rc == expect_rc, f"{client_id}: CONNACK {rc}"

    def subscribe(self, topic, qos=1, options=None, **sub_props):
        sp = props_of(PacketTypes.SUBSCRIBE, **sub_props) if sub_props else None
        if options is not None:
            result, mid = self.c.subscribe(topic, options=options, properties=sp)
        else:
            result, mid = self.c.subscribe(topic, qos, properties=sp)
        assert result == mqtt.MQTT_ERR_SUCCESS, result
        got_mid, rcs = self.subacks.get(timeout=TIMEOUT)
        assert got_mid == mid
        return [rc.value for rc in rcs]

    def unsubscribe(self, topic):
        result, mid = self.c.unsubscribe(topic)
        assert result == mqtt.MQTT_ERR_SUCCESS, result
        got_mid, rcs = self.unsubacks.get(timeout=TIMEOUT)
        assert got_mid == mid
        return [rc.value for rc in rcs]

    def publish(self, topic, payload, qos=1, retain=False, wait=True, **pub_props):
        pp = props_of(PacketTypes.PUBLISH, **pub_props) if pub_props else None
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=pp)
        if wait:
            info.wait_for_publish(timeout=TIMEOUT)
            assert info.is_published(), f"publish to {topic} at QoS {qos} not acknowledged"
        return info

    def recv(self, timeout=TIMEOUT):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s") from None

    def recv_n(self, n, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            try:
                out.append(self.messages.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"{len(out)} of {n} messages within {timeout} s") from None
        return out

    def drain(self, secs):
        """Every message that arrives within secs."""
        out, deadline = [], time.monotonic() + secs
        while True:
            try:
                out.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                return out

    def expect_nothing(self, secs=0.5):
        try:
            msg = self.messages.get(timeout=secs)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {msg.topic}: {msg.payload[:60]!r}")

    def close(self, **disconnect_props):
        dp = props_of(PacketTypes.DISCONNECT, **disconnect_props) if disconnect_props else None
        self.c.disconnect(properties=dp)
        try:
            self.disconnects.get(timeout=TIMEOUT)
        except queue.Empty:
            pass
        self.c.loop_stop()

    def drop(self):
        """Close the socket without DISCONNECT."""
        self.c.loop_stop()
        self.c.socket().close()


def payloads(msgs):
    return [m.payload for m in msgs]


# =========================================================== 1. CONNACK


def test_connack_defaults():
    c = Raw(broker(), "cx-defaults")
    assert prop(c.props, P_RECVMAX) == 1024, c.props
    assert prop(c.props, P_MAXPKT) == 2097152, c.props
    assert prop(c.props, P_TAMAX) == 64, c.props
    assert prop(c.props, P_SHARED) == 1, c.props
    assert prop(c.props, P_ACI) is None, "Assigned Client Identifier for a client that had one"
    assert prop(c.props, P_SKA) is None, "Server Keep Alive although keepalive 30 is allowed"
    c.disconnect()


def test_connack_configured():
    b = broker("--receive-maximum", "20", "--max-packet-size", "100000",
               "--max-topic-alias", "5", "--max-keepalive", "60")
    c = Raw(b, "cx-configured", keepalive=30)
    assert prop(c.props, P_RECVMAX) == 20, c.props
    assert prop(c.props, P_MAXPKT) == 100000, c.props
    assert prop(c.props, P_TAMAX) == 5, c.props
    assert prop(c.props, P_SKA) is None, "Server Keep Alive although 30 <= --max-keepalive 60"
    c.disconnect()


def test_connack_assigned_client_id():
    b = broker()
    ids = []
    for _ in range(2):
        c = Client(b, "")
        aci = getattr(c.connack_props, "AssignedClientIdentifier", None)
        assert aci, f"no Assigned Client Identifier: {c.connack_props}"
        ids.append(aci)
        assert c.subscribe("cx/aci", 1) == [1]
        c.publish("cx/aci", b"works", 1)
        assert c.recv().payload == b"works"
        c.close()
    assert ids[0] != ids[1], f"same assigned id twice: {ids}"


def test_connack_server_keep_alive():
    b = broker("--max-keepalive", "60")
    for keepalive, expected in ((120, 60), (0, 60), (60, None), (30, None)):
        c = Raw(b, f"cx-ska-{keepalive}", keepalive=keepalive)
        got = prop(c.props, P_SKA)
        assert got == expected, f"keepalive {keepalive}: Server Keep Alive {got}, expected {expected}"
        c.disconnect()


# ==================================================== 2. session expiry


def session_roundtrip(pub_shard):
    b = broker()
    sid = id_on(0, "se-keep")
    sub = Client(b, sid, clean=True, SessionExpiryInterval=2)
    assert not sub.session_present
    assert sub.subscribe(f"se/keep/{pub_shard}", 1) == [1]
    sub.close()
    pub = Client(b, id_on(pub_shard, "se-keep-pub"))
    for i in range(3):
        pub.publish(f"se/keep/{pub_shard}", f"queued {i}".encode(), 1)
    pub.close()
    sub = Client(b, sid, clean=False, SessionExpiryInterval=2)
    assert sub.session_present, "session not kept within its expiry interval"
    got = sub.recv_n(3)
    assert payloads(got) == [b"queued 0", b"queued 1", b"queued 2"], payloads(got)
    assert all(m.qos == 1 for m in got)
    sub.expect_nothing(0.3)
    sub.close(SessionExpiryInterval=0)


def test_session_expiry_reconnect_within():
    session_roundtrip(pub_shard=0)


def test_session_expiry_reconnect_within_cross_shard():
    session_roundtrip(pub_shard=1)


def test_session_expiry_elapsed():
    b = broker()
    sid = id_on(1, "se-elapsed")
    sub = Client(b, sid, clean=True, SessionExpiryInterval=1)
    assert sub.subscribe("se/elapsed", 1) == [1]
    sub.close()
    pub = Client(b, id_on(0, "se-elapsed-pub"))
    pub.publish("se/elapsed", b"queued then expired", 1)
    time.sleep(2.2)
    sub = Client(b, sid, clean=False, SessionExpiryInterval=1)
    assert not sub.session_present, "session still present after its expiry interval"
    sub.expect_nothing(0.5)
    pub.publish("se/elapsed", b"no subscription left", 1)
    sub.expect_nothing(0.5)
    pub.close()
    sub.close(SessionExpiryInterval=0)


def test_session_expiry_zero_ends_at_disconnect():
    b = broker()
    for tag, kw in (("absent", {}), ("zero", {"SessionExpiryInterval": 0})):
        sid = id_on(0, f"se-{tag}")
        sub = Client(b, sid, clean=True, **kw)
        assert sub.subscribe(f"se/{tag}", 1) == [1]
        sub.close()
        pub = Client(b, id_on(1, f"se-{tag}-pub"))
        pub.publish(f"se/{tag}", b"nobody home", 1)
        pub.close()
        sub = Client(b, sid, clean=False, SessionExpiryInterval=10)
        assert not sub.session_present, f"session kept with expiry {tag}"
        sub.expect_nothing(0.5)
        sub.close(SessionExpiryInterval=0)


def test_session_expiry_disconnect_sets_zero():
    b = broker()
    sid = id_on(1, "se-disc0")
    sub = Client(b, sid, clean=True, SessionExpiryInterval=10)
    assert sub.subscribe("se/disc0", 1) == [1]
    sub.close(SessionExpiryInterval=0)
    sub = Client(b, sid, clean=False, SessionExpiryInterval=10)
    assert not sub.session_present, "DISCONNECT with Session Expiry Interval 0 kept the session"
    sub.close(SessionExpiryInterval=0)


def test_session_expiry_disconnect_extends():
    b = broker()
    sid = id_on(0, "se-ext")
    sub = Client(b, sid, clean=True, SessionExpiryInterval=1)
    assert sub.subscribe("se/ext", 1) == [1]
    sub.close(SessionExpiryInterval=30)
    time.sleep(2)
    sub = Client(b, sid, clean=False, SessionExpiryInterval=1)
    assert sub.session_present, "DISCONNECT's Session Expiry Interval 30 was not applied"
    sub.close(SessionExpiryInterval=0)


def test_session_expiry_disconnect_nonzero_after_zero():
    b = broker()
    sid = id_on(1, "se-bad")
    c = Raw(b, sid, clean=True)       # no Session Expiry Interval: 0
    assert c.subscribe(("se/bad", opts(1))) == [1]
    c.send(DISCONNECT, 0, bytes([0]) + enc_props([(P_SEI, 30)]))   # protocol error
    c.read(1.0)                        # the broker's DISCONNECT 0x82, or the close
    c.close()
    time.sleep(0.2)
    c = Raw(b, sid, clean=False, props=[(P_SEI, 10)])
    assert not c.session_present, "session kept after a 0 -> non-zero Session Expiry Interval"
    c.disconnect(props=[(P_SEI, 0)])


# ================================================== 3. receive maximum


def test_receive_maximum_client():
    b = broker()
    sub = Raw(b, id_on(0, "rm-sub"), props=[(P_RECVMAX, 2)])
    assert sub.subscribe(("rm/t", opts(1))) == [1]
    pub = Client(b, id_on(1, "rm-pub"))
    for i in range(10):
        pub.publish("rm/t", f"m{i}".encode(), 1, wait=False)
    first = sub.publishes_for(1.0)
    assert len(first) == 2, f"{len(first)} unacknowledged QoS 1 messages sent, Receive Maximum 2"
    seen = list(first)
    sub.puback(first[0].pid)
    more = sub.publishes_for(0.7)
    assert len(more) == 1, f"{len(more)} messages after one PUBACK, expected exactly 1"
    seen += more
    for m in seen[1:]:
        sub.puback(m.pid)
    deadline = time.monotonic() + TIMEOUT
    while len(seen) < 10 and time.monotonic() < deadline:
        for m in sub.publishes_for(0.3):
            seen.append(m)
            sub.puback(m.pid)
    got = [m.payload for m in seen]
    assert got == [f"m{i}".encode() for i in range(10)], got
    pub.close()
    sub.disconnect()


# ============================================ 4. client Maximum Packet Size


def test_client_max_packet_size():
    b = broker()
    sub = Client(b, id_on(0, "mps-sub"), MaximumPacketSize=200)
    assert sub.subscribe("mps/t", 1) == [1]
    pub = Client(b, id_on(1, "mps-pub"))
    pub.publish("mps/t", b"B" * 1000, 1)
    pub.publish("mps/t", b"small", 1)
    m = sub.recv()
    assert m.payload == b"small", f"got {len(m.payload)} bytes first: a packet over 200 bytes was sent"
    sub.expect_nothing(0.5)
    assert sub.disconnects.empty() and sub.c.is_connected(), "subscriber was disconnected"
    pub.publish("mps/t", b"still here", 1)
    assert sub.recv().payload == b"still here"
    pub.close()
    sub.close()


# ============================================ 5. broker's max packet size

BIG = bytes((i * 7919 + 13) & 0xFF for i in range(1 << 20))


def test_max_packet_size_1mib_v5():
    b = broker()
    sub = Client(b, id_on(1, "mp5-sub"))
    assert sub.subscribe("mp/big5", 1) == [1]
    pub = Client(b, id_on(0, "mp5-pub"))
    pub.publish("mp/big5", BIG, 1, ContentType="application/octet-stream",
                UserProperty=[("k", "v")], MessageExpiryInterval=60)
    m = sub.recv()
    assert m.topic == "mp/big5" and m.payload == BIG, f"{len(m.payload)} bytes"
    assert m.properties.ContentType == "application/octet-stream"
    pub.close()
    sub.close()


def test_max_packet_size_1mib_v311():
    b = broker()
    sub = Client(b, id_on(0, "mp3-sub"), v5=False)
    assert sub.subscribe("mp/big3", 1) == [1]
    pub = Client(b, id_on(1, "mp3-pub"), v5=False)
    pub.publish("mp/big3", BIG, 1)
    m = sub.recv()
    assert m.topic == "mp/big3" and m.payload == BIG, f"{len(m.payload)} bytes"
    pub.close()
    sub.close()


def test_max_packet_size_too_large():
    b = broker("--max-packet-size", "1000")
    watcher = Client(b, "mp-watcher")
    assert watcher.subscribe("mp/small", 1) == [1]
    c = Raw(b, "mp-too-large")
    assert prop(c.props, P_MAXPKT) == 1000, c.props
    c.publish("mp/small", b"x" * 2000, 1)
    c.expect_disconnect(0x95)
    watcher.expect_nothing(0.3)
    watcher.close()


# ============================================== 6. topic alias, inbound


def test_topic_alias_inbound():
    b = broker()
    sub = Client(b, id_on(1, "tai-sub"))
    assert sub.subscribe("a/#", 1) == [1]
    pub = Raw(b, id_on(0, "tai-pub"))
    pub.publish("a/b", b"first", 1, props=[(P_TA, 1)])
    pub.publish("", b"second", 1, props=[(P_TA, 1)])
    pub.publish("a/c", b"third", 1, props=[(P_TA, 1)])     # re-map alias 1
    pub.publish("", b"fourth", 1, props=[(P_TA, 1)])
    got = [(m.topic, m.payload) for m in sub.recv_n(4)]
    assert got == [("a/b", b"first"), ("a/b", b"second"), ("a/c", b"third"), ("a/c", b"fourth")], got
    pub.disconnect()
    sub.close()


def test_topic_alias_inbound_too_high():
    b = broker()
    sub = Client(b, "tah-sub")
    assert sub.subscribe("tah/#", 1) == [1]
    c = Raw(b, "tah-pub")
    c.publish("tah/x", b"alias 65", 1, props=[(P_TA, 65)])
    c.expect_disconnect(0x94)
    sub.expect_nothing(0.3)
    sub.close()


def test_topic_alias_inbound_zero():
    # MQTT-3.3.2-8 forbids alias 0 without naming the code: Topic Alias invalid
    # (0x94) or the generic Protocol Error (0x82, section 4.13) both conform.
    b = broker()
    sub = Client(b, "ta0-sub")
    assert sub.subscribe("ta0/#", 1) == [1]
    c = Raw(b, "ta0-pub")
    c.publish("ta0/x", b"alias 0", 1, props=[(P_TA, 0)])
    c.expect_disconnect((0x94, 0x82))
    sub.expect_nothing(0.3)
    sub.close()


def test_topic_alias_inbound_unknown():
    b = broker()
    sub = Client(b, "tau-sub")
    assert sub.subscribe("#", 0) == [0]
    sub.drain(0.3)   # retained messages left by other checks
    c = Raw(b, "tau-pub")
    c.publish("", b"unknown alias", 1, props=[(P_TA, 5)])
    c.expect_disconnect(0x82)
    for m in sub.drain(0.3):
        assert m.payload != b"unknown alias", f"forwarded on {m.topic!r}"
    sub.close()


# ============================================= 7. topic alias, outbound


def test_topic_alias_outbound():
    b = broker()
    sub = Raw(b, id_on(0, "tao-sub"), props=[(P_TAMAX, 10)])
    assert sub.subscribe(("tao/#", opts(1))) == [1]
    pub = Client(b, id_on(1, "tao-pub"))
    for i in range(3):
        pub.publish("tao/x", f"m{i}".encode(), 1)
    msgs = []
    for _ in range(3):
        m = sub.recv_publish()
        sub.puback(m.pid)
        msgs.append(m)
    assert [m.payload for m in msgs] == [b"m0", b"m1", b"m2"]
    alias = prop(msgs[0].props, P_TA)
    assert msgs[0].topic == "tao/x", msgs[0].topic
    assert alias is not None and 1 <= alias <= 10, f"first PUBLISH alias {alias}"
    for m in msgs[1:]:
        assert m.topic == "", f"later PUBLISH carries the topic {m.topic!r} again"
        assert prop(m.props, P_TA) == alias, f"alias {prop(m.props, P_TA)} != {alias}"
    pub.close()
    sub.disconnect()


def test_topic_alias_outbound_resolves():
    """Three topics, Topic Alias Maximum 2: aliases are used, stay within 2, resolve right."""
    b = broker()
    sub = Raw(b, id_on(1, "tar-sub"), props=[(P_TAMAX, 2)])
    assert sub.subscribe(("tar/#", opts(0))) == [0]
    pub = Client(b, id_on(0, "tar-pub"))
    sent = [f"tar/{t}" for t in "xxyyzzxxyyzzxyzx"]
    for i, t in enumerate(sent):
        pub.publish(t, str(i).encode(), 1)
    aliases, got, reused = {}, [], 0
    for _ in sent:
        m = sub.recv_publish()
        a = prop(m.props, P_TA)
        if a is not None:
            assert 1 <= a <= 2, f"alias {a} above the client's maximum 2"
            if m.topic:
                aliases[a] = m.topic
            else:
                assert a in aliases, f"empty topic with alias {a} never set"
                reused += 1
        else:
            assert m.topic, "empty topic without alias"
        got.append((m.topic or aliases[a], m.payload))
    assert got == [(t, str(i).encode()) for i, t in enumerate(sent)], got
    assert reused, "no PUBLISH used an alias (the same topic came twice in a row six times)"
    pub.close()
    sub.disconnect()


def test_topic_alias_outbound_not_without_maximum():
    b = broker()
    sub = Raw(b, id_on(0, "tan-sub"))
    assert sub.subscribe(("tan/#", opts(1))) == [1]
    pub = Client(b, id_on(1, "tan-pub"))
    for i in range(3):
        pub.publish("tan/x", f"m{i}".encode(), 1)
    for _ in range(3):
        m = sub.recv_publish()
        sub.puback(m.pid)
        assert m.topic == "tan/x", f"topic {m.topic!r}"
        assert prop(m.props, P_TA) is None, "Topic Alias sent to a client with maximum 0"
    pub.close()
    sub.disconnect()


# ===================================================== 8. message expiry


def queued_with_expiry(tag, wait):
    b = broker()
    sid = id_on(0, f"me-{tag}")
    sub = Client(b, sid, clean=True, SessionExpiryInterval=60)
    assert sub.subscribe(f"me/{tag}", 1) == [1]
    sub.close()
    pub = Client(b, id_on(1, f"me-{tag}-pub"))
    pub.publish(f"me/{tag}", b"expires", 1, MessageExpiryInterval=2)
    pub.publish(f"me/{tag}", b"stays", 1)
    pub.close()
    time.sleep(wait)
    sub = Client(b, sid, clean=False, SessionExpiryInterval=60)
    assert sub.session_present, "session (Session Expiry Interval 60) not kept"
    got = sub.drain(1.0)
    sub.close(SessionExpiryInterval=0)
    return got


def test_message_expiry_queued_delivered():
    got = queued_with_expiry("alive", 0.5)
    assert payloads(got) == [b"expires", b"stays"], payloads(got)
    mei = getattr(got[0].properties, "MessageExpiryInterval", None)
    assert mei is not None and 1 <= mei <= 2, f"forwarded Message Expiry Interval {mei}"
    assert not hasattr(got[1].properties, "MessageExpiryInterval"), "expiry added to a message without one"


def test_message_expiry_queued_expired():
    got = queued_with_expiry("dead", 3.0)
    assert payloads(got) == [b"stays"], payloads(got)


def test_message_expiry_retained():
    b = broker()
    pub = Client(b, id_on(0, "mer-pub"))
    pub.publish("me/retained", b"short-lived", 1, retain=True, MessageExpiryInterval=1)
    early = Client(b, id_on(1, "mer-early"))
    assert early.subscribe("me/retained", 1) == [1]
    m = early.recv()
    assert m.payload == b"short-lived" and m.retain
    mei = getattr(m.properties, "MessageExpiryInterval", None)
    assert mei is not None and mei <= 1, f"retained Message Expiry Interval {mei}"
    early.close()
    time.sleep(2)
    late = Client(b, id_on(1, "mer-late"))
    assert late.subscribe("me/retained", 1) == [1]
    late.expect_nothing(0.7)
    late.close()
    pub.close()


# ======================================================== 9. passthrough

PASS_PROPS = dict(PayloadFormatIndicator=1, ContentType="text/plain; charset=utf-8",
                  ResponseTopic="pt/reply/42", CorrelationData=b"\x00corr\xff",
                  UserProperty=[("k", "1"), ("other", "x"), ("k", "2"), ("ünï", "cödé")])


def passthrough(sub_shard):
    b = broker()
    sub = Client(b, id_on(sub_shard, "pt-sub"))
    assert sub.subscribe("pt/t", 1) == [1]
    pub = Client(b, id_on(0, "pt-pub"))
    pub.publish("pt/t", "héllo".encode(), 1, **PASS_PROPS)
    m = sub.recv()
    assert (m.topic, m.payload) == ("pt/t", "héllo".encode())
    p = m.properties
    for name, value in PASS_PROPS.items():
        got = getattr(p, name, None)
        assert got == value, f"{name}: {got!r}, expected {value!r}"
    pub.close()
    sub.close()


def test_passthrough_same_shard():
    passthrough(0)


def test_passthrough_cross_shard():
    passthrough(1)


def test_passthrough_v311_subscriber():
    b = broker()
    sub = Client(b, id_on(1, "pt3-sub"), v5=False)
    assert sub.subscribe("pt/v3", 1) == [1]
    pub = Client(b, id_on(0, "pt3-pub"))
    pub.publish("pt/v3", b"plain payload", 1, **PASS_PROPS)
    m = sub.recv()
    assert (m.topic, m.payload, m.qos) == ("pt/v3", b"plain payload", 1)
    pub.close()
    sub.close()


# =============================================== 10. subscription options


def test_subscription_identifiers():
    b = broker()
    sub = Client(b, id_on(0, "sid-sub"))
    assert sub.subscribe("s/#", 1, SubscriptionIdentifier=7) == [1]
    assert sub.subscribe("s/+", 1, SubscriptionIdentifier=9) == [1]
    assert sub.subscribe("plain/#", 1) == [1]
    pub = Client(b, id_on(1, "sid-pub"))
    pub.publish("s/x", b"two ids", 1)
    m = sub.recv()
    ids = getattr(m.properties, "SubscriptionIdentifier", None)
    assert ids is not None and sorted(ids) == [7, 9], f"Subscription Identifiers {ids}"
    sub.expect_nothing(0.5)   # once, not once per matching subscription
    pub.publish("plain/x", b"no id", 1)
    m = sub.recv()
    assert not hasattr(m.properties, "SubscriptionIdentifier"), m.properties
    pub.close()
    sub.close()


def test_no_local():
    b = broker()
    me = Client(b, id_on(0, "nl-me"))
    other = Client(b, id_on(1, "nl-other"))
    assert me.subscribe("nl/t", options=SubscribeOptions(qos=1, noLocal=True)) == [1]
    assert other.subscribe("nl/t", options=SubscribeOptions(qos=1, noLocal=True)) == [1]
    me.publish("nl/t", b"mine", 1)
    assert other.recv().payload == b"mine"
    me.expect_nothing(0.5)
    other.publish("nl/t", b"theirs", 1)
    assert me.recv().payload == b"theirs"
    other.expect_nothing(0.5)
    me.close()
    other.close()


def retain_as_published(rap):
    b = broker()
    topic = f"rap/{int(rap)}"
    sub = Client(b, id_on(0, f"rap-sub-{int(rap)}"))
    assert sub.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=rap)) == [1]
    sub.expect_nothing(0.2)
    pub = Client(b, id_on(1, f"rap-pub-{int(rap)}"))
    pub.publish(topic, b"live retained", 1, retain=True)
    m = sub.recv()
    assert m.payload == b"live retained"
    assert m.retain == rap, f"retain flag {int(m.retain)} with retainAsPublished={rap}"
    pub.publish(topic, b"", 1, retain=True)
    pub.close()
    sub.close()


def test_retain_as_published_true():
    retain_as_published(True)


def test_retain_as_published_false():
    retain_as_published(False)


def retain_handling(rh):
    b = broker()
    topic = f"rh/{rh}/x"
    pub = Client(b, id_on(1, f"rh-pub-{rh}"))
    pub.publish(topic, f"retained {rh}".encode(), 1, retain=True)
    sub = Client(b, id_on(0, f"rh-sub-{rh}"))
    rounds = []
    for _ in range(2):
        assert sub.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=rh)) == [1]
        got = sub.drain(0.7)
        assert all(m.retain and m.payload == f"retained {rh}".encode() for m in got), got
        rounds.append(len(got))
    pub.publish(topic, b"live", 1)
    assert sub.recv().payload == b"live", "subscription does not deliver"
    pub.publish(topic, b"", 1, retain=True)
    pub.close()
    sub.close()
    return rounds


def test_retain_handling_0():
    assert retain_handling(0) == [1, 1], "retained messages on (subscribe, re-subscribe)"


def test_retain_handling_1():
    assert retain_handling(1) == [1, 0], "retained messages on (subscribe, re-subscribe)"


def test_retain_handling_2():
    assert retain_handling(2) == [0, 0], "retained messages on (subscribe, re-subscribe)"


# ============================================= 11. SUBACK / UNSUBACK codes


def test_suback_granted_qos():
    c = Client(broker(), "sa-qos")
    got = c.subscribe([("sa/0", 0), ("sa/1", 1), ("sa/2", 2)])
    assert got == [0, 1, 2], got
    c.close()


def test_suback_invalid_filter():
    c = Raw(broker(), "sa-invalid")
    got = c.subscribe(("ok/#", opts(1)), ("a/#/b", opts(1)), ("x+/y", opts(0)))
    assert got == [1, 0x8F, 0x8F], [hex(x) for x in got]
    c.disconnect()


def test_unsuback_reason_codes():
    b = broker()
    c = Client(b, "usa")
    assert c.subscribe("usa/t", 1) == [1]
    got = c.unsubscribe(["usa/t", "usa/never"])
    assert got == [0x00, 0x11], [hex(x) for x in got]
    p = Client(b, "usa-pub")
    p.publish("usa/t", b"after unsubscribe", 1)
    c.expect_nothing(0.5)
    assert c.unsubscribe("usa/t") == [0x11], "second UNSUBSCRIBE of the same filter"
    p.close()
    c.close()


# ============================================ 12. shared subscriptions


def collect(clients, total, timeout=TIMEOUT):
    """Messages per client until `total` arrived in all, plus a quiet 0.5 s."""
    got = [[] for _ in clients]
    deadline = time.monotonic() + timeout
    while sum(map(len, got)) < total and time.monotonic() < deadline:
        for i, c in enumerate(clients):
            got[i] += c.drain(0.05)
    for i, c in enumerate(clients):
        got[i] += c.drain(0.5 if i == 0 else 0.05)
    return [payloads(g) for g in got]


def publish_n(pub, topic, n, tag=""):
    infos = [pub.publish(topic, f"{tag}{i}".encode(), 1, wait=False) for i in range(n)]
    for info in infos:
        info.wait_for_publish(timeout=TIMEOUT)
        assert info.is_published()
    return [f"{tag}{i}".encode() for i in range(n)]


def exactly_once(a, b, sent):
    both = a + b
    assert len(both) == len(sent) and sorted(both) == sorted(sent), \
        f"{len(a)} + {len(b)} messages for {len(sent)} sent ({len(set(both))} distinct)"
    assert a and b, f"round robin: member a got {len(a)}, member b got {len(b)}"


def shared_pair(tag, b_v5=True):
    b = broker()
    m1 = Client(b, id_on(0, f"{tag}-m1"))
    m2 = Client(b, id_on(1, f"{tag}-m2"), v5=b_v5)
    assert m1.subscribe(f"$share/g/{tag}/#", 1) == [1]
    assert m2.subscribe(f"$share/g/{tag}/#", 1) == [1]
    pub = Client(b, id_on(0, f"{tag}-pub"))
    return b, m1, m2, pub


def test_shared_exactly_once_cross_shard():
    b, m1, m2, pub = shared_pair("sh1")
    sent = publish_n(pub, "sh1/x", 100)
    exactly_once(*collect([m1, m2], 100), sent)
    for c in (pub, m1, m2):
        c.close()


def test_shared_v311_member():
    b, m1, m2, pub = shared_pair("sh2", b_v5=False)
    sent = publish_n(pub, "sh2/x", 100)
    exactly_once(*collect([m1, m2], 100), sent)
    for c in (pub, m1, m2):
        c.close()


def test_shared_and_normal_subscriber():
    b, m1, m2, pub = shared_pair("sh3")
    normal = Client(b, id_on(1, "sh3-normal"))
    assert normal.subscribe("sh3/#", 1) == [1]
    sent = publish_n(pub, "sh3/x", 100)
    a, c, n = collect([m1, m2, normal], 200)
    exactly_once(a, c, sent)
    assert sorted(n) == sorted(sent), f"normal subscriber got {len(n)} of 100"
    for x in (pub, m1, m2, normal):
        x.close()


def test_shared_two_groups():
    b, m1, m2, pub = shared_pair("sh4")
    h1 = Client(b, id_on(1, "sh4-h1"))
    h2 = Client(b, id_on(0, "sh4-h2"))
    assert h1.subscribe("$share/h/sh4/#", 1) == [1]
    assert h2.subscribe("$share/h/sh4/#", 1) == [1]
    sent = publish_n(pub, "sh4/x", 100)
    g1a, g1b, g2a, g2b = collect([m1, m2, h1, h2], 200)
    exactly_once(g1a, g1b, sent)
    exactly_once(g2a, g2b, sent)
    for x in (pub, m1, m2, h1, h2):
        x.close()


def test_shared_member_unsubscribes():
    b, m1, m2, pub = shared_pair("sh5")
    assert m2.unsubscribe("$share/g/sh5/#") == [0]
    sent = publish_n(pub, "sh5/x", 100)
    a, c = collect([m1, m2], 100)
    assert c == [], f"unsubscribed member got {len(c)}"
    assert sorted(a) == sorted(sent), f"remaining member got {len(a)} of 100"
    for x in (pub, m1, m2):
        x.close()


def test_shared_member_disconnects():
    b, m1, m2, pub = shared_pair("sh6")
    m2.close()
    sent = publish_n(pub, "sh6/x", 100)
    (a,) = collect([m1], 100)
    assert sorted(a) == sorted(sent), f"remaining member got {len(a)} of 100 ({len(set(a))} distinct)"
    assert m2.messages.empty(), "disconnected member got messages"
    pub.close()
    m1.close()


def test_shared_inflight_moves_to_another_member():
    """A member that never acknowledges and then drops its connection: the QoS 1
    messages it held unacknowledged go to the other member (on another shard)."""
    b = broker()
    hog = Raw(b, id_on(1, "sh9-hog"), props=[(P_RECVMAX, 5)])
    assert hog.subscribe(("$share/g9/sh9/#", opts(1))) == [1]
    m1 = Client(b, id_on(0, "sh9-m1"))
    assert m1.subscribe("$share/g9/sh9/#", 1) == [1]
    pub = Client(b, id_on(0, "sh9-pub"))
    sent = publish_n(pub, "sh9/x", 40)
    held = hog.publishes_for(1.0)
    assert 0 < len(held) <= 5, f"unacknowledged member got {len(held)} (receive maximum 5)"
    hog.close()
    (a,) = collect([m1], 40)
    assert sorted(a) == sorted(sent), \
        f"the other member got {len(a)} of 40; {len(held)} were held unacknowledged"
    pub.close()
    m1.close()


def test_shared_no_local_is_protocol_error():
    # MQTT-3.8.3-4: a Protocol Error. 0x82 is not a SUBACK reason code, so the
    # answer is DISCONNECT 0x82 and the close (section 4.13), not a SUBACK.
    c = Raw(broker(), "sh7")
    c.send(SUBSCRIBE, 2, struct.pack(">H", 1) + enc_props([]) + lstr("$share/g/sh7/#")
           + bytes([opts(1, no_local=True)]))
    c.expect_disconnect(0x82)


def test_shared_no_retained_on_subscribe():
    b = broker()
    pub = Client(b, "sh8-pub")
    pub.publish("sh8/x", b"retained", 1, retain=True)
    normal = Client(b, "sh8-normal")
    assert normal.subscribe("sh8/#", 1) == [1]
    assert normal.recv().retain, "retained message missing (control)"
    member = Client(b, "sh8-member")
    assert member.subscribe("$share/g/sh8/#", 1) == [1]
    member.expect_nothing(0.7)
    pub.publish("sh8/x", b"live", 1)
    assert member.recv().payload == b"live", "shared subscription does not deliver"
    pub.publish("sh8/x", b"", 1, retain=True)
    for c in (pub, normal, member):
        c.close()


# ======================================================= 13. will delay


def will_client(b, tag, delay, expiry, **wprops):
    if delay is not None:
        wprops["WillDelayInterval"] = delay
    return Client(b, id_on(0, tag), will=(f"wd/{tag}", f"will of {tag}".encode(), 1, False, wprops),
                  SessionExpiryInterval=expiry)


def watcher(b, tag):
    w = Client(b, id_on(1, f"{tag}-watch"))
    assert w.subscribe(f"wd/{tag}", 1) == [1]
    return w


def test_will_delay_published_after_delay():
    b = broker()
    w = watcher(b, "wd1")
    c = will_client(b, "wd1", delay=2, expiry=10)
    c.drop()
    t0 = time.monotonic()
    m = w.recv(timeout=5.5)
    dt = time.monotonic() - t0
    assert m.payload == b"will of wd1"
    assert dt >= 1.5, f"will published after {dt:.2f} s, will delay 2 s"
    assert dt <= 5.0, f"will published after {dt:.2f} s"
    w.close()
    Client(b, id_on(0, "wd1"), clean=True).close()   # end the kept session


def test_will_delay_cancelled_by_reconnect():
    b = broker()
    w = watcher(b, "wd2")
    c = will_client(b, "wd2", delay=2, expiry=10)
    c.drop()
    t0 = time.monotonic()
    time.sleep(0.5)
    again = Client(b, id_on(0, "wd2"), clean=False, SessionExpiryInterval=10)
    assert again.session_present
    w.expect_nothing(max(0.1, 3.5 - (time.monotonic() - t0)))
    again.close(SessionExpiryInterval=0)
    w.expect_nothing(0.3)
    w.close()


def test_will_properties():
    b = broker()
    w = watcher(b, "wd3")
    c = will_client(b, "wd3", delay=None, expiry=0, ContentType="text/will",
                    UserProperty=[("why", "dropped"), ("why", "twice"), ("a", "b")],
                    PayloadFormatIndicator=1, ResponseTopic="wd/wd3/reply",
                    CorrelationData=b"\x01\x02")
    c.drop()
    m = w.recv()
    assert m.payload == b"will of wd3"
    p = m.properties
    assert getattr(p, "ContentType", None) == "text/will", p
    assert getattr(p, "UserProperty", None) == [("why", "dropped"), ("why", "twice"), ("a", "b")], p
    assert getattr(p, "PayloadFormatIndicator", None) == 1, p
    assert getattr(p, "ResponseTopic", None) == "wd/wd3/reply", p
    assert getattr(p, "CorrelationData", None) == b"\x01\x02", p
    w.close()


def test_will_delay_capped_by_session_expiry():
    b = broker()
    w = watcher(b, "wd4")
    c = will_client(b, "wd4", delay=10, expiry=1)
    c.drop()
    t0 = time.monotonic()
    m = w.recv(timeout=4.0)
    dt = time.monotonic() - t0
    assert m.payload == b"will of wd4"
    assert 0.5 <= dt <= 3.5, f"will published after {dt:.2f} s; the session ends after 1 s"
    w.close()


# ============================================================ 14. AUTH


def test_auth_method_refused():
    c = Raw(broker(), "auth-scram", props=[(P_AUTHM, "SCRAM-SHA-1")], expect_rc=None)
    assert c.rc == 0x8C, f"CONNACK reason 0x{c.rc:02x}, expected 0x8c"
    c.expect_closed()


# ============================================ 15. server DISCONNECT reasons


def test_disconnect_keepalive_timeout():
    c = Raw(broker(), "dc-keepalive", keepalive=1)
    t0 = time.monotonic()
    c.expect_disconnect(0x8D, timeout=5)
    dt = time.monotonic() - t0
    assert dt >= 1.0, f"disconnected after {dt:.2f} s, keepalive 1 s"


def test_disconnect_session_takeover():
    b = broker()
    first = Raw(b, "dc-takeover")
    second = Raw(b, "dc-takeover")
    first.expect_disconnect(0x8E)
    assert second.subscribe(("dc/t", opts(0))) == [0], "second connection does not work"
    second.disconnect()


def test_disconnect_publish_with_subscription_id():
    b = broker()
    sub = Client(b, "dc-subid-watch")
    assert sub.subscribe("dc/subid", 1) == [1]
    c = Raw(b, "dc-subid")
    c.publish("dc/subid", b"bad", 1, props=[(P_SUBID, 3)])
    c.expect_disconnect(0x82)
    sub.expect_nothing(0.3)
    sub.close()


# ================================== 16. request problem information (optional)


def test_request_problem_information_off():
    c = Raw(broker(), "rpi-off", props=[(P_RPI, 0)])
    assert c.subscribe(("a/#/b", opts(1))) == [0x8F]
    assert prop(c.suback_props, P_REASON) is None, f"Reason String in SUBACK: {c.suback_props}"
    assert prop(c.suback_props, P_USER) is None, f"User Property in SUBACK: {c.suback_props}"
    assert c.unsubscribe("rpi/never") == [0x11]
    assert prop(c.unsuback_props, P_REASON) is None, f"Reason String in UNSUBACK: {c.unsuback_props}"
    c.disconnect()


# =================================================== 17. mixed versions


def test_mixed_v311_to_v5():
    b = broker()
    sub = Client(b, id_on(0, "mx-sub5"))
    assert sub.subscribe("mx/+/t", 2) == [2]
    pub = Client(b, id_on(1, "mx-pub3"), v5=False)
    for qos in (0, 1, 2):
        pub.publish(f"mx/{qos}/t", f"from 3.1.1 at {qos}".encode(), qos)
        m = sub.recv()
        assert (m.topic, m.payload, m.qos) == (f"mx/{qos}/t", f"from 3.1.1 at {qos}".encode(), qos)
    pub.close()
    sub.close()


def test_mixed_v5_to_v311():
    b = broker()
    sub = Client(b, id_on(1, "mx-sub3"), v5=False)
    assert sub.subscribe("mx/v5/#", 2) == [2]
    pub = Client(b, id_on(0, "mx-pub5"))
    for qos in (0, 1, 2):
        pub.publish(f"mx/v5/{qos}", f"from 5 at {qos}".encode(), qos, **PASS_PROPS)
        m = sub.recv()
        assert (m.topic, m.payload, m.qos) == (f"mx/v5/{qos}", f"from 5 at {qos}".encode(), qos)
    pub.close()
    sub.close()


# ---------------------------------------------------------------- runner

TESTS = {k[len("test_"):]: v for k, v in list(globals().items()) if k.startswith("test_")}


def main(argv):
    signal.signal(signal.SIGALRM, lambda *_: (print("mqtt5_paho.py: global timeout"), os._exit(1)))
    signal.alarm(240)
    if "--list" in argv:
        print("\n".join(TESTS))
        return 0
    names = [a[len("test_"):] if a.startswith("test_") else a for a in argv]
    unknown = [n for n in names if n not in TESTS]
    if unknown:
        print(f"unknown checks: {' '.join(unknown)} (--list shows them)")
        return 2
    if not os.path.exists(ringmq_proc.BIN):
        print(f"RINGMQ_BIN {ringmq_proc.BIN} does not exist (run cargo build first)")
        return 1
    passed = failed = 0
    try:
        for name in names or TESTS:
            start = time.monotonic()
            try:
                TESTS[name]()
            except Exception:
                failed += 1
                print(f"FAIL {name} ({time.monotonic() - start:.2f} s)")
                traceback.print_exc()
            else:
                passed += 1
                print(f"ok   {name} ({time.monotonic() - start:.2f} s)")
            sys.stdout.flush()
            for extra, b in list(BROKERS.items()):
                if b.proc.poll() is not None:
                    print(f"FAIL broker {' '.join(extra) or '(defaults)'} exited with "
                          f"{b.proc.returncode} during {name}: {b.log_tail()}")
                    failed += 1
                    del BROKERS[extra]
    finally:
        for extra, b in BROKERS.items():
            code = b.stop()
            if code != 0:
                print(f"FAIL broker {' '.join(extra) or '(defaults)'} exit status after SIGTERM: {code}")
                failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
