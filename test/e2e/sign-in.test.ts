/**
 * Browser sign-in end to end: the real CLI, the local proxy's login API and sign-in page, a
 * stand-in browser launched through --browser-cmd (scripted, or real Chromium), the file
 * credential store in a temporary XDG_CACHE_HOME, and many processes sharing it.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { browserEnv, browserFailures, browserLaunches, chromiumBrowser, followBrowser, requireChromium } from '../helpers/browsers/index.js';
import { BURROW_BIN, runBurrow, spawnBurrow, startListener, storedTokens, tempDir } from '../helpers/burrow.js';
import { DEST, eventually, startWorld, suiteWorld } from '../helpers/world.js';

describe('burrow tcp: browser sign-in', () => {
  const world = suiteWorld({
    extraRoutes: [{ from: 'tcp+https://bob-only.corp.test:22', to: `tcp://127.0.0.1:1`, allow: ['bob@corp.test'] }],
  });

  /** A fresh user: own cache dir, own browser log. */
  function user(extra: Record<string, string> = {}) {
    const cache = tempDir('burrow-user-');
    const log = join(cache, 'browser.log');
    const env = { XDG_CACHE_HOME: cache, ...browserEnv({ log }), ...extra };
    return { cache, log, env, args: (dest = DEST, ...more: string[]) => world.tcpArgs(dest, '--browser-cmd', followBrowser, ...more) };
  }

  it('signs in once through the browser, caches the token, and the next process reuses it silently', async () => {
    const u = user();
    const signInsBefore = world.proxy.stats.signIns;
    const first = await runBurrow(u.args(DEST, '--listen', '-'), { env: u.env, input: 'first' });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout.toString(), 'first');
    assert.match(first.stderr, /opened your browser to sign in to https:\/\/localhost:\d+; waiting up to 5 min/);
    assert.equal(browserLaunches(u.log).length, 1);
    assert.equal(world.proxy.stats.signIns - signInsBefore, 1);

    const second = await runBurrow(u.args(DEST, '--listen', '-'), { env: u.env, input: 'second' });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.toString(), 'second');
    assert.equal(second.stderr, '', 'silent: no browser, no message');
    assert.equal(browserLaunches(u.log).length, 1, 'no second browser launch');
    assert.equal(world.proxy.stats.signIns - signInsBefore, 1);

    const [token] = storedTokens(u.cache);
    assert.ok(token && world.proxy.verifyToken(token), 'a valid token is cached');
    for (const out of [first.stderr, second.stderr, first.stdout.toString()]) assert.ok(!out.includes(token!), 'token never printed');
  });

  it('no --browser-cmd, no $BROWSER: the desktop default browser (the `open` package and its xdg-open) signs in', async () => {
    // A desktop session as xdg-open sees one without a desktop environment and without .desktop
    // handlers (no XDG data directories): it tries the browsers it knows on the PATH, the first
    // being x-www-browser, here the stand-in browser. The `open` package is loaded on demand,
    // from outside the bundle, as the CLI runs it.
    const empty = tempDir('burrow-xdg-data-');
    const bin = join(empty, 'bin');
    mkdirSync(bin);
    symlinkSync(followBrowser, join(bin, 'x-www-browser'));
    const u = user({ DISPLAY: ':99', XDG_DATA_HOME: empty, XDG_DATA_DIRS: empty, PATH: `${bin}:${process.env.PATH}` });
    const result = await runBurrow(world.tcpArgs(DEST, '--listen', '-'), { env: u.env, input: 'via xdg-open' });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), 'via xdg-open');
    assert.match(result.stderr, /opened your browser to sign in/);
    assert.doesNotMatch(result.stderr, /Warning|warning/);
    assert.equal(browserLaunches(u.log).length, 1);
    assert.equal(storedTokens(u.cache).length, 1);
  });

  it('no keychain here: the fallback to files is said once, when the token is saved, not on every run', async () => {
    const u = user({ BURROW_CREDENTIAL_STORE: undefined as unknown as string, DBUS_SESSION_BUS_ADDRESS: undefined as unknown as string });
    const first = await runBurrow(u.args(DEST, '--listen', '-'), { env: u.env, input: 'a' });
    assert.equal(first.stdout.toString(), 'a', first.stderr);
    const fallback = first.stderr.split('\n').filter((l) => l.includes('the OS keychain is not usable'));
    assert.equal(fallback.length, 1, first.stderr);
    assert.match(fallback[0]!, /keeping sign-ins in files under .*burrow\/credentials instead$/);
    const second = await runBurrow(u.args(DEST, '--listen', '-'), { env: u.env, input: 'b' });
    assert.equal(second.stdout.toString(), 'b');
    assert.equal(second.stderr, '', 'a cached token is used silently');
  });

  it('a credential store that cannot be written: sign-in still works, one warning, token kept in memory', async () => {
    const u = user();
    // Root ignores permission bits, so block the directory with a file where it should be.
    mkdirSync(join(u.cache, 'burrow'), { recursive: true });
    writeFileSync(join(u.cache, 'burrow', 'credentials'), 'not a directory');
    const burrow = await startListener(u.args().slice(1), { env: u.env });
    const net = await import('node:net');
    for (const word of ['one', 'two']) {
      const got = await new Promise<string>((resolve, reject) => {
        const socket = net.connect({ host: '127.0.0.1', port: burrow.port, allowHalfOpen: true }, () => socket.end(word));
        let text = '';
        socket.setEncoding('utf8').on('data', (d: string) => (text += d));
        socket.on('end', () => resolve(text)).on('error', reject);
      });
      assert.equal(got, word, burrow.stderr());
    }
    assert.equal(browserLaunches(u.log).length, 1, 'the second connection used the token kept in memory');
    const warnings = burrow.stderr().split('\n').filter((l) => l.includes('kept for this process only'));
    assert.equal(warnings.length, 1, burrow.stderr());
    assert.match(warnings[0]!, /^burrow: warning: cannot save the sign-in to .+; the sign-in is kept for this process only$/);
    await burrow.stop();
  });

  it('listener mode: many connections needing sign-in at once share one browser prompt', async () => {
    const u = user({ BROWSER_DELAY_MS: '300' });
    const burrow = await startListener(u.args().slice(1), { env: u.env });
    const net = await import('node:net');
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        new Promise<string>((resolve, reject) => {
          const socket = net.connect({ host: '127.0.0.1', port: burrow.port, allowHalfOpen: true }, () => socket.end(`conn-${i}`));
          let got = '';
          socket.setEncoding('utf8').on('data', (d: string) => (got += d));
          socket.on('end', () => resolve(got)).on('error', reject);
        }),
      ),
    );
    assert.deepEqual(results, Array.from({ length: 6 }, (_, i) => `conn-${i}`));
    assert.equal(browserLaunches(u.log).length, 1);
    await burrow.stop();
  });

  it('10 parallel stdio processes with no token: exactly one browser launch, all 10 tunnels work', async () => {
    // Generous browser timeouts: this test once failed under a machine loaded by other suites.
    const u = user({ BROWSER_DELAY_MS: '800', BROWSER_TIMEOUT_MS: '30000' });
    const before = world.proxy.stats.signIns;
    const runs = await Promise.all(
      Array.from({ length: 10 }, (_, i) => runBurrow(u.args(DEST, '--listen', '-'), { env: u.env, input: `p${i}`, timeoutMs: 60_000 })),
    );
    runs.forEach((r, i) => {
      assert.equal(r.code, 0, `process ${i}: ${r.stderr}`);
      assert.equal(r.stdout.toString(), `p${i}`);
    });
    assert.equal(browserLaunches(u.log).length, 1, 'one browser for ten processes');
    assert.equal(world.proxy.stats.signIns - before, 1);
    const waiting = runs.filter((r) => /another burrow process \(pid \d+\) is signing in/.test(r.stderr)).length;
    assert.ok(waiting >= 1, 'the others said they were waiting');
  });

  it('an expired token is not sent: with 2-second tokens the next connection signs in again', async () => {
    const w = await startWorld({ tokenTtlSeconds: 2 });
    try {
      const u = user();
      const args = w.tcpArgs(DEST, '--listen', '-', '--browser-cmd', followBrowser);
      const a = await runBurrow(args, { env: u.env, input: 'a' });
      assert.equal(a.stdout.toString(), 'a', a.stderr);
      await new Promise((r) => setTimeout(r, 2200));
      const b = await runBurrow(args, { env: u.env, input: 'b' });
      assert.equal(b.stdout.toString(), 'b', b.stderr);
      assert.equal(browserLaunches(u.log).length, 2);
      assert.equal(w.proxy.stats.signIns, 2);
      const refused = w.proxy.events.filter((e) => e.method === 'CONNECT' && e.status === 302);
      assert.equal(refused.length, 2, 'each run started without a usable token');
      assert.ok(refused.every((e) => !e.hadToken), 'the expired token was never sent');
    } finally {
      await w.close();
    }
  });

  it('a token refused right after a fresh sign-in is an error, not a loop (exit 3)', async () => {
    const w = await startWorld({ respond: (req) => (req.method === 'CONNECT' ? { status: 302, headers: { Location: '/' } } : undefined) });
    try {
      const u = user();
      const r = await runBurrow(w.tcpArgs(DEST, '--listen', '-', '--browser-cmd', followBrowser), { env: u.env });
      assert.equal(r.code, ExitCode.authRequired);
      assert.match(r.stderr, /refused the token it issued moments ago/);
      assert.equal(w.proxy.stats.signIns, 1);
      assert.equal(browserLaunches(u.log).length, 1);
    } finally {
      await w.close();
    }
  });

  it('403 keeps the token; logout removes it; status lists sign-ins without tokens', async () => {
    const u = user();
    const denied = await runBurrow(u.args('bob-only.corp.test:22', '--listen', '-'), { env: u.env });
    assert.equal(denied.code, ExitCode.accessDenied);
    assert.equal(browserLaunches(u.log).length, 1);
    const [token] = storedTokens(u.cache);
    assert.ok(token, 'still cached after 403');

    // status itself: test/e2e/status.test.ts.
    const status = await runBurrow(['status'], { env: u.env });
    assert.equal(status.code, 0);
    assert.match(status.stderr, new RegExp(`signed in to ${world.proxy.url.replace(/[/.]/g, '\\$&')} as alice@corp\\.test \\(expires in 60 min\\)`));
    assert.ok(!status.stderr.includes(token!), 'no token in status');

    const logout = await runBurrow(['logout', world.proxy.url], { env: u.env });
    assert.equal(logout.code, 0, logout.stderr);
    assert.match(logout.stderr, /signed out of https:\/\/localhost:\d+/);
    assert.deepEqual(storedTokens(u.cache), []);
    assert.equal((await runBurrow(['status'], { env: u.env })).code, ExitCode.authRequired, 'no sign-in left');

    const again = await runBurrow(u.args(DEST, '--listen', '-'), { env: u.env, input: 'x' });
    assert.equal(again.stdout.toString(), 'x', again.stderr);
    assert.equal(browserLaunches(u.log).length, 2, 'signed in again after logout');
  });

  it('burrow login signs in ahead of time; cache location and cache clear', async () => {
    const u = user();
    const login = await runBurrow(['login', world.proxy.url, '--browser-cmd', followBrowser, '--alternate-ca-path', world.proxy.caPath], {
      env: u.env,
    });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stderr, /signed in to https:\/\/localhost:\d+ as alice@corp\.test \(expires in 60 min\)/);
    const tunnel = await runBurrow(u.args(DEST, '--listen', '-'), { env: u.env, input: 'y' });
    assert.equal(tunnel.stdout.toString(), 'y');
    assert.equal(browserLaunches(u.log).length, 1, 'the tunnel used the token from login');

    const location = await runBurrow(['cache', 'location'], { env: u.env });
    assert.equal(location.stdout.toString().trim(), join(u.cache, 'burrow'));
    const clear = await runBurrow(['cache', 'clear'], { env: u.env });
    assert.equal(clear.code, 0);
    assert.match(clear.stderr, /forgot 1 cached sign-in/);
    assert.deepEqual(storedTokens(u.cache), []);
  });

  it('headless on another device: the final address pasted on the terminal completes the sign-in', async () => {
    // A real terminal for burrow: `script` (util-linux) runs it on a pseudo-terminal, so its
    // /dev/tty is one we can type into. Listener mode, so stdin is not the tunnel here.
    const u = user();
    const { spawn } = await import('node:child_process');
    const command = [process.execPath, BURROW_BIN, ...world.tcpArgs(), '--no-browser']
      .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
      .join(' ');
    const term = spawn('script', ['-qfec', command, '/dev/null'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, XDG_CACHE_HOME: u.cache, BURROW_CREDENTIAL_STORE: 'file', NO_COLOR: '1', TERM: 'dumb' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let screen = '';
    term.stdout.setEncoding('utf8').on('data', (d: string) => (screen += d));
    const exited = new Promise((resolve) => term.once('exit', resolve));
    try {
      await eventually(() => /127\.0\.0\.1:(\d+)\r?\n/.test(screen), 15_000, () => `the listener address; the terminal shows: ${screen}`);
      const port = Number(/127\.0\.0\.1:(\d+)\r?\n/.exec(screen)![1]);
      const net = await import('node:net');
      const reply = new Promise<string>((resolve) => {
        const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => socket.end('pasted'));
        let got = '';
        socket.setEncoding('utf8').on('data', (d: string) => (got += d));
        // Settled either way (an early reset must not become an unhandled rejection), and what
        // burrow printed is in the assertion message below.
        socket.on('end', () => resolve(got)).on('error', (error) => resolve(`(${error.message}) ${got}`));
      });
      // Both lines, which may arrive in separate reads.
      await eventually(
        () => /open this address in a browser: (\S+)/.test(screen) && /paste here the address it ends on/.test(screen),
        15_000,
        () => `the sign-in address and the paste instructions; the terminal shows: ${screen}`,
      );
      const signInUrl = new URL(/open this address in a browser: (\S+)/.exec(screen)![1]!);
      // The other device: sign in there and note where the browser ends up (it cannot load it).
      signInUrl.searchParams.set('submit', '1');
      const { request } = await import('node:https');
      const finalAddress = await new Promise<string>((resolve, reject) => {
        request(signInUrl, { ca: readFileSync(world.proxy.caPath), agent: false }, (res) => {
          res.resume();
          resolve(String(res.headers.location));
        })
          .on('error', reject)
          .end();
      });
      assert.match(finalAddress, /pomerium_jwt=/);
      term.stdin.write('not the right thing\n');
      await eventually(() => screen.includes('that is not the address with pomerium_jwt='), 10_000, 'the retry hint');
      term.stdin.write(`${finalAddress}\n`);
      assert.equal(await reply, 'pasted', `the terminal shows: ${screen}`);
      assert.equal(storedTokens(u.cache).length, 1, 'the pasted token is cached');
      const token = storedTokens(u.cache)[0]!;
      assert.ok(!screen.replace(finalAddress, '').includes(token), 'burrow itself never echoes the token');
    } finally {
      term.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      term.kill('SIGKILL');
    }
  });

  it('gives up after --login-timeout with a clear message (exit 3); Ctrl-C cancels (exit 130)', async () => {
    const u = user({ BROWSER_MODE: 'ignore' });
    const slow = await runBurrow(u.args(DEST, '--listen', '-', '--login-timeout', '1'), { env: u.env });
    assert.equal(slow.code, ExitCode.authRequired);
    assert.match(slow.stderr, /burrow: error: sign-in to https:\/\/localhost:\d+ did not finish within 1 s — /);

    const proc = spawnBurrow(u.args(DEST, '--listen', '-'), { env: u.env });
    await eventually(() => proc.stderr().includes('opened your browser'), 10_000, 'the sign-in to start');
    proc.child.kill('SIGINT');
    assert.equal(await proc.exited, ExitCode.interrupted);
    assert.doesNotMatch(proc.stderr(), /error/, 'an interruption the user asked for is not an error');
  });

  it('a real browser: headless Chromium clicks "Sign in" and the tunnel works', async () => {
    requireChromium();
    const u = user();
    const screenshot = join(u.cache, 'signed-in.png');
    // Bounded well below the default 5 min, so a browser that never signs in fails the test with its reason.
    const burrow = await startListener([...world.tcpArgs().slice(1), '--browser-cmd', chromiumBrowser, '--login-timeout', '120'], {
      env: { ...u.env, ...browserEnv({ log: u.log, screenshot }) },
    });
    const net = await import('node:net');
    const got = await new Promise<string>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port: burrow.port, allowHalfOpen: true }, () => socket.end('via chromium'));
      let text = '';
      socket.setEncoding('utf8').on('data', (d: string) => (text += d));
      socket.on('end', () => resolve(text)).on('error', (error) => resolve(`(${error.message}) ${text}`));
    });
    assert.equal(got, 'via chromium', `burrow:\n${burrow.stderr()}\nbrowser:\n${browserFailures(u.log)}`);
    assert.equal(browserLaunches(u.log).length, 1);
    // The browser saves its screenshot after the callback answered; the tunnel may be faster.
    await eventually(() => existsSync(screenshot) && readFileSync(screenshot).length > 1000, 20_000, 'the screenshot');
    await burrow.stop();
  });
});
