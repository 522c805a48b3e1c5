// Tests of the test proxy's WebSocket routes, driven by a plain `ws` client (not burrow), so that
// a bug in the helper cannot hide behind a matching bug in burrow's WebSocket transport.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { describe, test, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { WebSocket, type ClientOptions } from 'ws';
import { payload as makePayload, sha256 } from '../helpers/data.js';
import { startEchoServer, startSinkServer, startSourceServer } from '../helpers/echo-server.js';
import { startFakePomerium, type FakePomerium, type FakePomeriumOptions } from '../helpers/fake-pomerium.js';
import { readFixture } from '../helpers/fixtures.js';
import { eventually } from '../helpers/world.js';
import { freePort } from '../helpers/processes.js';

const TEST_TIMEOUT = { timeout: 20_000 };

type Upgrade = { ws: WebSocket; status: 101 } | { status: number; headers: IncomingMessage['headers']; body: string };

/**
 * Opens `wss://localhost:PORT<path>` with the fixture CA. Resolves with the open WebSocket, or
 * with the refusal (status, headers, body) when the proxy does not answer 101.
 */
function openWs(proxy: FakePomerium, path: string, options: { token?: string; authorization?: string; headers?: Record<string, string>; ws?: ClientOptions } = {}): Promise<Upgrade> {
  const authorization = options.authorization ?? (options.token ? `Pomerium ${options.token}` : undefined);
  const ws = new WebSocket(`${proxy.url.replace(/^https:/, 'wss:')}${path}`, {
    ca: readFixture('ca.pem'),
    perMessageDeflate: false,
    headers: { ...(authorization ? { Authorization: authorization } : {}), ...options.headers },
    ...options.ws,
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no answer to the upgrade of ${path} within 10 s`));
    }, 10_000);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve({ ws, status: 101 });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.once('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        ws.terminate();
      });
    });
    ws.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** The open WebSocket of `answer`, or a failed assertion naming the status. */
function opened(answer: Upgrade): WebSocket {
  assert.ok('ws' in answer, `expected 101, got ${answer.status}`);
  return answer.ws;
}

/** Resolves with the close code and reason (bounded). */
async function closeOf(ws: WebSocket, timeoutMs = 5000): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) throw new Error('already closed; listen before it closes');
  const timer = setTimeout(() => ws.terminate(), timeoutMs);
  const [code, reason] = (await once(ws, 'close')) as [number, Buffer];
  clearTimeout(timer);
  return { code, reason: reason.toString() };
}

/** Collects every message of `ws` as bytes, until it closes. */
function collect(ws: WebSocket): { chunks: Buffer[]; text: () => string; all: () => Buffer; binary: () => boolean } {
  const chunks: Buffer[] = [];
  let binary = true;
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) binary = false;
    chunks.push(data);
  });
  return { chunks, all: () => Buffer.concat(chunks), text: () => Buffer.concat(chunks).toString(), binary: () => binary };
}

/** `promise`, or a rejection naming `what` after `ms` (the timer never outlives the race). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function proxyFor(t: TestContext, options: FakePomeriumOptions = {}): Promise<FakePomerium> {
  const proxy = await startFakePomerium(options);
  t.after(() => proxy.close());
  return proxy;
}

async function echoProxy(t: TestContext, options: FakePomeriumOptions = {}): Promise<FakePomerium> {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  return proxyFor(t, { ...options, routes: [{ from: 'wss://ws.corp.test/echo', to: `tcp://${echo.address}` }, ...(options.routes ?? [])] });
}

describe('fake-pomerium WebSocket routes', () => {
  test('101 and a 1 MiB echo round trip in binary messages, byte for byte', TEST_TIMEOUT, async (t) => {
    const proxy = await echoProxy(t);
    const ws = opened(await openWs(proxy, '/echo', { token: proxy.mintToken() }));
    assert.equal(proxy.openTunnels, 1);
    const got = collect(ws);
    const data = makePayload(1024 * 1024, 5);
    for (let i = 0; i < data.length; i += 16 * 1024) ws.send(data.subarray(i, i + 16 * 1024));
    await eventually(() => got.all().length >= data.length, 10_000, '1 MiB to come back');
    assert.equal(got.all().length, data.length);
    assert.equal(sha256(got.all()), sha256(data));
    assert.ok(got.binary(), 'every message from the proxy is binary');

    ws.close(1000);
    assert.equal((await closeOf(ws)).code, 1000);
    await eventually(() => proxy.openTunnels === 0, 5000, 'the tunnel to wind down');
    assert.deepEqual(proxy.stats.upgradesByStatus, { 101: 1 });
    assert.equal(proxy.stats.upgrades, 1);
    assert.equal(proxy.stats.connects, 0);
    assert.deepEqual(proxy.events, [{ method: 'GET', url: '/echo', status: 101, hadToken: true, email: 'alice@corp.test' }]);
    assert.deepEqual(proxy.wsClosures, [{ path: '/echo', code: 1000, by: 'client' }]);
  });

  test('routes match on the path only (any Host), accept Bearer Pomerium-<jwt>, and public routes', TEST_TIMEOUT, async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.close());
    const proxy = await proxyFor(t, {
      routes: [
        { from: 'wss://ws.corp.test/echo', to: `tcp://${echo.address}` },
        { from: 'wss://public.corp.test:8443/open', to: `tcp://${echo.address}`, allowPublicUnauthenticatedAccess: true },
      ],
    });
    const bearer = opened(await openWs(proxy, '/echo', { authorization: `Bearer Pomerium-${proxy.mintToken()}`, headers: { Host: 'ws.corp.test' } }));
    const pub = opened(await openWs(proxy, '/open?x=1'));
    for (const [ws, word] of [[bearer, 'bearer'], [pub, 'public']] as const) {
      const got = collect(ws);
      ws.send(word);
      await eventually(() => got.text() === word, 5000, `the echo of ${word}`);
      ws.close(1000);
      await closeOf(ws);
    }
    assert.deepEqual(proxy.events.map((e) => [e.url, e.status, e.hadToken]), [['/echo', 101, true], ['/open?x=1', 101, false]]);
  });

  test('302 with a sign-in Location without a token (also with an invalid or expired one); 401 when configured', TEST_TIMEOUT, async (t) => {
    const proxy = await echoProxy(t);
    const none = await openWs(proxy, '/echo');
    assert.equal(none.status, 302);
    assert.ok(!('ws' in none));
    const location = new URL(String(none.headers.location));
    assert.equal(`${location.origin}${location.pathname}`, `${proxy.url}/.pomerium/sign_in`);
    assert.match(location.searchParams.get('pomerium_redirect_uri') ?? '', /^https:\/\/localhost:\d+\/echo$/);
    assert.equal((await openWs(proxy, '/echo', { token: 'not-a-jwt' })).status, 302);
    assert.equal((await openWs(proxy, '/echo', { token: proxy.mintToken({ ttlSeconds: -5 }) })).status, 302);
    assert.deepEqual(proxy.events.map((e) => [e.status, e.hadToken]), [[302, false], [302, true], [302, true]]);
    assert.equal(proxy.openTunnels, 0);

    const strict = await echoProxy(t, { unauthenticatedStatus: 401 });
    const answer = await openWs(strict, '/echo');
    assert.equal(answer.status, 401);
    assert.ok(!('ws' in answer) && answer.headers.location === undefined);
  });

  test('403 for a user outside allow or inside deny, with the signed-in email recorded', TEST_TIMEOUT, async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.close());
    const proxy = await proxyFor(t, {
      routes: [
        { from: 'wss://ws.corp.test/bob', to: `tcp://${echo.address}`, allow: ['bob@corp.test'] },
        { from: 'wss://ws.corp.test/not-mallory', to: `tcp://${echo.address}`, deny: ['mallory@corp.test'] },
      ],
    });
    assert.equal((await openWs(proxy, '/bob', { token: proxy.mintToken({ email: 'alice@corp.test' }) })).status, 403);
    assert.equal((await openWs(proxy, '/not-mallory', { token: proxy.mintToken({ email: 'mallory@corp.test' }) })).status, 403);
    const bob = opened(await openWs(proxy, '/bob', { token: proxy.mintToken({ email: 'bob@corp.test' }) }));
    bob.close(1000);
    await closeOf(bob);
    assert.deepEqual(proxy.events.map((e) => [e.status, e.email]), [[403, 'alice@corp.test'], [403, 'mallory@corp.test'], [101, 'bob@corp.test']]);
    assert.equal(echo.connections, 1, 'refused upgrades never reach the upstream');
  });

  test('404 for an unknown path (also one named like a CONNECT route), and for routes added later', TEST_TIMEOUT, async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.close());
    const proxy = await proxyFor(t, { routes: [{ from: 'tcp+https://git.corp.test:22', to: `tcp://${echo.address}` }] });
    const token = proxy.mintToken();
    assert.equal((await openWs(proxy, '/ssh', { token })).status, 404);
    assert.equal((await openWs(proxy, '/git.corp.test:22', { token })).status, 404);
    proxy.addRoute({ from: 'wss://ws.corp.test/ssh', to: `tcp://${echo.address}` });
    const ws = opened(await openWs(proxy, '/ssh', { token }));
    ws.close(1000);
    await closeOf(ws);
    assert.deepEqual(proxy.stats.upgradesByStatus, { 404: 2, 101: 1 });
  });

  test('503 when the upstream refuses the connection', TEST_TIMEOUT, async (t) => {
    const proxy = await proxyFor(t, { routes: [{ from: 'wss://ws.corp.test/down', to: `tcp://127.0.0.1:${await freePort()}` }] });
    assert.equal((await openWs(proxy, '/down', { token: proxy.mintToken() })).status, 503);
    assert.equal(proxy.openTunnels, 0);
  });

  test('the respond hook sees upgrades (upgrade: true) and its answer replaces them', TEST_TIMEOUT, async (t) => {
    const proxy = await echoProxy(t, {
      respond: (req) => (req.upgrade && req.url === '/echo?canned' ? { status: 405, body: 'no upgrades here\n' } : undefined),
    });
    const answer = await openWs(proxy, '/echo?canned', { token: proxy.mintToken() });
    assert.equal(answer.status, 405);
    assert.ok(!('ws' in answer) && answer.body === 'no upgrades here\n');
    const ws = opened(await openWs(proxy, '/echo', { token: proxy.mintToken() }));
    ws.close(1000);
    await closeOf(ws);
  });

  test('records request headers (extra headers visible) but never the Authorization value', TEST_TIMEOUT, async (t) => {
    const proxy = await echoProxy(t);
    const token = proxy.mintToken();
    const ws = opened(await openWs(proxy, '/echo', { token, headers: { 'X-Api-Key': 'k-123', 'X-Other': 'two words' } }));
    ws.close(1000);
    await closeOf(ws);
    const [request] = proxy.requests;
    assert.equal(request?.method, 'GET');
    assert.equal(request?.url, '/echo');
    assert.equal(request?.headers['x-api-key'], 'k-123');
    assert.equal(request?.headers['x-other'], 'two words');
    assert.equal(request?.headers.authorization, '[hidden]');
    assert.ok(!JSON.stringify(proxy.requests).includes(token));
  });

  test('upstream EOF: every byte arrives, then close 1000', TEST_TIMEOUT, async (t) => {
    const source = await startSourceServer(3 * 1024 * 1024, 4);
    t.after(() => source.close());
    const proxy = await proxyFor(t, { routes: [{ from: 'wss://ws.corp.test/source', to: `tcp://${source.address}` }] });
    const ws = opened(await openWs(proxy, '/source', { token: proxy.mintToken() }));
    const got = collect(ws);
    const { code, reason } = await closeOf(ws, 10_000);
    assert.equal(code, 1000);
    assert.equal(reason, 'upstream closed');
    assert.equal(sha256(got.all()), source.sha256);
    assert.deepEqual(proxy.wsClosures, [{ path: '/source', code: 1000, by: 'proxy' }]);
  });

  test('client close: the upstream gets every byte and then EOF', TEST_TIMEOUT, async (t) => {
    const sink = await startSinkServer();
    t.after(() => sink.close());
    const proxy = await proxyFor(t, { routes: [{ from: 'wss://ws.corp.test/sink', to: `tcp://${sink.address}` }] });
    const ws = opened(await openWs(proxy, '/sink', { token: proxy.mintToken() }));
    const data = makePayload(2 * 1024 * 1024, 6);
    for (let i = 0; i < data.length; i += 64 * 1024) ws.send(data.subarray(i, i + 64 * 1024));
    ws.close(1000);
    await closeOf(ws);
    assert.deepEqual(await sink.received(0), { bytes: data.length, sha256: sha256(data) });
  });

  test('a paused client loses nothing: backpressure holds the upstream, then every byte arrives', TEST_TIMEOUT, async (t) => {
    const source = await startSourceServer(16 * 1024 * 1024, 12);
    t.after(() => source.close());
    const proxy = await proxyFor(t, { routes: [{ from: 'wss://ws.corp.test/source', to: `tcp://${source.address}` }] });
    const ws = opened(await openWs(proxy, '/source', { token: proxy.mintToken() }));
    ws.pause();
    await delay(500);
    const got = collect(ws);
    const closed = closeOf(ws, 15_000);
    ws.resume();
    assert.equal((await closed).code, 1000);
    assert.equal(got.all().length, source.payload.length);
    assert.equal(sha256(got.all()), source.sha256);
  });

  test('pings are answered by default and counted', TEST_TIMEOUT, async (t) => {
    const proxy = await echoProxy(t);
    const ws = opened(await openWs(proxy, '/echo', { token: proxy.mintToken() }));
    const pong = once(ws, 'pong');
    ws.ping('hello');
    const [data] = (await within(pong, 5000, 'pong')) as [Buffer];
    assert.equal(data.toString(), 'hello');
    assert.equal(proxy.stats.pingsReceived, 1);
    ws.close(1000);
    await closeOf(ws);
  });

  test('wsAutoPong: false: a ping is counted but gets no pong; data still flows', TEST_TIMEOUT, async (t) => {
    const proxy = await echoProxy(t, { wsAutoPong: false });
    const ws = opened(await openWs(proxy, '/echo', { token: proxy.mintToken() }));
    let pongs = 0;
    ws.on('pong', () => pongs++);
    const got = collect(ws);
    ws.ping();
    ws.send('still here');
    await eventually(() => got.text() === 'still here', 5000, 'the echo');
    await delay(1000);
    assert.equal(pongs, 0, 'no pong');
    assert.equal(proxy.stats.pingsReceived, 1);
    ws.close(1000);
    await closeOf(ws);
  });

  test('wsIdleTimeoutMs: an idle tunnel is closed with 1001; one that pings more often survives, then idles out', TEST_TIMEOUT, async (t) => {
    const proxy = await echoProxy(t, { wsIdleTimeoutMs: 400 });
    const token = proxy.mintToken();

    const idle = opened(await openWs(proxy, '/echo', { token }));
    const idleClose = await closeOf(idle, 5000);
    assert.equal(idleClose.code, 1001);
    assert.equal(idleClose.reason, 'idle timeout');

    const busy = opened(await openWs(proxy, '/echo', { token }));
    let closed = false;
    busy.once('close', () => (closed = true));
    const pinger = setInterval(() => busy.ping(), 100);
    try {
      // Three times the idle timeout, kept alive by pings alone.
      await delay(1200);
      assert.equal(closed, false, 'pings kept the tunnel open');
      const got = collect(busy);
      busy.send('alive');
      await eventually(() => got.text() === 'alive', 5000, 'the echo after the idle period');
    } finally {
      clearInterval(pinger);
    }
    const busyClose = await closeOf(busy, 5000);
    assert.equal(busyClose.code, 1001, 'once the pings stop, the idle timeout applies');
    assert.deepEqual(
      proxy.wsClosures.map((c) => [c.code, c.by]),
      [[1001, 'proxy'], [1001, 'proxy']],
    );
  });

  test('a plain request on a WebSocket path, and a non-WebSocket upgrade, are not tunnels', TEST_TIMEOUT, async (t) => {
    const proxy = await echoProxy(t);
    const tls = await import('node:tls');
    const socket = tls.connect({ host: proxy.host, port: proxy.port, servername: 'localhost', ca: readFixture('ca.pem') });
    socket.write(`GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nAuthorization: Pomerium ${proxy.mintToken()}\r\n\r\n`);
    let text = '';
    socket.setEncoding('utf8').on('data', (d: string) => (text += d));
    await within(once(socket, 'end'), 5000, 'the end of the answer');
    socket.destroy();
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.equal(proxy.openTunnels, 0);
  });

  test('close() terminates open WebSocket tunnels', TEST_TIMEOUT, async (t) => {
    const proxy = await echoProxy(t);
    const ws = opened(await openWs(proxy, '/echo', { token: proxy.mintToken() }));
    const closed = closeOf(ws, 5000);
    await proxy.close();
    const { code } = await closed;
    assert.equal(code, 1006, 'torn down without a close frame');
  });
});
