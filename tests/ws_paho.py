#!/usr/bin/env python3
"""MQTT over WebSocket with Eclipse paho-mqtt 2.x against a real ringmq.

Starts the broker itself (binary from $RINGMQ_BIN, default
target/debug/ringmq) with a TCP and a WebSocket listener on free ports, runs
each check, prints "N passed, M failed" and exits 1 if any check failed.
Every wait is bounded; the whole script is cut off after 180 s.

    RINGMQ_BIN=target/debug/ringmq .venv/bin/python tests/ws_paho.py
"""

import os
import queue
import re
import signal
import subprocess
import sys
import time
import traceback

import paho.mqtt.client as mqtt

import ringmq_proc

TIMEOUT = 5.0


class Broker:
    def __init__(self, *extra):
        self.proc, line = ringmq_proc.start(
            ["--listen", "mqtt://127.0.0.1:0", "--listen", "ws://127.0.0.1:0/mqtt",
             "--shards", "2", "--log-level", "info", *extra])
        m = re.search(r"mqtt://127\.0\.0\.1:(\d+)", line)
        w = re.search(r"ws://127\.0\.0\.1:(\d+)(/\S*)", line)
        if not m or not w:
            self.stop()
            raise RuntimeError(f"unparsable ready line {line!r}")
        self.mqtt_port = int(m.group(1))
        self.ws_port = int(w.group(1))
        self.ws_path = w.group(2)

    def stop(self):
        return ringmq_proc.stop(self.proc)


class Client:
    """A paho client over WebSocket (or TCP) whose events land in queues."""

    def __init__(self, broker, client_id, transport="websockets", path=None, will=None,
                 protocol=mqtt.MQTTv311, properties=None):
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             transport=transport, protocol=protocol)
        if transport == "websockets":
            self.c.ws_set_options(path=path or broker.ws_path)
            port = broker.ws_port
        else:
            port = broker.mqtt_port
        if will:
            self.c.will_set(*will)
        self.connacks = queue.Queue()
        self.subacks = queue.Queue()
        self.messages = queue.Queue()
        self.c.on_connect = lambda c, u, flags, rc, props: self.connacks.put(rc)
        self.c.on_subscribe = lambda c, u, mid, rcs, props: self.subacks.put((mid, rcs))
        self.c.on_message = lambda c, u, msg: self.messages.put(msg)
        self.c.connect("127.0.0.1", port, keepalive=30, properties=properties)
        self.c.loop_start()
        rc = self.connacks.get(timeout=TIMEOUT)
        assert not rc.is_failure, f"CONNACK refused: {rc}"

    def subscribe(self, topic, qos, properties=None):
        result, mid = self.c.subscribe(topic, qos, properties=properties)
        assert result == mqtt.MQTT_ERR_SUCCESS, result
        got_mid, rcs = self.subacks.get(timeout=TIMEOUT)
        assert got_mid == mid
        return [rc.value for rc in rcs]

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(timeout=TIMEOUT)
        assert info.is_published(), f"publish to {topic} at QoS {qos} not acknowledged"

    def recv(self):
        try:
            return self.messages.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no message within {TIMEOUT} s") from None

    def expect_nothing(self, secs=0.3):
        try:
            msg = self.messages.get(timeout=secs)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {msg.topic}: {msg.payload!r}")

    def close(self, clean=True):
        if clean:
            self.c.disconnect()
        self.c.loop_stop()


def run(cmd, timeout=10):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)


# --------------------------------------------------------------------------


def test_connect_subscribe_publish_qos_0_1_2(b):
    c = Client(b, "paho-self")
    assert c.subscribe("paho/self", 2) == [2]
    for qos in (0, 1, 2):
        payload = f"qos {qos} over websocket".encode()
        c.publish("paho/self", payload, qos)
        m = c.recv()
        assert m.topic == "paho/self", m.topic
        assert m.payload == payload, m.payload
        assert m.qos == qos, (m.qos, qos)
        assert not m.retain
    c.expect_nothing()
    c.close()


def test_ws_to_ws_other_client(b):
    sub = Client(b, "paho-sub")
    pub = Client(b, "paho-pub")
    assert sub.subscribe("paho/pair/#", 1) == [1]
    pub.publish("paho/pair/a", b"\x00\x01binary\xff", 1)
    m = sub.recv()
    assert (m.topic, m.payload, m.qos) == ("paho/pair/a", b"\x00\x01binary\xff", 1)
    pub.close()
    sub.close()


