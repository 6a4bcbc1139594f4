#!/usr/bin/env bash
# Run the same scenarios against ringmq and mosquitto, one broker after the other, on loopback,
# and write bench-results/<date>/report.md (+ one JSON file per run).
# Usage: scripts/compare.sh [--quick]      (--quick: short runs, about 3.5 minutes on 2 cores,
#                                           plus about 4 minutes a broker of IoT shapes)
#        scripts/compare.sh --report-only  (rewrite report.md and chart.svg from the raw JSON of
#                                           REPORT_DIR, default today's folder; runs nothing)
# mosquitto is installed from Debian and rumqttd from crates.io (`cargo install rumqttd`) when
# missing; BROKERS="ringmq mosquitto" limits the list; ONLY=iot runs only the IoT shapes (many
# slow connections) and the report, ONLY=tls only the TLS section (about 4.5 minutes with
# --quick; TLS_KEY=rsa for RSA 2048 certificates instead of ECDSA P-256). Binaries come from
# $CARGO_TARGET_DIR (default target/).
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
only=${ONLY:-all}
case $only in all | iot | tls) ;; *) echo "ONLY=$only: use iot or tls" >&2; exit 2 ;; esac
# Sections: few fast connections (all only), IoT shapes (all, iot), TLS (all, tls).
iot_on=0; [ "$only" = tls ] || iot_on=1
tls_on=0; [ "$only" = iot ] || tls_on=1
# The report names the command that made it.
export CMP_ARGS="$*${ONLY:+ (ONLY=$ONLY)}"
out="${REPORT_DIR:-bench-results/$(date +%Y-%m-%d)}"; mkdir -p "$out/raw"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if [ $report_only -eq 0 ]; then
command -v mosquitto >/dev/null || { as_root apt-get update; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto; }
brokers=(${BROKERS:-ringmq mosquitto rumqttd})
[ -n "${RINGMQ_BEFORE:-}" ] && brokers+=(before)
if [[ " ${brokers[*]} " == *" rumqttd "* ]] && ! command -v rumqttd >/dev/null; then
    echo "installing rumqttd from crates.io (a few minutes)"
    cargo install rumqttd --locked || cargo install rumqttd || {
        echo "rumqttd could not be built here: comparing without it"; brokers=($(printf '%s\n' "${brokers[@]}" | grep -vx rumqttd)); }
