// The fapi bank driven by panva's openid-client 6 (a certified FAPI
// relying-party library) with jose, as an outside TPP would drive it, under
// each FAPI profile the bank serves. The bank is the real `bank` program,
// started here on ports of its own; the customer's pages are driven over
// HTTP. Written from the libraries' documentation.
//
// FAPI_BANK_BIN: the bank program (default: the workspace's debug build).
// FAPI_INTEROP_PROFILES: comma-separated profiles (default: all three).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import * as client from 'openid-client';
import * as jose from 'jose';
import { Agent, fetch as undiciFetch } from 'undici';

const here = path.dirname(fileURLToPath(import.meta.url));
const BANK = process.env.FAPI_BANK_BIN ?? path.resolve(here, '../../../target/debug/bank');
const PROFILES = (process.env.FAPI_INTEROP_PROFILES ??
  'fapi2-security,fapi2-message-signing,fapi1-advanced').split(',');
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** `bank init`, onboarding of tpp-a and tpp-b, `bank serve` under `profile`. */
async function startBank(profile) {
  const dir = mkdtempSync(path.join(tmpdir(), `fapi-interop-${profile}-`));
  const config = `${dir}/bank.json`;
  execFileSync(BANK, ['init', '--data-dir', dir, '--tpp', 'tpp-a', '--tpp', 'tpp-b'], { stdio: 'ignore' });
  for (const tpp of ['tpp-a', 'tpp-b']) {
    execFileSync(BANK, ['tpp', 'onboard', '--config', config,
      '--software-statement', `${dir}/${tpp}.ssa.jwt`, '--certificate', `${dir}/${tpp}.pem`], { stdio: 'ignore' });
  }
  const child = spawn(BANK, ['serve', '--config', config, '--profile', profile,
    '--api-listen', '127.0.0.1:0', '--customer-listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0',
    '--rate-limit', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const lines = createInterface({ input: child.stdout });
  const discovery = await new Promise((resolve, reject) => {
    let url;
    child.once('exit', (code) => reject(new Error(`bank serve exited with ${code}`)));
    lines.on('line', (line) => {
      const m = line.trim().match(/^discovery: (\S+)/);
      if (m) url = m[1];
      if (line.includes('dashboard:')) resolve(url);
    });
  });
  return { dir, child, discovery, issuer: new URL(discovery.replace('/.well-known/openid-configuration', '')) };
}

function stopBank(bank) {
  bank.child.kill('SIGTERM');
  rmSync(bank.dir, { recursive: true, force: true });
}

/** A fetch over mTLS with `tpp`'s transport certificate, trusting the scheme CA. */
function mtlsFetch(bank, tpp) {
  const agent = new Agent({
    connect: {
      ca: readFileSync(`${bank.dir}/scheme-ca.pem`),
      cert: readFileSync(`${bank.dir}/${tpp}.pem`),
      key: readFileSync(`${bank.dir}/${tpp}.key.pem`),
    },
  });
  return (url, options) => undiciFetch(url, { ...options, dispatcher: agent });
}

/** `tpp`'s signing key and its kid, as openid-client takes a private key. */
async function signingKey(bank, tpp) {
  const pem = readFileSync(`${bank.dir}/${tpp}-signing.key.pem`, 'utf8');
  return { key: await jose.importPKCS8(pem, 'PS256'), kid: `${tpp}-signing` };
}

/** openid-client's Configuration for `tpp`: discovery, private_key_jwt,
 * certificate-bound tokens over the mTLS aliases, JARM. */
async function configure(bank, tpp, assertionOptions) {
  const key = await signingKey(bank, tpp);
  const fetch = mtlsFetch(bank, tpp);
  const config = await client.discovery(
    bank.issuer,
    tpp,
    { use_mtls_endpoint_aliases: true, tls_client_certificate_bound_access_tokens: true },
    client.PrivateKeyJwt(key, assertionOptions),
    { [client.customFetch]: fetch },
  );
  client.useJwtResponseMode(config);
  return { config, key, fetch, tpp };
}

/** A customer's browser: trusts the scheme CA, no client certificate, no redirects followed. */
function browser(bank) {
  const agent = new Agent({ connect: { ca: readFileSync(`${bank.dir}/scheme-ca.pem`) } });
  return (url, options = {}) => undiciFetch(url, { ...options, redirect: 'manual', dispatcher: agent });
}

function hidden(html, name) {
  const m = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
  return m ? m[1].replaceAll('&amp;', '&') : '';
}

function cookie(response, name) {
  for (const c of response.headers.getSetCookie()) {
    const [kv] = c.split(';');
    const [k, v] = kv.split('=');
    if (k === name && v) return kv;
  }
  return undefined;
}

/** alice logs in at the bank and approves `accounts`; the URL the bank
 * sends her browser back to (the TPP's redirect URI with the JARM response). */
async function customerApproves(bank, authorizationUrl, accounts = ['acc-1']) {
  const get = browser(bank);
  const login = await get(authorizationUrl);
  assert.equal(login.status, 200, 'the login page');
  const loginPage = await login.text();
  const loginCookie = cookie(login, '__Host-bank_login');
  const base = authorizationUrl.toString().split('/authorize')[0];
  const form = new URLSearchParams({
    csrf: hidden(loginPage, 'csrf'), username: 'alice', password: 'alice-password',
    client_id: hidden(loginPage, 'client_id'), request_uri: hidden(loginPage, 'request_uri'),
  });
  const loggedIn = await get(`${base}/login`, {
    method: 'POST', body: form.toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(loginCookie ? { cookie: loginCookie } : {}) },
  });
  assert.equal(loggedIn.status, 303, 'the login');
  const session = cookie(loggedIn, 'bank_session');
  const consent = await get(`${base}${loggedIn.headers.get('location')}`, { headers: { cookie: session } });
  assert.equal(consent.status, 200, 'the consent page');
  const consentPage = await consent.text();
  const decision = new URLSearchParams();
  for (const name of ['csrf', 'client_id', 'request_uri']) decision.append(name, hidden(consentPage, name));
  for (const a of accounts) decision.append(`account-${a}`, 'on');
  decision.append('decision', 'approve');
  const decided = await get(`${base}/authorize/decision`, {
    method: 'POST', body: decision.toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: session },
  });
  assert.equal(decided.status, 303, 'the decision');
  return new URL(decided.headers.get('location'));
}

