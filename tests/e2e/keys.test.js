// API keys end to end: create in a real browser and read the key once, use it
// on GET /v1/key, revoke and rotate (with and without grace), isolation
// between members and orgs, the key stored and shown nowhere afterwards, the
// CLI, malformed keys, pagination, and screenshots of the pages.
import { sql as dbSql } from './lib/gateway.js';
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, cli } from './lib/harness.js';
import { addUser, addOrg, addMember, Client } from './lib/session.js';
import { launch, screenshot, submitForm } from './lib/browser.js';
import { runAudit } from './lib/audit.js';
import {
  KEY_RE, keyInfo, wellFormedKey, badChecksum, signIn, createInBrowser, rotateInBrowser,
  revokeInBrowser, createWithClient,
} from './lib/keys.js';

const OWNER = { email: 'olive@example.com', name: 'Olive Owner', password: 'owner-password-123' };
const MEL = { email: 'mel@example.com', name: 'Mel Member', password: 'member-password-456' };
const MAX = { email: 'max@example.com', name: 'Max Member', password: 'member-password-789' };
const GUS = { email: 'gus@globex.example', name: 'Gus Globex', password: 'globex-password-12' };
const NORA = { email: 'nora@example.com', name: 'Nora Nobody', password: 'no-org-password-1' };

let srv, browser, owner, ownerPage;
const revealed = []; // every key shown during the suite, to look for later
const ids = {};

function sql(query) {
  return dbSql(srv.dataDir, query);
}

function remember(k) {
  assert.match(k.key, KEY_RE);
  revealed.push(k.key);
  return k;
}

async function expect401(key, pattern, opts) {
  const r = await keyInfo(srv.url, key, opts);
  assert.equal(r.status, 401, `expected 401 for ${String(key).slice(0, 11)}`);
  assert.match(r.headers.get('content-type'), /application\/json/);
  assert.equal(r.body.error.type, 'invalid_request_error');
  assert.equal(r.body.error.code, 'invalid_api_key');
  assert.ok('param' in r.body.error);
  assert.match(r.body.error.message, pattern);
  return r;
}

async function expect200(key, name) {
  const r = await keyInfo(srv.url, key);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  if (name) assert.equal(r.body.data.name, name);
  assert.equal(r.body.data.prefix, key.slice(0, 11));
  return r.body.data;
}

before(async () => {
  srv = await startServer();
  addUser(srv.dataDir, OWNER);
  addUser(srv.dataDir, MEL);
  addUser(srv.dataDir, MAX);
  addUser(srv.dataDir, GUS);
  addUser(srv.dataDir, NORA);
  ids.acme = addOrg(srv.dataDir, 'Acme');
  ids.globex = addOrg(srv.dataDir, 'Globex');
  addMember(srv.dataDir, 'Acme', OWNER.email, 'owner');
  addMember(srv.dataDir, 'Acme', MEL.email, 'member');
  addMember(srv.dataDir, 'Acme', MAX.email, 'member');
  addMember(srv.dataDir, 'Globex', GUS.email, 'owner');
  browser = await launch();
  ({ ctx: owner, page: ownerPage } = await signIn(browser, srv.url, OWNER,
    { permissions: ['clipboard-read', 'clipboard-write'] }));
});

after(async () => {
  await browser?.close();
  runAudit(srv.dataDir);
  assert.equal(await srv.stop(), 0);
  srv.cleanup();
});

