// GET /metrics: the Prometheus text exposition parsed line by line, counters
// that move by exactly what the gateway did (calls, tokens, debits that match
// the ledger, 402s, 429s, upstream failures), the stream and hold gauges while
// a stream runs, and the optional bearer token.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import OpenAI from 'openai';
import { cli } from './lib/harness.js';
import { startGateway, createKey, grant, micro, settled, sql as dbSql } from './lib/gateway.js';
import { addOrg } from './lib/session.js';

const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const MESSAGES = [{ role: 'user', content: 'Count the tokens, please.' }];

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const HELP_RE = new RegExp(`^# HELP (${NAME}) (.+)$`);
const TYPE_RE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram)$`);
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const SAMPLE_RE = new RegExp(`^(${NAME})(?:\\{(${LABEL}(?:,${LABEL})*)?\\})? (\\S+)$`);
const VALUE_RE = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$/;

// Every line must be a HELP, a TYPE or a sample of the family typed just
// before it; no series twice. Returns a Map "name{labels}" -> raw value.
function parseMetrics(text) {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const samples = new Map();
  const helped = new Set();
  const typed = new Map();
  let cur = null;
  for (const [i, line] of text.slice(0, -1).split('\n').entries()) {
    let m;
    if ((m = line.match(HELP_RE))) {
      assert.ok(!helped.has(m[1]), `line ${i + 1}: second HELP for ${m[1]}`);
      helped.add(m[1]);
    } else if ((m = line.match(TYPE_RE))) {
      assert.ok(helped.has(m[1]), `line ${i + 1}: TYPE before HELP for ${m[1]}`);
      assert.ok(!typed.has(m[1]), `line ${i + 1}: second TYPE for ${m[1]}`);
      typed.set(m[1], m[2]);
      cur = { name: m[1], type: m[2] };
    } else if ((m = line.match(SAMPLE_RE))) {
      assert.match(m[3], VALUE_RE, `line ${i + 1}: bad value`);
      assert.ok(cur, `line ${i + 1}: sample before any TYPE`);
      const suffix = m[1].slice(cur.name.length);
      const ok = m[1].startsWith(cur.name) &&
        (cur.type === 'histogram' ? ['_bucket', '_sum', '_count'].includes(suffix) : suffix === '');
      assert.ok(ok, `line ${i + 1}: ${m[1]} outside its family ${cur.name}`);
      const key = `${m[1]}{${m[2] ?? ''}}`;
      assert.ok(!samples.has(key), `line ${i + 1}: duplicate series ${key}`);
      samples.set(key, m[3]);
    } else {
      assert.fail(`line ${i + 1} is not valid exposition text: ${JSON.stringify(line)}`);
    }
  }
  return samples;
}

function esc(v) {
  return String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function key(name, labels = {}) {
  return `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${esc(v)}"`).join(',')}}`;
}

// A sample's value as a number; 0 when the series does not exist yet.
function val(m, name, labels) {
  const v = m.get(key(name, labels));
  return v === undefined ? 0 : Number(v);
}

function delta(a, b, name, labels) {
  return val(b, name, labels) - val(a, name, labels);
}

function checkHistogram(m, base) {
  let prev = -1;
  let inf = null;
  const bounds = [];
  for (const [k, v] of m) {
    const b = k.match(new RegExp(`^${base}_bucket\\{le="([^"]+)"\\}$`));
    if (!b) continue;
    assert.equal(inf, null, '+Inf is the last bucket');
    assert.ok(Number(v) >= prev, `${base} buckets are cumulative`);
    prev = Number(v);
    if (b[1] === '+Inf') inf = Number(v);
    else bounds.push(Number(b[1]));
  }
  assert.deepEqual(bounds, [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]);
  assert.equal(inf, val(m, `${base}_count`), `${base}: +Inf equals _count`);
  assert.match(m.get(`${base}_sum{}`), /^\d+\.\d{6}$/, 'sums are exact decimals');
}

