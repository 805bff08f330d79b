// Several gateway instances sharing one PostgreSQL database: a burst over
// three instances never spends past an org's credits, rate limits and key
// revocations are shared, the holds of an instance that is killed or stalled
// are voided by the reaper of another (and a stalled instance that wakes up
// settles exactly once), and a database outage gives clear 503s and loses
// no billed call. One PostgreSQL, one fake provider and instances a, b, c
// (hold TTL 3 s) serve every test; each test uses an org of its own.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { ARTIFACTS, cli, startServer, startFakeUpstream, tempDir } from './lib/harness.js';
import { PRICES, expectedCost, micro } from './lib/gateway.js';
import { startPg } from './lib/pg.js';
import { Client } from './lib/session.js';

const TTL_S = 3;
const NAMES = ['a', 'b', 'c'];
const MESSAGES = [{ role: 'user', content: 'Count for the shared ledger.' }];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let pg;
let upstream;
const dirs = {};
const gw = {};        // name -> running server (startServer handle)
const logs = {};      // name -> stderr of every process that ran as this instance

// ------------------------------------------------------------------ helpers

// The CLI against the shared database (any instance's data dir will do).
function tg(args, { check = true, input } = {}) {
  const r = cli(dirs.a, args, { input, env: { TOLLGATE_DATABASE: pg.url } });
  if (check && r.code !== 0) throw new Error(`tollgate ${args.join(' ')} (exit ${r.code}): ${r.stderr}`);
  return r;
}

function credits(v) {
  return `${v / 1000000n}.${String(v % 1000000n).padStart(6, '0')}`;
}

function newOrg(name, amount) {
  const id = Number(tg(['org', 'add', name]).stdout.match(/\(id (\d+)\)/)[1]);
  if (amount) tg(['credits', 'grant', '--org', name, amount, '--memo', 'scale test']);
  return id;
}

function newKey(org, name, extra = []) {
  const key = tg(['keys', 'create', '--org', org, '--name', name, ...extra]).stdout.trim();
  assert.match(key, /^tg_[0-9A-Za-z]{38}$/);
  return key;
}