/** PAR with a signed request object (JAR), PKCE and a nonce. */
async function pushAuthorization(tpp) {
  const checks = {
    pkceCodeVerifier: client.randomPKCECodeVerifier(),
    expectedState: client.randomState(),
    expectedNonce: client.randomNonce(),
  };
  const params = {
    redirect_uri: `https://${tpp.tpp}.example/cb`,
    scope: 'openid accounts',
    code_challenge: await client.calculatePKCECodeChallenge(checks.pkceCodeVerifier),
    code_challenge_method: 'S256',
    state: checks.expectedState,
    nonce: checks.expectedNonce,
  };
  const { searchParams } = await client.buildAuthorizationUrlWithJAR(tpp.config, params, tpp.key);
  const url = await client.buildAuthorizationUrlWithPAR(tpp.config, searchParams);
  return { url, checks };
}

/** A client assertion of `tpp`'s, with `claims` over the usual ones. */
async function assertion(tpp, bank, claims = {}) {
  const now = Math.floor(Date.now() / 1000);
  return new jose.SignJWT({ jti: crypto.randomUUID(), ...claims })
    .setProtectedHeader({ alg: 'PS256', kid: tpp.key.kid })
    .setIssuer(tpp.tpp).setSubject(tpp.tpp).setAudience(bank.issuer.href.replace(/\/$/, ''))
    .setIssuedAt(now).setExpirationTime(now + 60)
    .sign(tpp.key.key);
}

