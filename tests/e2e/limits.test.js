// Limits: the connection cap (a fast 503 instead of a queue), the stream cap
// (503 before anything is held or forwarded, never billed, logged), the
// per-address throttles for gateway keys and dashboard sign-in, and provider
// timeouts that end stuck calls and release their holds.
//
// Requests go through node:http with one connection each (agent: false,
// Connection: close), so the test decides exactly how many connections are
// open; a different source address on the loopback network (127.0.0.2,
// 127.0.0.3) stands in for another client.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { cli, startServer, startFakeUpstream } from './lib/harness.js';
import { startGateway, createKey, balance, settled, sql as dbSql, grant,
  expectedCost } from './lib/gateway.js';
import { addUser, addOrg } from './lib/session.js';
import { runAudit } from './lib/audit.js';

const MAX_CONNECTIONS = 4;
const MAX_STREAMS = 2;
const AUTH_FAILS = 5;
const AUTH_WINDOW_S = 2;
const LOGIN_FAILS = 3;
const LOGIN_WINDOW_S = 2;
const OWNER = { email: 'owner@example.com', password: 'owner-password-1' };
const MESSAGES = [{ role: 'user', content: 'Hold the line.' }];
const BAD_KEY = `tg_${'A'.repeat(38)}`;

let gw, key;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One request on its own connection. With { stream: true } it resolves to the
// response as soon as the head arrives, still open.
function request(path, { method = 'GET', headers = {}, body, form, localAddress, stream = false } = {}) {
  return new Promise((resolve, reject) => {
    let data;
    const h = { Connection: 'close', ...headers };
    if (form) {
      data = new URLSearchParams(form).toString();
      h['Content-Type'] = 'application/x-www-form-urlencoded';
    } else if (body !== undefined) {
      data = JSON.stringify(body);
      h['Content-Type'] = 'application/json';
    }
    if (data !== undefined) h['Content-Length'] = Buffer.byteLength(data);
    const started = Date.now();
    const req = http.request({ host: '127.0.0.1', port: gw.srv.port, path, method, headers: h, agent: false, localAddress }, (res) => {
      if (stream) { resolve(res); return; }
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({
        status: res.statusCode, headers: res.headers, text, ms: Date.now() - started,
        json: () => JSON.parse(text),
      }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

const auth = (k = key) => ({ Authorization: `Bearer ${k}` });

function chat(extra = {}, opts = {}) {
  return request('/v1/chat/completions', {
    method: 'POST', headers: { ...auth(), ...(opts.headers ?? {}) }, localAddress: opts.localAddress,
    stream: opts.stream, body: { model: 'fake-chat', messages: MESSAGES, max_tokens: 20, ...extra },
  });
}

// Read a streaming response to its end; resolves to the whole text.
function drain(res) {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (d) => { text += d; });
    res.on('end', () => resolve(text));
    res.on('error', reject);
  });
}

function sql(query) {
  return dbSql(gw.srv.dataDir, query);
}

async function metric(name) {
  settled(gw.srv.dataDir); // finished calls' holds go once their debits commit
  const r = await request('/metrics');
  assert.equal(r.status, 200);
  const esc = name.replace(/[{}"=]/g, (c) => `\\${c}`);
  const m = r.text.match(new RegExp(`^${esc} (\\S+)$`, 'm'));
  assert.ok(m, `metric ${name} present`);
  return Number(m[1]);
}

async function upstreamChats() {
  const r = await fetch(`${gw.upstream.url}/fake/stats`);
  return (await r.json()).chat;
}

async function waitFor(what, cond, ms = 5000) {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// Sign in through the real form from a given source address.
async function signIn(email, password, localAddress) {
  const page = await request('/login', { localAddress });
  const cookie = (page.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]).join('; ');
  const csrf = page.text.match(/name="csrf" value="([^"]+)"/)[1];
  return request('/login', { method: 'POST', localAddress, headers: { Cookie: cookie }, form: { csrf, email, password } });
}

before(async () => {
  gw = await startGateway({
    credits: '100',
    serverArgs: ['--threads', '8', '--max-connections', String(MAX_CONNECTIONS), '--max-streams', String(MAX_STREAMS),
      '--auth-fail-limit', String(AUTH_FAILS), '--auth-fail-window-s', String(AUTH_WINDOW_S),
      '--login-fail-limit', String(LOGIN_FAILS), '--login-fail-window-s', String(LOGIN_WINDOW_S)],
  });
  // A provider that gives up after one second, for the timeout tests.
  const file = join(gw.srv.dataDir, 'slow.json');
  writeFileSync(file, JSON.stringify({
    providers: [{ name: 'impatient', kind: 'openai', base_url: `${gw.upstream.url}/v1`, api_key: 'sk-x', timeout_s: 1 }],
    models: [{ name: 'slow-chat', provider: 'impatient', upstream_model: 'upstream-slow', input_per_mtok: '0.15', cached_input_per_mtok: '0.075', output_per_mtok: '0.60', max_output_tokens: 4096, context_window: 128000 }],
  }));
  const r = cli(gw.srv.dataDir, ['models', 'import', file]);
  assert.equal(r.code, 0, r.stderr);
  key = createKey(gw.srv.dataDir, 'Acme', 'main');
});

after(async () => {
  runAudit(gw.srv.dataDir);
  // A clean stop: exit 0 and, in sanitizer builds, no report.
  const code = await gw.srv.stop();
  const stderr = gw.srv.stderr();
  await gw.stop();
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /Sanitizer|runtime error/);
});

describe('limits', () => {
  test('settings that cannot work are refused at start', () => {
    let r = cli(gw.srv.dataDir, ['serve', '--threads', '4', '--max-connections', '4']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /max_connections \(4\) must be below threads \(4\)/);
    r = cli(gw.srv.dataDir, ['serve', '--threads', '8', '--max-connections', '3', '--max-streams', '5']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /max_streams \(5\) must not be above max_connections \(3\)/);
  });

  test('connections over max_connections get a fast 503 while the admitted ones succeed', async () => {
    const before = await upstreamChats();
    const refusedBefore = await metric('tollgate_http_connections_refused_total');
    // Fill every connection slot with a call the provider holds for 2 s.
    const slow = [];
    for (let i = 0; i < MAX_CONNECTIONS; i++) slow.push(chat({ x_fake: { latency_ms: 2000 } }));
    await waitFor('every slow call to reach the provider', async () => (await upstreamChats()) - before === MAX_CONNECTIONS);
    assert.equal(await metric('tollgate_http_connections_open'), MAX_CONNECTIONS, 'monitoring is answered at the limit, outside it');

    // One more API connection: an OpenAI envelope, at once, not after the queue.
    const api = await request('/v1/models', { headers: auth() });
    assert.equal(api.status, 503);
    assert.ok(api.ms < 1000, `refused in ${api.ms} ms`);
    assert.equal(api.headers['retry-after'], '1');
    assert.equal(api.headers.connection, 'close');
    assert.ok(api.headers['x-request-id']);
    const err = api.json().error;
    assert.equal(err.type, 'server_error');
    assert.equal(err.code, 'server_busy');
    assert.match(err.message, /limit of 4 open connections/);
    // One more dashboard connection: an HTML page.
    const page = await request('/login');
    assert.equal(page.status, 503);
    assert.match(page.headers['content-type'], /^text\/html/);
    assert.match(page.text, /limit of 4 open connections/);
    assert.equal(page.headers['retry-after'], '1');
    // Health checks still answer.
    assert.equal((await request('/health')).status, 200);

    const done = await Promise.all(slow);
    for (const r of done) {
      assert.equal(r.status, 200, r.text);
      assert.ok(r.json().usage.cost, 'billed normally');
    }
    assert.equal(await metric('tollgate_http_connections_refused_total') - refusedBefore, 2);
    // The slots came back: a new connection is served.
    assert.equal((await request('/v1/models', { headers: auth() })).status, 200);
    await waitFor('the slots to be given back', async () => (await metric('tollgate_http_connections_open')) === 0);
  });

  test('streams over max_streams get 503 before any hold: not billed, logged', async () => {
    const opened = [];
    for (let i = 0; i < MAX_STREAMS; i++) {
      const res = await chat({ stream: true, x_fake: { chunks: 4, chunk_interval_ms: 800 } }, { stream: true });
      assert.equal(res.statusCode, 200);
      opened.push(drain(res));
    }
    const balanceBefore = balance(gw.srv.dataDir, 'Acme');
    const rid = `limits-stream-${Date.now()}`;
    const r = await chat({ stream: true }, { headers: { 'X-Request-Id': rid } });
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.headers['x-request-id'], rid);
    const err = r.json().error;
    assert.equal(err.type, 'server_error');
    assert.equal(err.code, 'server_busy');
    assert.match(err.message, /limit of 2 open streams/);
    // The official SDK sees the same.
    const sdk = new OpenAI({ apiKey: key, baseURL: `${gw.srv.url}/v1`, maxRetries: 0, timeout: 10_000 });
    await assert.rejects(
      sdk.chat.completions.create({ model: 'fake-chat', messages: MESSAGES, max_tokens: 5, stream: true }),
      (e) => e.status === 503 && e.code === 'server_busy' && e.headers.get('retry-after') === '1',
    );
    // A non-streaming call is not held back by the stream cap.
    assert.equal((await chat()).status, 200);
    const afterNonStream = balance(gw.srv.dataDir, 'Acme');

    // Nothing debited for the refusal; it is in the request log like any failure.
    assert.equal(sql(`SELECT count(*) FROM ledger_entries WHERE request_id = '${rid}'`), '0');
    assert.equal(sql(`SELECT status, stream, cost, usage_source, model FROM requests WHERE request_id = '${rid}'`),
      '503|1|0|none|fake-chat');
    assert.match(sql(`SELECT error FROM requests WHERE request_id = '${rid}'`), /limit of 2 open streams/);
    assert.ok(balanceBefore > afterNonStream, 'only the non-stream call was billed meanwhile');
    assert.equal(await metric('tollgate_gateway_streams_refused_total'), 2);

    for (const text of await Promise.all(opened)) assert.match(text, /data: \[DONE\]/);
    // The slots are free again: two new streams run.
    const again = await Promise.all([0, 1].map(() => chat({ stream: true }, { stream: true })));
    for (const res of again) {
      assert.equal(res.statusCode, 200);
      assert.match(await drain(res), /data: \[DONE\]/);
    }
  });

  test('gateway key failures block the address, valid keys included, until the window passes', async () => {
    const other = '127.0.0.2';
    const throttledBefore = await metric('tollgate_auth_throttled_total{kind="gateway"}');
    for (let i = 0; i < AUTH_FAILS; i++) {
      const r = await request('/v1/models', { headers: auth(BAD_KEY), localAddress: other });
      assert.equal(r.status, 401, `failure ${i + 1} is a plain 401`);
    }
    // Blocked: even the valid key from that address, before any key lookup.
    const blocked = await request('/v1/models', { headers: auth(), localAddress: other });
    assert.equal(blocked.status, 429);
    const retry = Number(blocked.headers['retry-after']);
    assert.ok(retry >= 1 && retry <= AUTH_WINDOW_S, `Retry-After ${retry}`);
    const err = blocked.json().error;
    assert.equal(err.type, 'rate_limit_exceeded');
    assert.equal(err.code, 'too_many_auth_failures');
    assert.match(err.message, /Too many failed API key checks from this address/);
    assert.equal((await request('/v1/models', { headers: auth(BAD_KEY), localAddress: other })).status, 429);
    const streamTry = await chat({ stream: true }, { localAddress: other });
    assert.equal(streamTry.status, 429);
    // Another address is not affected by those failures.
    assert.equal((await request('/v1/models', { headers: auth() })).status, 200);
    assert.equal((await chat()).status, 200);
    // Sign-in has a table of its own: the blocked address can still sign in.
    assert.equal((await signIn(OWNER.email, OWNER.password, other)).status, 303);
    assert.equal(await metric('tollgate_auth_throttled_total{kind="gateway"}') - throttledBefore, 3);

    await sleep(retry * 1000 + 100);
    const back = await request('/v1/models', { headers: auth(), localAddress: other });
    assert.equal(back.status, 200, 'the block ends after the window');
    // And the count starts again: one failure is a 401, not a block.
    assert.equal((await request('/v1/models', { headers: auth(BAD_KEY), localAddress: other })).status, 401);
    assert.equal((await request('/v1/models', { headers: auth(), localAddress: other })).status, 200);
  });

  test('failed sign-ins block the address for every account, with the throttled message', async () => {
    const attacker = '127.0.0.3';
    // Different emails, so the per-email throttle (5 failures) never fires.
    for (let i = 0; i < LOGIN_FAILS; i++) {
      const r = await signIn(`guess${i}@example.com`, `wrong-password-${i}`, attacker);
      assert.equal(r.status, 401);
      assert.match(r.text, /Email or password is incorrect/);
    }
    // The right password from that address is refused too.
    const blocked = await signIn(OWNER.email, OWNER.password, attacker);
    assert.equal(blocked.status, 429);
    assert.match(blocked.headers['content-type'], /^text\/html/);
    assert.match(blocked.text, /Too many failed sign-in attempts\. Try again in \d+ seconds\./);
    const retry = Number(blocked.headers['retry-after']);
    assert.ok(retry >= 1 && retry <= LOGIN_WINDOW_S, `Retry-After ${retry}`);
    assert.equal(blocked.headers['set-cookie']?.some((c) => /tg_session=[^;]/.test(c)) ?? false, false, 'no session');
    // Another address signs in as usual.
    assert.equal((await signIn(OWNER.email, OWNER.password)).status, 303);
    // The block is in the audit log once, with the address.
    assert.equal(sql("SELECT count(*) FROM audit_log WHERE action = 'login.ip_blocked'"), '1');
    assert.match(sql("SELECT target FROM audit_log WHERE action = 'login.ip_blocked'"), /127\.0\.0\.3/);
    assert.equal(await metric('tollgate_auth_throttled_total{kind="login"}'), 1);

    await sleep(retry * 1000 + 100);
    assert.equal((await signIn(OWNER.email, OWNER.password, attacker)).status, 303, 'the block ends after the window');
  });

  test('a provider timeout ends the call with 504: hold released, nothing billed, logged', async () => {
    const start = balance(gw.srv.dataDir, 'Acme');
    // Before the first byte, non-stream and stream alike.
    for (const stream of [false, true]) {
      const rid = `limits-timeout-${stream}-${Date.now()}`;
      const r = await request('/v1/chat/completions', {
        method: 'POST', headers: { ...auth(), 'X-Request-Id': rid },
        body: { model: 'slow-chat', messages: MESSAGES, max_tokens: 20, stream, x_fake: { latency_ms: 3000 } },
      });
      assert.equal(r.status, 504, r.text);
      assert.ok(r.ms < 2500, `ended by the 1 s provider timeout, took ${r.ms} ms`);
      const err = r.json().error;
      assert.equal(err.code, 'upstream_timeout');
      assert.match(err.message, /did not answer within 1 s\. You were not charged/);
      assert.equal(sql(`SELECT status, cost, usage_source FROM requests WHERE request_id = '${rid}'`), '504|0|none');
      assert.equal(sql(`SELECT count(*) FROM ledger_entries WHERE request_id = '${rid}'`), '0');
    }
    assert.equal(balance(gw.srv.dataDir, 'Acme'), start, 'nothing billed');
    assert.equal(await metric('tollgate_ledger_held_micro'), 0, 'no hold left behind');

    // A stream that stalls after output started is cut at the timeout too:
    // billed an estimate of what was streamed, within what was reserved.
    const rid = `limits-stall-${Date.now()}`;
    const res = await request('/v1/chat/completions', {
      method: 'POST', headers: { ...auth(), 'X-Request-Id': rid }, stream: true,
      body: { model: 'slow-chat', messages: MESSAGES, max_tokens: 20, stream: true, x_fake: { chunks: 4, chunk_interval_ms: 700 } },
    });
    assert.equal(res.statusCode, 200);
    const text = await drain(res);
    assert.match(text, /stream broke after output had started/);
    const [status, cost, source] = sql(`SELECT status, cost, usage_source FROM requests WHERE request_id = '${rid}'`).split('|');
    assert.equal(status, '200');
    assert.equal(source, 'estimated');
    assert.ok(Number(cost) > 0);
    assert.equal(start - balance(gw.srv.dataDir, 'Acme'), BigInt(cost), 'billed exactly the estimate');
    assert.equal(await metric('tollgate_ledger_held_micro'), 0, 'no hold left behind');
    // The stream slots of the timed-out calls were given back.
    const both = await Promise.all([0, 1].map(() => chat({ stream: true }, { stream: true })));
    for (const r of both) {
      assert.equal(r.statusCode, 200);
      await drain(r);
    }
  });
});

// Long streams at scale with DEFAULT settings (no thread or stream flags):
// 2,000 streams from one address, all open at the same time, each get 200,
// every chunk and [DONE]; none is refused, each is billed from its usage.
// (Memory per open stream: make bench, edge.sh.)
describe('2,000 concurrent streams with default settings', () => {
  const N = 2000;
  let sgw, up, skey, start;

  before(async () => {
    up = await startFakeUpstream(['--threads', String(N + 200)]);
    const srv = await startServer({});
    addUser(srv.dataDir, { email: 'owner@example.com', password: 'owner-password-1', admin: true });
    addOrg(srv.dataDir, 'Acme');
    // A provider patient enough for streams of several seconds, priced as fake-chat.
    const file = join(srv.dataDir, 'long.json');
    writeFileSync(file, JSON.stringify({
      providers: [{ name: 'patient', kind: 'openai', base_url: `${up.url}/v1`, api_key: 'sk-x',
        timeout_s: 120 }],
      models: [{ name: 'long-chat', provider: 'patient', upstream_model: 'upstream-long',
        input_per_mtok: '0.15', cached_input_per_mtok: '0.075', output_per_mtok: '0.60',
        max_output_tokens: 4096, context_window: 128000 }],
    }));
    const r = cli(srv.dataDir, ['models', 'import', file]);
    assert.equal(r.code, 0, r.stderr);
    grant(srv.dataDir, 'Acme', '1000');
    skey = createKey(srv.dataDir, 'Acme', 'streams');
    sgw = { srv };
    start = balance(srv.dataDir, 'Acme');
  });

  after(async () => {
    if (sgw) {
      const code = await sgw.srv.stop();
      assert.equal(code, 0, sgw.srv.stderr().slice(-3000));
      runAudit(sgw.srv.dataDir);
      sgw.srv.cleanup();
    }
    if (up) await up.stop();
  });

  test('all 2,000 are open at once and finish, none refused', async () => {
    let open = 0;
    let peak = 0;
    const one = () => new Promise((resolve, reject) => {
      const body = JSON.stringify({ model: 'long-chat', messages: MESSAGES, max_tokens: 50,
        stream: true, stream_options: { include_usage: true },
        x_fake: { chunks: 40, chunk_interval_ms: 500, completion_tokens: 40 } }); // 20 s
      const req = http.request({ host: '127.0.0.1', port: sgw.srv.port, method: 'POST',
        path: '/v1/chat/completions', agent: false, timeout: 60_000,
        headers: { Authorization: `Bearer ${skey}`, 'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(body) } }, (res) => {
        open++;
        peak = Math.max(peak, open);
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { text += d; });
        res.on('end', () => { open--; resolve({ status: res.statusCode, text }); });
      });
      req.on('timeout', () => req.destroy(new Error('no answer in 60 s')));
      req.on('error', reject);
      req.end(body);
    });
    const results = await Promise.all(Array.from({ length: N }, one));
    const bad = results.filter((r) => r.status !== 200);
    assert.equal(bad.length, 0, `refused: ${bad.length}; first: ${bad[0]?.status} ${bad[0]?.text}`);
    assert.equal(peak, N, 'every stream was open at the same time');
    let cost = 0n;
    for (const r of results) {
      assert.match(r.text, /data: \[DONE\]\n\n$/);
      const usage = r.text.split('\n').filter((l) => l.startsWith('data: {'))
        .map((l) => JSON.parse(l.slice(6))).find((c) => c.usage)?.usage;
      assert.ok(usage && usage.completion_tokens > 0, 'each stream ends with its usage');
      cost += expectedCost('fake-chat', usage);
    }
    const m = (await new Promise((resolve) => http.get({ host: '127.0.0.1', port: sgw.srv.port,
      path: '/metrics', agent: false }, (res) => {
      let t = '';
      res.on('data', (d) => { t += d; });
      res.on('end', () => resolve(t));
    })));
    assert.match(m, /^tollgate_gateway_streams_refused_total 0$/m);
    assert.match(m, /^tollgate_http_connections_refused_total 0$/m);
    assert.equal(start - balance(sgw.srv.dataDir, 'Acme'), cost, 'billed exactly the usage');
  });
});
