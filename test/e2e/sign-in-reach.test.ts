/**
 * Reaching the person who signs in, end to end with the real CLI: the sign-in address is shown
 * whatever the browser does (a browser command that fails is reported), burrow gives up at once
 * when nobody can sign in (no browser and no terminal: cron, CI, an IDE's background fetch) but
 * waits when a terminal makes a browser on another device possible, and tokens far beyond
 * Node's 16 KiB header limit (a user in many groups) get through the callback, the cache and
 * the tunnel.
 *
 * "No terminal" is made with `setsid`: a new session has no controlling terminal, so /dev/tty
 * cannot be opened, whatever terminal the test itself runs in. "A terminal" is a real pty
 * (test/helpers/terminal.ts).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { duration } from '../../src/output/format.js';
import { text } from '../../src/output/messages.js';
import { browserEnv, browserFailures, browserLaunches, chromiumBrowser, followBrowser, requireChromium } from '../helpers/browsers/index.js';
import { BURROW_BIN, runBurrow, spawnBurrow, startListener, storedTokens, tempDir, type BurrowProcess } from '../helpers/burrow.js';
import { runInTerminal, stopAllTerminals } from '../helpers/terminal.js';
import { DEST, eventually, suiteWorld } from '../helpers/world.js';

/** A process of its own session: no controlling terminal, so no /dev/tty. */
const NO_TERMINAL = ['setsid', '-w'];

/** The proxy's sign-in page, as burrow prints it (the address never carries a token). */
const SIGN_IN_URL = /(https:\/\/localhost:\d+\/\.pomerium\/sign_in\?\S+)/;

/** Enough groups for a token of about 27 KiB, far past Node's default 16 KiB request head. */
const MANY_GROUPS = { groups: Array.from({ length: 750 }, (_, i) => `corp-team-${String(i).padStart(4, '0')}-engineers`) };

/** A browser command that records its arguments, one a line, in $ARGS_FILE and exits 3. */
function failingBrowser(dir: string): string {
  const path = join(dir, 'broken-browser');
  writeFileSync(path, '#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\nexit 3\n');
  chmodSync(path, 0o755);
  return path;
}

/** "Another device": the test itself, not burrow, follows the printed address with the stand-in browser. */
async function signInElsewhere(url: string): Promise<void> {
  const browser = spawn(followBrowser, [url], { env: { ...process.env, ...browserEnv({}) }, stdio: 'ignore' });
  const timer = setTimeout(() => browser.kill('SIGKILL'), 30_000);
  const code = await new Promise((resolve) => browser.once('exit', resolve));
  clearTimeout(timer);
  assert.equal(code, 0, 'the stand-in browser signed in');
}

async function printedUrl(proc: BurrowProcess): Promise<string> {
  await eventually(() => SIGN_IN_URL.test(proc.stderr()), 15_000, () => `the sign-in address; stderr: ${proc.stderr()}`);
  return SIGN_IN_URL.exec(proc.stderr())![1]!;
}

/** Sends `word` through a listener at `port` and resolves with what came back. */
function through(port: number, word: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => socket.end(word));
    let got = '';
    socket.setEncoding('utf8').on('data', (d: string) => (got += d));
    socket.on('end', () => resolve(got)).on('error', (error) => resolve(`(${error.message}) ${got}`));
  });
}

