// Providers and pricing in a real browser: an admin adds providers with API
// keys that are never shown again, tests connections against real loopback
// servers, edits prices (audited, validated), members only read pricing, and
// `tollgate models import` applies a file all-or-nothing.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startServer, startFakeUpstream, cli, tempDir } from './lib/harness.js';
import { launch, screenshot, submitForm } from './lib/browser.js';
import { addUser, addOrg, addMember, Client } from './lib/session.js';
import { runAudit } from './lib/audit.js';

const ADMIN = { email: 'admin@example.com', name: 'Ada Admin', password: 'admin-password-123' };
const MEMBER = { email: 'mel@example.com', name: 'Mel Member', password: 'member-password-456' };
const KEY = `sk-e2e-${randomBytes(12).toString('hex')}`;
const KEY2 = `sk-e2e-${randomBytes(12).toString('hex')}`;

let srv, fake, keyed, browser, adminCtx, page, closedPort;

// A loopback upstream that lists models only for `Bearer ${KEY2}`, so the
// tests see that the stored key is what goes upstream. Its 401 body carries
// markup, which must come out escaped.
function startKeyedUpstream() {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/v1/models') { res.writeHead(404); res.end(); return; }
    if (req.headers.authorization !== `Bearer ${KEY2}`) {
      res.writeHead(401, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { message: '<script>alert(1)</script> Incorrect API key provided.', type: 'invalid_request_error' } }));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ object: 'list', data: [{ id: 'keyed-large' }, { id: 'keyed-small' }] }));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    server, url: `http://127.0.0.1:${server.address().port}`,
  })));
}

// A port with nothing listening on it.
function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function signIn(ctx, who) {
  const p = await ctx.newPage();
  await p.goto(`${srv.url}/login`);
  await submitForm(p, 'form[action="/login"]', { email: who.email, password: who.password });
  return p;
}

function providerRow(name) {
  return page.locator('table.data tbody tr').filter({ has: page.locator(`td:first-child a:text-is("${name}")`) });
}

async function testConnection(name) {
  await page.goto(`${srv.url}/providers`);
  await Promise.all([page.waitForLoadState('load'), providerRow(name).locator('form[action$="/test"] button').click()]);
  await page.waitForLoadState('load');
}

// Every byte the database keeps on disk (main file and WAL).
function dbBytes() {
  return Buffer.concat(readdirSync(srv.dataDir).filter((f) => f.startsWith('tollgate.db'))
    .map((f) => readFileSync(join(srv.dataDir, f))));
}

before(async () => {
  const dir = tempDir();
  addUser(dir, { ...ADMIN, admin: true });
  addUser(dir, MEMBER);
  addOrg(dir, 'Acme');
  addMember(dir, 'Acme', MEMBER.email, 'member');
  srv = await startServer({ dataDir: dir });
  fake = await startFakeUpstream();
  keyed = await startKeyedUpstream();
  closedPort = await freePort();
  browser = await launch();
  adminCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await signIn(adminCtx, ADMIN);
});

after(async () => {
  await browser?.close();
  await fake?.stop();
  keyed?.server.close();
  runAudit(srv.dataDir);
  assert.equal(await srv.stop(), 0);
  assert.ok(!srv.stdout().includes(KEY) && !srv.stderr().includes(KEY), 'the key never reaches the log');
  srv.cleanup();
});

