// Native provider kinds through the official openai SDK: the same client code
// talks to an OpenAI, an Anthropic, a Gemini and an Azure provider (the strict
// fakes of tests/fake_upstream), and gets OpenAI answers, streams, tool calls
// and errors back, billed exactly from the usage each provider reports (cache
// reads and writes and reasoning tokens included), with nothing billed for a
// failure. Then what only some kinds do: Gemini's safety block and embeddings,
// Azure embeddings, Anthropic refusing n=2 before it is called, falling back
// to another model when the input does not fit, and a stream cut mid-way.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { cli } from './lib/harness.js';
import { startGateway, createKey, balance, micro, sql as dbSql } from './lib/gateway.js';
import { runAudit } from './lib/audit.js';

let gw, client, up;

const MESSAGES = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hello to the ledger.' }];
// What every fake counts for MESSAGES: ceil(14 / 4) + 3 and ceil(24 / 4) + 3;
// and its default reply of 16 words.
const MESSAGES_TOKENS = 16;
const REPLY_TOKENS = 16;

// Prices per 1M tokens, distinct per model: in, cached, cache write, out.
const PRICES = {
  'm-openai': ['0.40', '0.10', '0.50', '1.60'],
  'm-anthropic': ['3.00', '0.30', '3.75', '15.00'],
  'm-gemini': ['0.30', '0.075', '0.35', '2.50'],
  'm-azure': ['2.00', '1.00', '2.20', '8.00'],
  'm-ctx-a': ['1.00', '0.10', '1.25', '5.00'],
  'm-ctx-b': ['0.20', '0.05', '0.25', '0.80'],
  'm-gemini-embed': ['0.15', '0.15', '0.15', '0'],
  'm-azure-embed': ['0.13', '0.13', '0.13', '0'],
};

const price = (model) => {
  const [i, c, w, o] = (PRICES[model] ?? PRICES[model.replace(/-(429|400|5\d\d|cache|cut|c5)$/, '')]).map(micro);
  return { in: i, cached: c, write: w, out: o };
};

// The exact cost in micro-credits: (prompt - cached - write) at the input
// price, cached and written tokens at theirs, completion at the output price,
// one ceil on the sum.
function cost(model, usage, cacheWrite = 0) {
  const p = price(model);
  const prompt = BigInt(usage.prompt_tokens);
  const cached = BigInt(usage.prompt_tokens_details?.cached_tokens ?? 0);
  const write = BigInt(cacheWrite);
  const out = BigInt(usage.completion_tokens ?? 0);
  return ((prompt - cached - write) * p.in + cached * p.cached + write * p.write + out * p.out + 999999n) / 1000000n;
}

function sql(query) {
  return dbSql(gw.srv.dataDir, query);
}

// The request log rows of one call, in attempt order.
function rowsOf(requestId) {
  assert.ok(requestId, 'the answer has an x-request-id');
  return sql(`SELECT r.attempt, p.name, r.status, r.failed_over, r.cost, r.usage_source, r.prompt_tokens,
                     r.cached_tokens, r.cache_write_tokens, r.completion_tokens, r.reasoning_tokens, r.stream
              FROM requests r LEFT JOIN providers p ON p.id = r.provider_id
              WHERE r.request_id = '${requestId}' ORDER BY r.attempt`)
    .split('\n').filter(Boolean).map((l) => {
      const [attempt, provider, status, failedOver, c, source, prompt, cached, write, completion, reasoning, stream] =
        l.split('|');
      return {
        attempt: +attempt, provider, status: +status, failedOver: +failedOver, cost: BigInt(c), source,
        prompt: +prompt, cached: +cached, write: +write, completion: +completion, reasoning: +reasoning,
        stream: +stream,
      };
    });
}

// The cost a row's own token counts come to.
const rowCost = (model, r) => cost(model,
  { prompt_tokens: r.prompt, prompt_tokens_details: { cached_tokens: r.cached }, completion_tokens: r.completion },
  r.write);

const acme = () => balance(gw.srv.dataDir, 'Acme');

async function stats() {
  return (await fetch(`${up}/fake/stats`)).json();
}

