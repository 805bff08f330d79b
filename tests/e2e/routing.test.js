// Routing through the official openai SDK: a model with several deployments
// falls over to the next one when a deployment refuses connections, hangs,
// answers 429 or 5xx, or breaks a stream before its first event; never after
// output started. Every attempt is in the request log, only the answered one
// billed, at the price of the deployment that answered. A deployment that
// keeps failing is cooled down (and shown in /metrics); calls spread by
// weight; killing one of two deployments mid-run loses no call.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { cli, startFakeUpstream } from './lib/harness.js';
import { startGateway, createKey, balance, micro, sql as dbSql } from './lib/gateway.js';
import { runAudit } from './lib/audit.js';

let gw, key, client, spare;

const MESSAGES = [{ role: 'user', content: 'Route me somewhere that answers.' }];
const PRICE = { in: 150000n, cached: 75000n, out: 600000n }; // the models' price below
const DEP_PRICE = { in: 1000000n, cached: 500000n, out: 2000000n }; // a deployment's own

function sql(query) {
  return dbSql(gw.srv.dataDir, query);
}

function cost(p, usage) {
  const prompt = BigInt(usage.prompt_tokens);
  const cached = BigInt(usage.prompt_tokens_details?.cached_tokens ?? 0);
  const out = BigInt(usage.completion_tokens ?? 0);
  return ((prompt - cached) * p.in + cached * p.cached + out * p.out + 999999n) / 1000000n;
}

function model(name, provider, deployments = [], extra = {}) {
  return {
    name, provider, upstream_model: `up-${name}`, input_per_mtok: '0.15', cached_input_per_mtok: '0.075',
    output_per_mtok: '0.60', max_output_tokens: 256, context_window: 128000, deployments, ...extra,
  };
}

// Rows of one call in the request log, in attempt order.
function rowsOf(requestId) {
  return sql(`SELECT r.attempt, p.name, r.status, r.failed_over, r.cost, r.usage_source FROM requests r
              LEFT JOIN providers p ON p.id = r.provider_id WHERE r.request_id = '${requestId}' ORDER BY r.attempt`)
    .split('\n').filter(Boolean).map((l) => {
      const [attempt, provider, status, failedOver, c, source] = l.split('|');
      return { attempt: +attempt, provider, status: +status, failedOver: +failedOver, cost: BigInt(c), source };
    });
}

before(async () => {
  gw = await startGateway({ credits: '1000', serverArgs: ['--cooldown-s', '60'] });
  spare = await startFakeUpstream();
  const up = gw.upstream.url;
  const file = join(gw.srv.dataDir, 'routing.json');
  writeFileSync(file, JSON.stringify({
    providers: [
      { name: 'down', kind: 'openai', base_url: 'http://127.0.0.1:1/v1', timeout_s: 5 },
      { name: 'busy', kind: 'openai', base_url: `${up}/k/status=429/v1`, timeout_s: 5 },
      { name: 'broken', kind: 'openai', base_url: `${up}/k/status=500/v1`, timeout_s: 5 },
      { name: 'hang', kind: 'openai', base_url: `${up}/k/latency-ms=4000/v1`, timeout_s: 1 },
      { name: 'cut', kind: 'openai', base_url: `${up}/k/break-after=2,chunks=6/v1`, timeout_s: 5 },
      { name: 'fake-b', kind: 'openai', base_url: `${up}/k/latency-ms=0/v1`, timeout_s: 5 },
      { name: 'spare', kind: 'openai', base_url: `${spare.url}/v1`, timeout_s: 5 },
    ],
    models: [
      model('r-refuse', 'down', [{ provider: 'fake', priority: 1 }]),
      model('r-429', 'busy', [{ provider: 'fake', priority: 1 }]),
      model('r-500', 'broken', [{ provider: 'fake', priority: 1 }]),
      model('r-hang', 'hang', [{ provider: 'fake', priority: 1 }]),
      model('r-cut', 'cut', [{ provider: 'fake', priority: 1 }]),
      model('r-cool', 'broken', [{ provider: 'fake', priority: 1 }]),
      model('r-all-fail', 'broken', [{ provider: 'busy', priority: 1 }]),
      model('r-lb', 'fake', [{ provider: 'fake-b', weight: 1 }]),
      model('r-price', 'down', [{ provider: 'fake', priority: 1, input_per_mtok: '1.00', cached_input_per_mtok: '0.50', output_per_mtok: '2.00' }]),
      model('r-kill', 'spare', [{ provider: 'fake', weight: 1 }]),
    ],
  }));
  const r = cli(gw.srv.dataDir, ['models', 'import', file]);
  if (r.code !== 0) throw new Error(`models import: ${r.stderr}`);
  key = createKey(gw.srv.dataDir, 'Acme', 'routing');
  client = new OpenAI({ apiKey: key, baseURL: `${gw.srv.url}/v1`, maxRetries: 0, timeout: 20_000 });
});

