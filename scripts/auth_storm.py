#!/usr/bin/env python3
"""How much a storm of wrong-password CONNECTs slows other clients.

Starts a broker (ringmq from $RINGMQ_BIN, default target/release/ringmq, or
mosquitto with BROKER=mosquitto) on 127.0.0.1:18981 (mosquitto: 18982) with a password file
made by the real mosquitto_passwd, logs in one client that publishes QoS 0
to its own subscription every 10 ms, and reports the round trip's p50/p99
for a quiet phase and for a phase in which STORM_THREADS threads (default
4) send CONNECTs with wrong passwords as fast as they are answered. Each
phase lasts PHASE_S seconds (default 5). Loopback only; everything stops
by itself.

    python3 scripts/auth_storm.py                  # ringmq
    BROKER=mosquitto python3 scripts/auth_storm.py # the same against mosquitto
"""

import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

PORT = 18981
PHASE_S = float(os.environ.get("PHASE_S", "5"))
THREADS = int(os.environ.get("STORM_THREADS", "4"))


def utf8(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def remaining(n):
    out = b""
    while True:
        byte = n % 128
        n //= 128
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def packet(kind, body):
    return bytes([kind]) + remaining(len(body)) + body


def connect(cid, user, pw):
    flags = 0x02 | 0x80 | 0x40
    body = utf8("MQTT") + bytes([4, flags]) + struct.pack(">H", 60)
    body += utf8(cid) + utf8(user) + utf8(pw)
    return packet(0x10, body)


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def read_packet(s):
    head = read_exact(s, 1)[0]
    mult, n = 1, 0
    while True:
        b = read_exact(s, 1)[0]
        n += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return head, read_exact(s, n)


def login(cid, user, pw):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(connect(cid, user, pw))
    head, body = read_packet(s)
    return s, body[1]


def main():
    work = tempfile.mkdtemp(prefix="ringmq-auth-storm-")
    pwfile = os.path.join(work, "passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", pwfile, "alice", "right"], check=True)
    global PORT
    broker = os.environ.get("BROKER", "ringmq")
    if broker == "mosquitto":
        # A port of its own: the previous run's thousands of closed
        # connections linger in TIME_WAIT on 18981, and mosquitto's bind
        # then fails.
        PORT = 18982
        conf = os.path.join(work, "m.conf")
        with open(conf, "w") as f:
            f.write(f"listener {PORT} 127.0.0.1\npassword_file {pwfile}\nallow_anonymous false\nuser root\n")
        proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf], stderr=open(os.path.join(work, "m.log"), "w"))
    else:
        binary = os.environ.get("RINGMQ_BIN", "target/release/ringmq")
        proc = subprocess.Popen(
            [binary, "--listen", f"mqtt://127.0.0.1:{PORT}", "--password-file", pwfile,
             "--log-level", "warn"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        s, code = login("probe", "alice", "right")
        assert code == 0, f"login refused: {code}"
        s.sendall(packet(0x82, struct.pack(">H", 1) + utf8("rtt/alice") + b"\x00"))
        read_packet(s)  # SUBACK
        stop = threading.Event()
        refused = [0]

        def storm():
            while not stop.is_set():
                try:
                    c, code = login("storm", "alice", "wrong")
                    c.close()
                    if code != 0:
                        refused[0] += 1
                except OSError:
                    pass

        results = {}
        for phase in ("quiet", "storm"):
            threads = []
            if phase == "storm":
                threads = [threading.Thread(target=storm, daemon=True) for _ in range(THREADS)]
                for t in threads:
                    t.start()
            rtts = []
            end = time.monotonic() + PHASE_S
            before = refused[0]
            while time.monotonic() < end:
                t0 = time.monotonic()
                s.sendall(packet(0x30, utf8("rtt/alice") + b"x"))
                while True:
                    head, _ = read_packet(s)
                    if head >> 4 == 3:
                        break
                rtts.append(time.monotonic() - t0)
                time.sleep(0.01)
            stop.set()
            for t in threads:
                t.join(timeout=5)
            stop.clear()
            rtts.sort()
            pick = lambda q: rtts[min(len(rtts) - 1, int(len(rtts) * q))] * 1000
            rate = (refused[0] - before) / PHASE_S
            results[phase] = (pick(0.5), pick(0.99), rate)
            print(f"{broker} {phase}: {len(rtts)} round trips, p50 {pick(0.5):.2f} ms, "
                  f"p99 {pick(0.99):.2f} ms, wrong-password CONNECTs refused {rate:.0f}/s")
        return 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
