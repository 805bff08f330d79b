// Hostile HTTP: requests no honest client sends, over raw sockets. Truncated
// and mis-framed bodies, bodies that never end, huge and numerous headers,
// slowloris sockets, invalid UTF-8 and deeply nested JSON, CR/LF in echoed
// headers, two credentials at once, path traversal under /static and
// oversized forms and JSON. Each gets a precise 4xx in the envelope of its
// route (JSON under /v1, HTML elsewhere) or a closed connection, within a
// bounded time; after each, the server still answers /health and a metered
// call, and at the end the books balance and no credits are left held.
import { test, before, after, afterEach, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import OpenAI from 'openai';
import { startGateway, createKey, balance, grant, micro } from './lib/gateway.js';
import { addOrg } from './lib/session.js';
import { runAudit } from './lib/audit.js';

// The server under test waits this long for a request head, a stalled body
// or an idle kept-alive client (header_timeout_ms, request_timeout_ms,
// idle_timeout_ms), and has few workers so that slow sockets can take them
// all.
const TIMEOUT_MS = 1000;
const THREADS = 8;
const CHAT = { model: 'fake-chat', messages: [{ role: 'user', content: 'hello' }], max_tokens: 5 };

let gw, port, key, keyBeta, startAcme, startBeta;
let spent = 0n; // micro-credits charged by the metered calls of this suite

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Send `parts` on a fresh connection (strings or Buffers; a number pauses that
// many ms) and collect what comes back until the server closes the connection
// or `timeoutMs` passes. `end` half-closes our side after the last part.
function exchange(parts, { timeoutMs = 5000, end = false } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    const t0 = Date.now();
    let error = null;
    let done = false;
    const finish = (timedOut) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(chunks), timedOut, error, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(true), timeoutMs);
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', (e) => { error = e.code; });
    sock.on('close', () => finish(false));
    sock.on('connect', async () => {
      for (const p of parts) {
        if (done || sock.destroyed) return;
        if (typeof p === 'number') await sleep(p);
        else sock.write(p);
      }
      if (end && !sock.destroyed) sock.end();
    });
  });
}

// Split the bytes of one connection into HTTP responses (pipelined answers
// follow each other; an answer without Content-Length runs to the close).
function parseResponses(buf) {
  const s = buf.toString('latin1');
  const out = [];
  let off = 0;
  while (off < s.length) {
    const end = s.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const lines = s.slice(off, end).split('\r\n');
    const m = lines[0].match(/^HTTP\/1\.[01] (\d{3}) /);
    assert.ok(m, `not a status line: ${JSON.stringify(lines[0])}`);
    const headers = lines.slice(1).map((l) => {
      const i = l.indexOf(':');
      return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()];
    });
    const all = (n) => headers.filter(([k]) => k === n).map(([, v]) => v);
    const len = all('content-length')[0];
    const bodyEnd = len === undefined ? s.length : end + 4 + Number(len);
    out.push({ status: Number(m[1]), headers, all, get: (n) => all(n)[0], body: s.slice(end + 4, bodyEnd) });
    off = bodyEnd;
  }
  return out;
}

// The only answer on a connection the server then closed.
function onlyAnswer(r, what) {
  assert.equal(r.timedOut, false, `${what}: the server neither answered nor closed in time`);
  const res = parseResponses(r.data);
  assert.equal(res.length, 1, `${what}: expected one answer, got ${res.length}: ${r.data.toString('latin1').slice(0, 400)}`);
  return res[0];
}

function assertJsonError(res, status, code, what = '') {
  assert.equal(res.status, status, `${what}: ${res.body.slice(0, 300)}`);
  assert.match(res.get('content-type'), /^application\/json/, what);
  const j = JSON.parse(res.body);
  assert.equal(j.error.code, code, what);
  assert.equal(j.error.type, 'invalid_request_error', what);
  assert.equal(typeof j.error.message, 'string');
  assert.ok('param' in j.error);
  return j.error;
}

function assertHtmlError(res, status, what = '') {
  assert.equal(res.status, status, `${what}: ${res.body.slice(0, 300)}`);
  assert.match(res.get('content-type'), /^text\/html/, what);
  assert.match(res.body, /<html[\s>]/, what);
  assert.match(res.body, new RegExp(`(Error |<h1>)${status}\\b`), what);
}

