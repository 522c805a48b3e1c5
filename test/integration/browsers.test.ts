// Tests of the stand-in browsers (test/helpers/browsers/) against the fake proxy, without
// burrow: the test plays burrow's part (one-shot loopback server, login API call, launching
// the program with the sign-in URL as its only argument, no shell).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { browserEnv, browserLaunches, chromiumBrowser, followBrowser, requireChromium, type BrowserOptions } from '../helpers/browsers/index.js';
import { startFakePomerium, type FakePomerium } from '../helpers/fake-pomerium.js';
import { readFixture } from '../helpers/fixtures.js';

const FOLLOW_TIMEOUT = { timeout: 20_000 };
const CHROMIUM_TIMEOUT = { timeout: 90_000 };

async function proxyFor(t: TestContext): Promise<FakePomerium> {
  const proxy = await startFakePomerium();
  t.after(() => proxy.close());
  return proxy;
}

function tempDirFor(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-browsers-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Callback {
  /** The loopback URL handed to the login API as pomerium_redirect_uri. */
  url: string;
  /** Every request the server received (path and query), favicon included. */
  requests: string[];
  /** The pomerium_jwt values received on the callback path. */
  tokens: string[];
}

/**
 * Burrow's part: an HTTP server on 127.0.0.1 with a random path (and a query of its own, which
 * must come back untouched) that answers the callback with a small "signed in" page.
 */
async function startCallback(t: TestContext, status = 200): Promise<Callback> {
  const path = `/${randomBytes(12).toString('hex')}`;
  const state = randomBytes(6).toString('hex');
  const callback: Callback = { url: '', requests: [], tokens: [] };
  const server = createServer((req: IncomingMessage, res) => {
    const target = new URL(req.url ?? '/', 'http://127.0.0.1');
    callback.requests.push(target.pathname + target.search.replace(/(pomerium_jwt=)[^&]*/, '$1…'));
    const jwt = target.searchParams.get('pomerium_jwt');
    if (target.pathname !== path || jwt === null) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    assert.equal(target.searchParams.get('state'), state, 'the loopback URL lost its own query');
    callback.tokens.push(jwt);
    res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', Connection: 'close' });
    res.end('<!doctype html><title>burrow</title><h1>You are signed in</h1><p>You can close this tab and return to the terminal.</p>\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  callback.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}?state=${state}`;
  return callback;
}

/** GET /.pomerium/api/v1/login as burrow does; resolves with the sign-in URL. */
function login(proxy: FakePomerium, redirectUri: string): Promise<string> {
  const url = `${proxy.url}/.pomerium/api/v1/login?pomerium_redirect_uri=${encodeURIComponent(redirectUri)}`;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca: readFixture('ca.pem'), agent: false, signal: AbortSignal.timeout(5000) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(body.trim()) : reject(new Error(`login API answered ${res.statusCode}: ${body}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Launches `program` exactly as burrow will (`spawn(program, [url])`, no shell) with a minimal
 * environment plus the BROWSER_* options, and waits for it to exit; a run longer than
 * `limitMs` is killed and fails the test.
 */
async function launch(t: TestContext, program: string, url: string, options: BrowserOptions, limitMs: number): Promise<Run> {
  const started = Date.now();
  const child = spawn(program, [url], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...browserEnv(options) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  // SIGTERM first: the chromium stand-in closes its browser on it (playwright's handler).
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killed = await Promise.race([exited.then(() => true), delay(5000, undefined, { ref: false }).then(() => false)]);
    if (!killed) child.kill('SIGKILL');
  };
  t.after(stop);
  // Unref'd: a pending bound must not keep the test process alive after the run.
  const timer = delay(limitMs, undefined, { ref: false }).then(() => 'timeout' as const);
  const result = await Promise.race([exited, timer]);
  if (result === 'timeout') {
    await stop();
    assert.fail(`${program} still running after ${limitMs} ms; stderr: ${stderr}`);
  }
  return { ...result, stdout, stderr, ms: Date.now() - started };
}

/** Asserts one complete sign-in: exit 0, one token on the callback that the proxy accepts, one launch. */
function assertSignedIn(run: Run, proxy: FakePomerium, callback: Callback, log: string, email = 'alice@corp.test'): void {
  assert.equal(run.code, 0, `exit ${run.code ?? run.signal}; stderr: ${run.stderr}`);
  assert.equal(callback.tokens.length, 1, `callback requests: ${JSON.stringify(callback.requests)}`);
  const claims = proxy.verifyToken(callback.tokens[0] ?? '');
  assert.ok(claims, 'the proxy rejects the token the callback got');
  assert.equal(claims.email, email);
  assert.equal(proxy.stats.loginRequests, 1);
  assert.equal(proxy.stats.signIns, 1);
  assert.equal(browserLaunches(log).length, 1);
  assert.doesNotMatch(run.stdout + run.stderr, /eyJ/, 'a token was printed');
}

describe('follow stand-in browser', () => {
  test('signs in and lands on the loopback callback', FOLLOW_TIMEOUT, async (t) => {
    const proxy = await proxyFor(t);
    const callback = await startCallback(t);
    const log = join(tempDirFor(t), 'launches.log');
    const signInUrl = await login(proxy, callback.url);
    const run = await launch(t, followBrowser, signInUrl, { log }, 15_000);
    assertSignedIn(run, proxy, callback, log);
    assert.deepEqual(callback.requests.length, 1);
    assert.match(browserLaunches(log)[0] ?? '', /^\d{4}-\d\d-\d\dT\S+ \d+ follow-browser$/);
  });

  test('BROWSER_EMAIL chooses the user and BROWSER_DELAY_MS waits first', FOLLOW_TIMEOUT, async (t) => {
    const proxy = await proxyFor(t);
    const callback = await startCallback(t);
    const log = join(tempDirFor(t), 'launches.log');
    const run = await launch(t, followBrowser, await login(proxy, callback.url), { log, email: 'bob@corp.test', delayMs: 300 }, 15_000);
    assertSignedIn(run, proxy, callback, log, 'bob@corp.test');
    assert.ok(run.ms >= 300, `took ${run.ms} ms`);
  });

  test('BROWSER_MODE=ignore records the launch and does nothing', FOLLOW_TIMEOUT, async (t) => {
    const proxy = await proxyFor(t);
    const callback = await startCallback(t);
    const log = join(tempDirFor(t), 'launches.log');
    const run = await launch(t, followBrowser, await login(proxy, callback.url), { log, mode: 'ignore' }, 15_000);
    assert.equal(run.code, 0, run.stderr);
    await delay(200); // nothing in flight should arrive late either
    assert.deepEqual(callback.requests, []);
    assert.equal(proxy.stats.signIns, 0);
    assert.equal(browserLaunches(log).length, 1);
  });

  test('BROWSER_MODE=print prints the URL and does nothing else', FOLLOW_TIMEOUT, async (t) => {
    const proxy = await proxyFor(t);
    const callback = await startCallback(t);
    const log = join(tempDirFor(t), 'launches.log');
    const signInUrl = await login(proxy, callback.url);
    const run = await launch(t, followBrowser, signInUrl, { log, mode: 'print' }, 15_000);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${signInUrl}\n`);
    assert.deepEqual(callback.requests, []);
    assert.equal(proxy.stats.signIns, 0);
    assert.equal(browserLaunches(log).length, 1);
  });

  test('exits non-zero when the callback does not answer 200', FOLLOW_TIMEOUT, async (t) => {
    const proxy = await proxyFor(t);
    const callback = await startCallback(t, 500);
    const run = await launch(t, followBrowser, await login(proxy, callback.url), {}, 15_000);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^follow-browser: GET http:\/\/127\.0\.0\.1:\d+\/\S+pomerium_jwt=\[hidden\] answered 500\n$/);
    assert.equal(callback.tokens.length, 1);
  });

  test('exits promptly with an error when the proxy is gone', FOLLOW_TIMEOUT, async (t) => {
    const proxy = await proxyFor(t);
    const callback = await startCallback(t);
    const signInUrl = await login(proxy, callback.url);
    await proxy.close();
    const run = await launch(t, followBrowser, signInUrl, {}, 15_000);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /ECONNREFUSED/);
    assert.ok(run.ms < 5000, `took ${run.ms} ms`);
  });

  test('bounds a callback server that never answers', FOLLOW_TIMEOUT, async (t) => {
    const proxy = await proxyFor(t);
    const silent = createServer(() => {}); // accepts, never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      silent.closeAllConnections();
      silent.close();
    });
    const port = (silent.address() as AddressInfo).port;
    const run = await launch(t, followBrowser, await login(proxy, `http://127.0.0.1:${port}/cb`), { timeoutMs: 500 }, 10_000);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /no answer from http:\/\/127\.0\.0\.1:\d+ within 500 ms/);
  });
});

