#!/usr/bin/env node
// Accessibility check for Trellis pages: axe-core (WCAG 2.1 A and AA rules) in Debian's headless
// Chromium, driven by playwright-core, at a desktop and a mobile width.
//
// Contract (what tests/a11y.rs relies on):
//   node tests/a11y/axe.mjs [--screenshot-dir DIR] URL [URL...]
//   - Each URL must be http(s) on a loopback host (127.0.0.0/8, localhost, [::1]). Any request a
//     page makes to another host is blocked (no test may touch the internet) and listed in
//     that result's "blockedRequests".
//   - Browser: /usr/bin/chromium, or the path in env TRELLIS_CHROMIUM. playwright-core never
//     downloads a browser. Run `npm ci --prefix tests/a11y` first (scripts/test does).
//   - Each URL, in the order given, is loaded (waitUntil 'load', 30 s) at each viewport:
//       desktop 1280x900, mobile 375x812 (isMobile, hasTouch), then desktop in the dark colour
//       scheme ("desktop-dark"); "results" keeps that order.
//     CSP is bypassed so axe can be injected; the page's own scripts still run.
//   - stdout: exactly one JSON document, printed in every case where the runner gets as far as
//     parsing its arguments (even on exit 2):
//       {"results": [{"url", "viewport": "desktop"|"mobile"|"desktop-dark",
//                     "violations": [{"id", "impact", "help", "helpUrl",
//                                     "nodes": [{"target", "html", "failureSummary"}]}],
//                     "rulesRun", "passes", "incomplete", "inapplicable", "blockedRequests",
//                     "error"?}],
//        "axeVersion", "browserVersion", "error"?: "..."}
//     "rulesRun" counts the rules that found something to check (passes + violations +
//     incomplete); "passes"/"inapplicable" are rule counts, "incomplete" lists the ids of rules
//     axe could not decide (need a human look; they do not fail the run). "target" is axe's
//     selector array (nested arrays for iframes / shadow DOM). "error" appears only when
//     something went wrong for that result (or, top-level, for the whole run).
//   - stderr: a short human summary (one line per URL and viewport, then a total), plus errors.
//   - Exit code: 0 no violations anywhere; 1 at least one violation (and no harness error);
//     2 harness error, which wins over violations: bad arguments, node_modules missing, browser
//     failed to start or crashed, a page that is not HTTP 200, a timeout (30 s per page load or
//     step, 120 s for the whole run), a screenshot that could not be written, or a page that
//     cannot be a real check: no <main>, no <h1>, or axe found no rule to run (so an empty or
//     error page never passes silently).
//   - --screenshot-dir DIR: also saves a full-page PNG per URL and viewport, named
//     NN-<host-and-path>-<viewport>.png (NN is the URL's position, from 01). For humans only.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './chromium.mjs';

const require = createRequire(import.meta.url);

const PAGE_TIMEOUT_MS = 30_000;
const RUN_TIMEOUT_MS = 120_000;
const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
const VIEWPORTS = [
  { name: 'desktop', options: { viewport: { width: 1280, height: 900 } } },
  {
    name: 'mobile',
    options: { viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true },
  },
  // The pages follow the visitor's colour scheme: contrast is checked in dark mode too.
  {
    name: 'desktop-dark',
    options: { viewport: { width: 1280, height: 900 }, colorScheme: 'dark' },
  },
];

const report = { results: [] };
let browser = null;
let finished = false;
let inFlight = null; // the result being checked, if any

// Exits once, printing the JSON document first so a caller always has something to parse.
function finish(code, topLevelError) {
  if (finished) return;
  finished = true;
  if (topLevelError) {
    report.error = topLevelError;
    console.error(`a11y: error: ${topLevelError}`);
  }
  process.stdout.write(JSON.stringify(report, null, 2) + '\n', () => process.exit(code));
}

// Anything unexpected is the harness's fault, never a page's: exit 2, not node's default 1
// (which would read as "violations found").
process.on('uncaughtException', (e) => finish(2, `unexpected: ${e && e.stack ? e.stack : e}`));
process.on('unhandledRejection', (e) => finish(2, `unexpected: ${e && e.stack ? e.stack : e}`));

function usage() {
  return 'usage: node tests/a11y/axe.mjs [--screenshot-dir DIR] URL [URL...]';
}

