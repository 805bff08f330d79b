// The whole dashboard on PostgreSQL: one throwaway cluster, one fake upstream,
// one tollgate instance started with --database postgres://..., real gateway
// calls (successes, an upstream failure, a stream, an embedding) so usage and
// the request log hold data; then, signed in as the instance admin in
// Chromium, every dashboard GET page (with its filters and pagers) and every
// main form. The same SQL runs on both backends, so each page must answer 200
// with its content, each form's effect must show (and be in the database),
// and the server must log no "db:" error while doing it.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { cli, startServer, startFakeUpstream, tempDir } from './lib/harness.js';
import { startPg } from './lib/pg.js';
import { settled, micro } from './lib/gateway.js';
import { Client } from './lib/session.js';
import { launch, screenshot, submitForm } from './lib/browser.js';

const ADMIN = { email: 'owner@example.com', name: 'Olga Owner', password: 'owner-password-1' };
const MEMBER = { email: 'mo@example.com', name: 'Mo Member', password: 'member-password-1' };
const NEWBIE = { email: 'nina@example.com', name: 'Nina New', password: 'newbie-password-1' };
const MESSAGES = [{ role: 'user', content: 'Count the tokens of this sentence, please.' }];
// Text that means a page or a form went wrong on the server.
const ERROR_TEXT = /could not be (read|rendered|recorded|redeemed|created)|try again|server_error|Internal Server Error|Something went wrong/i;

let pg, upstream, srv, env, dataDir, receiver;
let browser, page, admin, member;
let orgId, globexId, adminKey, memberKey, adminKeyId, memberKeyId;
const calls = { ok: [], failed: [], stream: [], embed: [] }; // request ids

// ---------------------------------------------------------------- helpers
function run(args, input) {
  const r = cli(dataDir, args, { input, env });
  if (r.code !== 0) throw new Error(`tollgate ${args.join(' ')} (exit ${r.code}): ${r.stderr}`);
  return r.stdout;
}

async function q(sql) {
  return pg.query(sql);
}
async function one(sql) {
  const rows = await pg.query(sql);
  return rows.length ? rows[0][0] : undefined;
}

// Every "db:" line the server logged (any level but debug).
function dbLines() {
  return srv.stderr().split('\n').filter((l) => /^\S+ (?!DEBUG)\S+\s+db: /.test(l));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Run fn and return the "db:" lines logged meanwhile (stderr arrives a little late).
async function watchDb(fn) {
  const before = dbLines().length;
  const value = await fn();
  await sleep(120);
  return { value, db: dbLines().slice(before) };
}

// Database errors are collected per step, so one failing statement does not
// hide the next: each test ends by asserting that none were logged.
let found = [];
function record(what, lines) {
  if (lines.length) found.push(`${what}:\n${lines.map((l) => `    ${l}`).join('\n')}`);
  return lines.length === 0;
}
function dbtest(name, fn) {
  test(name, async () => {
    found = [];
    let failure;
    try {
      await fn();
    } catch (e) {
      failure = e;
    }
    const errs = found;
    found = [];
    if (errs.length) {
      assert.fail(`database errors logged by the server:\n${errs.join('\n')}` +
        (failure ? `\nand then: ${failure.message}` : ''));
    }
    if (failure) throw failure;
  });
}

function noDbErrors(lines, what) {
  assert.deepEqual(lines, [], `${what}: the server logged database errors:\n${lines.join('\n')}`);
}

// Visit a page in the browser: 200, its h1, its content, no error text, no db
// errors (when there are some, they are recorded and the content not checked).
async function visit(path, { h1, contains = [], errorFlash = false } = {}) {
  const { value: res, db } = await watchDb(() => page.goto(srv.url + path));
  const html = await page.content();
  if (!record(`GET ${path} (answered ${res.status()})`, db)) return html;
  assert.equal(res.status(), 200, `GET ${path} answered ${res.status()}:\n${(await page.innerText('body')).slice(0, 400)}`);
  if (h1) assert.match((await page.locator('h1').first().innerText()).trim(), h1, `GET ${path}: heading`);
  for (const c of contains) assert.ok(typeof c === 'string' ? html.includes(c) : c.test(html), `GET ${path}: expected ${c}`);
  assert.doesNotMatch(await page.innerText('body'), ERROR_TEXT, `GET ${path}: error text on the page`);
  if (!errorFlash) assert.equal(await page.locator('.flash-error').count(), 0, `GET ${path}: an error flash`);
  return html;
}

// GET over plain HTTP (CSV exports, JSON, other users), same checks.
async function fetchOk(client, path, type) {
  const { value: res, db } = await watchDb(() => client.get(path));
  const text = await res.text();
  if (!record(`GET ${path} (answered ${res.status})`, db)) return text;
  assert.equal(res.status, 200, `GET ${path} answered ${res.status}: ${text.slice(0, 300)}`);
  if (type) assert.match(res.headers.get('content-type'), type);
  assert.doesNotMatch(text, /class="flash flash-error"/, `GET ${path}: an error flash`);
  return text;
}

// Submit a form of page `fromPath` as a signed-in client: the page must hold
// the form, the POST must answer 303 (or 200 with a one-time page) and the
// page it leads to must show an "ok" flash. Only the POST's own statements
// are counted for it; the page it redirects to is checked as a GET of its own.
async function post(client, path, fields, fromPath, what = `POST ${path}`) {
  const form = await fetchOk(client, fromPath);
  assert.ok(form.includes(`action="${path}"`), `${fromPath} has no form posting to ${path}`);
  const csrf = form.match(/name="csrf" value="([^"]+)"/)[1];
  const { value: res, db } = await watchDb(() => fetch(client.base + path, {
    method: 'POST', redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: client.cookie() },
    body: new URLSearchParams({ csrf, ...fields }),
  }));
  client.absorb(res);
  let text = await res.text();
  record(`${what} (answered ${res.status})`, db);
  assert.ok(res.status === 303 || res.status === 200, `${what}: answered ${res.status}: ${text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 600)}`);
  assert.doesNotMatch(text, ERROR_TEXT, `${what}: error text in the answer`);
  if (res.status === 303) {
    const loc = res.headers.get('location');
    text = await fetchOk(client, loc);
    const flash = text.match(/class="flash flash-(\w+)"[^>]*>([^<]*)/);
    assert.ok(!flash || flash[1] !== 'error', `${what}: error flash after the redirect: ${flash?.[2]}`);
  }
  return text;
}