def test_receive_from_mosquitto_pub_over_tcp(b):
    c = Client(b, "paho-from-tcp")
    assert c.subscribe("paho/tcp/#", 2) == [2]
    for qos in (0, 1, 2):
        run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.mqtt_port), "-V", "mqttv311",
             "-t", f"paho/tcp/{qos}", "-m", f"from-tcp-{qos}", "-q", str(qos)])
        m = c.recv()
        assert (m.topic, m.payload, m.qos) == (f"paho/tcp/{qos}", f"from-tcp-{qos}".encode(), qos)
    c.close()


def test_mosquitto_sub_over_tcp_receives_from_ws(b):
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.mqtt_port), "-V", "mqttv311",
         "-t", "paho/out", "-q", "1", "-C", "1", "-W", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        c = Client(b, "paho-to-tcp")
        # mosquitto_sub's SUBACK cannot be observed through a pipe: publish
        # until it has received one message (-C 1) and exited.
        deadline = time.monotonic() + 8
        while sub.poll() is None and time.monotonic() < deadline:
            c.publish("paho/out", b"from-websocket", 1)
            time.sleep(0.2)
        out, _ = sub.communicate(timeout=10)
        assert sub.returncode == 0, f"mosquitto_sub exit {sub.returncode}: {out}"
        assert out.strip() == "from-websocket", out
        c.close()
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait(timeout=5)


def test_retained_and_large_message(b):
    big = bytes((i * 7919) & 0xFF for i in range(256 * 1024))
    p = Client(b, "paho-retainer")
    p.publish("paho/retained", big, 1, retain=True)
    p.close()
    c = Client(b, "paho-late")
    assert c.subscribe("paho/retained", 1) == [1]
    m = c.recv()
    assert m.topic == "paho/retained" and m.retain and m.qos == 1
    assert m.payload == big, f"retained payload differs ({len(m.payload)} bytes)"
    c.close()


def test_will_on_dropped_websocket(b):
    watcher = Client(b, "paho-watch")
    assert watcher.subscribe("paho/will", 1) == [1]
    dying = Client(b, "paho-dying", will=("paho/will", b"gone", 1, False))
    # Drop the socket without DISCONNECT (nor close frame).
    dying.c.loop_stop()
    dying.c.socket().close()
    m = watcher.recv()
    assert (m.topic, m.payload) == ("paho/will", b"gone")
    watcher.close()


def test_unknown_path_is_refused(b):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-404",
                    transport="websockets")
    c.ws_set_options(path="/not-here")
    try:
        c.connect("127.0.0.1", b.ws_port, keepalive=30)
    except mqtt.WebsocketConnectionError:
        return
    raise AssertionError("connect to /not-here succeeded")


def test_mqtt5_over_websocket(b):
    """5.0 semantics hold over WebSocket as over TCP: a subscription
    identifier comes back, user properties and content type pass through,
    and the remaining message expiry is forwarded (never more than given).
    (No Topic Alias Maximum: paho-mqtt does not resolve aliases a broker
    sends; tests/mqtt5_paho.py checks those on the wire.)"""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    sub = Client(b, "paho-v5-ws-sub", protocol=mqtt.MQTTv5)
    sprops = Properties(PacketTypes.SUBSCRIBE)
    sprops.SubscriptionIdentifier = 42
    assert sub.subscribe("paho/v5/#", 1, properties=sprops) == [1]
    pub = Client(b, "paho-v5-ws-pub", protocol=mqtt.MQTTv5)
    for i in range(3):
        pprops = Properties(PacketTypes.PUBLISH)
        pprops.UserProperty = [("k", "v1"), ("k", str(i))]
        pprops.ContentType = "text/plain"
        pprops.MessageExpiryInterval = 60
        pub.publish("paho/v5/t", f"m{i}".encode(), 1, properties=pprops)
        m = sub.recv()
        assert (m.topic, m.payload) == ("paho/v5/t", f"m{i}".encode()), (m.topic, m.payload)
        p = m.properties
        assert p.SubscriptionIdentifier == [42], p
        assert p.UserProperty == [("k", "v1"), ("k", str(i))], p.UserProperty
        assert p.ContentType == "text/plain", p
        assert 1 <= p.MessageExpiryInterval <= 60, p.MessageExpiryInterval
    pub.close()
    sub.close()


TESTS = [v for k, v in list(globals().items()) if k.startswith("test_")]


def main():
    signal.signal(signal.SIGALRM, lambda *_: (print("ws_paho.py: global timeout"), os._exit(1)))
    signal.alarm(180)
    if not os.path.exists(ringmq_proc.BIN):
        print(f"RINGMQ_BIN {ringmq_proc.BIN} does not exist (run cargo build first)")
        return 1
    b = Broker()
    try:
        passed, failed = ringmq_proc.run_checks(TESTS, (b,), [b.proc])
    finally:
        code = b.stop()
    if code != 0:
        print(f"FAIL broker exit status after SIGTERM: {code}")
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
