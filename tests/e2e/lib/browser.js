// Headless Chromium (Debian's package) driven by playwright-core.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS } from './harness.js';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// Save a full-page screenshot under artifacts/screens/NAME.png for review.
export async function screenshot(page, name) {
  const dir = join(ARTIFACTS, 'screens');
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

// Fill and submit a form by field name; waits for the navigation it causes.
// Client-side validation (required, minlength) is switched off so the server's
// own checks are what the tests exercise.
export async function submitForm(page, selector, fields) {
  const form = page.locator(selector);
  await form.evaluate((f) => { f.noValidate = true; });
  for (const [name, value] of Object.entries(fields)) {
    // Booleans tick a checkbox; other values go to the field that takes text
    // (a name may be shared by checkboxes and a text input, e.g. models).
    const input = typeof value === 'boolean'
      ? form.locator(`input[type="checkbox"][name="${name}"]`).first()
      : form.locator(`[name="${name}"]:not([type="checkbox"])`).first();
    const tag = await input.evaluate((el) => el.tagName.toLowerCase() + ':' + (el.type || ''));
    if (tag.startsWith('select')) await input.selectOption(String(value));
    else if (tag.endsWith('checkbox')) { if (value) await input.check(); else await input.uncheck(); }
    else await input.fill(String(value));
  }
  await Promise.all([page.waitForLoadState('load'), form.locator('[type="submit"]').first().click()]);
  await page.waitForLoadState('load');
}