// The kinds and how each provider is reached.
const KINDS = {
  openai: { provider: 'oa', base: (u, k = '') => `${u}${k}/v1` },
  anthropic: { provider: 'an', base: (u, k = '') => `${u}${k}/v1` },
  gemini: { provider: 'ge', base: (u, k = '') => `${u}${k}/v1beta` },
  azure: { provider: 'az', base: (u, k = '') => `${u}${k}`, api_version: '2024-10-21' },
};

function provider(name, kind, knobs = '') {
  const k = KINDS[kind];
  return {
    name, kind, base_url: k.base(up, knobs), api_key: `key-${name}`, timeout_s: 5,
    ...(k.api_version ? { api_version: k.api_version } : {}),
  };
}

function model(name, prov, extra = {}) {
  const [i, c, w, o] = PRICES[name] ?? PRICES[name.replace(/-(429|400|5\d\d|cache|cut|c5)$/, '')];
  return {
    name, provider: prov, upstream_model: `up-${name}`, input_per_mtok: i, cached_input_per_mtok: c,
    cache_write_per_mtok: w, output_per_mtok: o, max_output_tokens: 256, context_window: 128000, ...extra,
  };
}

before(async () => {
  gw = await startGateway({ credits: '1000' });
  up = gw.upstream.url;
  const providers = [], models = [];
  for (const [kind, k] of Object.entries(KINDS)) {
    providers.push(provider(k.provider, kind), provider(`${k.provider}-429`, kind, '/k/status=429'),
      provider(`${k.provider}-400`, kind, '/k/status=400'), provider(`${k.provider}-c5`, kind, '/k/context-window=5'));
    models.push(model(`m-${kind}`, k.provider), model(`m-${kind}-429`, `${k.provider}-429`),
      model(`m-${kind}-400`, `${k.provider}-400`), model(`m-${kind}-c5`, `${k.provider}-c5`));
  }
  providers.push(
    provider('an-529', 'anthropic', '/k/status=529'),
    provider('ge-503', 'gemini', '/k/status=503'),
    provider('an-cache', 'anthropic', '/k/cache-read=40,cache-write=30'),
    provider('ge-cache', 'gemini', '/k/cache-read=12,thoughts=7'),
    provider('an-ctx', 'anthropic', '/k/context-window=10'),
    provider('an-cut', 'anthropic', '/k/break-after=2'),
  );
  models.push(
    model('m-anthropic-529', 'an-529'),
    model('m-gemini-503', 'ge-503'),
    model('m-anthropic-cache', 'an-cache'),
    model('m-gemini-cache', 'ge-cache'),
    model('m-anthropic-cut', 'an-cut'),
    model('m-ctx-b', 'ge'),
    model('m-ctx-a', 'an-ctx', { fallback_model: 'm-ctx-b' }),
    model('m-gemini-embed', 'ge', { kind: 'embedding', max_output_tokens: 1, context_window: 2048 }),
    model('m-azure-embed', 'az', { kind: 'embedding', max_output_tokens: 1, context_window: 8192 }),
  );
  for (const list of [providers, models]) {
    assert.equal(new Set(list.map((x) => x.name)).size, list.length, 'names are unique (import upserts by name)');
  }
  const file = join(gw.srv.dataDir, 'providers.json');
  writeFileSync(file, JSON.stringify({ providers, models }));
  const r = cli(gw.srv.dataDir, ['models', 'import', file]);
  if (r.code !== 0) throw new Error(`models import: ${r.stderr}`);
  const key = createKey(gw.srv.dataDir, 'Acme', 'providers');
  client = new OpenAI({ apiKey: key, baseURL: `${gw.srv.url}/v1`, maxRetries: 0, timeout: 20_000 });
});

after(async () => {
  runAudit(gw.srv.dataDir);
  await gw.stop();
});

// A non-stream call: the answer, its response, its request id and what it cost the org.
async function call(modelName, extra = {}) {
  const before = acme();
  const { data, response } = await client.chat.completions
    .create({ model: modelName, messages: MESSAGES, max_tokens: 50, ...extra })
    .withResponse();
  return { data, response, id: response.headers.get('x-request-id'), spent: before - acme() };
}

