// A third-party OpenAI mock (@dwmkerr/mock-llm) as the upstream. It reports no
// usage at all, so every debit must be an estimate (bytes / 4), marked so.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { createRequire } from 'node:module';
import OpenAI from 'openai';
import { startServer, cli } from './lib/harness.js';
import { addUser, addOrg } from './lib/session.js';
import { createKey, grant, balance, sql as dbSql } from './lib/gateway.js';
import { runAudit } from './lib/audit.js';

const require = createRequire(import.meta.url);
const MOCK_MAIN = join(dirname(require.resolve('@dwmkerr/mock-llm/package.json')), 'dist/main.js');

let mock, srv, client;

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

before(async () => {
  const port = await freePort();
  mock = spawn(process.execPath, [MOCK_MAIN], { env: { ...process.env, HOST: '127.0.0.1', PORT: String(port) } });
  let out = '';
  mock.stdout.on('data', (d) => { out += d; });
  mock.stderr.on('data', (d) => { out += d; });
  for (let i = 0; i < 200 && !/server running on/.test(out); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(out, /server running on/, `mock-llm did not start:\n${out}`);

  srv = await startServer();
  addUser(srv.dataDir, { email: 'o@example.com', password: 'owner-password-1', admin: true });
  addOrg(srv.dataDir, 'Acme');
  grant(srv.dataDir, 'Acme', '10');
  const file = join(srv.dataDir, 'mock.json');
  writeFileSync(file, JSON.stringify({
    providers: [{ name: 'mockllm', kind: 'openai', base_url: `http://127.0.0.1:${port}/v1`, timeout_s: 10 }],
    models: [{ name: 'mock-gpt', provider: 'mockllm', upstream_model: 'gpt-4', input_per_mtok: '1.00', cached_input_per_mtok: '0.50', output_per_mtok: '2.00', max_output_tokens: 1000, context_window: 8192 }],
  }));
  const r = cli(srv.dataDir, ['models', 'import', file]);
  assert.equal(r.code, 0, r.stderr);
  client = new OpenAI({ apiKey: createKey(srv.dataDir, 'Acme', 'mock'), baseURL: `${srv.url}/v1`, maxRetries: 0 });
});

after(async () => {
  runAudit(srv.dataDir);
  await srv.stop();
  srv.cleanup();
  mock.kill('SIGTERM');
});

function lastRequest() {
  return dbSql(srv.dataDir,
    'SELECT usage_source, cost, prompt_tokens, completion_tokens, status FROM requests ORDER BY id DESC LIMIT 1').split('|');
}

test('non-streaming through a third-party mock: answered, and billed as estimated', async () => {
  const before = balance(srv.dataDir, 'Acme');
  const res = await client.chat.completions.create({ model: 'mock-gpt', messages: [{ role: 'user', content: 'Hello from the gateway test' }] });
  assert.equal(res.choices[0].message.content, 'Hello from the gateway test');
  assert.equal(res.model, 'mock-gpt');
  const [source, cost, prompt, completion, status] = lastRequest();
  assert.equal(status, '200');
  assert.equal(source, 'estimated');
  assert.ok(Number(prompt) > 0 && Number(completion) > 0);
  // Estimate: prompt = ceil(body bytes / 4) at 1.00, completion = ceil(content bytes / 4) at 2.00.
  assert.equal(BigInt(completion), BigInt(Math.ceil('Hello from the gateway test'.length / 4)));
  const expected = (BigInt(prompt) * 1000000n + BigInt(completion) * 2000000n + 999999n) / 1000000n;
  assert.equal(BigInt(cost), expected);
  assert.equal(before - balance(srv.dataDir, 'Acme'), expected);
});

test('streaming through a third-party mock that sends no usage: relayed, billed as estimated', async () => {
  const before = balance(srv.dataDir, 'Acme');
  const text = 'Streaming words arrive chunk by chunk through the gateway';
  const stream = await client.chat.completions.create({
    model: 'mock-gpt', messages: [{ role: 'user', content: text }], stream: true, stream_options: { include_usage: true },
  });
  let got = '';
  for await (const chunk of stream) got += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(got, text);
  const [source, cost, , completion] = lastRequest();
  assert.equal(source, 'estimated');
  assert.equal(BigInt(completion), BigInt(Math.ceil(text.length / 4)));
  assert.ok(BigInt(cost) > 0n);
  assert.equal(before - balance(srv.dataDir, 'Acme'), BigInt(cost));
});