describe('burrow sign-in: the address is always shown, and a browser that fails is reported', () => {
  const world = suiteWorld();

  it('--browser-cmd exits 3: the address is on stderr, one line says so, and signing in elsewhere finishes', async () => {
    const dir = tempDir('burrow-broken-browser-');
    const browser = failingBrowser(dir);
    const env = { XDG_CACHE_HOME: dir, ARGS_FILE: join(dir, 'args') };
    const proc = spawnBurrow([...world.tcpArgs(DEST, '--listen', '-'), '--browser-cmd', browser], { env, collectStdout: false, wrapper: NO_TERMINAL });
    let out = '';
    proc.child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const url = await printedUrl(proc);
    const failed = text.browserFailed(text.browserCommandName(browser, false), text.browserExited(3));
    await eventually(() => proc.stderr().includes(failed), 10_000, () => `the failure line; stderr: ${proc.stderr()}`);
    // The waiting line follows the failure line, as soon as the failure is handled.
    await eventually(() => proc.stderr().includes(text.waitingForBrowser('5 min')), 10_000, () => `the waiting line; stderr: ${proc.stderr()}`);
    assert.equal(readFileSync(env.ARGS_FILE, 'utf8'), `${url}\n`, 'the browser got the address as its only argument');
    assert.deepEqual(proc.stderr().split('\n').slice(0, 3), [
      `burrow: ${text.browserOpened(world.proxy.url, '5 min', url)}`,
      `burrow: warning: ${failed}`,
      `burrow: ${text.waitingForBrowser('5 min')}`,
    ]);
    await signInElsewhere(url);
    proc.child.stdin.end('after a broken browser');
    assert.equal(await proc.exited, 0, proc.stderr());
    assert.equal(out, 'after a broken browser');
  });

  it('$BROWSER is a command line: %s is the address; BROWSER=none opens nothing', async () => {
    const dir = tempDir('burrow-browser-env-');
    const browser = failingBrowser(dir);
    const env = { XDG_CACHE_HOME: dir, ARGS_FILE: join(dir, 'args'), BROWSER: `${browser} --new-window --url=%s` };
    const proc = spawnBurrow(world.tcpArgs(DEST, '--listen', '-', '--login-timeout', '60'), { env, wrapper: NO_TERMINAL });
    const url = await printedUrl(proc);
    const failed = text.browserFailed(text.browserCommandName(browser, true), text.browserExited(3));
    await eventually(() => proc.stderr().includes(failed), 10_000, () => `the failure line; stderr: ${proc.stderr()}`);
    assert.equal(readFileSync(env.ARGS_FILE, 'utf8'), `--new-window\n--url=${url}\n`);
    await proc.stop();

    // BROWSER=none and no terminal: nobody can sign in, so no browser, no wait.
    const none = await runBurrow(world.tcpArgs(DEST, '--listen', '-'), { env: { ...env, BROWSER: 'none', DISPLAY: ':0' }, wrapper: NO_TERMINAL });
    assert.equal(none.code, ExitCode.authRequired);
    assert.match(none.stderr, new RegExp(`^burrow: error: cannot sign in to .*: no browser \\(BROWSER=none\\)`));
  });

  it('the default browser (the `open` package and its xdg-open) fails: said in one line, the address stays', async () => {
    // A desktop session whose every browser xdg-open knows fails (as under ssh -X or WSL):
    // xdg-open tries them all, then exits 3. No desktop environment, no .desktop handlers.
    const dir = tempDir('burrow-xdg-');
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const broken = failingBrowser(dir);
    for (const name of ['x-www-browser', 'firefox', 'iceweasel', 'seamonkey', 'mozilla', 'epiphany', 'konqueror', 'chromium', 'chromium-browser', 'google-chrome', 'www-browser', 'links2', 'elinks', 'links', 'lynx', 'w3m']) {
      symlinkSync(broken, join(bin, name));
    }
    const env = { XDG_CACHE_HOME: dir, ARGS_FILE: join(dir, 'args'), DISPLAY: ':99', XDG_DATA_HOME: dir, XDG_DATA_DIRS: dir, PATH: `${bin}:${process.env.PATH}` };
    const proc = spawnBurrow(world.tcpArgs(DEST, '--listen', '-', '--login-timeout', '60'), { env, wrapper: NO_TERMINAL });
    const url = await printedUrl(proc);
    assert.ok(proc.stderr().includes(`burrow: ${text.browserOpened(world.proxy.url, duration(60), url)}`), proc.stderr());
    const failed = text.browserFailed(text.defaultBrowserName, text.browserExited(3));
    await eventually(() => proc.stderr().includes(failed), 15_000, () => `the failure line; stderr: ${proc.stderr()}`);
    assert.ok(existsSync(env.ARGS_FILE), 'xdg-open did try a browser');
    await proc.stop();
  });
});

