"""Starting and stopping a real ringmq for the Python end-to-end scripts.

`start(args, stderr)` runs $RINGMQ_BIN (default target/debug/ringmq) with
`args`, waits (at most 20 s) for its `ready ...` line and returns the process
and that line; `stop(proc)` sends SIGTERM and waits (SIGKILL after 5 s);
`run_checks` runs a script's checks one by one and counts them.
"""

import os
import queue
import signal
import subprocess
import threading
import time
import traceback

BIN = os.environ.get("RINGMQ_BIN", "target/debug/ringmq")


def start(args, stderr=subprocess.DEVNULL):
    proc = subprocess.Popen(
        [BIN, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
        text=True, env=dict(os.environ, NO_COLOR="1"))
    lines = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put(None)
    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 20
    while True:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            stop(proc)
            raise RuntimeError(f"ringmq {' '.join(args)} printed no ready line within 20 s")
        if line.startswith("ready "):
            return proc, line


def stop(proc):
    """SIGTERM, then SIGKILL after 5 s; returns the exit code (None if killed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
            return None
    return proc.returncode


def run_checks(checks, args, procs):
    """Runs each check with `args`, printing "ok" or "FAIL" and its time;
    stops early when one of the broker processes `procs` has exited.
    Returns (passed, failed)."""
    passed = failed = 0
    for check in checks:
        start = time.monotonic()
        try:
            check(*args)
        except Exception:
            failed += 1
            print(f"FAIL {check.__name__} ({time.monotonic() - start:.2f} s)")
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {check.__name__} ({time.monotonic() - start:.2f} s)")
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            print(f"broker exited with {dead[0].returncode}")
            failed += 1
            break
    return passed, failed
