// Usage, charts and the request log: real calls with the openai SDK through
// two members' keys and two models (and one failing call), then the overview,
// /usage (charts, totals, filters, CSV) and /requests in Chromium and over
// HTTP, checked against the ledger itself.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startGateway, balance, expectedCost, micro, sql as dbSql } from './lib/gateway.js';
import { addUser, addMember, addOrg, Client } from './lib/session.js';
import { createWithClient } from './lib/keys.js';
import { launch, screenshot, submitForm } from './lib/browser.js';
import { runAudit } from './lib/audit.js';

const ADMIN = { email: 'owner@example.com', password: 'owner-password-1' };
const MO = { email: 'mo@example.com', name: 'Mo Member', password: 'member-password-1' };
const MIA = { email: 'mia@example.com', name: 'Mia Member', password: 'member-password-2' };
const MESSAGES = [{ role: 'user', content: 'Count the tokens of this sentence, please.' }];

let gw, browser, ctx, page;
let mo, mia, moKey, miaKey, startBalance;
const calls = []; // { key: 'mo'|'mia', model, cost, requestId, status }

function sql(query) {
  return dbSql(gw.srv.dataDir, query);
}

// Sum of the ledger's usage debits (micro-credits, positive), with an
// optional condition on the joined request row.
function ledgerUsage(where = '1') {
  return BigInt(sql(`SELECT coalesce(-sum(e.amount), 0) FROM ledger_entries e
    LEFT JOIN requests r ON r.request_id = e.request_id WHERE e.kind = 'usage' AND ${where}`));
}

function sdk(apiKey) {
  return new OpenAI({ apiKey, baseURL: `${gw.srv.url}/v1`, maxRetries: 0, timeout: 20_000 });
}

async function call(who, key, model, extra = {}) {
  const { data, response } = await sdk(key).chat.completions
    .create({ model, messages: MESSAGES, max_tokens: 40, ...extra }).withResponse();
  const cost = expectedCost(model, data.usage);
  calls.push({ key: who, model, cost, requestId: response.headers.get('x-request-id'), status: 200, usage: data.usage });
}

function parseCsv(text) {
  return text.trim().split('\r\n').map((line) => line.split(','));
}

// "1.234567 credits" -> micro-credits.
async function moneyText(locator) {
  return micro((await locator.innerText()).trim().split(/\s+/)[0]);
}

// Bars with a non-zero height in the n-th chart of the page (legend swatches excluded).
async function barCount(p, chartSelector) {
  return p.locator(`${chartSelector} .chart svg rect.bar:not(.swatch)`).evaluateAll(
    (els) => els.filter((e) => Number(e.getAttribute('height')) > 0).length);
}

before(async () => {
  gw = await startGateway({ credits: '100' });
  addUser(gw.srv.dataDir, MO);
  addUser(gw.srv.dataDir, MIA);
  addMember(gw.srv.dataDir, 'Acme', MO.email, 'member');
  addMember(gw.srv.dataDir, 'Acme', MIA.email, 'member');
  addOrg(gw.srv.dataDir, 'Globex');
  mo = await new Client(gw.srv.url).login(MO.email, MO.password);
  mia = await new Client(gw.srv.url).login(MIA.email, MIA.password);
  moKey = await createWithClient(mo, { name: 'Mo notebook' });
  miaKey = await createWithClient(mia, { name: 'Mia batch job' });
  assert.ok(moKey.key && miaKey.key);
  startBalance = balance(gw.srv.dataDir, 'Acme');

  // The known set of calls: two keys, two models, one upstream failure.
  await call('mo', moKey.key, 'fake-chat');
  await call('mo', moKey.key, 'fake-chat');
  await call('mo', moKey.key, 'fake-chat', { max_tokens: 12 });
  await call('mo', moKey.key, 'fake-big');
  await call('mia', miaKey.key, 'fake-big');
  await call('mia', miaKey.key, 'fake-big', { max_tokens: 25 });
  await call('mia', miaKey.key, 'fake-chat');
  await assert.rejects(sdk(miaKey.key).chat.completions.create({ model: 'fake-chat', messages: MESSAGES, x_fake: { status: 500 } }),
    (err) => err.status === 502);
  calls.push({ key: 'mia', model: 'fake-chat', cost: 0n, status: 502 });

  browser = await launch();
  ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await ctx.newPage();
  await page.goto(`${gw.srv.url}/login`);
  await submitForm(page, 'form[action="/login"]', ADMIN);
});

