// The ledger audit as a test step: every suite that moves credits can end
// with runAudit(dataDir) to prove the books still balance.
import assert from 'node:assert/strict';
import { cli } from './harness.js';

// Run `tollgate audit` against a data directory (also while the server runs)
// and assert it found no drift. Returns its output.
export function runAudit(dataDir) {
  const r = cli(dataDir, ['audit']);
  assert.equal(r.code, 0, `tollgate audit reported drift (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^audit: \d+ orgs, \d+ entries, balances OK$/m);
  return r.stdout;
}
