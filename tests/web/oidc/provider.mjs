// A real OpenID provider (oidc-provider) for the web view's OIDC login tests; never shipped.
//
//   node provider.mjs <settings.json>
//
// settings.json: {"issuers": [{"path": "/organizations/v2.0", "entra_shared": true},
//                             {"path": "/google"}],
//                 "clients": [{"client_id", "client_secret"}],
//                 "accounts": {"<login_hint>": {"claims": {...}, "tamper": {...}}}}
// One provider per issuer path, on one free loopback port; it prints one JSON line,
// {"origin": "http://127.0.0.1:<port>"}, once ready. "entra_shared" behaves like Entra ID's
// organizations endpoint: its discovery names the issuer as .../{tenantid}/v2.0 and each
// ID token is issued by the user's own tenant, <origin>/<tid>/v2.0.
//
// No login form: the test names the account in the authorization request's login_hint and
// the interaction logs it in and grants the scopes at once. "tamper" re-signs the account's
// ID token with the provider's own key after changing "iss" ("{origin}" stands for the
// provider's scheme, host and port), "aud" or the times ("expired": true), so the daemon
// sees a validly signed token that lies.
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const settings = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { accounts } = settings;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key', alg: 'RS256', use: 'sig' };
const signingKey = createPrivateKey({ key: signingJwk, format: 'jwk' });

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

function base64url(value) {
  return Buffer.from(value).toString('base64url');
}

function claimsOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

function signed(claims) {
  const header = base64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: signingJwk.kid }));
  const content = `${header}.${base64url(JSON.stringify(claims))}`;
  return `${content}.${sign('sha256', Buffer.from(content), signingKey).toString('base64url')}`;
}

// What Entra ID's shared endpoint does, and what the account's "tamper" asks for.
function rewritten(idToken, entraShared) {
  const claims = claimsOf(idToken);
  const tamper = accounts[claims.sub]?.tamper ?? {};
  if (!entraShared && Object.keys(tamper).length === 0) return idToken;
  // The shared endpoint signs each token as the user's own tenant.
  if (entraShared) claims.iss = `${origin}/${claims.tid}/v2.0`;
  if (tamper.iss) claims.iss = tamper.iss.replace('{origin}', origin);
  if (tamper.aud) claims.aud = tamper.aud;
  if (tamper.expired) {
    const now = Math.floor(Date.now() / 1000);
    claims.iat = now - 3600;
    claims.exp = now - 1800;
  }
  return signed(claims);
}

function startProvider({ path, entra_shared: entraShared }) {
  const prefix = path.replace(/\/$/, '');
  const provider = new Provider(`${origin}${prefix}`, {
    clients: settings.clients.map((client) => ({
      ...client,
      // Any daemon on this machine: the redirect URI is checked below.
      redirect_uris: ['http://127.0.0.1/login/oidc/callback'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    })),
    jwks: { keys: [signingJwk] },
    claims: { openid: ['sub', 'tid', 'preferred_username', 'upn', 'email', 'email_verified', 'hd'] },
    // The claims of the scopes go into the ID token itself, as Entra ID and Google put them.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: async (ctx, interaction) => `${prefix}/interaction/${interaction.uid}` },
    async findAccount(ctx, sub) {
      const account = accounts[sub];
      if (!account) return undefined;
      return { accountId: sub, claims: async () => ({ sub, ...account.claims }) };
    },
    ttl: { IdToken: 600, AccessToken: 600, AuthorizationCode: 60, Interaction: 600, Session: 600, Grant: 600 },
  });
  // Tests run against http://127.0.0.1:<any port>/login/oidc/callback.
  provider.Client.prototype.redirectUriAllowed = (value) =>
    /^http:\/\/127\.0\.0\.1:\d+\/login\/oidc\/callback$/.test(value);

  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route === 'discovery' && entraShared) {
      // Entra's organizations/common endpoints name a template, not an issuer.
      ctx.body = { ...ctx.body, issuer: `${origin}/{tenantid}/v2.0` };
    }
    if (ctx.oidc?.route === 'token' && ctx.body?.id_token) {
      ctx.body = { ...ctx.body, id_token: rewritten(ctx.body.id_token, entraShared) };
    }
  });

  async function logInFromHint(req, res) {
    const details = await provider.interactionDetails(req, res);
    const accountId = details.params.login_hint;
    if (!accounts[accountId]) {
      await provider.interactionFinished(req, res, { error: 'access_denied' });
      return;
    }
    const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, {
      login: { accountId }, consent: { grantId },
    }, { mergeWithLastSubmission: false });
  }

  const callback = provider.callback();
  return { prefix, handle(req, res) {
    if (req.url.startsWith(`${prefix}/interaction/`)) {
      logInFromHint(req, res).catch((error) => {
        res.statusCode = 500;
        res.end(String(error));
      });
      return;
    }
    // The provider answers under the issuer's path, as Entra ID does under /<tenant>/v2.0.
    req.originalUrl = req.url;
    req.url = req.url.slice(prefix.length) || '/';
    callback(req, res);
  } };
}

const providers = settings.issuers.map(startProvider);
server.on('request', (req, res) => {
  const provider = providers.find(({ prefix }) => req.url.startsWith(`${prefix}/`));
  if (!provider) {
    res.statusCode = 404;
    res.end();
    return;
  }
  provider.handle(req, res);
});

process.stdout.write(`${JSON.stringify({ origin })}\n`);
