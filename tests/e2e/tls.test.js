// HTTPS: a throwaway self-signed certificate, the gateway serving TLS only on
// --listen, the official openai SDK trusting that certificate, HSTS, __Host-
// cookies, the plain --tls-redirect-from listener's 308s, plain HTTP sent to
// the TLS port, and clear, fast startup failures for bad TLS settings.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import https from 'node:https';
import net from 'node:net';
import OpenAI from 'openai';
import { BIN, tempDir, startServer, rawRequest } from './lib/harness.js';
import { startGateway, createKey, balance, expectedCost, micro } from './lib/gateway.js';
import { runAudit } from './lib/audit.js';
import { agentFetch } from './lib/fetch.js';

const HSTS = 'max-age=31536000';
const MESSAGES = [{ role: 'user', content: 'Say hello over TLS.' }];

let certDir, certFile, keyFile, otherKeyFile, bundleFile, ca;
let gw, tlsPort, redirectPort, key, agent;

// A port that was free a moment ago: bind port 0, read it, close.
async function freePort() {
  const s = net.createServer();
  await new Promise((r, j) => { s.once('error', j); s.listen(0, '127.0.0.1', r); });
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

// One HTTPS request to 127.0.0.1:port (servername for SNI and the name the
// certificate is checked against); resolves to { status, headers, body }.
function httpsGet(port, path, { servername, headers = {}, agent: a = agent } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port, path, method: 'GET', agent: a, servername, headers,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function sdk(opts = {}) {
  return new OpenAI({
    apiKey: key, baseURL: `https://127.0.0.1:${tlsPort}/v1`, maxRetries: 0, timeout: 20_000,
    fetch: agentFetch({ httpsAgent: agent }), ...opts,
  });
}

// A raw HTTP/1.x answer: status, lower-cased headers (last one wins), body.
function parseRaw(data) {
  const end = data.indexOf('\r\n\r\n');
  const lines = data.slice(0, end < 0 ? data.length : end).split('\r\n');
  const m = lines[0].match(/^HTTP\/1\.[01] (\d{3})/);
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: m ? Number(m[1]) : null, headers, body: end < 0 ? '' : data.slice(end + 4) };
}

// Run `tollgate serve` with bad settings: it must exit on its own, quickly.
function serveFails(args) {
  const dir = tempDir('tollgate-tls-bad-');
  try {
    const t0 = Date.now();
    const res = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir,
      '--password-hashing', 'min', ...args], { encoding: 'utf8', timeout: 15_000 });
    const ms = Date.now() - t0;
    assert.equal(res.error, undefined, `serve did not exit by itself: ${res.error}`);
    assert.equal(res.signal, null, `serve was killed by ${res.signal}`);
    assert.notEqual(res.status, 0, `serve exited 0:\n${res.stdout}${res.stderr}`);
    assert.doesNotMatch(res.stdout, /listening on/, 'it must not start serving');
    assert.ok(ms < 5000, `serve took ${ms} ms to fail`);
    return res.stderr;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

before(async () => {
  certDir = tempDir('tollgate-tls-cert-');
  certFile = join(certDir, 'cert.pem');
  keyFile = join(certDir, 'key.pem');
  otherKeyFile = join(certDir, 'other-key.pem');
  bundleFile = join(certDir, 'bundle.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt',
    'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'pipe' });
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt',
    'ec_paramgen_curve:P-256', '-out', otherKeyFile], { stdio: 'pipe' });
  ca = readFileSync(certFile);
  writeFileSync(bundleFile, Buffer.concat([ca, readFileSync(keyFile)]));
  agent = new https.Agent({ ca });

  redirectPort = await freePort();
  gw = await startGateway({
    credits: '100',
    serverArgs: ['--tls-cert', certFile, '--tls-key', keyFile,
      '--tls-redirect-from', `127.0.0.1:${redirectPort}`],
  });
  tlsPort = gw.srv.port;
  assert.notEqual(tlsPort, redirectPort, 'the startup line names the HTTPS port');
  key = createKey(gw.srv.dataDir, 'Acme', 'tls');
});

