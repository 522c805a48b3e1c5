/**
 * The local proxy's HTTPS routes, against the fake Kubernetes API behind them: matched by Host
 * (with SNI to match, as a browser would send both) or by path prefix; the identity read from
 * each header Pomerium reads, checked, and passed on as X-Pomerium-Jwt-Assertion without the
 * user's token; 401 for a bad token or a bearer client without one, 302 for a browser, 403 by
 * policy, 503 for an upstream that is down, and Kubernetes impersonation.
 */
import assert from 'node:assert/strict';
import { type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { describe, test, type TestContext } from 'node:test';
import { type FakePomerium, type FakePomeriumOptions, startFakePomerium } from '../helpers/fake-pomerium.js';
import { readFixture } from '../helpers/fixtures.js';
import { type KubeApi, startKubeApi } from '../helpers/kube-api.js';

const TEST_TIMEOUT = { timeout: 15_000 };

interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request to the proxy on 127.0.0.1, with `host` as Host header and SNI name. */
function call(proxy: FakePomerium, path: string, host: string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: proxy.port, path, servername: host.replace(/:\d+$/, ''), headers: { host, ...headers }, ca: readFixture('ca.pem'), agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function setUp(t: TestContext, options: FakePomeriumOptions = {}): Promise<{ proxy: FakePomerium; api: KubeApi }> {
  const api = await startKubeApi(['db-0']);
  t.after(() => api.close());
  const proxy = await startFakePomerium({
    ...options,
    routes: [
      { from: 'https://k8s.corp.test', to: api.url },
      { from: 'https://k8s.corp.test', prefix: '/k8s/', to: api.url },
      { from: 'https://ops.corp.test', to: api.url, allow: ['bob@corp.test'] },
      { from: 'https://impersonated.corp.test', to: api.url, kubernetesServiceAccountToken: 'sa-token' },
      ...(options.routes ?? []),
    ],
  });
  t.after(() => proxy.close());
  return { proxy, api };
}

describe('fake-pomerium HTTPS routes', () => {
  test('by Host or by prefix; every token header Pomerium reads; the assertion replaces the token', TEST_TIMEOUT, async (t) => {
    const { proxy, api } = await setUp(t);
    const token = proxy.mintToken({ email: 'carol@corp.test' });
    const forms: Array<Record<string, string>> = [
      { authorization: `Bearer Pomerium-${token}` },
      { authorization: `Pomerium ${token}` },
      { 'x-pomerium-authorization': token },
      { 'x-pomerium-authorization': `Pomerium ${token}` },
      { cookie: `theme=dark; _pomerium=${token}` },
    ];
    for (const headers of forms) {
      const answer = await call(proxy, '/api/v1/namespaces/default/pods', `k8s.corp.test:${proxy.port}`, headers);
      assert.equal(answer.status, 200, JSON.stringify(Object.keys(headers)));
      assert.deepEqual(JSON.parse(answer.body).items.map((p: { metadata: { name: string } }) => p.metadata.name), ['db-0']);
    }
    assert.equal(api.requests.length, forms.length);
    for (const seen of api.requests) {
      assert.equal(seen.email, 'carol@corp.test');
      assert.equal(seen.authorization, undefined, 'the user token is not passed on');
      assert.equal(seen.url, '/api/v1/namespaces/default/pods');
    }
    // By prefix, whatever the Host: the prefix is taken off.
    const prefixed = await call(proxy, '/k8s/version?timeout=5s', `localhost:${proxy.port}`, { authorization: `Bearer Pomerium-${token}` });
    assert.equal(prefixed.status, 200);
    assert.equal(api.requests.at(-1)?.url, '/version?timeout=5s');
    // The proxy's own paths stay its own; an unknown host is no route.
    assert.equal((await call(proxy, '/.pomerium/api/v1/routes', `k8s.corp.test:${proxy.port}`, { authorization: `Bearer Pomerium-${token}` })).status, 200);
    assert.equal((await call(proxy, '/api', `other.corp.test:${proxy.port}`, { authorization: `Bearer Pomerium-${token}` })).status, 404);
    assert.equal(proxy.stats.httpRouteRequests[200], forms.length + 1);
  });

  test('401 for a refused token or a bearer client without one, 302 for a browser, 403 by policy, 503 for a dead upstream', TEST_TIMEOUT, async (t) => {
    const other = await startFakePomerium();
    t.after(() => other.close());
    const { proxy, api } = await setUp(t, { routes: [{ from: 'https://down.corp.test', to: 'http://127.0.0.1:1' }] });
    const host = `k8s.corp.test:${proxy.port}`;
    assert.equal((await call(proxy, '/api', host, { authorization: `Bearer Pomerium-${other.mintToken()}` })).status, 401);
    assert.equal((await call(proxy, '/api', host, { authorization: `Bearer Pomerium-${proxy.mintToken({ ttlSeconds: -5 })}` })).status, 401);
    assert.equal((await call(proxy, '/api', host, { accept: 'application/json' })).status, 401);
    const browser = await call(proxy, '/api', host, { accept: 'text/html,application/xhtml+xml' });
    assert.equal(browser.status, 302);
    assert.match(String(browser.headers.location), /\/\.pomerium\/sign_in\?pomerium_redirect_uri=/);
    assert.equal((await call(proxy, '/api', `ops.corp.test:${proxy.port}`, { authorization: `Bearer Pomerium-${proxy.mintToken()}` })).status, 403);
    assert.equal((await call(proxy, '/api', `ops.corp.test:${proxy.port}`, { authorization: `Bearer Pomerium-${proxy.mintToken({ email: 'bob@corp.test' })}` })).status, 200);
    assert.equal((await call(proxy, '/api', `down.corp.test:${proxy.port}`, { authorization: `Bearer Pomerium-${proxy.mintToken()}` })).status, 503);
    assert.equal(api.requests.length, 1, 'only the allowed request reached the API server');
    assert.deepEqual(proxy.stats.httpRouteRequests, { 200: 1, 302: 1, 401: 3, 403: 1, 503: 1 });
  });

  test('kubernetesServiceAccountToken: the service account authenticates, the user is impersonated', TEST_TIMEOUT, async (t) => {
    const { proxy, api } = await setUp(t);
    const answer = await call(proxy, '/api', `impersonated.corp.test:${proxy.port}`, { authorization: `Bearer Pomerium-${proxy.mintToken({ email: 'dave@corp.test' })}` });
    assert.equal(answer.status, 200);
    assert.deepEqual(
      api.requests.map((r) => [r.authorization, r.impersonateUser, r.email]),
      [['Bearer sa-token', 'dave@corp.test', 'dave@corp.test']],
    );
  });
});
