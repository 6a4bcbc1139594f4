#!/usr/bin/env bash
# Prepare a Linux host for very many MQTT connections on loopback (benchmarks) or for real.
# Usage: sudo scripts/tune-host.sh [CONNECTIONS]   (default 1000000)
# Prints what it sets; says clearly what it could not set (sandboxes and containers often cap
# open files per process, e.g. 20,000, whatever root asks for).
set -uo pipefail
want=${1:-1000000}
fds=$((want + 10000))
ok=1
say() { printf '%s\n' "$*"; }
try_sysctl() {
    if sysctl -qw "$1=$2" 2>/dev/null; then say "set   $1 = $2"; else say "FAILED $1 = $2 (not permitted here)"; ok=0; fi
}
[ "$(id -u)" -eq 0 ] || { say "run as root (sysctl and limits need it)"; exit 1; }

# Open files: system-wide, per process.
try_sysctl fs.file-max $((fds * 2))
try_sysctl fs.nr_open $((fds + 1024))
if ulimit -n "$fds" 2>/dev/null; then
    say "set   ulimit -n $fds (this shell and what it starts)"
else
    hard=$(ulimit -Hn)
    say "FAILED ulimit -n $fds: the hard limit here is $hard open files per process."
    say "       ringmq needs one descriptor per connection: at most about $((hard - 100)) connections"
    say "       per broker process on this host. Raise the hard limit (limits.conf, LimitNOFILE= in"
    say "       systemd) or, in a sandbox that caps it, accept the cap."
    ok=0
fi
# Accept queues and SYN backlog for connection storms.
try_sysctl net.core.somaxconn 65535
try_sysctl net.ipv4.tcp_max_syn_backlog 65535
# Ephemeral ports: one source address gives ~64k connections to one server port; the load
# generator spreads source addresses over 127.0.0.0/8, which Linux routes to lo already.
try_sysctl net.ipv4.ip_local_port_range "1024 65535"
try_sysctl net.ipv4.tcp_tw_reuse 1
# TCP memory (pages): idle connections hold little, but buffers of busy ones add up.
try_sysctl net.ipv4.tcp_mem "786432 1048576 1572864"
try_sysctl net.ipv4.tcp_rmem "4096 16384 4194304"
try_sysctl net.ipv4.tcp_wmem "4096 16384 4194304"
# io_uring registered memory (glommio): 512 KiB minimum per process, 3 x --io-memory per shard.
if ulimit -l 65536 2>/dev/null; then say "set   ulimit -l 65536 (KiB locked memory)"; else say "FAILED ulimit -l 65536: locked memory is $(ulimit -l) KiB; ringmq's preflight says what it needs"; ok=0; fi
[ $ok -eq 1 ] && say "host ready for $want connections" || say "some limits could not be raised: see FAILED lines"