after(async () => {
  if (gw) {
    runAudit(gw.srv.dataDir);
    await gw.stop();
  }
  agent?.destroy();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

describe('HTTPS gateway through the openai SDK', () => {
  test('a non-streaming call over HTTPS is debited exactly', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const { data, response } = await sdk().chat.completions
      .create({ model: 'fake-big', messages: MESSAGES, max_tokens: 40 })
      .withResponse();
    assert.equal(data.model, 'fake-big');
    assert.ok(data.choices[0].message.content.length > 0);
    const cost = expectedCost('fake-big', data.usage);
    assert.ok(cost > 0n);
    assert.equal(micro(data.usage.cost), cost);
    assert.equal(micro(response.headers.get('x-credits-charged')), cost);
    assert.equal(response.headers.get('strict-transport-security'), HSTS);
    const after = balance(gw.srv.dataDir, 'Acme');
    assert.equal(before - after, cost);
    assert.equal(micro(response.headers.get('x-credits-remaining')), after);
  });

  test('a streaming call over HTTPS: content assembled, usage reported and billed', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const stream = await sdk().chat.completions.create({
      model: 'fake-chat', messages: MESSAGES, max_tokens: 12, stream: true,
      stream_options: { include_usage: true }, x_fake: { chunks: 5 },
    });
    let text = '';
    let usage = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      assert.equal(chunk.model, 'fake-chat');
      if (chunk.choices[0]?.delta?.content) text += chunk.choices[0].delta.content;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.ok(chunks >= 5, `only ${chunks} chunks`);
    assert.ok(text.length > 0, 'the streamed content is assembled');
    assert.ok(usage, 'the usage chunk reaches the client');
    const cost = expectedCost('fake-chat', usage);
    assert.ok(cost > 0n);
    assert.equal(micro(usage.cost), cost);
    assert.equal(before - balance(gw.srv.dataDir, 'Acme'), cost);
  });

  test('a client that does not trust the certificate cannot connect, and pays nothing',
    async () => {
      const before = balance(gw.srv.dataDir, 'Acme');
      const untrusting = new https.Agent();
      try {
        await assert.rejects(
          sdk({ fetch: agentFetch({ httpsAgent: untrusting }) }).chat.completions.create({
            model: 'fake-chat', messages: MESSAGES, max_tokens: 5,
          }),
          (e) => e instanceof OpenAI.APIConnectionError,
        );
        await assert.rejects(httpsGet(tlsPort, '/health', { agent: untrusting }),
          (e) => /self[- ]signed|unable to verify/i.test(`${e.code} ${e.message}`));
      } finally {
        untrusting.destroy();
      }
      assert.equal(balance(gw.srv.dataDir, 'Acme'), before);
    });
});

