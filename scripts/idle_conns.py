#!/usr/bin/env python3
"""Open N idle MQTT connections to a loopback broker and report its RSS per connection.

Usage: idle_conns.py --port P --pid BROKER_PID --count N [--ws-path /mqtt]
Connections use source addresses 127.0.0.2.. so the count is not limited by one
address's ephemeral ports. Bounded: every socket op has a timeout; it exits by itself.
"""
import argparse, base64, os, resource, socket, sys, time

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def connect_packet(cid):
    cid = cid.encode()
    var = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(var)]) + var

def ws_frame(payload):
    mask = os.urandom(4)
    return bytes([0x82, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--ws-path")
    ap.add_argument("--hold", type=float, default=2.0)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if a.count + 100 > hard:
        sys.exit(f"idle_conns: {a.count} connections need more open files than this process may have "
                 f"(RLIMIT_NOFILE hard limit {hard}; a sandbox may cap it)")
    time.sleep(0.5)
    base = rss_kib(a.pid)
    socks = []
    t0 = time.time()
    for i in range(a.count):
        src = f"127.0.{(i // 250) % 250}.{2 + i % 250}"
        s = socket.socket()
        s.settimeout(10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.bind((src, 0))
        s.connect(("127.0.0.1", a.port))
        pkt = connect_packet(f"idle-{i}")
        if a.ws_path:
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall((f"GET {a.ws_path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    sys.exit("idle_conns: upgrade refused")
                head += chunk
            pkt = ws_frame(pkt)
        s.sendall(pkt)
        got = s.recv(64)
        if not got:
            sys.exit(f"idle_conns: connection {i} closed before CONNACK")
        socks.append(s)
    took = time.time() - t0
    time.sleep(a.hold)
    peak = rss_kib(a.pid)
    per = (peak - base) * 1024 / a.count
    print(f'{{"connections":{a.count},"connect_seconds":{took:.2f},"rss_base_kib":{base},"rss_kib":{peak},"bytes_per_connection":{per:.0f}}}')
    for s in socks:
        s.close()

if __name__ == "__main__":
    main()
