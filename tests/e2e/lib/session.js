// Sign-in helpers for e2e suites that do not need a browser: users and orgs
// are made with the CLI (before or while the server runs), and sign-in goes
// through the real /login form over HTTP, CSRF token and all.
import { cli } from './harness.js';

// Create a user with the CLI (the password goes in on stdin).
export function addUser(dataDir, { email, name = '', password, admin = false }) {
  const args = ['user', 'add', '--email', email];
  if (name) args.push('--name', name);
  if (admin) args.push('--admin');
  const r = cli(dataDir, args, { input: `${password}\n` });
  if (r.code !== 0) throw new Error(`user add ${email}: ${r.stderr}`);
}

export function addOrg(dataDir, name) {
  const r = cli(dataDir, ['org', 'add', name]);
  if (r.code !== 0) throw new Error(`org add ${name}: ${r.stderr}`);
  return Number(r.stdout.match(/\(id (\d+)\)/)[1]);
}

export function addMember(dataDir, org, email, role) {
  const r = cli(dataDir, ['org', 'member', '--org', org, '--email', email, '--role', role]);
  if (r.code !== 0) throw new Error(`org member ${email}: ${r.stderr}`);
}

// A tiny cookie jar over fetch().
export class Client {
  constructor(base) { this.base = base; this.jar = new Map(); }
  cookie() { return [...this.jar].map(([k, v]) => `${k}=${v}`).join('; '); }
  absorb(res) {
    for (const line of res.headers.getSetCookie?.() ?? []) {
      const [pair] = line.split(';');
      const i = pair.indexOf('=');
      const k = pair.slice(0, i).trim();
      const v = pair.slice(i + 1).trim();
      if (/Max-Age=0/i.test(line) || v === '') this.jar.delete(k); else this.jar.set(k, v);
    }
  }
  async get(path) {
    const res = await fetch(this.base + path, { redirect: 'manual', headers: { Cookie: this.cookie() } });
    this.absorb(res);
    return res;
  }
  // GET a page and return the value of its first csrf field.
  async csrf(path) {
    const res = await this.get(path);
    const html = await res.text();
    const m = html.match(/name="csrf" value="([^"]+)"/);
    if (!m) throw new Error(`no csrf field on ${path} (status ${res.status})`);
    return m[1];
  }
  // POST a form with the CSRF token of `fromPath` (defaults to path).
  async post(path, fields, fromPath = path) {
    const csrf = await this.csrf(fromPath);
    const res = await fetch(this.base + path, {
      method: 'POST', redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: this.cookie() },
      body: new URLSearchParams({ csrf, ...fields }),
    });
    this.absorb(res);
    return res;
  }
  async login(email, password) {
    const res = await this.post('/login', { email, password });
    if (res.status !== 303) throw new Error(`login ${email} failed: ${res.status}`);
    return this;
  }
}