function parseArgs(argv) {
  const urls = [];
  let screenshotDir = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--screenshot-dir') {
      if (i + 1 >= argv.length) throw new Error(`--screenshot-dir needs a directory\n${usage()}`);
      screenshotDir = argv[++i];
    } else if (a.startsWith('--screenshot-dir=')) {
      screenshotDir = a.slice('--screenshot-dir='.length);
    } else if (a === '-h' || a === '--help') {
      throw new Error(usage());
    } else if (a.startsWith('-')) {
      throw new Error(`unknown option ${a}\n${usage()}`);
    } else {
      urls.push(a);
    }
  }
  if (urls.length === 0) throw new Error(`no URL given\n${usage()}`);
  for (const u of urls) {
    let parsed;
    try {
      parsed = new URL(u);
    } catch {
      throw new Error(`not a URL: ${u}`);
    }
    if (!['http:', 'https:'].includes(parsed.protocol) || !isLoopback(parsed.hostname)) {
      throw new Error(`only http(s) pages on a loopback host may be checked, not ${u}`);
    }
  }
  return { urls, screenshotDir };
}

function isLoopback(hostname) {
  const h = hostname.toLowerCase();
  return (
    h === 'localhost' ||
    h.endsWith('.localhost') ||
    h === '[::1]' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
  );
}

// A request may leave the page only for a loopback host; data:/blob: URLs never reach routing.
function isAllowedRequest(url) {
  try {
    const u = new URL(url);
    if (u.protocol === 'data:' || u.protocol === 'blob:' || u.protocol === 'about:') return true;
    return ['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol) && isLoopback(u.hostname);
  } catch {
    return false;
  }
}

function screenshotName(index, url, viewport) {
  const u = new URL(url);
  const slug = `${u.host}${u.pathname}${u.search}`
    .replace(/[^A-Za-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 80);
  return `${String(index + 1).padStart(2, '0')}-${slug || 'page'}-${viewport}.png`;
}

// Rejects after ms with a clear message: page.evaluate has no timeout of its own.
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Runs in the page: axe plus the sanity facts, trimmed to what the report needs.
async function runAxeInPage(tags) {
  const hasMain = document.querySelector('main') !== null;
  const hasH1 = document.querySelector('h1') !== null;
  if (typeof window.axe === 'undefined') return { injected: false, hasMain, hasH1 };
  const r = await window.axe.run(document, {
    runOnly: { type: 'tag', values: tags },
    resultTypes: ['violations'],
  });
  return {
    injected: true,
    hasMain,
    hasH1,
    axeVersion: window.axe.version,
    violations: r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({
        target: n.target,
        html: n.html,
        failureSummary: n.failureSummary,
      })),
    })),
    passes: r.passes.length,
    incomplete: r.incomplete.map((i) => i.id),
    inapplicable: r.inapplicable.length,
  };
}

async function checkPage(context, url, viewport, index, screenshotDir, axePath) {
  const result = {
    url,
    viewport,
    violations: [],
    rulesRun: 0,
    passes: 0,
    incomplete: [],
    inapplicable: 0,
    blockedRequests: [],
  };
  report.results.push(result);
  inFlight = result;
  const page = await context.newPage();
  await page.route('**/*', (route) => {
    const reqUrl = route.request().url();
    if (isAllowedRequest(reqUrl)) return route.continue();
    if (!result.blockedRequests.includes(reqUrl)) result.blockedRequests.push(reqUrl);
    return route.abort('blockedbyclient');
  });
  try {
    const response = await page.goto(url, { waitUntil: 'load', timeout: PAGE_TIMEOUT_MS });
    if (!response) throw new Error('no HTTP response for the page');
    if (response.status() !== 200) throw new Error(`HTTP ${response.status()}, not 200`);

    await page.addScriptTag({ path: axePath });
    const axeRun = page.evaluate(runAxeInPage, WCAG_TAGS);
    const r = await withTimeout(axeRun, PAGE_TIMEOUT_MS, 'axe.run');
    if (!r.injected) throw new Error('axe-core did not load into the page');
    result.violations = r.violations;
    result.passes = r.passes;
    result.incomplete = r.incomplete;
    result.inapplicable = r.inapplicable;
    result.rulesRun = r.passes + r.violations.length + r.incomplete.length;
    report.axeVersion = r.axeVersion;

    if (screenshotDir) {
      await page.screenshot({
        path: path.join(screenshotDir, screenshotName(index, url, viewport)),
        fullPage: true,
        timeout: PAGE_TIMEOUT_MS,
      });
    }

    const missing = [];
    if (!r.hasMain) missing.push('no <main>');
    if (!r.hasH1) missing.push('no <h1>');
    if (result.rulesRun === 0) missing.push('axe found no rule to run');
    if (missing.length) {
      throw new Error(`not a real check: ${missing.join(', ')} (an empty or error page?)`);
    }
  } catch (e) {
    result.error = String(e && e.message ? e.message : e).split('\n')[0];
  } finally {
    inFlight = null;
    await page.close().catch(() => {});
  }
  return result;
}

