// Credits in a real browser and over HTTP: grants and deductions by the
// instance admin, the ledger with filters and its CSV export, redemption
// codes (once, even when two redeems race), the CLI, the audit and backups.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cli, startServer, tempDir } from './lib/harness.js';
import { addUser, addOrg, addMember, Client } from './lib/session.js';
import { launch, screenshot, submitForm } from './lib/browser.js';
import { runAudit } from './lib/audit.js';

const ADMIN = { email: 'root@example.com', name: 'Ada Admin', password: 'admin-password-123', admin: true };
const OWNER = { email: 'olga@example.com', name: 'Olga Owner', password: 'owner-password-123' };
const RIVAL = { email: 'gus@example.com', name: 'Gus Globex', password: 'rival-password-123' };
const MEMBER = { email: 'mo@example.com', name: 'Mo Member', password: 'member-password-1' };

let srv, browser, adminCtx, adminPage;
const clients = {};

// "+125.50" / "-0.000123" / "10.000000" -> micro-credits as a BigInt.
function micro(s) {
  const m = String(s).trim().match(/^([+-]?)(\d+)(?:\.(\d{1,6}))?$/);
  if (!m) throw new Error(`not an amount: ${s}`);
  const v = BigInt(m[2]) * 1000000n + BigInt((m[3] ?? '').padEnd(6, '0'));
  return m[1] === '-' ? -v : v;
}

function balance(org) {
  const r = cli(srv.dataDir, ['credits', 'balance', '--org', org]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^-?\d+\.\d{6}\n$/, 'the amount alone on stdout');
  return micro(r.stdout);
}

// Rows of the ledger table in a page: [{ id, kind, amount }].
function ledgerRows(html) {
  const rows = [];
  const re = /<tr data-id="(\d+)">[\s\S]*?<span class="badge [^"]*">(\w+)<\/span>[\s\S]*?data-amount="([^"]+)"/g;
  for (const m of html.matchAll(re)) rows.push({ id: Number(m[1]), kind: m[2], amount: micro(m[3]) });
  return rows;
}

// A minimal CSV reader (quoted fields, doubled quotes, CRLF).
function parseCsv(text) {
  const rows = [];
  let row = [], field = '', i = 0, quoted = false;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 2; continue; }
      if (c === '"') { quoted = false; i++; continue; }
      field += c; i++; continue;
    }
    if (c === '"') { quoted = true; i++; continue; }
    if (c === ',') { row.push(field); field = ''; i++; continue; }
    if (c === '\r' && text[i + 1] === '\n') { row.push(field); rows.push(row); row = []; field = ''; i += 2; continue; }
    field += c; i++;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

// A POST with a CSRF token fetched beforehand, so several can start at once.
function rawPost(client, path, csrf, fields) {
  return fetch(client.base + path, {
    method: 'POST', redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: client.cookie() },
    body: new URLSearchParams({ csrf, ...fields }),
  });
}

async function createCodes(fields) {
  const res = await clients.admin.post('/codes', fields);
  assert.equal(res.status, 200);
  const html = await res.text();
  const codes = [...html.matchAll(/tgc_[0-9A-Za-z]{24}/g)].map((m) => m[0]);
  return [...new Set(codes)];
}

before(async () => {
  srv = await startServer();
  for (const u of [ADMIN, OWNER, RIVAL, MEMBER]) addUser(srv.dataDir, u);
  addOrg(srv.dataDir, 'Acme');
  addOrg(srv.dataDir, 'Globex');
  addMember(srv.dataDir, 'Acme', OWNER.email, 'owner');
  addMember(srv.dataDir, 'Globex', RIVAL.email, 'admin');
  addMember(srv.dataDir, 'Acme', MEMBER.email, 'member');
  clients.admin = await new Client(srv.url).login(ADMIN.email, ADMIN.password);
  clients.owner = await new Client(srv.url).login(OWNER.email, OWNER.password);
  clients.rival = await new Client(srv.url).login(RIVAL.email, RIVAL.password);
  clients.member = await new Client(srv.url).login(MEMBER.email, MEMBER.password);
  browser = await launch();
  adminCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  adminPage = await adminCtx.newPage();
  await adminPage.goto(`${srv.url}/login`);
  await submitForm(adminPage, 'form[action="/login"]', { email: ADMIN.email, password: ADMIN.password });
});

