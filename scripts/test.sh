#!/usr/bin/env bash
# Lint and test ringmq: installs what the end-to-end tests need, then runs
# rustfmt, clippy and the whole test suite (unit + end-to-end).
set -euo pipefail

cd "$(dirname "$0")/.."

banner() {
    printf '\n==================== %s ====================\n' "$*"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

banner "dependencies"
# mosquitto-clients for interop, mosquitto for mosquitto_passwd and the
# password-file interop test, openssl for the test PKI of the TLS tests.
pkgs=()
{ command -v mosquitto_sub >/dev/null 2>&1 && command -v mosquitto_pub >/dev/null 2>&1; } || pkgs+=(mosquitto-clients)
{ [ -x /usr/sbin/mosquitto ] && command -v mosquitto_passwd >/dev/null 2>&1; } || pkgs+=(mosquitto)
command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
if [ "${#pkgs[@]}" -gt 0 ]; then
    echo "installing: ${pkgs[*]}"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${pkgs[@]}"
fi
echo "mosquitto: $(command -v mosquitto_sub) $(command -v mosquitto_passwd) /usr/sbin/mosquitto"
echo "openssl: $(openssl version)"

# MQTT over WebSocket interop: headless Chromium (system package, driven by
# playwright-core: never `playwright install`), Node >= 20 for the browser
# tests, and a Python venv with paho-mqtt.
ws_pkgs=()
[ -x /usr/bin/chromium ] || ws_pkgs+=(chromium)
{ command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; } || ws_pkgs+=(nodejs npm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || ws_pkgs+=(python3-venv)
if [ "${#ws_pkgs[@]}" -gt 0 ]; then
    echo "installing: ${ws_pkgs[*]}"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${ws_pkgs[@]}"
fi
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
    echo "node $(node --version) is too old for tests/browser (playwright-core needs >= 20)" >&2
    exit 1
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet 'paho-mqtt==2.*'
echo "paho-mqtt: $(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("paho-mqtt"))')"
if [ -f tests/browser/package-lock.json ]; then
    (cd tests/browser && npm ci --no-audit --no-fund)
else
    (cd tests/browser && npm install --no-audit --no-fund)
fi

# Every check runs even when an earlier one fails, so one run shows all
# problems; the script fails at the end if any did.
failed=()
step() {
    banner "$*"
    if ! "$@"; then
        failed+=("$*")
    fi
}

step cargo fmt --all -- --check
step cargo clippy --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
    step cargo nextest run --no-fail-fast
else
    echo "(cargo-nextest not installed: using cargo test)"
    step cargo test --no-fail-fast
fi

# MQTT over WebSocket with other clients, against the debug binary.
ws_paho() {
    RINGMQ_BIN=target/debug/ringmq timeout 300 .venv/bin/python tests/ws_paho.py
}
# MQTT 5.0 semantics with paho-mqtt (58 checks), and Eclipse Paho's own
# MQTT 5.0 interoperability suite (vendored in tests/paho_interop).
mqtt5_paho() {
    RINGMQ_BIN=target/debug/ringmq timeout 300 .venv/bin/python tests/mqtt5_paho.py
}
paho_interop() {
    RINGMQ_BIN=target/debug/ringmq timeout 960 scripts/paho_interop.sh
}
# MQTT over TLS and secure WebSocket with paho-mqtt (mqtts and wss, 3.1.1
# and 5.0, client certificates); PKI made at run time with openssl.
tls_paho() {
    RINGMQ_BIN=target/debug/ringmq timeout 300 .venv/bin/python tests/tls_paho.py
}
ws_browser() {
    (cd tests/browser && RINGMQ_BIN=../../target/debug/ringmq timeout 300 node --test)
}
step cargo build
# The README's first command is `cargo run --release`: it must pick the broker binary.
step cargo run --quiet -- --version
step ws_paho
step tls_paho
step mqtt5_paho
step paho_interop
step ws_browser

if [ "${#failed[@]}" -gt 0 ]; then
    banner "FAILED"
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
banner "all checks passed"