describe('API keys', () => {
  test('a: create a key in the browser, read it once, use it on GET /v1/key', async () => {
    await ownerPage.goto(`${srv.url}/keys`);
    assert.match(await ownerPage.textContent('main'), /No API keys yet/);
    await ownerPage.goto(`${srv.url}/keys/new`);
    await screenshot(ownerPage, 'keys-04-new');
    const k = remember(await createInBrowser(ownerPage, srv.url, {
      name: 'Production backend', rpm: '60', tpm: '200000', limit: '25.5', period: 'monthly',
      models: ' gpt-4o , llama-3.1-8b,,gpt-4o', expires: '2099-12-31',
    }));
    ids.prod = k.id;
    // Rendered directly by the POST, never cached.
    assert.equal(k.response.status(), 200);
    assert.match((await k.response.allHeaders())['cache-control'], /no-store/);
    const reveal = await ownerPage.textContent('.reveal');
    assert.match(reveal, /You will not see this key again\./);
    assert.equal(await ownerPage.getAttribute('.reveal button[data-copy]', 'data-copy'), 'new-key');
    // The Copy button puts exactly the key on the clipboard.
    await ownerPage.click('.reveal button[data-copy="new-key"]');
    // The clipboard write is a promise: wait for the button to say so.
    await ownerPage.waitForSelector('.reveal button.copied', { timeout: 5000 });
    assert.match(await ownerPage.textContent('.reveal button'), /Copied/);
    assert.equal(await ownerPage.evaluate(() => navigator.clipboard.readText()), k.key);
    await screenshot(ownerPage, 'keys-02-reveal');

    const data = await expect200(k.key, 'Production backend');
    assert.equal(data.org, 'Acme');
    assert.equal(data.org_id, ids.acme);
    assert.deepEqual(data.limits, {
      rpm: 60, tpm: 200000, spend_limit: '25.50', spend_period: 'monthly',
      allowed_models: ['gpt-4o', 'llama-3.1-8b'],
    });
    assert.equal(data.expires_at, Date.UTC(2099, 11, 31) / 1000);
    assert.ok(Math.abs(data.created_at - Date.now() / 1000) < 120);
    // x-api-key works the same way.
    assert.equal((await keyInfo(srv.url, k.key, { header: 'x-api-key' })).status, 200);

    // The link back leads to the key's page, which does not show the key.
    await Promise.all([ownerPage.waitForLoadState('load'), ownerPage.click('a.btn-primary[href^="/keys/"]')]);
    assert.equal(new URL(ownerPage.url()).pathname, `/keys/${k.id}`);
    const html = await ownerPage.content();
    assert.ok(!html.includes(k.key));
    assert.ok(html.includes(k.key.slice(0, 11)));
    assert.match(await ownerPage.textContent('main'), /gpt-4o/);
    await screenshot(ownerPage, 'keys-03-detail');
  });

  test('the create form explains bad input and keeps what was typed', async () => {
    await ownerPage.goto(`${srv.url}/keys/new`);
    await submitForm(ownerPage, 'form[action="/keys"]', { name: 'Typo', limit: '1.2.3' });
    assert.match(await ownerPage.textContent('.flash-error'), /amount|number|decimal/i);
    assert.equal(await ownerPage.inputValue('#k-name'), 'Typo');
    for (const [fields, msg] of [
      [{ name: '' }, /Give the key a name/],
      [{ name: 'Old', expires: '2001-01-01' }, /must be in the future/],
      [{ name: 'Models', models: 'gpt 4o' }, /letters, digits/],
      [{ name: 'Rate', rpm: '-3' }, /whole number/],
    ]) {
      await ownerPage.goto(`${srv.url}/keys/new`);
      await submitForm(ownerPage, 'form[action="/keys"]', fields);
      assert.match(await ownerPage.textContent('.flash-error'), msg, JSON.stringify(fields));
      assert.equal(await ownerPage.locator('#new-key').count(), 0);
    }
    // The browser stops typing at 100 characters; the server checks anyway.
    const c = await new Client(srv.url).login(OWNER.email, OWNER.password);
    const long = await createWithClient(c, { name: 'x'.repeat(101) });
    assert.equal(long.status, 422);
    assert.match(long.html, /at most 100 characters/);
    assert.equal(long.key, undefined);
    const date = await createWithClient(c, { name: 'Bad date', expires: '31/12/2099' });
    assert.equal(date.status, 422);
    assert.match(date.html, /YYYY-MM-DD/);
  });

  test('an org admin changes limits; the next request sees them', async () => {
    await ownerPage.goto(`${srv.url}/keys/${ids.prod}`);
    await submitForm(ownerPage, `form[action="/keys/${ids.prod}/limits"]`, {
      rpm: '120', tpm: '', limit: '', period: 'none', models: '', expires: '',
    });
    assert.match(await ownerPage.textContent('.flash-ok'), /Limits saved/);
    const data = await expect200(revealed[0]);
    assert.deepEqual(data.limits, { rpm: 120, tpm: null, spend_limit: null, spend_period: 'none', allowed_models: [] });
    assert.equal(data.expires_at, null);
    await submitForm(ownerPage, `form[action="/keys/${ids.prod}/limits"]`, { limit: '-1' });
    assert.match(await ownerPage.textContent('.flash-error'), /.+/);
    await submitForm(ownerPage, `form[action="/keys/${ids.prod}/limits"]`, {
      rpm: '60', limit: '40', period: 'weekly', models: 'gpt-4o, gpt-4o-mini',
    });
    assert.equal((await expect200(revealed[0])).limits.spend_limit, '40.00');
  });

  test('b: revoke in the browser; the very next request gets 401', async () => {
    const k = remember(await createInBrowser(ownerPage, srv.url, { name: 'Short-lived' }));
    await expect200(k.key, 'Short-lived');
    await expect200(k.key); // now served from the server's cache
    await revokeInBrowser(ownerPage, srv.url, k.id);
    assert.match(await ownerPage.textContent('.flash-ok'), /revoked/);
    assert.match(await ownerPage.textContent('.page-head'), /revoked/);
    await expect401(k.key, /revoked/);
    // No revoke button any more, and a second revoke is refused politely.
    assert.equal(await ownerPage.locator(`form[action="/keys/${k.id}/revoke"]`).count(), 0);
    ids.revoked = k.id;
  });

  test('c: rotate with a 1 h grace (both work), and with none (old fails at once)', async () => {
    const a = remember(await createInBrowser(ownerPage, srv.url, { name: 'Nightly batch', rpm: '5', models: 'fake-chat' }));
    const a2 = remember(await rotateInBrowser(ownerPage, srv.url, a.id, 3600));
    assert.notEqual(a2.key, a.key);
    assert.notEqual(a2.id, a.id);
    assert.match(await ownerPage.textContent('main'), /keeps working until .* UTC/);
    assert.match(await ownerPage.textContent('.reveal'), /You will not see this key again\./);
    await screenshot(ownerPage, 'keys-05-rotated');
    const oldData = await expect200(a.key, 'Nightly batch');
    const newData = await expect200(a2.key, 'Nightly batch');
    assert.deepEqual(newData.limits, oldData.limits);
    assert.equal(newData.limits.rpm, 5);
    // The old key's page shows where it went and when it stops.
    await ownerPage.goto(`${srv.url}/keys/${a.id}`);
    assert.match(await ownerPage.textContent('main'), new RegExp(`Replaced by\\s*${a2.key.slice(0, 11)}`));
    assert.match(await ownerPage.textContent('.page-head .badge'), /stops .* UTC/);
    assert.equal(await ownerPage.locator(`form[action="/keys/${a.id}/rotate"]`).count(), 0);
    ids.rotating = a.id;

    const b = remember(await createInBrowser(ownerPage, srv.url, { name: 'Leaked laptop' }));
    await expect200(b.key);
    const b2 = remember(await rotateInBrowser(ownerPage, srv.url, b.id, 0));
    assert.match(await ownerPage.textContent('main'), /has stopped working/);
    await expect401(b.key, /revoked/);
    await expect200(b2.key, 'Leaked laptop');
  });

  test('d: members see and manage only their own keys; admins all of the org', async () => {
    const mel = await new Client(srv.url).login(MEL.email, MEL.password);
    const max = await new Client(srv.url).login(MAX.email, MAX.password);
    const gus = await new Client(srv.url).login(GUS.email, GUS.password);

    // Members get no limit fields, and limits they post anyway are ignored.
    const form = await (await mel.get('/keys/new')).text();
    assert.ok(!form.includes('name="rpm"'));
    const melKey = await createWithClient(mel, { name: 'Mel notebook', rpm: '1', limit: '0.01', models: 'x' });
    assert.equal(melKey.status, 200);
    remember(melKey);
    assert.deepEqual((await expect200(melKey.key, 'Mel notebook')).limits,
      { rpm: null, tpm: null, spend_limit: null, spend_period: 'none', allowed_models: [] });
    const maxKey = remember(await createWithClient(max, { name: 'Max secret project' }));
    const gusKey = remember(await createWithClient(gus, { name: 'Globex prod' }));

    const melList = await (await mel.get('/keys')).text();
    assert.ok(melList.includes('Mel notebook'));
    assert.ok(!melList.includes('Max secret project'));
    assert.ok(!melList.includes(maxKey.key.slice(0, 11)));
    assert.ok(!melList.includes('Production backend'));
    assert.ok(!melList.includes('Globex prod'));

    // Another member's key, and any key of another org: 404 for GET and POSTs.
    for (const id of [maxKey.id, gusKey.id, ids.prod]) {
      assert.equal((await mel.get(`/keys/${id}`)).status, 404, `GET /keys/${id}`);
      for (const action of ['revoke', 'rotate', 'limits']) {
        const res = await mel.post(`/keys/${id}/${action}`, { grace: '0', rpm: '1' }, '/keys');
        assert.equal(res.status, 404, `POST /keys/${id}/${action}`);
      }
    }
    // Even the Acme owner cannot reach Globex's key.
    assert.equal((await new Client(srv.url).login(OWNER.email, OWNER.password)
      .then((c) => c.get(`/keys/${gusKey.id}`))).status, 404);
    await expect200(maxKey.key);
    await expect200(gusKey.key);
    // A member may not set limits on their own key either.
    assert.equal((await mel.post(`/keys/${melKey.id}/limits`, { rpm: '1' }, '/keys')).status, 404);

    // Without an organization there is nothing to list or create.
    const nora = await new Client(srv.url).login(NORA.email, NORA.password);
    const noraList = await nora.get('/keys');
    assert.equal(noraList.status, 200);
    assert.match(await noraList.text(), /do not belong to an organization/);
    assert.equal((await nora.get('/keys/new')).status, 404);
    assert.equal((await nora.post('/keys', { name: 'orphan' }, '/keys')).status, 404);
    assert.equal((await nora.get(`/keys/${melKey.id}`)).status, 404);

    // A member revokes their own key.
    const res = await mel.post(`/keys/${melKey.id}/revoke`, {}, `/keys/${melKey.id}`);
    assert.equal(res.status, 303);
    await expect401(melKey.key, /revoked/);

    // The org admin sees Max's key in the list, opens it and revokes it.
    await ownerPage.goto(`${srv.url}/keys`);
    const row = ownerPage.locator('table.data tbody tr', { hasText: 'Max secret project' });
    assert.match(await row.textContent(), /Max Member/);
    await revokeInBrowser(ownerPage, srv.url, maxKey.id);
    assert.match(await ownerPage.textContent('.flash-ok'), /revoked/);
    await expect401(maxKey.key, /revoked/);
  });

  test('the list filters by status and shows spend, owner and badges', async () => {
    await ownerPage.goto(`${srv.url}/keys?status=revoked`);
    let text = await ownerPage.textContent('table.data');
    assert.match(text, /Short-lived/);
    assert.doesNotMatch(text, /Production backend/);
    await ownerPage.goto(`${srv.url}/keys?status=active`);
    text = await ownerPage.textContent('table.data');
    assert.match(text, /Production backend/);
    assert.match(text, /Nightly batch/); // new one active, old one rotating
    assert.doesNotMatch(text, /Short-lived|Max secret project/);
    await ownerPage.goto(`${srv.url}/keys`);
    const rows = await ownerPage.locator('table.data tbody tr').allTextContents();
    const prod = rows.find((r) => r.includes('Production backend'));
    assert.match(prod, /0\.00\s+of 40\.00 this week/);
    assert.match(prod, /Olive Owner/);
    assert.match(prod, /expires|active/);
    assert.ok(rows.some((r) => /Short-lived[\s\S]*revoked/.test(r)));
    assert.ok(rows.some((r) => /Nightly batch[\s\S]*stops/.test(r)));
    await screenshot(ownerPage, 'keys-01-list');
  });

  test('f: the CLI creates (key alone on stdout), lists and revokes keys', async () => {
    const r = cli(srv.dataDir, ['keys', 'create', '--org', 'Acme', '--name', 'cron job', '--rpm', '7',
      '--limit', '3', '--period', 'daily', '--models', 'a,b', '--expires', '2099-01-01']);
    assert.equal(r.code, 0, r.stderr);
    const key = r.stdout.trim();
    assert.match(key, KEY_RE);
    assert.equal(r.stdout, `${key}\n`, 'only the key on stdout');
    assert.ok(r.stderr.includes(key.slice(0, 11)));
    assert.ok(!r.stderr.includes(key));
    revealed.push(key);
    const data = await expect200(key, 'cron job');
    assert.deepEqual(data.limits, { rpm: 7, tpm: null, spend_limit: '3.00', spend_period: 'daily', allowed_models: ['a', 'b'] });

    const list = cli(srv.dataDir, ['keys', 'list', '--org', 'Acme']);
    assert.equal(list.code, 0, list.stderr);
    const line = list.stdout.split('\n').find((l) => l.startsWith(key.slice(0, 11)));
    assert.ok(line, list.stdout);
    assert.match(line, /active .*cron job$/);
    assert.match(list.stdout, /revoked .*Short-lived/);
    assert.ok(!list.stdout.includes(key));

    const rv = cli(srv.dataDir, ['keys', 'revoke', key.slice(0, 11)]);
    assert.equal(rv.code, 0, rv.stderr);
    // Changed by another process: the server's cache must not keep it alive.
    await expect401(key, /revoked/);
    assert.match(cli(srv.dataDir, ['keys', 'list', '--org', 'Acme']).stdout,
      new RegExp(`${key.slice(0, 11)}\\s+revoked`));
    assert.equal(cli(srv.dataDir, ['keys', 'revoke', key.slice(0, 11)]).code, 1);

    // Prefix errors: too short, unknown, ambiguous.
    assert.equal(cli(srv.dataDir, ['keys', 'revoke', 'tg_']).code, 2);
    const unknown = cli(srv.dataDir, ['keys', 'revoke', 'tg_zzzzzzzz']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no key starts with/);
    const k1 = cli(srv.dataDir, ['keys', 'create', '--org', 'Globex', '--name', 'twin one']).stdout.trim();
    const k2 = cli(srv.dataDir, ['keys', 'create', '--org', 'Globex', '--name', 'twin two']).stdout.trim();
    revealed.push(k1, k2);
    sql(`UPDATE api_keys SET prefix = 'tg_AMBIG' || id WHERE prefix IN ('${k1.slice(0, 11)}', '${k2.slice(0, 11)}')`);
    const amb = cli(srv.dataDir, ['keys', 'revoke', 'tg_AMBIG']);
    assert.equal(amb.code, 1);
    assert.match(amb.stderr, /several keys/);
    assert.equal((await keyInfo(srv.url, k1)).status, 200);
    assert.equal((await keyInfo(srv.url, k2)).status, 200);

    // Bad options are refused before anything is created.
    for (const args of [['--rpm', 'many'], ['--period', 'weekly'], ['--limit', '1,5'], ['--expires', 'soon']]) {
      const bad = cli(srv.dataDir, ['keys', 'create', '--org', 'Acme', '--name', 'bad', ...args]);
      assert.equal(bad.code, 2, args.join(' '));
      assert.equal(bad.stdout, '');
    }
    assert.equal(cli(srv.dataDir, ['keys', 'create', '--org', 'Nope', '--name', 'x']).code, 1);
  });

  test('g: malformed keys and bad checksums get 401 saying so; unknown and missing too', async () => {
    await expect401('tg_abc', /malformed/);
    await expect401(badChecksum(revealed[0]), /malformed/);
    await expect401(badChecksum(revealed[0]), /malformed/, { header: 'x-api-key' });
    await expect401(`${revealed[0]}x`, /malformed/);
    await expect401('sk-proj-0123456789abcdef0123456789abcdef01', /malformed/);
    await expect401(wellFormedKey(), /not recognized/);
    await expect401(undefined, /Missing API key/);
    const basic = await fetch(`${srv.url}/v1/key`, { headers: { Authorization: `Basic ${revealed[0]}` } });
    assert.equal(basic.status, 401);
    assert.match((await basic.json()).error.message, /Bearer/);
    assert.equal(basic.headers.get('www-authenticate'), 'Bearer');
  });

  test('keyset pagination: 50 keys a page, no repeats, no gaps', async () => {
    addOrg(srv.dataDir, 'Bulk');
    addMember(srv.dataDir, 'Bulk', OWNER.email, 'owner');
    for (let i = 1; i <= 53; i++) {
      const r = cli(srv.dataDir, ['keys', 'create', '--org', 'Bulk', '--name', `bulk ${String(i).padStart(2, '0')}`]);
      assert.equal(r.code, 0, r.stderr);
      revealed.push(r.stdout.trim());
    }
    const c = await new Client(srv.url).login(OWNER.email, OWNER.password);
    const bulk = Number(sql("SELECT id FROM orgs WHERE name = 'Bulk'"));
    assert.equal((await c.post('/switch-org', { org_id: String(bulk) }, '/keys')).status, 303);
    const names = (html) => [...html.matchAll(/>(bulk \d\d)</g)].map((m) => m[1]);
    const first = await (await c.get('/keys')).text();
    assert.equal(names(first).length, 50);
    assert.equal(names(first)[0], 'bulk 53');
    const next = first.match(/href="(\/keys\?after=\d+)"/)[1];
    const second = await (await c.get(next)).text();
    assert.deepEqual(names(second), ['bulk 03', 'bulk 02', 'bulk 01']);
    assert.ok(!/href="\/keys\?after=/.test(second));
    assert.equal((await c.get('/keys?status=bogus&after=abc')).status, 200);
  });

  test('e: after the reveal the key is nowhere: logs, database, pages', async () => {
    assert.ok(revealed.length >= 60);
    const owner2 = await new Client(srv.url).login(OWNER.email, OWNER.password);
    const mel = await new Client(srv.url).login(MEL.email, MEL.password);
    const pages = [];
    for (const c of [owner2, mel]) {
      for (const path of ['/keys', '/keys?status=active', '/keys?status=revoked', '/keys?status=expired', '/audit', '/']) {
        pages.push([path, await (await c.get(path)).text()]);
      }
    }
    for (const id of sql('SELECT id FROM api_keys WHERE org_id = ' + ids.acme).split('\n')) {
      pages.push([`/keys/${id}`, await (await owner2.get(`/keys/${id}`)).text()]);
    }
    const audit = pages.find(([p]) => p === '/audit')[1];
    for (const action of ['key.create', 'key.revoke', 'key.rotate', 'key.limits']) {
      assert.ok(audit.includes(action), `audit has ${action}`);
    }
    assert.ok(audit.includes(revealed[0].slice(0, 11)), 'audit names the prefix');

    const db = join(srv.dataDir, 'tollgate.db');
    const files = [db, `${db}-wal`].filter((f) => existsSync(f)).map((f) => readFileSync(f));
    const logs = srv.stdout() + srv.stderr();
    for (const key of revealed) {
      const secret = key.slice(11); // the part never shown after the reveal
      for (const [path, html] of pages) {
        assert.ok(!html.includes(secret), `a key appears in ${path}`);
      }
      assert.ok(!logs.includes(secret), 'a key appears in the server output');
      for (const buf of files) {
        assert.equal(buf.indexOf(key), -1, 'a key is stored in the database');
        assert.equal(buf.indexOf(secret), -1, 'part of a key is stored in the database');
      }
    }
    // What is stored: 32-byte hashes (no key text) and the display prefixes.
    const rows = sql('SELECT prefix, length(key_hash), hex(key_hash) FROM api_keys').split('\n');
    assert.ok(rows.length >= revealed.length);
    for (const row of rows) {
      const [prefix, len, hex] = row.split('|');
      assert.equal(Number(len), 32);
      assert.match(prefix, /^tg_/);
      assert.ok(!revealed.some((k) => Buffer.from(k).toString('hex').toUpperCase().includes(hex)));
    }
    assert.ok(files.some((b) => b.indexOf(revealed[0].slice(0, 11)) >= 0), 'the prefix is stored');
  });

  test('h: the pages fit a phone', async () => {
    const { ctx, page } = await signIn(browser, srv.url, OWNER, { viewport: { width: 390, height: 844 } });
    for (const path of ['/keys', `/keys/${ids.rotating}`, '/keys/new']) {
      await page.goto(`${srv.url}${path}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 1, `${path}: no horizontal overflow (got ${overflow}px)`);
    }
    await page.goto(`${srv.url}/keys/${ids.rotating}`);
    await screenshot(page, 'keys-06-phone-detail');
    await ctx.close();
  });

  test('the create form offers the priced models; ticking one restricts the key', async () => {
    await ownerPage.goto(`${srv.url}/keys/new`);
    const offered = await ownerPage.locator('form[action="/keys"] input[type="checkbox"][name="models"]')
      .evaluateAll((els) => els.map((e) => e.value));
    for (const m of ['echo-embed', 'echo-large', 'echo-small']) assert.ok(offered.includes(m), m);
    await ownerPage.locator('form[action="/keys"] input[type="checkbox"][value="echo-small"]').check();
    await submitForm(ownerPage, 'form[action="/keys"]', { name: 'Only small' });
    const made = {
      key: (await ownerPage.textContent('.reveal #new-key')).trim(),
      id: Number((await ownerPage.getAttribute('a.btn-primary[href^="/keys/"]', 'href')).split('/').pop()),
    };
    const info = await keyInfo(srv.url, made.key);
    assert.equal(info.status, 200);
    assert.deepEqual(info.body.data.limits.allowed_models, ['echo-small']);
    // The detail page shows it ticked, and the free-text field holds only unpriced names.
    await ownerPage.goto(`${srv.url}/keys/${made.id}`);
    assert.equal(await ownerPage.locator('input[type="checkbox"][value="echo-small"]').isChecked(), true);
    assert.equal(await ownerPage.locator('input[type="checkbox"][value="echo-large"]').isChecked(), false);
    assert.equal(await ownerPage.locator('input#k-models').inputValue(), '');
  });
});
