// How the browser tests start Debian's Chromium (tests/a11y/axe.mjs, tests/a11y/dashboard.mjs,
// tests/oidc/browser.mjs): where it is, and the flags this machine needs.

export const CHROMIUM_PATH = process.env.TRELLIS_CHROMIUM || '/usr/bin/chromium';

// As root Chromium refuses to start without --no-sandbox, and the background-networking flags
// keep it from calling out to Google's hosts on a closed network.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Belt and braces for "no test touches the internet": the browser itself resolves and
  // connects to nothing but loopback (DNS prefetch, preconnect hints): every other name
  // resolves to nothing and every other connection goes to a dead local proxy.
  '--host-resolver-rules=' +
    'MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE *.localhost, EXCLUDE 127.*, EXCLUDE ::1',
  '--proxy-server=http://127.0.0.1:9',
  '--proxy-bypass-list=localhost;*.localhost;127.0.0.0/8;[::1]',
];

export const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

// axe-core (its `axe.min.js` at `axePath`) on the page: the WCAG 2.1 A/AA violations, each
// with the page's URL.
export async function axeViolations(page, axePath) {
  await page.addScriptTag({ path: axePath });
  const result = await page.evaluate(async (tags) => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target, html: n.html, failureSummary: n.failureSummary })),
    }));
  }, WCAG_TAGS);
  return result.map((v) => ({ url: page.url(), ...v }));
}
