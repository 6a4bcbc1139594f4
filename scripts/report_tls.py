"""The TLS section of compare.sh's report.md: runs named tls-* (see scripts/compare-tls.sh),
each row with ringmq, mosquitto and their ratio measured in the same run."""


def _p99_ms(r, key="latency_us"):
    return ((r or {}).get(key) or {}).get("p99", 1e12) / 1000


def _sustained(rs, bound):
    """Sweep: the highest offered rate delivered in full (>= 95 %), no loss, p99 within bound."""
    best = None
    for total, r in sorted(rs, key=lambda t: t[0]):
        if r.get("lost", 1) == 0 and _p99_ms(r) <= bound and r.get("received_per_s", 0) >= 0.95 * total:
            best = (total, r)
    return best


def _sustained_value(rs, bound, row, b, capped, below):
    """The sustained rate of one broker's steps [(offered, result)] for report row `row`; marks
    the row "at least" when the highest rate tried held, "less than" when none did."""
    best = _sustained(rs, bound)
    if best and best[0] == max(t for t, _ in rs):
        capped.add((row, b))
    if rs and not best:
        below.add((row, b))
        return min(t for t, _ in rs)
    return best[1].get("received_per_s", 0) if best else 0


def _churn_ok(s):
    return s.get("failed", 1) == 0 and s.get("lost", 1) == 0 and s.get("completed_per_s", 0) >= 0.95 * s.get("offered_per_s", 0)


def _churn_best(r):
    best = None
    for s in (r or {}).get("steps", []):
        if _churn_ok(s):
            best = s
    return best


def _cpu_ms_per_conn(s):
    c = (s.get("broker") or {}).get("cpu_seconds")
    return c * 1000 / s["completed"] if c is not None and s.get("completed") else None


def _saturated(s):
    m = s.get("machine") or {}
    return " *" if m.get("cores") and m.get("busy_cores", 0) >= 0.95 * m["cores"] else ""


def _loadavg(out, when):
    try:
        return open(f"{out}/raw/tls-loadavg-{when}.txt").read().split()[0]
    except (OSError, IndexError):
        return "?"