after(async () => {
  runAudit(gw.srv.dataDir);
  await spare.stop();
  await gw.stop();
});

async function call(modelName, extra = {}) {
  const before = balance(gw.srv.dataDir, 'Acme');
  const { data, response } = await client.chat.completions
    .create({ model: modelName, messages: MESSAGES, max_tokens: 20, ...extra })
    .withResponse();
  const id = response.headers.get('x-request-id');
  return { data, response, id, spent: before - balance(gw.srv.dataDir, 'Acme') };
}

describe('routing', () => {
  for (const [modelName, failed, status] of [
    ['r-refuse', 'down', 502], ['r-429', 'busy', 429], ['r-500', 'broken', 500], ['r-hang', 'hang', 504],
  ]) {
    test(`${modelName}: the ${failed} deployment fails, the next answers, billed once`, async () => {
      const { data, response, id, spent } = await call(modelName);
      assert.ok(data.choices[0].message.content.length > 0);
      assert.equal(data.model, modelName);
      assert.equal(response.headers.get('x-provider'), 'fake');
      assert.equal(response.headers.get('x-tollgate-attempts'), '2');
      const rows = rowsOf(id);
      assert.deepEqual(rows.map((r) => [r.attempt, r.provider, r.status, r.failedOver, r.cost]),
        [[1, failed, status, 1, 0n], [2, 'fake', 200, 0, cost(PRICE, data.usage)]]);
      assert.equal(rows[1].source, 'reported');
      assert.equal(spent, cost(PRICE, data.usage), 'only the answered attempt is billed');
    });
  }

  test('a stream whose first deployment refuses is streamed by the next one', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const { data: stream, response } = await client.chat.completions.create({
      model: 'r-refuse', messages: MESSAGES, max_tokens: 20, stream: true, stream_options: { include_usage: true },
    }).withResponse();
    assert.equal(response.headers.get('x-provider'), 'fake');
    let text = '', usage;
    for await (const c of stream) { text += c.choices[0]?.delta?.content ?? ''; if (c.usage) usage = c.usage; }
    assert.ok(text.length > 0);
    assert.equal(micro(usage.cost), cost(PRICE, usage));
    assert.equal(before - balance(gw.srv.dataDir, 'Acme'), cost(PRICE, usage));
    assert.equal(rowsOf(response.headers.get('x-request-id')).length, 2);
  });

  test('a stream cut after output started is never failed over: error event, billed as estimated', async () => {
    const { data: stream, response } = await client.chat.completions.create({
      model: 'r-cut', messages: MESSAGES, max_tokens: 20, stream: true,
    }).withResponse();
    let got = 0;
    await assert.rejects((async () => { for await (const c of stream) if (c.choices?.[0]?.delta?.content) got++; })(),
      (err) => /stream broke/.test(err.message));
    assert.ok(got >= 1, 'output reached the client before the cut');
    assert.equal(response.headers.get('x-provider'), 'cut');
    const rows = rowsOf(response.headers.get('x-request-id'));
    assert.equal(rows.length, 1, 'no second attempt after output started');
    assert.equal(rows[0].source, 'estimated');
    assert.ok(rows[0].cost > 0n);
  });

  test('when every deployment fails, the last failure is answered and nothing is billed', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const err = await client.chat.completions.create({ model: 'r-all-fail', messages: MESSAGES, max_tokens: 5 })
      .withResponse().then(() => null, (e) => e);
    assert.ok(err, 'the call failed');
    assert.equal(err.status, 429, 'the provider 429 stays 429');
    assert.ok(err.headers.get('retry-after'));
    assert.equal(err.headers.get('x-tollgate-attempts'), '2');
    assert.equal(before, balance(gw.srv.dataDir, 'Acme'));
    const rows = rowsOf(err.headers.get('x-request-id'));
    assert.deepEqual(rows.map((r) => [r.provider, r.status, r.failedOver, r.cost]),
      [['broken', 500, 1, 0n], ['busy', 429, 0, 0n]]);
  });

  test('the answering deployment\'s own price is what is billed', async () => {
    const { data, spent } = await call('r-price');
    assert.equal(spent, cost(DEP_PRICE, data.usage));
    assert.notEqual(cost(DEP_PRICE, data.usage), cost(PRICE, data.usage));
    assert.equal(micro(data.usage.cost), spent);
  });

  test('a deployment that keeps failing is cooled down: skipped, and shown in /metrics', async () => {
    for (let i = 0; i < 3; i++) {
      const { response } = await call('r-cool');
      assert.equal(response.headers.get('x-tollgate-attempts'), '2', `call ${i + 1} tried the broken one first`);
    }
    const { response } = await call('r-cool');
    assert.equal(response.headers.get('x-tollgate-attempts'), '1', 'the cooled-down deployment is skipped');
    assert.equal(response.headers.get('x-provider'), 'fake');
    const metrics = await (await fetch(`${gw.srv.url}/metrics`)).text();
    assert.match(metrics, /tollgate_deployment_cooling\{model="r-cool",provider="broken",upstream_model="up-r-cool"\} 1/);
    assert.match(metrics, /tollgate_deployment_cooling\{model="r-cool",provider="fake",upstream_model="up-r-cool"\} 0/);
    assert.match(metrics, /tollgate_upstream_attempts_total\{provider="broken",outcome="server_error"\} \d+/);
  });

  test('calls spread over equal-weight deployments', async () => {
    const seen = { fake: 0, 'fake-b': 0 };
    for (let i = 0; i < 40; i++) {
      const { response } = await client.chat.completions
        .create({ model: 'r-lb', messages: MESSAGES, max_tokens: 3 }).withResponse();
      seen[response.headers.get('x-provider')]++;
    }
    assert.equal(seen.fake + seen['fake-b'], 40);
    assert.ok(seen.fake >= 6 && seen['fake-b'] >= 6, `both deployments took calls: ${JSON.stringify(seen)}`);
  });

  test('killing one of two deployments mid-run loses no call', async () => {
    const before = balance(gw.srv.dataDir, 'Acme');
    const results = [];
    let done = 0, killed = false;
    const worker = async () => {
      while (results.length < 60) {
        results.push(null);
        const i = results.length - 1;
        results[i] = await client.chat.completions
          .create({ model: 'r-kill', messages: MESSAGES, max_tokens: 8 }).withResponse()
          .then(({ data, response }) => ({ data, provider: response.headers.get('x-provider') }),
            (e) => ({ error: e }));
        if (++done === 15 && !killed) { killed = true; spare.proc.kill('SIGKILL'); }
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    const errors = results.filter((r) => r.error);
    assert.deepEqual(errors.map((r) => r.error.message), [], 'every call was answered');
    assert.ok(results.some((r) => r.provider === 'spare'), 'the killed deployment took calls before');
    assert.ok(results.slice(-20).every((r) => r.provider === 'fake'), 'the survivor took the rest');
    const spent = results.reduce((s, r) => s + cost(PRICE, r.data.usage), 0n);
    assert.equal(before - balance(gw.srv.dataDir, 'Acme'), spent, 'billed exactly once per call');
  });
});