describe('HTTPS answers', () => {
  test('/health and /login carry Strict-Transport-Security', async () => {
    for (const path of ['/health', '/login']) {
      const res = await httpsGet(tlsPort, path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers['strict-transport-security'], HSTS, path);
    }
  });

  test('the certificate is checked by name too (DNS:localhost)', async () => {
    const res = await httpsGet(tlsPort, '/health',
      { servername: 'localhost', headers: { Host: `localhost:${tlsPort}` } });
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).status, 'ok');
  });

  test('dashboard cookies are __Host- prefixed and Secure, and sign-in works', async () => {
    const login = await httpsGet(tlsPort, '/login');
    const cookies = login.headers['set-cookie'] ?? [];
    assert.ok(cookies.length > 0, 'the login page sets a cookie');
    for (const c of cookies) {
      assert.match(c, /^__Host-[A-Za-z0-9_]+=/, c);
      assert.match(c, /;\s*Secure(;|$)/i, c);
      assert.match(c, /;\s*Path=\/(;|$)/, c);
      assert.doesNotMatch(c, /;\s*Domain=/i, c);
    }
    // Sign in through the form with those cookies: a session cookie comes
    // back the same way and opens a dashboard page.
    const csrf = login.body.match(/name="csrf" value="([^"]+)"/);
    assert.ok(csrf, 'the login form has a csrf field');
    const jar = cookies.map((c) => c.split(';')[0]).join('; ');
    const form = new URLSearchParams({
      csrf: csrf[1], email: 'owner@example.com', password: 'owner-password-1',
    }).toString();
    const signed = await new Promise((resolve, reject) => {
      const req = https.request({
        host: '127.0.0.1', port: tlsPort, path: '/login', method: 'POST', agent,
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': form.length,
          Cookie: jar, Origin: `https://127.0.0.1:${tlsPort}`,
        },
      }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers }));
      });
      req.on('error', reject);
      req.end(form);
    });
    assert.equal(signed.status, 303);
    const session = signed.headers['set-cookie'] ?? [];
    assert.ok(session.length > 0, 'sign-in sets a session cookie');
    for (const c of session) {
      assert.match(c, /^__Host-[A-Za-z0-9_]+=/, c);
      assert.match(c, /;\s*Secure(;|$)/i, c);
    }
    const live = session.filter((c) => !/Max-Age=0/i.test(c)).map((c) => c.split(';')[0]);
    const page = await httpsGet(tlsPort, '/keys', { headers: { Cookie: live.join('; ') } });
    assert.equal(page.status, 200, 'the __Host- session cookie signs the request in');
    assert.equal(page.headers['strict-transport-security'], HSTS);
  });

  test('plain HTTP sent to the HTTPS port is not served and does not hurt the server',
    async () => {
      let data = '';
      try {
        ({ data } = await rawRequest(tlsPort,
          `GET /health HTTP/1.1\r\nHost: 127.0.0.1:${tlsPort}\r\n\r\n`, { timeoutMs: 5000 }));
      } catch (e) {
        assert.match(e.code ?? '', /^(ECONNRESET|EPIPE)$/, `unexpected error ${e}`);
      }
      assert.doesNotMatch(data, /^HTTP\/1\.[01] 2/, 'no plain-text answer from the TLS port');
      assert.doesNotMatch(data, /"status":"ok"/);
      const res = await httpsGet(tlsPort, '/health');
      assert.equal(res.status, 200);
      assert.equal(gw.srv.proc.exitCode, null, 'the server is still running');
      assert.equal(gw.srv.proc.signalCode, null);
    });
});

describe('the plain redirect listener', () => {
  test('GET /login?next=%2Fkeys gets a 308 to the same path and query over HTTPS', async () => {
    const { data } = await rawRequest(redirectPort,
      `GET /login?next=%2Fkeys HTTP/1.1\r\nHost: 127.0.0.1:${redirectPort}\r\n\r\n`);
    const res = parseRaw(data);
    assert.equal(res.status, 308, data);
    assert.equal(res.headers.location, `https://127.0.0.1:${tlsPort}/login?next=%2Fkeys`);
    assert.equal(res.headers['strict-transport-security'], undefined,
      'no HSTS over plain HTTP');
    assert.doesNotMatch(data, /set-cookie/i, 'no cookie over plain HTTP');
    // Following it lands on the sign-in page.
    const u = new URL(res.headers.location);
    const page = await httpsGet(Number(u.port), u.pathname + u.search);
    assert.equal(page.status, 200);
    assert.match(page.body, /<form/);
  });

  test('the redirect keeps the host name the client asked for', async () => {
    const { data } = await rawRequest(redirectPort,
      `GET /login?next=%2Fkeys HTTP/1.1\r\nHost: localhost:${redirectPort}\r\n\r\n`);
    const res = parseRaw(data);
    assert.equal(res.status, 308, data);
    assert.equal(res.headers.location, `https://localhost:${tlsPort}/login?next=%2Fkeys`);
    assert.equal(res.headers['strict-transport-security'], undefined);
    const u = new URL(res.headers.location);
    const page = await httpsGet(Number(u.port), u.pathname + u.search,
      { servername: 'localhost', headers: { Host: u.host } });
    assert.equal(page.status, 200);
  });

  test('without a Host header it redirects to the listen address', async () => {
    const { data } = await rawRequest(redirectPort, 'GET /health HTTP/1.0\r\n\r\n');
    const res = parseRaw(data);
    assert.equal(res.status, 308, data);
    assert.equal(res.headers.location, `https://127.0.0.1:${tlsPort}/health`);
  });

  test('an API call over plain HTTP is redirected, not served or billed', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const body = JSON.stringify({ model: 'fake-chat', messages: MESSAGES, max_tokens: 5 });
    const { data } = await rawRequest(redirectPort,
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${redirectPort}\r\n` +
      `Authorization: Bearer ${key}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    const res = parseRaw(data);
    assert.equal(res.status, 308, data);
    assert.equal(res.headers.location, `https://127.0.0.1:${tlsPort}/v1/chat/completions`);
    assert.doesNotMatch(res.body, /chat\.completion/);
    assert.equal(balance(gw.srv.dataDir, 'Acme'), before);
  });
});