describe('providers', () => {
  test('the admin adds a provider with an API key that is never shown again', async () => {
    await page.goto(`${srv.url}/providers`);
    assert.match(await page.textContent('table.data'), /echo/);
    await submitForm(page, 'form[action="/providers"]', {
      name: 'fakeup', kind: 'openai', base_url: `${fake.url}/v1/`, api_key: KEY, timeout_s: '30', enabled: true,
    });
    assert.equal(new URL(page.url()).pathname, '/providers');
    assert.match(await page.textContent('.flash-ok'), /Added provider fakeup/);
    const row = providerRow('fakeup');
    const text = await row.textContent();
    assert.match(text, /OpenAI-compatible/);
    assert.ok(text.includes(`${fake.url}/v1`) && !text.includes(`${fake.url}/v1/`), 'trailing slash stripped');
    assert.match(text, /set/);
    assert.match(text, /30 s/);
    assert.match(text, /enabled/);
    assert.ok(!(await page.content()).includes(KEY), 'key not in the list page');

    // Nor on the edit page, where the key field is an empty password input.
    await row.locator('a', { hasText: 'Edit' }).click();
    await page.waitForLoadState('load');
    assert.match(await page.textContent('h1'), /Edit provider fakeup/);
    const html = await page.content();
    assert.ok(!html.includes(KEY), 'key not in the edit page');
    assert.equal(await page.locator('input[name="api_key"]').getAttribute('type'), 'password');
    assert.equal(await page.locator('input[name="api_key"]').inputValue(), '');
    assert.equal(await page.locator('input[name="clear_key"]').count(), 1);
    await screenshot(page, 'catalog-02-provider-edit');

    // At rest it is sealed: the database files never contain it.
    assert.ok(!dbBytes().includes(Buffer.from(KEY)), 'key not stored in plaintext');
  });

  test('"test connection" lists the models of a real loopback upstream', async () => {
    await testConnection('fakeup');
    const flash = await page.textContent('.flash-ok');
    assert.match(flash, /^OK: HTTP 200, 4 models \(gpt-4o, gpt-4o-mini, text-embedding-3-small, fake-model\)\.$/);
    await testConnection('echo');
    assert.match(await page.textContent('.flash-ok'), /OK: built-in echo provider, answers locally with 3 models \(echo-embed, echo-large, echo-small\)/);
  });

  test('the stored key is what goes upstream; empty keeps it, the checkbox clears it', async () => {
    await page.goto(`${srv.url}/providers`);
    await submitForm(page, 'form[action="/providers"]', {
      name: 'keyed', kind: 'openai', base_url: `${keyed.url}/v1`, api_key: KEY2, timeout_s: '60',
    });
    await testConnection('keyed');
    assert.match(await page.textContent('.flash-ok'), /OK: HTTP 200, 2 models \(keyed-large, keyed-small\)/);

    // Save again with the key field empty: the key is kept.
    await providerRow('keyed').locator('a', { hasText: 'Edit' }).click();
    await page.waitForLoadState('load');
    await submitForm(page, 'form[action="/providers"]', { timeout_s: '45', api_key: '' });
    assert.match(await page.textContent('.flash-ok'), /Saved provider keyed/);
    assert.match(await providerRow('keyed').textContent(), /45 s/);
    await testConnection('keyed');
    assert.match(await page.textContent('.flash-ok'), /OK: HTTP 200, 2 models/);

    // Clear it: the upstream refuses, and we see its status and body, escaped.
    await providerRow('keyed').locator('a', { hasText: 'Edit' }).click();
    await page.waitForLoadState('load');
    await submitForm(page, 'form[action="/providers"]', { clear_key: true });
    assert.match(await providerRow('keyed').textContent(), /not set/);
    await testConnection('keyed');
    const flash = await page.textContent('.flash-error');
    assert.match(flash, /HTTP 401 from GET http:\/\/127\.0\.0\.1:\d+\/v1\/models: \{"error":\{"message":"<script>alert\(1\)<\/script> Incorrect API key provided\."/);
    assert.equal(await page.locator('script:not([src])').count(), 0, 'upstream markup is escaped');
    await screenshot(page, 'catalog-03-provider-test-error');
  });

  test('"test connection" against a closed port reports the connection error', async () => {
    await page.goto(`${srv.url}/providers`);
    await submitForm(page, 'form[action="/providers"]', {
      name: 'down', kind: 'openai', base_url: `http://127.0.0.1:${closedPort}/v1`, timeout_s: '5',
    });
    await testConnection('down');
    assert.match(await page.textContent('.flash-error'),
      new RegExp(`Couldn't connect to server.*\\(GET http://127\\.0\\.0\\.1:${closedPort}/v1/models\\)`));
    // Back to the list with the "OK" flash of the fake upstream for the screenshot.
    await testConnection('fakeup');
    await screenshot(page, 'catalog-01-providers');
  });

  test('invalid provider settings re-render with a message and keep the values', async () => {
    await page.goto(`${srv.url}/providers`);
    await submitForm(page, 'form[action="/providers"]', {
      name: 'bad-url', kind: 'openai', base_url: 'ftp://example.com/v1', api_key: 'sk-never-shown', timeout_s: '60',
    });
    assert.match(await page.textContent('.flash-error'), /Base URL must start with http:\/\/ or https:\/\//);
    assert.match(await page.locator('input[name="base_url"] ~ .error').textContent(), /must start with http:\/\//);
    assert.equal(await page.locator('input[name="base_url"]').inputValue(), 'ftp://example.com/v1');
    assert.equal(await page.locator('input[name="name"]').inputValue(), 'bad-url');
    assert.ok(!(await page.content()).includes('sk-never-shown'), 'a rejected key is not echoed back');
    for (const [fields, msg] of [
      [{ name: 'has space', base_url: 'http://x/v1', timeout_s: '60' }, /Provider name must be 1 to 64 characters/],
      [{ name: 'slow', base_url: 'http://x/v1', timeout_s: '0' }, /Timeout must be between 1 and 3600 seconds/],
      [{ name: 'nourl', base_url: '', timeout_s: '60' }, /Base URL is required/],
    ]) {
      await page.goto(`${srv.url}/providers`);
      await submitForm(page, 'form[action="/providers"]', { kind: 'openai', ...fields });
      assert.match(await page.textContent('.flash-error'), msg);
    }
    await page.goto(`${srv.url}/providers`);
    assert.doesNotMatch(await page.textContent('table.data'), /bad-url|has space|slow|nourl/);
  });
});

describe('pricing', () => {
  test('the table shows every model with prices per 1M tokens', async () => {
    await page.goto(`${srv.url}/pricing`);
    assert.match(await page.textContent('.panel-head'), /credits per 1M tokens/);
    const row = page.locator('table.data tbody tr', { hasText: 'echo-small' });
    const cells = await row.locator('td').allTextContents();
    assert.deepEqual(cells.slice(0, 9).map((c) => c.trim()),
      ['echo-small', 'echo · echo-small', 'chat', '0.15', '0.075', '0.60', '16,384', '128,000', 'enabled']);
  });

  test('the admin edits a price: the table shows it and the audit log has old -> new', async () => {
    await page.goto(`${srv.url}/pricing`);
    const row = page.locator('table.data tbody tr', { hasText: 'echo-large' });
    await row.locator('a', { hasText: 'Edit' }).click();
    await page.waitForLoadState('load');
    assert.match(await page.textContent('h1'), /Edit model echo-large/);
    assert.equal(await page.locator('input[name="output"]').inputValue(), '10.00');
    await submitForm(page, 'form[action="/pricing"]', { input: '3', output: '12.5' });
    assert.equal(new URL(page.url()).pathname, '/pricing');
    assert.match(await page.textContent('.flash-ok'), /Saved echo-large/);
    const cells = await page.locator('table.data tbody tr', { hasText: 'echo-large' }).locator('td').allTextContents();
    assert.deepEqual(cells.slice(3, 6).map((c) => c.trim()), ['3.00', '1.25', '12.50']);
    await screenshot(page, 'catalog-04-pricing-admin');

    await page.goto(`${srv.url}/audit`);
    const entry = page.locator('table.data tbody tr', { hasText: 'model.price' }).first();
    assert.match(await entry.textContent(), /echo-large/);
    assert.match(await entry.textContent(), /input 2\.50 -> 3\.00, cached input 1\.25 -> 1\.25, output 10\.00 -> 12\.50/);
  });

  test('a bad price re-renders the form with the error and the values kept', async () => {
    await page.goto(`${srv.url}/pricing`);
    await page.locator('table.data tbody tr', { hasText: 'echo-small' }).locator('a', { hasText: 'Edit' }).click();
    await page.waitForLoadState('load');
    const editUrl = page.url();
    for (const [value, msg] of [
      ['1.2345678', 'Input price: Too many decimal places (at most 6).'],
      ['abc', 'Input price: Amount must be a plain number like 12.50'],
      ['-1', 'Input price: Prices cannot be negative.'],
    ]) {
      const why = msg.slice('Input price: '.length);
      await page.goto(editUrl);
      const res = page.waitForResponse((r) => r.request().method() === 'POST');
      await submitForm(page, 'form[action="/pricing"]', { input: value, output: '0.70' });
      assert.equal((await res).status(), 422);
      assert.ok((await page.textContent('.flash-error')).includes(msg), `message for ${value}`);
      assert.equal(await page.locator('input[name="input"]').inputValue(), value);
      assert.equal(await page.locator('input[name="input"]').getAttribute('aria-invalid'), 'true');
      assert.ok((await page.locator('input[name="input"] ~ .error').textContent()).startsWith(why), 'marked at the field');
      assert.equal(await page.locator('input[name="output"]').inputValue(), '0.70');
      assert.match(await page.textContent('h1'), /Edit model echo-small/);
      if (value === '1.2345678') await screenshot(page, 'catalog-05-pricing-error');
    }
    await page.goto(`${srv.url}/pricing`);
    const cells = await page.locator('table.data tbody tr', { hasText: 'echo-small' }).locator('td').allTextContents();
    assert.deepEqual(cells.slice(3, 6).map((c) => c.trim()), ['0.15', '0.075', '0.60'], 'nothing saved');
  });

  test('the admin adds a model on a new provider', async () => {
    await page.goto(`${srv.url}/pricing`);
    await submitForm(page, 'form[action="/pricing"]', {
      name: 'no-provider', upstream_model: 'x', input: '1', cached_input: '1', output: '1',
    });
    assert.match(await page.textContent('.flash-error'), /Choose a provider\./);
    assert.equal(await page.locator('select[name="provider_id"]').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.locator('input[name="name"]').inputValue(), 'no-provider');
    await page.goto(`${srv.url}/pricing`);
    await page.locator('select[name="provider_id"]').selectOption({ label: 'fakeup' });
    await submitForm(page, 'form[action="/pricing"]', {
      name: 'fake/gpt-4o', upstream_model: 'gpt-4o', kind: 'chat', input: '2.50', cached_input: '1.25',
      output: '10', max_output_tokens: '16384', context_window: '128000', enabled: true,
    });
    assert.match(await page.textContent('.flash-ok'), /Added fake\/gpt-4o/);
    const cells = await page.locator('table.data tbody tr', { hasText: 'fake/gpt-4o' }).locator('td').allTextContents();
    assert.deepEqual(cells.slice(0, 6).map((c) => c.trim()), ['fake/gpt-4o', 'fakeup · gpt-4o', 'chat', '2.50', '1.25', '10.00']);
    await page.goto(`${srv.url}/audit`);
    assert.match(await page.locator('table.data tbody tr', { hasText: 'model.create' }).first().textContent(),
      /fake\/gpt-4o.*provider fakeup, input 2\.50, cached input 1\.25, output 10\.00/);
    assert.match(await page.textContent('table.data'), /provider\.create/);
    assert.match(await page.textContent('table.data'), /provider\.update/);
  });

  test('a member can read pricing but not change it, and has no providers page', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const p = await signIn(ctx, MEMBER);
    let res = await p.goto(`${srv.url}/pricing`);
    assert.equal(res.status(), 200);
    assert.match(await p.textContent('table.data'), /echo-small/);
    assert.equal(await p.locator('form[action="/pricing"]').count(), 0);
    assert.equal(await p.locator('a[href^="/pricing/"]').count(), 0);
    assert.doesNotMatch(await p.textContent('.nav'), /Providers/);
    await screenshot(p, 'catalog-06-pricing-member');
    for (const path of ['/providers', '/providers/1', '/pricing/1']) {
      res = await p.goto(`${srv.url}${path}`);
      assert.equal(res.status(), 404, path);
    }
    await ctx.close();

    // Direct POSTs with a valid CSRF token are refused too.
    const c = await new Client(srv.url).login(MEMBER.email, MEMBER.password);
    res = await c.post('/providers', { name: 'evil', kind: 'openai', base_url: 'http://evil/v1', timeout_s: '5' }, '/pricing');
    assert.equal(res.status, 404);
    res = await c.post('/pricing', { name: 'echo-small', provider_id: '1', upstream_model: 'x', kind: 'chat', input: '0', cached_input: '0', output: '0', max_output_tokens: '1', context_window: '1' }, '/pricing');
    assert.equal(res.status, 404);
    res = await c.post('/providers/1/test', {}, '/pricing');
    assert.equal(res.status, 404);
  });

  test('pricing fits a phone screen', async () => {
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const p = await signIn(ctx, ADMIN);
    for (const path of ['/pricing', '/providers']) {
      await p.goto(`${srv.url}${path}`);
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 1, `${path}: no horizontal overflow (got ${overflow}px)`);
    }
    await screenshot(p, 'catalog-07-phone-providers');
    await ctx.close();
  });
});

describe('tollgate models import', () => {
  const example = (overrides = {}) => ({
    providers: [{ name: 'p1', kind: 'openai', base_url: `${fake.url}/v1`, api_key: 'sk-x-import', timeout_s: 60 }],
    models: [{
      name: 'gpt-4o-mini', provider: 'p1', upstream_model: 'gpt-4o-mini', input_per_mtok: '0.15',
      cached_input_per_mtok: '0.075', output_per_mtok: '0.60', max_output_tokens: 16384,
      context_window: 128000, enabled: true, kind: 'chat', ...overrides,
    }],
  });
  const write = (obj) => {
    const f = join(tempDir('tollgate-import-'), 'models.json');
    writeFileSync(f, typeof obj === 'string' ? obj : JSON.stringify(obj));
    return f;
  };

  test('the example file imports providers then models', async () => {
    const r = cli(srv.dataDir, ['models', 'import', write(example())]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /imported 1 providers and 1 models/);
    await page.goto(`${srv.url}/pricing`);
    const cells = await page.locator('table.data tbody tr', { hasText: 'gpt-4o-mini' }).locator('td').allTextContents();
    assert.deepEqual(cells.slice(0, 6).map((c) => c.trim()), ['gpt-4o-mini', 'p1 · gpt-4o-mini', 'chat', '0.15', '0.075', '0.60']);
    await testConnection('p1');
    assert.match(await page.textContent('.flash-ok'), /OK: HTTP 200, 4 models/);
    assert.ok(!dbBytes().includes(Buffer.from('sk-x-import')), 'imported key sealed');
    await page.goto(`${srv.url}/audit`);
    assert.match(await page.textContent('table.data'), /cli/);
  });

  test('a file with a bad price imports nothing and names the item', async () => {
    const bad = example();
    bad.providers.push({ name: 'p-new', kind: 'openai', base_url: 'http://127.0.0.1:1/v1' });
    bad.models[0].input_per_mtok = '0.20';
    bad.models.push({ ...bad.models[0], name: 'second', output_per_mtok: '1.2345678' });
    let r = cli(srv.dataDir, ['models', 'import', write(bad)]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /models\[1\]\.output_per_mtok: Too many decimal places \(at most 6\)\./);
    assert.match(r.stderr, /nothing was imported/);

    // Prices as JSON numbers are refused with a hint to quote them.
    r = cli(srv.dataDir, ['models', 'import', write(example({ output_per_mtok: 0.6 }))]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /models\[0\]\.output_per_mtok: write prices as quoted decimal strings/);
    r = cli(srv.dataDir, ['models', 'import', write('{"providers": [')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /not valid JSON/);

    await page.goto(`${srv.url}/providers`);
    assert.doesNotMatch(await page.textContent('table.data'), /p-new/);
    await page.goto(`${srv.url}/pricing`);
    const text = await page.textContent('table.data');
    assert.doesNotMatch(text, /second/);
    const cells = await page.locator('table.data tbody tr', { hasText: 'gpt-4o-mini' }).locator('td').allTextContents();
    assert.equal(cells[3].trim(), '0.15', 'the first model was rolled back too');
  });
});
