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
if ! command -v mosquitto_sub >/dev/null 2>&1 || ! command -v mosquitto_pub >/dev/null 2>&1; then
    echo "mosquitto-clients missing: installing"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto-clients
else
    echo "mosquitto-clients: $(command -v mosquitto_sub)"
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

if [ "${#failed[@]}" -gt 0 ]; then
    banner "FAILED"
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
banner "all checks passed"