describe('burrow sign-in: nobody to sign in', () => {
  const world = suiteWorld();
  after(() => stopAllTerminals());

  it('no browser and no terminal: exit 3 at once with one line naming burrow login and the service-account options', async () => {
    const origin = world.proxy.url;
    const line = (why: Parameters<typeof text.noBrowserBecause>[0]) =>
      `burrow: error: ${text.noWayToSignIn(origin, text.noBrowserBecause(why))} — ${text.noWayToSignInHint(origin)}\n`;
    const logins = world.proxy.stats.loginRequests;
    for (const [why, extra, env] of [
      ['no-browser', ['--no-browser'], { DISPLAY: ':0' }],
      ['no-display', [], {}],
      ['browser-none', [], { BROWSER: 'none' }],
    ] as const) {
      const started = Date.now();
      const r = await runBurrow([...world.tcpArgs(DEST, '--listen', '-'), ...extra], { env, wrapper: NO_TERMINAL });
      assert.equal(r.code, ExitCode.authRequired, r.stderr);
      assert.equal(r.stderr, line(why));
      assert.ok(r.stderr.includes(`"burrow login ${origin}"`) && r.stderr.includes('--service-account-file'));
      assert.ok(Date.now() - started < 10_000, `gave up at once (${Date.now() - started} ms), not after --login-timeout`);
    }
    assert.equal(world.proxy.stats.loginRequests, logins, 'no sign-in was started');

    const json = await runBurrow([...world.tcpArgs(DEST, '--listen', '-'), '--no-browser', '--json', '--log-level', 'warn'], { wrapper: NO_TERMINAL });
    const events = json.stderr.trim().split('\n').map((l) => JSON.parse(l) as { event: string; code?: string; exit_code?: number });
    assert.deepEqual(events.map((e) => [e.event, e.code, e.exit_code]), [['failed', 'BURROW_LOGIN_UNAVAILABLE', 3]]);

    const login = await runBurrow(['login', origin, '--no-browser', '--alternate-ca-path', world.proxy.caPath], { wrapper: NO_TERMINAL });
    assert.equal(login.code, ExitCode.authRequired);
    assert.equal(login.stderr, line('no-browser'));
  });

  it('a cached token still works without browser or terminal; so does a service account', async () => {
    const cache = tempDir('burrow-cron-');
    const login = await runBurrow(['login', world.proxy.url, '--browser-cmd', followBrowser, '--alternate-ca-path', world.proxy.caPath], {
      env: { XDG_CACHE_HOME: cache },
    });
    assert.equal(login.code, 0, login.stderr);
    const cron = await runBurrow(world.tcpArgs(DEST, '--listen', '-', '--no-browser'), { env: { XDG_CACHE_HOME: cache }, input: 'cron', wrapper: NO_TERMINAL });
    assert.equal(cron.code, 0, cron.stderr);
    assert.equal(cron.stdout.toString(), 'cron');
    const machine = await runBurrow(world.tcpArgs(DEST, '--listen', '-', '--no-browser'), { env: world.env, input: 'machine', wrapper: NO_TERMINAL });
    assert.equal(machine.stdout.toString(), 'machine', machine.stderr);
  });

  it('no browser but a terminal (a real pty): it waits, prints the address, and a browser elsewhere finishes', async () => {
    const cache = tempDir('burrow-pty-');
    const term = runInTerminal([process.execPath, BURROW_BIN, ...world.tcpArgs(), '--no-browser'], {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      XDG_CACHE_HOME: cache,
      BURROW_CREDENTIAL_STORE: 'file',
      NO_COLOR: '1',
      TERM: 'dumb',
    });
    await eventually(() => /127\.0\.0\.1:(\d+)\r?\n/.test(term.screen()), 15_000, () => `the listener address; the terminal shows: ${term.screen()}`);
    const port = Number(/127\.0\.0\.1:(\d+)\r?\n/.exec(term.screen())![1]);
    const reply = through(port, 'from a pty');
    await eventually(() => SIGN_IN_URL.test(term.screen()) && term.screen().includes(text.pasteInstructions('5 min')), 15_000, () => term.screen());
    const url = SIGN_IN_URL.exec(term.screen())![1]!;
    assert.ok(term.screen().includes(text.openThisUrl(world.proxy.url, url)));
    // Still waiting, not failed: the person at the terminal may use another device.
    await new Promise((r) => setTimeout(r, 500));
    assert.doesNotMatch(term.screen(), /error/);
    await signInElsewhere(url);
    assert.equal(await reply, 'from a pty', term.screen());
    assert.equal(storedTokens(cache).length, 1);
    await term.stop();
  });
});

