// A throwaway PostgreSQL cluster for e2e suites, run by scripts/pg-throwaway.sh: a fresh
// directory under the temp dir, a server listening only on a Unix socket in it, and a
// query() that goes through psql. Call destroy() when done (an after() hook); clusters
// still up when the process exits are killed and removed then.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const PG_SCRIPT = fileURLToPath(new URL('../../../scripts/pg-throwaway.sh', import.meta.url));

// The socket DIR/.s.PGSQL.5432 must fit a Unix socket path: the script takes at most 93 bytes.
const MAX_DIR = 93;
const live = new Set();

process.on('exit', () => {
  for (const dir of live) {
    try {
      execFileSync('sh', [PG_SCRIPT, 'kill', dir], { stdio: 'ignore', timeout: 30_000 });
    } catch { /* best effort */ }
    rmSync(dir, { recursive: true, force: true });
  }
});

// libpq settings of the caller (PGPORT above all) must not steer psql elsewhere.
function clientEnv() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^PG/.test(k) && k !== 'PG_BIN') delete env[k];
  return env;
}

async function script(cmd, dir) {
  try {
    const { stdout } = await run('sh', [PG_SCRIPT, cmd, dir], { timeout: 90_000, env: clientEnv() });
    return stdout.trim();
  } catch (e) {
    const why = (e.stderr || '').trim() || e.message;
    throw new Error(`pg-throwaway.sh ${cmd} ${dir} failed (exit ${e.code ?? e.signal}): ${why}`);
  }
}

// Start a fresh cluster. query(sql) resolves to its rows as arrays of strings (NULL is '',
// a value holding a tab or a newline is split); command tags are not rows.
export async function startPg() {
  let base = tmpdir();
  if (base.length + '/tgpg-XXXXXX'.length > MAX_DIR) base = '/tmp';
  const dir = mkdtempSync(join(base, 'tgpg-'));
  live.add(dir);
  let url;
  try {
    url = await script('start', dir);
  } catch (e) {
    await script('destroy', dir).catch(() => rmSync(dir, { recursive: true, force: true }));
    live.delete(dir);
    throw e;
  }
  return {
    dir,
    url,
    async query(sql) {
      let stdout;
      try {
        ({ stdout } = await run('psql', [url, '-X', '-q', '-At', '-F', '\t', '-v', 'ON_ERROR_STOP=1',
          '-c', sql], { timeout: 60_000, maxBuffer: 64 << 20, env: clientEnv() }));
      } catch (e) {
        const why = (e.stderr || '').trim() || e.message;
        throw new Error(`psql failed (exit ${e.code ?? e.signal}) on ${JSON.stringify(sql)}: ${why}`);
      }
      if (stdout === '') return [];
      const text = stdout.endsWith('\n') ? stdout.slice(0, -1) : stdout;
      return text.split('\n').map((line) => line.split('\t'));
    },
    async stop() { await script('stop', dir); },
    async kill() { await script('kill', dir); },
    // Starts the cluster again (stopping it first if it runs); the URL does not change.
    async restart() { await script('restart', dir); },
    async destroy() {
      await script('destroy', dir);
      live.delete(dir);
    },
  };
}
