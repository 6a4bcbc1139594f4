// MQTT over WebSocket from a real browser: headless Chromium (playwright-core,
// the system /usr/bin/chromium) against the ringmq binary ($RINGMQ_BIN).
//
//   cd tests/browser && RINGMQ_BIN=../../target/debug/ringmq node --test
//
// 1. MQTT.js 5 loaded into the broker's own page (same origin): QoS 0/1/2,
//    a 256 KiB message, and a message from mosquitto_pub over TCP.
// 2. The built-in page: subscribe and publish through its forms, plus a
//    message from mosquitto_pub; both rows must show; a screenshot is saved
//    to target/screenshots/ws-page.png.
// Every wait is bounded; the broker and the browser are stopped at the end.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  here, MQTT_JS, WAIT, withTimeout, startBroker, readyPort, stopBroker, launchChromium,
} from './harness.mjs';

const repoRoot = path.resolve(here, '..', '..');

let broker; // { proc, line, stderr, mqttPort, wsPort }
let context; // persistent Chromium context (fresh user-data-dir)
let userDataDir;

function mosquittoPub(args) {
  return new Promise((resolve, reject) => {
    execFile('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.mqttPort), '-V', 'mqttv311', ...args],
      { timeout: 10_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`mosquitto_pub ${args.join(' ')}: ${err.message} ${stderr}`));
        else resolve(stdout);
      });
  });
}

before(async () => {
  broker = await startBroker(['--listen', 'mqtt://127.0.0.1:0', '--listen', 'ws://127.0.0.1:0/mqtt']);
  broker.mqttPort = readyPort(broker.line, 'mqtt');
  broker.wsPort = readyPort(broker.line, 'ws');
  broker.wsUrl = `ws://127.0.0.1:${broker.wsPort}/mqtt`;
  ({ context, userDataDir } = await launchChromium());
});

after(async () => {
  try {
    if (context) await withTimeout(context.close(), 10_000, 'close chromium');
  } finally {
    const code = await stopBroker(broker);
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    assert.equal(code, 0, `ringmq exit status after SIGTERM: ${code}`);
  }
});

async function openBrokerPage() {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const resp = await page.goto(`http://127.0.0.1:${broker.wsPort}/`, { timeout: WAIT });
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-type'], /^text\/html/);
  return { page, errors };
}

test('MQTT.js in Chromium: QoS 0/1/2, 256 KiB, and a message from mosquitto_pub', { timeout: 90_000 }, async () => {
  const { page, errors } = await openBrokerPage();
  await page.addScriptTag({ path: MQTT_JS });
  const url = `ws://127.0.0.1:${broker.wsPort}/mqtt`;

  // Connect and subscribe at QoS 0, 1 and 2.
  const granted = await page.evaluate(async ({ url }) => {
    const lib = window.mqtt.connect ? window.mqtt : window.mqtt.default;
    window.__msgs = [];
    const client = lib.connect(url, {
      protocolVersion: 4, clientId: 'mqttjs-browser', reconnectPeriod: 0, connectTimeout: 5000,
    });
    window.__client = client;
    client.on('message', (topic, payload, packet) => {
      let sum = 0;
      for (const b of payload) sum = (sum * 31 + b) >>> 0;
      window.__msgs.push({
        topic, qos: packet.qos, retain: packet.retain, length: payload.length, sum,
        text: payload.length < 1000 ? new TextDecoder().decode(payload) : null,
      });
    });
    await new Promise((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
      client.once('close', () => reject(new Error('closed before CONNACK')));
    });
    return new Promise((resolve, reject) => client.subscribe(
      { 'js/q0': { qos: 0 }, 'js/q1': { qos: 1 }, 'js/q2': { qos: 2 }, 'js/big': { qos: 1 }, 'js/tcp': { qos: 2 } },
      (err, granted) => (err ? reject(err) : resolve(granted.map((g) => [g.topic, g.qos]))),
    ));
  }, { url });
  assert.deepEqual(new Map(granted), new Map([['js/q0', 0], ['js/q1', 1], ['js/q2', 2], ['js/big', 1], ['js/tcp', 2]]));

  // Publish to itself at each QoS and a 256 KiB message (QoS 1).
  const bigSum = await page.evaluate(async () => {
    const client = window.__client;
    const pub = (topic, payload, qos) => new Promise((resolve, reject) => {
      client.publish(topic, payload, { qos }, (err) => (err ? reject(err) : resolve()));
    });
    for (const qos of [0, 1, 2]) await pub(`js/q${qos}`, `hello at qos ${qos}`, qos);
    const big = new Uint8Array(256 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 9)) & 0xff;
    let sum = 0;
    for (const b of big) sum = (sum * 31 + b) >>> 0;
    await pub('js/big', big, 1);
    return sum;
  });

  await page.waitForFunction(() => window.__msgs.length >= 4, null, { timeout: WAIT });
  // A message from a TCP client (mosquitto_pub).
  await mosquittoPub(['-t', 'js/tcp', '-m', 'from-tcp', '-q', '1']);
  await page.waitForFunction(() => window.__msgs.some((m) => m.topic === 'js/tcp'), null, { timeout: WAIT });

  const msgs = await page.evaluate(() => window.__msgs);
  const by = (t) => msgs.filter((m) => m.topic === t);
  for (const qos of [0, 1, 2]) {
    const got = by(`js/q${qos}`);
    assert.equal(got.length, 1, `exactly one message on js/q${qos}: ${JSON.stringify(msgs)}`);
    assert.equal(got[0].text, `hello at qos ${qos}`);
    assert.equal(got[0].qos, qos);
    assert.equal(got[0].retain, false);
  }
  const big = by('js/big');
  assert.equal(big.length, 1);
  assert.equal(big[0].length, 256 * 1024);
  assert.equal(big[0].sum, bigSum, '256 KiB payload differs');
  const tcp = by('js/tcp');
  assert.equal(tcp.length, 1);
  assert.equal(tcp[0].text, 'from-tcp');
  assert.equal(tcp[0].qos, 1);

  await page.evaluate(() => new Promise((resolve) => window.__client.end(false, {}, resolve)));
  assert.deepEqual(errors, [], 'no page errors');
  await page.close();
});

