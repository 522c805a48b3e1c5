/**
 * burrow behind a corporate forward proxy, end to end: the real CLI, Debian's real squid
 * (test/helpers/squid.ts) in front of the local identity proxy, chained as
 * TCP → squid → `CONNECT localhost:PORT` → TLS to the identity proxy inside that tunnel → the
 * real CONNECT (or WebSocket upgrade) with `Authorization: Pomerium …` inside TLS.
 *
 * What proves a hop went through squid: squid's access log has the CONNECT, and the identity
 * proxy saw the request arrive from the local port squid logged for its onward connection
 * (`%<lp`). What proves the token stayed inside TLS: squid logs every request header it received,
 * and neither the token nor any `Authorization: Pomerium` header is there.
 *
 * One squid per configuration (plain + https_port, Basic auth, an ACL denying the identity
 * proxy's port), started once. When squid is missing these tests fail with the package to
 * install, never skip.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { oneLineFailure } from '../helpers/assertions.js';
import { browserEnv, browserLaunches, followBrowser } from '../helpers/browsers/index.js';
import { runBurrow, startListener, stdioEcho, stopAll, storedTokens, tempDir } from '../helpers/burrow.js';
import { payload, sha256 } from '../helpers/data.js';
import { echoThrough } from '../helpers/echo-server.js';
import { fixture } from '../helpers/fixtures.js';
import { requireSquid, type Squid, type SquidLogEntry, startSquid, stopAllSquid } from '../helpers/squid.js';
import { DEST, eventually, startWorld, type World } from '../helpers/world.js';
import { freePort } from '../helpers/processes.js';

const MB = 1024 * 1024;
const CA = fixture('ca.pem');
/** A password that needs percent-encoding in a URL, and is distinctive enough to search output for. */
const PASSWORD = 'Sq1d p@ss:w/rd?#%é';
const WRONG_PASSWORD = 'Wr0ng-Secr3t-Pass';
const PROXY_USER = 'alice';

/** A request the identity proxy received, and the client port it came from. */
interface Arrival {
  kind: 'connect' | 'upgrade' | 'request';
  url: string;
  sourcePort: number;
}

/** `http://user:password@127.0.0.1:PORT` with the userinfo percent-encoded. */
function withCredentials(url: string, user: string, password: string): string {
  return url.replace('://', `://${encodeURIComponent(user)}:${encodeURIComponent(password)}@`);
}

