#!/usr/bin/env node
// Single sign-on as a person does it, in Debian's headless Chromium (playwright-core): the
// dashboard's sign-in page → "Sign in with …" → the test provider's form → back to Trellis
// → the dashboard's overview, signed in.
//
// Contract (tests/it/oidc.rs relies on it):
//   node tests/oidc/browser.mjs BASE_URL ACCOUNT
//   - BASE_URL is Trellis on a loopback host with dashboard.oidc pointing at
//     tests/oidc/provider.mjs; ACCOUNT is one of its accounts, with a mapped role.
//   - stdout: one JSON document {"steps": [{"name", "ok", "url", "detail"?}],
//     "violations": [{"url", "id", "impact", "help", "nodes"}], "error"?}: axe-core's WCAG 2.1
//     A/AA violations on Trellis's pages passed (the sign-in page, the dashboard).
//   - Exit 0: every step passed, no violation; 1: a step failed or a violation was found;
//     2: the harness itself failed.

import { createRequire } from 'node:module';
import { CHROMIUM_ARGS, CHROMIUM_PATH, axeViolations } from '../a11y/chromium.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const axePath = require.resolve('axe-core/axe.min.js');

const STEP_TIMEOUT_MS = 30_000;

const report = { steps: [], violations: [] };
let browser = null;

function done(code, error) {
  if (error) report.error = String(error && error.stack ? error.stack : error);
  process.stdout.write(JSON.stringify(report, null, 2) + '\n', () => process.exit(code));
}

process.on('uncaughtException', (e) => done(2, e));
process.on('unhandledRejection', (e) => done(2, e));

async function step(page, name, fn) {
  try {
    const detail = await fn();
    report.steps.push({ name, ok: true, url: page.url(), ...(detail ? { detail } : {}) });
    // Trellis's pages are checked; the test provider's are not Trellis's.
    if (page.url().startsWith(base)) report.violations.push(...(await axeViolations(page, axePath)));
  } catch (e) {
    report.steps.push({ name, ok: false, url: page.url(), detail: String(e.message || e) });
    throw e;
  }
}

const [base, account] = process.argv.slice(2);
if (!base || !account) done(2, 'usage: browser.mjs BASE_URL ACCOUNT');

try {
  browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: CHROMIUM_ARGS,
  });
  // axe-core is injected as a script: the pages' CSP (no script at all) is bypassed for it.
  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  await step(page, 'sign-in page', async () => {
    await page.goto(`${base}/dashboard/login`);
    await page.getByRole('link', { name: /^Sign in with / }).waitFor();
  });
  await step(page, 'to the identity provider', async () => {
    await page.getByRole('link', { name: /^Sign in with / }).click();
    await page.waitForURL((u) => !u.toString().startsWith(base));
    await page.getByLabel('Account').waitFor();
  });
  await step(page, 'sign in at the provider', async () => {
    await page.getByLabel('Account').fill(account);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${base}/dashboard`);
  });
  await step(page, 'the dashboard, signed in', async () => {
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    const who = (await page.locator('.dash-who').innerText()).trim();
    return who;
  });
  await browser.close();
  done(report.violations.length ? 1 : 0);
} catch (e) {
  if (browser) await browser.close().catch(() => {});
  done(report.steps.some((s) => !s.ok) ? 1 : 2, e);
}
