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
import { grant, createKey, sql } from './lib/gateway.js';
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
    assert.deepEqual(cells.slice(0, 11).map((c) => c.trim()),
      ['echo-small', 'echo · echo-small', 'chat', '0.15', '0.075', '0.60', '0.15', '16,384', '128,000',
        '1 deployment', 'enabled']);
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

describe('native kinds, deployments and fallback', () => {
  const depRows = () => page.locator('table.deployments-table tbody tr');
  const depRow = (upstream) => depRows().filter({ has: page.locator(`td:nth-child(2):text-is("${upstream}")`) });
  const modelId = (name) => Number(sql(srv.dataDir, `SELECT id FROM models WHERE name = '${name}'`));
  async function editModel(name) {
    await page.goto(`${srv.url}/pricing`);
    await page.locator('table.data tbody tr').filter({ has: page.locator(`td:first-child:text-is("${name}")`) })
      .locator('a', { hasText: 'Edit' }).click();
    await page.waitForLoadState('load');
    assert.match(await page.textContent('h1'), new RegExp(`Edit model ${name.replace('/', '\\/')}`));
  }
  async function auditRow(action) {
    await page.goto(`${srv.url}/audit`);
    return page.locator('table.data tbody tr', { hasText: action }).first().textContent();
  }

  test('the kind select offers every kind; an Anthropic provider saves its API version', async () => {
    await page.goto(`${srv.url}/providers`);
    assert.deepEqual((await page.locator('select[name="kind"] option').allTextContents()).map((t) => t.trim()),
      ['OpenAI-compatible', 'Anthropic', 'Google Gemini', 'Azure OpenAI', 'Built-in echo']);
    assert.deepEqual(await page.locator('select[name="kind"] option').evaluateAll((os) => os.map((o) => o.value)),
      ['openai', 'anthropic', 'gemini', 'azure', 'echo']);
    assert.match(await page.textContent('#common-urls'), /Anthropic.*https:\/\/api\.anthropic\.com\/v1/s);
    assert.match(await page.textContent('#common-urls'), /https:\/\/generativelanguage\.googleapis\.com\/v1beta/);
    assert.match(await page.textContent('#common-urls'), /https:\/\/RESOURCE\.openai\.azure\.com/);
    assert.match(await page.textContent('#add-provider'), /x-api-key.*x-goog-api-key.*api-key/s);

    await submitForm(page, 'form[action="/providers"]', {
      name: 'claude', kind: 'anthropic', base_url: '', api_version: '2023-06-01', api_key: 'sk-ant-e2e', timeout_s: '30',
      enabled: true,
    });
    assert.match(await page.textContent('.flash-ok'), /Added provider claude/);
    const text = await providerRow('claude').textContent();
    assert.match(text, /Anthropic/);
    assert.match(text, /https:\/\/api\.anthropic\.com\/v1/, 'an empty base URL is the kind\'s default');
    assert.match(text, /API version\s*2023-06-01/);
    assert.equal((await providerRow('claude').locator('.provider-health').textContent()).trim(), 'no calls yet');
    assert.match(await providerRow('echo').locator('td').nth(1).textContent(), /^Built-in echo$/);
    assert.match(await providerRow('fakeup').locator('td').nth(1).textContent(), /^OpenAI-compatible$/);

    await providerRow('claude').locator('a', { hasText: 'Edit' }).click();
    await page.waitForLoadState('load');
    assert.equal(await page.locator('select[name="kind"]').inputValue(), 'anthropic');
    assert.equal(await page.locator('input[name="api_version"]').inputValue(), '2023-06-01');
    assert.equal(await page.locator('input[name="base_url"]').inputValue(), 'https://api.anthropic.com/v1');
    assert.match(await auditRow('provider.create'), /claude\s*anthropic https:\/\/api\.anthropic\.com\/v1, api version 2023-06-01, timeout 30s/);
  });

  test('a bad API version is refused at its field with 422 and saves nothing', async () => {
    await page.goto(`${srv.url}/providers`);
    const res = page.waitForResponse((r) => r.request().method() === 'POST');
    await submitForm(page, 'form[action="/providers"]', {
      name: 'azure-bad', kind: 'azure', base_url: 'https://res.openai.azure.com', api_version: '2024/10/21', timeout_s: '30',
    });
    assert.equal((await res).status(), 422);
    assert.match(await page.locator('input[name="api_version"] ~ .error').textContent(),
      /API version may hold letters, digits, '-', '\.' and '_' only/);
    assert.equal(await page.locator('input[name="api_version"]').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.locator('input[name="api_version"]').inputValue(), '2024/10/21');
    assert.equal(await page.locator('select[name="kind"]').inputValue(), 'azure');
    assert.equal(sql(srv.dataDir, "SELECT count(*) FROM providers WHERE name = 'azure-bad'"), '0');
    await page.goto(`${srv.url}/providers`);
    assert.doesNotMatch(await page.textContent('table.data'), /azure-bad/);
  });

  test('a provider whose calls fail shows it cooling down, on the providers page and the model', async () => {
    grant(srv.dataDir, 'Acme', '5');
    const key = createKey(srv.dataDir, 'Acme', 'health probe');
    await page.goto(`${srv.url}/pricing`);
    await page.locator('select[name="provider_id"]').selectOption({ label: 'down' });
    await submitForm(page, 'form[action="/pricing"]', {
      name: 'down-chat', upstream_model: 'gpt-down', kind: 'chat', input: '1', cached_input: '0.5', output: '2',
      max_output_tokens: '64', context_window: '8192', enabled: true,
    });
    assert.match(await page.textContent('.flash-ok'), /Added down-chat/);
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${srv.url}/v1/chat/completions`, {
        method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: 'down-chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }),
      });
      assert.equal(r.status, 502, `call ${i + 1} fails upstream`);
    }
    await page.goto(`${srv.url}/providers`);
    const badge = providerRow('down').locator('.provider-health .badge');
    assert.match(await badge.textContent(), /^cooling down \(\d+s\)$/);
    assert.match(await badge.getAttribute('class'), /badge-danger/);
    assert.equal((await providerRow('claude').locator('.provider-health').textContent()).trim(), 'no calls yet');
    await screenshot(page, 'catalog-08-providers-kinds-health');

    await editModel('down-chat');
    const own = depRows().first();
    assert.match(await own.textContent(), /down.*model's own.*gpt-down/s);
    assert.match(await own.locator('.dep-health').textContent(), /cooling down \d+s\s*0 ok · [3-9] failed/);
  });

  test('a deployment is added, listed, updated and removed, each audited', async () => {
    await editModel('fake/gpt-4o');
    assert.equal(await depRows().count(), 1, 'only the model\'s own deployment');
    const own = (await depRows().first().locator('td').allTextContents()).map((c) => c.trim());
    assert.deepEqual(own.slice(1, 6), ['gpt-4o', '1', '0', "model's price", 'enabled']);
    assert.match(own[0], /^fakeup\s+model's own$/);

    await page.locator('select[name="dep_provider_id"]').selectOption({ label: 'claude (Anthropic)' });
    await submitForm(page, 'form[action$="/deployments"]', {
      dep_upstream_model: 'claude-3-5-haiku', dep_weight: '2', dep_priority: '1', dep_enabled: true,
    });
    assert.equal(new URL(page.url()).pathname, `/pricing/${modelId('fake/gpt-4o')}`);
    assert.match(await page.textContent('.flash-ok'), /Added deployment claude · claude-3-5-haiku of fake\/gpt-4o\./);
    assert.equal(await depRows().count(), 2);
    let cells = (await depRow('claude-3-5-haiku').locator('td').allTextContents()).map((c) => c.trim());
    assert.deepEqual(cells.slice(0, 7), ['claude', 'claude-3-5-haiku', '2', '1', "model's price", 'enabled', 'no calls yet']);
    await screenshot(page, 'catalog-09-deployments');
    const did = sql(srv.dataDir, "SELECT id FROM deployments WHERE upstream_model = 'claude-3-5-haiku'");
    assert.match(did, /^\d+$/);

    // Edit prefills the form; saving the same provider and upstream model updates the row.
    await depRow('claude-3-5-haiku').locator('a', { hasText: 'Edit' }).click();
    await page.waitForLoadState('load');
    assert.equal(await page.locator('input[name="dep_weight"]').inputValue(), '2');
    assert.equal(await page.locator('input[name="dep_upstream_model"]').inputValue(), 'claude-3-5-haiku');
    await submitForm(page, 'form[action$="/deployments"]', {
      dep_weight: '5', dep_input: '1', dep_cached_input: '0.5', dep_output: '4',
    });
    assert.match(await page.textContent('.flash-ok'), /Saved deployment claude · claude-3-5-haiku/);
    assert.equal(await depRows().count(), 2, 'updated, not added');
    cells = (await depRow('claude-3-5-haiku').locator('td').allTextContents()).map((c) => c.trim());
    assert.deepEqual(cells.slice(2, 5), ['5', '1', 'input 1.00 · cached 0.50 · cache write 1.00 · output 4.00']);
    assert.equal(sql(srv.dataDir, `SELECT weight, price_in, price_cache_write FROM deployments WHERE id = ${did}`),
      '5|1000000|1000000');

    // Bad fields: 422 at the field, nothing saved.
    for (const [fields, name, msg, flash = msg] of [
      [{ dep_weight: '2000' }, 'dep_weight', /Weight must be a whole number from 0 to 1000\./],
      [{ dep_priority: '101' }, 'dep_priority', /Priority must be a whole number from 0 \(tried first\) to 100\./],
      [{ dep_upstream_model: 'gpt-4o', dep_provider_id: 'fakeup' }, 'dep_upstream_model', /That is the model's own provider and upstream model already\./],
      [{ dep_output: '' }, 'dep_output', /Enter an amount\./, /Output price: Enter an amount\./],
    ]) {
      await page.goto(`${srv.url}/pricing/${modelId('fake/gpt-4o')}?deployment=${did}`);
      if (fields.dep_provider_id) {
        await page.locator('select[name="dep_provider_id"]').selectOption({ label: 'fakeup (OpenAI-compatible)' });
        delete fields.dep_provider_id;
      }
      const res = page.waitForResponse((r) => r.request().method() === 'POST');
      await submitForm(page, 'form[action$="/deployments"]', fields);
      assert.equal((await res).status(), 422, name);
      assert.match(await page.locator(`[name="${name}"] ~ .error`).textContent(), msg);
      assert.match(await page.textContent('.flash-error'), flash);
    }
    assert.equal(sql(srv.dataDir, `SELECT count(*), max(weight), max(priority) FROM deployments WHERE model_id = ${modelId('fake/gpt-4o')}`),
      '1|5|1', 'nothing saved');

    // Only through its own model, and only by the admin.
    const admin = await new Client(srv.url).login(ADMIN.email, ADMIN.password);
    let res = await admin.post(`/pricing/${modelId('echo-small')}/deployments/${did}/delete`, {}, '/pricing');
    assert.equal(res.status, 404);
    const member = await new Client(srv.url).login(MEMBER.email, MEMBER.password);
    res = await member.post(`/pricing/${modelId('fake/gpt-4o')}/deployments/${did}/delete`, {}, '/pricing');
    assert.equal(res.status, 404);
    res = await member.post(`/pricing/${modelId('fake/gpt-4o')}/deployments`,
      { dep_provider_id: '1', dep_upstream_model: 'evil', dep_enabled: '1' }, '/pricing');
    assert.equal(res.status, 404);
    assert.equal(sql(srv.dataDir, `SELECT count(*) FROM deployments WHERE id = ${did}`), '1');
    assert.equal(sql(srv.dataDir, "SELECT count(*) FROM deployments WHERE upstream_model = 'evil'"), '0');

    await editModel('fake/gpt-4o');
    await Promise.all([page.waitForLoadState('load'), depRow('claude-3-5-haiku').locator('button', { hasText: 'Remove' }).click()]);
    await page.waitForLoadState('load');
    assert.match(await page.textContent('.flash-ok'), /Removed deployment claude · claude-3-5-haiku of fake\/gpt-4o\./);
    assert.equal(await depRows().count(), 1);
    assert.equal(sql(srv.dataDir, `SELECT count(*) FROM deployments WHERE id = ${did}`), '0');

    await page.goto(`${srv.url}/audit`);
    const ups = await page.locator('table.data tbody tr', { hasText: 'deployment.upsert' }).allTextContents();
    assert.equal(ups.length, 2);
    assert.match(ups[1], /fake\/gpt-4o.*added claude · claude-3-5-haiku: weight 2, priority 1, model's price, enabled/s);
    assert.match(ups[0], /updated claude · claude-3-5-haiku: weight 2, .* -> weight 5, priority 1, input 1\.00, cached input 0\.50, cache write 1\.00, output 4\.00, enabled/s);
    assert.match(await auditRow('deployment.delete'), /fake\/gpt-4o.*removed claude · claude-3-5-haiku \(weight 5/s);
  });

  test('the fallback model and the cache-write price save and show', async () => {
    await editModel('echo-large');
    const options = await page.locator('select[name="fallback_model"] option').evaluateAll((os) => os.map((o) => o.value));
    assert.equal(options[0], '', 'none first');
    assert.ok(options.includes('echo-small') && options.includes('down-chat'));
    assert.ok(!options.includes('echo-large'), 'not itself');
    assert.ok(!options.includes('echo-embed'), 'only models of the same kind');
    assert.equal(await page.locator('select[name="fallback_model"]').inputValue(), '');
    assert.equal(await page.locator('input[name="weight"]').inputValue(), '1');
    await submitForm(page, 'form[action="/pricing"]', { fallback_model: 'echo-small', cache_write_per_mtok: '3.75', weight: '3' });
    assert.match(await page.textContent('.flash-ok'), /Saved echo-large/);
    const cells = (await page.locator('table.data tbody tr').filter({ has: page.locator('td:first-child:text-is("echo-large")') })
      .locator('td').allTextContents()).map((c) => c.trim());
    assert.equal(cells[6], '3.75', 'cache-write column');
    assert.match(cells[9], /fallback\s*echo-small/);
    assert.equal(sql(srv.dataDir, "SELECT price_cache_write, weight, fallback_model FROM models WHERE name = 'echo-large'"),
      '3750000|3|echo-small');
    assert.match(await auditRow('model.price'), /echo-large.*cache write 3\.00 -> 3\.75/s);
    assert.match(await auditRow('model.update'), /echo-large.*weight 3, fallback echo-small/s);

    await editModel('echo-large');
    assert.equal(await page.locator('select[name="fallback_model"]').inputValue(), 'echo-small');
    assert.equal(await page.locator('input[name="cache_write_per_mtok"]').inputValue(), '3.75');
    assert.equal(await page.locator('input[name="weight"]').inputValue(), '3');
    assert.equal((await page.locator('#saved-cache-write').textContent()).trim(), '3.75');

    // An embedding model is no fallback for a chat model; a weight over 1000 is refused.
    const admin = await new Client(srv.url).login(ADMIN.email, ADMIN.password);
    const base = { name: 'echo-large', provider_id: sql(srv.dataDir, "SELECT id FROM providers WHERE name = 'echo'"),
      upstream_model: 'echo-large', kind: 'chat', input: '3', cached_input: '1.25', output: '12.5',
      max_output_tokens: '4096', context_window: '128000', enabled: '1' };
    let res = await admin.post('/pricing', { ...base, fallback_model: 'echo-embed' }, '/pricing');
    assert.equal(res.status, 422);
    assert.match(await res.text(), /Fallback model must be another chat model, or none\./);
    res = await admin.post('/pricing', { ...base, weight: '1001' }, '/pricing');
    assert.equal(res.status, 422);
    assert.match(await res.text(), /Weight must be a whole number from 0 to 1000\./);
    assert.equal(sql(srv.dataDir, "SELECT weight, fallback_model FROM models WHERE name = 'echo-large'"), '3|echo-small');

    // Empty cache-write price: the input price; none clears the fallback.
    await editModel('echo-large');
    await submitForm(page, 'form[action="/pricing"]', { cache_write_per_mtok: '', fallback_model: '' });
    assert.equal(sql(srv.dataDir, "SELECT price_cache_write, fallback_model FROM models WHERE name = 'echo-large'"),
      '3000000|');
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