after(async () => {
  await browser?.close();
  runAudit(gw.srv.dataDir);
  await gw.stop();
});

const sum = (xs) => xs.reduce((a, c) => a + c.cost, 0n);

describe('usage and request log', () => {
  test('the calls were billed: ledger, balance and expected costs agree', () => {
    const total = sum(calls);
    assert.ok(total > 0n);
    assert.equal(startBalance - balance(gw.srv.dataDir, 'Acme'), total);
    assert.equal(ledgerUsage(), total);
  });

  test('overview: cards, 30-day chart, top models and keys, latest requests', async () => {
    await page.goto(`${gw.srv.url}/`);
    const total = sum(calls);
    assert.equal(await moneyText(page.locator('#spend-today')), total);
    assert.equal(await moneyText(page.locator('#spend-month')), total);
    assert.equal(await moneyText(page.locator('#balance')), balance(gw.srv.dataDir, 'Acme'));
    assert.equal((await page.locator('#requests-today').innerText()).trim(), String(calls.length));
    assert.equal(await page.locator('.chart svg').count(), 1);
    assert.equal(await barCount(page, ''), 1, 'one day with spend');
    const title = await page.locator('.chart svg rect.bar title').first().textContent();
    assert.match(title, /^\d{4}-\d{2}-\d{2}: [\d.]+ credits$/);
    const models = await page.locator('#top-models tbody tr td:first-child').allInnerTexts();
    assert.deepEqual(models, ['fake-big', 'fake-chat'], 'by spend, biggest first');
    const keys = await page.locator('#top-keys tbody tr').allInnerTexts();
    assert.equal(keys.length, 2);
    assert.equal(await page.locator('.requests-table tbody tr').count(), calls.length);
    assert.equal(await page.locator('.requests-table tbody tr[data-status="502"]').count(), 1);
    await screenshot(page, 'usage-01-overview');
  });

  test('usage: three charts, totals equal the ledger exactly', async () => {
    await page.goto(`${gw.srv.url}/usage`);
    assert.equal(await page.locator('.chart svg').count(), 3);
    assert.equal(await barCount(page, '#chart-spend'), 1);
    assert.equal(await barCount(page, '#chart-requests'), 1);
    assert.equal(await barCount(page, '#chart-tokens'), 2, 'prompt and completion stacked');
    // 30 day buckets: x labels thinned, the newest labelled.
    const labels = await page.locator('#chart-spend svg text[dominant-baseline="hanging"]').count();
    assert.ok(labels >= 4 && labels < 30, `${labels} x labels`);
    const spend = await moneyText(page.locator('#total-spend'));
    assert.equal(spend, ledgerUsage());
    assert.equal(await moneyText(page.locator('#table-total-spend')), spend);
    assert.equal((await page.locator('#total-requests').innerText()).trim(), String(calls.length));
    await screenshot(page, 'usage-02-usage');
  });

  test('usage filters: by key and by model change the totals', async () => {
    const moId = moKey.id;
    await page.goto(`${gw.srv.url}/usage?key=${moId}`);
    assert.equal(await moneyText(page.locator('#total-spend')), sum(calls.filter((c) => c.key === 'mo')));
    assert.equal(await moneyText(page.locator('#total-spend')), ledgerUsage(`e.key_id = ${moId}`));
    assert.equal((await page.locator('#total-requests').innerText()).trim(), '4');

    await page.goto(`${gw.srv.url}/usage?model=fake-big`);
    assert.equal(await moneyText(page.locator('#total-spend')), sum(calls.filter((c) => c.model === 'fake-big')));
    assert.equal(await moneyText(page.locator('#total-spend')), ledgerUsage(`r.model = 'fake-big'`));

    await page.goto(`${gw.srv.url}/usage`);
    await submitForm(page, 'form.filters', { split: 'model' });
    assert.match(page.url(), /split=model/);
    assert.equal(await barCount(page, '#chart-spend'), 2, 'one segment per model');
    assert.equal(await page.locator('#chart-spend svg rect.swatch').count(), 2, 'a legend');
    const rows = await page.locator('#usage-table tbody tr td:first-child').allInnerTexts();
    assert.deepEqual(rows, ['fake-big', 'fake-chat']);
    await screenshot(page, 'usage-03-usage-by-model');

    await page.goto(`${gw.srv.url}/usage?bucket=hour&split=key`);
    assert.equal(await page.locator('#chart-spend svg text[dominant-baseline="hanging"]').count() < 48, true);
    assert.equal(await barCount(page, '#chart-spend'), 2, 'one segment per key');
    assert.equal(await moneyText(page.locator('#total-spend')), ledgerUsage());
  });

  test('usage: bad input gets a clear 400', async () => {
    const admin = await new Client(gw.srv.url).login(ADMIN.email, ADMIN.password);
    let res = await admin.get('/usage?from=2026-02-30');
    assert.equal(res.status, 400);
    assert.match(await res.text(), /real days written YYYY-MM-DD/);
    res = await admin.get('/usage?from=2026-03-01&to=2026-02-01');
    assert.equal(res.status, 400);
    assert.match(await res.text(), /start date is after the end date/);
    res = await admin.get('/usage?bucket=hour&from=2026-01-01&to=2026-01-31');
    assert.equal(res.status, 400);
    assert.match(await res.text(), /at most 7 days/);
    res = await admin.get('/usage?split=%3Cscript%3E');
    assert.equal(res.status, 400);
    assert.ok(!(await res.text()).includes('<script>'));
    assert.equal((await admin.get('/usage.csv?to=nope')).status, 400);
  });

  test('CSV: the same rows and the same total as the page', async () => {
    const admin = await new Client(gw.srv.url).login(ADMIN.email, ADMIN.password);
    for (const qs of ['', '?split=model', '?split=key', `?key=${miaKey.id}`, '?model=fake-chat&bucket=hour']) {
      const html = await (await admin.get(`/usage${qs}`)).text();
      const pageTotal = micro(html.match(/id="total-spend">([\d.]+)/)[1]);
      const res = await admin.get(`/usage.csv${qs}`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type'), /^text\/csv/);
      const rows = parseCsv(await res.text());
      const head = rows[0];
      assert.equal(head.at(-1), 'spend');
      assert.ok(['day', 'hour'].includes(head[0]));
      const total = rows.slice(1).reduce((a, r) => a + micro(r.at(-1)), 0n);
      for (const r of rows.slice(1)) assert.match(r.at(-1), /^\d+\.\d{6}$/, 'six decimals');
      assert.equal(total, pageTotal, `CSV total for ${qs || 'no filter'}`);
      const reqs = rows.slice(1).reduce((a, r) => a + Number(r[head.indexOf('requests')]), 0);
      assert.equal(reqs, Number(html.match(/id="total-requests">([\d,]+)/)[1].replace(/,/g, '')));
    }
  });

  test('HEAD on the CSV export: the head only, and the connection stays usable', async () => {
    const admin = await new Client(gw.srv.url).login(ADMIN.email, ADMIN.password);
    const text = await new Promise((resolve) => {
      const s = net.connect(Number(new URL(gw.srv.url).port), '127.0.0.1');
      const chunks = [];
      s.on('data', (d) => chunks.push(d));
      s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
      s.on('connect', () => s.write(`HEAD /usage.csv HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${admin.cookie()}\r\n\r\n` +
        'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'));
    });
    const [first, second] = text.split(/\r\n\r\n/);
    assert.match(first, /^HTTP\/1\.1 200 /);
    assert.match(first, /content-type: text\/csv/i);
    // Right after the head comes the next answer, not a body.
    assert.match(second, /^HTTP\/1\.1 200 /, JSON.stringify(text.slice(0, 400)));
  });

  test('request log: every call with its status, filters and detail', async () => {
    await page.goto(`${gw.srv.url}/requests`);
    const rows = page.locator('.requests-table tbody tr');
    assert.equal(await rows.count(), calls.length);
    assert.deepEqual((await rows.evaluateAll((els) => els.map((e) => e.dataset.status))).sort(),
      calls.map((c) => String(c.status)).sort());
    await screenshot(page, 'usage-04-requests');

    await page.goto(`${gw.srv.url}/requests?status=error`);
    assert.equal(await rows.count(), 1);
    assert.equal(await rows.first().getAttribute('data-status'), '502');
    await page.goto(`${gw.srv.url}/requests?status=502`);
    assert.equal(await rows.count(), 1);
    await page.goto(`${gw.srv.url}/requests?status=ok&model=fake-big`);
    assert.equal(await rows.count(), calls.filter((c) => c.status === 200 && c.model === 'fake-big').length);
    await page.goto(`${gw.srv.url}/requests?key=${moKey.id}`);
    assert.equal(await rows.count(), 4);

    // The failed call: 502, no charge, the error text.
    await page.goto(`${gw.srv.url}/requests?status=502`);
    await Promise.all([page.waitForLoadState('load'), rows.first().locator('a').first().click()]);
    assert.equal((await page.locator('#req-status').innerText()).trim(), '502');
    assert.equal(await moneyText(page.locator('#req-cost')), 0n);
    assert.ok((await page.locator('#req-error').innerText()).length > 0);

    // A billed call: tokens and cost as the SDK saw them.
    const c = calls.find((x) => x.model === 'fake-big' && x.key === 'mia');
    const id = sql(`SELECT id FROM requests WHERE request_id = '${c.requestId}'`);
    await page.goto(`${gw.srv.url}/requests/${id}`);
    assert.equal(await moneyText(page.locator('#req-cost')), c.cost);
    assert.equal((await page.locator('#req-tokens').innerText()).trim(),
      String(c.usage.prompt_tokens + c.usage.completion_tokens));
    const details = await page.locator('#req-details').innerText();
    assert.ok(details.includes(c.requestId));
    assert.match(details, /Usage source\s+reported/);
    assert.match(details, /Stream\s+no/);
    await screenshot(page, 'usage-05-request-detail');
  });

  test('keyset pagination: 50 a page, older pages by ?before=', async () => {
    // Extra log rows straight into the table (cost 0, so the ledger is unaffected).
    const keyId = moKey.id;
    const org = sql(`SELECT org_id FROM api_keys WHERE id = ${keyId}`);
    sql(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
      INSERT INTO requests(request_id, created_at, org_id, key_id, endpoint, model, status, error)
      SELECT 'pg-' || i, strftime('%s','now') - 86400 * 3, ${org}, ${keyId}, 'chat.completions', 'fake-chat', 429, 'rate limited' FROM n`);
    const admin = await new Client(gw.srv.url).login(ADMIN.email, ADMIN.password);
    const first = await (await admin.get('/requests')).text();
    const ids = [...first.matchAll(/<tr data-id="(\d+)"/g)].map((m) => Number(m[1]));
    assert.equal(ids.length, 50);
    const older = first.match(/href="\/requests\?before=(\d+)"/)[1];
    assert.equal(Number(older), Math.min(...ids));
    const second = await (await admin.get(`/requests?before=${older}`)).text();
    const ids2 = [...second.matchAll(/<tr data-id="(\d+)"/g)].map((m) => Number(m[1]));
    assert.equal(ids.length + ids2.length, calls.length + 60);
    assert.ok(Math.max(...ids2) < Math.min(...ids));
    // The rollup saw them too: a second day on the requests chart.
    await page.goto(`${gw.srv.url}/usage`);
    assert.equal(await barCount(page, '#chart-requests'), 2);
    assert.equal(await barCount(page, '#chart-spend'), 1, 'no spend that day');
  });

  test('members see only their own keys; another member\'s request is 404', async () => {
    const moHtml = await (await mo.get('/requests')).text();
    const moIds = [...moHtml.matchAll(/<tr data-id="(\d+)"/g)].map((m) => m[1]);
    assert.ok(moIds.length >= 4);
    const miaId = sql(`SELECT id FROM requests WHERE key_id = ${miaKey.id} ORDER BY id LIMIT 1`);
    assert.ok(!moIds.includes(miaId));
    assert.equal((await mo.get(`/requests/${miaId}`)).status, 404);
    assert.equal((await mia.get(`/requests/${miaId}`)).status, 200);
    assert.equal((await mo.get('/requests/999999')).status, 404);
    assert.equal((await mo.get('/requests/abc')).status, 404);
    // Usage, overview and CSV are scoped the same way.
    const usage = await (await mo.get('/usage')).text();
    assert.equal(micro(usage.match(/id="total-spend">([\d.]+)/)[1]), ledgerUsage(`e.key_id = ${moKey.id}`));
    assert.ok(!usage.includes('Mia batch job'), 'no other member\'s key in the filters');
    const csv = parseCsv(await (await mo.get('/usage.csv?split=key')).text());
    assert.ok(csv.slice(1).every((r) => r[1] === String(moKey.id)));
    const home = await (await mo.get('/')).text();
    assert.equal(micro(home.match(/id="spend-today">([\d.]+)/)[1]), ledgerUsage(`e.key_id = ${moKey.id}`));
    // Filtering by another member's key shows nothing of it.
    const other = await (await mo.get(`/usage?key=${miaKey.id}`)).text();
    assert.equal(micro(other.match(/id="total-spend">([\d.]+)/)[1]), 0n);
  });

  test('another org sees none of it', async () => {
    addUser(gw.srv.dataDir, { email: 'gus@example.com', password: 'globex-password-1' });
    addMember(gw.srv.dataDir, 'Globex', 'gus@example.com', 'owner');
    const gus = await new Client(gw.srv.url).login('gus@example.com', 'globex-password-1');
    const id = sql('SELECT max(id) FROM requests');
    assert.equal((await gus.get(`/requests/${id}`)).status, 404);
    const html = await (await gus.get('/requests')).text();
    assert.ok(!/<tr data-id=/.test(html));
    const usage = await (await gus.get('/usage')).text();
    assert.equal(micro(usage.match(/id="total-spend">([\d.]+)/)[1]), 0n);
    assert.match(usage, /No usage in this period/);
  });

  test('key and org detail pages show a 30-day spend chart', async () => {
    await page.goto(`${gw.srv.url}/keys/${miaKey.id}`);
    assert.equal(await barCount(page, '#key-spend-chart'), 1);
    const t = await page.locator('#key-spend-chart rect.bar title').first().textContent();
    const c = sum(calls.filter((x) => x.key === 'mia'));
    assert.equal(micro(t.match(/: ([\d.]+) credits$/)[1]), c);
    await screenshot(page, 'usage-06-key-detail');
    const org = sql("SELECT id FROM orgs WHERE name = 'Acme'");
    await page.goto(`${gw.srv.url}/orgs/${org}`);
    assert.equal(await barCount(page, '#org-spend-chart'), 1);
    await screenshot(page, 'usage-07-org-detail');
  });

  test('on a phone the charts fit the screen', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, storageState: await ctx.storageState() });
    const p = await phone.newPage();
    await p.goto(`${gw.srv.url}/usage?split=key`);
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `page wider than the screen by ${overflow}px`);
    assert.equal(await barCount(p, '#chart-spend'), 2);
    await screenshot(p, 'usage-08-usage-phone');
    await phone.close();
  });

  test('request log: a call that failed over lists its attempts; the failed attempt is marked', async () => {
    // A billed call gets a first attempt that failed over (as the gateway
    // logs one: its own row, same request id, never billed), and usage
    // detail of its answer.
    const c = calls.find((x) => x.model === 'fake-big' && x.key === 'mia');
    const [realId, createdAt, org, keyId, providerId] = sql(
      `SELECT id, created_at, org_id, key_id, provider_id FROM requests WHERE request_id = '${c.requestId}'`).split('|');
    sql(`INSERT INTO requests(request_id, created_at, org_id, key_id, endpoint, model, status, error, attempt,
      failed_over, provider_id) VALUES ('${c.requestId}', ${createdAt}, ${org}, ${keyId}, 'chat.completions',
      'fake-big', 503, 'attempt 1 via fake (upstream-big) failed over: HTTP 503', 1, 1, ${providerId})`);
    sql(`UPDATE requests SET attempt = 2, cache_write_tokens = 7, reasoning_tokens = 5 WHERE id = ${realId}`);
    const foId = sql(`SELECT id FROM requests WHERE request_id = '${c.requestId}' AND failed_over = 1`);

    await page.goto(`${gw.srv.url}/requests?key=${miaKey.id}`);
    const fo = page.locator(`.requests-table tbody tr[data-id="${foId}"]`);
    assert.equal(await fo.getAttribute('data-failed-over'), '1');
    assert.match(await fo.locator('td').nth(3).innerText(), /^503\s+failed over$/);
    assert.equal(await page.locator('.requests-table tbody tr[data-failed-over]').count(), 1, 'only that row');
    assert.doesNotMatch(await page.locator(`.requests-table tbody tr[data-id="${realId}"]`).innerText(), /failed over/);

    await page.goto(`${gw.srv.url}/requests/${realId}`);
    assert.equal((await page.locator('#req-cache-write').innerText()).trim(), '7');
    assert.match(await page.locator('#req-reasoning').innerText(), /^5 /);
    assert.equal((await page.locator('#req-attempt').innerText()).trim(), '2');
    assert.equal(await page.locator('#req-failed-over').count(), 0);
    const rows = page.locator('#req-attempts tbody tr');
    assert.equal(await rows.count(), 2);
    const first = (await rows.nth(0).locator('td').allInnerTexts()).map((t) => t.trim());
    assert.deepEqual(first.slice(0, 4), ['1', 'fake', '503', 'failed over']);
    assert.match(first[5], /attempt 1 via fake \(upstream-big\) failed over: HTTP 503/);
    const second = (await rows.nth(1).locator('td').allInnerTexts()).map((t) => t.trim());
    assert.deepEqual(second.slice(0, 4), ['2', 'fake', '200', 'answered']);
    assert.equal(await rows.nth(1).getAttribute('aria-current'), 'true');
    assert.equal(await rows.nth(0).locator(`a[href="/requests/${foId}"]`).count(), 1);
    assert.match(await page.locator('#req-details').innerText(), /Ledger entry\s+#\d+/);
    await screenshot(page, 'usage-09-request-attempts');

    // The failed attempt's own page says what it is and shows no ledger entry.
    await page.goto(`${gw.srv.url}/requests/${foId}`);
    assert.match(await page.locator('#req-failed-over').innerText(), /Attempt 1 of this call failed/);
    assert.match(await page.locator('#req-details').innerText(), /Ledger entry\s+none \(not billed\)/);
    assert.equal(await page.locator('#req-attempts tbody tr').count(), 2);
  });
});