after(async () => {
  await browser?.close();
  assert.equal(await srv.stop(), 0);
  srv.cleanup();
});

describe('credits', () => {
  test('an empty ledger says so; the overview shows a zero balance', async () => {
    await adminPage.goto(`${srv.url}/credits`);
    assert.match(await adminPage.textContent('#balance'), /0\.00/);
    assert.match(await adminPage.textContent('.empty'), /No ledger entries yet/);
  });

  test('a grant through the admin page appears in the ledger and the balance card', async () => {
    await adminPage.goto(`${srv.url}/credits`);
    await submitForm(adminPage, 'form[action="/credits/grant"]', {
      action: 'grant', amount: '125.50', memo: 'Prepaid, invoice 1001',
    });
    assert.equal(new URL(adminPage.url()).pathname, '/credits');
    assert.match(await adminPage.textContent('.flash-ok'), /Granted 125\.50 credits to Acme/);
    assert.match(await adminPage.textContent('#balance'), /125\.50/);
    const row = adminPage.locator('#ledger tbody tr').first();
    assert.match(await row.textContent(), /grant[\s\S]*\+125\.50[\s\S]*125\.50[\s\S]*Prepaid, invoice 1001[\s\S]*root@example\.com/);
    assert.equal(balance('Acme'), 125500000n);
    // The overview has the real numbers too.
    await adminPage.goto(`${srv.url}/`);
    assert.match(await adminPage.textContent('.cards'), /125\.50/);
  });

  test('a deduct without a memo, a bad amount or an overdraft is refused with a message', async () => {
    await adminPage.goto(`${srv.url}/credits`);
    await submitForm(adminPage, 'form[action="/credits/grant"]', { action: 'deduct', amount: '5', memo: '' });
    assert.match(await adminPage.textContent('.flash-error'), /memo is required/);
    // The form keeps what was typed.
    assert.equal(await adminPage.inputValue('#g-amount'), '5');
    await screenshot(adminPage, 'credits-02-grant-refused');

    let res = await clients.admin.post('/credits/grant', { action: 'deduct', amount: '5', memo: '   ' }, '/credits');
    assert.equal(res.status, 422);
    res = await clients.admin.post('/credits/grant', { action: 'grant', amount: '1.0000001', memo: 'x' }, '/credits');
    assert.equal(res.status, 422);
    assert.match(await res.text(), /Too many decimal places/);
    res = await clients.admin.post('/credits/grant', { action: 'grant', amount: '12,50', memo: 'x' }, '/credits');
    assert.equal(res.status, 422);
    res = await clients.admin.post('/credits/grant', { action: 'deduct', amount: '500', memo: 'too much' }, '/credits');
    assert.equal(res.status, 422);
    assert.match(await res.text(), /would make the balance negative/);
    assert.equal(balance('Acme'), 125500000n, 'nothing was written');

    // A proper deduction works.
    res = await clients.admin.post('/credits/grant', { action: 'deduct', amount: '0.25', memo: 'Correction' }, '/credits');
    assert.equal(res.status, 303);
    assert.equal(balance('Acme'), 125250000n);
  });

  test('CLI credits grant and credits balance', async () => {
    const r = cli(srv.dataDir, ['credits', 'grant', '--org', 'Acme', '10', '--memo', 'From the CLI']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /granted 10\.000000 credits to Acme/);
    assert.equal(balance('Acme'), 135250000n);
    assert.equal(balance('Globex'), 0n);
    assert.notEqual(cli(srv.dataDir, ['credits', 'grant', '--org', 'Acme', '10']).code, 0, 'memo required');
    assert.notEqual(cli(srv.dataDir, ['credits', 'grant', '--org', 'Nope', '1', '--memo', 'x']).code, 0);
    const page = await (await clients.owner.get('/credits')).text();
    assert.match(page, /From the CLI/);
    assert.match(page, /by cli/);
  });

  test('a code created by the admin redeems once for an org admin', async () => {
    const codes = await createCodes({ count: '2', amount: '25', batch: 'Launch week', expires: '' });
    assert.equal(codes.length, 2);
    const before = balance('Acme');
    const res = await clients.owner.post('/credits/redeem', { code: ` ${codes[0]} ` }, '/credits');
    assert.equal(res.status, 303);
    const page = await (await clients.owner.get('/credits')).text();
    assert.match(page, /Redeemed 25\.00 credits into Acme/);
    assert.equal(balance('Acme'), before + 25000000n);
    assert.equal(ledgerRows(page)[0].kind, 'redeem');

    const again = await clients.owner.post('/credits/redeem', { code: codes[0] }, '/credits');
    assert.equal(again.status, 409);
    assert.match(await again.text(), /already been used/);
    const other = await clients.rival.post('/credits/redeem', { code: codes[0] }, '/credits');
    assert.equal(other.status, 409);
    assert.equal(balance('Acme'), before + 25000000n);
    assert.equal(balance('Globex'), 0n);

    const unknown = await clients.owner.post('/credits/redeem', { code: 'tgc_' + 'A'.repeat(24) }, '/credits');
    assert.equal(unknown.status, 422);
    assert.match(await unknown.text(), /No such code/);
    const empty = await clients.owner.post('/credits/redeem', { code: '' }, '/credits');
    assert.equal(empty.status, 422);

    // The codes page lists them by prefix only.
    const list = await (await clients.admin.get('/codes')).text();
    assert.ok(list.includes(codes[0].slice(0, 12)));
    assert.ok(!list.includes(codes[0]), 'the full code is never shown again');
    assert.ok(!list.includes(codes[1]));
    assert.match(list, /Launch week/);
    assert.match(list, /1 of 2/);
  });

  test('two concurrent redeems of one fresh code: exactly one succeeds', async () => {
    for (let round = 0; round < 5; round++) {
      const [code] = await createCodes({ count: '1', amount: '7.5', batch: `Race ${round}` });
      const acme = balance('Acme');
      const globex = balance('Globex');
      const [c1, c2] = await Promise.all([clients.owner.csrf('/credits'), clients.rival.csrf('/credits')]);
      const results = await Promise.all([
        rawPost(clients.owner, '/credits/redeem', c1, { code }),
        rawPost(clients.rival, '/credits/redeem', c2, { code }),
      ]);
      const statuses = results.map((r) => r.status).sort();
      assert.deepEqual(statuses, [303, 409], `round ${round}`);
      const gained = balance('Acme') - acme + balance('Globex') - globex;
      assert.equal(gained, 7500000n, 'credited exactly once');
    }
  });

  test('the ledger filter by kind and dates works, and bad dates get a clear error', async () => {
    let html = await (await clients.owner.get('/credits?kind=redeem')).text();
    let rows = ledgerRows(html);
    assert.ok(rows.length >= 1);
    assert.ok(rows.every((r) => r.kind === 'redeem'));
    html = await (await clients.owner.get('/credits?kind=adjust')).text();
    rows = ledgerRows(html);
    assert.equal(rows.length, 1);
    assert.equal(rows[0].amount, -250000n);
    html = await (await clients.owner.get('/credits?kind=usage')).text();
    assert.equal(ledgerRows(html).length, 0);
    assert.match(html, /No entries match these filters/);

    const today = new Date().toISOString().slice(0, 10);
    html = await (await clients.owner.get(`/credits?from=${today}&to=${today}`)).text();
    assert.ok(ledgerRows(html).length >= 4);
    html = await (await clients.owner.get('/credits?from=2000-01-01&to=2000-01-31')).text();
    assert.equal(ledgerRows(html).length, 0);

    let res = await clients.owner.get('/credits?from=2026-02-30');
    assert.equal(res.status, 400);
    assert.match(await res.text(), /real days written YYYY-MM-DD/);
    res = await clients.owner.get('/credits?from=yesterday');
    assert.equal(res.status, 400);
    res = await clients.owner.get('/credits?from=2026-05-02&to=2026-05-01');
    assert.equal(res.status, 400);
    assert.match(await res.text(), /start date is after the end date/);
    res = await clients.owner.get('/credits.csv?to=31/12/2026');
    assert.equal(res.status, 400);
  });

  test('the CSV export matches the page: same ids and amounts', async () => {
    for (const qs of ['', '?kind=grant', '?kind=redeem']) {
      const html = await (await clients.owner.get(`/credits${qs}`)).text();
      const pageRows = ledgerRows(html);
      const res = await clients.owner.get(`/credits.csv${qs}`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type'), /^text\/csv/);
      assert.match(res.headers.get('content-disposition'), /^attachment; filename="credits-org\d+-\d{4}-\d\d-\d\d\.csv"$/);
      const csv = parseCsv(await res.text());
      assert.deepEqual(csv[0], ['id', 'created_at', 'kind', 'amount', 'balance_after', 'request_id', 'key_id', 'memo']);
      const csvRows = csv.slice(1).map((r) => ({ id: Number(r[0]), kind: r[2], amount: micro(r[3]), raw: r }));
      for (const r of csvRows) assert.match(r.raw[3], /^-?\d+\.\d{6}$/, 'six decimals');
      const byId = (a, b) => a.id - b.id;
      assert.deepEqual(csvRows.map(({ id, kind, amount }) => ({ id, kind, amount })).sort(byId), pageRows.sort(byId), qs);
    }
    // Quoting: a memo with a comma comes back whole.
    const csv = parseCsv(await (await clients.owner.get('/credits.csv?kind=grant')).text());
    assert.ok(csv.some((r) => r[7] === 'Prepaid, invoice 1001'));
  });

  test('a member sees the credits but cannot grant, redeem or manage codes', async () => {
    const res = await clients.member.get('/credits');
    assert.equal(res.status, 200);
    const html = await res.text();
    assert.match(html, /id="balance"/);
    assert.doesNotMatch(html, /action="\/credits\/grant"/);
    assert.doesNotMatch(html, /action="\/credits\/redeem"/);
    const before = balance('Acme');
    const csrf = await clients.member.csrf('/credits');
    assert.equal((await rawPost(clients.member, '/credits/grant', csrf, { action: 'grant', amount: '1000', memo: 'mine' })).status, 404);
    const [code] = await createCodes({ count: '1', amount: '1', batch: 'Member try' });
    assert.equal((await rawPost(clients.member, '/credits/redeem', csrf, { code })).status, 404);
    assert.equal((await clients.member.get('/codes')).status, 404);
    assert.equal((await rawPost(clients.member, '/codes', csrf, { count: '1', amount: '1' })).status, 404);
    // An org owner cannot grant either: that is for instance admins.
    const oc = await clients.owner.csrf('/credits');
    assert.equal((await rawPost(clients.owner, '/credits/grant', oc, { action: 'grant', amount: '1000', memo: 'mine' })).status, 404);
    assert.equal(balance('Acme'), before);
    // The member's view, for the record.
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    await page.goto(`${srv.url}/login`);
    await submitForm(page, 'form[action="/login"]', { email: MEMBER.email, password: MEMBER.password });
    await page.goto(`${srv.url}/credits`);
    await screenshot(page, 'credits-05-member-view');
    await ctx.close();
  });

  test('the codes page: bad input is refused; a new batch is shown once', async () => {
    let res = await clients.admin.post('/codes', { count: '0', amount: '5' });
    assert.equal(res.status, 422);
    assert.match(await res.text(), /from 1 to 1000/);
    res = await clients.admin.post('/codes', { count: '1001', amount: '5' });
    assert.equal(res.status, 422);
    res = await clients.admin.post('/codes', { count: '2', amount: '-5' });
    assert.equal(res.status, 422);
    res = await clients.admin.post('/codes', { count: '2', amount: '5', expires: '2001-01-01' });
    assert.equal(res.status, 422);
    assert.match(await res.text(), /in the past/);
    res = await clients.admin.post('/codes', { count: '2', amount: '5', expires: '31.12.2030' });
    assert.equal(res.status, 422);

    await adminPage.goto(`${srv.url}/codes`);
    await submitForm(adminPage, 'form[action="/codes"]', { count: '5', amount: '50', expires: '2030-12-31', batch: 'Partner program' });
    const text = await adminPage.inputValue('#new-codes');
    assert.equal(text.trim().split('\n').length, 5);
    assert.match(await adminPage.textContent('.page-head'), /Partner program · 5 codes of 50\.00 credits · valid through 2030-12-31 \(UTC\)/);
    await screenshot(adminPage, 'credits-04-codes-reveal');
    await adminPage.goto(`${srv.url}/codes`);
    assert.match(await adminPage.textContent('#batches'), /Partner program[\s\S]*0 of 5/);
    await screenshot(adminPage, 'credits-03-codes');
  });

  test('screenshot of the credits page with a filled ledger', async () => {
    await adminPage.goto(`${srv.url}/credits`);
    // Grant, deduction, CLI grant, a redeem, and whichever races Acme won.
    const rows = await adminPage.locator('#ledger tbody tr').count();
    const csvRows = parseCsv(await (await clients.owner.get('/credits.csv')).text()).length - 1;
    assert.ok(rows >= 4);
    assert.equal(rows, csvRows);
    await screenshot(adminPage, 'credits-01-ledger');
    await adminPage.goto(`${srv.url}/credits?kind=redeem`);
    await screenshot(adminPage, 'credits-06-filtered');
  });

  test('keyset pagination walks the whole ledger 50 at a time', async () => {
    // Globex gets 55 small grants from the admin, in Globex.
    const admin = new Client(srv.url);
    await admin.login(ADMIN.email, ADMIN.password);
    const gid = Number((await (await admin.get('/orgs')).text()).match(/href="\/orgs\/(\d+)">Globex/)[1]);
    assert.equal((await admin.post('/switch-org', { org_id: String(gid) }, '/credits')).status, 303);
    const csrf = await admin.csrf('/credits');
    for (let i = 0; i < 55; i++) {
      const res = await rawPost(admin, '/credits/grant', csrf, { action: 'grant', amount: '0.01', memo: `bulk ${i}` });
      assert.equal(res.status, 303);
    }
    const seen = [];
    let path = '/credits';
    const rival = clients.rival;
    for (let pages = 0; path && pages < 5; pages++) {
      const html = await (await rival.get(path)).text();
      const rows = ledgerRows(html);
      assert.ok(rows.length <= 50);
      seen.push(...rows.map((r) => r.id));
      const next = html.match(/rel="next" href="([^"]+)"/);
      path = next ? next[1].replace(/&amp;/g, '&') : null;
    }
    const csv = parseCsv(await (await rival.get('/credits.csv')).text()).slice(1);
    assert.equal(seen.length, csv.length);
    assert.deepEqual([...seen].sort((a, b) => a - b), csv.map((r) => Number(r[0])));
    // And back: the "newer" link from the second page leads to the first.
    const second = await (await rival.get(`/credits?before=${seen[49] + 1}`)).text();
    assert.equal(ledgerRows(second)[0].id, seen[49]);
    const prev = second.match(/rel="prev" href="([^"]+)"/);
    assert.ok(prev);
    const first = ledgerRows(await (await rival.get(prev[1].replace(/&amp;/g, '&'))).text());
    assert.deepEqual(first.map((r) => r.id), seen.slice(0, first.length));
  });

  test('tollgate audit is clean, and a backup taken while serving passes it too', async () => {
    runAudit(srv.dataDir);
    const dir = tempDir('tollgate-backup-');
    try {
      const file = join(dir, 'copy.db');
      let r = cli(srv.dataDir, ['backup', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /backup written to/);
      assert.ok(existsSync(file));
      r = cli(srv.dataDir, ['backup', file]);
      assert.equal(r.code, 1, 'an existing file is not overwritten');
      assert.match(r.stderr, /already exists/);
      const restored = join(dir, 'restored');
      mkdirSync(restored, { mode: 0o700 });
      copyFileSync(file, join(restored, 'tollgate.db'));
      const out = runAudit(restored);
      assert.match(out, /2 orgs/);
      const b = cli(restored, ['credits', 'balance', '--org', 'Acme']);
      assert.equal(b.code, 0);
      assert.equal(micro(b.stdout), balance('Acme'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
