// What the browser tests share: the ringmq binary started on free ports
// (its ready line parsed), stopped with SIGTERM, headless Chromium
// launched with a fresh profile, and a bound on every wait.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
export const BIN = path.resolve(process.env.RINGMQ_BIN ?? path.join(repoRoot, 'target/debug/ringmq'));
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
export const MQTT_JS = path.join(here, 'node_modules/mqtt/dist/mqtt.min.js');
export const WAIT = 10_000;

export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Starts ringmq with `args` (listeners and options; `--shards 2 --log-level
// info` are added) and resolves once it prints its ready line:
// { proc, line, stderr } (the last 200 stderr chunks).
export async function startBroker(args) {
  assert.ok(existsSync(BIN), `RINGMQ_BIN ${BIN} does not exist (cargo build first)`);
  const proc = spawn(BIN, [...args, '--shards', '2', '--log-level', 'info'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  const stderr = [];
  proc.stderr.on('data', (d) => {
    stderr.push(d.toString());
    if (stderr.length > 200) stderr.shift();
  });
  const lines = createInterface({ input: proc.stdout });
  const ready = new Promise((resolve, reject) => {
    lines.on('line', (line) => {
      if (line.startsWith('ready ')) resolve(line);
    });
    proc.on('exit', (code) => reject(new Error(`ringmq exited early (${code}): ${stderr.join('')}`)));
  });
  const line = await withTimeout(ready, 20_000, 'ringmq ready line');
  return { proc, line, stderr };
}

// The port of the first `scheme://127.0.0.1:PORT` URL of a ready line.
export function readyPort(line, scheme) {
  const m = new RegExp(`(?:^| )${scheme}://127\\.0\\.0\\.1:(\\d+)`).exec(line);
  assert.ok(m, `ready line lacks ${scheme}://: ${line}`);
  return Number(m[1]);
}

// SIGTERM, then SIGKILL after 5 s; resolves to the exit code.
export async function stopBroker(b) {
  if (!b || b.proc.exitCode !== null) return b?.proc.exitCode;
  const exited = new Promise((resolve) => b.proc.once('exit', (code) => resolve(code)));
  b.proc.kill('SIGTERM');
  try {
    return await withTimeout(exited, 5_000, 'ringmq exit after SIGTERM');
  } catch (e) {
    b.proc.kill('SIGKILL');
    throw e;
  }
}

// Headless Chromium with a fresh profile: { context, userDataDir }.
// `extraArgs` e.g. --ignore-certificate-errors for the wss test's own CA.
export async function launchChromium(extraArgs = [], options = {}) {
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'ringmq-chromium-'));
  const context = await withTimeout(chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...extraArgs],
    viewport: { width: 1000, height: 760 },
    timeout: 30_000,
    ...options,
  }), 40_000, 'launch chromium');
  context.setDefaultTimeout(WAIT);
  return { context, userDataDir };
}
