#!/usr/bin/env bash
# Run the same scenarios against ringmq and mosquitto, one broker after the other, on loopback,
# and write bench-results/<date>/report.md (+ one JSON file per run).
# Usage: scripts/compare.sh [--quick]      (--quick: short runs, under 3 minutes on 2 cores)
# rumqttd: not run yet (see the benchmark issue's note); mosquitto is installed from Debian if
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0; [ "${1:-}" = "--quick" ] && quick=1
dur=10; [ $quick -eq 1 ] && dur=4
storm=5000
out="bench-results/$(date +%Y-%m-%d)"; mkdir -p "$out/raw"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
command -v mosquitto >/dev/null || { as_root apt-get update; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto; }
cargo build --release --bins >/dev/null
B=./target/release/ringmq-bench
# Broker on CPU 0, load generator on the others, where the machine has the cores.
cores=$(nproc); pin_b=(); pin_l=()
if [ "$cores" -ge 4 ]; then pin_b=(taskset -c 0-$((cores/2-1))); pin_l=(taskset -c $((cores/2))-$((cores-1))); fi

start_ringmq() {
    "${pin_b[@]}" ./target/release/ringmq --listen mqtt://127.0.0.1:18931 --listen ws://127.0.0.1:18932/mqtt \
        --shards "${RINGMQ_SHARDS:-2}" --max-queued 100000 --log-level warn >"$out/raw/ringmq.log" 2>&1 &
    BPID=$!; TCP=18931; WS=18932; sleep 1
}
start_mosquitto() {
    printf 'listener 18941 127.0.0.1\nlistener 18942\nprotocol websockets\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nset_tcp_nodelay true\n' >"$out/raw/mosquitto.conf"
    "${pin_b[@]}" mosquitto -c "$out/raw/mosquitto.conf" >"$out/raw/mosquitto.log" 2>&1 &
    BPID=$!; TCP=18941; WS=18942; sleep 1
}
stop_broker() { kill "$BPID" 2>/dev/null || true; wait "$BPID" 2>/dev/null || true; }

# name | bench arguments (PORT/WSPORT substituted per broker)
scenarios=(
  "p2p-qos0-80k|--scenario p2p --pairs 4 --qos 0 --rate 20000 --port TCP"
  "p2p-qos1-80k|--scenario p2p --pairs 4 --qos 1 --rate 20000 --port TCP"
  "p2p-qos0-80k-ws|--scenario p2p --pairs 4 --qos 0 --rate 20000 --transport ws --port WS"
  "p2p16-qos0-max|--scenario p2p --pairs 16 --qos 0 --rate 0 --port TCP"
  "p2p16-qos1-max|--scenario p2p --pairs 16 --qos 1 --rate 0 --inflight 64 --port TCP"
  "fanout-1x100-qos1|--scenario fanout --publishers 1 --subscribers 100 --qos 1 --rate 500 --port TCP"
)
for broker in ringmq mosquitto; do
    for sc in "${scenarios[@]}"; do
        name=${sc%%|*}; args=${sc#*|}
        "start_$broker"
        args=${args//TCP/$TCP}; args=${args//WS/$WS}
        # shellcheck disable=SC2086
        "${pin_l[@]}" "$B" $args --duration "$dur" --broker-pid "$BPID" --label "$broker" \
            --json "$out/raw/$broker-$name.json" >/dev/null 2>>"$out/raw/bench.log" || echo "run $broker $name failed"
        stop_broker
    done
    "start_$broker"
    "$B" --scenario storm --port "$TCP" --connections $storm --connect-rate 2500 --hold 2 --broker-pid "$BPID" \
        --label "$broker" --json "$out/raw/$broker-storm-tcp.json" >/dev/null 2>>"$out/raw/bench.log" || echo "storm $broker failed"
    stop_broker
done

python3 - "$out" <<'PY'
import json, glob, os, sys, platform
out = sys.argv[1]
runs = {}
for f in sorted(glob.glob(f"{out}/raw/*.json")):
    broker, name = os.path.basename(f)[:-5].split("-", 1)
    runs.setdefault(name, {})[broker] = json.load(open(f))
def cpu(r):
    b = r.get("broker") or {}
    return b.get("cpu_seconds")
lines = [f"# ringmq vs mosquitto — {os.path.basename(out)}", "",
         f"Machine: {os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}; "
         "broker and load generator share the cores unless there are 4 or more. "
         "Command: `scripts/compare.sh" + (" --quick" if "--quick" in os.environ.get("CMP_ARGS","") else "") + "`.", "",
         "| scenario | broker | sent/s | received/s | lost | dup | p50 ms | p99 ms | deliveries per CPU-s | peak RSS MB |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for name, by in runs.items():
    if name.startswith("storm"):
        continue
    for broker, r in sorted(by.items(), reverse=True):
        lat = r.get("latency_us") or {}
        c = cpu(r)
        per = f"{r['received']/c:,.0f}" if c else "n/a"
        rss = (r.get("broker") or {}).get("peak_rss_kb")
        lines.append(f"| {name} | {broker} | {r.get('sent_per_s',0):,.0f} | {r.get('received_per_s',0):,.0f} | {r.get('lost',0):,} | "
                     f"{r.get('duplicated',0)} | {lat.get('p50',0)/1000:.2f} | {lat.get('p99',0)/1000:.2f} | {per} | "
                     f"{(rss or 0)/1024:.0f} |")
lines += ["", "| idle connections | broker | connected | RSS per connection (bytes) |", "| --- | --- | ---: | ---: |"]
for name, by in runs.items():
    if name.startswith("storm"):
        for broker, r in sorted(by.items(), reverse=True):
            lines.append(f"| {r.get('connections')} TCP | {broker} | {r.get('connected')} | {r.get('rss_per_connection_bytes',0):,.0f} |")
lines += ["", "lost = expected − received after a bounded drain; ringmq drops QoS 0 to a subscriber whose "
          "outbox is full and QoS 1/2 beyond --max-queued (counted), mosquitto pushes back through TCP.",
          "rumqttd is not in this report yet."]
open(f"{out}/report.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
