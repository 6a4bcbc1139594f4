#!/usr/bin/env bash
# Run the same scenarios against ringmq and mosquitto, one broker after the other, on loopback,
# and write bench-results/<date>/report.md (+ one JSON file per run).
# Usage: scripts/compare.sh [--quick]      (--quick: short runs, about 3.5 minutes on 2 cores)
#        scripts/compare.sh --report-only  (rewrite report.md and chart.svg from the raw JSON of
#                                           REPORT_DIR, default today's folder; runs nothing)
# mosquitto is installed from Debian and rumqttd from crates.io (`cargo install rumqttd`) when
# missing; BROKERS="ringmq mosquitto" limits the list.
set -euo pipefail
cd "$(dirname "$0")/.."
P99_BOUND_MS=${P99_BOUND_MS:-50}
export P99_BOUND_MS
quick=0; [ "${1:-}" = "--quick" ] && quick=1
report_only=0; [ "${1:-}" = "--report-only" ] && report_only=1
dur=10; [ $quick -eq 1 ] && dur=2
# Idle connections: the issue's target is measured at 15,000 (under the 20,000 open files a
# sandbox may allow a process); held long enough for ringmq to park them (--park-after-ms 2000).
# --quick skips the WebSocket storm (the full run reports it).
storm=15000; storm_transports="tcp ws"; [ $quick -eq 1 ] && storm_transports="tcp"
out="${REPORT_DIR:-bench-results/$(date +%Y-%m-%d)}"; mkdir -p "$out/raw"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if [ $report_only -eq 0 ]; then
command -v mosquitto >/dev/null || { as_root apt-get update; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto; }
brokers=(${BROKERS:-ringmq mosquitto rumqttd})
if [[ " ${brokers[*]} " == *" rumqttd "* ]] && ! command -v rumqttd >/dev/null; then
    echo "installing rumqttd from crates.io (a few minutes)"
    cargo install rumqttd --locked || cargo install rumqttd || {
        echo "rumqttd could not be built here: comparing without it"; brokers=($(printf '%s\n' "${brokers[@]}" | grep -vx rumqttd)); }
fi
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --bins >/dev/null
B=./target/release/ringmq-bench
# Broker on CPU 0, load generator on the others, where the machine has the cores.
cores=$(nproc); pin_b=(); pin_l=()
if [ "$cores" -ge 4 ]; then pin_b=(taskset -c 0-$((cores/2-1))); pin_l=(taskset -c $((cores/2))-$((cores-1))); fi