async function postForm(tpp, url, params) {
  const response = await tpp.fetch(url, {
    method: 'POST', body: new URLSearchParams(params).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  return { status: response.status, body: await response.json().catch(() => null) };
}

function resource(tpp, path) {
  const base = tpp.config.serverMetadata().openbanking?.aisp;
  assert.ok(base, 'discovery advertises openbanking.aisp');
  return new URL(`${base}${path}`);
}

/** A resource call refused with 401 and a `WWW-Authenticate` challenge
 * saying `invalid_token` (openid-client throws on the challenge). */
async function refusedAtResource(promise) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.code, 'OAUTH_WWW_AUTHENTICATE_CHALLENGE', e.message);
    assert.equal(e.response?.status, 401);
    assert.ok(e.cause.some((c) => c.parameters?.error === 'invalid_token'), JSON.stringify(e.cause));
    return true;
  });
}

async function rejects(promise, error) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.error ?? e.cause?.error, error, `${e.message} ${JSON.stringify(e.cause ?? {})}`);
    return true;
  });
}

for (const profile of PROFILES) {
  describe(`openid-client against the bank (${profile})`, () => {
    let bank;
    let a;
    let b;
    before(async () => {
      bank = await startBank(profile);
      a = await configure(bank, 'tpp-a');
      b = await configure(bank, 'tpp-b');
    });
    after(() => stopBank(bank));

    test('discovery says what the flow needs', () => {
      const m = a.config.serverMetadata();
      assert.ok(m.pushed_authorization_request_endpoint);
      assert.ok(m.response_modes_supported.includes('jwt'));
      assert.ok(m.token_endpoint_auth_methods_supported.includes('private_key_jwt'));
      assert.equal(m.tls_client_certificate_bound_access_tokens, true);
    });

    test('the whole flow: PAR + JAR, the customer, JARM, the code with PKCE over mTLS, introspection, a resource, userinfo, refresh, revocation', async () => {
      const { url, checks } = await pushAuthorization(a);
      assert.equal(url.searchParams.get('client_id'), 'tpp-a');
      assert.ok(url.searchParams.get('request_uri'));
      const back = await customerApproves(bank, url);
      assert.ok(back.searchParams.get('response'), 'a JARM response');
      const tokens = await client.authorizationCodeGrant(a.config, back, checks);
      assert.equal(tokens.token_type.toLowerCase(), 'bearer');
      assert.equal(tokens.claims().sub, 'alice');

      const introspected = await client.tokenIntrospection(a.config, tokens.access_token);
      assert.equal(introspected.active, true);
      assert.equal(introspected.client_id, 'tpp-a');
      assert.ok(introspected.cnf?.['x5t#S256'], 'the token is bound to the certificate');

      const accounts = await client.fetchProtectedResource(a.config, tokens.access_token, resource(a, '/accounts'), 'GET');
      assert.equal(accounts.status, 200);
      const body = await accounts.json();
      assert.ok(body.Data.Account.some((x) => x.AccountId === 'acc-1'), JSON.stringify(body));

      const userinfo = await client.fetchUserInfo(a.config, tokens.access_token, 'alice');
      assert.equal(userinfo.sub, 'alice');

      const refreshed = await client.refreshTokenGrant(a.config, tokens.refresh_token);
      const again = await client.fetchProtectedResource(a.config, refreshed.access_token, resource(a, '/accounts'), 'GET');
      assert.equal(again.status, 200);

      await client.tokenRevocation(a.config, refreshed.access_token);
      await refusedAtResource(client.fetchProtectedResource(a.config, refreshed.access_token, resource(a, '/accounts'), 'GET'));
      const gone = await client.tokenIntrospection(a.config, refreshed.access_token);
      assert.equal(gone.active, false);

      // tpp-a's token over tpp-b's certificate: refused
      await refusedAtResource(client.fetchProtectedResource(b.config, tokens.access_token, resource(b, '/accounts'), 'GET'));
      const own = await client.fetchProtectedResource(a.config, tokens.access_token, resource(a, '/accounts'), 'GET');
      assert.equal(own.status, 200, 'the twin over its own certificate');

      // the same code again: refused, and the token issued from it revoked
      // (RFC 6749 §4.1.2)
      await rejects(client.authorizationCodeGrant(a.config, back, checks), 'invalid_grant');
      await refusedAtResource(client.fetchProtectedResource(a.config, tokens.access_token, resource(a, '/accounts'), 'GET'));
    });

    test('a replayed client assertion is refused', async () => {
      const token = a.config.serverMetadata().mtls_endpoint_aliases.token_endpoint;
      const form = {
        grant_type: 'client_credentials', scope: 'accounts', client_id: 'tpp-a',
        client_assertion_type: JWT_BEARER, client_assertion: await assertion(a, bank),
      };
      assert.equal((await postForm(a, token, form)).status, 200);
      const replay = await postForm(a, token, form);
      assert.equal(replay.status, 401);
      assert.equal(replay.body.error, 'invalid_client');
    });

    test('a client assertion for another audience is refused', async () => {
      const wrong = await configure(bank, 'tpp-a', {
        [client.modifyAssertion]: (_header, payload) => { payload.aud = 'https://another-bank.example'; },
      });
      await rejects(client.clientCredentialsGrant(wrong.config, { scope: 'accounts' }), 'invalid_client');
      const right = await client.clientCredentialsGrant(a.config, { scope: 'accounts' });
      assert.ok(right.access_token, 'the twin with the right audience');
    });

    test('request objects signed with none, HS256 or RS256 are refused at PAR', async () => {
      const par = a.config.serverMetadata().mtls_endpoint_aliases.pushed_authorization_request_endpoint;
      const now = Math.floor(Date.now() / 1000);
      const claims = {
        iss: 'tpp-a', aud: bank.issuer.href.replace(/\/$/, ''), client_id: 'tpp-a',
        response_type: 'code', response_mode: 'jwt', redirect_uri: 'https://tpp-a.example/cb',
        scope: 'openid accounts', state: client.randomState(), nonce: client.randomNonce(),
        code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
        code_challenge_method: 'S256', iat: now, nbf: now, exp: now + 300, jti: crypto.randomUUID(),
      };
      const unsigned = `${jose.base64url.encode(JSON.stringify({ alg: 'none', typ: 'oauth-authz-req+jwt' }))}.${jose.base64url.encode(JSON.stringify(claims))}.`;
      const hs256 = await new jose.SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'oauth-authz-req+jwt' })
        .sign(new TextEncoder().encode('a shared secret of thirty-two bytes!'));
      const { privateKey } = await jose.generateKeyPair('RS256', { modulusLength: 2048 });
      const rs256 = await new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: a.key.kid, typ: 'oauth-authz-req+jwt' }).sign(privateKey);
      for (const [name, request] of [['none', unsigned], ['HS256', hs256], ['RS256', rs256]]) {
        const got = await postForm(a, par, {
          client_id: 'tpp-a', client_assertion_type: JWT_BEARER,
          client_assertion: await assertion(a, bank, { aud: par }), request,
        });
        assert.equal(got.status, 400, `${name}: ${JSON.stringify(got.body)}`);
        assert.equal(got.body.error, 'invalid_request_object', name);
      }
      const ps256 = await new jose.SignJWT(claims).setProtectedHeader({ alg: 'PS256', kid: a.key.kid, typ: 'oauth-authz-req+jwt' }).sign(a.key.key);
      const twin = await postForm(a, par, {
        client_id: 'tpp-a', client_assertion_type: JWT_BEARER,
        client_assertion: await assertion(a, bank, { aud: par }), request: ps256,
      });
      assert.equal(twin.status, 201, `the PS256 twin: ${JSON.stringify(twin.body)}`);
    });
  });
}
