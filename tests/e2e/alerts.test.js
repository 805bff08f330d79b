// Budget alerts end to end: a real gateway, real calls with the openai SDK,
// a small webhook receiver on 127.0.0.1 that records every POST, the alerts
// page driven in Chromium, and the banner members see while a condition
// holds. Each crossing must reach the receiver exactly once, signed with
// HMAC-SHA256 of the body keyed with the secret shown once.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startGateway, createKey, balance, grant, micro, sql as dbSql } from './lib/gateway.js';
import { addUser, addMember, Client } from './lib/session.js';
import { launch, screenshot, submitForm } from './lib/browser.js';
import { signIn } from './lib/keys.js';
import { runAudit } from './lib/audit.js';

const OWNER = { email: 'owner@example.com', password: 'owner-password-1' }; // instance admin (startGateway)
const MEMBER = { email: 'mia@example.com', name: 'Mia Member', password: 'member-password-1' };
const MESSAGES = [{ role: 'user', content: 'Spend a little.' }];

let gw, key, client, receiver, browser, ownerPage, memberPage, secret;

// --- the webhook receiver -------------------------------------------------
function startReceiver() {
  const got = [];
  const rx = { got, fail: 0, url: '' };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      got.push({ method: req.method, url: req.url, headers: req.headers, raw, body: JSON.parse(raw.toString('utf8')) });
      if (rx.fail > 0) { rx.fail--; res.writeHead(500); res.end('try again'); return; }
      res.writeHead(204); res.end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    rx.url = `http://127.0.0.1:${server.address().port}/hooks/tollgate?src=e2e`;
    rx.stop = () => new Promise((r) => server.close(r));
    resolve(rx);
  }));
}

