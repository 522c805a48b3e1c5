/**
 * burrow tcp over WebSocket, end to end: the real CLI against two real peers it did not write —
 * Debian's `websockify` (TLS, in front of an echo server and of a real sshd) — and the local
 * proxy's `wss://` routes (sign-in, policy answers, keepalive, idle timeouts, backpressure, many
 * tunnels, extra headers), and that of the two transports only WebSocket, whose frames are
 * JavaScript, keeps V8's optimizing compiler in stdio mode.
 *
 * WebSocket has no half-close, and a gateway may stop forwarding the moment it reads a close
 * frame (websockify shuts its target down at once). burrow therefore holds its close frame after
 * local EOF until the server has been quiet for a moment (src/tunnel/websocket.ts, "linger");
 * the test that ends stdin right after 20 MB checks that every echoed byte still arrives.
 *
 * When websockify (or sshd/ssh) is missing these tests fail with the package to install, never skip.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { ExitCode } from '../../src/errors.js';
import { oneLineFailure } from '../helpers/assertions.js';
import { browserEnv, browserLaunches, followBrowser } from '../helpers/browsers/index.js';
import { BURROW_BIN, runBurrow, spawnBurrow, startListener, stdioEcho, stopAll, tempDir } from '../helpers/burrow.js';
import { payload, sha256 } from '../helpers/data.js';
import { echoThrough, startEchoServer, startSourceServer, type TcpServer } from '../helpers/echo-server.js';
import { type FakePomerium, type FakePomeriumOptions, startFakePomerium } from '../helpers/fake-pomerium.js';
import { fixture } from '../helpers/fixtures.js';
import { rssBytes } from '../helpers/load.js';
import { missingSshTools, run, shQuote, type Sshd, startSshd, stopAllCommands } from '../helpers/sshd.js';
import { requireWebsockify, startWebsockify, stopAllWebsockify, type Websockify } from '../helpers/websockify.js';
import { eventually, within } from '../helpers/world.js';
import { freePort } from '../helpers/processes.js';

const MB = 1024 * 1024;
const CA = fixture('ca.pem');

/** `tcp <url> --alternate-ca-path ca.pem …`: a wss:// destination names its gateway itself. */
const wsArgs = (url: string, ...extra: string[]) => ['tcp', url, '--alternate-ca-path', CA, ...extra];

/** `wss://localhost:PORT<path>` of a local proxy. */
const wssOf = (proxy: FakePomerium, path: string) => `${proxy.url.replace(/^https:/, 'wss:')}${path}`;

/** A proxy of its own for one test (wsAutoPong, wsIdleTimeoutMs…), with `/echo` to `echo`. */
async function echoProxy(echo: TcpServer, options: FakePomeriumOptions): Promise<FakePomerium> {
  return startFakePomerium({ ...options, routes: [{ from: 'wss://ws.corp.test/echo', to: `tcp://${echo.address}` }] });
}

