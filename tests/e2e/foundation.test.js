// Foundation: health, security headers, error envelopes, body limits,
// static files and the single-server lock, against the real binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, cli, tempDir, BIN } from './lib/harness.js';
import { spawnSync } from 'node:child_process';
import { runAudit } from './lib/audit.js';

let srv;
before(async () => { srv = await startServer(); });
after(async () => {
  runAudit(srv.dataDir);
  const code = await srv.stop();
  assert.equal(code, 0, 'server exits 0 on SIGTERM');
  assert.match(srv.stderr(), /stopped cleanly/);
  srv.cleanup();
});

test('GET /health reports ok, version and db', async () => {
  const res = await fetch(`${srv.url}/health`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /application\/json/);
  const body = await res.json();
  assert.equal(body.status, 'ok');
  assert.equal(body.db, 'ok');
  assert.match(body.version, /^\d+\.\d+\.\d+$/);
});

test('security headers on every response, no server banner', async () => {
  for (const path of ['/health', '/no-such-page', '/v1/no-such-route', '/static/app.css']) {
    const res = await fetch(`${srv.url}${path}`);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
    assert.match(res.headers.get('content-security-policy'), /default-src 'self'/, path);
    assert.match(res.headers.get('content-security-policy'), /frame-ancestors 'none'/, path);
    assert.ok(res.headers.get('referrer-policy'), path);
    assert.equal(res.headers.get('server'), null, `${path} has no Server header`);
    assert.ok(res.headers.get('x-request-id'), `${path} has a request id`);
  }
});

test('a well-formed X-Request-Id is echoed, a malformed one replaced', async () => {
  let res = await fetch(`${srv.url}/health`, { headers: { 'X-Request-Id': 'abc-123_x.y' } });
  assert.equal(res.headers.get('x-request-id'), 'abc-123_x.y');
  res = await fetch(`${srv.url}/health`, { headers: { 'X-Request-Id': 'bad id<script>' } });
  assert.match(res.headers.get('x-request-id'), /^req_[0-9a-f]{28}$/);
});

test('ids the server makes start with the time in milliseconds, so they sort by time', async () => {
  const ids = [];
  for (let i = 0; i < 3; i++) {
    const before = Date.now();
    const res = await fetch(`${srv.url}/health`);
    const after = Date.now();
    const id = res.headers.get('x-request-id');
    assert.match(id, /^req_[0-9a-f]{28}$/);
    const ms = parseInt(id.slice(4, 16), 16);
    assert.ok(ms >= before - 5 && ms <= after + 5, `${id}: ${ms} within ${before}..${after}`);
    ids.push(id);
    await new Promise((r) => setTimeout(r, 3));
  }
  assert.deepEqual([...ids].sort(), ids, 'later ids sort after earlier ones');
  assert.equal(new Set(ids.map((id) => id.slice(16))).size, 3, 'the random parts differ');
});

test('404 is a JSON envelope under /v1 and an HTML page elsewhere', async () => {
  let res = await fetch(`${srv.url}/v1/does-not-exist`);
  assert.equal(res.status, 404);
  assert.match(res.headers.get('content-type'), /application\/json/);
  const j = await res.json();
  assert.equal(j.error.type, 'invalid_request_error');
  assert.equal(j.error.code, 'not_found');
  assert.ok(j.error.message.length > 10);
  assert.ok('param' in j.error);

  res = await fetch(`${srv.url}/does-not-exist`);
  assert.equal(res.status, 404);
  assert.match(res.headers.get('content-type'), /text\/html/);
  assert.match(await res.text(), /<h1>[^<]*(404|Not Found)/);
});

test('405 with Allow for a known path and wrong method', async () => {
  const res = await fetch(`${srv.url}/health`, { method: 'DELETE' });
  assert.equal(res.status, 405);
  assert.match(res.headers.get('allow'), /GET/);
  assert.equal((await res.json()).error.code, 'method_not_allowed');
});

test('a 2 MB body gets 413 in the right envelope, and the server keeps serving', async () => {
  const big = Buffer.alloc(2 * 1024 * 1024, 'a');
  let res = await fetch(`${srv.url}/v1/chat/completions`, {
    method: 'POST', body: big, headers: { 'Content-Type': 'application/json' },
  });
  assert.equal(res.status, 413);
  assert.equal((await res.json()).error.code, 'request_too_large');

  res = await fetch(`${srv.url}/login`, {
    method: 'POST', body: big, headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  });
  assert.equal(res.status, 413);
  assert.match(res.headers.get('content-type'), /text\/html/);

  res = await fetch(`${srv.url}/health`);
  assert.equal(res.status, 200);
});

test('a form posted with the wrong content type gets an HTML 415', async () => {
  const res = await fetch(`${srv.url}/login`, {
    method: 'POST', body: '{"email":"a"}', headers: { 'Content-Type': 'application/json' },
  });
  assert.equal(res.status, 415);
  assert.match(res.headers.get('content-type'), /text\/html/);
  assert.match(await res.text(), /application\/x-www-form-urlencoded/);
});

test('static files carry an ETag and revalidate with 304', async () => {
  const res = await fetch(`${srv.url}/static/app.css`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/css/);
  const etag = res.headers.get('etag');
  assert.ok(etag);
  assert.ok((await res.text()).length > 100);
  const again = await fetch(`${srv.url}/static/app.css`, { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);
});

test('static paths cannot escape the static directory', async () => {
  for (const p of ['/static/../README.md', '/static/%2e%2e/README.md', '/static/.hidden',
    '/static/..%2fMakefile', '/static/sub/../../Makefile']) {
    const res = await fetch(`${srv.url}${p}`);
    assert.notEqual(res.status, 200, p);
    const body = await res.text();
    assert.doesNotMatch(body, /tollgate - thin wrapper|Quick start/, p);
  }
});

test('a second server on the same data directory is refused', () => {
  const res = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', srv.dataDir], {
    encoding: 'utf8', timeout: 10_000,
  });
  assert.notEqual(res.status, 0);
  assert.match(res.stderr, /already using the data directory/);
  assert.match(res.stderr, new RegExp(`pid ${srv.proc.pid}`));
});

test('CLI: --help, version, migrate, unknown command', () => {
  let r = spawnSync(BIN, ['--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.match(r.stdout, /serve/);
  assert.match(r.stdout, /migrate/);
  r = spawnSync(BIN, ['serve', '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.match(r.stdout, /--listen/);
  assert.match(r.stdout, /--data-dir/);
  r = spawnSync(BIN, ['version'], { encoding: 'utf8' });
  assert.match(r.stdout, /^tollgate \d+\.\d+\.\d+/);
  r = spawnSync(BIN, ['frobnicate'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command 'frobnicate'/);
  const dir = tempDir();
  r = cli(dir, ['migrate']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /schema at version (\d+) \(this binary: \1\)/);
});

test('bad settings fail fast with a clear message', () => {
  let r = spawnSync(BIN, ['serve', '--threads', 'lots'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /threads: expected a whole number/);
  r = spawnSync(BIN, ['serve', '--listen', 'nope'], { encoding: 'utf8' });
  assert.match(r.stderr, /listen: expected ADDR:PORT/);
  r = spawnSync(BIN, ['serve'], { encoding: 'utf8', env: { ...process.env, TOLLGATE_SYNCHRONOUS: 'sometimes' } });
  assert.match(r.stderr, /TOLLGATE_SYNCHRONOUS: |synchronous: expected normal or full/);
});