# Waits (up to 5 s) until the broker accepts TCP connections on port $1.
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "broker not listening on $1 after 5 s" >&2
}
start_ringmq() {
    "${pin_b[@]}" ./target/release/ringmq --listen mqtt://127.0.0.1:18931 --listen ws://127.0.0.1:18932/mqtt \
        --shards "${RINGMQ_SHARDS:-2}" --max-queued 100000 --max-queued-bytes 268435456 --log-level warn >"$out/raw/ringmq.log" 2>&1 &
    BPID=$!; TCP=18931; WS=18932; wait_port $TCP; wait_port $WS
}
start_mosquitto() {
    printf 'listener 18941 127.0.0.1\nlistener 18942\nprotocol websockets\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nset_tcp_nodelay true\n' >"$out/raw/mosquitto.conf"
    "${pin_b[@]}" mosquitto -c "$out/raw/mosquitto.conf" >"$out/raw/mosquitto.log" 2>&1 &
    BPID=$!; TCP=18941; WS=18942; wait_port $TCP; wait_port $WS
}
start_rumqttd() {
    # Equivalent settings: no persistence (rumqttd keeps an in-memory commit log), large
    # in-flight and payload limits, no delay between accepted connections.
    cat >"$out/raw/rumqttd.toml" <<TOML
id = 0
[router]
id = 0
max_connections = 20000
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:18951"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 1048576
    max_inflight_count = 100
    dynamic_filters = true
[ws.1]
name = "ws-1"
listen = "127.0.0.1:18952"
next_connection_delay_ms = 0
    [ws.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 1048576
    max_inflight_count = 100
    dynamic_filters = true
TOML
    "${pin_b[@]}" rumqttd --config "$out/raw/rumqttd.toml" >"$out/raw/rumqttd.log" 2>&1 &
    BPID=$!; TCP=18951; WS=18952; wait_port $TCP; wait_port $WS
}
# Stops the broker and waits until its ports refuse connections: a listener can outlive its
# process by some milliseconds (io_uring tears it down afterwards), and the next broker's
# readiness check must not mistake it for the next broker.
stop_broker() {
    kill "$BPID" 2>/dev/null || true; wait "$BPID" 2>/dev/null || true
    for port in $TCP $WS; do
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
            sleep 0.05
        done
    done
}

# name | bench arguments (PORT/WSPORT substituted per broker)
scenarios=(
  "p2p-qos0-80k|--scenario p2p --pairs 4 --qos 0 --rate 20000 --port TCP"
  "p2p-qos1-80k|--scenario p2p --pairs 4 --qos 1 --rate 20000 --port TCP"
  "p2p-qos0-80k-ws|--scenario p2p --pairs 4 --qos 0 --rate 20000 --transport ws --port WS"
  "p2p16-qos0-max|--scenario p2p --pairs 16 --qos 0 --rate 0 --port TCP"
  "p2p16-qos1-max|--scenario p2p --pairs 16 --qos 1 --rate 0 --inflight 64 --port TCP"
  "fanout-1x100-qos1|--scenario fanout --publishers 1 --subscribers 100 --qos 1 --rate 500 --port TCP"
)
# --quick keeps the run under 3 minutes on 2 cores: the fan-out row only in full runs.
[ $quick -eq 1 ] && unset 'scenarios[5]'
for broker in "${brokers[@]}"; do
    for sc in "${scenarios[@]}"; do
        name=${sc%%|*}; args=${sc#*|}
        "start_$broker"
        args=${args//TCP/$TCP}; args=${args//WS/$WS}
        # shellcheck disable=SC2086
        "${pin_l[@]}" "$B" $args --duration "$dur" --broker-pid "$BPID" --label "$broker" \
            --json "$out/raw/$broker-$name.json" >/dev/null 2>>"$out/raw/bench.log" || echo "run $broker $name failed"
        stop_broker
    done
    for transport in $storm_transports; do
        "start_$broker"
        port=$TCP; [ $transport = ws ] && port=$WS
        "$B" --scenario storm --transport $transport --port "$port" --connections $storm --connect-rate 7500 --hold 4 \
            --broker-pid "$BPID" --label "$broker" --json "$out/raw/$broker-storm-$transport.json" \
            >/dev/null 2>>"$out/raw/bench.log" || echo "storm $broker $transport failed"
        stop_broker
    done
done

# Sustained rate: offered rate sweep (16 pairs, 64 B) per broker and QoS; the report's headline is
# the highest offered rate delivered with no loss and p99 under $P99_BOUND_MS ms. Then an
# overload (as fast as possible, QoS 0) and a check that the broker still serves normally.
rates=(25000 100000 400000); [ $quick -eq 0 ] && rates=(25000 50000 100000 200000 400000 800000 1600000)
sweep_dur=$((quick ? 2 : 6))
for broker in "${brokers[@]}"; do
    "start_$broker"
    for qos in 0 1; do
        for total in "${rates[@]}"; do
            # shellcheck disable=SC2086
            "${pin_l[@]}" "$B" --scenario p2p --pairs 16 --qos $qos --rate $((total / 16)) --port "$TCP" \
                --duration "$sweep_dur" --broker-pid "$BPID" --label "$broker" \
                --json "$out/raw/$broker-sweep-q$qos-$total.json" >/dev/null 2>>"$out/raw/bench.log" || true
        done
    done
    "${pin_l[@]}" "$B" --scenario p2p --pairs 16 --qos 0 --rate 0 --port "$TCP" --duration "$sweep_dur" \
        --label "$broker" --json "$out/raw/$broker-overload.json" >/dev/null 2>>"$out/raw/bench.log" || true
    "${pin_l[@]}" "$B" --scenario p2p --pairs 4 --qos 1 --rate 1000 --port "$TCP" --duration 2 \
        --label "$broker" --json "$out/raw/$broker-after-overload.json" >/dev/null 2>>"$out/raw/bench.log" || true
    stop_broker
done

# Hostile clients (ringmq-bench --scenario hostile, about 15 s a broker; --quick runs it too):
# deep topics, duplicate filters with readers that never read, a PINGREQ flood and a 5,000
# connection storm while a probe client measures; then whether the broker is alive and serves.
# A broker that dies here is reported as such; stop_broker tolerates a dead process.
for broker in "${brokers[@]}"; do
    "start_$broker"
    "${pin_l[@]}" "$B" --scenario hostile --port "$TCP" --broker-pid "$BPID" --label "$broker" \
        --json "$out/raw/$broker-hostile.json" >/dev/null 2>>"$out/raw/bench.log" || echo "hostile $broker failed"
    stop_broker
done

fi

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
lines = [f"# ringmq vs mosquitto vs rumqttd — {os.path.basename(out)}", "",
         f"Machine: {os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}; "
         "broker and load generator share the cores unless there are 4 or more. "
         "Command: `scripts/compare.sh" + (" --quick" if "--quick" in os.environ.get("CMP_ARGS","") else "") + "`.", "",
         "| scenario | broker | sent/s | received/s | lost | dup | p50 ms | p99 ms | deliveries per CPU-s | peak RSS MB |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for name, by in runs.items():
    if name.startswith(("storm", "sweep", "overload", "after", "hostile")):
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
            lines.append(f"| {r.get('connections')} {r.get('transport','tcp').upper()} | {broker} | {r.get('connected')} | {(r.get('rss_per_connection_bytes') or 0):,.0f} |")
bound = float(os.environ.get("P99_BOUND_MS", "50"))
sweep = {}
for name, by in runs.items():
    if name.startswith("sweep-q"):
        q, total = name[len("sweep-q"):].split("-")
        for broker, r in by.items():
            sweep.setdefault((broker, int(q)), []).append((int(total), r))
lines += ["", f"Sustained rate (16 pairs, 64 B): highest offered rate delivered in full (≥ 95 % of it per second), with no loss and p99 under {bound:g} ms.", "",
          "| broker | QoS | sustained msg/s | p99 ms there | deliveries per CPU-s there | rates tried (offered: received/s, lost, p99 ms) |",
          "| --- | ---: | ---: | ---: | ---: | --- |"]
for (broker, q), rs in sorted(sweep.items(), key=lambda k: (k[0][1], k[0][0] != "ringmq")):
    rs.sort(key=lambda t: t[0])
    best = None
    tried = []
    for total, r in rs:
        p99 = (r.get("latency_us") or {}).get("p99", 1e12) / 1000
        tried.append(f"{total//1000}k: {r.get('received_per_s',0)/1000:.0f}k, {r.get('lost',0)}, {p99:.1f}")
        # Sustained: what was offered was delivered (95 %), none lost, p99 within the bound.
        if r.get("lost", 1) == 0 and p99 <= bound and r.get("received_per_s", 0) >= 0.95 * total:
            best = (total, r, p99)
    if best:
        total, r, p99 = best
        c = cpu(r)
        per = f"{r['received']/c:,.0f}" if c else "n/a"
        lines.append(f"| {broker} | {q} | {r.get('received_per_s',0):,.0f} | {p99:.2f} | {per} | {'; '.join(tried)} |")
    else:
        lines.append(f"| {broker} | {q} | none of the rates | | | {'; '.join(tried)} |")
lines += ["", "| after overload (16 pairs QoS 0 as fast as possible) | broker | then 4 pairs QoS 1 at 1,000/s: lost |", "| --- | --- | ---: |"]
for broker, r in sorted(runs.get("after-overload", {}).items(), reverse=True):
    lines.append(f"| serves normally: {'yes' if r.get('lost', 1) == 0 and r.get('received', 0) > 0 else 'NO'} | {broker} | {r.get('lost')} |")
hostile = runs.get("hostile", {})
if hostile:
    def yn(x):
        return "n/a" if x is None else ("yes" if x else "NO")
    def num(x, f="{:.1f}"):
        return "n/a" if x is None else f.format(x)
    lines += ["", "Hostile clients (scenario hostile): deep topics (65,535 '/'), 10 non-reading subscribers "
              "of a 900 KB retained message named 64 times in one SUBSCRIBE, a PINGREQ flood, 5,000 "
              "connections; a probe publishes QoS 1 every 50 ms and pings every 200 ms throughout.", "",
              "| broker | alive | serves after | RSS growth MB | probe p99 ms | probe max ms | probe timeouts |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for broker, r in sorted(hostile.items(), key=lambda kv: kv[0] != "ringmq"):
        growth = r.get("rss_growth_bytes")
        lines.append(f"| {broker} | {yn(r.get('alive'))} | {yn(r.get('serves_after'))} | "
                     f"{num(None if growth is None else growth / 2**20)} | {num(r.get('probe_p99_ms'), '{:.2f}')} | "
                     f"{num(r.get('probe_max_ms'), '{:.2f}')} | {r.get('probe_timeouts', 'n/a')}"
                     f"{' (disconnected)' if r.get('probe_disconnected') else ''} |")
# The issue's targets, as ratios against mosquitto measured in this same run.
def sustained(broker, q):
    best = 0
    for total, r in sweep.get((broker, q), []):
        p99 = (r.get("latency_us") or {}).get("p99", 1e12) / 1000
        if r.get("lost", 1) == 0 and p99 <= bound and r.get("received_per_s", 0) >= 0.95 * total:
            best = max(best, r.get("received_per_s", 0))
    return best
def per_cpu(name, broker):
    r = runs.get(name, {}).get(broker)
    c = r and cpu(r)
    return r["received"] / c if c else 0
def rss(transport, broker):
    r = runs.get(f"storm-{transport}", {}).get(broker) or {}
    return r.get("rss_per_connection_bytes") or 0
def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "n/a"
targets = []
for q in (0, 1):
    a, b = sustained("ringmq", q), sustained("mosquitto", q)
    targets.append((f"sustained QoS {q} p2p msg/s ≥ 2 × mosquitto", f"{a:,.0f} vs {b:,.0f}", ratio(a, b), bool(a and b and a >= 2 * b)))
for q in (0, 1):
    a, b = per_cpu(f"p2p-qos{q}-80k", "ringmq"), per_cpu(f"p2p-qos{q}-80k", "mosquitto")
    targets.append((f"deliveries per CPU-s at 80k msg/s, QoS {q} ≥ 3 × mosquitto", f"{a:,.0f} vs {b:,.0f}", ratio(a, b), bool(a and b and a >= 3 * b)))
a, b = rss("tcp", "ringmq"), rss("tcp", "mosquitto")
targets.append(("RSS per idle TCP connection ≤ mosquitto", f"{a:,.0f} B vs {b:,.0f} B", ratio(a, b), bool(a and b and a <= b)))
a, b = rss("ws", "ringmq"), rss("ws", "mosquitto")
if "storm-ws" in runs:
    targets.append(("RSS per idle WebSocket connection ≤ 2 KiB", f"{a:,.0f} B (mosquitto {b:,.0f} B)", ratio(a, b), bool(a and a <= 2048)))
r = runs.get("after-overload", {}).get("ringmq") or {}
o = runs.get("overload", {}).get("ringmq") or {}
s0 = sustained("ringmq", 0)
times = f"{o.get('sent_per_s', 0) / s0:.1f}×" if s0 else "?"
targets.append((f"serves normally after an overload (offered {times} its sustained QoS 0 rate)",
                f"lost {r.get('lost')} of {r.get('expected')}", "", r.get("lost", 1) == 0 and r.get("received", 0) > 0))
lines += ["", "Targets (ringmq against mosquitto in this run):", "",
          "| target | ringmq vs mosquitto | ratio | met |", "| --- | --- | ---: | --- |"]
lines += [f"| {t} | {v} | {x} | {'yes' if ok else 'NO'} |" for t, v, x, ok in targets]
lines += ["", "lost = expected − received after a bounded drain; ringmq drops QoS 0 to a subscriber whose "
          "outbox is full and QoS 1/2 beyond --max-queued (counted), mosquitto pushes back through TCP.",
          "A broker missing from a row failed that run (see raw/bench.log)."]
# chart.svg: sustained msg/s and deliveries per CPU-second at 80 k msg/s, per broker (no
# plotting dependency: a hand-written SVG bar chart).
colors = {"ringmq": "#2e7d32", "mosquitto": "#1565c0", "rumqttd": "#ef6c00"}
panels = []
for q in (0, 1):
    vals = {b: (max([t for t, r in rs if r.get("lost", 1) == 0 and r.get("received_per_s", 0) >= 0.95 * t
                     and (r.get("latency_us") or {}).get("p99", 1e12) / 1000 <= bound] or [0]))
            for (b, qq), rs in sweep.items() if qq == q}
    panels.append((f"sustained msg/s, QoS {q}", vals))
for name in ("p2p-qos0-80k", "p2p-qos1-80k"):
    vals = {}
    for b, r in runs.get(name, {}).items():
        c = cpu(r)
        vals[b] = r["received"] / c if c else 0
    panels.append((f"deliveries per CPU-s, {name}", vals))
W, H, pw = 900, 260, 210
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
       f'<rect width="{W}" height="{H}" fill="white"/>']
for i, (title, vals) in enumerate(panels):
    x0 = 20 + i * (pw + 15)
    svg.append(f'<text x="{x0}" y="18" font-weight="bold">{title}</text>')
    top = max(vals.values() or [1]) or 1
    for j, (b, v) in enumerate(sorted(vals.items())):
        h = 170 * v / top
        x = x0 + 10 + j * 65
        svg.append(f'<rect x="{x}" y="{210 - h:.1f}" width="50" height="{h:.1f}" fill="{colors.get(b, "#777")}"/>')
        svg.append(f'<text x="{x + 25}" y="{205 - h:.1f}" text-anchor="middle">{v/1000:,.0f}k</text>')
        svg.append(f'<text x="{x + 25}" y="226" text-anchor="middle">{b}</text>')
svg.append(f'<text x="20" y="250" fill="#555">{os.path.basename(out)}: 2 shards for ringmq; see report.md for the method</text></svg>')
open(f"{out}/chart.svg", "w").write("\n".join(svg))
lines += ["", "![chart](chart.svg)"]
open(f"{out}/report.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