function sdk(apiKey) {
  return new OpenAI({ apiKey, baseURL: `${srv.url}/v1`, maxRetries: 0, timeout: 20_000 });
}

function startReceiver() {
  const got = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => { got.push(req.url); res.writeHead(204); res.end(); });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    got, url: `http://127.0.0.1:${server.address().port}/hooks/tollgate`,
    stop: () => new Promise((r) => server.close(r)),
  })));
}

// ---------------------------------------------------------------- fixtures
before(async () => {
  pg = await startPg();
  env = { TOLLGATE_DATABASE: pg.url };
  upstream = await startFakeUpstream();
  receiver = await startReceiver();
  dataDir = tempDir();
  srv = await startServer({ dataDir, env, args: ['--webhook-private-ok', '1'] });

  run(['user', 'add', '--email', ADMIN.email, '--name', ADMIN.name, '--admin'], `${ADMIN.password}\n`);
  run(['user', 'add', '--email', MEMBER.email, '--name', MEMBER.name], `${MEMBER.password}\n`);
  orgId = Number(run(['org', 'add', 'Acme']).match(/\(id (\d+)\)/)[1]);
  globexId = Number(run(['org', 'add', 'Globex']).match(/\(id (\d+)\)/)[1]);
  run(['org', 'member', '--org', 'Acme', '--email', ADMIN.email, '--role', 'owner']);
  run(['org', 'member', '--org', 'Acme', '--email', MEMBER.email, '--role', 'member']);
  run(['org', 'member', '--org', 'Globex', '--email', ADMIN.email, '--role', 'admin']);
  run(['org', 'limits', '--org', 'Acme', '--rpm', '1000', '--tpm', '1000000']);
  const file = join(dataDir, 'models.json');
  writeFileSync(file, JSON.stringify({
    providers: [{ name: 'fake', kind: 'openai', base_url: `${upstream.url}/v1`, api_key: 'sk-fake-upstream-secret', timeout_s: 5 }],
    models: [
      { name: 'fake-chat', provider: 'fake', upstream_model: 'upstream-chat', input_per_mtok: '0.15', cached_input_per_mtok: '0.075', output_per_mtok: '0.60', max_output_tokens: 4096, context_window: 128000 },
      { name: 'fake-big', provider: 'fake', upstream_model: 'upstream-big', input_per_mtok: '2.50', cached_input_per_mtok: '1.25', output_per_mtok: '10.00', max_output_tokens: 4096, context_window: 128000 },
      { name: 'fake-embed', provider: 'fake', upstream_model: 'upstream-embed', kind: 'embedding', input_per_mtok: '0.02', cached_input_per_mtok: '0', output_per_mtok: '0', max_output_tokens: 1, context_window: 8192 },
    ],
  }));
  run(['models', 'import', file]);
  run(['credits', 'grant', '--org', 'Acme', '100', '--memo', 'opening grant']);
  adminKey = run(['keys', 'create', '--org', 'Acme', '--name', 'Admin backend']).trim();
  adminKeyId = Number(await one(`SELECT max(id) FROM api_keys`));

  admin = await new Client(srv.url).login(ADMIN.email, ADMIN.password);
  member = await new Client(srv.url).login(MEMBER.email, MEMBER.password);
  // The member's key, made through the dashboard.
  const made = await member.post('/keys', { name: 'Mo notebook', limit: '50', period: 'monthly' }, '/keys/new');
  const html = await made.text();
  memberKey = html.match(/<code id="new-key">([^<]+)<\/code>/)?.[1];
  memberKeyId = Number(html.match(/href="\/keys\/(\d+)"/)?.[1]);
  assert.ok(adminKey.startsWith('tg_') && memberKey?.startsWith('tg_'), 'two keys');

  // Gateway traffic: successes, a stream, an embedding, an upstream failure.
  for (const [key, model, extra] of [[adminKey, 'fake-chat', {}], [adminKey, 'fake-big', {}],
    [memberKey, 'fake-chat', { max_tokens: 12 }], [memberKey, 'fake-big', { x_fake: { cached_tokens: 4 } }]]) {
    const { response } = await sdk(key).chat.completions
      .create({ model, messages: MESSAGES, max_tokens: 40, ...extra }).withResponse();
    calls.ok.push(response.headers.get('x-request-id'));
  }
  const { data: stream, response: sres } = await sdk(memberKey).chat.completions.create({
    model: 'fake-chat', messages: MESSAGES, max_tokens: 30, stream: true,
    stream_options: { include_usage: true }, x_fake: { chunks: 4 },
  }).withResponse();
  for await (const _ of stream) { /* drain */ }
  calls.stream.push(sres.headers.get('x-request-id'));
  const { response: eres } = await sdk(adminKey).embeddings
    .create({ model: 'fake-embed', input: 'embed me' }).withResponse();
  calls.embed.push(eres.headers.get('x-request-id'));
  await assert.rejects(sdk(memberKey).chat.completions.create({ model: 'fake-chat', messages: MESSAGES, x_fake: { status: 500 } }),
    (err) => err.status === 502);
  await assert.rejects(sdk(adminKey).chat.completions.create({ model: 'no-such-model', messages: MESSAGES }),
    (err) => err.status >= 400);
  const list = await fetch(`${srv.url}/v1/models`, { headers: { Authorization: `Bearer ${adminKey}` } });
  assert.equal(list.status, 200);
  settled(dataDir);

  browser = await launch();
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await ctx.newPage();
  await page.goto(`${srv.url}/login`);
  await submitForm(page, 'form[action="/login"]', { email: ADMIN.email, password: ADMIN.password });
  assert.equal(new URL(page.url()).pathname, '/');
});