describe('metrics', () => {
  let gw, key1, client;

  const sdk = (apiKey) => new OpenAI({ apiKey, baseURL: `${gw.srv.url}/v1`, maxRetries: 0, timeout: 20_000 });
  const sql = (q) => dbSql(gw.srv.dataDir, q);

  async function scrape() {
    settled(gw.srv.dataDir); // finished calls' holds go once their debits commit
    const res = await fetch(`${gw.srv.url}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), CONTENT_TYPE);
    return parseMetrics(await res.text());
  }

  before(async () => {
    gw = await startGateway({ credits: '100' });
    key1 = createKey(gw.srv.dataDir, 'Acme', 'main');
    client = sdk(key1);
  });
  after(async () => {
    const r = cli(gw.srv.dataDir, ['audit']);
    assert.equal(r.code, 0, `audit:\n${r.stdout}${r.stderr}`);
    await gw.stop();
  });

  test('the exposition is valid and carries every metric', async () => {
    const m = await scrape();
    for (const name of ['tollgate_gateway_insufficient_credits_total', 'tollgate_gateway_rate_limited_total',
      'tollgate_gateway_active_streams', 'tollgate_ledger_held_micro', 'tollgate_db_up', 'tollgate_db_size_bytes',
      'tollgate_gateway_credits_debited_micro_total', 'tollgate_start_time_seconds']) {
      assert.ok(m.has(`${name}{}`), name);
    }
    for (const kind of ['prompt', 'cached', 'completion']) assert.ok(m.has(key('tollgate_gateway_tokens_total', { kind })));
    for (const source of ['reported', 'estimated', 'none']) assert.ok(m.has(key('tollgate_usage_source_total', { source })));
    checkHistogram(m, 'tollgate_gateway_request_duration_seconds');
    checkHistogram(m, 'tollgate_gateway_upstream_duration_seconds');
    assert.equal(val(m, 'tollgate_db_up'), 1);
    assert.ok(val(m, 'tollgate_db_size_bytes') > 0);
    assert.equal(val(m, 'tollgate_ledger_held_micro'), 0);
    assert.equal(val(m, 'tollgate_gateway_active_streams'), 0);
    assert.equal([...m.keys()].filter((k) => k.startsWith('tollgate_build_info{version="')).length, 1);
    const started = val(m, 'tollgate_start_time_seconds');
    assert.ok(started <= Date.now() / 1000 + 1 && started > Date.now() / 1000 - 600, `start time ${started}`);
    // HEAD answers without a body; /health is not affected.
    const head = await fetch(`${gw.srv.url}/metrics`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal((await fetch(`${gw.srv.url}/health`)).status, 200);
  });

  test('counters move by exactly what the gateway did', async () => {
    const debitedBefore = BigInt(sql("SELECT COALESCE(-SUM(amount), 0) FROM ledger_entries WHERE kind = 'usage'"));
    const m0 = await scrape();
    const usages = [];
    let charged = 0n;

    // 1. A success, with cached prompt tokens.
    const ok = await client.chat.completions
      .create({ model: 'fake-chat', messages: MESSAGES, max_tokens: 20, x_fake: { cached_tokens: 4 } })
      .withResponse();
    usages.push(ok.data.usage);
    charged += micro(ok.response.headers.get('x-credits-charged'));

    // 2. A stream with usage.
    const stream = await client.chat.completions.create({
      model: 'fake-chat', messages: MESSAGES, max_tokens: 12, stream: true, stream_options: { include_usage: true },
    });
    let streamUsage = null;
    for await (const chunk of stream) if (chunk.usage) streamUsage = chunk.usage;
    assert.ok(streamUsage);
    usages.push(streamUsage);
    charged += micro(streamUsage.cost);

    // 3. A 402 from an org with almost no credits.
    addOrg(gw.srv.dataDir, 'Poor');
    grant(gw.srv.dataDir, 'Poor', '0.000001');
    await assert.rejects(
      sdk(createKey(gw.srv.dataDir, 'Poor', 'poor')).chat.completions.create({ model: 'fake-big', messages: MESSAGES, max_tokens: 4000 }),
      (err) => err.status === 402);

    // 4. A 429 from a key allowed one request a minute (the first succeeds).
    const slow = sdk(createKey(gw.srv.dataDir, 'Acme', 'slow', ['--rpm', '1']));
    const first = await slow.chat.completions.create({ model: 'fake-chat', messages: MESSAGES, max_tokens: 5 }).withResponse();
    usages.push(first.data.usage);
    charged += micro(first.response.headers.get('x-credits-charged'));
    await assert.rejects(slow.chat.completions.create({ model: 'fake-chat', messages: MESSAGES, max_tokens: 5 }),
      (err) => err.status === 429);

    // 5. An upstream 500, answered 502 and not billed.
    await assert.rejects(client.chat.completions.create({ model: 'fake-chat', messages: MESSAGES, x_fake: { status: 500 } }),
      (err) => err.status === 502);

    const m1 = await scrape();
    const gwReq = (model, status) => delta(m0, m1, 'tollgate_gateway_requests_total', { endpoint: 'chat.completions', model, status });
    assert.equal(gwReq('fake-chat', 200), 3);
    assert.equal(gwReq('fake-big', 402), 1);
    assert.equal(gwReq('fake-chat', 429), 1);
    assert.equal(gwReq('fake-chat', 502), 1);
    const http = (status) => delta(m0, m1, 'tollgate_http_requests_total', { route: '/v1/chat/completions', status });
    assert.equal(http(200), 3);
    assert.equal(http(402), 1);
    assert.equal(http(429), 1);
    assert.equal(http(502), 1);
    assert.equal(delta(m0, m1, 'tollgate_http_requests_total', { route: '/metrics', status: 200 }), 1, 'the first scrape');

    assert.equal(delta(m0, m1, 'tollgate_gateway_insufficient_credits_total'), 1);
    assert.equal(delta(m0, m1, 'tollgate_gateway_rate_limited_total'), 1);
    // Every call after authentication went through the call journal, in at
    // least one committed batch; nothing waits once it has drained.
    assert.equal(delta(m0, m1, 'tollgate_journal_records_total'), 6);
    const batches = delta(m0, m1, 'tollgate_journal_batches_total');
    assert.ok(batches >= 1 && batches <= 6, `batches ${batches}`);
    assert.equal(val(m1, 'tollgate_journal_queued'), 0);
    assert.equal(delta(m0, m1, 'tollgate_usage_source_total', { source: 'reported' }), 3);
    assert.equal(delta(m0, m1, 'tollgate_usage_source_total', { source: 'estimated' }), 0);
    assert.equal(delta(m0, m1, 'tollgate_usage_source_total', { source: 'none' }), 3);

    // Tokens are the usage the clients saw.
    const sum = (f) => usages.reduce((a, u) => a + f(u), 0);
    const prompt = sum((u) => u.prompt_tokens);
    const cached = sum((u) => u.prompt_tokens_details?.cached_tokens ?? 0);
    const completion = sum((u) => u.completion_tokens);
    assert.ok(cached >= 4);
    assert.equal(delta(m0, m1, 'tollgate_gateway_tokens_total', { kind: 'prompt' }), prompt);
    assert.equal(delta(m0, m1, 'tollgate_gateway_tokens_total', { kind: 'cached' }), cached);
    assert.equal(delta(m0, m1, 'tollgate_gateway_tokens_total', { kind: 'completion' }), completion);
    assert.equal(sql("SELECT SUM(prompt_tokens) || '|' || SUM(cached_tokens) || '|' || SUM(completion_tokens) FROM requests WHERE usage_source != 'none'"),
      `${prompt}|${cached}|${completion}`);

    // Credits debited equal the ledger's usage debits and what the clients were charged.
    const debited = BigInt(m1.get('tollgate_gateway_credits_debited_micro_total{}')) -
      BigInt(m0.get('tollgate_gateway_credits_debited_micro_total{}'));
    const ledger = BigInt(sql("SELECT COALESCE(-SUM(amount), 0) FROM ledger_entries WHERE kind = 'usage'")) - debitedBefore;
    assert.ok(debited > 0n);
    assert.equal(debited, ledger);
    assert.equal(debited, charged);

    // Six calls timed in total; four reached the provider (402 and 429 did not).
    assert.equal(delta(m0, m1, 'tollgate_gateway_request_duration_seconds_count'), 6);
    assert.equal(delta(m0, m1, 'tollgate_gateway_upstream_duration_seconds_count'), 4);
    assert.ok(delta(m0, m1, 'tollgate_gateway_request_duration_seconds_sum') > 0);
    checkHistogram(m1, 'tollgate_gateway_request_duration_seconds');
    checkHistogram(m1, 'tollgate_gateway_upstream_duration_seconds');
    assert.equal(val(m1, 'tollgate_gateway_active_streams'), 0);
    assert.equal(val(m1, 'tollgate_ledger_held_micro'), 0);
  });

  test('an open stream shows in the stream gauge and the held credits', async () => {
    const stream = await client.chat.completions.create({
      model: 'fake-chat', messages: MESSAGES, max_tokens: 100, stream: true,
      x_fake: { chunks: 30, chunk_interval_ms: 20 },
    });
    const it = stream[Symbol.asyncIterator]();
    assert.equal((await it.next()).done, false);
    const mid = await scrape();
    assert.equal(val(mid, 'tollgate_gateway_active_streams'), 1);
    assert.ok(val(mid, 'tollgate_ledger_held_micro') > 0, 'the stream holds its reserve');
    for (let r = await it.next(); !r.done; r = await it.next());
    // The stream's cost stays held until the call journal's writer commits
    // its debit (a few milliseconds after the stream ends), then nothing is.
    let end = await scrape();
    for (let i = 0; i < 50 && (val(end, 'tollgate_gateway_active_streams') !== 0 ||
                               val(end, 'tollgate_ledger_held_micro') !== 0); i++) {
      await new Promise((r) => setTimeout(r, 20));
      end = await scrape();
    }
    assert.equal(val(end, 'tollgate_gateway_active_streams'), 0);
    assert.equal(val(end, 'tollgate_ledger_held_micro'), 0);
  });

  test('unknown models and unmatched paths use bounded labels', async () => {
    const m0 = await scrape();
    await assert.rejects(client.chat.completions.create({ model: 'no-such-model-"x"', messages: MESSAGES }),
      (err) => err.status === 404);
    assert.equal((await fetch(`${gw.srv.url}/definitely/not/here`)).status, 404);
    const m1 = await scrape();
    assert.equal(delta(m0, m1, 'tollgate_gateway_requests_total', { endpoint: 'chat.completions', model: 'unknown', status: 404 }), 1);
    assert.ok(![...m1.keys()].some((k) => k.includes('no-such-model')), 'client-chosen names never become labels');
    assert.equal(delta(m0, m1, 'tollgate_http_requests_total', { route: 'other', status: 404 }), 1);
  });
});

describe('metrics token', () => {
  let gw;

  before(async () => { gw = await startGateway({ credits: '1', serverArgs: ['--metrics-token', 's3cret'] }); });
  after(async () => { await gw.stop(); });

  test('401 without the token, 200 with it, and the token never logged', async () => {
    const url = `${gw.srv.url}/metrics`;
    for (const headers of [{}, { Authorization: 'Bearer wrong' }, { Authorization: 'Bearer s3cre' },
      { Authorization: 'Bearer s3cretX' }, { Authorization: 'Basic s3cret' }, { Authorization: 's3cret' }]) {
      const res = await fetch(url, { headers });
      assert.equal(res.status, 401, JSON.stringify(headers));
      assert.match(res.headers.get('content-type'), /^text\/plain/);
      assert.ok(res.headers.get('www-authenticate')?.startsWith('Bearer'));
      const body = await res.text();
      assert.ok(!body.includes('s3cret'));
      assert.ok(!body.includes('tollgate_'));
    }
    const res = await fetch(url, { headers: { Authorization: 'Bearer s3cret' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), CONTENT_TYPE);
    const m = parseMetrics(await res.text());
    assert.equal(val(m, 'tollgate_http_requests_total', { route: '/metrics', status: 401 }), 6);
    assert.equal((await fetch(`${gw.srv.url}/health`)).status, 200, 'other routes need no token');
    await gw.srv.stop();
    assert.ok(!gw.srv.stdout().includes('s3cret') && !gw.srv.stderr().includes('s3cret'), 'the token is not logged');
  });
});
