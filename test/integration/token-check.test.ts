/**
 * checkToken (src/auth/verify.ts) against the local proxy's routes API, and the API itself:
 * 200 with the routes for a good token, 401 for a bad one, 302 to sign in without one, 404 on a
 * proxy configured as older than the API.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { checkToken } from '../../src/auth/verify.js';
import type { RouteOptions } from '../../src/net/route.js';
import { buildTls } from '../../src/net/tls.js';
import { text } from '../../src/output/messages.js';
import { proxyEndpoint } from '../../src/target.js';
import { type FakePomerium, startFakePomerium } from '../helpers/fake-pomerium.js';

function routeTo(proxy: FakePomerium): RouteOptions {
  return { tls: buildTls({ alternateCaPath: proxy.caPath }, {}), connectTimeoutMs: 5000, userAgent: 'burrow/test' };
}

function getRoutes(proxy: FakePomerium, authorization?: string): Promise<{ status: number; location?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'application/json', ...(authorization ? { authorization } : {}) };
    request(`${proxy.url}/.pomerium/api/v1/routes`, { ca: readFileSync(proxy.caPath), headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('the routes API and checkToken', () => {
  let proxy: FakePomerium;
  let old: FakePomerium;
  let other: FakePomerium;
  before(async () => {
    proxy = await startFakePomerium({ routes: [{ from: 'tcp+https://git.corp.test:22', to: 'tcp://127.0.0.1:1' }] });
    old = await startFakePomerium({ routesApi: false });
    other = await startFakePomerium();
  });
  after(async () => {
    await Promise.all([proxy.close(), old.close(), other.close()]);
  });

  it('answers as Pomerium does: 200 with the routes, 401 for a bad token, 302 without one', async () => {
    const good = await getRoutes(proxy, `Bearer Pomerium-${proxy.mintToken()}`);
    assert.equal(good.status, 200);
    assert.deepEqual(JSON.parse(good.body), { routes: [{ id: 'route-1', name: 'git.corp.test:22', type: 'tcp', from: 'tcp+https://git.corp.test:22' }] });
    assert.equal((await getRoutes(proxy, `Bearer Pomerium-${other.mintToken()}`)).status, 401);
    const none = await getRoutes(proxy);
    assert.equal(none.status, 302);
    assert.match(none.location ?? '', /\/\.pomerium\/sign_in$/);
    assert.equal((await getRoutes(old, `Bearer Pomerium-${old.mintToken()}`)).status, 404);
  });

  it('checkToken: the proxy decides; an older proxy leaves it to the shape; a broken token never reaches the proxy', async () => {
    const endpoint = (p: FakePomerium) => proxyEndpoint('https', 'localhost', p.port);
    const at = (p: FakePomerium) => ({ proxy: endpoint(p), route: routeTo(p) });
    assert.deepEqual(await checkToken(at(proxy), proxy.mintToken()), { ok: true, checkedBy: 'proxy' });
    assert.deepEqual(await checkToken(at(proxy), proxy.mintToken({ noExpiry: true })), { ok: true, checkedBy: 'proxy' });
    assert.deepEqual(await checkToken(at(proxy), other.mintToken()), {
      ok: false,
      status: 401,
      problem: text.tokenRefusedByProxy(endpoint(proxy).origin, 401),
    });
    assert.deepEqual(await checkToken(at(old), old.mintToken()), { ok: true, checkedBy: 'shape' });
    const asked = { ...proxy.stats.routesRequests };
    const cut = proxy.mintToken().slice(0, -3);
    assert.deepEqual(await checkToken(at(proxy), cut), { ok: false, problem: text.tokenNotWhole });
    assert.deepEqual(await checkToken(at(old), cut), { ok: false, problem: text.tokenNotWhole });
    assert.deepEqual(proxy.stats.routesRequests, asked, 'not asked about a broken token');
  });

  it('a proxy that cannot be reached is the usual error, not a verdict', async () => {
    const gone = await startFakePomerium();
    const route = routeTo(gone);
    const at = { proxy: proxyEndpoint('https', 'localhost', gone.port), route };
    const token = gone.mintToken();
    await gone.close();
    await assert.rejects(checkToken(at, token), { code: 'BURROW_PROXY_UNREACHABLE' });
  });
});
