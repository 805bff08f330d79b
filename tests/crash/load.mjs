// load.mjs - the crash test's load client (see README.md here).
//
//   node load.mjs run --url URL --key KEY --model M --out FILE --prefix P
//                     [--workers N] [--max-s S]
//   node load.mjs probe --url URL --key KEY --model M --out FILE --expect CODE ID...
//
// run: N workers send chat completions back to back, streams and
// non-streams mixed, some shaped by the fake provider to fail (its 500 must
// become 502, its 4xx must pass through) or to break mid-stream. Every
// request has its own X-Request-Id (P + worker + sequence). When the gateway
// dies the requests in flight are cut; the first refused connection stops the
// workers, and one CSV line per request is appended to FILE:
//
//   request_id,kind,stream,status,outcome,done,charged,expected
//
// outcome: ok (a 200 whose body arrived whole: for a stream, the chunked body
// ended cleanly), error (any other status, body whole), cut (the connection
// died after the request was sent, before the answer ended), refused (no
// connection: never sent), hung (no answer within 30 s). done is 1 when a
// stream carried data: [DONE]; charged is x-credits-charged (or a stream's
// usage.cost, also when the stream was cut later) in micro-credits, -1 when
// absent; expected is the status the kind should get.
//
// probe: one plain request per ID reusing that X-Request-Id; appends
// request_id,expected,status,code lines to FILE.
import http from 'node:http';
import { appendFileSync } from 'node:fs';

function parseArgs(argv) {
  const opts = { workers: 8, 'max-s': 120, _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) opts[a.slice(2)] = argv[++i];
    else opts._.push(a);
  }
  for (const need of ['url', 'key', 'model', 'out'])
    if (!opts[need]) throw new Error(`--${need} is required`);
  return opts;
}

// "0.000185" -> 185 (micro-credits), -1 when absent or malformed.
function micro(s) {
  const m = /^(\d+)(?:\.(\d{1,6}))?$/.exec(String(s ?? '').trim());
  return m ? Number(m[1]) * 1e6 + Number((m[2] ?? '').padEnd(6, '0')) : -1;
}

// What each kind of request asks of the fake provider, and the status it
// must get from the gateway. Weights are out of 100.
const KINDS = [
  { kind: 'ns', weight: 34, stream: false, expect: () => 200 },
  { kind: 'st', weight: 34, stream: true, usage: true, expect: () => 200 },
  { kind: 'st-nu', weight: 8, stream: true, usage: false, expect: () => 200 },
  { kind: 'brk', weight: 6, stream: true, usage: false, fake: { break_after: 3 }, expect: () => 200 },
  { kind: 'e500', weight: 9, fake: { status: 500 }, expect: () => 502 },
  { kind: 'e4xx', weight: 9, fake4xx: true, expect: (s) => s },
];
const FOUR_XX = [400, 403, 404, 422];

function pick() {
  let r = Math.random() * 100;
  for (const k of KINDS) {
    if ((r -= k.weight) < 0) return k;
  }
  return KINDS[0];
}

function makeBody(model, k) {
  const body = {
    model,
    messages: [{ role: 'user', content: `crash test ${Math.random().toString(36).slice(2, 10)}` }],
    max_tokens: 32,
  };
  let expect = 200;
  let stream = k.stream;
  if (k.fake4xx || k.fake?.status) {
    stream = Math.random() < 0.5; // failures come on both paths
    const status = k.fake4xx ? FOUR_XX[Math.floor(Math.random() * FOUR_XX.length)] : k.fake.status;
    body.x_fake = { status };
    expect = k.expect(status);
  } else if (k.fake) {
    body.x_fake = { ...k.fake };
  }
  if (stream) {
    body.stream = true;
    if (k.usage) body.stream_options = { include_usage: true };
  }
  return { body, stream, expect };
}

// One request; resolves to { status, outcome, done, charged, code }.
function send(agent, url, key, rid, body, stream) {
  return new Promise((resolve) => {
    const payload = JSON.stringify(body);
    let settled = false;
    const finish = (v) => {
      if (!settled) {
        settled = true;
        resolve(v);
      }
    };
    const req = http.request({
      agent, host: url.hostname, port: url.port, method: 'POST', path: '/v1/chat/completions',
      headers: {
        authorization: `Bearer ${key}`, 'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload), 'x-request-id': rid,
      },
    });
    req.setTimeout(30_000, () => {
      finish({ status: 0, outcome: 'hung', done: 0, charged: -1, code: '' });
      req.destroy();
    });
    req.on('error', (e) => {
      const outcome = e.code === 'ECONNREFUSED' ? 'refused' : 'cut';
      finish({ status: 0, outcome, done: 0, charged: -1, code: '' });
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('error', () => {});
      res.on('close', () => {
        const st = res.statusCode;
        let charged = micro(res.headers['x-credits-charged']);
        let done = 0;
        let code = '';
        if (stream && st === 200) {
          done = /^data: \[DONE\]$/m.test(text) ? 1 : 0;
          const m = [...text.matchAll(/"cost":([0-9.]+)/g)].pop();
          if (m) charged = micro(m[1]);
        } else if (res.complete) {
          try { code = JSON.parse(text).error?.code ?? ''; } catch { /* not JSON */ }
        }
        if (!res.complete) finish({ status: st, outcome: 'cut', done, charged, code });
        else finish({ status: st, outcome: st === 200 ? 'ok' : 'error', done, charged, code });
      });
    });
    req.end(payload);
  });
}

async function run(o) {
  const url = new URL(o.url);
  const workers = Number(o.workers);
  const agent = new http.Agent({ keepAlive: true, maxSockets: workers });
  const deadline = Date.now() + Number(o['max-s']) * 1000;
  const lines = [];
  const counts = {};
  let stop = false;
  process.on('SIGTERM', () => { stop = true; });

  async function worker(w) {
    for (let seq = 0; !stop && Date.now() < deadline; seq++) {
      const k = pick();
      const { body, stream, expect } = makeBody(o.model, k);
      const rid = `${o.prefix}w${w}-${seq}`;
      const r = await send(agent, url, o.key, rid, body, stream);
      if (r.outcome === 'refused') stop = true;
      counts[r.outcome] = (counts[r.outcome] ?? 0) + 1;
      lines.push([rid, k.kind, stream ? 1 : 0, r.status, r.outcome, r.done, r.charged, expect].join(','));
    }
  }
  await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  agent.destroy();
  if (lines.length) appendFileSync(o.out, lines.join('\n') + '\n');
  console.log(`LOAD sent=${lines.length} ` +
    Object.entries(counts).map(([k, v]) => `${k}=${v}`).join(' '));
}

async function probe(o) {
  const url = new URL(o.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const lines = [];
  for (const rid of o._) {
    const { body } = makeBody(o.model, KINDS[0]);
    const r = await send(agent, url, o.key, rid, body, false);
    lines.push([rid, o.expect, r.status, r.code].join(','));
  }
  agent.destroy();
  if (lines.length) appendFileSync(o.out, lines.join('\n') + '\n');
}

const [mode, ...rest] = process.argv.slice(2);
const opts = parseArgs(rest);
if (mode === 'run') await run(opts);
else if (mode === 'probe') await probe(opts);
else throw new Error(`unknown mode ${mode}; use run or probe`);