function audit() {
  const r = tg(['audit'], { check: false });
  assert.equal(r.code, 0, `tollgate audit reported drift (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^audit: \d+ orgs, \d+ entries, balances OK$/m);
}

async function q(sql) {
  return pg.query(sql);
}

async function val(sql) {
  const rows = await q(sql);
  return rows.length ? rows[0][0] : '';
}

// An org's balance, and its held credit: the sum of its hold rows.
async function org(id) {
  const [[balance, held]] = await q(`SELECT balance,
    (SELECT coalesce(sum(amount), 0) FROM holds WHERE org_id = ${id}) FROM orgs WHERE id = ${id}`);
  return { balance: BigInt(balance), held: BigInt(held) };
}

// For each request id: its usage debits (count, and their sum negated) and
// its request rows (count, and their cost), in one query.
async function settledAs(ids) {
  for (const id of ids) assert.match(id ?? '', /^[A-Za-z0-9_.-]+$/, 'a request id');
  const rows = await q(`SELECT r.id,
      (SELECT count(*) FROM ledger_entries WHERE kind = 'usage' AND request_id = r.id),
      (SELECT coalesce(-sum(amount), 0) FROM ledger_entries WHERE kind = 'usage' AND request_id = r.id),
      (SELECT count(*) FROM requests WHERE request_id = r.id),
      (SELECT coalesce(sum(cost), 0) FROM requests WHERE request_id = r.id)
    FROM unnest(ARRAY[${ids.map((id) => `'${id}'`).join(',')}]::text[]) AS r(id)`);
  return new Map(rows.map(([id, debits, sum, n, cost]) =>
    [id, { debits: Number(debits), debited: BigInt(sum), rows: Number(n), cost: BigInt(cost) }]));
}

// Every call answered 200 has exactly one request row and one usage debit,
// both of the cost its usage says; resolves to the sum of those costs.
async function billedOnce(ok, model) {
  const got = await settledAs(ok.map((r) => r.requestId));
  let spent = 0n;
  for (const r of ok) {
    const cost = expectedCost(model, r.data.usage);
    assert.equal(micro(r.data.usage.cost), cost, 'usage.cost is the exact charge');
    assert.deepEqual(got.get(r.requestId), { debits: 1, debited: cost, rows: 1, cost },
      `the call ${r.requestId} (${r.inst}${r.phase ? `, ${r.phase}` : ''})`);
    spent += cost;
  }
  return spent;
}

// What the database says of an org's money: usage debits and request costs.
async function orgSpend(id) {
  const [[debits, costs]] = await q(
    `SELECT (SELECT coalesce(-sum(amount), 0) FROM ledger_entries WHERE org_id = ${id} AND kind = 'usage'),
            (SELECT coalesce(sum(cost), 0) FROM requests WHERE org_id = ${id})`);
  return { debits: BigInt(debits), costs: BigInt(costs) };
}

async function dbState() {
  const holds = await q('SELECT id, org_id, amount, instance, request_id, expires_at, (SELECT tg_now()) FROM holds');
  const orgs = await q('SELECT id, name, balance FROM orgs ORDER BY id');
  const journals = NAMES.map((n) => `${n}: ${journalBytes(n)} B`).join(', ');
  return `journals ${journals}\nholds ${JSON.stringify(holds)}\norgs ${JSON.stringify(orgs)}`;
}

function journalBytes(name) {
  const size = (f) => { try { return statSync(join(dirs[name], f)).size; } catch { return 0; } };
  return size('calls.journal.0') + size('calls.journal.1');
}

function tail(name, lines = 25) {
  const text = [...logs[name], gw[name]?.stderr() ?? ''].join('');
  return text.split('\n').slice(-lines).join('\n');
}

// Every journal empty, no hold left, nothing held, and the request count
// stable over two looks: every call answered so far is settled.
async function drained(ms = 15_000) {
  const end = Date.now() + ms;
  let last = '';
  for (;;) {
    const bytes = NAMES.reduce((s, n) => s + journalBytes(n), 0);
    const [[holds, held, reqs]] = await q(
      'SELECT (SELECT count(*) FROM holds), (SELECT coalesce(sum(amount), 0) FROM holds), (SELECT count(*) FROM requests)');
    const state = `${bytes}|${holds}|${held}|${reqs}`;
    if (bytes === 0 && holds === '0' && held === '0' && state === last) return;
    last = state;
    if (Date.now() > end) {
      throw new Error(`not drained after ${ms} ms:\n${await dbState()}\n` +
        NAMES.map((n) => `--- ${n} stderr:\n${tail(n)}`).join('\n'));
    }
    await sleep(150);
  }
}

async function startInstance(name) {
  const srv = await startServer({
    dataDir: dirs[name],
    args: ['--database', pg.url, '--instance', name, '--hold-ttl-s', String(TTL_S),
      '--drain-timeout-s', '2', '--log-level', 'info', '--threads', '256'],
  });
  gw[name] = srv;
  return srv;
}

// Keep the stderr of an instance that is going away (killed, restarted).
function retire(name) {
  if (gw[name]) logs[name].push(gw[name].stderr());
}

function exited(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode ?? proc.signalCode);
  return new Promise((r) => proc.on('exit', (code, sig) => r(code ?? sig)));
}

function voidedLines(names) {
  const text = names.map((n) => [...logs[n], gw[n].stderr()].join('')).join('');
  return text.match(/billing: voided \d+ expired holds?/g) ?? [];
}

function sdk(inst, key, timeout = 20_000) {
  return new OpenAI({ apiKey: key, baseURL: `${gw[inst].url}/v1`, maxRetries: 0, timeout });
}

// One chat completion; never throws. status is the HTTP status, or the
// client error's name when there was none (timeout, connection refused).
async function call(inst, key, params, { timeout = 20_000 } = {}) {
  try {
    const { data, response } = await sdk(inst, key, timeout).chat.completions.create(params).withResponse();
    return { inst, status: response.status, requestId: response.headers.get('x-request-id'), data };
  } catch (err) {
    if (err instanceof OpenAI.APIError && err.status) {
      return { inst, status: err.status, requestId: err.headers?.get('x-request-id'), error: err, headers: err.headers };
    }
    return { inst, status: err.constructor.name, error: err };
  }
}

// A streaming call, read up to its first chunk; rest() reads on to the end
// (or until the connection breaks) and resolves to { usage, chunks, error }.
async function openStream(inst, key, params) {
  const { data: stream, response } = await sdk(inst, key, 60_000).chat.completions
    .create({ ...params, stream: true, stream_options: { include_usage: true } }).withResponse();
  const it = stream[Symbol.asyncIterator]();
  const first = await it.next();
  assert.equal(first.done, false, 'the stream sent a first chunk');
  const rest = async () => {
    let usage = null;
    let chunks = 1;
    try {
      for (let r = await it.next(); !r.done; r = await it.next()) {
        chunks++;
        if (r.value.usage) usage = r.value.usage;
      }
      return { usage, chunks, error: null };
    } catch (error) {
      return { usage, chunks, error };
    }
  };
  return { requestId: response.headers.get('x-request-id'), rest };
}

async function upstreamChats() {
  return (await (await fetch(`${upstream.url}/fake/stats`)).json()).chat;
}

// Poll fn every `every` ms until it returns a truthy value; the time taken
// and the value, or a throw after ms.
async function until(fn, ms, what, every = 50) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return { ms: Date.now() - t0, value: v };
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms\n${await dbState()}`);
    await sleep(every);
  }
}