describe('chromium stand-in browser', () => {
  test('signs in by clicking the button, lands on the callback, screenshots it', CHROMIUM_TIMEOUT, async (t) => {
    requireChromium();
    const proxy = await proxyFor(t);
    const callback = await startCallback(t);
    const dir = tempDirFor(t);
    const log = join(dir, 'launches.log');
    const screenshot = join(dir, 'callback.png');
    const run = await launch(t, chromiumBrowser, await login(proxy, callback.url), { log, screenshot, email: 'carol@corp.test' }, 75_000);
    assertSignedIn(run, proxy, callback, log, 'carol@corp.test');
    t.diagnostic(`chromium sign-in took ${run.ms} ms (launch to exit); callback requests: ${JSON.stringify(callback.requests)}`);
    assert.match(browserLaunches(log)[0] ?? '', / chromium-browser$/);
    assert.ok(existsSync(screenshot), 'no screenshot');
    assert.ok(statSync(screenshot).size > 1000, 'screenshot is (nearly) empty');
    assert.deepEqual([...readFileSync(screenshot).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'not a PNG');
  });

  test('BROWSER_MODE=ignore records the launch and starts no browser', CHROMIUM_TIMEOUT, async (t) => {
    requireChromium();
    const proxy = await proxyFor(t);
    const callback = await startCallback(t);
    const log = join(tempDirFor(t), 'launches.log');
    const run = await launch(t, chromiumBrowser, await login(proxy, callback.url), { log, mode: 'ignore' }, 15_000);
    assert.equal(run.code, 0, run.stderr);
    await delay(200);
    assert.deepEqual(callback.requests, []);
    assert.equal(proxy.stats.signIns, 0);
    assert.equal(browserLaunches(log).length, 1);
  });

  test('exits non-zero with one line when the callback does not answer 200', CHROMIUM_TIMEOUT, async (t) => {
    requireChromium();
    const proxy = await proxyFor(t);
    const callback = await startCallback(t, 500);
    const run = await launch(t, chromiumBrowser, await login(proxy, callback.url), {}, 75_000);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^chromium-browser: callback http:\/\/127\.0\.0\.1:\d+\/\S+pomerium_jwt=\[hidden\] answered 500\n$/);
  });
});