function summarize() {
  let violations = 0;
  let errors = 0;
  for (const r of report.results) {
    const counts = r.violations.map((v) => `${v.id} [${v.impact}] x${v.nodes.length}`);
    let line = `a11y: ${r.viewport.padEnd(7)} ${r.url}: `;
    if (r.error) {
      errors++;
      line += `ERROR ${r.error}`;
    } else if (counts.length) {
      line += `${counts.length} violation(s): ${counts.join(', ')}`;
    } else {
      line += `no violations (${r.rulesRun} rules checked)`;
    }
    const blocked = r.blockedRequests.length;
    if (blocked) line += `; blocked ${blocked} off-host request(s)`;
    console.error(line);
    violations += r.violations.length;
  }
  console.error(
    `a11y: ${report.results.length} page check(s), ${violations} violation(s), ${errors} error(s)`,
  );
  return { violations, errors };
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    return finish(2, e.message);
  }
  const runTimer = setTimeout(() => {
    if (inFlight && !inFlight.error) inFlight.error = 'interrupted by the whole-run timeout';
    summarize();
    // The browser is killed by playwright-core's exit handler when the process exits.
    finish(2, `whole run timed out after ${RUN_TIMEOUT_MS / 1000} s`);
  }, RUN_TIMEOUT_MS);

  let chromium, axePath;
  try {
    ({ chromium } = await import('playwright-core'));
    axePath = require.resolve('axe-core/axe.min.js');
  } catch (e) {
    clearTimeout(runTimer);
    const hint = 'run: npm ci --prefix tests/a11y';
    return finish(2, `cannot load axe-core/playwright-core (${hint}): ${e.message}`);
  }
  if (args.screenshotDir) {
    try {
      // Async and bounded: Node's recursive mkdir can spin forever on some paths (under /proc).
      await withTimeout(mkdir(args.screenshotDir, { recursive: true }), 5_000, 'mkdir');
    } catch (e) {
      clearTimeout(runTimer);
      return finish(2, `cannot create screenshot directory: ${e.message}`);
    }
  }

  const executablePath = CHROMIUM_PATH;
  if (!existsSync(executablePath)) {
    clearTimeout(runTimer);
    const hint = "install Debian's chromium, or set TRELLIS_CHROMIUM";
    return finish(2, `no browser at ${executablePath} (${hint})`);
  }
  try {
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: PAGE_TIMEOUT_MS,
    });
  } catch (e) {
    clearTimeout(runTimer);
    console.error(String(e.message)); // with the browser's own log, when it printed one
    return finish(2, `browser failed to start: ${String(e.message).split('\n')[0]}`);
  }
  report.browserVersion = browser.version();
  let crashed = false;
  browser.on('disconnected', () => {
    crashed = true;
  });

  try {
    const contexts = [];
    for (const vp of VIEWPORTS) {
      const context = await browser.newContext({ ...vp.options, bypassCSP: true });
      context.setDefaultTimeout(PAGE_TIMEOUT_MS);
      context.setDefaultNavigationTimeout(PAGE_TIMEOUT_MS);
      contexts.push([vp.name, context]);
    }
    for (const [i, url] of args.urls.entries()) {
      for (const [name, context] of contexts) {
        if (finished) return;
        await checkPage(context, url, name, i, args.screenshotDir, axePath);
        if (crashed) throw new Error('the browser crashed or disconnected');
      }
    }
  } catch (e) {
    clearTimeout(runTimer);
    summarize();
    return finish(2, String(e && e.message ? e.message : e).split('\n')[0]);
  }
  await withTimeout(browser.close(), 10_000, 'closing the browser').catch(() => {});
  clearTimeout(runTimer);
  if (finished) return;
  const { violations, errors } = summarize();
  finish(errors ? 2 : violations ? 1 : 0);
}

main();