describe('the redirect with an https:// public_url', () => {
  test('goes to public_url whatever Host says', async () => {
    const from = await freePort();
    const srv = await startServer({ args: ['--tls-cert', certFile, '--tls-key', keyFile,
      '--tls-redirect-from', `127.0.0.1:${from}`, '--public-url', 'https://gw.example.com/'] });
    try {
      const { data } = await rawRequest(from,
        `GET /login?next=%2Fkeys HTTP/1.1\r\nHost: evil.example:${from}\r\n\r\n`);
      const res = parseRaw(data);
      assert.equal(res.status, 308, data);
      assert.equal(res.headers.location, 'https://gw.example.com/login?next=%2Fkeys');
    } finally {
      await srv.stop();
      srv.cleanup();
    }
  });
});

describe('HSTS off, key inside the certificate file', () => {
  test('--hsts-max-age-s 0 sends no Strict-Transport-Security', async () => {
    const srv = await startServer({ args: ['--tls-cert', bundleFile, '--hsts-max-age-s', '0'] });
    try {
      for (const path of ['/health', '/login']) {
        const res = await httpsGet(srv.port, path);
        assert.equal(res.status, 200, path);
        assert.equal(res.headers['strict-transport-security'], undefined, path);
      }
      const login = await httpsGet(srv.port, '/login');
      assert.match((login.headers['set-cookie'] ?? [])[0] ?? '', /^__Host-.*;\s*Secure/i,
        'cookies stay __Host- and Secure without HSTS');
    } finally {
      await srv.stop();
      srv.cleanup();
    }
  });
});

describe('startup failures are clear and fast', () => {
  test('a key that does not match the certificate', () => {
    const err = serveFails(['--tls-cert', certFile, '--tls-key', otherKeyFile]);
    assert.match(err, /tls_key/);
    assert.match(err, /does not match/);
  });

  test('a certificate file whose own key belongs to another certificate', () => {
    const wrong = join(certDir, 'wrong-bundle.pem');
    writeFileSync(wrong, Buffer.concat([ca, readFileSync(otherKeyFile)]));
    const err = serveFails(['--tls-cert', wrong]);
    assert.match(err, /tls_cert/);
    assert.match(err, /does not match/);
  });

  test('a missing certificate file', () => {
    const err = serveFails(['--tls-cert', join(certDir, 'missing.pem'), '--tls-key', keyFile]);
    assert.match(err, /tls_cert/);
    assert.match(err, /missing\.pem/);
  });

  test('a certificate file without a key, and no --tls-key', () => {
    const err = serveFails(['--tls-cert', certFile]);
    assert.match(err, /tls_cert/);
    assert.match(err, /no private key/);
  });

  test('--tls-redirect-from without --tls-cert', () => {
    const port = redirectPort + 1;
    const err = serveFails(['--tls-redirect-from', `127.0.0.1:${port}`]);
    assert.match(err, /tls_redirect_from needs tls_cert/);
  });

  test('--tls-key without --tls-cert', () => {
    const err = serveFails(['--tls-key', keyFile]);
    assert.match(err, /tls_key needs tls_cert/);
  });
});
