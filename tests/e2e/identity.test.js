// Identity and access in a real browser: first-run setup, sign-in, orgs,
// members, roles, isolation between orgs, CSRF, session fixation, logout,
// escaping and sign-in throttling.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/harness.js';
import { launch, screenshot, submitForm } from './lib/browser.js';
import { runAudit } from './lib/audit.js';

const ADMIN = { email: 'admin@example.com', name: 'Ada Admin', password: 'admin-password-123' };
const MEMBER = { email: 'mel@example.com', name: 'Mel Member', temp: 'temporary-pass-1', password: 'member-password-456' };
const XSS = '<script>alert("pwned")</script>';

let srv, browser, admin, adminPage;
const ids = {};

async function signIn(ctx, who, password) {
  const page = await ctx.newPage();
  await page.goto(`${srv.url}/login`);
  await submitForm(page, 'form[action="/login"]', { email: who.email, password });
  return page;
}

// A cookie header for fetch() from a browser context.
async function cookieHeader(ctx) {
  const cookies = await ctx.cookies(srv.url);
  return cookies.map((c) => `${c.name}=${c.value}`).join('; ');
}

before(async () => {
  srv = await startServer();
  browser = await launch();
  admin = await browser.newContext();
});
after(async () => {
  await browser?.close();
  runAudit(srv.dataDir);
  assert.equal(await srv.stop(), 0);
  srv.cleanup();
});

