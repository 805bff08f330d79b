// The metering gateway driven by the official openai SDK: exact debits,
// streaming with and without usage, 402/403/401/429, upstream failures,
// aborted streams, concurrency against a tight balance, and retries.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import OpenAI from 'openai';
import { cli } from './lib/harness.js';
import { startGateway, createKey, balance, grant, expectedCost, micro, sql as dbSql } from './lib/gateway.js';
import { addOrg, addUser, addMember, Client } from './lib/session.js';
import { runAudit } from './lib/audit.js';

let gw, key, client;

function sdk(apiKey, opts = {}) {
  return new OpenAI({ apiKey, baseURL: `${gw.srv.url}/v1`, maxRetries: 0, timeout: 20_000, ...opts });
}

function sql(query) {
  return dbSql(gw.srv.dataDir, query);
}

const MESSAGES = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hello to the ledger.' }];

before(async () => {
  gw = await startGateway({ credits: '100' });
  key = createKey(gw.srv.dataDir, 'Acme', 'main');
  client = sdk(key);
});
after(async () => {
  // Every suite ends with a clean audit of the ledger.
  runAudit(gw.srv.dataDir);
  await gw.stop();
});

describe('gateway', () => {
  test('GET /v1/models lists the priced models this key may use', async () => {
    const list = await client.models.list();
    const ids = list.data.map((m) => m.id);
    for (const id of ['fake-chat', 'fake-big', 'echo-small']) assert.ok(ids.includes(id), id);
    const m = list.data.find((x) => x.id === 'fake-chat');
    assert.equal(m.object, 'model');
    assert.equal(m.pricing.input, '0.15');
    assert.equal(m.pricing.output, '0.60');
  });

  test('a non-streaming call is debited exactly for the reported usage', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const { data, response } = await client.chat.completions
      .create({ model: 'fake-big', messages: MESSAGES, max_tokens: 50 })
      .withResponse();
    assert.equal(data.model, 'fake-big', 'the public model name comes back');
    assert.ok(data.choices[0].message.content.length > 0);
    const cost = expectedCost('fake-big', data.usage);
    assert.ok(cost > 0n);
    assert.equal(micro(data.usage.cost), cost, 'usage.cost is the exact charge');
    assert.equal(micro(response.headers.get('x-credits-charged')), cost);
    const after = balance(gw.srv.dataDir, 'Acme');
    assert.equal(before - after, cost);
    assert.equal(micro(response.headers.get('x-credits-remaining')), after);
    assert.ok(response.headers.get('x-request-id'));
    const row = sql(`SELECT status, usage_source, cost, prompt_tokens, completion_tokens, model, client_ip FROM requests WHERE request_id = '${response.headers.get('x-request-id')}'`);
    assert.equal(row, `200|reported|${cost}|${data.usage.prompt_tokens}|${data.usage.completion_tokens}|fake-big|127.0.0.1`);
  });

  test('cached prompt tokens are billed at the cached price', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const data = await client.chat.completions.create({
      model: 'fake-big', messages: MESSAGES, max_tokens: 10, x_fake: { cached_tokens: 8 },
    });
    assert.equal(data.usage.prompt_tokens_details.cached_tokens, 8);
    const cost = expectedCost('fake-big', data.usage);
    assert.equal(before - balance(gw.srv.dataDir, 'Acme'), cost);
  });

  test('the upstream receives the mapped model name and unknown fields untouched', async () => {
    const data = await client.chat.completions.create({
      model: 'fake-chat', messages: MESSAGES, max_tokens: 5, seed: 42,
      response_format: { type: 'text' }, tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
      x_fake: { echo_body: 1 },
    });
    assert.equal(data.fake_request.model, 'upstream-chat');
    assert.equal(data.fake_request.seed, 42);
    assert.deepEqual(data.fake_request.response_format, { type: 'text' });
    assert.equal(data.fake_request.tools[0].function.name, 'f');
  });

  test('streaming with include_usage: chunks relayed, usage carries the cost', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const stream = await client.chat.completions.create({
      model: 'fake-chat', messages: MESSAGES, max_tokens: 12, stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      assert.equal(chunk.model, 'fake-chat');
      if (chunk.choices[0]?.delta?.content) text += chunk.choices[0].delta.content;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.ok(chunks > 3);
    assert.ok(text.length > 0);
    assert.ok(usage, 'the usage chunk reaches the client');
    const cost = expectedCost('fake-chat', usage);
    assert.equal(micro(usage.cost), cost);
    assert.equal(before - balance(gw.srv.dataDir, 'Acme'), cost);
  });

  test('stream chunks reach the client as the provider sends them, not at the end', async () => {
    // The relay sends what arrived together in one write; chunks the provider
    // spaces out must still arrive spaced out.
    const stream = await client.chat.completions.create({
      model: 'fake-chat', messages: MESSAGES, max_tokens: 4, stream: true,
      x_fake: { chunks: 4, chunk_interval_ms: 300 },
    });
    const at = [];
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) at.push(Date.now());
    }
    assert.equal(at.length, 4);
    // Sent 300 ms apart: events held back would come 0 ms apart; 100 leaves
    // room for a slow, sanitized build's scheduling.
    for (let i = 1; i < at.length; i++) {
      assert.ok(at[i] - at[i - 1] >= 100, `chunk ${i} came ${at[i] - at[i - 1]} ms after the one before`);
    }
  });

  test('a provider that puts usage in every chunk: chunks stay in order, billed once from the last', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const stream = await client.chat.completions.create({
      model: 'fake-chat', messages: MESSAGES, max_tokens: 12, stream: true,
      stream_options: { include_usage: true }, x_fake: { usage_every_chunk: 1, chunks: 6 },
    });
    let text = '';
    const seen = [];
    const kinds = [];
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) text += chunk.choices[0].delta.content;
      if (chunk.usage) seen.push(chunk.usage);
      kinds.push(chunk.choices[0]?.finish_reason ? 'finish' : chunk.choices[0]?.delta?.content ? 'content' : 'other');
    }
    // The relay holds each usage chunk back until the next event: chunks must
    // still arrive in the provider's order, the finish after every content.
    assert.equal(text, Array.from({ length: 12 }, (_, i) => `tok${i}`).join(' '));
    assert.ok(kinds.lastIndexOf('content') < kinds.indexOf('finish'), kinds.join(','));
    assert.ok(seen.length >= 6, `usage seen in ${seen.length} chunks`);
    const last = seen[seen.length - 1];
    assert.equal(last.completion_tokens, 12);
    const cost = expectedCost('fake-chat', last);
    assert.equal(micro(last.cost), cost);
    assert.equal(before - balance(gw.srv.dataDir, 'Acme'), cost);
  });

  test('streaming without include_usage: no usage chunk, still billed from reported usage', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const stream = await client.chat.completions.create({
      model: 'fake-big', messages: MESSAGES, max_tokens: 20, stream: true,
    });
    let sawUsage = false;
    for await (const chunk of stream) if (chunk.usage) sawUsage = true;
    assert.equal(sawUsage, false);
    const row = sql("SELECT usage_source, cost FROM requests WHERE stream = 1 ORDER BY id DESC LIMIT 1").split('|');
    assert.equal(row[0], 'reported');
    assert.equal(before - balance(gw.srv.dataDir, 'Acme'), BigInt(row[1]));
    assert.ok(BigInt(row[1]) > 0n);
  });

  test('embeddings are billed for their input tokens', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const res = await client.embeddings.create({ model: 'fake-embed', input: ['hello world', 'second text'] });
    assert.equal(res.data.length, 2);
    assert.ok(Array.isArray(res.data[0].embedding));
    const cost = expectedCost('fake-embed', { prompt_tokens: res.usage.prompt_tokens, completion_tokens: 0 });
    assert.equal(before - balance(gw.srv.dataDir, 'Acme'), cost);
  });

  test('the echo provider works offline and is billed', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const data = await client.chat.completions.create({ model: 'echo-small', messages: [{ role: 'user', content: 'one two three' }] });
    assert.equal(data.choices[0].message.content, 'Echo: one two three');
    assert.equal(data.usage.completion_tokens, 4);
    assert.equal(before - balance(gw.srv.dataDir, 'Acme'), expectedCost('fake-chat', data.usage));
  });

  test('402 when credits run out, with the balance, the amount and the max_tokens that fits', async () => {
    addOrg(gw.srv.dataDir, 'Poor');
    grant(gw.srv.dataDir, 'Poor', '0.001');
    const poor = sdk(createKey(gw.srv.dataDir, 'Poor', 'poor'));
    await assert.rejects(
      poor.chat.completions.create({ model: 'fake-big', messages: MESSAGES, max_tokens: 4000 }),
      (err) => {
        assert.equal(err.status, 402);
        assert.equal(err.code, 'insufficient_credits');
        assert.match(err.message, /Insufficient credits/);
        assert.match(err.message, /0\.001000/, 'says the balance');
        assert.match(err.message, /max_tokens to at most \d+/, 'says what fits');
        return true;
      });
    // The suggested max_tokens really fits.
    const res = await fetch(`${gw.srv.url}/v1/chat/completions`, {
      method: 'POST', headers: { Authorization: `Bearer ${createKey(gw.srv.dataDir, 'Poor', 'p2')}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'fake-big', messages: MESSAGES, max_tokens: 4000 }),
    });
    const fit = Number((await res.json()).error.message.match(/at most (\d+)/)[1]);
    const ok = await poor.chat.completions.create({ model: 'fake-big', messages: MESSAGES, max_tokens: fit });
    assert.ok(ok.id);
    assert.ok(balance(gw.srv.dataDir, 'Poor') >= 0n);
  });

  test('a key spend limit answers 402 naming the key limit', async () => {
    const limited = sdk(createKey(gw.srv.dataDir, 'Acme', 'limited', ['--limit', '0.000050', '--period', 'daily']));
    await assert.rejects(
      limited.chat.completions.create({ model: 'fake-out-only', messages: MESSAGES, max_tokens: 100 }),
      (err) => err.status === 402 && /spend limit/.test(err.message));
    const ok = await limited.chat.completions.create({ model: 'fake-out-only', messages: MESSAGES, max_tokens: 40, x_fake: { completion_tokens: 40 } });
    assert.ok(ok.id);
    // 40 of 50 micro-credits spent: 20 more tokens no longer fit.
    await assert.rejects(
      limited.chat.completions.create({ model: 'fake-out-only', messages: MESSAGES, max_tokens: 20 }),
      (err) => err.status === 402);
  });

  test('a rate limit answers 429 with Retry-After and x-ratelimit headers', async () => {
    const rk = createKey(gw.srv.dataDir, 'Acme', 'slow', ['--rpm', '2']);
    const limited = sdk(rk);
    const first = await limited.chat.completions.create({ model: 'echo-small', messages: MESSAGES }).withResponse();
    assert.equal(first.response.headers.get('x-ratelimit-limit-requests'), '2');
    assert.equal(first.response.headers.get('x-ratelimit-remaining-requests'), '1');
    assert.ok(first.response.headers.get('x-ratelimit-reset-requests'));
    await limited.chat.completions.create({ model: 'echo-small', messages: MESSAGES });
    await assert.rejects(limited.chat.completions.create({ model: 'echo-small', messages: MESSAGES }), (err) => {
      assert.equal(err.status, 429);
      assert.equal(err.code, 'rate_limit_exceeded');
      assert.ok(Number(err.headers.get('retry-after')) >= 1);
      assert.equal(err.headers.get('x-ratelimit-remaining-requests'), '0');
      return true;
    });
  });

  test('an org-wide rate limit binds across all of its keys', async () => {
    addOrg(gw.srv.dataDir, 'Capped');
    grant(gw.srv.dataDir, 'Capped', '1');
    const r = cli(gw.srv.dataDir, ['org', 'limits', '--org', 'Capped', '--rpm', '3']);
    assert.equal(r.code, 0, r.stderr);
    const a = sdk(createKey(gw.srv.dataDir, 'Capped', 'a'));
    const b = sdk(createKey(gw.srv.dataDir, 'Capped', 'b'));
    await a.chat.completions.create({ model: 'echo-small', messages: MESSAGES });
    await b.chat.completions.create({ model: 'echo-small', messages: MESSAGES });
    await a.chat.completions.create({ model: 'echo-small', messages: MESSAGES });
    await assert.rejects(b.chat.completions.create({ model: 'echo-small', messages: MESSAGES }),
      (err) => err.status === 429 && /organization/.test(err.message));
  });

  test('a revoked key gets 401 on its very next call', async () => {
    const k = createKey(gw.srv.dataDir, 'Acme', 'doomed');
    const c = sdk(k);
    await c.models.list();
    const r = cli(gw.srv.dataDir, ['keys', 'revoke', k.slice(0, 11)]);
    assert.equal(r.code, 0, r.stderr);
    // The CLI changed the database under a running server: the server must
    // not trust its cache for a revoked key.
    await assert.rejects(c.models.list(), (err) => err.status === 401 && err.code === 'invalid_api_key');
  });

  test('a member removed from the org, or a disabled user, keeps no working key', async () => {
    addUser(gw.srv.dataDir, { email: 'leaver@example.com', password: 'leaver-password-1' });
    addMember(gw.srv.dataDir, 'Acme', 'leaver@example.com', 'member');
    const member = await new Client(gw.srv.url).login('leaver@example.com', 'leaver-password-1');
    const res = await member.post('/keys', { name: 'leaver key' }, '/keys/new');
    const html = await res.text();
    const k = html.match(/<code id="new-key">(tg_[0-9A-Za-z]+)<\/code>/)[1];
    const c = sdk(k);
    assert.ok((await c.models.list()).data.length > 0);
    // The owner (instance admin) removes the member through the dashboard.
    const admin = await new Client(gw.srv.url).login('owner@example.com', 'owner-password-1');
    const uid = sql("SELECT id FROM users WHERE email = 'leaver@example.com'");
    const orgId = sql("SELECT id FROM orgs WHERE name = 'Acme'");
    const rm = await admin.post(`/orgs/${orgId}/members/${uid}/remove`, {}, `/orgs/${orgId}`);
    assert.equal(rm.status, 303);
    await assert.rejects(c.models.list(), (err) => err.status === 401 && /revoked/.test(err.message));
    assert.match(sql(`SELECT detail FROM audit_log WHERE action = 'member.remove' ORDER BY id DESC LIMIT 1`), /1 API key\(s\) revoked/);

    // Disabling a user from the CLI revokes their keys in every org too.
    addMember(gw.srv.dataDir, 'Acme', 'leaver@example.com', 'member');
    const again = await new Client(gw.srv.url).login('leaver@example.com', 'leaver-password-1');
    const html2 = await (await again.post('/keys', { name: 'second key' }, '/keys/new')).text();
    const c2 = sdk(html2.match(/<code id="new-key">(tg_[0-9A-Za-z]+)<\/code>/)[1]);
    await c2.models.list();
    const r = cli(gw.srv.dataDir, ['user', 'disable', '--email', 'leaver@example.com']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /revoked 1 API key/);
    await assert.rejects(c2.models.list(), (err) => err.status === 401);
  });

  test('GET /v1/key reports limits, spend this period, what remains and the org balance', async () => {
    const k = createKey(gw.srv.dataDir, 'Acme', 'reporting', ['--limit', '1', '--period', 'monthly', '--rpm', '100']);
    const c = sdk(k);
    await c.chat.completions.create({ model: 'fake-chat', messages: MESSAGES, max_tokens: 10 });
    const res = await fetch(`${gw.srv.url}/v1/key`, { headers: { Authorization: `Bearer ${k}` } });
    assert.equal(res.status, 200);
    const { data } = await res.json();
    assert.equal(data.name, 'reporting');
    assert.equal(data.limits.rpm, 100);
    assert.equal(data.limits.spend_period, 'monthly');
    const spent = micro(data.usage.spent);
    assert.ok(spent > 0n);
    assert.equal(micro(data.usage.limit_remaining), 1000000n - spent);
    assert.equal(micro(data.org_balance), balance(gw.srv.dataDir, 'Acme'));
  });

  test('a model the key may not use answers 403; an unknown model 404', async () => {
    const c = sdk(createKey(gw.srv.dataDir, 'Acme', 'narrow', ['--models', 'echo-small']));
    await assert.rejects(c.chat.completions.create({ model: 'fake-chat', messages: MESSAGES }),
      (err) => err.status === 403 && /may not use the model 'fake-chat'/.test(err.message));
    await assert.rejects(client.chat.completions.create({ model: 'nope', messages: MESSAGES }),
      (err) => err.status === 404 && err.code === 'model_not_found');
    const list = await c.models.list();
    assert.deepEqual(list.data.map((m) => m.id), ['echo-small']);
  });

  test('an upstream 500 becomes 502 and is not billed; a 4xx passes through', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    await assert.rejects(client.chat.completions.create({ model: 'fake-chat', messages: MESSAGES, x_fake: { status: 500 } }),
      (err) => err.status === 502 && err.code === 'upstream_error' && /not charged/.test(err.message));
    await assert.rejects(client.chat.completions.create({ model: 'fake-chat', messages: MESSAGES, x_fake: { status: 400 } }),
      (err) => err.status === 400 && /injected failure/.test(err.message));
    assert.equal(balance(gw.srv.dataDir, 'Acme'), before);
    assert.equal(sql("SELECT count(*) FROM requests WHERE status IN (502, 400) AND cost = 0 AND usage_source = 'none'"), '2');
  });

  test('a stream that breaks after output starts is billed as estimated and ends with an error event', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const stream = await client.chat.completions.create({
      model: 'fake-chat', messages: MESSAGES, max_tokens: 30, stream: true, x_fake: { break_after: 3, chunks: 10 },
    });
    let got = 0;
    await assert.rejects((async () => { for await (const c of stream) if (c.choices?.[0]?.delta?.content) got++; })(),
      (err) => /stream broke/.test(err.message));
    assert.ok(got >= 1);
    const row = sql('SELECT usage_source, cost FROM requests ORDER BY id DESC LIMIT 1').split('|');
    assert.equal(row[0], 'estimated');
    assert.equal(before - balance(gw.srv.dataDir, 'Acme'), BigInt(row[1]));
    assert.ok(BigInt(row[1]) > 0n);
  });

  test('a client that aborts mid-stream is billed an estimate', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const ac = new AbortController();
    const stream = await client.chat.completions.create({
      model: 'fake-chat', messages: MESSAGES, max_tokens: 200, stream: true,
      x_fake: { chunks: 40, chunk_interval_ms: 25 },
    }, { signal: ac.signal });
    let n = 0;
    // The SDK ends the iteration quietly when aborted (or throws an abort error).
    try { for await (const c of stream) { if (++n === 3) ac.abort(); } } catch (e) { assert.match(e.name, /Abort/); }
    assert.ok(n >= 3 && n < 40, `stopped early (got ${n} chunks)`);
    // The gateway notices on its next write, then settles.
    let row = '';
    for (let i = 0; i < 100 && !row.startsWith('estimated'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      row = sql("SELECT usage_source, cost FROM requests WHERE stream = 1 ORDER BY id DESC LIMIT 1");
    }
    const [source, cost] = row.split('|');
    assert.equal(source, 'estimated');
    assert.ok(BigInt(cost) > 0n);
    assert.equal(before - balance(gw.srv.dataDir, 'Acme'), BigInt(cost));
  });

  test('50 parallel calls against a balance for exactly 10: 10 succeed, 40 get 402, balance 0', async () => {
    addOrg(gw.srv.dataDir, 'Tight');
    // fake-out-only: 1 micro-credit per output token; 100 tokens per call.
    grant(gw.srv.dataDir, 'Tight', '0.001');
    const tight = sdk(createKey(gw.srv.dataDir, 'Tight', 'tight'));
    const calls = Array.from({ length: 50 }, () => tight.chat.completions
      .create({ model: 'fake-out-only', messages: MESSAGES, max_tokens: 100, x_fake: { completion_tokens: 100, latency_ms: 50 } })
      .then(() => 'ok', (err) => err.status));
    const results = await Promise.all(calls);
    assert.equal(results.filter((x) => x === 'ok').length, 10);
    assert.equal(results.filter((x) => x === 402).length, 40);
    assert.equal(balance(gw.srv.dataDir, 'Tight'), 0n);
    const r = cli(gw.srv.dataDir, ['audit']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  test('a retry with the same request id never debits twice', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const id = `retry-${Date.now()}`;
    const first = await client.chat.completions.create({ model: 'fake-chat', messages: MESSAGES, max_tokens: 5 }, { headers: { 'X-Request-Id': id } }).withResponse();
    assert.equal(first.response.headers.get('x-request-id'), id);
    const cost = before - balance(gw.srv.dataDir, 'Acme');
    assert.ok(cost > 0n);
    await assert.rejects(client.chat.completions.create({ model: 'fake-chat', messages: MESSAGES, max_tokens: 5 }, { headers: { 'X-Request-Id': id } }),
      (err) => err.status === 409 && err.code === 'duplicate_request_id');
    assert.equal(before - balance(gw.srv.dataDir, 'Acme'), cost);
    assert.equal(sql(`SELECT count(*) FROM ledger_entries WHERE request_id = '${id}'`), '1');
  });

  test('bad requests get precise 4xx in the OpenAI envelope', async () => {
    const post = (body, headers = {}) => fetch(`${gw.srv.url}/v1/chat/completions`, {
      method: 'POST', body, headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json', ...headers },
    });
    let res = await post('{"model": "fake-chat", "messages": [');
    assert.equal(res.status, 400);
    assert.match((await res.json()).error.message, /parse the JSON body/);
    res = await post(JSON.stringify({ model: 'fake-chat' }));
    assert.equal(res.status, 400);
    assert.match((await res.json()).error.message, /'messages'/);
    res = await post(JSON.stringify({ model: 'fake-chat', messages: MESSAGES, max_tokens: 100000 }));
    assert.equal(res.status, 400);
    assert.match((await res.json()).error.message, /at most 4096/);
    // Out of any integer range: refused cleanly (and without undefined behaviour).
    for (const bad of ['1e300', '-1e19', '1.5']) {
      res = await post(`{"model":"fake-chat","messages":[{"role":"user","content":"x"}],"max_tokens":${bad}}`);
      assert.equal(res.status, 400, bad);
      assert.match((await res.json()).error.message, /whole number/, bad);
    }
    // A key the gateway bills by, given twice: the provider might read the other copy.
    const before = balance(gw.srv.dataDir, 'Acme');
    res = await post('{"model":"fake-chat","max_tokens":1,"messages":[{"role":"user","content":"x"}],"max_tokens":4000}');
    assert.equal(res.status, 400);
    let body = await res.json();
    assert.equal(body.error.code, 'duplicate_key');
    assert.match(body.error.message, /'max_tokens' more than once/);
    res = await post('{"model":"fake-chat","stream":true,"stream_options":{"include_usage":true,"include_usage":false},"messages":[{"role":"user","content":"x"}]}');
    assert.equal(res.status, 400);
    body = await res.json();
    assert.match(body.error.message, /'include_usage' more than once/);
    assert.equal(balance(gw.srv.dataDir, 'Acme'), before);
    res = await post('x', { 'Content-Type': 'text/plain' });
    assert.equal(res.status, 415);
    res = await fetch(`${gw.srv.url}/v1/chat/completions`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error.code, 'invalid_api_key');
  });
});
