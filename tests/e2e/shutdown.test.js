// Graceful shutdown: on SIGTERM the port closes at once (new connections are
// refused), calls and streams in flight finish and are billed, idle
// keep-alive connections do not hold the exit up, and the process exits 0.
// A stream longer than drain_timeout_s is cut at the deadline and settled on
// what it delivered. Either way the books balance afterwards and every call
// has its request row.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import OpenAI from 'openai';
import { startGateway, createKey, balance, expectedCost, sql } from './lib/gateway.js';
import { runAudit } from './lib/audit.js';

const MESSAGES = [{ role: 'user', content: 'Tell me a long story.' }];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves to the connect error code, or 'connected'.
function tryConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve('connected'); });
    s.on('error', (e) => resolve(e.code));
  });
}

async function refusedWithin(port, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const r = await tryConnect(port);
    if (r === 'ECONNREFUSED') return true;
    if (Date.now() > end) return false;
    await sleep(50);
  }
}

function exited(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return Promise.resolve(proc.exitCode ?? proc.signalCode);
  }
  return new Promise((r) => proc.on('exit', (code, sig) => r(code ?? sig)));
}

async function setup(drainS) {
  const gw = await startGateway({
    credits: '100',
    serverArgs: ['--drain-timeout-s', String(drainS), '--log-level', 'info'],
  });
  const key = createKey(gw.srv.dataDir, 'Acme', 'drain');
  const sdk = new OpenAI({ apiKey: key, baseURL: `${gw.srv.url}/v1`, maxRetries: 0 });
  return { gw, sdk, before: balance(gw.srv.dataDir, 'Acme') };
}

// After the server exited: the audit is clean and the balance fell by exactly
// the costs in the request rows, which are `rows` in number.
function booksBalance(gw, before, rows) {
  const dir = gw.srv.dataDir;
  runAudit(dir);
  const n = Number(sql(dir, 'SELECT count(*) FROM requests'));
  assert.equal(n, rows, 'one request row per call');
  const costs = BigInt(sql(dir, 'SELECT coalesce(sum(cost), 0) FROM requests'));
  assert.equal(before - balance(dir, 'Acme'), costs, 'the ledger moved by the request costs');
  return costs;
}

describe('graceful shutdown', () => {
  test('SIGTERM: no new connections; a stream and a call in flight finish and are billed',
    async () => {
      const { gw, sdk, before } = await setup(20);
      const { proc } = gw.srv;
      try {
        const stream = await sdk.chat.completions.create({
          model: 'fake-chat', messages: MESSAGES, max_tokens: 40, stream: true,
          stream_options: { include_usage: true },
          x_fake: { chunks: 8, chunk_interval_ms: 250 },
        });
        const it = stream[Symbol.asyncIterator]();
        const first = await it.next();
        assert.equal(first.done, false);
        const call = sdk.chat.completions.create({
          model: 'fake-chat', messages: MESSAGES, max_tokens: 10, x_fake: { latency_ms: 1200 },
        });
        await sleep(100); // the call is in the gateway, waiting on its provider

        const t0 = Date.now();
        proc.kill('SIGTERM');
        assert.ok(await refusedWithin(gw.srv.port, 3000),
          'the listening port closes soon after SIGTERM');

        let text = first.value.choices[0]?.delta?.content ?? '';
        let usage = null;
        for (let r = await it.next(); !r.done; r = await it.next()) {
          text += r.value.choices[0]?.delta?.content ?? '';
          if (r.value.usage) usage = r.value.usage;
        }
        assert.ok(text.length > 0, 'the stream delivered content');
        assert.ok(usage && usage.completion_tokens > 0, 'the stream ended with its usage');
        const done = await call;
        assert.ok(done.usage.total_tokens > 0, 'the call in flight got its answer');

        const code = await exited(proc);
        assert.equal(code, 0, `exit code; stderr:\n${gw.srv.stderr()}`);
        assert.ok(Date.now() - t0 < 10_000, 'exit follows the last call, not the deadline');
        assert.match(gw.srv.stderr(), /drain: every request finished/);
        assert.match(gw.srv.stderr(), /stopped cleanly/);
        const costs = booksBalance(gw, before, 2);
        assert.equal(costs, expectedCost('fake-chat', usage) + expectedCost('fake-chat', done.usage));
      } finally {
        await gw.stop();
      }
    });

  test('a stream longer than drain_timeout_s is cut at the deadline and settled', async () => {
    const { gw, sdk, before } = await setup(1);
    const { proc } = gw.srv;
    try {
      const stream = await sdk.chat.completions.create({
        model: 'fake-chat', messages: MESSAGES, max_tokens: 60, stream: true,
        stream_options: { include_usage: true },
        x_fake: { chunks: 40, chunk_interval_ms: 250 }, // 10 s
      });
      const it = stream[Symbol.asyncIterator]();
      assert.equal((await it.next()).done, false);
      const t0 = Date.now();
      proc.kill('SIGTERM');
      let chunks = 1;
      let cut = false;
      try {
        for (let r = await it.next(); !r.done; r = await it.next()) chunks++;
      } catch {
        cut = true; // the connection ended without [DONE]
      }
      const took = Date.now() - t0;
      assert.ok(took >= 800, `the stream ran on until the deadline (${took} ms)`);
      assert.ok(took < 5000, `the stream was cut near the deadline (${took} ms)`);
      assert.ok(cut || chunks < 40, 'the stream did not run to its end');
      assert.equal(await exited(proc), 0, `exit code; stderr:\n${gw.srv.stderr()}`);
      assert.match(gw.srv.stderr(), /drain: 1 requests still running; cutting/);
      booksBalance(gw, before, 1);
      const row = sql(gw.srv.dataDir, 'SELECT stream, status, completion_tokens FROM requests');
      const [isStream, , completion] = row.split('|').map(Number);
      assert.equal(isStream, 1);
      assert.ok(completion > 0, `the tokens delivered before the cut are counted (${row})`);
    } finally {
      await gw.stop();
    }
  });

  test('a second SIGTERM cuts at once', async () => {
    const { gw, sdk, before } = await setup(60);
    const { proc } = gw.srv;
    try {
      const stream = await sdk.chat.completions.create({
        model: 'fake-chat', messages: MESSAGES, max_tokens: 60, stream: true,
        x_fake: { chunks: 40, chunk_interval_ms: 250 },
      });
      const it = stream[Symbol.asyncIterator]();
      assert.equal((await it.next()).done, false);
      proc.kill('SIGTERM');
      await sleep(300);
      const t0 = Date.now();
      proc.kill('SIGTERM');
      try {
        for (let r = await it.next(); !r.done; r = await it.next());
      } catch { /* cut */ }
      assert.equal(await exited(proc), 0);
      assert.ok(Date.now() - t0 < 3000, 'the second signal did not wait for the deadline');
      assert.match(gw.srv.stderr(), /second signal: cutting/);
      booksBalance(gw, before, 1);
    } finally {
      await gw.stop();
    }
  });
});
