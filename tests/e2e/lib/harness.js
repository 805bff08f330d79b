// Test harness: start the real tollgate binary on a free loopback port with a
// fresh data directory, and stop it afterwards. Used by every e2e suite.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, '../../..');
export const BIN = process.env.TOLLGATE_BIN || join(ROOT, 'build/tollgate');
export const FAKE_BIN = process.env.FAKE_UPSTREAM_BIN || join(ROOT, 'build/fake_upstream');
export const ARTIFACTS = join(ROOT, 'tests/e2e/artifacts');

export function tempDir(prefix = 'tollgate-e2e-') {
  return mkdtempSync(join(tmpdir(), prefix));
}

// Run a tollgate CLI command synchronously against a data directory.
export function cli(dataDir, args, { input, env } = {}) {
  const res = spawnSync(BIN, [...args, '--data-dir', dataDir, '--password-hashing', 'min'], {
    input, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000,
  });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

// Wait until `pattern` appears in a growing string held by getter().
async function waitFor(getter, pattern, proc, ms, what) {
  const start = Date.now();
  for (;;) {
    const m = getter().match(pattern);
    if (m) return m;
    if (proc.exitCode !== null) throw new Error(`${what} exited (${proc.exitCode}) before ready:\n${getter()}`);
    if (Date.now() - start > ms) throw new Error(`${what} not ready after ${ms} ms:\n${getter()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function startServer({ dataDir, args = [], env = {} } = {}) {
  const dir = dataDir || tempDir();
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir,
    '--password-hashing', 'min', ...args], { env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { err += d; });
  const m = await waitFor(() => out, /listening on \S+ port (\d+)/, proc, 15_000, 'tollgate');
  const port = Number(m[1]);
  const setup = out.match(/(https?:\/\/\S+\/setup\?token=\S+)/);
  return {
    proc, port, dataDir: dir,
    url: `http://127.0.0.1:${port}`,
    setupUrl: setup ? setup[1].replace(/^https?:\/\/[^/]+/, `http://127.0.0.1:${port}`) : null,
    stdout: () => out,
    stderr: () => err,
    // SIGTERM and wait; resolves to the exit code.
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? proc.signalCode;
      const done = new Promise((r) => proc.on('exit', (code, sig) => r(code ?? sig)));
      proc.kill('SIGTERM');
      return done;
    },
    cleanup() { rmSync(dir, { recursive: true, force: true }); },
  };
}

export async function startFakeUpstream(args = []) {
  const proc = spawn(FAKE_BIN, ['--listen', '127.0.0.1:0', ...args]);
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const m = await waitFor(() => out, /listening on 127\.0\.0\.1:(\d+)/, proc, 10_000, 'fake_upstream');
  return {
    proc, port: Number(m[1]), url: `http://127.0.0.1:${m[1]}`,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? proc.signalCode;
      const done = new Promise((r) => proc.on('exit', (code, sig) => r(code ?? sig)));
      proc.kill('SIGTERM');
      return done;
    },
  };
}

// A raw HTTP/1.1 exchange over a socket, for requests fetch() will not send.
export async function rawRequest(port, text, { timeoutMs = 5000 } = {}) {
  const net = await import('node:net');
  return new Promise((resolveP, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => { sock.destroy(); resolveP({ data, timedOut: true }); }, timeoutMs);
    sock.on('connect', () => sock.write(text));
    sock.on('data', (d) => { data += d; });
    sock.on('end', () => { clearTimeout(timer); resolveP({ data, timedOut: false }); });
    sock.on('error', (e) => { clearTimeout(timer); if (data) resolveP({ data, timedOut: false }); else reject(e); });
  });
}
