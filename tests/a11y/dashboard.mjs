#!/usr/bin/env node
// The dashboard as a person uses it, in Debian's headless Chromium (playwright-core): a visitor
// requests the trust page's documents; then staff sign in →
// overview → a control's page → propose an exception → run the control now; and axe-core
// (WCAG 2.1 A/AA) on every page visited.
//
// Contract (tests/browser.rs relies on it):
//   node tests/a11y/dashboard.mjs BASE_URL USER PASSWORD
//   - BASE_URL is http(s) on a loopback host; the user has the `security` role and no second
//     factor; the example data is loaded (the control `background-checks` fails for hr:E1021).
//   - stdout: one JSON document {"steps": [{"name", "ok", "url", "detail"?}],
//     "violations": [{"url", "id", "impact", "help", "nodes": [...]}], "error"?}.
//   - Exit 0: every step passed and no violation; 1: a step failed or a violation was found;
//     2: the harness itself failed (browser, timeouts).

import { createRequire } from 'node:module';
import { CHROMIUM_ARGS, CHROMIUM_PATH, axeViolations } from './chromium.mjs';

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

async function axe(page) {
  report.violations.push(...(await axeViolations(page, axePath)));
}

let failedAlready = false;

async function step(name, page, fn) {
  // After a failure the rest would only time out, one by one: they are skipped.
  if (failedAlready) {
    report.steps.push({ name, ok: false, url: page.url(), detail: 'skipped after an earlier failure' });
    return false;
  }
  try {
    const detail = await fn();
    report.steps.push({ name, ok: true, url: page.url(), detail: detail ?? null });
    await axe(page);
    return true;
  } catch (e) {
    failedAlready = true;
    report.steps.push({ name, ok: false, url: page.url(), detail: String(e && e.message ? e.message : e) });
    return false;
  }
}

