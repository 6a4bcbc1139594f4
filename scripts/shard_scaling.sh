#!/usr/bin/env bash
# Shard scaling: ringmq's sustained rate with 1, 2, 4 and 8 shards at both shapes, the broker
# pinned to its own cores and the load generator to the others. Needs 16 cores (8 for the broker,
# 8 for the load generator); on fewer it refuses unless FORCE=1 (then it runs the shard counts
# that fit, pinned as far as the cores allow, to check the script itself).
# Usage: scripts/shard_scaling.sh            writes bench-results/<date>/scaling/report.md
# Shapes: few fast connections (p2p, 16 pairs, QoS 0 and 1, offered-rate sweep) and many slow
# ones (iot-fanin, 10,000 publishers into one consumer, QoS 0 and 1, rate steps).
set -euo pipefail
cd "$(dirname "$0")/.."
cores=$(nproc)
if [ "$cores" -lt 16 ] && [ "${FORCE:-0}" != 1 ]; then
    echo "shard_scaling.sh needs 16 cores (8 shards + 8 for the load generator); this machine has $cores." >&2
    echo "FORCE=1 runs what fits, to check the script." >&2
    exit 2
fi
out="${REPORT_DIR:-bench-results/$(date +%Y-%m-%d)/scaling}"; mkdir -p "$out/raw"
cargo build --release --bins >/dev/null
T=${CARGO_TARGET_DIR:-target}
B=$T/release/ringmq-bench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
half=$((cores / 2)); [ "$half" -lt 1 ] && half=1
load_cpus="$half-$((cores - 1))"; [ "$cores" -eq 1 ] && load_cpus=0
step=${STEP_SECS:-5}
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "broker not listening on $1 after 5 s" >&2
}
for shards in 1 2 4 8; do
    [ "$shards" -gt "$half" ] && { echo "skipping $shards shards: only $half cores for the broker"; continue; }
    for shape in \
        "p2p-q0|--scenario p2p --pairs 16 --qos 0 --rate 0 --duration $step" \
        "p2p-q1|--scenario p2p --pairs 16 --qos 1 --rate 0 --inflight 64 --duration $step" \
        "iot10k-q0|--scenario iot-fanin --publishers 10000 --subscribers 1 --qos 0 --rates 40000,80000,160000,320000 --step-secs $step" \
        "iot10k-q1|--scenario iot-fanin --publishers 10000 --subscribers 1 --qos 1 --rates 40000,80000,160000,320000 --step-secs $step"; do
        name=${shape%%|*}; args=${shape#*|}
        taskset -c "0-$((shards - 1))" "$T/release/ringmq" --listen mqtt://127.0.0.1:18971 --shards "$shards" \
            --max-queued 100000 --max-queued-bytes 268435456 --log-level warn >"$out/raw/ringmq-$shards.log" 2>&1 &
        bpid=$!; wait_port 18971
        # shellcheck disable=SC2086
        taskset -c "$load_cpus" "$B" $args --port 18971 --broker-pid "$bpid" --label "ringmq-$shards" \
            --json "$out/raw/s$shards-$name.json" >/dev/null 2>>"$out/raw/bench.log" || echo "run $shards $name failed"
        kill "$bpid" 2>/dev/null || true; wait "$bpid" 2>/dev/null || true
        sleep 1
    done
done
python3 - "$out" <<'PY'
import json, glob, os, sys
out = sys.argv[1]
bound = float(os.environ.get("P99_BOUND_MS", "50"))
rows = {}
for f in sorted(glob.glob(f"{out}/raw/s*.json")):
    shards, name = os.path.basename(f)[1:-5].split("-", 1)
    r = json.load(open(f))
    if "steps" in r:
        best = 0
        for s in r["steps"]:
            p99 = (s.get("latency_us") or {}).get("p99", 1e12) / 1000
            if s.get("lost", 1) == 0 and p99 <= bound and s.get("received_per_s", 0) >= 0.95 * s.get("offered_per_s", 0):
                best = max(best, s.get("offered_per_s", 0))
        rows.setdefault(name, {})[int(shards)] = best
    else:
        rows.setdefault(name, {})[int(shards)] = r.get("received_per_s", 0) if r.get("lost", 1) == 0 else 0
counts = sorted({s for v in rows.values() for s in v})
lines = [f"# ringmq shard scaling — {os.path.basename(os.path.dirname(out.rstrip('/')))}", "",
         f"{os.cpu_count()} cores; broker on cores 0..shards-1, load generator on the upper half. "
         "p2p: 16 pairs as fast as flow control allows (received/s, none lost); iot: highest step "
         f"delivered ≥ 95 % with no loss and p99 ≤ {bound:g} ms.", "",
         "| shape | " + " | ".join(f"{c} shard{'s' if c > 1 else ''}" for c in counts) + " |",
         "| --- | " + " | ".join("---:" for _ in counts) + " |"]
for name, by in rows.items():
    lines.append(f"| {name} | " + " | ".join(f"{by.get(c, 0):,.0f}" for c in counts) + " |")
open(f"{out}/report.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