def section(runs, cpu, bound, out="."):
    tls = {n[len("tls-"):]: by for n, by in runs.items() if n.startswith("tls-")}
    if not tls:
        return []
    brokers = sorted({b for by in tls.values() for b in by}, key=lambda b: (b != "ringmq", b != "mosquitto", b))
    others = [b for b in brokers if b not in ("ringmq", "mosquitto")]
    rows = []  # (what, {broker: value}, fmt, higher_is_better)

    sweep = {}
    for n, by in tls.items():
        if n.startswith("sweep-q"):
            q, total = n[len("sweep-q"):].split("-")
            for b, r in by.items():
                sweep.setdefault((b, int(q)), []).append((int(total), r))
    capped = set()  # (row, broker): the broker sustained the highest rate tried, so "at least".
    below = set()  # (row, broker): none of the rates tried; its value is the lowest, "less than".
    for q in (0, 1):
        vals = {}
        for b in brokers:
            vals[b] = _sustained_value(sweep.get((b, q), []), bound, len(rows), b, capped, below)
        rows.append((f"QoS {q} sustained msg/s (16 pairs, 64 B; no loss, p99 ≤ {bound:g} ms)", vals, "{:,.0f}", True))
    for q in (0, 1):
        vals = {}
        for b, r in tls.get(f"p2p-qos{q}-80k", {}).items():
            c = cpu(r)
            vals[b] = r["received"] / c if c else None
        rows.append((f"QoS {q} deliveries per broker CPU-s at 80k msg/s (4 pairs)", vals, "{:,.0f}", True))
    for name, what in (("churn-q1", "full handshakes"), ("churn-resume-q1", "session resumption")):
        by = tls.get(name, {})
        if not by:
            continue
        vals = {b: (_churn_best(r) or {}).get("offered_per_s", 0) for b, r in by.items()}
        for b, r in by.items():
            steps = r.get("steps", [])
            if steps and _churn_best(r) is steps[-1]:
                capped.add((len(rows), b))
            if steps and not _churn_best(r):
                vals[b] = steps[0].get("offered_per_s", 0)
                below.add((len(rows), b))
        rows.append((f"churn ({what}): sustained connections/s", vals, "{:,.0f}", True))
        # Broker CPU per connection at the highest step every broker sustained (else the first).
        ok = [k for k, steps in enumerate(zip(*[r.get("steps", []) for r in by.values()]))
              if all(_churn_ok(s) for s in steps)] or [0]
        k = ok[-1]
        vals = {b: _cpu_ms_per_conn(r["steps"][k]) for b, r in by.items() if len(r.get("steps", [])) > k}
        at = next(iter(by.values())).get("steps", [{}])[k].get("offered_per_s", 0)
        rows.append((f"churn ({what}): broker CPU ms per connection at {at:,}/s", vals, "{:.2f}", False))
    # The IoT shape over TLS: 10,000 publishers into one subscriber, QoS 1.
    fanin = tls.get("fanin10k-q1", {})
    if fanin:
        vals, per_cpu = {}, {}
        for b, r in fanin.items():
            steps = [(s.get("offered_per_s", 0), s) for s in r.get("steps", [])]
            vals[b] = _sustained_value(steps, bound, len(rows), b, capped, below)
            at = [s for t, s in steps if t == 20000]
            per_cpu[b] = at[0].get("deliveries_per_cpu_s") if at else None
        rows.append(("10,000 TLS publishers → 1, QoS 1: sustained msg/s", vals, "{:,.0f}", True))
        rows.append(("10,000 TLS publishers → 1, QoS 1: deliveries per broker CPU-s at 20k msg/s",
                     per_cpu, "{:,.0f}", True))
    idle = tls.get("idle-k10", {})
    if idle:
        vals = {b: (r.get("broker") or {}).get("rss_per_connection_bytes") for b, r in idle.items()}
        n = max((r.get("connected", 0) for r in idle.values()), default=0)
        rows.append((f"idle TLS connections ({n:,}): broker RSS bytes per connection", vals, "{:,.0f}", False))
        vals = {b: (r.get("broker") or {}).get("cpu_us_per_pingreq") for b, r in idle.items()}
        rows.append(("idle TLS connections: broker CPU µs per PINGREQ (keep-alive 10 s)", vals, "{:.1f}", False))

    def fmt(v, f):
        return "n/a" if not v else f.format(v)
    lines = ["", "## TLS", "",
             "The shapes above over `mqtts://`: the broker's TLS listener against `ringmq-bench --tls-ca` "
             "(rustls clients offering X25519 first as MQTT clients do, server name localhost, TLS 1.3 as both brokers negotiate it), a test PKI made at run "
             "time by `openssl` (CA + server certificate, ECDSA P-256 unless TLS_KEY=rsa). Every connection makes a full "
             "handshake except in the resumption churn (rustls client tickets). A fresh broker per row (the sweeps: one per "
             "broker and QoS), the brokers in turn row by row. Machine load average (1 min) before the section "
             f"{_loadavg(out, 'start')}, after it {_loadavg(out, 'end')}: other work on the machine shows there. "
             "Ratio = ringmq / mosquitto; for rows marked ↓ lower is better; ≥ marks a broker that sustained the highest "
             "rate tried (its ceiling lies above), < one that sustained none (below the lowest tried).", "",
             "| measure | " + " | ".join(brokers) + " | ratio ringmq / mosquitto | ringmq better |",
             "| --- |" + " ---: |" * len(brokers) + " ---: | --- |"]
    for i, (what, vals, f, higher) in enumerate(rows):
        a, b = vals.get("ringmq"), vals.get("mosquitto")
        ratio = f"{a / b:.2f}×" if a and b else "n/a"
        if a and b and ((i, "ringmq") in capped or (i, "mosquitto") in below) \
                and (i, "mosquitto") not in capped and (i, "ringmq") not in below:
            ratio = ("> " if (i, "mosquitto") in below else "≥ ") + ratio
        elif a and b and ((i, "ringmq") in below or (i, "mosquitto") in capped):
            ratio = "≤ " + ratio
        better = "n/a" if not (a and b) else "equal" if a == b else ("yes" if (a > b if higher else a < b) else "NO")
        lines.append(f"| {what}{'' if higher else ' ↓'} | "
                     + " | ".join(("≥ " if (i, x) in capped else "< " if (i, x) in below else "")
                                  + fmt(vals.get(x), f) for x in brokers)
                     + f" | {ratio} | {better} |")

    lines += ["", "TLS sustained-rate sweeps (offered: received/s, lost, p99 ms):", "",
              "| broker | QoS | rates tried |", "| --- | ---: | --- |"]
    for (b, q), rs in sorted(sweep.items(), key=lambda kv: (kv[0][1], kv[0][0] != "ringmq")):
        tried = [f"{t // 1000}k: {r.get('received_per_s', 0) / 1000:.0f}k, {r.get('lost', 0)}, {_p99_ms(r):.1f}"
                 for t, r in sorted(rs, key=lambda t: t[0])]
        lines.append(f"| {b} | {q} | {'; '.join(tried)} |")
    for name in ("churn-q1", "churn-resume-q1"):
        by = tls.get(name, {})
        if not by:
            continue
        lines += ["", f"TLS {name} steps (offered/s: completed/s, failed, lost, CONNACK p50/p99 ms incl. the handshake, "
                  "broker CPU ms per connection, resumed; * = every core busy):", "",
                  "| broker | steps |", "| --- | --- |"]
        for b in brokers:
            r = by.get(b)
            if not r:
                continue
            steps = []
            for s in r.get("steps", []):
                c = _cpu_ms_per_conn(s)
                lat = s.get("connack_latency_us") or {}
                steps.append(f"{s['offered_per_s']}: {s.get('completed_per_s', 0):,.0f}, {s.get('failed', 0)}, {s.get('lost', 0)}, "
                             f"{lat.get('p50', 0) / 1000:.1f}/{lat.get('p99', 0) / 1000:.1f}, "
                             f"{'n/a' if c is None else f'{c:.2f}'}, {s.get('tls_resumed', 0)}{_saturated(s)}")
            lines.append(f"| {b} | {'; '.join(steps)} |")
    if idle:
        lines += ["", "TLS idle fleet (one QoS 1 subscription each, PINGREQ every 10 s at a random phase, opened at 500/s):", "",
                  "| broker | connected | connect failures | pings | pongs | broker CPU-s per minute | RSS after connect MB | RSS at end MB |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for b in brokers:
            r = idle.get(b)
            if not r:
                continue
            br, c = r.get("broker") or {}, r.get("connect") or {}
            lines.append(f"| {b} | {r.get('connected', 0):,} | {c.get('failed', 0)} | {r.get('pings', 0):,} | {r.get('pongs', 0):,} | "
                         f"{br.get('cpu_seconds_per_minute', 0):.2f} | {(c.get('broker_rss_open_kb') or 0) / 1024:.0f} | "
                         f"{(br.get('rss_kb') or 0) / 1024:.0f} |")
    lines += ["", "The load generator does the client half of every handshake on the same cores (its CPU per step: "
              "bench_cpu_seconds in the raw JSON), so a churn ceiling marked * is the machine's, not only the broker's; "
              "broker CPU per connection is the broker's own cost. rumqttd is not in this section (its TLS listener is "
              "not set up by compare-tls.sh)." + (f" Also measured: {', '.join(others)}." if others else "")]
    return lines