async function main() {
  const [base, user, password] = process.argv.slice(2);
  if (!base || !user || !password) return done(2, 'usage: dashboard.mjs BASE_URL USER PASSWORD');
  const host = new URL(base).hostname;
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) return done(2, `not a loopback URL: ${base}`);
  browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const context = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const ok = [];

  ok.push(await step('a visitor requests the documents from the trust page', page, async () => {
    await page.goto(`${base}/`);
    // The page links to the public address (base_url); follow the same path on this server.
    const href = await page.getByRole('link', { name: /Request access to SOC 2 Type II Report/ }).getAttribute('href');
    const path = new URL(href, base).pathname + new URL(href, base).search;
    await page.goto(`${base}${path}`);
    await page.getByLabel('Full name').fill('Grace Hopper');
    await page.getByLabel('Work email').fill('grace@navy.example');
    await page.getByLabel('Company', { exact: true }).fill('US Navy');
    await page.getByLabel(/I accept these non-disclosure terms/).check();
    await Promise.all([page.waitForURL(/request-access\/received/), page.getByRole('button', { name: 'Send request' }).click()]);
    await page.getByRole('heading', { level: 1, name: 'Request received' }).waitFor();
  }));
  ok.push(await step('an anonymous visit goes to the sign-in page', page, async () => {
    await page.goto(`${base}/dashboard`);
    if (!page.url().includes('/dashboard/login')) throw new Error(`landed on ${page.url()}`);
  }));
  ok.push(await step('sign in', page, async () => {
    await page.getByLabel('User name').fill(user);
    await page.getByLabel('Password').fill(password);
    await Promise.all([page.waitForURL(/\/dashboard$/), page.getByRole('button', { name: 'Sign in' }).click()]);
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  }));
  ok.push(await step('the overview lists failing controls first', page, async () => {
    const first = await page.locator('#problems-heading + div table tbody tr').first().innerText();
    if (!/Failing/.test(first)) throw new Error(`first problem row: ${first}`);
    await page.getByRole('img', { name: /Controls passing all day/ }).waitFor();
  }));
  ok.push(await step('open a failing control', page, async () => {
    await Promise.all([page.waitForURL(/background-checks/), page.getByRole('link', { name: 'Background Checks' }).first().click()]);
    await page.getByRole('heading', { level: 2, name: /Current verdict/ }).waitFor();
    const findings = await page.locator('#findings-heading ~ div table').innerText();
    if (!findings.includes('hr:E1021')) throw new Error('hr:E1021 is not among the findings');
  }));
  ok.push(await step('filter its findings', page, async () => {
    await page.getByLabel('Status').selectOption('fail');
    await Promise.all([page.waitForURL(/status=fail/), page.getByRole('button', { name: 'Apply' }).click()]);
    const rows = await page.locator('#findings-heading ~ div table tbody tr').allInnerTexts();
    if (rows.length === 0 || rows.some((r) => !r.includes('fail'))) throw new Error(`rows: ${rows.join(' | ')}`);
  }));
  ok.push(await step('propose an exception', page, async () => {
    await page.goto(`${base}/dashboard/exceptions`);
    await page.getByLabel('Control').selectOption('background-checks');
    await page.getByLabel(/Resources/).fill('hr:E1021');
    await page.getByLabel(/Reason/).fill('Background check ordered; the vendor reports within two weeks.');
    await page.getByLabel('Owner').fill('People Operations');
    await page.getByLabel('Ticket').fill('SEC-1234');
    await page.getByLabel('Expires on').fill('2026-12-31');
    await Promise.all([page.waitForURL(/done=created/), page.getByRole('button', { name: 'Propose' }).click()]);
    const flash = await page.getByRole('status').innerText();
    if (!/someone else must approve it/.test(flash)) throw new Error(`flash: ${flash}`);
    const table = await page.locator('table').first().innerText();
    if (!/pending/.test(table)) throw new Error('the new exception is not pending');
  }));
  ok.push(await step('run the control now and watch the run', page, async () => {
    await page.goto(`${base}/dashboard/controls/background-checks`);
    // "Run now" answers once the run is recorded, with the run's own page.
    await Promise.all([page.waitForURL(/\/dashboard\/runs\/[0-9a-f-]{36}$/), page.getByRole('button', { name: 'Run now' }).click()]);
    const head = await page.locator('main p.dash-muted').first().innerText();
    if (!/^manual · /.test(head)) throw new Error(`not a manual run: ${head}`);
    const nav = page.getByRole('navigation', { name: 'Dashboard' });
    await Promise.all([page.waitForURL(/\/dashboard\/runs$/), nav.getByRole('link', { name: 'Runs', exact: true }).click()]);
    const rows = await page.locator('table tbody tr').allInnerTexts();
    if (!rows.some((r) => /manual/.test(r))) throw new Error(`no manual run listed: ${rows.slice(0, 3).join(' | ')}`);
  }));
  ok.push(await step('read who visited the trust page', page, async () => {
    const nav = page.getByRole('navigation', { name: 'Dashboard' });
    await Promise.all([page.waitForURL(/\/dashboard\/visitors$/), nav.getByRole('link', { name: 'Visitors', exact: true }).click()]);
    await page.getByRole('img', { name: /Page views over the last 90 days/ }).waitFor();
    const docs = await page.locator('#documents-heading ~ div table').innerText();
    if (!/SOC 2 Type II Report/.test(docs) || !/Penetration Test Letter/.test(docs)) throw new Error(`documents: ${docs}`);
  }));
  ok.push(await step('sign out', page, async () => {
    await Promise.all([page.waitForURL(/\/dashboard\/login/), page.getByRole('button', { name: 'Sign out' }).click()]);
    await page.goto(`${base}/dashboard`);
    if (!page.url().includes('/dashboard/login')) throw new Error('still signed in');
  }));

  await browser.close();
  const failed = ok.includes(false) || report.violations.length > 0;
  for (const s of report.steps) console.error(`${s.ok ? 'ok  ' : 'FAIL'} ${s.name}${s.ok ? '' : `: ${s.detail}`}`);
  for (const v of report.violations) console.error(`a11y ${v.id} (${v.impact}) on ${v.url}: ${v.help}`);
  done(failed ? 1 : 0);
}

const timer = setTimeout(() => done(2, 'the whole run took more than 150 s'), 150_000);
timer.unref();
main().catch((e) => done(2, e));