describe('burrow tcp over WebSocket', () => {
  let echo: TcpServer;
  let proxy: FakePomerium;
  let gateway: Websockify;
  /** BURROW_SERVICE_ACCOUNT with a token of `proxy` (alice). */
  let env: NodeJS.ProcessEnv;
  let token: string;

  before(async () => {
    requireWebsockify();
    echo = await startEchoServer();
    gateway = await startWebsockify({ target: echo.address, tls: true });
    proxy = await startFakePomerium({
      routes: [
        { from: 'wss://ws.corp.test/echo', to: `tcp://${echo.address}` },
        { from: 'wss://ws.corp.test/bob', to: `tcp://${echo.address}`, allow: ['bob@corp.test'] },
        { from: 'wss://ws.corp.test/down', to: `tcp://127.0.0.1:${await freePort()}` },
        { from: 'tcp+https://git.corp.test:22', to: `tcp://${echo.address}` },
      ],
    });
    token = proxy.mintToken();
    env = { BURROW_SERVICE_ACCOUNT: token };
  });
  after(async () => {
    await stopAll();
    await stopAllWebsockify();
    await proxy?.close();
    await echo?.close();
  });

  describe('choosing the transport', () => {
    it('--transport websocket with a host:port destination, or connect with a wss:// one, is a usage error (exit 2)', { timeout: 30_000 }, async () => {
      const a = await runBurrow(['tcp', 'git.corp.test:22', '--pomerium-url', proxy.url, '--alternate-ca-path', CA, '--transport', 'websocket', '--listen', '-'], { env });
      assert.equal(a.code, ExitCode.usage, a.stderr);
      oneLineFailure(a.stderr);
      const b = await runBurrow(wsArgs(wssOf(proxy, '/echo'), '--transport', 'connect', '--listen', '-'), { env });
      assert.equal(b.code, ExitCode.usage, b.stderr);
      oneLineFailure(b.stderr);
      const c = await runBurrow(wsArgs(wssOf(proxy, '/echo'), '--transport', 'pigeon', '--listen', '-'), { env });
      assert.equal(c.code, ExitCode.usage, c.stderr);
      assert.equal(proxy.stats.upgrades + proxy.stats.connects, 0, 'nothing was dialled');
    });

    it('auto and an explicit --transport websocket both upgrade for wss://; connect still CONNECTs for host:port', { timeout: 30_000 }, async () => {
      const before = { upgrades: proxy.stats.upgradesByStatus[101] ?? 0, connects: proxy.stats.connectsByStatus[200] ?? 0 };
      for (const extra of [[], ['--transport', 'auto'], ['--transport', 'websocket']]) {
        const r = await stdioEcho(wsArgs(wssOf(proxy, '/echo'), '--listen', '-', ...extra), env, `hello ${extra.join(' ')}`);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.toString(), `hello ${extra.join(' ')}`);
      }
      const viaConnect = await stdioEcho(['tcp', 'git.corp.test:22', '--pomerium-url', proxy.url, '--alternate-ca-path', CA, '--transport', 'connect', '--listen', '-'], env, 'connect');
      assert.equal(viaConnect.code, 0, viaConnect.stderr);
      assert.equal(viaConnect.stdout.toString(), 'connect');
      assert.equal((proxy.stats.upgradesByStatus[101] ?? 0) - before.upgrades, 3);
      assert.equal((proxy.stats.connectsByStatus[200] ?? 0) - before.connects, 1);
    });
  });

  describe('through websockify (TLS) to an echo server', () => {
    it('listener mode: 20 MB echoed byte for byte', { timeout: 120_000 }, async () => {
      const burrow = await startListener(wsArgs(gateway.url).slice(1));
      const data = payload(20 * MB, 21);
      const back = await echoThrough(burrow.port, data);
      assert.equal(back.length, data.length, `websockify log:\n${gateway.log().slice(-2000)}`);
      assert.equal(sha256(back), sha256(data));
      assert.equal(await burrow.stop(), 0);
      assert.doesNotMatch(burrow.stderr(), /error/, 'the tunnel ended cleanly');
    });

    it('stdio mode: 20 MB echoed byte for byte, stdin ended once the echo is complete; exit 0, quiet', { timeout: 120_000 }, async () => {
      const data = payload(20 * MB, 22);
      const r = await stdioEcho(wsArgs(gateway.url, '--listen', '-'), {}, data, 90_000);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.length, data.length);
      assert.equal(sha256(r.stdout), sha256(data));
      assert.equal(r.stderr, '', 'stdio mode is quiet on success');
    });

    it('stdio mode, stdin ended right after 20 MB (no half-close in WebSocket): every echoed byte still arrives', { timeout: 120_000 }, async () => {
      // At stdin EOF the echo of the last bytes is still on its way, and websockify drops it the
      // moment it reads a close frame. Sent right at EOF, the close lost tens of KB of the tail
      // in 2 of 8 runs; burrow now lingers until the server is quiet, so all of it must arrive.
      const data = payload(20 * MB, 23);
      const r = await runBurrow(wsArgs(gateway.url, '--listen', '-'), { input: data, timeoutMs: 90_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.length, data.length, `echo cut short: ${r.stdout.length} of ${data.length} bytes came back`);
      assert.equal(sha256(r.stdout), sha256(data));
    });

    it('ws:// to a loopback websockify without TLS', { timeout: 30_000 }, async () => {
      const plain = await startWebsockify({ target: echo.address, tls: false });
      try {
        const url = `ws://127.0.0.1:${plain.port}/`;
        const r = await stdioEcho(['tcp', url, '--listen', '-'], {}, payload(MB, 24));
        assert.equal(r.code, 0, r.stderr);
        assert.equal(sha256(r.stdout), sha256(payload(MB, 24)));
        assert.equal(r.stderr, '', 'no clear-text warning for loopback');
      } finally {
        await plain.stop();
      }
    });
  });

  describe('ssh through websockify (real OpenSSH)', () => {
    let sshd: Sshd;
    let sshGateway: Websockify;
    let work: string;
    before(async () => {
      const missing = missingSshTools();
      if (missing) throw new Error(missing);
      sshd = await startSshd();
      sshGateway = await startWebsockify({ target: sshd.address, tls: true });
      work = tempDir('burrow-ws-ssh-');
    });
    after(async () => {
      await stopAllCommands();
      await sshGateway?.stop();
      await sshd?.stop();
    });

    function sshEnv(): NodeJS.ProcessEnv {
      return { PATH: process.env.PATH, HOME: process.env.HOME, XDG_CACHE_HOME: join(work, 'cache'), BURROW_CREDENTIAL_STORE: 'file', NO_COLOR: '1' };
    }

    function configWithProxyCommand(): string {
      const proxyCommand = [process.execPath, BURROW_BIN, 'tcp', '--listen', '-', sshGateway.url, '--alternate-ca-path', CA].map(shQuote).join(' ');
      return sshd.sshConfigFile(`Host ws-git.corp.test\n  ProxyCommand ${proxyCommand}`, sshd.knownHostsFor(['ws-git.corp.test']));
    }

    it("ssh 'echo ok' via ProxyCommand burrow tcp --listen - wss://…", { timeout: 60_000 }, async () => {
      const r = await run('ssh', ['-F', configWithProxyCommand(), 'ws-git.corp.test', 'echo ok'], { env: sshEnv(), timeoutMs: 45_000 });
      assert.equal(r.code, 0, `${r.stderr}\n--- websockify ---\n${sshGateway.log().slice(-2000)}\n--- sshd ---\n${sshd.log().split('\n').slice(-20).join('\n')}`);
      assert.equal(r.stdout.toString(), 'ok\n');
    });

    it("ssh 'cat > file' of 8 MiB via the same ProxyCommand: the server has the same bytes", { timeout: 90_000 }, async () => {
      const data = payload(8 * MB, 25);
      const target = join(sshd.dir, 'ws-upload.bin');
      const r = await run('ssh', ['-F', configWithProxyCommand(), 'ws-git.corp.test', `cat > ${shQuote(target)}`], { env: sshEnv(), input: data, timeoutMs: 75_000 });
      assert.equal(r.code, 0, r.stderr);
      const hash = createHash('sha256').update(readFileSync(target)).digest('hex');
      assert.equal(hash, sha256(data));
      rmSync(target, { force: true });
    });
  });

  describe("the local proxy's wss:// route: sign-in and refusals", () => {
    /** A fresh user with its own cache and browser log, signing in through the scripted browser. */
    function user() {
      const cache = tempDir('burrow-ws-user-');
      const log = join(cache, 'browser.log');
      return { cache, log, env: { XDG_CACHE_HOME: cache, ...browserEnv({ log }) } };
    }

    it('no token: one browser sign-in via --browser-cmd, the tunnel works, the next process reuses the token silently', { timeout: 60_000 }, async () => {
      const u = user();
      const url = wssOf(proxy, '/echo?case=sign-in');
      const signIns = proxy.stats.signIns;
      const firstEvent = proxy.events.length;
      const first = await stdioEcho(wsArgs(url, '--listen', '-', '--browser-cmd', followBrowser), u.env, 'first');
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.stdout.toString(), 'first');
      assert.equal(browserLaunches(u.log).length, 1);
      assert.equal(proxy.stats.signIns - signIns, 1);
      const upgrades = proxy.events.slice(firstEvent).filter((e) => e.url === '/echo?case=sign-in');
      assert.deepEqual(
        upgrades.map((e) => [e.method, e.status, e.hadToken]),
        [['GET', 302, false], ['GET', 101, true]],
        'refused without a token, then upgraded with the new one',
      );

      const second = await stdioEcho(wsArgs(url, '--listen', '-', '--browser-cmd', followBrowser), u.env, 'second');
      assert.equal(second.code, 0, second.stderr);
      assert.equal(second.stdout.toString(), 'second');
      assert.equal(second.stderr, '', 'silent: no browser, no message');
      assert.equal(browserLaunches(u.log).length, 1, 'no second browser launch');
    });

    it('listener mode: several connections needing sign-in at once share one browser prompt', { timeout: 60_000 }, async () => {
      const u = user();
      const burrow = await startListener(wsArgs(wssOf(proxy, '/echo?case=listener-sign-in'), '--browser-cmd', followBrowser).slice(1), {
        env: { ...u.env, BROWSER_DELAY_MS: '300' },
      });
      const results = await Promise.all(Array.from({ length: 5 }, (_, i) => echoThrough(burrow.port, Buffer.from(`conn-${i}`), 30_000)));
      assert.deepEqual(results.map(String), Array.from({ length: 5 }, (_, i) => `conn-${i}`));
      assert.equal(browserLaunches(u.log).length, 1);
      assert.equal(await burrow.stop(), 0);
    });

    it('a service account token the proxy refuses: sign-in required (exit 3), no browser', { timeout: 30_000 }, async () => {
      const other = await startFakePomerium();
      const foreign = other.mintToken();
      await other.close();
      const url = wssOf(proxy, '/echo');
      const logins = proxy.stats.loginRequests;
      const r = await runBurrow(wsArgs(url, '--listen', '-', '--browser-cmd', '/nonexistent/browser'), { env: { BURROW_SERVICE_ACCOUNT: foreign } });
      assert.equal(r.code, ExitCode.authRequired, r.stderr);
      const line = oneLineFailure(r.stderr, foreign);
      assert.ok(line.includes(`for ${url} (HTTP 302)`), line);
      assert.equal(proxy.stats.loginRequests, logins, 'a service account never starts a browser sign-in');
    });

    for (const [path, status, exit, what] of [
      ['/bob', 403, ExitCode.accessDenied, 'access denied'],
      ['/nothing-here', 404, ExitCode.routeNotFound, 'no route'],
      ['/down', 503, ExitCode.upstreamUnavailable, 'could not reach'],
    ] as const) {
      it(`HTTP ${status} to the upgrade: exit ${exit}, one line naming the wss:// URL, token kept`, { timeout: 30_000 }, async () => {
        const url = wssOf(proxy, path);
        const r = await runBurrow(wsArgs(url, '--listen', '-'), { env, input: 'hello' });
        assert.equal(r.code, exit, r.stderr);
        const line = oneLineFailure(r.stderr, token);
        assert.ok(line.includes(what), line);
        assert.ok(line.includes(`for ${url}`) || line.includes(`reach ${url}`), `names ${url}: ${line}`);
        assert.ok(line.includes(`HTTP ${status}`), line);
        if (status === 403) assert.ok(line.includes('alice@corp.test'), 'names who is signed in');
        assert.equal(r.stdout.length, 0);
      });
    }
  });

  describe('keepalive', () => {
    it('a server that stops answering pings: stdio burrow exits 10 within 3 intervals (plus slack) with a keepalive line', { timeout: 30_000 }, async () => {
      const mute = await echoProxy(echo, { wsAutoPong: false });
      try {
        const t = mute.mintToken();
        const proc = spawnBurrow(wsArgs(wssOf(mute, '/echo'), '--listen', '-', '--ping-interval', '0.3'), { env: { BURROW_SERVICE_ACCOUNT: t }, collectStdout: false });
        // stdin stays open, as ssh keeps it: only the keepalive can end this tunnel.
        await eventually(() => (mute.stats.upgradesByStatus[101] ?? 0) === 1 || proc.child.exitCode !== null, 10_000, 'the tunnel to open');
        const openedAt = Date.now();
        const code = await within(proc.exited, 5000, -1);
        const elapsed = Date.now() - openedAt;
        assert.equal(code, ExitCode.tunnelBroken, `exit ${code} after ${elapsed} ms; stderr: ${proc.stderr()}`);
        assert.ok(elapsed <= 3 * 300 + 2100, `closed ${elapsed} ms after the tunnel opened (3 intervals = 900 ms)`);
        const line = oneLineFailure(proc.stderr(), t);
        assert.match(line, /keepalive/);
        assert.ok(mute.stats.pingsReceived >= 2, `pinged ${mute.stats.pingsReceived} times before giving up`);
      } finally {
        await mute.close();
      }
    });

    it('an idle tunnel with --ping-interval 0.2 survives a 700 ms server idle timeout for 2 s, then still carries bytes', { timeout: 30_000 }, async () => {
      const strict = await echoProxy(echo, { wsIdleTimeoutMs: 700 });
      try {
        const proc = spawnBurrow(wsArgs(wssOf(strict, '/echo'), '--listen', '-', '--ping-interval', '0.2'), {
          env: { BURROW_SERVICE_ACCOUNT: strict.mintToken() },
          collectStdout: false,
        });
        let out = '';
        proc.child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
        proc.child.stdin.write('before ');
        await eventually(() => out === 'before ' || proc.child.exitCode !== null, 10_000, 'the first echo');
        await delay(2000);
        assert.equal(proc.child.exitCode, null, `burrow exited while idle: ${proc.stderr()}`);
        assert.deepEqual(strict.wsClosures, [], 'the proxy did not close the idle tunnel');
        assert.ok(strict.stats.pingsReceived >= 5, `${strict.stats.pingsReceived} pings in 2 s`);
        proc.child.stdin.write('after');
        await eventually(() => out === 'before after' || proc.child.exitCode !== null, 10_000, 'the echo after the idle period');
        assert.equal(out, 'before after', proc.stderr());
        proc.child.stdin.end();
        const code = await within(proc.exited, 10_000, -1);
        assert.equal(code, 0, proc.stderr());
      } finally {
        await strict.close();
      }
    });

    it('with --ping-interval 0 the same idle timeout closes the tunnel (the proxy sends 1001), and burrow exits', { timeout: 30_000 }, async () => {
      const strict = await echoProxy(echo, { wsIdleTimeoutMs: 700 });
      try {
        const proc = spawnBurrow(wsArgs(wssOf(strict, '/echo'), '--listen', '-', '--ping-interval', '0'), {
          env: { BURROW_SERVICE_ACCOUNT: strict.mintToken() },
          collectStdout: false,
        });
        let out = '';
        proc.child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
        proc.child.stdin.on('error', () => {});
        proc.child.stdin.write('before ');
        await eventually(() => out === 'before ' || proc.child.exitCode !== null, 10_000, 'the first echo');
        const code = await within(proc.exited, 5000, -1);
        assert.notEqual(code, -1, 'burrow still running 5 s after the proxy idle timeout (700 ms)');
        assert.deepEqual(strict.wsClosures, [{ path: '/echo', code: 1001, by: 'proxy' }]);
        assert.equal(strict.stats.pingsReceived, 0, 'no pings with --ping-interval 0');
        assert.equal(code, 0, `a close frame from the server ends stdio mode cleanly; stderr: ${proc.stderr()}`);
      } finally {
        await strict.close();
      }
    });
  });

  describe('streams and load', () => {
    it('a slow reader does not make burrow buffer without bound (160 MB behind a paused socket)', { timeout: 180_000 }, async () => {
      const size = 160 * MB;
      const source = await startSourceServer(size, 26);
      proxy.addRoute({ from: 'wss://ws.corp.test/bulk', to: `tcp://${source.address}` });
      try {
        const burrow = await startListener(wsArgs(wssOf(proxy, '/bulk')).slice(1), { env });
        const socket = net.connect({ host: '127.0.0.1', port: burrow.port });
        socket.pause();
        await new Promise<void>((resolve) => socket.once('connect', resolve));
        let peak = 0;
        for (let i = 0; i < 30; i++) {
          peak = Math.max(peak, rssBytes(burrow.child.pid!));
          await delay(100);
        }
        assert.ok(peak < 150 * MB, `burrow RSS peaked at ${(peak / MB).toFixed(0)} MiB while the reader was stalled`);
        const hash = createHash('sha256');
        let bytes = 0;
        socket.on('data', (d: Buffer) => {
          hash.update(d);
          bytes += d.length;
        });
        socket.resume();
        await within(new Promise((resolve) => socket.once('close', resolve)), 120_000, undefined);
        socket.destroy();
        assert.equal(bytes, size);
        assert.equal(hash.digest('hex'), source.sha256);
        assert.equal(await burrow.stop(), 0);
      } finally {
        await source.close();
      }
    });

    it('100 concurrent WebSocket tunnels through one listener, each byte-exact', { timeout: 120_000 }, async () => {
      const burrow = await startListener(wsArgs(wssOf(proxy, '/echo?case=concurrent')).slice(1), { env });
      const before = proxy.stats.upgradesByStatus[101] ?? 0;
      const results = await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          const data = payload(64 * 1024 + i, 2000 + i);
          const back = await echoThrough(burrow.port, data, 60_000);
          return sha256(back) === sha256(data);
        }),
      );
      assert.equal(results.filter(Boolean).length, 100);
      assert.equal((proxy.stats.upgradesByStatus[101] ?? 0) - before, 100, 'one upgrade per connection');
      assert.equal(await burrow.stop(), 0);
      assert.doesNotMatch(burrow.stderr(), /error/, 'every tunnel ended cleanly');
    });
  });

  describe('--header', () => {
    const secret = 'k-3f9a-never-logged';

    it('reaches the proxy on the WebSocket upgrade, and is never logged', { timeout: 30_000 }, async () => {
      const r = await stdioEcho(
        wsArgs(wssOf(proxy, '/echo?case=header'), '--listen', '-', '--header', `X-Api-Key: ${secret}`, '--header', 'X-Team: blue team', '--log-level', 'debug'),
        env,
        'with headers',
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'with headers');
      const request = proxy.requests.filter((q) => q.url === '/echo?case=header').at(-1);
      assert.ok(request, 'the upgrade was recorded');
      assert.equal(request.headers['x-api-key'], secret);
      assert.equal(request.headers['x-team'], 'blue team');
      assert.equal(request.headers.authorization, '[hidden]', 'the token went along too');
      assert.ok(!r.stderr.includes(secret), `the header value is never logged:\n${r.stderr}`);
    });

    it('reaches the proxy on CONNECT too', { timeout: 30_000 }, async () => {
      const connectsBefore = proxy.requests.filter((q) => q.method === 'CONNECT').length;
      const r = await stdioEcho(
        ['tcp', 'git.corp.test:22', '--pomerium-url', proxy.url, '--alternate-ca-path', CA, '--listen', '-', '--header', `X-Api-Key: ${secret}`, '--log-level', 'debug'],
        env,
        'connect with headers',
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'connect with headers');
      const connects = proxy.requests.filter((q) => q.method === 'CONNECT');
      assert.equal(connects.length - connectsBefore, 1);
      assert.equal(connects.at(-1)?.headers['x-api-key'], secret);
      assert.ok(!r.stderr.includes(secret), 'the header value is never logged');
    });
  });

  describe("V8's optimizing compiler in stdio mode", () => {
    /**
     * 3,000 round trips of 64 zero bytes through a stdio tunnel run under `node --trace-opt`,
     * which prints every TurboFan compilation on stdout, among the tunnel's bytes (its lines are
     * text, never a zero byte). Returns the exit code and everything on stdout that was not echo.
     */
    async function traced(args: string[]): Promise<{ code: number; trace: string }> {
      const ROUNDS = 3000;
      const burrow = spawnBurrow(args, { env, collectStdout: false, nodeArgs: ['--trace-opt'] });
      let echoed = 0;
      let trace = '';
      let wake: (() => void) | undefined;
      burrow.child.stdout.on('data', (d: Buffer) => {
        for (const byte of d) if (byte === 0) echoed++;
        trace += d.toString('latin1').replaceAll('\0', '');
        wake?.();
      });
      const message = Buffer.alloc(64);
      const deadline = Date.now() + 60_000;
      for (let i = 1; i <= ROUNDS && burrow.child.exitCode === null && Date.now() < deadline; i++) {
        burrow.child.stdin.write(message);
        while (echoed < i * message.length && burrow.child.exitCode === null && Date.now() < deadline) {
          await within(new Promise<void>((resolve) => (wake = resolve)), 1000, undefined);
        }
      }
      assert.equal(echoed, ROUNDS * message.length, `every round trip came back; stderr: ${burrow.stderr()}`);
      burrow.child.stdin.end();
      return { code: await within(burrow.exited, 10_000, -1), trace };
    }

    it('a CONNECT tunnel runs without it (no compile to delay a round trip); a WebSocket tunnel, whose frames are JavaScript, keeps it', { timeout: 120_000 }, async () => {
      const connect = await traced(['tcp', 'git.corp.test:22', '--pomerium-url', proxy.url, '--alternate-ca-path', CA, '--listen', '-']);
      assert.equal(connect.code, 0);
      // Node 22's mid tier (Maglev) is not TurboFan and may still print lines of its own.
      const lines = connect.trace.split('\n').filter(Boolean);
      assert.deepEqual(lines.filter((line) => line.includes('TURBOFAN')), [], 'no TurboFan compile in 3,000 round trips');
      assert.deepEqual(lines.filter((line) => !line.startsWith('[')), [], 'stdout held the echo and trace lines, nothing else');
      // The same measurement sees compiles where they still happen.
      const websocket = await traced(wsArgs(wssOf(proxy, '/echo'), '--listen', '-'));
      assert.equal(websocket.code, 0);
      assert.match(websocket.trace, /\(target TURBOFAN\)/, 'the WebSocket tunnel optimized its hot functions');
    });
  });
});