// A stream read to its end: the text, the tool calls accumulated by index (as
// the SDK docs show), the usage chunks and the finish reasons seen.
async function stream(modelName, extra = {}) {
  const before = acme();
  const { data: s, response } = await client.chat.completions
    .create({ model: modelName, messages: MESSAGES, max_tokens: 50, stream: true, ...extra })
    .withResponse();
  let text = '';
  const calls = [], usages = [], finishes = [], models = new Set();
  for await (const chunk of s) {
    models.add(chunk.model);
    if (chunk.usage) usages.push(chunk.usage);
    const choice = chunk.choices[0];
    if (!choice) continue;
    if (choice.delta?.content) text += choice.delta.content;
    for (const tc of choice.delta?.tool_calls ?? []) {
      calls[tc.index] ??= { id: '', type: '', name: '', arguments: '' };
      if (tc.id) calls[tc.index].id = tc.id;
      if (tc.type) calls[tc.index].type = tc.type;
      if (tc.function?.name) calls[tc.index].name += tc.function.name;
      if (tc.function?.arguments) calls[tc.index].arguments += tc.function.arguments;
    }
    if (choice.finish_reason) finishes.push(choice.finish_reason);
  }
  return { text, calls, usages, finishes, models, response, id: response.headers.get('x-request-id'), spent: before - acme() };
}

// The SDK's error for a call that fails (never a success).
async function failure(modelName, extra = {}) {
  const before = acme();
  const err = await client.chat.completions
    .create({ model: modelName, messages: MESSAGES, max_tokens: 20, ...extra })
    .withResponse().then(() => null, (e) => e);
  assert.ok(err, `${modelName}: the call failed`);
  assert.ok(err instanceof OpenAI.APIError, `${modelName}: an API error, not ${err}`);
  return { err, id: err.headers?.get('x-request-id'), spent: before - acme() };
}