describe('identity and access', () => {
  test('first run prints a one-time setup link that creates the admin', async () => {
    assert.ok(srv.setupUrl, 'setup URL printed on first start');
    adminPage = await admin.newPage();
    await adminPage.goto(srv.setupUrl);
    await screenshot(adminPage, '01-setup');
    await submitForm(adminPage, 'form[action="/setup"]', {
      email: ADMIN.email, name: ADMIN.name, password: ADMIN.password,
    });
    assert.equal(new URL(adminPage.url()).pathname, '/');
    assert.match(await adminPage.textContent('.topbar'), /Ada Admin/);
    await screenshot(adminPage, '02-overview-empty');

    // The link is spent now.
    const again = await fetch(srv.setupUrl);
    assert.equal(again.status, 404);
  });

  test('the setup form rejects a short password with a clear message', async () => {
    // A fresh server for this, so the first one keeps its state.
    const s2 = await startServer();
    try {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await page.goto(s2.setupUrl);
      await submitForm(page, 'form[action="/setup"]', { email: 'x@example.com', name: 'X', password: 'short' });
      assert.match(await page.textContent('.flash-error'), /at least 12 characters/);
      await ctx.close();
    } finally { await s2.stop(); s2.cleanup(); }
  });

  test('admin creates two organizations, one with a hostile name', async () => {
    await adminPage.goto(`${srv.url}/orgs`);
    await submitForm(adminPage, 'form[action="/orgs"]', { name: 'Acme' });
    ids.acme = Number(new URL(adminPage.url()).pathname.split('/').pop());
    assert.ok(ids.acme > 0);
    assert.match(await adminPage.textContent('.flash-ok'), /Organization created/);
    await adminPage.goto(`${srv.url}/orgs`);
    await submitForm(adminPage, 'form[action="/orgs"]', { name: `Globex ${XSS}` });
    ids.globex = Number(new URL(adminPage.url()).pathname.split('/').pop());
    const html = await adminPage.content();
    assert.ok(html.includes('Globex &lt;script&gt;alert("pwned")&lt;/script&gt;') ||
      html.includes('Globex &lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;'), 'name is escaped');
    assert.equal(await adminPage.locator('script:not([src])').count(), 0, 'no inline script injected');
    await adminPage.goto(`${srv.url}/orgs`);
    await screenshot(adminPage, '03-orgs');
  });

  test('a duplicate organization name is refused with a message', async () => {
    await adminPage.goto(`${srv.url}/orgs`);
    await submitForm(adminPage, 'form[action="/orgs"]', { name: 'acme' });
    assert.match(await adminPage.textContent('.flash-error'), /already exists/);
  });

  test('admin adds a new member to Acme with a temporary password', async () => {
    await adminPage.goto(`${srv.url}/orgs/${ids.acme}`);
    await submitForm(adminPage, `form[action="/orgs/${ids.acme}/members"]`, {
      email: MEMBER.email, name: MEMBER.name, role: 'member', password: MEMBER.temp,
    });
    assert.match(await adminPage.textContent('.flash-ok'), /Added mel@example.com as member/);
    assert.match(await adminPage.textContent('table.data'), /mel@example.com/);
    await screenshot(adminPage, '04-org-members');
  });

  test('the last owner cannot be removed or demoted', async () => {
    // Make the admin an owner of Acme first (instance admins may manage any org).
    await adminPage.goto(`${srv.url}/orgs/${ids.acme}`);
    await submitForm(adminPage, `form[action="/orgs/${ids.acme}/members"]`, {
      email: ADMIN.email, role: 'owner',
    });
    const rows = await adminPage.locator('table.data tbody tr').allTextContents();
    assert.ok(rows.some((r) => r.includes(ADMIN.email) && r.includes('owner')));
    const adminRow = adminPage.locator('table.data tbody tr', { hasText: ADMIN.email });
    const removeForm = adminRow.locator('form[action$="/remove"]');
    adminPage.once('dialog', (d) => d.accept());
    await Promise.all([adminPage.waitForLoadState('load'), removeForm.locator('button').click()]);
    await adminPage.waitForLoadState('load');
    assert.match(await adminPage.textContent('.flash-error'), /last owner/);
    // Demoting via the role form is refused the same way.
    const row = adminPage.locator('table.data tbody tr', { hasText: ADMIN.email });
    await row.locator('select[name="role"]').selectOption('member');
    await Promise.all([adminPage.waitForLoadState('load'), row.locator('form[action$="/role"] button').click()]);
    assert.match(await adminPage.textContent('.flash-error'), /at least one owner/);
  });

  test('the member signs in, must change the temporary password, and sees only Acme', async () => {
    const ctx = await browser.newContext();
    let page = await signIn(ctx, MEMBER, MEMBER.temp);
    assert.equal(new URL(page.url()).pathname, '/account');
    assert.match(await page.textContent('.flash-warn'), /Choose a new password/);
    await screenshot(page, '05-account-must-change');
    await submitForm(page, 'form[action="/account/password"]', { current: MEMBER.temp, password: MEMBER.password });
    assert.match(await page.textContent('.flash-ok'), /Password changed/);
    await screenshot(page, '06-member-overview');

    await page.goto(`${srv.url}/orgs`);
    const text = await page.textContent('main');
    assert.match(text, /Acme/);
    assert.doesNotMatch(text, /Globex/);

    // Guessing the other org's URL, or admin pages: 404, not the page.
    for (const path of [`/orgs/${ids.globex}`, '/users', '/audit', '/orgs/999999']) {
      const res = await page.goto(`${srv.url}${path}`);
      assert.equal(res.status(), 404, path);
      assert.doesNotMatch(await page.content(), /Globex|Mel Member<\/td>/, path);
    }
    // The navigation shows only what a member may use.
    await page.goto(`${srv.url}/`);
    const nav = await page.textContent('.nav');
    assert.doesNotMatch(nav, /Users|Audit/);
    await screenshot(page, '07-member-nav');
    // A member cannot manage members: no forms, and a direct POST is a 404.
    await page.goto(`${srv.url}/orgs/${ids.acme}`);
    assert.equal(await page.locator(`form[action="/orgs/${ids.acme}/members"]`).count(), 0);
    const csrf = await page.locator('input[name="csrf"]').first().inputValue();
    const res = await fetch(`${srv.url}/orgs/${ids.acme}/members`, {
      method: 'POST', redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: await cookieHeader(ctx) },
      body: new URLSearchParams({ csrf, email: 'evil@example.com', role: 'owner', password: 'whatever-password' }),
    });
    assert.equal(res.status, 404);
    await ctx.close();
  });

  test('a POST without the CSRF token, or from another origin, gets 403', async () => {
    const cookie = await cookieHeader(admin);
    let res = await fetch(`${srv.url}/orgs`, {
      method: 'POST', redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: cookie },
      body: 'name=NoToken',
    });
    assert.equal(res.status, 403);
    assert.match(await res.text(), /security token/);
    await adminPage.goto(`${srv.url}/orgs`);
    const csrf = await adminPage.locator('form[action="/orgs"] input[name="csrf"]').inputValue();
    res = await fetch(`${srv.url}/orgs`, {
      method: 'POST', redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: cookie, Origin: 'http://evil.example' },
      body: new URLSearchParams({ csrf, name: 'CrossSite' }),
    });
    assert.equal(res.status, 403);
    assert.match(await res.text(), /another site/);
    // The same token from our own origin works, so the 403s above were about the token/origin.
    res = await fetch(`${srv.url}/orgs`, {
      method: 'POST', redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: cookie, Origin: srv.url },
      body: new URLSearchParams({ csrf, name: 'SameSite Org' }),
    });
    assert.equal(res.status, 303);
    // The login form is protected too (login CSRF).
    res = await fetch(`${srv.url}/login`, {
      method: 'POST', redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ email: ADMIN.email, password: ADMIN.password }),
    });
    assert.equal(res.status, 403);
  });

  test('session fixation: a planted cookie is replaced at sign-in and never authenticates', async () => {
    const ctx = await browser.newContext();
    const planted = 'A'.repeat(43);
    await ctx.addCookies([{ name: 'tg_session', value: planted, url: srv.url }]);
    const page = await signIn(ctx, ADMIN, ADMIN.password);
    const after = (await ctx.cookies(srv.url)).find((c) => c.name === 'tg_session');
    assert.ok(after);
    assert.notEqual(after.value, planted);
    assert.ok(after.httpOnly, 'HttpOnly');
    assert.equal(after.sameSite, 'Lax');
    // Signing in again issues yet another id.
    const before2 = after.value;
    await page.goto(`${srv.url}/login`);
    await submitForm(page, 'form[action="/login"]', { email: ADMIN.email, password: ADMIN.password });
    const after2 = (await ctx.cookies(srv.url)).find((c) => c.name === 'tg_session');
    assert.notEqual(after2.value, before2);
    // And the previous one is dead.
    const res = await fetch(`${srv.url}/`, { redirect: 'manual', headers: { Cookie: `tg_session=${before2}` } });
    assert.equal(res.status, 303);
    await ctx.close();
  });

  test('after sign-out the old cookie no longer works', async () => {
    const ctx = await browser.newContext();
    const page = await signIn(ctx, ADMIN, ADMIN.password);
    const cookie = await cookieHeader(ctx);
    let res = await fetch(`${srv.url}/`, { redirect: 'manual', headers: { Cookie: cookie } });
    assert.equal(res.status, 200);
    await Promise.all([page.waitForLoadState('load'), page.click('.user-menu button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/login');
    res = await fetch(`${srv.url}/`, { redirect: 'manual', headers: { Cookie: cookie } });
    assert.equal(res.status, 303);
    assert.match(res.headers.get('location'), /^\/login/);
    await ctx.close();
  });

  test('sign-in is throttled after five failures, with the same message for unknown emails', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    for (const email of [MEMBER.email, 'nobody@example.com']) {
      for (let i = 0; i < 5; i++) {
        await page.goto(`${srv.url}/login`);
        await submitForm(page, 'form[action="/login"]', { email, password: `wrong-password-${i}` });
        assert.match(await page.textContent('.flash-error'), /Email or password is incorrect/);
      }
      await page.goto(`${srv.url}/login`);
      // Even the right password is refused while throttled.
      await submitForm(page, 'form[action="/login"]', { email, password: MEMBER.password });
      assert.match(await page.textContent('.flash-error'), /Too many failed sign-in attempts\. Try again in \d+ seconds/);
    }
    await screenshot(page, '08-login-throttled');
    await ctx.close();
  });

  test('the audit log records logins, failures and member changes; users page lists users', async () => {
    await adminPage.goto(`${srv.url}/audit`);
    const text = await adminPage.textContent('table.data');
    for (const action of ['user.setup', 'org.create', 'member.add', 'login.failed', 'login.ok', 'login.throttled', 'user.password']) {
      assert.ok(text.includes(action), `audit has ${action}`);
    }
    assert.ok(text.includes('127.0.0.1'), 'audit records the IP');
    await screenshot(adminPage, '09-audit');
    await adminPage.goto(`${srv.url}/users`);
    assert.match(await adminPage.textContent('table.data'), /mel@example.com/);
    await screenshot(adminPage, '10-users');
  });

  test('a hostile user name renders escaped on every page that shows it', async () => {
    await adminPage.goto(`${srv.url}/users`);
    await submitForm(adminPage, 'form[action="/users"]', {
      email: 'xss@example.com', name: XSS, password: 'temporary-pass-2',
    });
    assert.match(await adminPage.textContent('.flash-ok'), /Created xss@example.com/);
    await adminPage.goto(`${srv.url}/orgs/${ids.acme}`);
    await submitForm(adminPage, `form[action="/orgs/${ids.acme}/members"]`, { email: 'xss@example.com', role: 'member' });
    for (const path of ['/users', `/orgs/${ids.acme}`, '/audit']) {
      await adminPage.goto(`${srv.url}${path}`);
      const html = await adminPage.content();
      assert.ok(!html.includes(XSS), `${path}: the raw name never reaches the page`);
      assert.equal(await adminPage.locator('script:not([src])').count(), 0, `${path}: no injected script`);
    }
    await adminPage.goto(`${srv.url}/users`);
    assert.ok((await adminPage.textContent('table.data')).includes(XSS), 'shown as text');
  });

  test('admin disables the member: their session ends and sign-in fails', async () => {
    const ctx = await browser.newContext();
    await signIn(ctx, MEMBER, MEMBER.password).catch(() => {});
    await adminPage.goto(`${srv.url}/users`);
    const row = adminPage.locator('table.data tbody tr', { hasText: MEMBER.email });
    adminPage.once('dialog', (d) => d.accept());
    await Promise.all([adminPage.waitForLoadState('load'), row.locator('form[action$="/disable"] button').click()]);
    await adminPage.waitForLoadState('load');
    assert.match(await adminPage.textContent('.flash-ok'), /disabled/);
    const res = await fetch(`${srv.url}/`, { redirect: 'manual', headers: { Cookie: await cookieHeader(ctx) } });
    assert.equal(res.status, 303);
    await ctx.close();
  });

  test('the account page signs out everywhere', async () => {
    const other = await browser.newContext();
    await signIn(other, ADMIN, ADMIN.password);
    const otherCookie = await cookieHeader(other);
    await adminPage.goto(`${srv.url}/account`);
    await screenshot(adminPage, '11-account');
    adminPage.once('dialog', (d) => d.accept());
    await Promise.all([adminPage.waitForLoadState('load'), adminPage.click('form[action="/account/logout-all"] button')]);
    const res = await fetch(`${srv.url}/`, { redirect: 'manual', headers: { Cookie: otherCookie } });
    assert.equal(res.status, 303);
    await other.close();
  });

  test('pages look right on a phone', async () => {
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await signIn(ctx, ADMIN, ADMIN.password);
    await page.goto(`${srv.url}/orgs/${ids.acme}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `no horizontal overflow (got ${overflow}px)`);
    await screenshot(page, '12-phone-org');
    await page.goto(`${srv.url}/login`);
    await screenshot(page, '13-phone-login');
    await ctx.close();
  });
});