describe('burrow tcp through a forward proxy (squid)', () => {
  let world: World;
  /** http_port and https_port, no auth. */
  let squid: Squid;
  /** Basic auth required (basic_ncsa_auth). */
  let authSquid: Squid;
  /** Refuses CONNECTs to the identity proxy's port (403). */
  let denySquid: Squid;
  let closed: number;
  const arrivals: Arrival[] = [];
  /** `localhost:PORT`: what squid is asked to CONNECT to. */
  let hop: string;

  before(async () => {
    requireSquid();
    closed = await freePort();
    world = await startWorld();
    world.proxy.addRoute({ from: 'wss://localhost/ws', to: `tcp://${world.echo.address}` });
    hop = `localhost:${world.proxy.port}`;
    // Observe (not answer) what reaches the identity proxy and from which client port.
    const record = (kind: Arrival['kind']) => (req: IncomingMessage) =>
      arrivals.push({ kind, url: req.url ?? '', sourcePort: req.socket.remotePort ?? 0 });
    world.proxy.server.on('connect', record('connect'));
    world.proxy.server.on('upgrade', record('upgrade'));
    world.proxy.server.on('request', record('request'));
    [squid, authSquid, denySquid] = await Promise.all([
      startSquid({ httpsPort: true }),
      startSquid({ basicAuth: { user: PROXY_USER, password: PASSWORD } }),
      startSquid({ denyConnectTo: [world.proxy.port] }),
    ]);
  });
  after(async () => {
    await stopAll();
    await stopAllSquid();
    await world?.close();
  });

  /** Entries squid logged after `from` (a count from settle()), once the tunnels are over. */
  async function newEntries(s: Squid, from: number): Promise<SquidLogEntry[]> {
    await s.settle();
    return s.entries().slice(from);
  }

  /**
   * Asserts squid saw only CONNECTs to the identity proxy (`to`, default `localhost:PORT`): no
   * token, no Pomerium header, no other request.
   */
  function assertOuterOnly(s: Squid, entries: SquidLogEntry[], token: string = world.token, to: string = hop): void {
    for (const e of entries) {
      assert.equal(e.method, 'CONNECT', e.line);
      assert.equal(e.url, to, e.line);
      assert.ok(!e.headers.some((h) => /^authorization:/i.test(h)), `no Authorization header reached squid: ${e.line}`);
    }
    const log = s.accessLog();
    assert.ok(!log.includes(token), 'the token never reached squid');
    assert.doesNotMatch(log, /Pomerium/i, 'no Pomerium header reached squid');
  }

  /** The arrivals at the identity proxy whose source port is one squid logged for its onward connection. */
  function viaSquid(entries: SquidLogEntry[], since: number): Arrival[] {
    const ports = new Set(entries.map((e) => e.serverSidePort).filter((p) => p !== undefined));
    return arrivals.slice(since).filter((a) => ports.has(a.sourcePort));
  }

  const stdioArgs = (...extra: string[]) => world.tcpArgs(DEST, '--listen', '-', ...extra);

  describe('tunnels', () => {
    it('HTTPS_PROXY, stdio mode: 20 MB byte for byte; squid saw only the outer CONNECT, never the token', { timeout: 90_000 }, async () => {
      const from = await squid.settle();
      const since = arrivals.length;
      const data = payload(20 * MB, 71);
      const r = await stdioEcho(stdioArgs(), { ...world.env, HTTPS_PROXY: squid.url }, data);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.length, data.length);
      assert.equal(sha256(r.stdout), sha256(data));
      assert.equal(r.stderr, '', 'stdio mode is quiet on success');
      const entries = await newEntries(squid, from);
      const tunnels = entries.filter((e) => e.status === 200);
      assert.equal(tunnels.length, 1, squid.accessLog());
      assert.equal(tunnels[0]!.squidStatus, 'TCP_TUNNEL');
      assert.ok(tunnels[0]!.bytesToClient >= data.length, `the 20 MB went through squid (${tunnels[0]!.bytesToClient} bytes)`);
      assertOuterOnly(squid, entries);
      assert.deepEqual(
        viaSquid(entries, since).map((a) => `${a.kind} ${a.url}`),
        [`connect ${DEST}`],
        'the identity proxy got the real CONNECT from squid',
      );
    });

    it('HTTPS_PROXY, listener mode: 20 MB per connection, each connection its own tunnel through squid', { timeout: 90_000 }, async () => {
      const from = await squid.settle();
      const burrow = await startListener(world.tcpArgs().slice(1), { env: { ...world.env, HTTPS_PROXY: squid.url } });
      const data = payload(20 * MB, 72);
      const back = await echoThrough(burrow.port, data);
      assert.equal(back.length, data.length);
      assert.equal(sha256(back), sha256(data));
      const small = await echoThrough(burrow.port, Buffer.from('second connection'));
      assert.equal(small.toString(), 'second connection');
      assert.equal(await burrow.stop(), 0);
      assert.doesNotMatch(burrow.stderr(), /error|warning/);
      const tunnels = (await newEntries(squid, from)).filter((e) => e.status === 200);
      assert.equal(tunnels.length, 2, squid.accessLog());
      assert.ok(tunnels.some((e) => e.bytesToClient >= data.length), 'the 20 MB went through squid');
      assertOuterOnly(squid, tunnels);
    });

    it('an https:// forward proxy (TLS to squid too); --alternate-ca-path applies to both hops', { timeout: 30_000 }, async () => {
      const from = await squid.settle();
      const since = arrivals.length;
      const r = await stdioEcho(stdioArgs(), { ...world.env, HTTPS_PROXY: squid.httpsUrl! }, Buffer.from('over two TLS layers'));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'over two TLS layers');
      const entries = await newEntries(squid, from);
      assert.equal(entries.filter((e) => e.status === 200).length, 1, squid.accessLog());
      assertOuterOnly(squid, entries);
      assert.equal(viaSquid(entries, since).length, 1, 'the CONNECT came through squid');
    });

    it('WebSocket transport (wss:// destination) through squid', { timeout: 60_000 }, async () => {
      const from = await squid.settle();
      const since = arrivals.length;
      const upgrades = world.proxy.stats.upgradesByStatus[101] ?? 0;
      const url = `${world.proxy.url.replace(/^https:/, 'wss:')}/ws`;
      const data = payload(2 * MB, 73);
      const r = await stdioEcho(['tcp', url, '--alternate-ca-path', CA, '--listen', '-'], { ...world.env, HTTPS_PROXY: squid.url }, data);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256(r.stdout), sha256(data));
      assert.equal((world.proxy.stats.upgradesByStatus[101] ?? 0) - upgrades, 1);
      const entries = await newEntries(squid, from);
      assert.equal(entries.filter((e) => e.status === 200).length, 1, squid.accessLog());
      assertOuterOnly(squid, entries);
      assert.deepEqual(
        viaSquid(entries, since).map((a) => `${a.kind} ${a.url}`),
        ['upgrade /ws'],
        'the identity proxy got the upgrade from squid',
      );
    });
  });

  describe('which proxy: environment and flags', () => {
    /** Runs a short stdio tunnel with `env` and `extra` flags; returns how many CONNECTs squid logged for it. */
    async function throughSquid(env: NodeJS.ProcessEnv, extra: string[] = [], args = stdioArgs(...extra), to = hop): Promise<number> {
      const from = await squid.settle();
      const r = await stdioEcho(args, { ...world.env, ...env }, Buffer.from('which way'));
      assert.equal(r.code, 0, `${JSON.stringify(env)} ${extra.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout.toString(), 'which way');
      const entries = await newEntries(squid, from);
      assertOuterOnly(squid, entries, world.token, to);
      return entries.length;
    }

    it('NO_PROXY bypasses squid: host names, *, host:port, and the lowercase variable first', { timeout: 60_000 }, async () => {
      const port = world.proxy.port;
      const cases: Array<[NodeJS.ProcessEnv, 0 | 1]> = [
        [{ HTTPS_PROXY: squid.url, NO_PROXY: 'localhost' }, 0],
        [{ HTTPS_PROXY: squid.url, NO_PROXY: 'corp.example, localhost' }, 0],
        [{ https_proxy: squid.url, no_proxy: '*' }, 0],
        [{ HTTPS_PROXY: squid.url, NO_PROXY: `localhost:${port}` }, 0],
        // The port does not match: through squid.
        [{ HTTPS_PROXY: squid.url, NO_PROXY: `localhost:${closed}` }, 1],
        // Like curl, no automatic bypass for localhost.
        [{ HTTPS_PROXY: squid.url }, 1],
        [{ HTTPS_PROXY: squid.url, NO_PROXY: 'corp.example,.corp.test' }, 1],
        // no_proxy wins over NO_PROXY.
        [{ HTTPS_PROXY: squid.url, no_proxy: 'corp.example', NO_PROXY: 'localhost' }, 1],
      ];
      for (const [env, expected] of cases) {
        assert.equal(await throughSquid(env), expected, `${JSON.stringify(env)}: ${expected ? 'through squid' : 'direct'}`);
      }
    });

    it('NO_PROXY with a CIDR (127.0.0.0/8) bypasses squid for a proxy addressed by IP', { timeout: 30_000 }, async () => {
      const byIp = ['tcp', DEST, '--pomerium-url', `https://127.0.0.1:${world.proxy.port}`, '--alternate-ca-path', CA, '--listen', '-'];
      const to = `127.0.0.1:${world.proxy.port}`;
      assert.equal(await throughSquid({ HTTPS_PROXY: squid.url, NO_PROXY: '127.0.0.0/8' }, [], byIp, to), 0);
      assert.equal(await throughSquid({ HTTPS_PROXY: squid.url, NO_PROXY: '10.0.0.0/8,::1/128' }, [], byIp, to), 1, 'outside the ranges: through squid');
      assert.equal(await throughSquid({ HTTPS_PROXY: squid.url, NO_PROXY: '127.0.0.1' }, [], byIp, to), 0, 'the IP itself');
    });

    it('which variable: https_proxy over HTTPS_PROXY, ALL_PROXY when unset, HTTP_PROXY not for an https proxy', { timeout: 60_000 }, async () => {
      const broken = `http://127.0.0.1:${closed}`;
      assert.equal(await throughSquid({ https_proxy: squid.url, HTTPS_PROXY: broken }), 1, 'lowercase first');
      assert.equal(await throughSquid({ ALL_PROXY: squid.url }), 1, 'ALL_PROXY');
      assert.equal(await throughSquid({ all_proxy: squid.url, ALL_PROXY: broken }), 1, 'all_proxy first');
      assert.equal(await throughSquid({ HTTPS_PROXY: squid.url, ALL_PROXY: broken }), 1, 'HTTPS_PROXY over ALL_PROXY');
      assert.equal(await throughSquid({ HTTP_PROXY: broken, http_proxy: broken }), 0, 'HTTP_PROXY is for http:// proxies only');
    });

    it('--no-proxy ignores the environment; --proxy wins over a broken HTTPS_PROXY', { timeout: 30_000 }, async () => {
      assert.equal(await throughSquid({ HTTPS_PROXY: squid.url, ALL_PROXY: squid.url }, ['--no-proxy']), 0);
      assert.equal(await throughSquid({ HTTPS_PROXY: `http://127.0.0.1:${closed}` }, ['--proxy', squid.url]), 1);
    });
  });

  describe('Basic proxy authentication (basic_ncsa_auth)', () => {
    it('the right password from the URL (percent-encoded special characters) opens the tunnel', { timeout: 30_000 }, async () => {
      const from = await authSquid.settle();
      const proxyUrl = withCredentials(authSquid.url, PROXY_USER, PASSWORD);
      for (const how of [{ env: { HTTPS_PROXY: proxyUrl }, extra: [] }, { env: {}, extra: ['--proxy', proxyUrl] }]) {
        const r = await stdioEcho(stdioArgs(...how.extra), { ...world.env, ...how.env }, Buffer.from('authenticated'));
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.toString(), 'authenticated');
        assert.ok(!r.stderr.includes(PASSWORD) && !r.stderr.includes(encodeURIComponent(PASSWORD)), 'the password is never printed');
      }
      const entries = await newEntries(authSquid, from);
      const tunnels = entries.filter((e) => e.status === 200);
      assert.equal(tunnels.length, 2, authSquid.accessLog());
      for (const e of tunnels) assert.equal(e.user, PROXY_USER);
      assertOuterOnly(authSquid, entries);
    });

    it('a wrong or missing password: exit 12, the 407 named, the password never shown', { timeout: 30_000 }, async () => {
      const cases = [
        { what: 'wrong password', url: withCredentials(authSquid.url, PROXY_USER, WRONG_PASSWORD) },
        { what: 'no credentials', url: authSquid.url },
      ];
      for (const { what, url } of cases) {
        const proxyCountBefore = world.proxy.stats.connects;
        const r = await runBurrow(stdioArgs(), { env: { ...world.env, HTTPS_PROXY: url }, input: 'nope' });
        assert.equal(r.code, ExitCode.forwardProxy, `${what}: ${r.stderr}`);
        const line = oneLineFailure(r.stderr, world.token);
        assert.ok(line.includes(`forward proxy ${authSquid.url} requires authentication (HTTP 407)`), `${what}: ${line}`);
        for (const secret of [WRONG_PASSWORD, PASSWORD, encodeURIComponent(PASSWORD)]) assert.ok(!r.stderr.includes(secret), `${what}: no password in ${line}`);
        assert.equal(r.stdout.length, 0, 'nothing on stdout');
        assert.equal(world.proxy.stats.connects, proxyCountBefore, 'nothing reached the identity proxy');
      }
    });
  });

  describe('errors name the hop that failed', () => {
    it("squid's ACL refuses the identity proxy's port: exit 12, refused the tunnel (HTTP 403)", { timeout: 30_000 }, async () => {
      const r = await runBurrow(stdioArgs(), { env: { ...world.env, HTTPS_PROXY: denySquid.url }, input: 'x' });
      assert.equal(r.code, ExitCode.forwardProxy, r.stderr);
      const line = oneLineFailure(r.stderr, world.token);
      assert.ok(line.includes(`forward proxy ${denySquid.url} refused the tunnel to ${hop} (HTTP 403)`), line);
      assert.equal(r.stdout.length, 0);
      const denied = denySquid.entries().filter((e) => e.url === hop);
      assert.ok(denied.length >= 1 && denied.every((e) => e.status === 403), denySquid.accessLog());
    });

    it('squid cannot reach the identity proxy (closed port): exit 12, could not reach (HTTP 502/503)', { timeout: 30_000 }, async () => {
      const r = await runBurrow(['tcp', DEST, '--pomerium-url', `https://localhost:${closed}`, '--alternate-ca-path', CA, '--listen', '-'], {
        env: { ...world.env, HTTPS_PROXY: squid.url },
        input: 'x',
      });
      assert.equal(r.code, ExitCode.forwardProxy, r.stderr);
      const line = oneLineFailure(r.stderr, world.token);
      assert.match(line, new RegExp(`forward proxy ${squid.url.replace(/\./g, '\\.')} could not reach localhost:${closed} \\(HTTP 50[23]\\)`));
    });

    it('nothing listening at the forward proxy: exit 12, cannot connect to forward proxy', { timeout: 30_000 }, async () => {
      const r = await runBurrow(stdioArgs(), { env: { ...world.env, HTTPS_PROXY: `http://${PROXY_USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${closed}` }, input: 'x' });
      assert.equal(r.code, ExitCode.forwardProxy, r.stderr);
      const line = oneLineFailure(r.stderr, world.token);
      assert.match(line, new RegExp(`cannot connect to forward proxy http://127\\.0\\.0\\.1:${closed}( \\(for ${hop}\\))?: connection refused`));
      assert.ok(!r.stderr.includes(PASSWORD) && !r.stderr.includes(encodeURIComponent(PASSWORD)), 'the password is never printed');
    });

    it('errors from the identity proxy behind squid keep their exit codes and messages', { timeout: 30_000 }, async () => {
      const env = { ...world.env, HTTPS_PROXY: squid.url };
      const noRoute = await runBurrow(world.tcpArgs('nope.corp.test:22', '--listen', '-'), { env });
      assert.equal(noRoute.code, ExitCode.routeNotFound, noRoute.stderr);
      assert.ok(oneLineFailure(noRoute.stderr, world.token).includes(`${world.proxy.url} has no route for nope.corp.test:22 (HTTP 404)`));
      const foreign = (await startWorldToken()).token;
      const refused = await runBurrow(stdioArgs('--browser-cmd', '/nonexistent/browser'), { env: { ...env, BURROW_SERVICE_ACCOUNT: foreign } });
      assert.equal(refused.code, ExitCode.authRequired, refused.stderr);
      assert.ok(oneLineFailure(refused.stderr, foreign).includes(`sign-in required by ${world.proxy.url} for ${DEST}`));
      // TLS to the identity proxy inside squid's tunnel, without trusting its CA.
      const untrusted = await runBurrow(['tcp', DEST, '--pomerium-url', world.proxy.url, '--listen', '-'], { env });
      assert.equal(untrusted.code, ExitCode.tls, untrusted.stderr);
      assert.ok(oneLineFailure(untrusted.stderr).includes(`the certificate of ${world.proxy.url} is not trusted`));
    });

    it('an unusable proxy URL is a usage error (exit 2) that does not echo the URL', { timeout: 30_000 }, async () => {
      const r = await runBurrow(stdioArgs('--proxy', `socks5://${PROXY_USER}:${WRONG_PASSWORD}@127.0.0.1:1080`), { env: world.env });
      assert.equal(r.code, ExitCode.usage, r.stderr);
      const line = oneLineFailure(r.stderr);
      assert.ok(line.includes('invalid forward proxy in --proxy'), line);
      assert.ok(!r.stderr.includes(WRONG_PASSWORD), 'the password is never printed');
    });
  });

  describe('sign-in through squid', () => {
    it('a fresh user signs in once through the browser: the login API call and the tunnel both go through squid', { timeout: 60_000 }, async () => {
      const cache = tempDir('burrow-user-');
      const log = join(cache, 'browser.log');
      const env = { XDG_CACHE_HOME: cache, HTTPS_PROXY: squid.url, ...browserEnv({ log }) };
      const args = world.tcpArgs(DEST, '--listen', '-', '--browser-cmd', followBrowser);
      const from = await squid.settle();
      const since = arrivals.length;
      const signIns = world.proxy.stats.signIns;
      const logins = world.proxy.stats.loginRequests;

      const first = await stdioEcho(args, env, Buffer.from('signed in via squid'));
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.stdout.toString(), 'signed in via squid');
      assert.equal(browserLaunches(log).length, 1, 'one browser launch');
      assert.equal(world.proxy.stats.signIns - signIns, 1, 'exactly one sign-in');
      assert.ok(world.proxy.stats.loginRequests - logins >= 1, 'the login API was called');

      const [token] = storedTokens(cache);
      assert.ok(token && world.proxy.verifyToken(token), 'a valid token is cached');
      const entries = await newEntries(squid, from);
      assertOuterOnly(squid, entries, token);
      const tunnelled = viaSquid(entries, since);
      assert.ok(
        tunnelled.some((a) => a.kind === 'request' && a.url.startsWith('/.pomerium/api/v1/login')),
        `the login API call came through squid: ${JSON.stringify(arrivals.slice(since))}`,
      );
      assert.ok(tunnelled.some((a) => a.kind === 'connect' && a.url === DEST), 'the tunnel came through squid');
      // Apart from the stand-in browser (the user's browser talks to the proxy itself), nothing
      // reached the identity proxy directly.
      const direct = arrivals.slice(since).filter((a) => !tunnelled.includes(a));
      assert.ok(direct.every((a) => a.kind === 'request' && !a.url.startsWith('/.pomerium/api/')), `only the browser went direct: ${JSON.stringify(direct)}`);
      for (const out of [first.stderr, first.stdout.toString()]) assert.ok(!out.includes(token!), 'token never printed');

      const second = await stdioEcho(args, env, Buffer.from('cached'));
      assert.equal(second.code, 0, second.stderr);
      assert.equal(second.stdout.toString(), 'cached');
      assert.equal(second.stderr, '', 'the cached token is used silently');
      assert.equal(browserLaunches(log).length, 1, 'no second browser launch');
      await eventually(() => squid.entries().length > from + entries.length, 5000, 'the second tunnel in the access log');
      assertOuterOnly(squid, squid.entries().slice(from), token);
    });
  });
});

/** A token from another proxy instance (its own signing key): valid-looking, refused here. */
async function startWorldToken(): Promise<{ token: string }> {
  const other = await startWorld();
  const token = other.token;
  await other.close();
  return { token };
}