// Call with a key every 50 ms until it is refused (401, revoked); the ms
// from t0 that took (Infinity after 3 s). Until then every call must pass.
async function flipTime(inst, key, params, t0) {
  for (;;) {
    const r = await call(inst, key, params, { timeout: 3000 });
    if (r.status === 401) {
      assert.match(r.error.message, /revoked/);
      return Date.now() - t0;
    }
    assert.equal(r.status, 200, `${inst}: ${r.error?.message}`);
    if (Date.now() - t0 > 3000) return Infinity;
    await sleep(50);
  }
}

// The key is refused on every instance within 1 s of t0.
async function revokedEverywhere(key, params, t0) {
  const flips = await Promise.all(NAMES.map((n) => flipTime(n, key, params, t0)));
  const seq = await val("SELECT seq FROM tg_changes WHERE name = 'keys'");
  for (const [i, n] of NAMES.entries()) {
    assert.ok(flips[i] <= 1000, `instance ${n} refused the revoked key after ${flips[i]} ms ` +
      `(a, b, c: ${flips.join(', ')} ms; tg_changes 'keys' seq is ${seq})`);
  }
}

function models(dir) {
  const file = join(dir, 'models.json');
  writeFileSync(file, JSON.stringify({
    providers: [{ name: 'fake', kind: 'openai', base_url: `${upstream.url}/v1`, api_key: 'sk-fake', timeout_s: 30 }],
    models: [
      { name: 'fake-chat', provider: 'fake', upstream_model: 'upstream-chat', input_per_mtok: '0.15', cached_input_per_mtok: '0.075', output_per_mtok: '0.60', max_output_tokens: 4096, context_window: 128000 },
      { name: 'fake-out-only', provider: 'fake', upstream_model: 'upstream-out', input_per_mtok: '0', cached_input_per_mtok: '0', output_per_mtok: '1.00', max_output_tokens: 4096, context_window: 128000 },
    ],
  }));
  tg(['models', 'import', file]);
}

// ------------------------------------------------------------------ setup

before(async () => {
  pg = await startPg();
  upstream = await startFakeUpstream(['--threads', '256']);
  for (const n of NAMES) { dirs[n] = tempDir(`tollgate-scale-${n}-`); logs[n] = []; }
  // The first CLI run makes instance a's secret.key; the others get a copy.
  models(dirs.a);
  for (const n of ['b', 'c']) copyFileSync(join(dirs.a, 'secret.key'), join(dirs[n], 'secret.key'));
  for (const n of NAMES) await startInstance(n); // a first: it takes the reaper's lock
});

after(async () => {
  for (const n of NAMES) {
    const srv = gw[n];
    if (!srv) continue;
    srv.proc.kill('SIGCONT');
    const code = await Promise.race([srv.stop(), sleep(8000).then(() => 'timeout')]);
    if (code === 'timeout') { srv.proc.kill('SIGKILL'); await exited(srv.proc); }
    retire(n);
    try {
      mkdirSync(ARTIFACTS, { recursive: true });
      writeFileSync(join(ARTIFACTS, `scale-${n}.log`), logs[n].join('\n----- restart -----\n'));
    } catch { /* best effort */ }
  }
  if (upstream) await upstream.stop();
  if (pg) await pg.destroy();
  for (const n of NAMES) if (dirs[n]) rmSync(dirs[n], { recursive: true, force: true });
});

// ------------------------------------------------------------------ tests