// A request on a connection of its own (node:http without an agent sends
// Connection: close, so no idle keep-alive socket holds a server worker).
function request(method, path, { headers = {}, body, timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString(), ms: Date.now() - t0 }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

function chatHead(path, { auth = `Authorization: Bearer ${key}\r\n`, length, extra = '' } = {}) {
  return `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}Content-Type: application/json\r\n` +
    (length === undefined ? '' : `Content-Length: ${length}\r\n`) + extra;
}

// One metered call through the gateway; returns its charge.
async function meteredCall(apiKey = key) {
  const res = await request('POST', '/v1/chat/completions', {
    headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(CHAT),
  });
  assert.equal(res.status, 200, res.text);
  const data = JSON.parse(res.text);
  const cost = micro(res.headers['x-credits-charged']);
  assert.ok(cost > 0n);
  assert.equal(micro(data.usage.cost), cost);
  return cost;
}

async function assertServing() {
  assert.equal(gw.srv.proc.exitCode, null, `the server exited:\n${gw.srv.stderr().slice(-2000)}`);
  assert.equal(gw.srv.proc.signalCode, null, `the server died:\n${gw.srv.stderr().slice(-2000)}`);
  const h = await request('GET', '/health');
  assert.equal(h.status, 200);
  assert.equal(JSON.parse(h.text).status, 'ok');
  spent += await meteredCall();
}

function heldMicro(text) {
  const m = text.match(/^tollgate_ledger_held_micro (\d+)$/m);
  assert.ok(m, 'the held gauge is exported');
  return Number(m[1]);
}

before(async () => {
  gw = await startGateway({
    credits: '100',
    serverArgs: ['--request-timeout-ms', String(TIMEOUT_MS), '--header-timeout-ms', String(TIMEOUT_MS),
      '--idle-timeout-ms', String(TIMEOUT_MS), '--threads', String(THREADS)],
  });
  port = gw.srv.port;
  key = createKey(gw.srv.dataDir, 'Acme', 'main');
  addOrg(gw.srv.dataDir, 'Beta');
  grant(gw.srv.dataDir, 'Beta', '50');
  keyBeta = createKey(gw.srv.dataDir, 'Beta', 'beta');
  startAcme = balance(gw.srv.dataDir, 'Acme');
  startBeta = balance(gw.srv.dataDir, 'Beta');
});

after(async () => {
  if (!gw) return;
  try {
    // Money is unharmed: exactly the metered calls were charged, nothing to
    // Beta (whose key was only ever refused), no hold left behind.
    assert.equal(balance(gw.srv.dataDir, 'Acme'), startAcme - spent);
    assert.equal(balance(gw.srv.dataDir, 'Beta'), startBeta);
    const m = await request('GET', '/metrics');
    assert.equal(m.status, 200);
    assert.equal(heldMicro(m.text), 0, 'no credits are left held');
    runAudit(gw.srv.dataDir);
  } finally {
    // A clean exit: no sanitizer report, no leak, no stuck worker.
    const code = await gw.srv.stop();
    await gw.upstream.stop();
    assert.equal(code, 0, `the server exit:\n${gw.srv.stderr().slice(-3000)}`);
    gw.srv.cleanup();
  }
});

describe('hostile HTTP', () => {
  afterEach(assertServing);

  test('a body shorter than its Content-Length, then the client closes: 400, nothing billed', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const body = '{"model":"fake-chat","messages":[';
    let r = await exchange([chatHead('/v1/chat/completions', { length: 100 }) + '\r\n' + body], { end: true });
    let res = onlyAnswer(r, 'truncated /v1');
    assertJsonError(res, 400, 'invalid_body', 'truncated /v1');
    assert.equal(res.get('connection'), 'close');
    assert.ok(r.ms < TIMEOUT_MS, `answered at once, not after a timeout (${r.ms} ms)`);

    r = await exchange(['POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n' +
      'Content-Length: 500\r\n\r\nemail=a%40b.c&password=x'], { end: true });
    res = onlyAnswer(r, 'truncated form');
    assertHtmlError(res, 400, 'truncated form');
    assert.equal(balance(gw.srv.dataDir, 'Acme'), before);
  });

  test('a body that stalls: 408 after request_timeout_ms, while other clients are served', async () => {
    const stalled = exchange([chatHead('/v1/chat/completions', { length: 100 }) + '\r\n{"model":"fake-chat",'], { timeoutMs: 10 * TIMEOUT_MS });
    await sleep(50);
    const h = await request('GET', '/health');
    assert.equal(h.status, 200);
    assert.ok(h.ms < TIMEOUT_MS / 2, `another client is served while one stalls (${h.ms} ms)`);
    const r = await stalled;
    const res = onlyAnswer(r, 'stalled body');
    assertJsonError(res, 408, 'request_timeout', 'stalled body');
    assert.equal(res.get('connection'), 'close');
    // CivetWeb waits up to twice the timeout per read, and the first read
    // returns what had come: about three timeouts in all.
    assert.ok(r.ms >= TIMEOUT_MS && r.ms < 5 * TIMEOUT_MS, `cut after the timeout (${r.ms} ms)`);
  });

  test('a Content-Length shorter than the body: the rest is never run as a second request', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    // The bytes after the declared length spell a complete metered call.
    const smuggled = JSON.stringify(CHAT);
    const tail = `${chatHead('/v1/chat/completions', { length: smuggled.length, extra: 'X-Request-Id: smuggled-call-1\r\n' })}\r\n${smuggled}`;
    const first = '{"model":"fake-chat","messages":[]';
    const r = await exchange([chatHead('/v1/chat/completions', { length: 5 }) + '\r\n' + first + tail]);
    const res = onlyAnswer(r, 'short Content-Length');
    const err = assertJsonError(res, 400, 'invalid_json', 'short Content-Length');
    assert.match(err.message, /parse the JSON body/);
    assert.equal(res.get('connection'), 'close');
    assert.doesNotMatch(r.data.toString(), /smuggled-call-1|chat\.completion/);
    assert.equal(balance(gw.srv.dataDir, 'Acme'), before, 'the smuggled call was not billed');

    // The remainder of a cut body is garbage as a request: the HTTP layer
    // refuses it and closes.
    const r2 = await exchange([chatHead('/v1/chat/completions', { length: 2 }) + '\r\n{}' + 'el":"fake-chat"}\r\n\r\n']);
    const res2 = parseResponses(r2.data);
    assert.equal(r2.timedOut, false);
    assert.deepEqual(res2.map((x) => x.status), [400, 400]);
    assertJsonError(res2[0], 400, 'missing_model');
    assert.match(res2[1].get('connection'), /close/);
  });

  test('a request pipelined after a well-framed body carries its own credentials', async () => {
    // `{}` is the whole body by its Content-Length; what follows is the next
    // request on the connection, and it is not authenticated by the first.
    const next = JSON.stringify(CHAT);
    const r = await exchange([chatHead('/v1/chat/completions', { length: 2 }) + '\r\n{}' +
      chatHead('/v1/chat/completions', { auth: '', length: next.length, extra: 'Connection: close\r\n' }) + '\r\n' + next]);
    const res = parseResponses(r.data);
    assert.deepEqual(res.map((x) => x.status), [400, 401]);
    assertJsonError(res[0], 400, 'missing_model');
    assertJsonError(res[1], 401, 'invalid_api_key');
  });

  test('a chunked body that never ends: 408 and a closed connection, others served meanwhile', async () => {
    const part = '{"model":"fake-chat",';
    const stalled = exchange([chatHead('/v1/chat/completions', { extra: 'Transfer-Encoding: chunked\r\n' }) +
      `\r\n${part.length.toString(16)}\r\n${part}\r\n`], { timeoutMs: 10 * TIMEOUT_MS });
    await sleep(50);
    const cost = await meteredCall();
    spent += cost;
    const r = await stalled;
    const res = onlyAnswer(r, 'endless chunked body');
    assertJsonError(res, 408, 'request_timeout', 'endless chunked body');
    assert.ok(r.ms >= TIMEOUT_MS && r.ms < 4 * TIMEOUT_MS, `cut after the timeout (${r.ms} ms)`);

    // A malformed chunk size is refused at once.
    const bad = await exchange([chatHead('/v1/chat/completions', { extra: 'Transfer-Encoding: chunked\r\n' }) + '\r\nzz\r\n{}\r\n0\r\n\r\n']);
    const badRes = onlyAnswer(bad, 'bad chunk size');
    assertJsonError(badRes, 400, 'invalid_body', 'bad chunk size');
    assert.ok(bad.ms < TIMEOUT_MS, `refused at once (${bad.ms} ms)`);
  });

  test('1 MB of headers, in one header or in many: refused and closed, never a hang', async () => {
    const huge = `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: ${'a'.repeat(1 << 20)}\r\n\r\n`;
    let many = '';
    for (let i = 0; many.length < (1 << 20); i++) many += `X-Many-${i}: ${'b'.repeat(100)}\r\n`;
    for (const [what, text] of [['one 1 MB header', huge], ['1 MB of small headers', `GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n${many}\r\n`]]) {
      const r = await exchange([text], { timeoutMs: 10_000 });
      assert.equal(r.timedOut, false, `${what}: closed in time`);
      assert.ok(r.ms < 2 * TIMEOUT_MS, `${what}: ${r.ms} ms`);
      // The head is refused by the HTTP layer before any route runs: a 400
      // (if the answer got through before the close) and the connection closed.
      const res = parseResponses(r.data);
      if (res.length) {
        assert.equal(res.length, 1, what);
        assert.equal(res[0].status, 400, what);
        assert.match(res[0].get('connection'), /close/, what);
      }
    }
  });

  test('more header fields than the server keeps: 431 in the route\'s envelope', async () => {
    const fields = (n) => Array.from({ length: n }, (_, i) => `X-F${i}: v\r\n`).join('');
    let r = await exchange([`GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\n${fields(80)}\r\n`]);
    let res = onlyAnswer(r, '80 headers /v1');
    assertJsonError(res, 431, 'too_many_headers', '80 headers /v1');
    assert.equal(res.get('connection'), 'close');

    // A second credential past the 64th field is not silently dropped.
    r = await exchange([`GET /v1/key HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\n${fields(70)}Authorization: Bearer ${keyBeta}\r\n\r\n`]);
    res = onlyAnswer(r, 'credential after 70 headers');
    assertJsonError(res, 431, 'too_many_headers');

    r = await exchange([`GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n${fields(80)}\r\n`]);
    assertHtmlError(onlyAnswer(r, '80 headers dashboard'), 431, '80 headers dashboard');

    // 60 fields are fine.
    r = await exchange([`GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer ${key}\r\n${fields(60)}\r\n`]);
    assert.equal(onlyAnswer(r, '60 headers').status, 200);
  });

  test('what the HTTP layer refuses before any route gets our envelopes: JSON under /v1, HTML in the dashboard', async () => {
    let res = onlyAnswer(await exchange(['GET /v1/models HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n']), 'HTTP/9.9');
    assert.equal(res.status, 505);
    assert.match(res.get('content-type'), /^application\/json/);
    const err = JSON.parse(res.body).error;
    assert.equal(err.code, 'http_version_not_supported');
    assert.equal(err.type, 'server_error');
    assert.match(res.get('x-request-id'), /^req_[0-9a-f]{28}$/);
    assert.equal(res.get('x-content-type-options'), 'nosniff');
    assert.equal(res.get('connection'), 'close');

    res = onlyAnswer(await exchange(['POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n']), 'Content-Length abc');
    assertJsonError(res, 411, 'length_required', 'Content-Length abc');
    assert.match(res.get('x-request-id'), /^req_[0-9a-f]{28}$/);

    // No request line to tell the path: the API's envelope.
    res = onlyAnswer(await exchange(['HELLO\r\n\r\n']), 'no request line');
    assertJsonError(res, 400, 'bad_request', 'no request line');

    res = onlyAnswer(await exchange(['POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n']), 'Content-Length -5 on a form');
    assertHtmlError(res, 411, 'Content-Length -5 on a form');
    assert.match(res.body, /valid Content-Length/);
  });

  test('slowloris: sockets sending their head a byte at a time never starve other clients', async () => {
    // Twice as many slow sockets as workers, each trickling a head far slower
    // than request_timeout_ms allows.
    const slowCount = 2 * THREADS;
    const head = `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${'s'.repeat(200)}\r\n\r\n`;
    const trickle = [];
    for (const ch of head) trickle.push(ch, 100);
    const slow = Array.from({ length: slowCount }, () => exchange(trickle, { timeoutMs: 60_000 }));
    await sleep(200);
    const probes = await Promise.all([
      request('GET', '/health'),
      exchange(['GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n']),
      (async () => { const t0 = Date.now(); spent += await meteredCall(); return { status: 200, ms: Date.now() - t0 }; })(),
    ]);
    // Each wave of slow sockets holds the workers for one timeout at most.
    const bound = (slowCount / THREADS + 2) * TIMEOUT_MS;
    assert.equal(probes[0].status, 200);
    assert.equal(onlyAnswer(probes[1], 'raw probe').status, 200);
    for (const p of probes) assert.ok(p.ms < bound, `a normal client waited ${p.ms} ms (bound ${bound} ms)`);
    const cut = await Promise.all(slow);
    for (const r of cut) {
      assert.equal(r.timedOut, false, 'every slow socket is cut');
      assert.ok(r.ms < bound + TIMEOUT_MS, `a slow socket was held ${r.ms} ms`);
      const res = parseResponses(r.data);
      assert.ok(res.length <= 1 && res.every((x) => x.status === 400), `a slow head got ${res.map((x) => x.status)}`);
    }
  });

  test('idle kept-alive connections are let go: they never starve other clients', async () => {
    // Each socket gets one answer, then stays open and silent.
    const idle = [];
    for (let i = 0; i < 2 * THREADS; i++) {
      const sock = net.connect(port, '127.0.0.1');
      const t0 = Date.now();
      let data = '';
      const answered = new Promise((r) => sock.on('data', (d) => { data += d; if (data.includes('"status":"ok"')) r(); }));
      const closed = new Promise((r) => sock.on('close', () => r(Date.now() - t0)));
      sock.on('error', () => {});
      sock.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      idle.push({ answered, closed });
    }
    await Promise.all(idle.map((s) => s.answered));
    const bound = (2 + 2) * TIMEOUT_MS;
    const probe = await exchange(['GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n']);
    assert.equal(onlyAnswer(probe, 'probe').status, 200);
    assert.ok(probe.ms < bound, `a new client waited ${probe.ms} ms behind idle connections (bound ${bound} ms)`);
    const held = await Promise.all(idle.map((s) => Promise.race([s.closed, sleep(10 * TIMEOUT_MS).then(() => Infinity)])));
    for (const ms of held) assert.ok(ms < bound + TIMEOUT_MS, `an idle connection was kept ${ms} ms`);
  });

  test('invalid UTF-8 in a JSON body: 400 invalid_json', async () => {
    const cases = [
      ['0xff byte', Buffer.from([0xff])],
      ['bad continuation', Buffer.from([0xc3, 0x28])],
      ['overlong slash', Buffer.from([0xc0, 0xaf])],
      ['encoded surrogate', Buffer.from([0xed, 0xa0, 0x80])],
      ['cut sequence', Buffer.from([0xe2, 0x82])],
    ];
    const prefix = Buffer.from('{"model":"fake-chat","messages":[{"role":"user","content":"hi ');
    for (const [what, bad] of cases) {
      const body = Buffer.concat([prefix, bad, Buffer.from('"}]}')]);
      const r = await exchange([chatHead('/v1/chat/completions', { length: body.length, extra: 'Connection: close\r\n' }) + '\r\n', body]);
      const err = assertJsonError(onlyAnswer(r, what), 400, 'invalid_json', what);
      assert.match(err.message, new RegExp(`not valid UTF-8 \\(invalid byte at offset ${prefix.length}\\)`), what);
    }
  });

  test('deeply nested JSON: 400 invalid_json, never a crash', async () => {
    const inner = (d) => '['.repeat(d) + ']'.repeat(d);
    const cases = [
      ['100000 [', '['.repeat(100000)],
      ['100000 objects', '{"a":'.repeat(100000)],
      ['deep content', `{"model":"fake-chat","messages":[{"role":"user","content":${inner(5000)}}]}`],
      ['just too deep', inner(129)],
    ];
    for (const [what, body] of cases) {
      const r = await exchange([chatHead('/v1/chat/completions', { length: Buffer.byteLength(body), extra: 'Connection: close\r\n' }) + '\r\n' + body]);
      const err = assertJsonError(onlyAnswer(r, what), 400, 'invalid_json', what);
      assert.match(err.message, /nests deeper than 128 levels/, what);
    }
    // 128 levels are within the limit: this one is refused for its shape, not its depth.
    const ok = inner(128);
    const r = await exchange([chatHead('/v1/chat/completions', { length: ok.length, extra: 'Connection: close\r\n' }) + '\r\n' + ok]);
    const err = assertJsonError(onlyAnswer(r, '128 levels'), 400, 'invalid_json');
    assert.match(err.message, /must be a JSON object/);
  });

  test('CR and LF in X-Request-Id never inject a response header', async () => {
    const heads = [
      ['bare CR', 'X-Request-Id: abc\rSet-Cookie: evil=1\r\n'],
      ['bare LF', 'X-Request-Id: abc\nSet-Cookie: evil=1\r\n'],
      ['folded line', 'X-Request-Id: abc\r\n Set-Cookie: evil=1\r\n'],
      ['encoded CR LF', 'X-Request-Id: abc%0d%0aSet-Cookie:%20evil=1\r\n'],
      ['NUL', 'X-Request-Id: abc\0Set-Cookie: evil=1\r\n'],
    ];
    for (const path of ['/health', '/v1/models', '/login']) {
      for (const [what, line] of heads) {
        const r = await exchange([`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer ${key}\r\n${line}\r\n`]);
        assert.equal(r.timedOut, false, `${path} ${what}`);
        const res = parseResponses(r.data);
        assert.ok(res.length <= 1, `${path} ${what}`);
        for (const x of res) {
          assert.ok(![...x.all('set-cookie')].some((v) => /evil/.test(v)), `${path} ${what}: injected Set-Cookie`);
          const ids = x.all('x-request-id');
          assert.ok(ids.length <= 1, `${path} ${what}: one X-Request-Id`);
          if (ids.length) assert.match(ids[0], /^[A-Za-z0-9._:-]{1,64}$/, `${path} ${what}`);
          assert.ok(x.status === 200 || x.status === 400, `${path} ${what}: ${x.status}`);
        }
        assert.doesNotMatch(r.data.toString('latin1'), /\r\nSet-Cookie: evil/i, `${path} ${what}`);
      }
    }
    // What the server does with a client X-Request-Id: a well-formed one is
    // echoed once, anything else is replaced by one of its own.
    const echo = await request('GET', '/health', { headers: { 'X-Request-Id': 'client-id_1.2:3' } });
    assert.equal(echo.headers['x-request-id'], 'client-id_1.2:3');
    const two = await exchange(['GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Request-Id: first-id\r\nX-Request-Id: second-id\r\n\r\n']);
    assert.deepEqual(onlyAnswer(two, 'two ids').all('x-request-id'), ['first-id'], 'one id, the first');
    for (const bad of ['a'.repeat(65), 'has space', 'semi;colon', 'caf\u00e9']) {
      const res = await request('GET', '/health', { headers: { 'X-Request-Id': Buffer.from(bad).toString('latin1') } });
      assert.match(res.headers['x-request-id'], /^req_[0-9a-f]{28}$/, bad);
    }
  });

  test('two credentials at once on /v1 are refused, never one checked and the other billed', async () => {
    const acme = balance(gw.srv.dataDir, 'Acme');
    const body = JSON.stringify(CHAT);
    const cases = [
      ['two Authorization, two keys', `Authorization: Bearer ${key}\r\nAuthorization: Bearer ${keyBeta}\r\n`, /Send the API key once/],
      ['two Authorization, same key', `Authorization: Bearer ${key}\r\nAuthorization: Bearer ${key}\r\n`, /Send the API key once/],
      ['Authorization and x-api-key differ', `Authorization: Bearer ${key}\r\nx-api-key: ${keyBeta}\r\n`, /name different keys/],
      ['x-api-key and Authorization differ', `x-api-key: ${keyBeta}\r\nAuthorization: Bearer ${key}\r\n`, /name different keys/],
      ['two x-api-key', `x-api-key: ${keyBeta}\r\nx-api-key: ${key}\r\n`, /Send the API key once/],
    ];
    for (const [what, auth, msg] of cases) {
      const r = await exchange([chatHead('/v1/chat/completions', { auth, length: body.length, extra: 'Connection: close\r\n' }) + '\r\n' + body]);
      const res = onlyAnswer(r, what);
      const err = assertJsonError(res, 401, 'invalid_api_key', what);
      assert.match(err.message, msg, what);
      assert.equal(res.get('www-authenticate'), 'Bearer');
    }
    assert.equal(balance(gw.srv.dataDir, 'Acme'), acme);
    assert.equal(balance(gw.srv.dataDir, 'Beta'), startBeta);

    // The same key in both headers is one credential.
    const same = await request('POST', '/v1/chat/completions', {
      headers: { Authorization: `Bearer ${key}`, 'x-api-key': key, 'Content-Type': 'application/json' }, body,
    });
    assert.equal(same.status, 200, same.text);
    spent += micro(same.headers['x-credits-charged']);
  });

  test('path traversal under /static never serves a file outside static/', async () => {
    const ok = await request('GET', '/static/app.css');
    assert.equal(ok.status, 200);
    const cases = [
      ['/static/../README.md', 404],
      ['/static/../../../../etc/passwd', 404],
      ['/static/%2e%2e/README.md', 400],
      ['/static/%2E%2E/%2e%2e/%2e%2e/etc/passwd', 400],
      ['/static/..%2fMakefile', 400],
      ['/static/%2e%2e%2fMakefile', 400],
      ['/static/.%2e/Makefile', 400],
      ['/static/%252e%252e%252fMakefile', 404],
      ['/static/..%5cMakefile', 404],
      ['/static/..\\Makefile', 404],
      ['/static//etc/passwd', 404],
      ['/static/%2fetc%2fpasswd', 404],
      ['//etc/passwd', 404],
      ['/etc/passwd', 404],
      ['/static/app.css%00.js', 400],
      ['/static/app.css%00', 400],
      ['/static/%00../../Makefile', 404],
      ['/static/.hidden', 404],
      ['/static/', 404],
    ];
    for (const [path, status] of cases) {
      const r = await exchange([`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`]);
      const res = onlyAnswer(r, path);
      assertHtmlError(res, status, path);
      assert.doesNotMatch(res.body, /root:x:0:0|thin wrapper over CMake|# Tollgate/, path);
    }
    // Absolute-form targets are not served at all: the connection is closed.
    for (const target of [`http://127.0.0.1:${port}/static/../../Makefile`, `http://127.0.0.1:${port}/static/%2e%2e/Makefile`]) {
      const r = await exchange([`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`]);
      assert.equal(r.timedOut, false, target);
      assert.ok(parseResponses(r.data).every((x) => x.status >= 400), target);
      assert.doesNotMatch(r.data.toString(), /thin wrapper over CMake/, target);
    }
    // The same refusal under /v1 comes as JSON.
    const r = await exchange([`GET /v1/%2e%2e/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`]);
    assertJsonError(onlyAnswer(r, '/v1 dot segment'), 400, 'invalid_path');
    const nul = await exchange([`GET /v1/models%00.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`]);
    assertJsonError(onlyAnswer(nul, '/v1 NUL'), 400, 'invalid_path');
  });

  test('oversized forms get a 413 page, oversized JSON a 413 envelope, with or without Content-Length', async () => {
    const big = 'a='.padEnd(1100 * 1024, 'x');
    for (const path of ['/login', '/orgs', '/credits/grant', '/keys']) {
      const r = await exchange(['POST ' + path + ' HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n' +
        `Content-Length: ${big.length}\r\n\r\n`, big], { timeoutMs: 10_000 });
      const res = onlyAnswer(r, path);
      assertHtmlError(res, 413, path);
      assert.match(res.body, /too large/, path);
      assert.equal(res.get('connection'), 'close', path);
    }
    // Chunked, so the size shows only while reading: the form is cut at the limit.
    const chunk = 'x'.repeat(64 * 1024);
    const chunks = [];
    for (let n = 0; n < 20; n++) chunks.push(`${chunk.length.toString(16)}\r\n${n ? '' : 'a='}${n ? chunk : chunk.slice(2)}\r\n`);
    let r = await exchange(['POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n' +
      'Transfer-Encoding: chunked\r\n\r\n', ...chunks, '0\r\n\r\n'], { timeoutMs: 10_000 });
    assertHtmlError(onlyAnswer(r, 'chunked form'), 413, 'chunked form');

    const json = JSON.stringify({ ...CHAT, messages: [{ role: 'user', content: 'y'.repeat(1100 * 1024) }] });
    r = await exchange([chatHead('/v1/chat/completions', { length: json.length }) + '\r\n', json], { timeoutMs: 10_000 });
    let res = onlyAnswer(r, 'big JSON');
    assertJsonError(res, 413, 'request_too_large', 'big JSON');
    assert.equal(res.get('connection'), 'close');

    r = await exchange([chatHead('/v1/chat/completions', { extra: 'Transfer-Encoding: chunked\r\n' }) + '\r\n',
      ...Array.from({ length: 20 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`), '0\r\n\r\n'], { timeoutMs: 10_000 });
    res = onlyAnswer(r, 'chunked JSON');
    assertJsonError(res, 413, 'request_too_large', 'chunked JSON');
  });
});

// The production edge with DEFAULT settings (no thread, timeout or cap
// flags): 2,000 connections from forty other addresses that idle, trickle a
// request head or sit in keep-alive do not keep /health and a metered call
// from answering; one address holding more idle connections than
// max_connections_per_ip (128) for over a second is refused at once with a
// 429 envelope; and once the attackers leave, the server's count of open
// connections comes back down. (Latency figures: make bench, edge.sh.)
describe('slow and idle clients against default settings', () => {
  const HOSTILE = 2000;
  const ADDRS = 40;
  let dgw, dport, dkey;
  const socks = [];

  const open = (localAddress) => new Promise((resolve) => {
    const s = net.connect({ port: dport, host: '127.0.0.1', localAddress });
    s.on('error', () => {});
    s.on('connect', () => resolve(s));
    s.on('close', () => resolve(s));
    socks.push(s);
  });

  before(async () => {
    dgw = await startGateway({ credits: '10' });
    dport = dgw.srv.port;
    dkey = createKey(dgw.srv.dataDir, 'Acme', 'edge');
  });

  after(async () => {
    for (const s of socks) s.destroy();
    if (!dgw) return;
    const code = await dgw.srv.stop();
    await dgw.upstream.stop();
    assert.equal(code, 0, `the server exit:\n${dgw.srv.stderr().slice(-3000)}`);
    runAudit(dgw.srv.dataDir);
    dgw.srv.cleanup();
  });

  const get = (path, localAddress) => new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: dport, path, agent: false, localAddress,
      timeout: 5000 }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('timeout', () => req.destroy(new Error(`${path}: no answer in 5 s`)));
    req.on('error', reject);
    req.end();
  });

  const metric = async (name) => {
    const m = (await get('/metrics')).text.match(new RegExp(`^${name} (\\d+)$`, 'm'));
    assert.ok(m, `${name} is exported`);
    return Number(m[1]);
  };

  test('2,000 idle, trickling and kept-alive connections from other addresses starve nobody',
    async () => {
      const opened = [];
      for (let i = 0; i < HOSTILE; i++) {
        const addr = `127.0.0.${2 + (i % ADDRS)}`;
        opened.push(open(addr).then((s) => {
          if (s.destroyed) return;
          if (i % 3 === 1) s.write('GET /health HTTP/1.1\r\nHo'); // a head, never finished
          if (i % 3 === 2) s.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'); // then keep-alive
        }));
      }
      await Promise.all(opened);
      const trickle = setInterval(() => {
        socks.forEach((s, i) => { if (i % 3 === 1 && !s.destroyed) s.write('s'); });
      }, 500);
      try {
        await sleep(500);
        const held = socks.filter((s) => !s.destroyed).length;
        assert.ok(held >= HOSTILE * 0.95, `the hostile connections are open (${held})`);
        // The server holds them (at least half at once: a slow build accepts
        // slowly, and trickled heads time out after header_timeout_ms).
        let counted = 0;
        for (let t = 0; t < 50 && counted < HOSTILE * 0.95; t++) {
          counted = Math.max(counted, await metric('tollgate_tcp_connections_open'));
          if (counted < HOSTILE * 0.95) await sleep(100);
        }
        assert.ok(counted >= HOSTILE / 2, `the server counts them (${counted})`);
        const sdk = new OpenAI({ apiKey: dkey, baseURL: `${dgw.srv.url}/v1`, maxRetries: 0,
          timeout: 5000 });
        for (let k = 0; k < 20; k++) {
          const h = await get('/health');
          assert.equal(h.status, 200);
          const c = await sdk.chat.completions.create({ ...CHAT });
          assert.ok(c.usage.total_tokens > 0);
        }
      } finally {
        clearInterval(trickle);
      }
    });

  test('an address over max_connections_per_ip is refused at once with a 429', async () => {
    const addr = '127.0.0.99';
    const idle = [];
    for (let i = 0; i < 130; i++) idle.push(open(addr));
    await Promise.all(idle);
    await sleep(1500); // past the grace a new connection gets to send its request
    const answer = await new Promise((resolve) => {
      const s = net.connect({ port: dport, host: '127.0.0.1', localAddress: addr });
      let data = '';
      s.on('data', (d) => { data += d; });
      s.on('error', () => {});
      s.on('close', () => resolve(data));
      s.on('connect', () => s.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'));
    });
    const [res] = parseResponses(Buffer.from(answer, 'latin1'));
    assert.ok(res, `an answer came back: ${JSON.stringify(answer.slice(0, 200))}`);
    assert.equal(res.status, 429);
    assert.equal(res.get('retry-after'), '1');
    assert.equal(res.get('connection'), 'close');
    const err = JSON.parse(res.body).error;
    assert.equal(err.code, 'too_many_connections');
    assert.equal(err.type, 'rate_limit_error');
    assert.ok('param' in err);
    assert.ok(await metric('tollgate_tcp_connections_refused_total') >= 1);
    // Other addresses are not affected.
    assert.equal((await get('/health', '127.0.0.98')).status, 200);
  });

  test('once the clients leave, the open connection count comes back down', async () => {
    for (const s of socks) s.destroy();
    let n = Infinity;
    for (let t = 0; t < 100 && n > 2; t++) {
      await sleep(100);
      n = await metric('tollgate_tcp_connections_open');
    }
    assert.ok(n <= 2, `connections still counted open: ${n}`);
    assert.ok(await metric('tollgate_tcp_client_addresses') <= 1);
  });
});
