// API key helpers for e2e suites: GET /v1/key, signing in a browser context,
// creating, rotating and revoking keys through the dashboard, and making
// well-formed keys that no server issued.
import { randomInt } from 'node:crypto';
import { submitForm } from './browser.js';

export const KEY_RE = /^tg_[0-9A-Za-z]{38}$/;
const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

// GET /v1/key with the key as a Bearer token (or in x-api-key).
export async function keyInfo(base, key, { header = 'authorization' } = {}) {
  const headers = key === undefined ? {} :
    header === 'x-api-key' ? { 'x-api-key': key } : { Authorization: `Bearer ${key}` };
  const res = await fetch(`${base}/v1/key`, { headers });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

function crc32(s) {
  let c = ~0;
  for (const b of Buffer.from(s, 'latin1')) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xEDB88320 & -(c & 1));
  }
  return (~c) >>> 0;
}

function base62u32(v) {
  let out = '';
  for (let i = 0; i < 6; i++) { out = B62[v % 62] + out; v = Math.floor(v / 62); }
  return out;
}

// A key with a correct checksum that no server created.
export function wellFormedKey() {
  let body = 'tg_';
  for (let i = 0; i < 32; i++) body += B62[randomInt(62)];
  return body + base62u32(crc32(body));
}

// The same key with one character of its random part changed: the
// checksum no longer matches.
export function badChecksum(key) {
  const i = 12;
  const c = key[i] === 'a' ? 'b' : 'a';
  return key.slice(0, i) + c + key.slice(i + 1);
}

export async function signIn(browser, base, who, options = {}) {
  const ctx = await browser.newContext(options);
  const page = await ctx.newPage();
  await page.goto(`${base}/login`);
  await submitForm(page, 'form[action="/login"]', { email: who.email, password: who.password });
  return { ctx, page };
}

// What the one-time page shows: the key and the id of its detail page.
async function readReveal(page) {
  const key = (await page.textContent('.reveal #new-key')).trim();
  const href = await page.getAttribute('a.btn-primary[href^="/keys/"]', 'href');
  return { key, id: Number(href.split('/').pop()) };
}

// Fill the new-key form and submit it; returns { key, id, response } where
// response is the POST's own response (the reveal page is rendered directly).
export async function createInBrowser(page, base, fields) {
  await page.goto(`${base}/keys/new`);
  const posted = page.waitForResponse((r) => r.request().method() === 'POST' &&
    new URL(r.url()).pathname === '/keys');
  await submitForm(page, 'form[action="/keys"]', fields);
  const response = await posted;
  return { ...(await readReveal(page)), response };
}

export async function rotateInBrowser(page, base, id, grace) {
  await page.goto(`${base}/keys/${id}`);
  const posted = page.waitForResponse((r) => r.request().method() === 'POST' &&
    new URL(r.url()).pathname === `/keys/${id}/rotate`);
  await submitForm(page, `form[action="/keys/${id}/rotate"]`, { grace: String(grace) });
  const response = await posted;
  return { ...(await readReveal(page)), response };
}

export async function revokeInBrowser(page, base, id) {
  await page.goto(`${base}/keys/${id}`);
  page.once('dialog', (d) => d.accept());
  await Promise.all([page.waitForLoadState('load'),
    page.locator(`form[action="/keys/${id}/revoke"] button`).click()]);
  await page.waitForLoadState('load');
}

// Create a key over plain HTTP with a signed-in Client (lib/session.js).
export async function createWithClient(client, fields) {
  const res = await client.post('/keys', fields, '/keys/new');
  const html = await res.text();
  const key = html.match(/<code id="new-key">([^<]+)<\/code>/)?.[1];
  const id = Number(html.match(/href="\/keys\/(\d+)"/)?.[1]);
  return { status: res.status, html, key, id };
}