// Wait until the receiver holds n requests, then a little longer to catch extras.
async function waitForPosts(n, { settle = 1200, timeout = 15000 } = {}) {
  const start = Date.now();
  while (receiver.got.length < n) {
    if (Date.now() - start > timeout) throw new Error(`receiver got ${receiver.got.length} POSTs, wanted ${n}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, settle));
  return receiver.got;
}

function verify(req) {
  const sig = req.headers['x-tollgate-signature'];
  assert.match(sig, /^sha256=[0-9a-f]{64}$/);
  const want = createHmac('sha256', secret).update(req.raw).digest();
  assert.ok(timingSafeEqual(Buffer.from(sig.slice(7), 'hex'), want), 'signature matches the body');
}

// money_format_short: at least two decimals, further trailing zeros dropped.
function fmt(m) {
  const neg = m < 0n;
  const a = neg ? -m : m;
  let frac = String(a % 1000000n).padStart(6, '0');
  while (frac.length > 2 && frac.endsWith('0')) frac = frac.slice(0, -1);
  return `${neg ? '-' : ''}${a / 1000000n}.${frac}`;
}

function sql(query) {
  return dbSql(gw.srv.dataDir, query);
}

function sdk(apiKey) {
  return new OpenAI({ apiKey, baseURL: `${gw.srv.url}/v1`, maxRetries: 0, timeout: 20_000 });
}

// One call of about 0.04 credits (4000 output tokens at 10.00 / 1M).
async function spend(c = client) {
  const { response } = await c.chat.completions
    .create({ model: 'fake-big', messages: MESSAGES, max_tokens: 4000, x_fake: { completion_tokens: 4000 } })
    .withResponse();
  return micro(response.headers.get('x-credits-remaining'));
}

before(async () => {
  // The receiver listens on loopback: this operator allows private webhook targets.
  gw = await startGateway({ credits: '2', serverArgs: ['--webhook-private-ok', '1'] });
  addUser(gw.srv.dataDir, MEMBER);
  addMember(gw.srv.dataDir, 'Acme', MEMBER.email, 'member');
  key = createKey(gw.srv.dataDir, 'Acme', 'batch jobs');
  client = sdk(key);
  receiver = await startReceiver();
  browser = await launch();
  ({ page: ownerPage } = await signIn(browser, gw.srv.url, OWNER));
  ({ page: memberPage } = await signIn(browser, gw.srv.url, MEMBER));
});

after(async () => {
  await browser?.close();
  await receiver?.stop();
  if (gw) {
    runAudit(gw.srv.dataDir);
    assert.equal(await gw.srv.stop(), 0, 'the server stops cleanly (the alert thread included)');
    assert.doesNotMatch(gw.srv.stderr(), /Sanitizer/);
    await gw.stop();
  }
});

describe('budget alerts', () => {
  test('only org admins open /alerts; the nav shows it to them', async () => {
    await ownerPage.goto(`${gw.srv.url}/alerts`);
    assert.match(await ownerPage.textContent('h1'), /Budget alerts/);
    assert.equal(await ownerPage.locator('nav a[href="/alerts"]').count(), 1);
    await screenshot(ownerPage, 'alerts-01-empty');
    const res = await memberPage.goto(`${gw.srv.url}/alerts`);
    assert.equal(res.status(), 404);
    assert.equal(await memberPage.locator('nav a[href="/alerts"]').count(), 0);
    const mia = await new Client(gw.srv.url).login(MEMBER.email, MEMBER.password);
    const post = await mia.post('/alerts/balance', { balance: '1.00' }, '/');
    assert.equal(post.status, 404);
    assert.equal(sql('SELECT count(*) FROM alert_thresholds'), '0');
  });

  test('bad input is refused with a clear message and a 422', async () => {
    const c = await new Client(gw.srv.url).login(OWNER.email, OWNER.password);
    const cases = [
      ['/alerts/webhook', { url: 'ftp://example.com/hook' }, /must start with http:\/\/ or https:\/\//],
      ['/alerts/webhook', { url: 'https://example.com/a\r\nX-Evil: 1' }, /line breaks/],
      ['/alerts/webhook', { url: `https://example.com/${'a'.repeat(500)}` }, /too long/],
      ['/alerts/balance', { balance: 'lots' }, /amount|number|credits/i],
      ['/alerts/balance', { balance: '0' }, /more than zero/],
      ['/alerts/keys', { key_id: '999', percent: '50' }, /Choose one of this organization&#39;s keys|Choose one of this organization's keys/],
      ['/alerts/keys', { key_id: '1', percent: '150' }, /between 1 and 100/],
    ];
    for (const [path, fields, msg] of cases) {
      const res = await c.post(path, fields, '/alerts');
      assert.equal(res.status, 422, `${path} ${JSON.stringify(fields)}`);
      const html = await res.text();
      assert.match(html, /class="flash flash-error"/);
      assert.match(html, msg);
    }
    // What was typed comes back in the form.
    const res = await c.post('/alerts/balance', { balance: '12,5' }, '/alerts');
    assert.match(await res.text(), /value="12,5"/);
    assert.equal(sql('SELECT count(*) FROM alert_thresholds') + sql('SELECT count(*) FROM alert_webhooks'), '00');
  });

  test('the webhook secret is shown once and stored sealed', async () => {
    await ownerPage.goto(`${gw.srv.url}/alerts`);
    await submitForm(ownerPage, '#webhook-form', { url: receiver.url });
    secret = (await ownerPage.textContent('#webhook-secret')).trim();
    assert.match(secret, /^whsec_[A-Za-z0-9_-]{43}$/);
    assert.match(await ownerPage.textContent('.reveal'), /You will not see this secret again/);
    await screenshot(ownerPage, 'alerts-02-secret');
    await ownerPage.goto(`${gw.srv.url}/alerts`);
    assert.ok(!(await ownerPage.content()).includes(secret));
    assert.equal(sql(`SELECT count(*) FROM alert_webhooks WHERE secret LIKE '%${secret.slice(6, 20)}%'`), '0');
    assert.equal(sql("SELECT url FROM alert_webhooks"), receiver.url);
  });

  test('a balance crossing POSTs exactly once, signed; later calls do not re-fire', async () => {
    const start = balance(gw.srv.dataDir, 'Acme');
    const threshold = start - 100000n; // 0.10 credits below the balance now
    await ownerPage.goto(`${gw.srv.url}/alerts`);
    await submitForm(ownerPage, '#balance-form', { balance: fmt(threshold) });
    assert.match(await ownerPage.textContent('.flash'), /Balance alert saved/);
    assert.equal(receiver.got.length, 0);

    // Spend until the balance is below the threshold, remembering the crossing call.
    let crossedAt = null;
    let prev = start;
    for (let i = 0; i < 10 && crossedAt === null; i++) {
      const now = await spend();
      if (prev >= threshold && now < threshold) crossedAt = now;
      prev = now;
    }
    assert.ok(crossedAt !== null, 'the balance crossed the threshold');
    for (let i = 0; i < 3; i++) await spend(); // still below: nothing new
    const got = await waitForPosts(1);
    assert.equal(got.length, 1, 'exactly one POST for one crossing');
    const req = got[0];
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/hooks/tollgate?src=e2e');
    assert.match(req.headers['content-type'], /^application\/json/);
    verify(req);
    const orgId = Number(sql("SELECT id FROM orgs WHERE name = 'Acme'"));
    const { id, at, ...rest } = req.body;
    assert.match(id, /^evt_[0-9a-f]{24}$/);
    assert.ok(Math.abs(at - Date.now() / 1000) < 60);
    assert.deepEqual(rest, {
      type: 'budget.threshold_crossed', org: 'Acme', org_id: orgId, key: null,
      threshold: { kind: 'balance_below', value: fmt(threshold) },
      current: { balance: fmt(crossedAt) },
    });
    assert.equal(sql("SELECT count(*) || '|' || min(ok) || '|' || min(status) FROM alert_deliveries"), '1|1|204');
  });

  test('members see the banner while the balance is below the threshold', async () => {
    await memberPage.goto(`${gw.srv.url}/`);
    const banner = memberPage.locator('.flash.flash-warn.budget-alert');
    assert.equal(await banner.count(), 1);
    assert.match(await banner.textContent(), /The balance of Acme is [0-9.]+ credits, below the alert threshold of [0-9.]+\./);
    assert.equal(await banner.locator('a[href="/alerts"]').count(), 0, 'members get no manage link');
    await screenshot(memberPage, 'alerts-03-banner-member');
    await memberPage.goto(`${gw.srv.url}/keys`);
    assert.equal(await memberPage.locator('.budget-alert').count(), 1, 'on every page');
    await ownerPage.goto(`${gw.srv.url}/credits`);
    assert.equal(await ownerPage.locator('.budget-alert a[href="/alerts"]').count(), 1);
  });

  test('a grant that lifts the balance re-arms it; the next crossing fires again', async () => {
    const threshold = micro(sql("SELECT printf('%d.%06d', value / 1000000, value % 1000000) FROM alert_thresholds WHERE key_id IS NULL"));
    const now = balance(gw.srv.dataDir, 'Acme');
    const lift = threshold - now + 80000n; // 0.08 above the threshold afterwards
    grant(gw.srv.dataDir, 'Acme', fmt(lift));
    await memberPage.goto(`${gw.srv.url}/`);
    assert.equal(await memberPage.locator('.budget-alert').count(), 0, 'the banner is gone once the condition clears');
    let crossedAt = null;
    let prev = balance(gw.srv.dataDir, 'Acme');
    for (let i = 0; i < 10 && crossedAt === null; i++) {
      const b = await spend();
      if (prev >= threshold && b < threshold) crossedAt = b;
      prev = b;
    }
    assert.ok(crossedAt !== null);
    await spend();
    const got = await waitForPosts(2);
    assert.equal(got.length, 2, 'one more POST for the second crossing');
    verify(got[1]);
    assert.notEqual(got[1].body.id, got[0].body.id);
    assert.deepEqual(got[1].body.current, { balance: fmt(crossedAt) });
    // Removing the balance alert clears the banner.
    await ownerPage.goto(`${gw.srv.url}/alerts`);
    await Promise.all([ownerPage.waitForLoadState('load'), ownerPage.click('#balance-form button[name="action"][value="remove"]')]);
    assert.match(await ownerPage.textContent('.flash'), /Balance alert removed/);
    assert.equal(await ownerPage.locator('.budget-alert').count(), 0);
  });

  test('a key-share alert at 50% fires once when a limited key crosses half, retried on failure', async () => {
    grant(gw.srv.dataDir, 'Acme', '5');
    const limited = createKey(gw.srv.dataDir, 'Acme', 'nightly eval', ['--limit', '0.4', '--period', 'monthly']);
    const keyId = Number(sql("SELECT id FROM api_keys WHERE name = 'nightly eval'"));
    const prefix = sql(`SELECT prefix FROM api_keys WHERE id = ${keyId}`);
    await ownerPage.goto(`${gw.srv.url}/alerts`);
    await submitForm(ownerPage, '#key-form', { key_id: String(keyId), percent: '50' });
    assert.match(await ownerPage.textContent('.flash'), /Key spend alert saved/);
    const c = sdk(limited);
    const before = receiver.got.length;
    receiver.fail = 1; // the first attempt gets a 500: the second one delivers
    let spent = 0n;
    let crossedSpent = null;
    for (let i = 0; i < 7; i++) {
      const b0 = balance(gw.srv.dataDir, 'Acme');
      const b1 = await spend(c);
      spent += b0 - b1;
      if (crossedSpent === null && spent >= 200000n) crossedSpent = spent;
    }
    assert.ok(spent > 240000n && spent < 400000n);
    const got = (await waitForPosts(before + 2, { settle: 2500 })).slice(before);
    assert.equal(got.length, 2, 'one event, delivered on the second attempt');
    assert.equal(got[0].body.id, got[1].body.id, 'a retry carries the same event');
    assert.equal(got[0].raw.toString(), got[1].raw.toString());
    verify(got[1]);
    const { id, at, ...rest } = got[1].body;
    assert.ok(id && at);
    assert.deepEqual(rest, {
      type: 'budget.threshold_crossed', org: 'Acme', org_id: got[1].body.org_id,
      key: { id: keyId, prefix, name: 'nightly eval' },
      threshold: { kind: 'key_share', value: '50%' },
      current: { spent: rest.current.spent, limit: '0.40' },
    });
    // Evaluated after the debit that crossed (possibly a little later).
    assert.ok(micro(rest.current.spent) >= crossedSpent && micro(rest.current.spent) <= spent);
    assert.equal(sql(`SELECT group_concat(attempt || ':' || status || ':' || ok, ',') FROM (SELECT * FROM alert_deliveries WHERE event_id = '${id}' ORDER BY id)`), '1:500:0,2:204:1');

    // The banner names the key; the page lists the attempts.
    await memberPage.goto(`${gw.srv.url}/`);
    assert.match(await memberPage.textContent('.budget-alert'), new RegExp(`Key ${prefix}… \\(nightly eval\\) has spent [0-9.]+ of its 0\\.40 credit limit this month, at or over its 50% alert\\.`));
    await ownerPage.goto(`${gw.srv.url}/alerts`);
    const table = await ownerPage.textContent('#deliveries');
    assert.match(table, /failed/);
    assert.match(table, /answered HTTP 500/);
    assert.match(table, /delivered/);
    await screenshot(ownerPage, 'alerts-04-page');
  });

  test('changes go to the audit log, without the secret or the webhook path', async () => {
    const rows = sql("SELECT action || '|' || detail FROM audit_log WHERE action LIKE 'alerts.%' ORDER BY id").split('\n');
    const actions = rows.map((r) => r.split('|')[0]);
    for (const a of ['alerts.webhook_create', 'alerts.balance', 'alerts.balance_remove', 'alerts.key']) assert.ok(actions.includes(a), a);
    const all = rows.join('\n');
    assert.ok(!all.includes(secret));
    assert.ok(!all.includes('/hooks/tollgate'), 'only the origin of the URL is logged');
    assert.ok(!gw.srv.stderr().includes(secret) && !gw.srv.stdout().includes(secret));
  });

  test('rotating the secret shows a new one that signs the next events', async () => {
    await ownerPage.goto(`${gw.srv.url}/alerts`);
    ownerPage.once('dialog', (d) => d.accept());
    await Promise.all([ownerPage.waitForLoadState('load'), ownerPage.click('form[action="/alerts/webhook/rotate"] button')]);
    const next = (await ownerPage.textContent('#webhook-secret')).trim();
    assert.notEqual(next, secret);
    secret = next;
    // A new threshold above the balance is not a crossing; a grant and spend across it is.
    const now = balance(gw.srv.dataDir, 'Acme');
    const c = await new Client(gw.srv.url).login(OWNER.email, OWNER.password);
    assert.equal((await c.post('/alerts/balance', { balance: fmt(now - 60000n) }, '/alerts')).status, 303);
    const before = receiver.got.length;
    for (let i = 0; i < 3; i++) await spend();
    const got = (await waitForPosts(before + 1)).slice(before);
    assert.equal(got.length, 1);
    verify(got[0]);
  });
});