test('built-in page: subscribe and publish through the forms, see a TCP message', { timeout: 90_000 }, async () => {
  const { page, errors } = await openBrokerPage();
  await page.locator('#state').filter({ hasText: /^connected$/ }).waitFor({ timeout: WAIT });
  assert.equal(await page.locator('#broker').textContent(), broker.wsUrl);
  assert.match(await page.title(), /ringmq/);

  await page.fill('#sub-filter', 'demo/#');
  await page.selectOption('#sub-qos', '1');
  await page.click('#sub-button');
  await page.locator('#subs span', { hasText: 'demo/#' }).waitFor({ timeout: WAIT });
  assert.match(await page.locator('#subs span').first().textContent(), /demo\/# \(QoS 1\)/);

  await page.fill('#pub-topic', 'demo/page');
  await page.fill('#pub-payload', 'from-page');
  await page.selectOption('#pub-qos', '1');
  await page.click('#pub-button');
  await mosquittoPub(['-t', 'demo/x', '-m', 'from-tcp']);

  const row = (topic, payload) => page.locator('#messages tr')
    .filter({ has: page.locator('td', { hasText: new RegExp(`^${topic}$`) }) })
    .filter({ has: page.locator('td.payload', { hasText: new RegExp(`^${payload}$`) }) });
  await row('demo/page', 'from-page').waitFor({ timeout: WAIT });
  await row('demo/x', 'from-tcp').waitFor({ timeout: WAIT });

  const rows = await page.locator('#messages tr').evaluateAll((trs) => trs.map(
    (tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent),
  ));
  assert.equal(rows.length, 2, `rows: ${JSON.stringify(rows)}`);
  const pageRow = rows.find((r) => r[1] === 'demo/page');
  const tcpRow = rows.find((r) => r[1] === 'demo/x');
  // columns: time, topic, qos, retain, payload
  assert.deepEqual(pageRow.slice(1), ['demo/page', '1', '', 'from-page']);
  assert.deepEqual(tcpRow.slice(1), ['demo/x', '0', '', 'from-tcp']);

  const shots = path.join(repoRoot, 'target', 'screenshots');
  mkdirSync(shots, { recursive: true });
  const file = path.join(shots, 'ws-page.png');
  await page.screenshot({ path: file, fullPage: true, timeout: WAIT });
  assert.ok(statSync(file).size > 1000, 'screenshot written');
  assert.deepEqual(errors, [], 'no page errors');
  await page.close();
});
