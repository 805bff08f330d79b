// Gateway fixtures: a fake OpenAI-compatible upstream, a server with an org,
// priced models pointing at the upstream, credits and keys, all made through
// the real CLI.
import { execFileSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, startServer, startFakeUpstream } from './harness.js';
import { addUser, addOrg } from './session.js';

// Prices in micro-credits per 1M tokens, mirrored as decimal strings below.
export const PRICES = {
  'fake-chat': { in: 150000n, cached: 75000n, out: 600000n },     // 0.15 / 0.075 / 0.60
  'fake-big': { in: 2500000n, cached: 1250000n, out: 10000000n },  // 2.50 / 1.25 / 10.00
  'fake-out-only': { in: 0n, cached: 0n, out: 1000000n },          // 0 / 0 / 1.00
  'fake-embed': { in: 20000n, cached: 0n, out: 0n },               // 0.02
};

// Exact expected cost in micro-credits: one ceil over the whole call.
export function expectedCost(model, usage) {
  const p = PRICES[model];
  const prompt = BigInt(usage.prompt_tokens);
  const cached = BigInt(usage.prompt_tokens_details?.cached_tokens ?? 0);
  const out = BigInt(usage.completion_tokens ?? 0);
  const num = (prompt - cached) * p.in + cached * p.cached + out * p.out;
  return (num + 999999n) / 1000000n;
}

// "12.345678" -> 12345678n micro-credits.
export function micro(s) {
  const m = String(s).trim().match(/^(-?)(\d+)(?:\.(\d{1,6}))?$/);
  if (!m) throw new Error(`not an amount: ${s}`);
  const v = BigInt(m[2]) * 1000000n + BigInt((m[3] ?? '').padEnd(6, '0'));
  return m[1] ? -v : v;
}

// A finished call's debit and request row reach the database through the
// call journal a few milliseconds after its answer; the journal files are
// emptied once everything in them is committed and the holds released. Wait
// for that (both files empty) before reading the database: afterwards every
// call already answered is settled, exactly.
const pause = new Int32Array(new SharedArrayBuffer(4));
export function settled(dataDir, ms = 10_000) {
  const size = (f) => { try { return statSync(join(dataDir, f)).size; } catch { return 0; } };
  const end = Date.now() + ms;
  while (size('calls.journal.0') + size('calls.journal.1') > 0) {
    if (Date.now() > end) throw new Error(`the call journal in ${dataDir} did not drain in ${ms} ms`);
    Atomics.wait(pause, 0, 0, 2);
  }
}

// Read the database with the sqlite3 shell, once the journal has drained.
export function sql(dataDir, query) {
  settled(dataDir);
  return execFileSync('sqlite3', [join(dataDir, 'tollgate.db'), query], { encoding: 'utf8' }).trim();
}

export function balance(dataDir, org) {
  settled(dataDir);
  const r = cli(dataDir, ['credits', 'balance', '--org', org]);
  if (r.code !== 0) throw new Error(`credits balance: ${r.stderr}`);
  return micro(r.stdout.trim().split(/\s+/)[0]);
}

export function grant(dataDir, org, amount) {
  const r = cli(dataDir, ['credits', 'grant', '--org', org, amount, '--memo', 'test grant']);
  if (r.code !== 0) throw new Error(`credits grant: ${r.stderr}`);
}

export function createKey(dataDir, org, name, extra = []) {
  const r = cli(dataDir, ['keys', 'create', '--org', org, '--name', name, ...extra]);
  if (r.code !== 0) throw new Error(`keys create: ${r.stderr}`);
  const key = r.stdout.trim();
  if (!/^tg_[0-9A-Za-z]{38}$/.test(key)) throw new Error(`unexpected key output: ${r.stdout}`);
  return key;
}

export function importModels(dataDir, upstreamUrl) {
  const file = join(dataDir, 'models.json');
  writeFileSync(file, JSON.stringify({
    providers: [{ name: 'fake', kind: 'openai', base_url: `${upstreamUrl}/v1`, api_key: 'sk-fake-upstream-secret', timeout_s: 5 }],
    models: [
      { name: 'fake-chat', provider: 'fake', upstream_model: 'upstream-chat', input_per_mtok: '0.15', cached_input_per_mtok: '0.075', output_per_mtok: '0.60', max_output_tokens: 4096, context_window: 128000 },
      { name: 'fake-big', provider: 'fake', upstream_model: 'upstream-big', input_per_mtok: '2.50', cached_input_per_mtok: '1.25', output_per_mtok: '10.00', max_output_tokens: 4096, context_window: 128000 },
      { name: 'fake-out-only', provider: 'fake', upstream_model: 'upstream-out', input_per_mtok: '0', cached_input_per_mtok: '0', output_per_mtok: '1.00', max_output_tokens: 4096, context_window: 128000 },
      { name: 'fake-embed', provider: 'fake', upstream_model: 'upstream-embed', kind: 'embedding', input_per_mtok: '0.02', cached_input_per_mtok: '0', output_per_mtok: '0', max_output_tokens: 1, context_window: 8192 },
    ],
  }));
  const r = cli(dataDir, ['models', 'import', file]);
  if (r.code !== 0) throw new Error(`models import: ${r.stderr}`);
}

// A running gateway with org "Acme", the fake provider's models and a key.
export async function startGateway({ credits = '100', serverArgs = [] } = {}) {
  const upstream = await startFakeUpstream();
  const srv = await startServer({ args: serverArgs });
  addUser(srv.dataDir, { email: 'owner@example.com', password: 'owner-password-1', admin: true });
  addOrg(srv.dataDir, 'Acme');
  importModels(srv.dataDir, upstream.url);
  if (credits) grant(srv.dataDir, 'Acme', credits);
  return {
    srv, upstream,
    async stop() { await srv.stop(); await upstream.stop(); srv.cleanup(); },
  };
}
