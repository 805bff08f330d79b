// Tollgate behind nginx, run from the shipped deploy/nginx.conf (only its
// placeholders replaced): metered calls and unbuffered streams through it,
// the real client address (from loopback aliases 127.0.0.2, .3, .4) in the
// access log, the key and sign-in throttles and the audit log, forged
// forwarding headers, and with the file's HTTPS lines turned on, the scheme.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, rmSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import OpenAI from 'openai';
import { ROOT, tempDir } from './lib/harness.js';
import { agentFetch } from './lib/fetch.js';
import {
  startGateway, createKey, balance, expectedCost, micro, sql as dbSql,
} from './lib/gateway.js';
import { runAudit } from './lib/audit.js';

const NGINX = process.env.NGINX_BIN || 'nginx';
const CONF = join(ROOT, 'deploy/nginx.conf');
const AUTH_FAILS = 5;
const LOGIN_FAILS = 3;
const MESSAGES = [{ role: 'user', content: 'Through the proxy, please.' }];
const BAD_KEY = `tg_${'B'.repeat(38)}`;
const OWNER = { email: 'owner@example.com', password: 'owner-password-1' };

let gw, key, plain, tls, certDir;
const agents = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

// deploy/nginx.conf with its placeholders replaced; with tls, its `#tls#`
// lines turned on, as deploy/README.md says.
function renderConf(values, { tls: on = false } = {}) {
  let text = readFileSync(CONF, 'utf8');
  assert.match(text, /^\s*#tls# listen __TLS_LISTEN__ ssl/m, 'the HTTPS lines are in the file');
  for (const [name, value] of Object.entries(values)) {
    assert.ok(text.includes(`__${name}__`), `placeholder __${name}__ is in the file`);
    text = text.replaceAll(`__${name}__`, value);
  }
  assert.doesNotMatch(text, /__[A-Z_]+__/, 'every placeholder replaced');
  if (on) text = text.replaceAll('#tls# ', ''); // sed 's/#tls# //', as the README says
  return text;
}

// nginx from the shipped file in its own prefix, in the foreground.
async function startNginx({ tls: on = false } = {}) {
  for (let attempt = 0; ; attempt++) {
    const prefix = tempDir('tollgate-nginx-');
    chmodSync(prefix, 0o755); // workers run as nobody when started as root
    const port = await freePort();
    const tlsPort = await freePort();
    const conf = join(prefix, 'nginx.conf');
    writeFileSync(conf, renderConf({
      LISTEN: `127.0.0.1:${port}`, UPSTREAM: `127.0.0.1:${gw.srv.port}`, PREFIX: prefix,
      TLS_LISTEN: `127.0.0.1:${tlsPort}`,
      TLS_CERT: join(certDir, 'cert.pem'), TLS_KEY: join(certDir, 'key.pem'),
    }, { tls: on }));
    const proc = spawn(NGINX, ['-p', prefix, '-c', conf, '-e', join(prefix, 'error.log'),
      '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proc.stderr.on('data', (d) => { err += d; });
    const errorLog = () => {
      try { return readFileSync(join(prefix, 'error.log'), 'utf8'); } catch { return ''; }
    };
    const ng = {
      proc, prefix, port, tlsPort, errorLog,
      url: `http://127.0.0.1:${port}`, tlsUrl: `https://127.0.0.1:${tlsPort}`,
      accessLog: () => readFileSync(join(prefix, 'access.log'), 'utf8'),
      async stop() {
        if (proc.exitCode === null && proc.signalCode === null) {
          const done = new Promise((r) => proc.on('exit', r));
          proc.kill('SIGTERM');
          const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
          await done;
          clearTimeout(t);
        }
        rmSync(prefix, { recursive: true, force: true });
      },
    };
    const ports = on ? [port, tlsPort] : [port];
    const start = Date.now();
    let up = false;
    while (!up && proc.exitCode === null && Date.now() - start < 10_000) {
      up = (await Promise.all(ports.map((p) => new Promise((r) => {
        const s = net.connect(p, '127.0.0.1', () => { s.destroy(); r(true); });
        s.on('error', () => r(false));
      })))).every(Boolean);
      if (!up) await sleep(20);
    }
    if (up) return ng;
    const why = `${err}${errorLog()}`;
    await ng.stop();
    // A port taken between freePort() and nginx's bind: try again.
    if (/Address already in use/.test(why) && attempt < 3) continue;
    throw new Error(`nginx did not start:\n${why}`);
  }
}

// The openai SDK's fetch from a given source address (lib/fetch.js).
function fetchFrom(localAddress) {
  const httpAgent = new http.Agent({ keepAlive: true, localAddress });
  const httpsAgent = new https.Agent({
    keepAlive: true, localAddress, rejectUnauthorized: false,
  });
  agents.push(httpAgent, httpsAgent);
  return agentFetch({ httpAgent, httpsAgent });
}

function sdk(baseURL, localAddress, opts = {}) {
  return new OpenAI({
    apiKey: key, baseURL: `${baseURL}/v1`, maxRetries: 0, timeout: 20_000,
    fetch: fetchFrom(localAddress), ...opts,
  });
}

// One request on its own connection from localAddress to base (nginx or the
// gateway itself).
function request(base, path, { method = 'GET', headers = {}, body, form, localAddress } = {}) {
  const u = new URL(path, base);
  const h = { Connection: 'close', ...headers };
  let data;
  if (form) {
    data = new URLSearchParams(form).toString();
    h['Content-Type'] = 'application/x-www-form-urlencoded';
  } else if (body !== undefined) {
    data = typeof body === 'string' ? body : JSON.stringify(body);
    h['Content-Type'] = 'application/json';
  }
  if (data !== undefined) h['Content-Length'] = Buffer.byteLength(data);
  const secure = u.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(u, {
      method, headers: h, agent: false, localAddress, rejectUnauthorized: false,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

const auth = (k = key) => ({ Authorization: `Bearer ${k}` });
// Through nginx (plain HTTP), or straight to the gateway, from an address.
const via = (path, localAddress, opts = {}) => request(plain.url, path, { ...opts, localAddress });
const direct = (path, localAddress, opts = {}) =>
  request(gw.srv.url, path, { ...opts, localAddress });
const metric = async (name) => {
  const m = await direct('/metrics', '127.0.0.4');
  return Number(m.text.match(new RegExp(`^${name} (\\d+)$`, 'm'))?.[1]);
};

// The `client=` of the gateway's access log line for a request id (the line
// is written as the request closes, just after the answer).
async function loggedClient(requestId) {
  assert.match(requestId ?? '', /^\S+$/, 'the answer carries x-request-id');
  const end = Date.now() + 3000;
  for (;;) {
    const log = gw.srv.stderr();
    const line = log.split('\n').find((l) => l.includes(` id=${requestId} `));
    if (line) {
      const m = line.match(/ id=\S+ client=(\S+)$/);
      assert.ok(m, `access log line has client=: ${line}`);
      return m[1];
    }
    if (Date.now() > end) throw new Error(`no access log line for ${requestId}:\n${log}`);
    await sleep(20);
  }
}

async function nginxLogLine(ng, requestId) {
  const end = Date.now() + 3000;
  for (;;) {
    const log = ng.accessLog();
    const line = log.split('\n').find((l) => l.includes(` id=${requestId} `));
    if (line) return line;
    if (Date.now() > end) throw new Error(`no nginx access log line for ${requestId}:\n${log}`);
    await sleep(20);
  }
}

// Sign in through the real form (GET for the CSRF cookie and token, then
// POST), as a browser at base would, Origin included.
async function signIn(base, email, password, localAddress) {
  const page = await request(base, '/login', { localAddress });
  assert.equal(page.status, 200);
  const cookie = (page.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]).join('; ');
  const csrf = page.text.match(/name="csrf" value="([^"]+)"/)[1];
  return request(base, '/login', {
    method: 'POST', localAddress, headers: { Cookie: cookie, Origin: base },
    form: { csrf, email, password },
  });
}

before(async () => {
  certDir = tempDir('tollgate-nginx-cert-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-keyout', join(certDir, 'key.pem'),
    '-out', join(certDir, 'cert.pem')], { stdio: 'ignore' });
  gw = await startGateway({
    credits: '100',
    serverArgs: ['--trusted-proxies', '127.0.0.1', '--log-level', 'info',
      '--auth-fail-limit', String(AUTH_FAILS), '--auth-fail-window-s', '60',
      '--login-fail-limit', String(LOGIN_FAILS), '--login-fail-window-s', '60'],
  });
  key = createKey(gw.srv.dataDir, 'Acme', 'main');
  plain = await startNginx();
});

after(async () => {
  for (const a of agents) a.destroy();
  if (tls) await tls.stop();
  if (plain) await plain.stop();
  if (gw) {
    runAudit(gw.srv.dataDir);
    await gw.stop();
  }
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

const words = (n) => Array.from({ length: n }, (_, i) => `tok${i}`).join(' ');
const cookiesOf = (r) => r.headers['set-cookie'] ?? [];
const secure = (c) => /^__Host-/.test(c) && /; Secure/.test(c);

describe('behind nginx (deploy/nginx.conf)', () => {
  test('a non-stream call through nginx is metered exactly', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const { data, response } = await sdk(plain.url, '127.0.0.2').chat.completions
      .create({ model: 'fake-big', messages: MESSAGES, max_tokens: 30 })
      .withResponse();
    assert.equal(data.model, 'fake-big');
    assert.equal(data.choices[0].message.content, words(16));
    const cost = expectedCost('fake-big', data.usage);
    assert.ok(cost > 0n);
    assert.equal(micro(data.usage.cost), cost);
    assert.equal(micro(response.headers.get('x-credits-charged')), cost);
    assert.equal(before - balance(gw.srv.dataDir, 'Acme'), cost);
    const id = response.headers.get('x-request-id');
    const row = dbSql(gw.srv.dataDir, 'SELECT status, cost, prompt_tokens, completion_tokens,'
      + ` client_ip FROM requests WHERE request_id = '${id}'`);
    const { prompt_tokens: pt, completion_tokens: ct } = data.usage;
    // The request log records the real client too.
    assert.equal(row, `200|${cost}|${pt}|${ct}|127.0.0.2`);

    // The gateway logs the real client, not nginx's 127.0.0.1...
    assert.equal(await loggedClient(id), '127.0.0.2');
    // ...and so does nginx, with the same request id and without the key.
    const line = await nginxLogLine(plain, id);
    assert.match(line, /^127\.0\.0\.2 .*"POST \/v1\/chat\/completions HTTP\/1\.1" 200 /);
    assert.ok(!plain.accessLog().includes(key), 'the API key is not in the nginx access log');
  });

  test('a stream through nginx is relayed whole and billed from its usage', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const { data: stream, response } = await sdk(plain.url, '127.0.0.2').chat.completions
      .create({
        model: 'fake-chat', messages: MESSAGES, max_tokens: 12, stream: true,
        stream_options: { include_usage: true },
      }).withResponse();
    assert.match(response.headers.get('content-type'), /^text\/event-stream/);
    let text = '';
    let usage = null;
    let finish = null;
    for await (const chunk of stream) {
      assert.equal(chunk.model, 'fake-chat');
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, words(12));
    assert.equal(finish, 'length');
    assert.ok(usage, 'the usage chunk came through');
    assert.equal(usage.completion_tokens, 12);
    const cost = expectedCost('fake-chat', usage);
    assert.equal(micro(usage.cost), cost);
    assert.equal(before - balance(gw.srv.dataDir, 'Acme'), cost);
    assert.equal(await loggedClient(response.headers.get('x-request-id')), '127.0.0.2');
  });

  test('nginx does not buffer a stream: events arrive as they are produced', async () => {
    const t0 = Date.now();
    const stream = await sdk(plain.url, '127.0.0.3').chat.completions.create({
      model: 'fake-chat', messages: MESSAGES, max_tokens: 10, stream: true,
      x_fake: { chunks: 10, chunk_interval_ms: 200 },
    });
    const at = [];
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) at.push(Date.now() - t0);
    }
    const total = Date.now() - t0;
    assert.equal(at.length, 10, 'ten content chunks');
    // The provider takes 10 x 200 ms; a buffering proxy hands it all over at
    // the end (as nginx does with proxy_buffering on and gzip).
    assert.ok(total >= 1800, `the stream took ${total} ms`);
    assert.ok(at[0] < 1000, `the first content chunk came after ${at[0]} ms of ${total}`);
    assert.ok(at[9] - at[0] >= 1200, `chunks spread over ${at[9] - at[0]} ms, not bunched`);
  });

  test('nginx keeps idle connections to the gateway open (upstream keepalive)', async () => {
    for (let i = 0; i < 6; i++) {
      const r = await via(i % 2 ? '/health' : '/v1/models', '127.0.0.3', { headers: auth() });
      assert.equal(r.status, 200);
    }
    // Every client connection was closed; without keepalive nginx would have
    // closed its side too, and only this /metrics connection would be open.
    await sleep(300);
    const open = await metric('tollgate_tcp_connections_open');
    assert.ok(open >= 2, `connections open at the gateway: ${open}`);
  });

  test('a request body goes on to the gateway as it arrives (no request buffering)', async () => {
    const idle = await metric('tollgate_http_requests_in_flight');
    const body = Buffer.from(JSON.stringify({
      model: 'fake-chat', max_tokens: 3, messages: MESSAGES,
    }));
    const res = new Promise((resolve, reject) => {
      const req = http.request(`${plain.url}/v1/chat/completions`, {
        method: 'POST', agent: false, localAddress: '127.0.0.3',
        headers: { ...auth(), 'Content-Type': 'application/json', 'Content-Length': body.length },
      }, (r) => {
        let t = '';
        r.on('data', (d) => { t += d; });
        r.on('end', () => resolve({ status: r.statusCode, t }));
      });
      req.on('error', reject);
      req.write(body.subarray(0, 20));
      setTimeout(() => req.end(body.subarray(20)), 500);
    });
    await sleep(250);
    // 20 bytes of the body sent: the gateway is already reading the request
    // (a buffering proxy sends nothing before the whole body).
    assert.equal(await metric('tollgate_http_requests_in_flight'), idle + 1);
    const r = await res;
    assert.equal(r.status, 200, r.t);
  });

  test('an oversized body is refused by nginx itself, in the OpenAI envelope', async () => {
    const body = (n) => JSON.stringify({
      model: 'fake-chat', max_tokens: 1, messages: [{ role: 'user', content: 'x'.repeat(n) }],
    });
    const post = { method: 'POST', headers: auth() };
    const r = await via('/v1/chat/completions', '127.0.0.3', { ...post, body: body(1_100_000) });
    assert.equal(r.status, 413);
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.equal(JSON.parse(r.text).error.code, 'request_too_large');
    // nginx's answer: the body never reached the gateway (whose answers all
    // carry x-request-id).
    assert.equal(r.headers['x-request-id'], undefined, 'refused by nginx, not the gateway');
    assert.doesNotMatch(gw.srv.stderr(), / 413 /);
    // Just under 1 MiB goes through (and under the gateway's own 1 MiB).
    const ok = await via('/v1/chat/completions', '127.0.0.3', { ...post, body: body(1_000_000) });
    assert.equal(ok.status, 200, ok.text);
  });

  test('/metrics through nginx only for the proxy host itself', async () => {
    assert.equal((await via('/metrics', '127.0.0.2')).status, 403);
    const inside = await via('/metrics', '127.0.0.1');
    assert.equal(inside.status, 200);
    assert.match(inside.text, /^tollgate_/m);
  });

  test('forwarding headers from a direct, untrusted client are ignored', async () => {
    const spoofs = [
      { 'X-Forwarded-For': '127.0.0.9' },
      { Forwarded: 'for=127.0.0.9' },
      { 'X-Forwarded-For': '127.0.0.9, 127.0.0.1' },
    ];
    for (const h of spoofs) {
      const r = await direct('/v1/models', '127.0.0.4', { headers: { ...auth(), ...h } });
      assert.equal(r.status, 200);
      assert.equal(await loggedClient(r.headers['x-request-id']), '127.0.0.4', JSON.stringify(h));
    }
    // From a trusted peer (127.0.0.1, as nginx) the same header is believed:
    // the check above is not vacuous.
    const r = await direct('/v1/models', '127.0.0.1', {
      headers: { ...auth(), 'X-Forwarded-For': '127.0.0.9' },
    });
    assert.equal(await loggedClient(r.headers['x-request-id']), '127.0.0.9');
  });

  test('a client behind nginx cannot forge its address', async () => {
    const forged = [
      { 'X-Forwarded-For': '10.9.9.9' },
      { 'X-Forwarded-For': '127.0.0.1' }, // a trusted address, prepended
      { Forwarded: 'for=10.9.9.9' }, // nginx drops it
      { Forwarded: 'for=10.9.9.9', 'X-Forwarded-For': '10.8.8.8' },
    ];
    for (const h of forged) {
      const client = sdk(plain.url, '127.0.0.2', { defaultHeaders: h });
      const { response } = await client.models.list().withResponse();
      assert.equal(response.status, 200);
      const id = response.headers.get('x-request-id');
      assert.equal(await loggedClient(id), '127.0.0.2', JSON.stringify(h));
    }
  });

  test("a client's X-Request-Id reaches the gateway through nginx", async () => {
    const r = await via('/v1/models', '127.0.0.3', {
      headers: { ...auth(), 'X-Request-Id': 'proxy-e2e-id-1' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-request-id'], 'proxy-e2e-id-1');
    assert.equal(await loggedClient('proxy-e2e-id-1'), '127.0.0.3');
  });

  test('a forged X-Forwarded-Proto does not pass nginx; only a trusted one counts', async () => {
    const xfp = { headers: { 'X-Forwarded-Proto': 'https' } };
    // From the trusted address, https is believed: __Host- and Secure cookies.
    const trusted = await direct('/login', '127.0.0.1', xfp);
    assert.ok(cookiesOf(trusted).length > 0, 'the sign-in page sets a cookie');
    assert.ok(cookiesOf(trusted).every(secure), cookiesOf(trusted).join('\n'));
    // Through nginx over plain HTTP, the client's https is replaced by http.
    const proxied = await via('/login', '127.0.0.2', xfp);
    assert.equal(proxied.status, 200);
    assert.ok(cookiesOf(proxied).length > 0);
    const plainCookie = (c) => !/Secure|__Host-/.test(c);
    assert.ok(cookiesOf(proxied).every(plainCookie), cookiesOf(proxied).join('\n'));
    // Straight from an untrusted address it is ignored.
    const untrusted = await direct('/login', '127.0.0.4', xfp);
    assert.ok(cookiesOf(untrusted).length > 0);
    assert.ok(cookiesOf(untrusted).every(plainCookie), cookiesOf(untrusted).join('\n'));
  });

  test('failed sign-ins block one client behind nginx, not the others; audited', async () => {
    for (let i = 1; i <= LOGIN_FAILS; i++) {
      const r = await signIn(plain.url, `nobody${i}@example.com`, 'wrong-password-1', '127.0.0.2');
      assert.equal(r.status, 401, `failed sign-in ${i}`);
    }
    const blocked = await signIn(plain.url, OWNER.email, OWNER.password, '127.0.0.2');
    assert.equal(blocked.status, 429, 'the right password from the blocked address');
    // A browser's form post through nginx passes the Origin check (nginx
    // forwards Host with its port), and 127.0.0.3 is not blocked.
    const ok = await signIn(plain.url, OWNER.email, OWNER.password, '127.0.0.3');
    assert.equal(ok.status, 303, ok.text);
    const rows = (where, what = 'ip') => dbSql(gw.srv.dataDir,
      `SELECT DISTINCT ${what} FROM audit_log WHERE action = '${where}'`).split('\n');
    assert.deepEqual(rows('login.failed'), ['127.0.0.2']);
    assert.deepEqual(rows('login.ip_blocked', "target || ' ' || ip"), ['127.0.0.2 127.0.0.2']);
    assert.deepEqual(rows('login.ok'), ['127.0.0.3']);
  });

  // Last of the plain-HTTP tests: 127.0.0.2 stays blocked for the window.
  test('bad keys block one client behind nginx, not everyone behind it', async () => {
    const bad = { headers: auth(BAD_KEY) };
    for (let i = 1; i <= AUTH_FAILS; i++) {
      assert.equal((await via('/v1/models', '127.0.0.2', bad)).status, 401, `bad key ${i}`);
    }
    const blocked = await via('/v1/models', '127.0.0.2', bad);
    assert.equal(blocked.status, 429);
    assert.equal(JSON.parse(blocked.text).error.code, 'too_many_auth_failures');
    assert.ok(Number(blocked.headers['retry-after']) > 0);
    // The address is blocked, whatever key it brings.
    assert.equal((await via('/v1/models', '127.0.0.2', { headers: auth() })).status, 429);
    // Another client behind the same proxy is not.
    const other = await sdk(plain.url, '127.0.0.3').models.list();
    assert.ok(other.data.length > 0);
    assert.equal((await via('/v1/models', '127.0.0.3', { headers: auth() })).status, 200);
    // Nor the proxy's own address: nothing was counted against 127.0.0.1.
    assert.equal((await direct('/v1/models', '127.0.0.1', { headers: auth() })).status, 200);
    const log = gw.srv.stderr();
    assert.match(log, /gateway: 127\.0\.0\.2 blocked for 60 s after 5 failed API key checks/);
    assert.doesNotMatch(log, /gateway: 127\.0\.0\.1 blocked/);
  });
});

describe('with the HTTPS lines of deploy/nginx.conf turned on', () => {
  before(async () => { tls = await startNginx({ tls: true }); });

  test('plain HTTP is redirected to HTTPS', async () => {
    const r = await request(tls.url, '/v1/models?x=1', {
      headers: auth(), localAddress: '127.0.0.3',
    });
    assert.equal(r.status, 308);
    assert.equal(r.headers.location, 'https://127.0.0.1/v1/models?x=1');
  });

  test('over HTTPS a stream is metered and the gateway sees the scheme', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const { data: stream, response } = await sdk(tls.tlsUrl, '127.0.0.3').chat.completions
      .create({
        model: 'fake-chat', messages: MESSAGES, max_tokens: 6, stream: true,
        stream_options: { include_usage: true },
      }).withResponse();
    let usage = null;
    let text = '';
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, words(6));
    assert.ok(usage);
    assert.equal(before - balance(gw.srv.dataDir, 'Acme'), expectedCost('fake-chat', usage));
    assert.equal(await loggedClient(response.headers.get('x-request-id')), '127.0.0.3');
    assert.match(response.headers.get('strict-transport-security') ?? '', /max-age=\d+/);

    // X-Forwarded-Proto https from nginx: the dashboard's cookies are Secure.
    const page = await request(tls.tlsUrl, '/login', { localAddress: '127.0.0.3' });
    assert.equal(page.status, 200);
    assert.ok(cookiesOf(page).length > 0);
    assert.ok(cookiesOf(page).every(secure), cookiesOf(page).join('\n'));
  });

  test('nginx logged no alert with either configuration', () => {
    for (const ng of [plain, tls]) {
      assert.doesNotMatch(ng.errorLog(), /\[(emerg|alert|crit)\]/, ng.errorLog());
    }
  });
});
