// Tests of the test proxy itself, driven by a hand-written CONNECT client so that a bug in the
// helper cannot hide behind a matching bug in burrow's own client.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpsRequest } from 'node:https';
import { describe, test, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { payload as makePayload, sha256 } from '../helpers/data.js';
import { startEchoServer, startSinkServer, startSourceServer, startTcpServer } from '../helpers/echo-server.js';
import { startFakePomerium, type FakePomerium, type FakePomeriumOptions } from '../helpers/fake-pomerium.js';
import { readFixture } from '../helpers/fixtures.js';
import { freePort } from '../helpers/processes.js';

const TEST_TIMEOUT = { timeout: 15_000 };

interface ConnectAnswer {
  socket: TLSSocket;
  status: number;
  headers: Record<string, string>;
  /** Bytes that arrived after the response head. */
  rest: Buffer;
}

/** Opens TLS to the proxy, sends a CONNECT by hand and parses the response head. */
async function rawConnect(
  proxy: FakePomerium,
  authority: string,
  options: { token?: string; authorization?: string; tls?: ConnectionOptions; allowHalfOpen?: boolean } = {},
): Promise<ConnectAnswer> {
  // allowHalfOpen is honoured by tls.connect (it reaches the TLSSocket) but missing from its types.
  const connectOptions: ConnectionOptions & { allowHalfOpen: boolean } = {
    host: proxy.host,
    port: proxy.port,
    servername: 'localhost',
    ca: readFixture('ca.pem'),
    ALPNProtocols: ['http/1.1'],
    allowHalfOpen: options.allowHalfOpen ?? false,
    ...options.tls,
  };
  const socket = tlsConnect(connectOptions);
  const authorization = options.authorization ?? (options.token ? `Pomerium ${options.token}` : undefined);
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${authorization ? `Authorization: ${authorization}\r\n` : ''}\r\n`);
  let buffered = Buffer.alloc(0);
  try {
    for await (const chunk of socket.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) continue;
      const [statusLine = '', ...headerLines] = buffered.subarray(0, end).toString('latin1').split('\r\n');
      const match = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine);
      assert.ok(match, `bad status line: ${statusLine}`);
      const headers: Record<string, string> = {};
      for (const line of headerLines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      socket.pause();
      return { socket, status: Number(match[1]), headers, rest: buffered.subarray(end + 4) };
    }
  } catch (error) {
    socket.destroy();
    throw error;
  }
  socket.destroy();
  throw new Error(`connection ended before a response head; got ${JSON.stringify(buffered.toString('latin1'))}`);
}

/** Everything the socket delivers until its peer ends, after `already` (bytes read earlier). */
async function readToEnd(socket: TLSSocket, already: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  const chunks = [already];
  for await (const chunk of socket.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Resolves once `n` bytes were read (including `already`). */
async function readBytes(socket: TLSSocket, n: number, already: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  let got = already;
  if (got.length >= n) return got;
  for await (const chunk of socket.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    got = Buffer.concat([got, chunk]);
    if (got.length >= n) break;
  }
  return got;
}

interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTPS request to the proxy with the fixture CA and no connection reuse. */
function httpsCall(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: init.method ?? 'GET', headers: init.headers, ca: readFixture('ca.pem'), agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** A proxy closed when the test ends. */
async function proxyFor(t: TestContext, options: FakePomeriumOptions = {}): Promise<FakePomerium> {
  const proxy = await startFakePomerium(options);
  t.after(() => proxy.close());
  return proxy;
}

describe('fake-pomerium CONNECT', () => {
  test('200 and an echo round trip through the tunnel', TEST_TIMEOUT, async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.close());
    const proxy = await proxyFor(t, { routes: [{ from: 'tcp+https://git.corp.test:22', to: `tcp://${echo.address}` }] });

    const answer = await rawConnect(proxy, 'git.corp.test:22', { token: proxy.mintToken() });
    assert.equal(answer.status, 200);
    assert.equal(proxy.openTunnels, 1);
    answer.socket.write('ping');
    assert.equal((await readBytes(answer.socket, 4, answer.rest)).toString(), 'ping');
    answer.socket.end();
    await once(answer.socket, 'close');

    assert.equal(echo.connections, 1);
    assert.deepEqual(proxy.stats.connectsByStatus, { 200: 1 });
    assert.deepEqual(proxy.events, [{ method: 'CONNECT', url: 'git.corp.test:22', status: 200, hadToken: true, email: 'alice@corp.test' }]);
    // The proxy side of the tunnel winds down right after the client's socket closed.
    for (let i = 0; i < 50 && proxy.openTunnels > 0; i++) await delay(20);
    assert.equal(proxy.openTunnels, 0);
  });

  test('accepts the Bearer Pomerium-<jwt> form and public routes', TEST_TIMEOUT, async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.close());
    const proxy = await proxyFor(t, {
      routes: [
        { from: 'tcp+https://git.corp.test:22', to: `tcp://${echo.address}` },
        { from: 'tcp+https://public.corp.test:80', to: `tcp://${echo.address}`, allowPublicUnauthenticatedAccess: true },
      ],
    });
    const bearer = await rawConnect(proxy, 'git.corp.test:22', { authorization: `Bearer Pomerium-${proxy.mintToken()}` });
    bearer.socket.destroy();
    const open = await rawConnect(proxy, 'public.corp.test:80');
    open.socket.destroy();
    assert.equal(bearer.status, 200);
    assert.equal(open.status, 200);
  });

  for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
    test(`half-close, client first: the echo still comes back after the client's FIN (${maxVersion})`, TEST_TIMEOUT, async (t) => {
      const echo = await startEchoServer();
      t.after(() => echo.close());
      const proxy = await proxyFor(t, { tlsOptions: { maxVersion }, routes: [{ from: 'tcp+https://git.corp.test:22', to: `tcp://${echo.address}` }] });

      const answer = await rawConnect(proxy, 'git.corp.test:22', { token: proxy.mintToken(), allowHalfOpen: true });
      assert.equal(answer.status, 200);
      // Big enough to still be in flight when the FIN is sent.
      const payload = makePayload(512 * 1024, 7);
      answer.socket.end(payload);
      const echoed = await readToEnd(answer.socket, answer.rest);
      assert.equal(echoed.length, payload.length);
      assert.equal(sha256(echoed), sha256(payload));
    });

    test(`half-close, upstream first: the client can still send after the upstream's FIN (${maxVersion})`, TEST_TIMEOUT, async (t) => {
      const received = withResolvers<string>();
      const upstream = await startTcpServer((socket) => {
        let text = '';
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => (text += chunk));
        socket.once('end', () => {
          received.resolve(text);
          socket.end();
        });
        socket.end('bye from upstream');
      });
      t.after(() => upstream.close());
      const proxy = await proxyFor(t, { tlsOptions: { maxVersion }, routes: [{ from: 'tcp+https://db.corp.test:5432', to: `tcp://${upstream.address}` }] });

      const answer = await rawConnect(proxy, 'db.corp.test:5432', { token: proxy.mintToken(), allowHalfOpen: true });
      assert.equal(answer.status, 200);
      assert.equal((await readToEnd(answer.socket, answer.rest)).toString(), 'bye from upstream');
      // The proxy has ended its side; ours is still open for writing.
      const closed = once(answer.socket, 'close');
      answer.socket.end('still talking');
      assert.equal(await received.promise, 'still talking');
      await closed;
    });
  }

  test('1 MiB each way with backpressure: source to client and client to sink', TEST_TIMEOUT, async (t) => {
    const source = await startSourceServer(1024 * 1024, 3);
    const sink = await startSinkServer();
    t.after(() => source.close());
    t.after(() => sink.close());
    const proxy = await proxyFor(t, {
      routes: [
        { from: 'tcp+https://source.corp.test:1', to: `tcp://${source.address}` },
        { from: 'tcp+https://sink.corp.test:1', to: `tcp://${sink.address}` },
      ],
    });

    const down = await rawConnect(proxy, 'source.corp.test:1', { token: proxy.mintToken() });
    const bytes = await readToEnd(down.socket, down.rest);
    assert.equal(sha256(bytes), source.sha256);

    const up = await rawConnect(proxy, 'sink.corp.test:1', { token: proxy.mintToken() });
    const payload = makePayload(1024 * 1024, 4);
    up.socket.end(payload);
    assert.deepEqual(await sink.received(0), { bytes: payload.length, sha256: sha256(payload) });
  });

  test('302 with a sign-in Location without a token; 401 when configured', TEST_TIMEOUT, async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.close());
    const route = { from: 'tcp+https://git.corp.test:22', to: `tcp://${echo.address}` };

    const proxy = await proxyFor(t, { routes: [route] });
    const redirect = await rawConnect(proxy, 'git.corp.test:22');
    const body = await readToEnd(redirect.socket, redirect.rest);
    assert.equal(redirect.status, 302);
    assert.ok(redirect.headers.location?.startsWith(`${proxy.url}/.pomerium/sign_in?pomerium_redirect_uri=`), redirect.headers.location);
    assert.equal(Number(redirect.headers['content-length']), body.length);
    assert.deepEqual(proxy.events, [{ method: 'CONNECT', url: 'git.corp.test:22', status: 302, hadToken: false }]);

    // A token from another proxy (a different signing key) is as good as none.
    const other = await proxyFor(t, { routes: [route] });
    const foreign = await rawConnect(proxy, 'git.corp.test:22', { token: other.mintToken() });
    foreign.socket.destroy();
    assert.equal(foreign.status, 302);
    assert.equal(proxy.events.at(-1)?.hadToken, true);

    const strict = await proxyFor(t, { routes: [route], unauthenticatedStatus: 401 });
    const unauthorized = await rawConnect(strict, 'git.corp.test:22');
    unauthorized.socket.destroy();
    assert.equal(unauthorized.status, 401);
    assert.equal(unauthorized.headers.location, undefined);
  });

  test('403 for a user outside allow or inside deny', TEST_TIMEOUT, async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.close());
    const proxy = await proxyFor(t, {
      routes: [{ from: 'tcp+https://git.corp.test:22', to: `tcp://${echo.address}`, allow: ['alice@corp.test', 'bob@corp.test'], deny: ['bob@corp.test'] }],
    });
    const statuses: number[] = [];
    for (const email of ['alice@corp.test', 'bob@corp.test', 'mallory@corp.test']) {
      const answer = await rawConnect(proxy, 'git.corp.test:22', { token: proxy.mintToken({ email }) });
      answer.socket.destroy();
      statuses.push(answer.status);
    }
    assert.deepEqual(statuses, [200, 403, 403]);
    assert.equal(proxy.events[2]?.email, 'mallory@corp.test');
  });

  test('404 for an unknown route, also for routes added later', TEST_TIMEOUT, async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.close());
    const proxy = await proxyFor(t);
    const token = proxy.mintToken();
    const missing = await rawConnect(proxy, 'nowhere.corp.test:22', { token });
    missing.socket.destroy();
    assert.equal(missing.status, 404);

    proxy.addRoute({ from: 'tcp+https://nowhere.corp.test:22', to: `tcp://${echo.address}` });
    const found = await rawConnect(proxy, 'NOWHERE.corp.test:22', { token });
    found.socket.destroy();
    assert.equal(found.status, 200);
  });

  test('503 when the upstream refuses the connection', TEST_TIMEOUT, async (t) => {
    const proxy = await proxyFor(t, { routes: [{ from: 'tcp+https://down.corp.test:22', to: `tcp://127.0.0.1:${await freePort()}` }] });
    const answer = await rawConnect(proxy, 'down.corp.test:22', { token: proxy.mintToken() });
    assert.equal(answer.status, 503);
    await readToEnd(answer.socket, answer.rest);
  });

  test('greeting bytes arrive in the same write as the 200 head', TEST_TIMEOUT, async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.close());
    const greeting = Buffer.from('SSH-2.0-fake\r\n');
    const proxy = await proxyFor(t, { greeting, routes: [{ from: 'tcp+https://git.corp.test:22', to: `tcp://${echo.address}` }] });
    const answer = await rawConnect(proxy, 'git.corp.test:22', { token: proxy.mintToken() });
    assert.equal(answer.status, 200);
    // One write makes one TLS record, which the client decrypts in one piece: the greeting
    // arrives in the same chunk as the head, which is what client tests rely on.
    assert.deepEqual(answer.rest, greeting);
    answer.socket.write('echo');
    assert.equal((await readBytes(answer.socket, greeting.length + 4, answer.rest)).subarray(greeting.length).toString(), 'echo');
    answer.socket.destroy();
  });

  test('respond hook: canned statuses and malformed raw answers', TEST_TIMEOUT, async (t) => {
    const proxy = await proxyFor(t, {
      respond: ({ url }) => {
        if (url === 'teapot.corp.test:1') return { status: 500, headers: { 'X-Why': 'test' }, body: 'boom' };
        if (url === 'garbage.corp.test:1') return { raw: 'garbage\r\n\r\n' };
        return undefined;
      },
    });
    const canned = await rawConnect(proxy, 'teapot.corp.test:1');
    assert.equal(canned.status, 500);
    assert.equal(canned.headers['x-why'], 'test');
    assert.equal((await readToEnd(canned.socket, canned.rest)).toString(), 'boom');

    await assert.rejects(rawConnect(proxy, 'garbage.corp.test:1'), /bad status line: garbage/);
    const fallthrough = await rawConnect(proxy, 'other.corp.test:1');
    fallthrough.socket.destroy();
    assert.equal(fallthrough.status, 404);
  });

  test('stallConnect never answers, and close() still ends the connection', TEST_TIMEOUT, async () => {
    const proxy = await startFakePomerium({ stallConnect: true });
    try {
      const pending = rawConnect(proxy, 'git.corp.test:22');
      for (let i = 0; i < 100 && proxy.stats.connects === 0; i++) await delay(20);
      assert.equal(proxy.stats.connects, 1);
      await delay(200);
      assert.equal(proxy.events.length, 0);
      await proxy.close();
      await assert.rejects(pending, /connection ended before a response head|ECONNRESET|socket hang up/);
    } finally {
      await proxy.close();
    }
  });
});