describe('webhook targets without webhook_private_ok (the default)', () => {
  let gw2;

  after(async () => {
    if (gw2) {
      assert.equal(await gw2.srv.stop(), 0);
      await gw2.stop();
    }
  });

  test('a private address is refused when saved, and a name that resolves to one when delivering', async () => {
    gw2 = await startGateway({ credits: '2' });
    const c = await new Client(gw2.srv.url).login(OWNER.email, OWNER.password);
    for (const url of [receiver.url, 'http://169.254.169.254/latest/meta-data/', 'http://[::1]:8081/x', 'http://10.0.0.8/hook']) {
      const res = await c.post('/alerts/webhook', { url }, '/alerts');
      assert.equal(res.status, 422, url);
      assert.match(await res.text(), /loopback, private or link-local address[\s\S]*webhook_private_ok = 1/, url);
    }
    assert.equal(dbSql(gw2.srv.dataDir, 'SELECT count(*) FROM alert_webhooks'), '0');

    // A host name passes the form; the address it resolves to is checked on connect.
    const port = new URL(receiver.url).port;
    const res = await c.post('/alerts/webhook', { url: `http://localhost:${port}/hooks/tollgate?src=private` }, '/alerts');
    assert.equal(res.status, 200);
    assert.match(await res.text(), /whsec_/);
    const start = balance(gw2.srv.dataDir, 'Acme');
    assert.equal((await c.post('/alerts/balance', { balance: fmt(start - 60000n) }, '/alerts')).status, 303);
    const c2 = new OpenAI({ apiKey: createKey(gw2.srv.dataDir, 'Acme', 'private-target'), baseURL: `${gw2.srv.url}/v1`, maxRetries: 0 });
    for (let i = 0; i < 3; i++) await spend(c2);
    let row = '';
    for (let i = 0; i < 100 && !row; i++) {
      await new Promise((r) => setTimeout(r, 50));
      row = dbSql(gw2.srv.dataDir, 'SELECT ok || \'|\' || status || \'|\' || error FROM alert_deliveries WHERE attempt = 1');
    }
    // The tenant reads a fixed reason; the address itself goes to the server's log only.
    assert.equal(row, '0|0|refused: the host resolves to an address that is not public');
    assert.match(gw2.srv.stderr(), /a webhook host resolved to (127\.0\.0\.1|::1), not a public address/);
    // Not retried: the next attempt would be refused again (retries come 1 s apart).
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(dbSql(gw2.srv.dataDir, 'SELECT count(*) FROM alert_deliveries'), '1');
    assert.ok(!receiver.got.some((g) => g.url.includes('src=private')), 'nothing reached the receiver');
  });
});
