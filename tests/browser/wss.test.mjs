// MQTT over secure WebSocket from a real browser: headless Chromium
// (playwright-core, the system /usr/bin/chromium) against the ringmq binary
// ($RINGMQ_BIN) with mqtt://, mqtts:// and wss:// listeners. The test PKI
// (a CA and a server certificate for localhost / 127.0.0.1) is made at run
// time with the openssl CLI; Chromium is launched with
// --ignore-certificate-errors since it cannot be told to trust a CA file.
//
//   cd tests/browser && RINGMQ_BIN=../../target/debug/ringmq node --test wss.test.mjs
//
// MQTT.js 5, loaded into the broker's own page served over https on the wss
// listener, connects to wss://127.0.0.1:PORT/mqtt, subscribes, publishes at
// QoS 0 and 1, and receives a message published by mosquitto_pub over
// mqtts. Every wait is bounded; the broker and the browser are stopped at
// the end.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  MQTT_JS, WAIT, withTimeout, startBroker, readyPort, stopBroker, launchChromium,
} from './harness.mjs';

let pki; // { dir, ca, cert, key }
let broker; // { proc, line, stderr, mqttPort, mqttsPort, wssPort }
let context;
let userDataDir;

// A CA and a server certificate (CN=ringmq-test-server, SAN localhost and
// 127.0.0.1) in a temporary directory; no key is ever committed.
function makePki() {
  const dir = mkdtempSync(path.join(tmpdir(), 'ringmq-wss-pki-'));
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', timeout: 30_000 });
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ca.key');
  openssl('req', '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', '3650',
    '-subj', '/CN=ringmq browser test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', 'ca.pem');
  writeFileSync(path.join(dir, 'server.ext'), [
    'basicConstraints = CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    'extendedKeyUsage = serverAuth',
    'subjectAltName = DNS:localhost, IP:127.0.0.1', ''].join('\n'));
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'server.key');
  openssl('req', '-new', '-key', 'server.key', '-subj', '/CN=ringmq-test-server', '-out', 'server.csr');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
    '-set_serial', '1001', '-days', '365', '-sha256', '-extfile', 'server.ext', '-out', 'server.pem');
  return {
    dir, ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key'),
  };
}

function mosquittoPubTls(args) {
  return new Promise((resolve, reject) => {
    execFile('mosquitto_pub',
      ['-h', '127.0.0.1', '-p', String(broker.mqttsPort), '--cafile', pki.ca, '-V', 'mqttv311', ...args],
      { timeout: 10_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`mosquitto_pub ${args.join(' ')}: ${err.message} ${stderr}`));
        else resolve(stdout);
      });
  });
}

before(async () => {
  pki = makePki();
  broker = await startBroker(['--listen', 'mqtt://127.0.0.1:0', '--listen', 'mqtts://127.0.0.1:0',
    '--listen', 'wss://127.0.0.1:0/mqtt', '--tls-cert', pki.cert, '--tls-key', pki.key]);
  broker.mqttPort = readyPort(broker.line, 'mqtt');
  broker.mqttsPort = readyPort(broker.line, 'mqtts');
  broker.wssPort = readyPort(broker.line, 'wss');
  broker.wssUrl = `wss://127.0.0.1:${broker.wssPort}/mqtt`;
  ({ context, userDataDir } = await launchChromium(['--ignore-certificate-errors'], { ignoreHTTPSErrors: true }));
});

after(async () => {
  try {
    if (context) await withTimeout(context.close(), 10_000, 'close chromium');
  } finally {
    const code = await stopBroker(broker);
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
    assert.equal(code, 0, `ringmq exit status after SIGTERM: ${code}`);
  }
});

test('MQTT.js in Chromium over wss: QoS 0/1 and a message from mosquitto_pub over mqtts', { timeout: 90_000 }, async () => {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // The broker's page, over https on the wss listener (a secure origin).
  const resp = await page.goto(`https://127.0.0.1:${broker.wssPort}/`, { timeout: WAIT });
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-type'], /^text\/html/);
  await page.addScriptTag({ path: MQTT_JS });
  const url = `wss://127.0.0.1:${broker.wssPort}/mqtt`;
  assert.equal(url, broker.wssUrl);

  const granted = await page.evaluate(async ({ url }) => {
    const lib = window.mqtt.connect ? window.mqtt : window.mqtt.default;
    window.__msgs = [];
    const client = lib.connect(url, {
      protocolVersion: 4, clientId: 'mqttjs-wss', reconnectPeriod: 0, connectTimeout: 5000,
    });
    window.__client = client;
    client.on('message', (topic, payload, packet) => {
      window.__msgs.push({
        topic, qos: packet.qos, retain: packet.retain, text: new TextDecoder().decode(payload),
      });
    });
    await new Promise((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
      client.once('close', () => reject(new Error('closed before CONNACK')));
    });
    return new Promise((resolve, reject) => client.subscribe(
      { 'wss/q0': { qos: 0 }, 'wss/q1': { qos: 1 }, 'wss/mqtts': { qos: 1 } },
      (err, g) => (err ? reject(err) : resolve(g.map((x) => [x.topic, x.qos]))),
    ));
  }, { url });
  assert.deepEqual(new Map(granted), new Map([['wss/q0', 0], ['wss/q1', 1], ['wss/mqtts', 1]]));

  await page.evaluate(async () => {
    const client = window.__client;
    const pub = (topic, payload, qos) => new Promise((resolve, reject) => {
      client.publish(topic, payload, { qos }, (err) => (err ? reject(err) : resolve()));
    });
    await pub('wss/q0', 'hello at qos 0', 0);
    await pub('wss/q1', 'hello at qos 1', 1);
  });
  await page.waitForFunction(() => window.__msgs.length >= 2, null, { timeout: WAIT });

  // A message from mosquitto_pub over mqtts (OpenSSL, trusting the test CA).
  await mosquittoPubTls(['-t', 'wss/mqtts', '-m', 'from-mqtts', '-q', '1']);
  await page.waitForFunction(() => window.__msgs.some((m) => m.topic === 'wss/mqtts'), null, { timeout: WAIT });

  const msgs = await page.evaluate(() => window.__msgs);
  const by = (t) => msgs.filter((m) => m.topic === t);
  for (const qos of [0, 1]) {
    const got = by(`wss/q${qos}`);
    assert.equal(got.length, 1, `exactly one message on wss/q${qos}: ${JSON.stringify(msgs)}`);
    assert.equal(got[0].text, `hello at qos ${qos}`);
    assert.equal(got[0].qos, qos);
    assert.equal(got[0].retain, false);
  }
  const fromMqtts = by('wss/mqtts');
  assert.equal(fromMqtts.length, 1);
  assert.equal(fromMqtts[0].text, 'from-mqtts');
  assert.equal(fromMqtts[0].qos, 1);

  await page.evaluate(() => new Promise((resolve) => window.__client.end(false, {}, resolve)));
  assert.deepEqual(errors, [], 'no page errors');
  await page.close();
});