describe('fake-pomerium sign-in', () => {
  test('login API -> sign-in page -> token in the redirect -> CONNECT succeeds', TEST_TIMEOUT, async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.close());
    const proxy = await proxyFor(t, {
      signInEmail: 'carol@corp.test',
      routes: [{ from: 'tcp+https://git.corp.test:22', to: `tcp://${echo.address}`, allow: ['carol@corp.test'] }],
    });
    const callback = 'http://127.0.0.1:45678/cb-secret?state=a~b%20c';

    const login = await httpsCall(`${proxy.url}/.pomerium/api/v1/login?pomerium_redirect_uri=${encodeURIComponent(callback)}`);
    assert.equal(login.status, 200);
    const signInUrl = new URL(login.body);
    assert.equal(signInUrl.origin, proxy.url);
    assert.equal(signInUrl.searchParams.get('pomerium_redirect_uri'), callback);

    const page = await httpsCall(signInUrl.href);
    assert.equal(page.status, 200);
    assert.match(page.body, /<title>Sign in<\/title>/);
    assert.match(page.body, /<button type="submit" id="sign-in">Sign in<\/button>/);
    assert.match(page.body, /value="carol@corp\.test"/);

    const submitted = await httpsCall(`${signInUrl.href}&submit=1`);
    assert.equal(submitted.status, 302);
    const back = new URL(String(submitted.headers.location));
    assert.equal(back.origin + back.pathname, 'http://127.0.0.1:45678/cb-secret');
    assert.ok(back.search.startsWith('?state=a~b%20c&pomerium_jwt='), back.search);
    const jwt = back.searchParams.get('pomerium_jwt') ?? '';
    assert.equal(proxy.verifyToken(jwt)?.email, 'carol@corp.test');
    assert.deepEqual({ signIns: proxy.stats.signIns, loginRequests: proxy.stats.loginRequests }, { signIns: 1, loginRequests: 1 });
    assert.ok(proxy.events.every((event) => !event.url.includes(jwt)));

    const answer = await rawConnect(proxy, 'git.corp.test:22', { token: jwt });
    answer.socket.destroy();
    assert.equal(answer.status, 200);
  });

  test('POST form sign-in, login API validation, whoami and healthz', TEST_TIMEOUT, async (t) => {
    const proxy = await proxyFor(t);
    const posted = await httpsCall(`${proxy.url}/.pomerium/sign_in`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ pomerium_redirect_uri: 'http://127.0.0.1:1/done', email: 'dave@corp.test' }).toString(),
    });
    assert.equal(posted.status, 302);
    const jwt = new URL(String(posted.headers.location)).searchParams.get('pomerium_jwt') ?? '';

    const whoami = await httpsCall(`${proxy.url}/.pomerium/api/v1/whoami`, { headers: { Authorization: `Pomerium ${jwt}` } });
    assert.equal(whoami.status, 200);
    assert.equal(JSON.parse(whoami.body).email, 'dave@corp.test');
    assert.equal((await httpsCall(`${proxy.url}/.pomerium/api/v1/whoami`)).status, 401);
    assert.equal((await httpsCall(`${proxy.url}/.pomerium/api/v1/login`)).status, 400);
    assert.equal((await httpsCall(`${proxy.url}/.pomerium/api/v1/login?pomerium_redirect_uri=file:///etc/passwd`)).status, 400);
    assert.deepEqual(await httpsCall(`${proxy.url}/healthz`).then((r) => [r.status, r.body]), [200, 'ok']);
    assert.equal((await httpsCall(`${proxy.url}/nope`)).status, 404);
  });

  test('an expired token gets 302 again', TEST_TIMEOUT, async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.close());
    // `iat` is whole seconds, so a TTL of 2 s lives more than 1 s and at most 2: valid when
    // checked at once, expired 2.1 s later, whenever in its second it was minted.
    const proxy = await proxyFor(t, { tokenTtlSeconds: 2, routes: [{ from: 'tcp+https://git.corp.test:22', to: `tcp://${echo.address}` }] });
    const submitted = await httpsCall(`${proxy.url}/.pomerium/sign_in?pomerium_redirect_uri=${encodeURIComponent('http://127.0.0.1:1/')}&submit=1`);
    const jwt = new URL(String(submitted.headers.location)).searchParams.get('pomerium_jwt') ?? '';
    assert.ok(proxy.verifyToken(jwt));
    await delay(2100);
    assert.equal(proxy.verifyToken(jwt), null);
    const answer = await rawConnect(proxy, 'git.corp.test:22', { token: jwt });
    answer.socket.destroy();
    assert.equal(answer.status, 302);

    // mintToken can also hand out tokens that are already expired.
    assert.equal(proxy.verifyToken(proxy.mintToken({ ttlSeconds: -60 })), null);
  });
});

describe('fake-pomerium mutual TLS', () => {
  test('requireClientCert refuses clients without a good certificate and accepts client.pem', TEST_TIMEOUT, async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.close());
    const proxy = await proxyFor(t, { requireClientCert: true, routes: [{ from: 'tcp+https://git.corp.test:22', to: `tcp://${echo.address}` }] });
    const token = proxy.mintToken();

    // Under TLS 1.3 the client's handshake completes before the server has checked the
    // certificate, so the refusal shows up as an error or an end on the first read.
    await assert.rejects(rawConnect(proxy, 'git.corp.test:22', { token }));
    await assert.rejects(rawConnect(proxy, 'git.corp.test:22', { token, tls: { cert: readFixture('rogue-client.pem'), key: readFixture('rogue-client-key.pem') } }));
    assert.equal(proxy.stats.connects, 0);

    const answer = await rawConnect(proxy, 'git.corp.test:22', { token, tls: { cert: readFixture('client.pem'), key: readFixture('client-key.pem') } });
    answer.socket.destroy();
    assert.equal(answer.status, 200);
  });
});

// Promise.withResolvers only arrives in Node 22.
function withResolvers<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
