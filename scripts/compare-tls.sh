# TLS section of scripts/compare.sh (sourced by it: uses its $out, $B, $T, brokers, pin_b,
# pin_l, wait_port, stop_broker, quick). The shapes of the plain runs over mqtts://, the
# broker's TLS listener against ringmq-bench's rustls clients (--tls-ca):
#   few fast connections: 4 pairs at 80 k msg/s in total (deliveries per broker CPU-s),
#     a sustained-rate sweep (16 pairs, 64 B) at QoS 0 and 1;
#   many slow connections: churn (connect + TLS handshake + CONNECT + one QoS 1 PUBLISH +
#     DISCONNECT, full handshakes, then with session resumption), and an idle fleet (RSS per
#     idle TLS connection, broker CPU per PINGREQ).
# The test PKI is made here with openssl into $out/tmp/pki and removed afterwards: a CA and a
# server certificate for localhost / 127.0.0.1 (X.509 v3 with SAN, as webpki requires),
# ECDSA P-256 by default (TLS_KEY=rsa: RSA 2048). rumqttd is left out: its TLS listener is a
# separate config section with its own certificate options, not set up here.
# Ports: ringmq 18971, mosquitto 18972, RINGMQ_BEFORE 18973.

tls_key=${TLS_KEY:-ec}
pki="$out/tmp/pki"
make_pki() {
    rm -rf "$pki"; mkdir -p "$pki"
    newkey() {
        if [ "$tls_key" = rsa ]; then openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
        else openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; fi
    }
    newkey "$pki/ca.key"
    openssl req -x509 -new -key "$pki/ca.key" -sha256 -days 2 -subj "/CN=ringmq bench CA" \
        -addext "basicConstraints=critical,CA:true" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$pki/ca.pem"
    newkey "$pki/server.key"
    openssl req -new -key "$pki/server.key" -subj "/CN=localhost" -out "$pki/server.csr"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$pki/server.ext"
    openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
        -days 2 -sha256 -extfile "$pki/server.ext" -out "$pki/server.pem" 2>/dev/null
    # mosquitto started as root reads its files as the user it drops to.
    chmod 755 "$out/tmp" "$pki"; chmod 644 "$pki"/*
}
start_tls_ringmq() {
    "${pin_b[@]}" "$T/release/ringmq" --listen mqtts://127.0.0.1:18971 --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" \
        --shards "${RINGMQ_SHARDS:-2}" --max-queued 100000 --max-queued-bytes 268435456 --log-level warn >"$out/raw/tls-ringmq.log" 2>&1 &
    BPID=$!; TCP=18971; WS=18971; wait_port $TCP
}
start_tls_before() {
    "${pin_b[@]}" "$RINGMQ_BEFORE" --listen mqtts://127.0.0.1:18973 --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" \
        --shards "${RINGMQ_SHARDS:-2}" --max-queued 100000 --max-queued-bytes 268435456 --log-level warn >"$out/raw/tls-before.log" 2>&1 &
    BPID=$!; TCP=18973; WS=18973; wait_port $TCP
}
start_tls_mosquitto() {
    printf 'listener 18972 127.0.0.1\ncertfile %s\nkeyfile %s\ncafile %s\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nset_tcp_nodelay true\n' \
        "$(realpath "$pki/server.pem")" "$(realpath "$pki/server.key")" "$(realpath "$pki/ca.pem")" >"$out/raw/tls-mosquitto.conf"
    "${pin_b[@]}" mosquitto -c "$out/raw/tls-mosquitto.conf" >"$out/raw/tls-mosquitto.log" 2>&1 &
    BPID=$!; TCP=18972; WS=18972; wait_port $TCP
}

tls_brokers=()
for b in "${brokers[@]}"; do [ "$b" = rumqttd ] || tls_brokers+=("$b"); done
tls_start=$(date +%s)
make_pki
tls=(--tls-ca "$pki/ca.pem")
# A full handshake (X25519, ECDSA P-256) costs each side about 0.5 ms of CPU here, so on 2
# cores the churn steps top out near 2,000/s for the machine (broker and load generator); the
# idle fleet opens at 500/s, well within what one mosquitto thread completes.
if [ $quick -eq 1 ]; then
    tls_rates=(25000 50000 100000 200000 400000 800000); tls_sweep=2; tls_churn=500,1000,2000,3000; tls_step=2
    tls_idle=5000; tls_idle_window=20; tls_fan_rates=10000,20000,40000,80000
else
    tls_rates=(25000 50000 100000 200000 400000 800000); tls_sweep=6; tls_churn=250,500,1000,2000,3000,4000; tls_step=5
    tls_idle=10000; tls_idle_window=60; tls_fan_rates=5000,10000,20000,40000,80000
fi
# name | bench arguments (a fresh broker each)
tls_runs=(
  "tls-p2p-qos0-80k|--scenario p2p --pairs 4 --qos 0 --rate 20000 --duration $((quick ? 2 : 10))"
  "tls-p2p-qos1-80k|--scenario p2p --pairs 4 --qos 1 --rate 20000 --duration $((quick ? 2 : 10))"
  "tls-churn-q1|--scenario churn --qos 1 --rates $tls_churn --step-secs $tls_step --concurrency 256 --threads 2"
  "tls-churn-resume-q1|--scenario churn --qos 1 --rates $tls_churn --step-secs $tls_step --concurrency 256 --threads 2 --tls-resume"
  "tls-fanin10k-q1|--scenario iot-fanin --publishers 10000 --subscribers 1 --qos 1 --rates $tls_fan_rates --step-secs $tls_step --connect-rate 1000"
  "tls-idle-k10|--scenario idle-fleet --connections $tls_idle --keepalive 10 --window $tls_idle_window --connect-rate 500 --threads 2"
)
# Scenario by scenario, each broker in turn: other work on the machine (a build) then falls on
# both brokers' runs of a row rather than on one broker's whole section.
cat /proc/loadavg >"$out/raw/tls-loadavg-start.txt"
for sc in "${tls_runs[@]}"; do
    name=${sc%%|*}; args=${sc#*|}
    for broker in "${tls_brokers[@]}"; do
        "start_tls_$broker"
        # shellcheck disable=SC2086
        "${pin_l[@]}" "$B" $args "${tls[@]}" --port "$TCP" --broker-pid "$BPID" --label "$broker" \
            --json "$out/raw/$broker-$name.json" >/dev/null 2>>"$out/raw/bench.log" || echo "tls $broker $name failed"
        stop_broker
    done
done
for qos in 0 1; do
    for broker in "${tls_brokers[@]}"; do
        "start_tls_$broker"
        for total in "${tls_rates[@]}"; do
            # shellcheck disable=SC2086
            "${pin_l[@]}" "$B" --scenario p2p --pairs 16 --qos $qos --rate $((total / 16)) --port "$TCP" "${tls[@]}" \
                --duration "$tls_sweep" --broker-pid "$BPID" --label "$broker" \
                --json "$out/raw/$broker-tls-sweep-q$qos-$total.json" >/dev/null 2>>"$out/raw/bench.log" || true
        done
        stop_broker
    done
done
cat /proc/loadavg >"$out/raw/tls-loadavg-end.txt"
rm -rf "$out/tmp"
echo "TLS: $(( $(date +%s) - tls_start )) s for ${#tls_brokers[@]} brokers"