after(async () => {
  await browser?.close();
  await receiver?.stop();
  if (srv) {
    const code = await srv.stop();
    const lines = dbLines();
    const unique = [...new Set(lines.map((l) => l.replace(/^\S+ \S+\s+/, '')))];
    if (unique.length) console.log(`# ${unique.length} distinct db: errors logged by the server:\n${unique.map((l) => `#   ${l}`).join('\n')}`);
    assert.equal(code, 0, 'the server stops cleanly');
    srv.cleanup();
  }
  await upstream?.stop();
  await pg?.destroy();
});

// ---------------------------------------------------------------- tests
const day = (d) => new Date(Date.now() - d * 86400_000).toISOString().slice(0, 10);

describe('dashboard on PostgreSQL', () => {
  dbtest('the calls are in the database: requests, ledger, rollups', async () => {
    const rows = Number(await one(`SELECT count(*) FROM requests WHERE org_id = ${orgId}`));
    assert.ok(rows >= 7, `${rows} request rows`);
    assert.ok(Number(await one(`SELECT count(*) FROM requests WHERE status = 502`)) >= 1);
    assert.equal(await one(`SELECT count(*) FROM requests WHERE stream = 1`), '1');
    const usage = BigInt(await one(`SELECT -sum(amount) FROM ledger_entries WHERE kind = 'usage' AND org_id = ${orgId}`));
    assert.ok(usage > 0n);
    assert.equal(BigInt(await one(`SELECT sum(cost) FROM usage_daily WHERE org_id = ${orgId}`)), usage);
    assert.equal(await one(`SELECT rpm || '/' || tpm FROM orgs WHERE id = ${orgId}`), '1000/1000000', 'org limits set by the CLI');
  });

  dbtest('CLI on PostgreSQL: credits balance, keys list, audit', () => {
    const bal = micro(run(['credits', 'balance', '--org', 'Acme']).trim().split(/\s+/)[0]);
    assert.ok(bal > 0n && bal < 100_000_000n, `balance ${bal}`);
    assert.match(run(['keys', 'list', '--org', 'Acme']), /Admin backend/);
    assert.match(run(['audit']), /^audit: \d+ orgs, \d+ entries, balances OK$/m);
  });

  dbtest('overview: cards, chart, top models and keys, latest requests', async () => {
    const html = await visit('/', { h1: /^Acme$/, contains: ['id="balance"', 'id="top-models"', 'id="top-keys"', 'requests-table'] });
    await screenshot(page, 'pg-dashboard-overview');
    assert.ok(micro((await page.locator('#spend-today').innerText()).split(/\s+/)[0]) > 0n, 'spend today');
    assert.ok(Number((await page.locator('#requests-today').innerText()).trim()) >= 7);
    assert.equal(await page.locator('.chart svg').count(), 1);
    const models = await page.locator('#top-models tbody tr td:first-child').allInnerTexts();
    assert.deepEqual(models.slice(0, 2), ['fake-big', 'fake-chat'], 'by spend, biggest first');
    assert.ok(models.includes('fake-embed'));
    assert.ok(await page.locator('.requests-table tbody tr[data-status="502"]').count() >= 1, html.length);
  });

  dbtest('overview as a member (only their keys)', async () => {
    const html = await fetchOk(member, '/');
    assert.match(html, /What your API keys did in Acme/);
    assert.match(html, /Mo notebook/);
  });

  dbtest('usage: day buckets, charts and totals equal the ledger', async () => {
    await visit('/usage', { h1: /^Usage$/, contains: ['id="total-spend"', 'id="usage-table"'] });
    await screenshot(page, 'pg-dashboard-usage');
    assert.equal(await page.locator('.chart svg').count(), 3);
    const spend = micro((await page.locator('#total-spend').innerText()).trim().split(/\s+/)[0]);
    const ledger = BigInt(await one(`SELECT -sum(amount) FROM ledger_entries WHERE kind = 'usage' AND org_id = ${orgId}`));
    assert.equal(spend, ledger, 'usage total equals the ledger');
  });

  dbtest('usage with every range and filter option', async () => {
    for (const qs of ['?split=model', '?split=key', '?bucket=hour', '?bucket=hour&split=model', '?bucket=hour&split=key',
      '?model=fake-big', `?from=${day(6)}&to=${day(0)}`, `?bucket=hour&from=${day(1)}&to=${day(0)}`, `?from=${day(365)}&to=${day(0)}`,
      `?key=${memberKeyId}`, `?key=${memberKeyId}&split=model`]) {
      await visit(`/usage${qs}`, { h1: /^Usage$/, contains: ['id="total-spend"'] });
    }
    await fetchOk(member, '/usage');
    await fetchOk(member, '/usage?split=key');
  });

  dbtest('usage CSV exports', async () => {
    for (const qs of ['', '?split=model', '?split=key', `?key=${adminKeyId}`, '?bucket=hour&model=fake-chat']) {
      const csv = await fetchOk(admin, `/usage.csv${qs}`, /^text\/csv/);
      assert.ok(csv.trim().split('\r\n').length >= 2, `usage.csv${qs} has rows`);
    }
  });

  dbtest('request log, its filters and pager', async () => {
    await visit('/requests', { h1: /^Requests$/, contains: ['requests-table'] });
    for (const qs of ['?status=ok', '?status=error', '?status=502', `?key=${memberKeyId}`, '?model=fake-chat',
      `?from=${day(3)}&to=${day(0)}`]) {
      await visit(`/requests${qs}`, { h1: /^Requests$/, contains: ['requests-table'] });
    }
    const last = Number(await one(`SELECT max(id) FROM requests`));
    await visit(`/requests?before=${last}`, { h1: /^Requests$/, contains: ['requests-table'] });
    await fetchOk(member, '/requests');
  });

  dbtest('request detail: a success, the failure, a stream, an embedding', async () => {
    const ids = await q(`SELECT id, status FROM requests WHERE request_id IN
      ('${[calls.ok[0], calls.stream[0], calls.embed[0]].join("','")}') OR status = 502 ORDER BY id`);
    assert.ok(ids.length >= 4);
    for (const [id, status] of ids) {
      // A failed call shows its error in an error flash of its own.
      await visit(`/requests/${id}`, { h1: /^Request /, contains: ['Details', `>${status}<`], errorFlash: status !== '200' });
    }
    // The member's own call (the last, a 502) opens for them too; its error shows as a flash.
    const mine = await member.get(`/requests/${ids[ids.length - 1][0]}`);
    assert.equal(mine.status, 200);
    assert.match(await mine.text(), /provider answered HTTP 500/);
  });

  dbtest('orgs, an org page, users, account, audit log', async () => {
    await visit('/orgs', { h1: /^Organizations$/, contains: ['Acme', 'Globex'] });
    await visit(`/orgs/${orgId}`, { h1: /^Acme$/, contains: ['Members', MEMBER.email] });
    await visit(`/orgs/${globexId}`, { h1: /^Globex$/ });
    await visit('/users', { h1: /^Users$/, contains: [ADMIN.email, MEMBER.email] });
    await visit('/account', { h1: /^Account$/, contains: ['Change password', 'Sessions'] });
    await visit('/audit', { h1: /^Audit log$/, contains: ['org.limits'] });
    const top = Number(await one(`SELECT max(id) FROM audit_log`));
    await visit(`/audit?before=${top}`, { h1: /^Audit log$/ });
    await fetchOk(member, '/orgs');
    await fetchOk(member, `/orgs/${orgId}`);
  });

  dbtest('keys: list, filters, pager, new, detail', async () => {
    await visit('/keys', { h1: /^API keys$/, contains: ['Admin backend', 'Mo notebook'] });
    await visit('/keys?status=active', { h1: /^API keys$/, contains: ['Admin backend'] });
    await visit('/keys?status=revoked', { h1: /^API keys$/ });
    await visit('/keys?status=expired', { h1: /^API keys$/ });
    await visit(`/keys?after=${memberKeyId}`, { h1: /^API keys$/, contains: ['Admin backend'] });
    await visit('/keys/new', { h1: /^New API key$/ });
    await visit(`/keys/${memberKeyId}`, { h1: /^Mo notebook$/, contains: ['Limits and spend', 'Spend, last 30 days'] });
    await visit(`/keys/${adminKeyId}`, { h1: /^Admin backend$/ });
    await fetchOk(member, '/keys');
    await fetchOk(member, `/keys/${memberKeyId}`);
  });

  dbtest('credits: page, ledger filters and pagers, CSV', async () => {
    await visit('/credits', { h1: /^Credits$/, contains: ['Ledger', 'opening grant'] });
    for (const qs of ['?kind=usage', '?kind=grant', `?from=${day(3)}&to=${day(0)}`]) await visit(`/credits${qs}`, { h1: /^Credits$/ });
    const top = Number(await one(`SELECT max(id) FROM ledger_entries WHERE org_id = ${orgId}`));
    const low = Number(await one(`SELECT min(id) FROM ledger_entries WHERE org_id = ${orgId}`));
    await visit(`/credits?before=${top}`, { h1: /^Credits$/ });
    await visit(`/credits?after=${low}`, { h1: /^Credits$/ });
    const csv = await fetchOk(admin, '/credits.csv', /^text\/csv/);
    assert.match(csv, /opening grant/);
    await fetchOk(admin, '/credits.csv?kind=usage', /^text\/csv/);
    await fetchOk(member, '/credits');
  });

  dbtest('catalog: providers, a provider, pricing, a model', async () => {
    await visit('/providers', { h1: /^Providers$/, contains: ['fake', 'echo'] });
    const fake = Number(await one(`SELECT id FROM providers WHERE name = 'fake'`));
    await visit(`/providers/${fake}`, { h1: /^Edit provider fake$/ });
    await visit('/pricing', { h1: /^Pricing$/, contains: ['fake-chat', 'fake-embed'] });
    const chat = Number(await one(`SELECT id FROM models WHERE name = 'fake-chat'`));
    await visit(`/pricing/${chat}`, { h1: /^Edit model fake-chat$/, contains: ['Deployments'] });
    await fetchOk(member, '/pricing');
  });

  dbtest('alerts and codes pages', async () => {
    await visit('/alerts', { h1: /^Budget alerts$/, contains: ['Balance alert', 'Key spend alert'] });
    await visit('/codes', { h1: /^Redemption codes$/, contains: ['Summary'] });
    await fetchOk(member, '/alerts').catch(() => {}); // members may be refused; only db errors count
  });

  dbtest('metrics, health, the sign-in page', async () => {
    const anon = new Client(srv.url);
    assert.match(await fetchOk(anon, '/metrics'), /^tollgate_/m);
    assert.equal(JSON.parse(await fetchOk(anon, '/health')).db, 'ok');
    assert.match(await fetchOk(anon, '/login'), /Sign in/);
    const r = await fetch(`${srv.url}/v1/key`, { headers: { Authorization: `Bearer ${adminKey}` } });
    assert.equal(r.status, 200);
  });

  // ---------------------------------------------------------------- forms
  dbtest('form: create a key with limits', async () => {
    const html = await post(admin, '/keys', { name: 'Form made', rpm: '60', tpm: '10000', limit: '5', period: 'daily' }, '/keys/new');
    assert.match(html, /Your new API key/);
    assert.equal(await one(`SELECT rpm || ',' || tpm || ',' || spend_limit || ',' || spend_period FROM api_keys WHERE name = 'Form made'`),
      '60,10000,5000000,daily');
    await visit('/keys', { h1: /^API keys$/, contains: ['Form made'] });
  });

  dbtest('form: change key limits', async () => {
    await post(admin, `/keys/${memberKeyId}/limits`, { rpm: '120', tpm: '', limit: '40', period: 'weekly', models: '', expires: '' }, `/keys/${memberKeyId}`);
    assert.equal(await one(`SELECT rpm || ',' || spend_limit || ',' || spend_period FROM api_keys WHERE id = ${memberKeyId}`),
      '120,40000000,weekly');
    await visit(`/keys/${memberKeyId}`, { h1: /^Mo notebook$/, contains: ['120'] });
  });

  dbtest('form: rotate and revoke a key', async () => {
    const id = Number(await one(`SELECT id FROM api_keys WHERE name = 'Form made'`));
    const html = await post(admin, `/keys/${id}/rotate`, { grace: '0' }, `/keys/${id}`);
    assert.match(html, /Your new API key/);
    const fresh = Number(await one(`SELECT id FROM api_keys WHERE rotated_from = ${id}`));
    assert.ok(fresh > id);
    await post(admin, `/keys/${fresh}/revoke`, {}, `/keys/${fresh}`);
    assert.notEqual(await one(`SELECT coalesce(revoked_at, 0) FROM api_keys WHERE id = ${fresh}`), '0');
    await visit('/keys?status=revoked', { h1: /^API keys$/, contains: ['Form made'] });
    await visit(`/keys/${fresh}`, { h1: /^Form made$/ });
  });

  dbtest('form: grant and deduct credits', async () => {
    const before = BigInt(await one(`SELECT balance FROM orgs WHERE id = ${orgId}`));
    await post(admin, '/credits/grant', { action: 'grant', amount: '25', memo: 'Invoice 2026-014' }, '/credits');
    await post(admin, '/credits/grant', { action: 'deduct', amount: '0.5', memo: 'Correction' }, '/credits');
    assert.equal(BigInt(await one(`SELECT balance FROM orgs WHERE id = ${orgId}`)) - before, 24_500_000n);
    await visit('/credits', { h1: /^Credits$/, contains: ['Invoice 2026-014', 'Correction'] });
    await visit('/credits?kind=adjust', { h1: /^Credits$/, contains: ['Correction'] });
  });

  dbtest('form: create redemption codes and redeem one', async () => {
    const html = await post(admin, '/codes', { count: '3', amount: '7.5', expires: '2099-12-31', batch: 'PG batch' }, '/codes');
    const codes = [...new Set([...html.matchAll(/tgc_[0-9A-Za-z]{24}/g)].map((m) => m[0]))];
    assert.equal(codes.length, 3);
    assert.equal(await one(`SELECT count(*) FROM redemption_codes WHERE batch = 'PG batch'`), '3');
    await post(admin, '/codes', { count: '1', amount: '1', expires: '', batch: '' }, '/codes', 'POST /codes (no expiry, no label)');
    await visit('/codes', { h1: /^Redemption codes$/, contains: ['PG batch'] });
    const top = Number(await one(`SELECT max(id) FROM redemption_codes`));
    await visit(`/codes?before=${top}`, { h1: /^Redemption codes$/ });
    const before = BigInt(await one(`SELECT balance FROM orgs WHERE id = ${orgId}`));
    await post(admin, '/credits/redeem', { code: codes[0] }, '/credits');
    assert.equal(BigInt(await one(`SELECT balance FROM orgs WHERE id = ${orgId}`)) - before, 7_500_000n);
    assert.equal(await one(`SELECT count(*) FROM redemption_codes WHERE redeemed_org_id = ${orgId}`), '1');
    await visit('/credits?kind=redeem', { h1: /^Credits$/, contains: ['redeem'] });
    await visit('/codes', { h1: /^Redemption codes$/ });
  });

  dbtest('form: create an org and switch to it', async () => {
    await post(admin, '/orgs', { name: 'Initech' }, '/orgs');
    const id = Number(await one(`SELECT id FROM orgs WHERE name = 'Initech'`));
    assert.ok(id > 0);
    // Initech has no members yet; an instance admin may still look at it.
    try {
      for (const [target, name] of [[id, 'Initech'], [globexId, 'Globex']]) {
        await post(admin, '/switch-org', { org_id: String(target) }, '/keys');
        assert.match(await fetchOk(admin, '/'), new RegExp(`<h1>${name}</h1>`), `switched to ${name}`);
        for (const p of ['/usage', '/requests', '/credits', '/keys', '/alerts']) await fetchOk(admin, p);
      }
    } finally {
      await post(admin, '/switch-org', { org_id: String(orgId) }, '/keys');
    }
    assert.match(await fetchOk(admin, '/'), /<h1>Acme<\/h1>/);
  });

  dbtest('form: add a member (new user), change the role, remove, add again', async () => {
    await post(admin, `/orgs/${orgId}/members`, { email: NEWBIE.email, name: NEWBIE.name, role: 'member', password: NEWBIE.password }, `/orgs/${orgId}`);
    const uid = Number(await one(`SELECT id FROM users WHERE email = '${NEWBIE.email}'`));
    assert.equal(await one(`SELECT role FROM memberships WHERE org_id = ${orgId} AND user_id = ${uid}`), 'member');
    await visit(`/orgs/${orgId}`, { h1: /^Acme$/, contains: [NEWBIE.email] });
    await post(admin, `/orgs/${orgId}/members/${uid}/role`, { role: 'admin' }, `/orgs/${orgId}`);
    assert.equal(await one(`SELECT role FROM memberships WHERE org_id = ${orgId} AND user_id = ${uid}`), 'admin');
    await post(admin, `/orgs/${orgId}/members/${uid}/remove`, {}, `/orgs/${orgId}`);
    assert.equal(await one(`SELECT count(*) FROM memberships WHERE org_id = ${orgId} AND user_id = ${uid}`), '0');
    await post(admin, `/orgs/${orgId}/members`, { email: NEWBIE.email, role: 'member' }, `/orgs/${orgId}`, 'add an existing user');
    assert.equal(await one(`SELECT role FROM memberships WHERE org_id = ${orgId} AND user_id = ${uid}`), 'member');
    const nina = await new Client(srv.url).login(NEWBIE.email, NEWBIE.password);
    assert.equal((await nina.get('/')).headers.get('location'), '/account', 'a temporary password must be changed first');
    await fetchOk(nina, '/account');
  });

  dbtest('form: create, disable and enable a user', async () => {
    await post(admin, '/users', { email: 'ursula@example.com', name: 'Ursula', password: 'ursula-password-1' }, '/users');
    const uid = Number(await one(`SELECT id FROM users WHERE email = 'ursula@example.com'`));
    assert.ok(uid > 0);
    await post(admin, `/users/${uid}/disable`, {}, '/users');
    assert.notEqual(await one(`SELECT coalesce(disabled_at, 0) FROM users WHERE id = ${uid}`), '0', 'disabled');
    await visit('/users', { h1: /^Users$/, contains: ['ursula@example.com'] });
    await post(admin, `/users/${uid}/enable`, {}, '/users');
    assert.equal(await one(`SELECT coalesce(disabled_at, 0) FROM users WHERE id = ${uid}`), '0', 'enabled again');
    await new Client(srv.url).login('ursula@example.com', 'ursula-password-1');
  });

  dbtest('sign-in: a wrong password is refused and counted; five lock the account', async () => {
    for (let i = 1; i <= 6; i++) {
      const c = new Client(srv.url);
      const csrf = await c.csrf('/login');
      const { value: res, db } = await watchDb(() => fetch(`${srv.url}/login`, {
        method: 'POST', redirect: 'manual',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: c.cookie() },
        body: new URLSearchParams({ csrf, email: 'ursula@example.com', password: 'wrong-password-' + i }),
      }));
      record(`POST /login, wrong password #${i} (answered ${res.status})`, db);
      // Five failures are free; the fifth locks the account, so the sixth is refused unread.
      assert.equal(res.status, i <= 5 ? 401 : 429);
    }
    assert.equal(await one(`SELECT failures FROM login_throttle WHERE email = 'ursula@example.com'`), '5');
    assert.ok(Number(await one(`SELECT locked_until FROM login_throttle WHERE email = 'ursula@example.com'`)) > 0, 'the account is locked for a while');
  });

  dbtest('form: save a provider (new and edited), test the connection', async () => {
    await post(admin, '/providers', { name: 'second', kind: 'openai', base_url: `${upstream.url}/v1`, api_key: 'sk-second', api_version: '', timeout_s: '7', enabled: '1' }, '/providers');
    const id = Number(await one(`SELECT id FROM providers WHERE name = 'second'`));
    assert.equal(await one(`SELECT timeout_s FROM providers WHERE id = ${id}`), '7');
    await post(admin, '/providers', { name: 'second', kind: 'openai', base_url: `${upstream.url}/v1`, api_key: '', api_version: '', timeout_s: '9', enabled: '1' }, `/providers/${id}`, 'POST /providers (edit)');
    assert.equal(await one(`SELECT timeout_s FROM providers WHERE id = ${id}`), '9');
    await post(admin, '/providers', { name: 'dead', kind: 'openai', base_url: 'http://127.0.0.1:9/v1', api_key: '', api_version: '', timeout_s: '2', enabled: '1' }, '/providers', 'POST /providers (a dead one)');
    await visit(`/providers/${id}`, { h1: /^Edit provider second$/ });
    await post(admin, `/providers/${id}/test`, {}, `/providers/${id}`);
    await visit('/providers', { h1: /^Providers$/, contains: ['second', 'dead'] });
  });

  dbtest('form: save a model with a deployment; a call fails over; delete the deployment', async () => {
    const dead = await one(`SELECT id FROM providers WHERE name = 'dead'`);
    const base = { name: 'pg-model', provider_id: dead, upstream_model: 'upstream-chat', kind: 'chat', input: '1', output: '2',
      cached_input: '0.5', cache_write_per_mtok: '', max_output_tokens: '1000', context_window: '8000', weight: '1', fallback_model: '', enabled: '1' };
    await post(admin, '/pricing', base, '/pricing');
    const mid = Number(await one(`SELECT id FROM models WHERE name = 'pg-model'`));
    assert.equal(await one(`SELECT price_in || ',' || price_out FROM models WHERE id = ${mid}`), '1000000,2000000');
    await post(admin, '/pricing', { ...base, output: '3.25' }, `/pricing/${mid}`, 'POST /pricing (edit)');
    assert.equal(await one(`SELECT price_out FROM models WHERE id = ${mid}`), '3250000');
    const fake = await one(`SELECT id FROM providers WHERE name = 'fake'`);
    await post(admin, `/pricing/${mid}/deployments`, { dep_provider_id: fake, dep_upstream_model: 'upstream-big', dep_weight: '2', dep_priority: '1',
      dep_input: '', dep_output: '', dep_cached_input: '', dep_cache_write: '', dep_enabled: '1' }, `/pricing/${mid}`);
    const did = Number(await one(`SELECT id FROM deployments WHERE model_id = ${mid}`));
    assert.ok(did > 0);
    await visit(`/pricing/${mid}?deployment=${did}`, { h1: /^Edit model pg-model$/, contains: ['upstream-big'] });
    await visit(`/pricing/${mid}`, { h1: /^Edit model pg-model$/, contains: ['upstream-big'] });
    // The primary deployment is dead: the call goes on to the second one.
    const { response } = await sdk(adminKey).chat.completions
      .create({ model: 'pg-model', messages: MESSAGES, max_tokens: 10 }).withResponse();
    settled(dataDir);
    const rid = response.headers.get('x-request-id');
    const rows = await q(`SELECT id, failed_over FROM requests WHERE request_id = '${rid}' ORDER BY attempt`);
    assert.ok(rows.length >= 1);
    assert.ok(rows.length >= 2, 'two attempts: the dead deployment failed over');
    for (const [id, failedOver] of rows) {
      await visit(`/requests/${id}`, { h1: /^Request /, contains: ['Attempts'], errorFlash: failedOver === '1' });
    }
    await visit('/requests', { h1: /^Requests$/ });
    await post(admin, `/pricing/${mid}/deployments/${did}/delete`, {}, `/pricing/${mid}`);
    assert.equal(await one(`SELECT count(*) FROM deployments WHERE model_id = ${mid}`), '0');
    await visit('/pricing', { h1: /^Pricing$/, contains: ['pg-model'] });
    await visit('/providers', { h1: /^Providers$/ });
  });

  dbtest('form: alerts (webhook, balance threshold, key share) and a delivery', async () => {
    await post(admin, '/alerts/webhook', { url: receiver.url }, '/alerts');
    assert.equal(await one(`SELECT url FROM alert_webhooks WHERE org_id = ${orgId}`), receiver.url);
    await post(admin, '/alerts/webhook/rotate', {}, '/alerts');
    settled(dataDir);
    const bal = BigInt(await one(`SELECT balance FROM orgs WHERE id = ${orgId}`));
    // A threshold just under the balance: the next call crosses it.
    const threshold = (bal - 1000n) / 10000n * 10000n;
    const fmt = `${threshold / 1000000n}.${String(threshold % 1000000n).padStart(6, '0')}`;
    await post(admin, '/alerts/balance', { balance: fmt }, '/alerts');
    assert.equal(BigInt(await one(`SELECT value FROM alert_thresholds WHERE org_id = ${orgId} AND kind = 'balance_below'`)), threshold);
    await post(admin, '/alerts/keys', { key_id: String(memberKeyId), percent: '50' }, '/alerts');
    assert.equal(await one(`SELECT value FROM alert_thresholds WHERE key_id = ${memberKeyId}`), '50');
    await visit('/alerts', { h1: /^Budget alerts$/, contains: ['Mo notebook', receiver.url] });
    const { db } = await watchDb(async () => {
      await sdk(adminKey).chat.completions.create({ model: 'fake-big', messages: MESSAGES, max_tokens: 4000, x_fake: { completion_tokens: 4000 } });
      settled(dataDir);
      for (let i = 0; i < 100 && receiver.got.length === 0; i++) await sleep(100);
      await sleep(500);
    });
    record('the call that crosses the balance alert, and its delivery', db);
    assert.ok(receiver.got.length >= 1, 'the webhook got the balance alert');
    // The key share alert: a spend limit the key has used 60 % of, then one more small call.
    settled(dataDir);
    const spent = BigInt(await one(`SELECT -coalesce(sum(amount), 0) FROM ledger_entries WHERE key_id = ${memberKeyId} AND kind = 'usage'`));
    const limit = spent * 10n / 6n;
    await post(admin, `/keys/${memberKeyId}/limits`, { rpm: '120', tpm: '', limit: `${limit / 1000000n}.${String(limit % 1000000n).padStart(6, '0')}`,
      period: 'weekly', models: '', expires: '' }, `/keys/${memberKeyId}`, 'POST /keys/:id/limits (for the key alert)');
    const seen = receiver.got.length;
    const { db: db2 } = await watchDb(async () => {
      await sdk(memberKey).chat.completions.create({ model: 'fake-chat', messages: MESSAGES, max_tokens: 5 });
      settled(dataDir);
      for (let i = 0; i < 100 && receiver.got.length === seen; i++) await sleep(100);
      await sleep(500);
    });
    record('the call that crosses the key share alert, and its delivery', db2);
    assert.ok(receiver.got.length > seen, 'the webhook got the key share alert');
    assert.notEqual(await one(`SELECT fired_at FROM alert_thresholds WHERE key_id = ${memberKeyId}`), '0', 'the key alert fired');
    assert.ok(Number(await one(`SELECT count(*) FROM alert_deliveries WHERE org_id = ${orgId}`)) >= 1);
    await visit('/alerts', { h1: /^Budget alerts$/, contains: ['Recent deliveries'] });
    await visit('/', { h1: /^Acme$/, contains: ['Budget alert'] });
    await fetchOk(member, '/');
    await post(admin, `/alerts/keys/${memberKeyId}/remove`, {}, '/alerts');
    assert.equal(await one(`SELECT count(*) FROM alert_thresholds WHERE key_id = ${memberKeyId}`), '0');
    await post(admin, '/alerts/balance', { action: 'remove', balance: fmt }, '/alerts', 'POST /alerts/balance (remove)');
    assert.equal(await one(`SELECT count(*) FROM alert_thresholds WHERE org_id = ${orgId}`), '0');
    await post(admin, '/alerts/webhook/remove', {}, '/alerts');
    assert.equal(await one(`SELECT count(*) FROM alert_webhooks WHERE org_id = ${orgId}`), '0');
  });

  dbtest('form: change the password, sign out everywhere, sign in again', async () => {
    const fresh = 'member-password-2-new';
    await post(member, '/account/password', { current: MEMBER.password, password: fresh }, '/account');
    MEMBER.password = fresh;
    member = await new Client(srv.url).login(MEMBER.email, MEMBER.password);
    await post(member, '/account/logout-all', {}, '/account');
    assert.equal((await member.get('/')).status, 303, 'the member is signed out');
    member = await new Client(srv.url).login(MEMBER.email, MEMBER.password);
    await fetchOk(member, '/account');
    await visit('/audit', { h1: /^Audit log$/ });
  });

  dbtest('every page once more, after all the forms', async () => {
    for (const p of ['/', '/orgs', `/orgs/${orgId}`, '/users', '/account', '/audit', '/keys', `/keys/${memberKeyId}`,
      '/credits', '/codes', '/usage', '/usage?split=model', '/requests', '/providers', '/pricing', '/alerts']) {
      await visit(p);
    }
    assert.match(run(['audit']), /balances OK/);
  });

  dbtest('sign out', async () => {
    await post(admin, '/logout', {}, '/account');
    assert.equal((await admin.get('/')).status, 303);
  });

  test('the server logged no database errors in the whole run', () => {
    noDbErrors([...new Set(dbLines().map((l) => l.replace(/^\S+ \S+\s+/, '')))], 'the whole run (distinct lines)');
  });
});