fi
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --bins >/dev/null
T=${CARGO_TARGET_DIR:-target}
B=$T/release/ringmq-bench
# The IoT shapes hold 15,000 connections in the broker and as many in the bench: both inherit
# this shell's open-file limit (the bench refuses, exit 2, a run that does not fit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
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
    "${pin_b[@]}" "$T/release/ringmq" --listen mqtt://127.0.0.1:18931 --listen ws://127.0.0.1:18932/mqtt \
        --shards "${RINGMQ_SHARDS:-2}" --max-queued 100000 --max-queued-bytes 268435456 --log-level warn >"$out/raw/ringmq.log" 2>&1 &
    BPID=$!; TCP=18931; WS=18932; wait_port $TCP; wait_port $WS
}
# RINGMQ_BEFORE=/path/to/ringmq adds a broker "before": an earlier ringmq build, run exactly like
# ringmq, so a change is measured before and after in the same run.
start_before() {
    "${pin_b[@]}" "$RINGMQ_BEFORE" --listen mqtt://127.0.0.1:18961 --listen ws://127.0.0.1:18962/mqtt \
        --shards "${RINGMQ_SHARDS:-2}" --max-queued 100000 --max-queued-bytes 268435456 --log-level warn >"$out/raw/before.log" 2>&1 &
    BPID=$!; TCP=18961; WS=18962; wait_port $TCP; wait_port $WS
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
[ "$only" = all ] || { scenarios=(); storm_transports=""; }
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
[ "$only" = all ] && for broker in "${brokers[@]}"; do
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
[ "$only" = all ] && for broker in "${brokers[@]}"; do
    "start_$broker"
    "${pin_l[@]}" "$B" --scenario hostile --port "$TCP" --broker-pid "$BPID" --label "$broker" \
        --json "$out/raw/$broker-hostile.json" >/dev/null 2>>"$out/raw/bench.log" || echo "hostile $broker failed"
    stop_broker
done

# IoT shapes: many slow connections (ringmq-bench's fleet scenarios, a few threads driving
# thousands of non-blocking connections). Each run opens its connections once, then offers
# each total rate of --rates for --step-secs; a fresh broker per run. Steps reach past
# mosquitto's ceiling on 2 cores (about 40 k/s at 10,000 × 4/s QoS 1, 48 k/s at 1,000 × 80/s).
# Full: about 8 minutes a broker; --quick: fewer, shorter steps and a 20 s idle window (about 4).
if [ $quick -eq 1 ]; then
    fan_rates=20000,40000,80000,160000; pair_rates=5000,20000,40000,80000; churn_rates=1000,4000,16000
    iot_step=2; idle_window=20; cost_step=3
else
    fan_rates=10000,20000,40000,80000,160000; pair_rates=5000,10000,20000,40000,80000
    churn_rates=500,1000,2000,4000,8000,16000; iot_step=5; idle_window=60; cost_step=5
fi
# name | bench arguments
iot=(
  "fanin1k-q0|--scenario iot-fanin --publishers 1000 --subscribers 1 --qos 0 --rates $fan_rates --step-secs $iot_step"
  "fanin1k-q1|--scenario iot-fanin --publishers 1000 --subscribers 1 --qos 1 --rates $fan_rates --step-secs $iot_step"
  "fanin10k-q0|--scenario iot-fanin --publishers 10000 --subscribers 1 --qos 0 --rates $fan_rates --step-secs $iot_step"
  "fanin10k-q1|--scenario iot-fanin --publishers 10000 --subscribers 1 --qos 1 --rates $fan_rates --step-secs $iot_step"
  "fanin10k-q1-shared4|--scenario iot-fanin --publishers 10000 --subscribers 4 --shared --qos 1 --rates $fan_rates --step-secs $iot_step"
  "pairs5k-q1|--scenario iot-pairs --pairs 5000 --qos 1 --rates $pair_rates --step-secs $iot_step"
  "churn-q1|--scenario churn --qos 1 --rates $churn_rates --step-secs $iot_step --concurrency 256"
  "idle15k-k10|--scenario idle-fleet --connections 15000 --keepalive 10 --window $idle_window"
  "idle15k-k60|--scenario idle-fleet --connections 15000 --keepalive 60 --window $idle_window"
  # Per-connection cost: one fixed total rate, more connections sharing it.
  "cost-1000|--scenario iot-fanin --publishers 1000 --subscribers 1 --qos 0 --rates 20000 --step-secs $cost_step"
  "cost-5000|--scenario iot-fanin --publishers 5000 --subscribers 1 --qos 0 --rates 20000 --step-secs $cost_step"
  "cost-15000|--scenario iot-fanin --publishers 15000 --subscribers 1 --qos 0 --rates 20000 --step-secs $cost_step"
)
iot_start=$(date +%s)
[ $iot_on -eq 1 ] || iot=()
for broker in "${brokers[@]}"; do
    for sc in "${iot[@]}"; do
        name=${sc%%|*}; args=${sc#*|}
        "start_$broker"
        # shellcheck disable=SC2086
        "${pin_l[@]}" "$B" $args --threads 2 --port "$TCP" --broker-pid "$BPID" --label "$broker" \
            --json "$out/raw/$broker-iot-$name.json" >/dev/null 2>>"$out/raw/bench.log" || echo "iot $broker $name failed"
        stop_broker
    done
done
[ $iot_on -eq 1 ] && echo "IoT shapes: $(( $(date +%s) - iot_start )) s for ${#brokers[@]} brokers"
[ $tls_on -eq 1 ] && . scripts/compare-tls.sh

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
# Few fast connections (p2p, fan-out, sweep, storm, hostile) were run, or only the IoT shapes
# or TLS.
fast = any(not n.startswith(("iot-", "tls-")) for n in runs)
lines = [f"# ringmq vs mosquitto vs rumqttd — {os.path.basename(out)}", "",
         f"Machine: {os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}; "
         "broker and load generator share the cores unless there are 4 or more. "
         "Command: `scripts/compare.sh" + (" --quick" if "--quick" in os.environ.get("CMP_ARGS","") else "") + "`"
         + "".join(f" (ONLY={o})" for o in ("iot", "tls") if f"ONLY={o}" in os.environ.get("CMP_ARGS", "")) + ".", "",
         "| scenario | broker | sent/s | received/s | lost | dup | p50 ms | p99 ms | deliveries per CPU-s | peak RSS MB |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for name, by in runs.items():
    if name.startswith(("storm", "sweep", "overload", "after", "hostile", "iot", "tls")):
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
if not fast:
    # ONLY=iot or tls: no few-fast-connections runs to report; their tables would be empty.
    only = [o for o in ("iot", "tls") if f"ONLY={o}" in os.environ.get("CMP_ARGS", "")]
    lines = lines[:4] + [f"Only the {'IoT shapes' if only == ['iot'] else 'TLS section'} {'was' if only == ['tls'] else 'were'} run (ONLY={only[0] if only else '?'})."]
# IoT shapes (many slow connections): apart from the few-fast-connections tables above.
iot = {name[len("iot-"):]: by for name, by in runs.items() if name.startswith("iot-")}
def step_ok(r, s):
    # Sustained: delivered ≥ 95 % of what was offered (times the copies each message makes),
    # none lost, p99 within the bound.
    p99 = (s.get("latency_us") or {}).get("p99", 1e12) / 1000
    want = s.get("offered_per_s", 0) * r.get("copies_per_message", 1)
    return s.get("lost", 1) == 0 and p99 <= bound and s.get("received_per_s", 0) >= 0.95 * want
def iot_best(r):
    best = None
    for s in (r or {}).get("steps", []):
        if step_ok(r, s):
            best = s
    return best
def saturated(s):
    # The whole machine (broker, load generator, anything else) had no core left in this step.
    m = s.get("machine") or {}
    return " *" if m.get("cores") and m.get("busy_cores", 0) >= 0.95 * m["cores"] else ""
def ms(s, key="latency_us", q="p99"):
    return (s.get(key) or {}).get(q, 0) / 1000
def churn_best(r):
    best = None
    for s in (r or {}).get("steps", []):
        if s.get("failed", 1) == 0 and s.get("lost", 1) == 0 and s.get("completed_per_s", 0) >= 0.95 * s.get("offered_per_s", 0):
            best = s
    return best
order = lambda kv: (kv[0] != "ringmq", kv[0])
if iot:
    lines += ["", "## IoT shapes (many slow connections)", "",
              "A different load from the tables above: thousands of connections, each slow, fanned in to few "
              "consumers (`ringmq-bench --scenario iot-fanin | iot-pairs | churn | idle-fleet`; a few load-generator "
              "threads drive all connections, the consumers read on a thread of their own). Connections open once "
              f"(at 5,000/s), then each total rate is offered for one step. Sustained = highest step delivered ≥ 95 % "
              f"with no loss and p99 ≤ {bound:g} ms (its offered rate is the sustained rate). A fresh broker per row. "
              "received/s counts the messages sent in a step that arrived by the end of the run, over the step's length.", "",
              "| shape | broker | connect s | RSS after connect MB | sustained msg/s | deliveries per CPU-s there | p99 ms there | steps (offered k/s: received k/s, lost, p99 ms) |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, by in iot.items():
        if name.startswith(("churn", "idle", "cost")):
            continue
        for broker, r in sorted(by.items(), key=order):
            c = r.get("connect") or {}
            tried = []
            for s in r.get("steps", []):
                note = ""
                if s.get("sent_per_s", 0) < 0.95 * s.get("offered_per_s", 0):
                    note = f" (sent {s.get('sent_per_s', 0)/1000:.0f}k)"
                note += saturated(s)
                tried.append(f"{s['offered_per_s']//1000}k: {s.get('received_per_s', 0)/1000:.1f}k, {s.get('lost', 0)}, {ms(s):.1f}{note}")
            b = iot_best(r)
            rss = c.get("broker_rss_open_kb")
            failed = f" ({c.get('failed')} failed)" if c.get("failed") else ""
            sus = f"{b['offered_per_s']:,.0f}" if b else "none of the steps"
            per = f"{b.get('deliveries_per_cpu_s') or 0:,.0f}" if b else ""
            p99 = f"{ms(b):.2f}" if b else ""
            lines.append(f"| {name} | {broker} | {c.get('seconds', 0):.1f}{failed} | {(rss or 0)/1024:.0f} | {sus} | {per} | {p99} | {'; '.join(tried)} |")
    churn = iot.get("churn-q1", {})
    if churn:
        lines += ["", "Churn: clients that connect (fresh TCP, clean session), publish one QoS 1 message, wait for PUBACK, "
                  "DISCONNECT and close, offered open-loop at each rate (at most 256 in progress); one subscriber of "
                  "`bench/churn/#` counts what arrives. Sustained = highest step completing ≥ 95 % with no failure or loss.", "",
                  "| broker | sustained connections/s | CONNACK p99 ms there | steps (offered/s: completed/s, failed, lost, CONNACK p50/p99 ms) |",
                  "| --- | ---: | ---: | --- |"]
        for broker, r in sorted(churn.items(), key=order):
            tried = [f"{s['offered_per_s']}: {s.get('completed_per_s', 0):,.0f}, {s.get('failed', 0)}, {s.get('lost', 0)}, "
                     f"{ms(s, 'connack_latency_us', 'p50'):.1f}/{ms(s, 'connack_latency_us'):.1f}{saturated(s)}" for s in r.get("steps", [])]
            b = churn_best(r)
            lines.append(f"| {broker} | {b['offered_per_s'] if b else 0:,.0f} | {ms(b, 'connack_latency_us') if b else 0:.1f} | {'; '.join(tried)} |")
    idle = [(n, by) for n, by in iot.items() if n.startswith("idle")]
    if idle:
        lines += ["", "Idle fleet: each client holds one QoS 1 subscription and sends PINGREQ every keep-alive period at a random "
                  "phase; measured once every client has pinged (keep-alive + 2 s after the last connected).", "",
                  "| broker | connections | keep-alive s | window s | pings | pongs | broker CPU-s per minute | CPU µs per PINGREQ | RSS per connection (bytes) |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, by in idle:
            for broker, r in sorted(by.items(), key=order):
                b = r.get("broker") or {}
                lines.append(f"| {broker} | {r.get('connected', 0):,} | {r.get('keepalive')} | {r.get('window_seconds')} | {r.get('pings', 0):,} | "
                             f"{r.get('pongs', 0):,} | {b.get('cpu_seconds_per_minute', 0):.2f} | {b.get('cpu_us_per_pingreq') or 0:.1f} | "
                             f"{b.get('rss_per_connection_bytes') or 0:,.0f} |")
    cost = {int(n.split("-")[1]): by for n, by in iot.items() if n.startswith("cost-")}
    def cpu_us_per_msg(r):
        s = (r or {}).get("steps", [{}])[0]
        c = (s.get("broker") or {}).get("cpu_seconds")
        return c * 1e6 / s["received"] if c and s.get("received") else None
    if cost:
        ns = sorted(cost)
        lines += ["", "Per-connection cost: QoS 0 fan-in at a fixed 20,000 msg/s in total, shared by N publishers: broker CPU µs per "
                  "delivered message (flat = the number of connections costs nothing by itself).", "",
                  "| broker | " + " | ".join(f"N = {n:,}" for n in ns) + " |", "| --- |" + " ---: |" * len(ns)]
        for broker in sorted({b for by in cost.values() for b in by}, key=lambda b: (b != "ringmq", b)):
            cells = []
            for n in ns:
                v = cpu_us_per_msg(cost[n].get(broker))
                cells.append("n/a" if v is None else f"{v:.1f}")
            lines.append(f"| {broker} | " + " | ".join(cells) + " |")
    # Targets for the IoT shapes, against mosquitto in this same run.
    t = []
    def get(name, broker):
        return iot.get(name, {}).get(broker)
    for name in [n for n in iot if not n.startswith(("churn", "idle", "cost"))]:
        a, b = get(name, "ringmq"), get(name, "mosquitto")
        if not (a and b):
            continue
        ba, bb = iot_best(a), iot_best(b)
        # The step's offered rate: steps are discrete, so received/s a hair under it would
        # make 80k against 40k read as 1.99×.
        x, y = (ba or {}).get("offered_per_s", 0), (bb or {}).get("offered_per_s", 0)
        t.append((f"{name}: sustained ≥ 2 × mosquitto", f"{x:,.0f} vs {y:,.0f}", ratio(x, y), bool(x and y and x >= 2 * y)))
        # Efficiency at the same load: the highest step both sustained.
        both = [k for k, (sa, sb) in enumerate(zip(a.get("steps", []), b.get("steps", []))) if step_ok(a, sa) and step_ok(b, sb)]
        if both:
            k = both[-1]
            x, y = a["steps"][k].get("deliveries_per_cpu_s") or 0, b["steps"][k].get("deliveries_per_cpu_s") or 0
            at = f" at {a['steps'][k]['offered_per_s']//1000}k/s"
        else:
            x = y = 0; at = ""
        t.append((f"{name}: deliveries per CPU-s{at} ≥ 2 × mosquitto", f"{x:,.0f} vs {y:,.0f}", ratio(x, y), bool(x and y and x >= 2 * y)))
    a, b = get("fanin10k-q1", "ringmq"), get("fanin10k-q1", "mosquitto")
    if a and b:
        x = max([s.get("received_per_s", 0) for s in a.get("steps", [])] or [0])
        y = max([s.get("received_per_s", 0) for s in b.get("steps", [])] or [0])
        t.append(("one QoS 1 consumer behind 10,000 publishers receives ≥ mosquitto's (best step)", f"{x:,.0f} vs {y:,.0f} msg/s", ratio(x, y), bool(x and x >= y)))
    a, b = get("churn-q1", "ringmq"), get("churn-q1", "mosquitto")
    if a and b:
        x, y = (churn_best(a) or {}).get("offered_per_s", 0), (churn_best(b) or {}).get("offered_per_s", 0)
        t.append(("churn: sustained connections/s ≥ 2 × mosquitto", f"{x:,.0f} vs {y:,.0f}", ratio(x, y), bool(x and y and x >= 2 * y)))
    for name, _ in idle:
        a, b = (get(name, "ringmq") or {}).get("broker") or {}, (get(name, "mosquitto") or {}).get("broker") or {}
        if a and b:
            x, y = a.get("cpu_us_per_pingreq") or 0, b.get("cpu_us_per_pingreq") or 0
            t.append((f"{name}: CPU per PINGREQ ≤ 0.5 × mosquitto", f"{x:.1f} vs {y:.1f} µs", ratio(x, y), bool(x and y and x <= 0.5 * y)))
            x, y = a.get("rss_per_connection_bytes") or 0, b.get("rss_per_connection_bytes") or 0
            t.append((f"{name}: RSS per connection ≤ mosquitto", f"{x:,.0f} vs {y:,.0f} B", ratio(x, y), bool(x and y and x <= y)))
    if t:
        lines += ["", "IoT targets (ringmq against mosquitto in this run):", "",
                  "| target | ringmq vs mosquitto | ratio | met |", "| --- | --- | ---: | --- |"]
        lines += [f"| {a} | {v} | {x} | {'yes' if ok else 'NO'} |" for a, v, x, ok in t]
    lines += ["", "Loss per step = sent in that step × copies − received (after a drain of at most 3 s once the last step "
              "ends). A step marked '(sent Nk)' was not offered in full: the publishers' QoS 1 windows were full (broker "
              "back-pressure) or the load generator, on the same cores, could not send faster (see bench_cpu_seconds in the raw JSON). "
              "A step marked * had every core of the machine busy (broker, load generator and anything else running): "
              "there the load generator competes with the broker, and CPU-s per delivery leaves out the kernel's softirq "
              "time (loopback TCP receive work, charged to no process; machine.softirq_seconds in the raw JSON)."]
sys.path.insert(0, "scripts")
import report_tls
lines += report_tls.section(runs, cpu, bound, out)
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
if fast:
    open(f"{out}/chart.svg", "w").write("\n".join(svg))
    lines += ["", "![chart](chart.svg)"]
open(f"{out}/report.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