describe('burrow sign-in: a 27 KiB token (a user in many groups)', () => {
  const world = suiteWorld({ tokenClaims: MANY_GROUPS });

  it('the fake proxy issues one that big', () => {
    const token = world.proxy.mintToken({ extraClaims: MANY_GROUPS });
    assert.ok(token.length > 26 * 1024 && token.length < 29 * 1024, `${token.length} bytes`);
  });

  it('through the browser callback, into the cache, and reused by the next process', async () => {
    const cache = tempDir('burrow-long-');
    const log = join(cache, 'browser.log');
    const env = { XDG_CACHE_HOME: cache, ...browserEnv({ log }) };
    const args = world.tcpArgs(DEST, '--listen', '-', '--browser-cmd', followBrowser);
    const first = await runBurrow(args, { env, input: 'long one' });
    assert.equal(first.code, 0, `${first.stderr}${browserFailures(log)}`);
    assert.equal(first.stdout.toString(), 'long one');
    const [token] = storedTokens(cache);
    assert.ok(token && token.length > 26 * 1024, 'the long token is cached');
    assert.ok(world.proxy.verifyToken(token)?.groups, 'with its groups');

    const second = await runBurrow(args, { env, input: 'long two' });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.toString(), 'long two');
    assert.equal(second.stderr, '', 'the cached token was used silently');
    assert.equal(browserLaunches(log).length, 1);
    const connects = world.proxy.events.filter((e) => e.method === 'CONNECT' && e.status === 200 && e.email === 'alice@corp.test');
    assert.ok(connects.length >= 2, 'the proxy took the long token in the CONNECT head');
  });

  it('as a service account, over CONNECT and over a WebSocket upgrade', async () => {
    const token = world.proxy.mintToken({ extraClaims: MANY_GROUPS });
    const file = join(tempDir('burrow-sa-'), 'token.jwt');
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    const r = await runBurrow(world.tcpArgs(DEST, '--listen', '-', '--service-account-file', file), { input: 'machine, many groups' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'machine, many groups');
    assert.ok(!r.stderr.includes(token.slice(0, 40)));

    world.proxy.addRoute({ from: 'wss://ws.corp.test/echo', to: `tcp://${world.echo.address}` });
    const wss = `${world.proxy.url.replace(/^https:/, 'wss:')}/echo`;
    const ws = await runBurrow(['tcp', wss, '--listen', '-', '--alternate-ca-path', world.proxy.caPath, '--service-account-file', file], {
      input: 'websocket, many groups',
    });
    assert.equal(ws.code, 0, ws.stderr);
    assert.equal(ws.stdout.toString(), 'websocket, many groups');
    assert.equal(world.proxy.stats.upgradesByStatus[101], 1, 'the upgrade carrying the long token was taken');
  });

  it('a real browser: headless Chromium follows the redirect with the long token to the callback', async () => {
    requireChromium();
    const cache = tempDir('burrow-long-chromium-');
    const log = join(cache, 'browser.log');
    const burrow = await startListener([...world.tcpArgs().slice(1), '--browser-cmd', chromiumBrowser, '--login-timeout', '120'], {
      env: { XDG_CACHE_HOME: cache, ...browserEnv({ log }) },
    });
    const got = await through(burrow.port, 'chromium, many groups');
    assert.equal(got, 'chromium, many groups', `burrow:\n${burrow.stderr()}\nbrowser:\n${browserFailures(log)}`);
    assert.ok(storedTokens(cache)[0]!.length > 26 * 1024);
    await burrow.stop();
  });
});
