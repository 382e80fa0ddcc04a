// A real OpenID provider (the certified `oidc-provider` package) on 127.0.0.1, for Trellis's
// single sign-on tests. Prints `{"issuer": ..., "port": ...}` on stdout once listening; exits
// when its standard input closes (the test that started it is gone).
//
// Accounts (the login form's `login` field picks one; `amr` and `acr` fields say how the user
// authenticated):
//   alice  alice@example.test  groups [trellis-admins, staff]     (admin)
//   sam    sam@example.test    groups [trellis-security, staff]   (security)
//   vic    vic@example.test    groups [staff]                     (viewer)
//   nora   nora@example.test   groups [marketing]                 (no role)
//   eve    eve@elsewhere.test  groups [trellis-admins]            (domain not allowed)
//   mallory alice@example.test groups [trellis-admins]            (alice's address again)
//
// Test-only controls (never part of a real provider):
//   POST /__test/client  {"redirect_uri": "..."}  registers Trellis's callback URL
//   POST /__test/mode    {"mode": null|"aud"|"exp"|"sig"}  rewrites the next ID tokens from
//        /token: another audience, an expiry an hour ago (both re-signed with the provider's
//        key), or signed with a foreign key under the provider's key id
//   POST /__test/rotate  replaces the signing key (new key id)
//   GET  /__test/stats   {"jwks": <JWKS requests so far>}

import * as http from 'node:http';
import * as crypto from 'node:crypto';
import Provider from 'oidc-provider';
import * as jose from 'jose';

export const CLIENT_ID = 'trellis';
export const CLIENT_SECRET = 'trellis-test-secret';

const ACCOUNTS = {
  alice: { email: 'alice@example.test', name: 'Alice Admin', groups: ['trellis-admins', 'staff'] },
  sam: { email: 'sam@example.test', name: 'Sam Security', groups: ['trellis-security', 'staff'] },
  vic: { email: 'vic@example.test', name: 'Vic Viewer', groups: ['staff'] },
  nora: { email: 'nora@example.test', name: 'Nora NoRole', groups: ['marketing'] },
  eve: { email: 'eve@elsewhere.test', name: 'Eve Elsewhere', groups: ['trellis-admins'] },
  // Another account claiming alice's address.
  mallory: { email: 'alice@example.test', name: 'Mallory', groups: ['trellis-admins'] },
};

async function newKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };
}

const state = {
  redirectUris: ['http://127.0.0.1/unset'],
  mode: null,
  key: await newKey(),
  jwksRequests: 0,
  provider: null,
  handler: null,
};

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function rewriteIdToken(idToken) {
  const header = jose.decodeProtectedHeader(idToken);
  const claims = jose.decodeJwt(idToken);
  let signingKey = state.key;
  const now = Math.floor(Date.now() / 1000);
  if (state.mode === 'aud') claims.aud = 'someone-else';
  if (state.mode === 'exp') {
    claims.iat = now - 7200;
    claims.exp = now - 3600;
  }
  if (state.mode === 'sig') signingKey = { ...(await newKey()), kid: state.key.kid };
  const key = await jose.importJWK(signingKey, 'RS256');
  return new jose.SignJWT(claims)
    .setProtectedHeader({ ...header, alg: 'RS256', kid: state.key.kid })
    .sign(key);
}

function build(issuer) {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: state.redirectUris,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [state.key] },
    cookies: { keys: ['trellis-test-cookie-key'] },
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: {
      // How the user authenticated, in every ID token (as Okta and Entra ID send amr).
      openid: ['sub', 'amr', 'acr'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    acrValues: ['urn:trellis:test:silver', 'urn:trellis:test:gold'],
    // Real providers (Okta, Entra ID, Keycloak) can put these claims in the ID token itself.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    // First-party client: no consent screen.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid email profile groups');
      grant.addOIDCClaims(['email', 'email_verified', 'name', 'groups']);
      await grant.save();
      return grant;
    },
    async findAccount(ctx, id) {
      const account = ACCOUNTS[id];
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            email: account.email,
            email_verified: true,
            name: account.name,
            groups: account.groups,
          };
        },
      };
    },
  });
  provider.use(async (ctx, next) => {
    if (ctx.path === '/jwks') state.jwksRequests += 1;
    await next();
    if (ctx.path === '/token' && state.mode && ctx.body && ctx.body.id_token) {
      ctx.body = { ...ctx.body, id_token: await rewriteIdToken(ctx.body.id_token) };
    }
  });
  state.handler = provider.callback();
  return provider;
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

async function interaction(req, res, uid, submit) {
  const provider = state.provider;
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (!submit) {
    send(res, 200, 'text/html; charset=utf-8', `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test identity provider</title></head>
<body><main><h1>Test identity provider</h1>
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Account <input name="login" autocomplete="username"></label>
<input type="hidden" name="amr" value="pwd">
<button type="submit">Sign in</button>
</form></main></body></html>`);
    return;
  }
  const form = new URLSearchParams(await readBody(req));
  const accountId = form.get('login') || '';
  if (!ACCOUNTS[accountId]) {
    send(res, 400, 'text/plain', 'unknown account');
    return;
  }
  const amr = (form.get('amr') || 'pwd').split(',').filter(Boolean);
  const acr = form.get('acr') || undefined;
  await provider.interactionFinished(req, res, {
    login: { accountId, amr, ...(acr ? { acr } : {}) },
  }, { mergeWithLastSubmission: false });
}

async function control(req, res, path) {
  if (path === '/__test/stats' && req.method === 'GET') {
    send(res, 200, 'application/json', JSON.stringify({ jwks: state.jwksRequests }));
    return;
  }
  if (req.method !== 'POST') {
    send(res, 405, 'text/plain', 'POST');
    return;
  }
  const body = JSON.parse((await readBody(req)) || '{}');
  if (path === '/__test/client') {
    state.redirectUris = [body.redirect_uri];
    state.provider = build(state.issuer);
  } else if (path === '/__test/mode') {
    state.mode = body.mode ?? null;
  } else if (path === '/__test/rotate') {
    state.key = await newKey();
    state.provider = build(state.issuer);
  } else {
    send(res, 404, 'text/plain', 'unknown control');
    return;
  }
  send(res, 200, 'application/json', JSON.stringify({ ok: true, kid: state.key.kid }));
}

const server = http.createServer(async (req, res) => {
  try {
    const path = new URL(req.url, 'http://x').pathname;
    const m = path.match(/^\/interaction\/([^/]+)(\/login)?$/);
    if (path.startsWith('/__test/')) {
      await control(req, res, path);
    } else if (m) {
      await interaction(req, res, m[1], Boolean(m[2]) && req.method === 'POST');
    } else {
      state.handler(req, res);
    }
  } catch (err) {
    process.stderr.write(`provider: ${err.stack || err}\n`);
    if (!res.headersSent) send(res, 500, 'text/plain', 'error');
  }
});

server.on('clientError', (err, socket) => {
  process.stderr.write(`provider: client error ${err.code}: ${err.message} ${err.rawPacket ? err.rawPacket.toString() : ''}\n`);
  socket.destroy();
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  state.issuer = `http://127.0.0.1:${port}`;
  state.provider = build(state.issuer);
  process.stdout.write(`${JSON.stringify({ issuer: state.issuer, port, client_id: CLIENT_ID, client_secret: CLIENT_SECRET })}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