const TOOLS = [{
  type: 'function',
  function: {
    name: 'get_weather', description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}];
const WEATHER = [{ role: 'user', content: 'What is the weather in Paris?' }];
const BOTH = [{ role: 'user', content: 'What is the weather in both Paris and Tokyo?' }];
const RESULTS = { Paris: '{"temp_c":18,"sky":"sunny"}', Tokyo: '{"temp_c":24,"sky":"rain"}' };

// The follow-up turn: the assistant's tool calls, then a tool result for each.
function followUp(question, calls) {
  return [
    ...question,
    {
      role: 'assistant', content: null,
      tool_calls: calls.map((c) => ({
        id: c.id, type: 'function', function: { name: c.function?.name ?? c.name, arguments: c.function?.arguments ?? c.arguments },
      })),
    },
    ...calls.map((c) => ({
      role: 'tool', tool_call_id: c.id, content: RESULTS[JSON.parse(c.function?.arguments ?? c.arguments).city],
    })),
  ];
}

// How each provider words it (the fakes copy the real ones).
const CONTEXT_MESSAGES = {
  openai: new RegExp(`maximum context length is 5 tokens. However, your messages resulted in ${MESSAGES_TOKENS} tokens`),
  anthropic: new RegExp(`prompt is too long: ${MESSAGES_TOKENS} tokens > 5 maximum`),
  gemini: new RegExp(`input token count \\(${MESSAGES_TOKENS}\\) exceeds the maximum number of tokens allowed \\(5\\)`),
  azure: new RegExp(`maximum context length is 5 tokens. However, your messages resulted in ${MESSAGES_TOKENS} tokens`),
};

for (const [kind, k] of Object.entries(KINDS)) {
  const m = `m-${kind}`;

  describe(`${kind} provider`, () => {
    test(`${kind}: a non-stream chat is answered in the OpenAI shape and billed exactly`, async () => {
      const { data, response, id, spent } = await call(m);
      assert.equal(data.object, 'chat.completion');
      assert.equal(data.model, m, 'the public model name comes back');
      assert.equal(data.choices.length, 1);
      assert.equal(data.choices[0].message.role, 'assistant');
      assert.ok(data.choices[0].message.content.length > 0, 'content');
      assert.equal(data.choices[0].finish_reason, 'stop');
      assert.equal(data.usage.prompt_tokens, MESSAGES_TOKENS, 'the provider counted the translated messages');
      assert.equal(data.usage.completion_tokens, REPLY_TOKENS);
      assert.equal(data.usage.total_tokens, MESSAGES_TOKENS + REPLY_TOKENS);
      const c = cost(m, data.usage);
      assert.ok(c > 0n);
      assert.equal(spent, c, 'the balance drops by the cost of the reported usage');
      assert.equal(micro(response.headers.get('x-credits-charged')), c);
      assert.equal(micro(data.usage.cost), c);
      assert.equal(response.headers.get('x-provider'), k.provider);
      const rows = rowsOf(id);
      assert.equal(rows.length, 1);
      assert.deepEqual([rows[0].provider, rows[0].status, rows[0].source, rows[0].cost, rows[0].prompt, rows[0].completion],
        [k.provider, 200, 'reported', c, MESSAGES_TOKENS, REPLY_TOKENS]);
    });

    test(`${kind}: a stream with include_usage: deltas, one usage chunk carrying the debit, a clean end`, async () => {
      const s = await stream(m, { stream_options: { include_usage: true } });
      assert.equal(s.response.headers.get('x-provider'), k.provider);
      assert.ok(s.text.length > 0, 'content deltas');
      assert.equal(s.text.split(' ').length, REPLY_TOKENS);
      assert.deepEqual([...s.models], [m], 'every chunk names the public model');
      assert.deepEqual(s.finishes, ['stop']);
      assert.equal(s.usages.length, 1, 'exactly one usage chunk');
      const u = s.usages[0];
      assert.equal(u.prompt_tokens, MESSAGES_TOKENS);
      assert.equal(u.completion_tokens, REPLY_TOKENS);
      assert.equal(micro(u.cost), cost(m, u));
      assert.equal(s.spent, cost(m, u));
      const rows = rowsOf(s.id);
      assert.deepEqual([rows.length, rows[0].source, rows[0].stream, rows[0].cost], [1, 'reported', 1, cost(m, u)]);
    });

    test(`${kind}: a stream without include_usage shows no usage, still billed exactly`, async () => {
      const s = await stream(m);
      assert.ok(s.text.length > 0);
      assert.equal(s.usages.length, 0, 'no usage chunk reaches the client');
      assert.deepEqual(s.finishes, ['stop']);
      const [row] = rowsOf(s.id);
      assert.equal(row.source, 'reported');
      assert.deepEqual([row.prompt, row.completion], [MESSAGES_TOKENS, REPLY_TOKENS]);
      assert.equal(row.cost, rowCost(m, row));
      assert.ok(row.cost > 0n);
      assert.equal(s.spent, row.cost);
    });

    test(`${kind}: tools: "weather" gets a tool call, "both" two, and the tool result is answered`, async () => {
      const one = await call(m, { messages: WEATHER, tools: TOOLS });
      const msg = one.data.choices[0].message;
      assert.equal(one.data.choices[0].finish_reason, 'tool_calls');
      assert.equal(msg.tool_calls?.length, 1, JSON.stringify(msg));
      assert.ok(msg.tool_calls[0].id, 'the call has an id');
      assert.equal(msg.tool_calls[0].type, 'function');
      assert.equal(msg.tool_calls[0].function.name, 'get_weather');
      assert.deepEqual(JSON.parse(msg.tool_calls[0].function.arguments), { city: 'Paris' });
      assert.equal(one.spent, cost(m, one.data.usage));

      const two = await call(m, { messages: BOTH, tools: TOOLS });
      const calls = two.data.choices[0].message.tool_calls;
      assert.equal(two.data.choices[0].finish_reason, 'tool_calls');
      assert.equal(calls?.length, 2, 'two parallel tool calls');
      assert.notEqual(calls[0].id, calls[1].id);
      assert.deepEqual(calls.map((c) => [c.function.name, JSON.parse(c.function.arguments).city]),
        [['get_weather', 'Paris'], ['get_weather', 'Tokyo']]);

      const answer = await call(m, { messages: followUp(WEATHER, msg.tool_calls), tools: TOOLS });
      const text = answer.data.choices[0].message.content;
      assert.equal(answer.data.choices[0].finish_reason, 'stop');
      assert.match(text, /^result: /, 'the fake answers the tool result');
      assert.match(text, /18/, `the tool result is in the answer: ${text}`);
      assert.equal(answer.spent, cost(m, answer.data.usage));

      const answer2 = await call(m, { messages: followUp(BOTH, calls), tools: TOOLS });
      assert.match(answer2.data.choices[0].message.content, /^result: .*18/, 'both results went back; the first is echoed');
    });

    test(`${kind}: tools, streamed: argument deltas accumulate by index to the calls; the follow-up streams the answer`, async () => {
      const one = await stream(m, { messages: WEATHER, tools: TOOLS, stream_options: { include_usage: true } });
      assert.deepEqual(one.finishes, ['tool_calls']);
      assert.equal(one.calls.length, 1, JSON.stringify(one.calls));
      assert.ok(one.calls[0].id);
      assert.equal(one.calls[0].type, 'function');
      assert.equal(one.calls[0].name, 'get_weather');
      assert.deepEqual(JSON.parse(one.calls[0].arguments), { city: 'Paris' });
      assert.equal(one.usages.length, 1);
      assert.equal(one.spent, cost(m, one.usages[0]));

      const two = await stream(m, { messages: BOTH, tools: TOOLS });
      assert.deepEqual(two.finishes, ['tool_calls']);
      assert.equal(two.calls.length, 2, JSON.stringify(two.calls));
      assert.notEqual(two.calls[0].id, two.calls[1].id);
      assert.deepEqual(two.calls.map((c) => [c.name, JSON.parse(c.arguments).city]),
        [['get_weather', 'Paris'], ['get_weather', 'Tokyo']]);

      const answer = await stream(m, { messages: followUp(BOTH, two.calls), tools: TOOLS });
      assert.deepEqual(answer.finishes, ['stop']);
      assert.match(answer.text, /^result: .*18/, `the tool result is in the streamed answer: ${answer.text}`);
      assert.equal(answer.calls.length, 0);
    });

    test(`${kind}: an injected 429 answers 429 with Retry-After; a 400 stays 400 with the provider's message; nothing billed`, async () => {
      const busy = await failure(`${m}-429`);
      assert.equal(busy.err.status, 429);
      assert.ok(Number(busy.err.headers.get('retry-after')) >= 1, 'a Retry-After header');
      assert.equal(busy.spent, 0n);
      const rows = rowsOf(busy.id);
      assert.ok(rows.length >= 1);
      assert.ok(rows.every((r) => r.cost === 0n && r.status === 429 && r.provider === `${k.provider}-429`),
        JSON.stringify(rows, (_, v) => (typeof v === 'bigint' ? `${v}` : v)));

      const bad = await failure(`${m}-400`);
      assert.equal(bad.err.status, 400);
      assert.match(bad.err.message, /injected failure/, 'the provider\'s message is visible');
      assert.equal(bad.spent, 0n);
      const [row] = rowsOf(bad.id);
      assert.deepEqual([row.status, row.cost, row.source], [400, 0n, 'none']);
    });

    test(`${kind}: the provider's own refusal of an input too long: 400 context_length_exceeded, its message, not billed`, async () => {
      const { err, id, spent } = await failure(`${m}-c5`);
      assert.equal(err.status, 400);
      assert.equal(err.code, 'context_length_exceeded');
      assert.match(err.message, CONTEXT_MESSAGES[kind]);
      assert.equal(spent, 0n);
      const [row] = rowsOf(id);
      assert.deepEqual([row.status, row.cost, row.source, row.provider], [400, 0n, 'none', `${k.provider}-c5`]);
    });
  });
}

describe('errors of the native kinds', () => {
  for (const [m, provider] of [['m-anthropic-529', 'an-529'], ['m-gemini-503', 'ge-503']]) {
    test(`${m}: the provider is overloaded: 503, not billed, logged`, async () => {
      const { err, id, spent } = await failure(m);
      assert.equal(err.status, 503);
      assert.match(err.message, /not charged/);
      assert.equal(spent, 0n);
      const rows = rowsOf(id);
      assert.ok(rows.length >= 1);
      assert.ok(rows.every((r) => r.provider === provider && r.cost === 0n && r.source === 'none'));
      assert.equal(rows[rows.length - 1].status, 503);
    });
  }

  test('a Gemini safety block is a 400 content_filter, not billed', async () => {
    const { err, id, spent } = await failure('m-gemini', {
      messages: [{ role: 'user', content: 'This prompt will be blocked by the safety filter.' }],
    });
    assert.equal(err.status, 400);
    assert.equal(err.code, 'content_filter');
    assert.match(err.message, /blocked/);
    assert.equal(spent, 0n);
    const [row] = rowsOf(id);
    assert.deepEqual([row.status, row.cost, row.source, row.provider], [400, 0n, 'none', 'ge']);
  });

  test('Anthropic refuses n=2 with a clear 400, and the provider is never called', async () => {
    const before = await stats();
    const { err, id, spent } = await failure('m-anthropic', { n: 2 });
    assert.equal(err.status, 400);
    assert.match(err.message, /Anthropic returns one choice per request; n must be 1/);
    assert.equal(err.code, 'unsupported_parameter');
    assert.equal(spent, 0n);
    const after = await stats();
    assert.equal(after.anthropic, before.anthropic, 'the fake was not called');
    assert.equal(after.requests, before.requests);
    assert.equal(rowsOf(id)[0].status, 400);
  });
});

describe('cache and reasoning tokens', () => {
  const CACHE_MESSAGES = [{ role: 'user', content: 'Cache me if you can.' }]; // 20 bytes: 5 + 3 tokens

  test('Anthropic cache reads and writes: in prompt_tokens, reads as cached_tokens, writes at the cache-write price', async () => {
    const { data, id, spent, response } = await call('m-anthropic-cache', { messages: CACHE_MESSAGES });
    assert.equal(data.usage.prompt_tokens, 8 + 40 + 30, 'input, cache reads and cache writes');
    assert.equal(data.usage.prompt_tokens_details.cached_tokens, 40);
    assert.equal(data.usage.completion_tokens, REPLY_TOKENS);
    const c = cost('m-anthropic', data.usage, 30);
    // 8 * 3.00 + 40 * 0.30 + 30 * 3.75 + 16 * 15.00 per 1M = 388.5 micro-credits, rounded up once.
    assert.equal(c, 389n);
    assert.notEqual(c, cost('m-anthropic', data.usage, 0), 'the cache-write price makes a difference');
    assert.equal(spent, c);
    assert.equal(micro(response.headers.get('x-credits-charged')), c);
    const [row] = rowsOf(id);
    assert.deepEqual([row.prompt, row.cached, row.write, row.completion, row.cost, row.source],
      [78, 40, 30, REPLY_TOKENS, c, 'reported']);
  });

  test('Anthropic cache tokens in a stream are billed the same way', async () => {
    const s = await stream('m-anthropic-cache', { messages: CACHE_MESSAGES, stream_options: { include_usage: true } });
    assert.equal(s.usages.length, 1);
    assert.equal(s.usages[0].prompt_tokens, 78);
    assert.equal(s.usages[0].prompt_tokens_details.cached_tokens, 40);
    assert.equal(s.spent, 389n);
    assert.equal(micro(s.usages[0].cost), 389n);
    assert.equal(rowsOf(s.id)[0].write, 30);
  });

  test('Gemini cached content and thoughts: cached_tokens, reasoning_tokens, thoughts billed as output', async () => {
    const { data, id, spent } = await call('m-gemini-cache', { messages: CACHE_MESSAGES });
    assert.equal(data.usage.prompt_tokens, 8 + 12);
    assert.equal(data.usage.prompt_tokens_details.cached_tokens, 12);
    assert.equal(data.usage.completion_tokens, REPLY_TOKENS + 7, 'the thoughts are output tokens');
    assert.equal(data.usage.completion_tokens_details.reasoning_tokens, 7);
    // 8 * 0.30 + 12 * 0.075 + 23 * 2.50 per 1M = 60.8 micro-credits, rounded up once.
    assert.equal(cost('m-gemini', data.usage), 61n);
    assert.equal(spent, 61n);
    const [row] = rowsOf(id);
    assert.deepEqual([row.prompt, row.cached, row.write, row.completion, row.reasoning, row.cost],
      [20, 12, 0, 23, 7, 61n]);
  });
});

describe('embeddings', () => {
  test('Gemini embeddings through client.embeddings.create: vectors, billed as estimated', async () => {
    const before = acme();
    const { data: res, response } = await client.embeddings
      .create({ model: 'm-gemini-embed', input: ['hello world', 'a second text'] }).withResponse();
    assert.equal(res.data.length, 2);
    for (const [i, e] of res.data.entries()) {
      assert.equal(e.index, i);
      assert.equal(e.embedding.length, 8);
      assert.ok(e.embedding.every((v) => typeof v === 'number' && v >= -1 && v <= 1));
    }
    assert.notDeepEqual(res.data[0].embedding, res.data[1].embedding);
    const spent = before - acme();
    assert.ok(spent > 0n, 'billed');
    const [row] = rowsOf(response.headers.get('x-request-id'));
    assert.equal(row.source, 'estimated', 'Gemini reports no usage for embeddings');
    assert.equal(row.cost, spent);
    assert.equal(row.provider, 'ge');
    // What the client is told is what it paid for.
    assert.equal(res.usage.prompt_tokens, row.prompt,
      `the usage shown is the usage billed: ${JSON.stringify(res.usage)}, billed ${spent} for ${row.prompt} tokens`);
    assert.equal(spent, cost('m-gemini-embed', { prompt_tokens: res.usage.prompt_tokens, completion_tokens: 0 }));
  });

  test('Azure embeddings through client.embeddings.create: vectors, billed from the reported usage', async () => {
    const before = acme();
    const { data: res, response } = await client.embeddings
      .create({ model: 'm-azure-embed', input: ['hello world', 'a second text'] }).withResponse();
    assert.equal(res.data.length, 2);
    assert.equal(res.data[0].embedding.length, 8);
    assert.equal(res.model, 'm-azure-embed');
    assert.equal(res.usage.prompt_tokens, 3 + 4);
    const spent = before - acme();
    assert.equal(spent, cost('m-azure-embed', { prompt_tokens: 7, completion_tokens: 0 }));
    assert.ok(spent > 0n);
    const [row] = rowsOf(response.headers.get('x-request-id'));
    assert.deepEqual([row.source, row.cost, row.provider], ['reported', spent, 'az']);
  });
});

describe('fallback and broken streams', () => {
  test('an input over the context window of an Anthropic model is answered by its Gemini fallback', async () => {
    const long = [{ role: 'user', content: 'Tell me everything about the history of ledgers and double-entry bookkeeping.' }];
    const { data, response, id, spent } = await call('m-ctx-a', { messages: long });
    assert.ok(data.choices[0].message.content.length > 0);
    assert.equal(response.headers.get('x-provider'), 'ge', 'the fallback model\'s provider answered');
    const rows = rowsOf(id);
    assert.deepEqual(rows.map((r) => [r.attempt, r.provider, r.failedOver, r.cost]),
      [[1, 'an-ctx', 1, 0n], [2, 'ge', 0, cost('m-ctx-b', data.usage)]]);
    assert.equal(rows[0].status, 400);
    assert.equal(spent, cost('m-ctx-b', data.usage), 'billed at the fallback model\'s price');
    assert.notEqual(cost('m-ctx-b', data.usage), cost('m-ctx-a', data.usage));
  });

  test('a short prompt is answered by the Anthropic model itself', async () => {
    const { data, response, id, spent } = await call('m-ctx-a', { messages: [{ role: 'user', content: 'Hi' }] });
    assert.equal(response.headers.get('x-provider'), 'an-ctx');
    assert.equal(data.usage.prompt_tokens, 4);
    assert.equal(spent, cost('m-ctx-a', data.usage));
    assert.deepEqual(rowsOf(id).map((r) => [r.attempt, r.provider, r.failedOver]), [[1, 'an-ctx', 0]]);
  });

  test('an Anthropic stream cut mid-way: the SDK iterator throws, billed as estimated', async () => {
    const before = acme();
    const { data: s, response } = await client.chat.completions.create({
      model: 'm-anthropic-cut', messages: MESSAGES, max_tokens: 50, stream: true,
    }).withResponse();
    assert.equal(response.headers.get('x-provider'), 'an-cut');
    let got = 0;
    await assert.rejects((async () => { for await (const c of s) if (c.choices?.[0]?.delta?.content) got++; })(),
      (err) => /stream broke/.test(err.message));
    assert.equal(got, 2, 'the two deltas before the cut reached the client');
    const rows = rowsOf(response.headers.get('x-request-id'));
    assert.equal(rows.length, 1, 'no second attempt after output started');
    assert.equal(rows[0].source, 'estimated');
    assert.ok(rows[0].cost > 0n);
    assert.equal(before - acme(), rows[0].cost);
  });
});