describe('three instances on one PostgreSQL', () => {
  test('a 100-way burst over 3 instances never spends past the org credits', async () => {
    const MAX = 1000;
    const params = { model: 'fake-out-only', messages: MESSAGES, max_tokens: MAX,
      x_fake: { completion_tokens: MAX, latency_ms: 300 } };
    // Worst case: every body byte a prompt token, every output token used.
    // fake-out-only bills output only, and the provider is made to use every
    // token, so each successful call costs exactly its worst case.
    const p = PRICES['fake-out-only'];
    const bytes = BigInt(Buffer.byteLength(JSON.stringify(params)));
    const worst = (bytes * p.in + BigInt(MAX) * p.out + 999999n) / 1000000n;
    assert.equal(worst, 1000n);
    const grant = 30n * worst + worst / 2n; // room for 30 calls and a half
    const id = newOrg('Burst', credits(grant));
    const key = newKey('Burst', 'burst');
    const chats0 = await upstreamChats();

    const results = await Promise.all(Array.from({ length: 100 },
      (_, i) => call(NAMES[i % 3], key, params)));

    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 402);
    const other = results.filter((r) => r.status !== 200 && r.status !== 402);
    assert.deepEqual(other.map((r) => `${r.inst} ${r.status} ${r.error?.message}`), [], 'only 200 and 402');
    for (const r of refused) {
      assert.equal(r.error.type, 'insufficient_quota', r.error.message);
      assert.equal(r.error.code, 'insufficient_credits');
    }
    assert.equal(ok.length, 30, `30 calls fit the credits (got ${ok.length} 200s, ${refused.length} 402s)`);
    assert.ok(new Set(ok.map((r) => r.inst)).size >= 2, 'more than one instance served the burst');
    assert.equal(await upstreamChats() - chats0, ok.length, 'the provider served exactly the paid calls');

    await drained();
    const spent = await billedOnce(ok, 'fake-out-only');
    const { balance, held } = await org(id);
    assert.equal(held, 0n);
    assert.equal(balance, grant - spent, 'balance = credits - the costs of the 200s');
    assert.ok(balance >= 0n, `the balance never goes below 0 (${balance})`);
    const { debits, costs } = await orgSpend(id);
    assert.equal(debits, costs, 'usage debits = sum of requests.cost');
    assert.equal(debits, spent);
    audit();
  });

  test('a key spend limit is shared by the instances', async () => {
    const MAX = 1000;
    const params = { model: 'fake-out-only', messages: MESSAGES, max_tokens: MAX,
      x_fake: { completion_tokens: MAX, latency_ms: 300 } };
    const worst = 1000n; // as in the burst above: output only, every token used
    const id = newOrg('Spend', credits(1000n * worst));
    // The org could pay for 1000 calls; the key's daily limit for 10 and a half.
    const key = newKey('Spend', 'spend', ['--limit', credits(10n * worst + worst / 2n), '--period', 'daily']);
    const results = await Promise.all(Array.from({ length: 40 },
      (_, i) => call(NAMES[i % 3], key, params)));
    const ok = results.filter((r) => r.status === 200);
    const other = results.filter((r) => r.status !== 200 && r.status !== 402);
    assert.deepEqual(other.map((r) => `${r.inst} ${r.status} ${r.error?.message}`), [], 'only 200 and 402');
    for (const r of results.filter((x) => x.status === 402)) assert.match(r.error.message, /spend limit/);
    assert.equal(ok.length, 10, `10 calls fit the key's limit (got ${ok.length})`);
    assert.ok(new Set(ok.map((r) => r.inst)).size >= 2, 'more than one instance served them');
    await drained();
    assert.equal(await billedOnce(ok, 'fake-out-only'), 10n * worst);
    assert.equal((await orgSpend(id)).debits, 10n * worst);
    audit();
  });

  test('a key rate limit is shared by the instances', async () => {
    newOrg('Rate', '1');
    const key = newKey('Rate', 'rpm5', ['--rpm', '5']);
    const results = await Promise.all(Array.from({ length: 15 },
      (_, i) => call(NAMES[i % 3], key, { model: 'fake-chat', messages: MESSAGES, max_tokens: 5 })));
    const statuses = results.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 200).length, 5, `statuses: ${statuses.join(',')}`);
    assert.equal(statuses.filter((s) => s === 429).length, 10, `statuses: ${statuses.join(',')}`);
    for (const r of results.filter((x) => x.status === 429)) {
      assert.equal(r.error.code, 'rate_limit_exceeded');
      assert.ok(Number(r.headers.get('retry-after')) >= 1, `Retry-After: ${r.headers.get('retry-after')}`);
    }
    await drained();
  });

  test('a key revoked on one instance stops working on all within 1 s', async () => {
    newOrg('Revoke', '1');
    const key = newKey('Revoke', 'doomed');
    const keyId = await val(`SELECT id FROM api_keys WHERE prefix = '${key.slice(0, 11)}'`);
    const params = { model: 'fake-chat', messages: MESSAGES, max_tokens: 2 };
    for (const n of NAMES) assert.equal((await call(n, key, params)).status, 200, `a first call on ${n}`);
    // Revoked in the dashboard of instance a (tollgate keys revoke PREFIX
    // has a test of its own below).
    tg(['user', 'add', '--email', 'owner@example.com'], { input: 'owner-password-1\n' });
    tg(['org', 'member', '--org', 'Revoke', '--email', 'owner@example.com', '--role', 'owner']);
    const web = await new Client(gw.a.url).login('owner@example.com', 'owner-password-1');
    const res = await web.post(`/keys/${keyId}/revoke`, {}, `/keys/${keyId}`);
    assert.equal(res.status, 303, `revoke answered ${res.status}`);
    const t0 = Date.now();
    assert.notEqual(await val(`SELECT coalesce(revoked_at, 0) FROM api_keys WHERE id = ${keyId}`), '0');
    await revokedEverywhere(key, params, t0);
    await drained();
  });

  test('tollgate keys revoke PREFIX works on PostgreSQL, on every instance', async () => {
    newOrg('RevokeCli', '1');
    const key = newKey('RevokeCli', 'doomed');
    const params = { model: 'fake-chat', messages: MESSAGES, max_tokens: 2 };
    for (const n of NAMES) assert.equal((await call(n, key, params)).status, 200, `a first call on ${n}`);
    const r = tg(['keys', 'revoke', key.slice(0, 11)], { check: false });
    assert.equal(r.code, 0, `keys revoke (exit ${r.code}):\n${r.stdout}${r.stderr}`);
    const t0 = Date.now();
    await revokedEverywhere(key, params, t0);
    await drained();
  });

  test('kill -9 mid-stream: the hold stands, then the reaper of another instance voids it', async () => {
    const id = newOrg('Kill', '1');
    const key = newKey('Kill', 'kill');
    const before = await org(id);
    const lines0 = voidedLines(['a', 'c']).length;
    const s = await openStream('b', key, { model: 'fake-chat', messages: MESSAGES, max_tokens: 40,
      x_fake: { chunks: 40, chunk_interval_ms: 250 } }); // ~10 s
    const holds = await q(`SELECT amount FROM holds WHERE instance = 'b' AND org_id = ${id}`);
    assert.equal(holds.length, 1, 'b holds the call\'s worst case');
    const amount = BigInt(holds[0][0]);
    assert.ok(amount > 0n);
    assert.equal((await org(id)).held, before.held + amount);
    assert.ok((await org(id)).held > 0n);

    const b = gw.b;
    b.proc.kill('SIGKILL');
    await exited(b.proc);
    const tKill = Date.now();
    const ending = s.rest();
    const gone = await until(async () =>
      (await val(`SELECT count(*) FROM holds WHERE org_id = ${id}`)) === '0', (TTL_S + 4) * 1000,
    'the dead instance\'s hold voided');
    const after = Date.now() - tKill;
    assert.ok(after >= 1000, `the hold stood ${after} ms after the kill`);
    assert.ok(gone.ms <= (TTL_S + 4) * 1000);
    assert.notEqual((await ending).error, null, 'the client saw the stream break');

    await until(() => voidedLines(['a', 'c']).length > lines0, 2000, 'the reaper\'s log line');
    await sleep(1200); // a second void of the same hold would be logged by now
    const lines = voidedLines(['a', 'c']).slice(lines0);
    assert.deepEqual(lines, ['billing: voided 1 expired hold'], 'voided once, by a or c');
    const now = await org(id);
    assert.equal(now.held, before.held, 'held is back where it was');
    assert.equal(now.balance, before.balance, 'the killed call never settled');
    assert.equal((await orgSpend(id)).debits, 0n);
    audit();

    retire('b');
    await startInstance('b'); // same data dir, for the tests that follow
    await drained();
  });

  test('SIGSTOP past the hold expiry, then SIGCONT: the call is debited exactly once', async () => {
    const id = newOrg('Stall', '1');
    const key = newKey('Stall', 'stall');
    const before = await org(id);
    const lines0 = voidedLines(['a', 'b']).length;
    // The reaper's leader (a, which started first) is not the one stalled.
    assert.doesNotMatch(gw.c.stderr(), /this instance \(c\) now voids expired holds/);
    const s = await openStream('c', key, { model: 'fake-chat', messages: MESSAGES, max_tokens: 12,
      x_fake: { chunks: 12, chunk_interval_ms: 250 } }); // ~3 s
    assert.equal((await q(`SELECT 1 FROM holds WHERE instance = 'c' AND org_id = ${id}`)).length, 1);
    assert.ok((await org(id)).held > before.held);

    const c = gw.c;
    c.proc.kill('SIGSTOP');
    let voided;
    try {
      voided = await until(async () => (await org(id)).held === before.held &&
        (await val(`SELECT count(*) FROM holds WHERE org_id = ${id}`)) === '0',
      (TTL_S + 5) * 1000, 'the stalled instance\'s hold voided', 100);
    } finally {
      c.proc.kill('SIGCONT');
    }
    assert.ok(voided.ms >= 1000, `the hold was voided ${voided.ms} ms after the stall`);
    await until(() => voidedLines(['a', 'b']).length > lines0, 2000, 'the reaper\'s log line');

    const { usage, error } = await s.rest();
    assert.equal(error, null, `the stream finished after SIGCONT: ${error?.message}`);
    assert.ok(usage, 'the stream ended with its usage');
    const cost = expectedCost('fake-chat', usage);
    assert.equal(micro(usage.cost), cost);

    await drained();
    assert.deepEqual((await settledAs([s.requestId])).get(s.requestId),
      { debits: 1, debited: cost, rows: 1, cost }, `the call ${s.requestId} is debited exactly once`);
    const now = await org(id);
    assert.equal(now.held, 0n);
    assert.equal(now.balance, before.balance - cost);
    assert.deepEqual(voidedLines(['a', 'b']).slice(lines0), ['billing: voided 1 expired hold'],
      'voided once, by a or b');
    audit();
  });

  test('PostgreSQL stopped during traffic: 200 or a clear 503, and no billed call lost', async (t) => {
    const id = newOrg('Outage', '10');
    const key = newKey('Outage', 'outage');
    const before = await org(id);
    const params = { model: 'fake-chat', messages: MESSAGES, max_tokens: 5 };
    const results = [];
    let stop = false;
    let phase = 'up';
    const loops = Array.from({ length: 5 }, async (_, i) => {
      for (let n = i; !stop; n++) {
        const r = await call(NAMES[n % 3], key, params, { timeout: 4000 });
        r.phase = phase;
        results.push(r);
        await sleep(10);
      }
    });
    await sleep(600);
    await pg.stop();
    phase = 'down';
    await sleep(2000);
    stop = true;
    await Promise.all(loops);
    await pg.restart();
    phase = 'back';
    for (const n of NAMES) {
      await until(async () => {
        const r = await call(n, key, params, { timeout: 4000 });
        r.phase = 'probe';
        results.push(r);
        return r.status === 200;
      }, 15_000, `instance ${n} answering 200 again`, 200);
    }

    const tally = {};
    for (const r of results) tally[`${r.phase} ${r.status}`] = (tally[`${r.phase} ${r.status}`] ?? 0) + 1;
    t.diagnostic(`answers by phase: ${JSON.stringify(tally)}`);
    // Statuses first (200 or 503, never a timeout or another error); the
    // wording of the 503s is checked last, once the books are.
    const odd = results.filter((r) => r.status !== 200 && r.status !== 503);
    assert.deepEqual([...new Set(odd.map((r) => `${r.inst} ${r.phase} ${r.status} ${r.error?.message}`))], [],
      'every answer is a 200 or a 503, in time');
    assert.ok(results.some((r) => r.phase === 'up' && r.status === 200), 'calls succeeded before the stop');
    assert.ok(results.some((r) => r.status === 503), 'the outage was seen');

    await drained(30_000);
    const spent = await billedOnce(results.filter((r) => r.status === 200), 'fake-chat');
    const now = await org(id);
    const { debits } = await orgSpend(id);
    assert.equal(now.held, 0n);
    assert.equal(debits, before.balance - now.balance, 'sum of debits = balance change');
    assert.equal(debits, spent, 'only the calls answered 200 are debited');
    audit();
    const vague = results.filter((r) => r.status === 503 && !/database/i.test(r.error?.error?.message ?? ''));
    assert.deepEqual([...new Set(vague.map((r) => `${r.status} ${r.error?.code}: ${r.error?.error?.message}`))], [],
      `every 503 names the database (${vague.length} of ${results.filter((r) => r.status === 503).length} do not)`);
  });
});
