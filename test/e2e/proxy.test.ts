/**
 * burrow proxy end to end: the real CLI as a local HTTP CONNECT and SOCKS5 proxy in front of the
 * local identity-aware proxy, driven by real clients (ncat in both proxy modes, curl through
 * HTTPS CONNECT and socks5-hostname to a real TLS server, ssh with an ncat ProxyCommand to a real
 * sshd) and by a small raw-socket client where the answer codes themselves are checked (ncat
 * hides them): refusals outside --domain, the proxy's 403/404/503 and unreachable or silent
 * proxies as HTTP statuses and SOCKS reply codes, pipelined bytes, malformed requests.
 *
 * Every name (git.corp.test, …) reaches the local proxy through --pomerium-url: nothing is
 * looked up in DNS, and every connection stays on loopback.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { text } from '../../src/output/messages.js';
import { browserEnv, browserLaunches, followBrowser } from '../helpers/browsers/index.js';
import { runBurrow, startListener, stopAll, tempDir, type BurrowProcess } from '../helpers/burrow.js';
import { payload, sha256 } from '../helpers/data.js';
import { startFakePomerium, type FakePomerium } from '../helpers/fake-pomerium.js';
import { readFixture } from '../helpers/fixtures.js';
import { freePort } from '../helpers/processes.js';
import { run, type Sshd, startSshd, stopAllCommands } from '../helpers/sshd.js';
import { DEST, eventually, startWorld, type World } from '../helpers/world.js';

const NCAT = '/usr/bin/ncat';
const CURL = '/usr/bin/curl';

/** Fails with the package to install (never skips): .ci/run installs ncat and curl. */
function requireClients(): void {
  const missing = [
    [NCAT, 'ncat'],
    [CURL, 'curl'],
  ].filter(([path]) => !existsSync(path!));
  if (missing.length === 0) return;
  const pkgs = missing.map(([, pkg]) => pkg).join(' ');
  throw new Error(`${missing.map(([path]) => path).join(', ')} not found; the burrow proxy tests need them (apt-get install ${pkgs}${process.env.CI === 'true' ? '; CI: .ci/run must install them' : ''})`);
}

interface Exchange {
  data: Buffer;
  /** The proxy ended the connection (else `until` was met, or the time ran out). */
  closed: boolean;
}

/**
 * A raw client: connects to the local proxy, writes each of `writes` (waiting `gapMs` between
 * them), and collects what comes back until the connection closes or `until` says enough;
 * bounded by `timeoutMs`. The socket is destroyed at the end.
 */
async function exchange(
  port: number,
  writes: Array<Buffer | string>,
  options: { until?: (data: Buffer) => boolean; timeoutMs?: number; gapMs?: number; keep?: (socket: Socket) => void } = {},
): Promise<Exchange> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const chunks: Buffer[] = [];
  let closed = false;
  const result = new Promise<Exchange>((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(finish, options.timeoutMs ?? 10_000);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (options.until?.(Buffer.concat(chunks))) finish();
    });
    // The proxy's FIN ends its answer (this socket is half-open capable, so 'close' would wait for ours).
    const ended = () => {
      closed = true;
      finish();
    };
    socket.once('end', ended);
    socket.once('close', ended);
  });
  for (const [i, write] of writes.entries()) {
    if (i > 0 && options.gapMs) await new Promise((r) => setTimeout(r, options.gapMs));
    if (!socket.destroyed) socket.write(write);
  }
  const got = await result;
  socket.destroy();
  return got;
}

/** The status of an HTTP answer's first line, or undefined. */
function statusOf(data: Buffer): number | undefined {
  const match = /^HTTP\/1\.1 (\d{3}) /.exec(data.toString('latin1'));
  return match ? Number(match[1]) : undefined;
}

const CRLF2 = '\r\n\r\n';
const headEnds = (data: Buffer) => data.includes(CRLF2);

/** A SOCKS5 greeting (no authentication) and CONNECT request for a domain name. */
function socks5Connect(host: string, port: number): Buffer {
  const name = Buffer.from(host, 'latin1');
  const request = Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x03, name.length]), name, Buffer.from([port >> 8, port & 0xff])]);
  return Buffer.concat([Buffer.from([0x05, 0x01, 0x00]), request]);
}

/** The reply code of a SOCKS5 exchange (after the two-byte method choice), or undefined. */
function socks5Reply(data: Buffer): number | undefined {
  if (data.length < 4 || data[0] !== 0x05 || data[1] !== 0x00 || data[2] !== 0x05) return undefined;
  return data[3];
}
const socks5Answered = (data: Buffer) => data.length >= 12;

/** A SOCKS4a CONNECT for a host name. */
function socks4aConnect(host: string, port: number): Buffer {
  return Buffer.concat([Buffer.from([0x04, 0x01, port >> 8, port & 0xff, 0, 0, 0, 1]), Buffer.from('user\0', 'latin1'), Buffer.from(`${host}\0`, 'latin1')]);
}

/** Lines of a `--json` stderr, parsed. */
function events(stderr: string): Array<Record<string, unknown>> {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** A real HTTPS server (the fixture certificate, valid for *.corp.test) saying who it is. */
async function startWeb(): Promise<{ server: HttpsServer; port: number }> {
  const server = createHttpsServer({ cert: readFixture('proxy.pem'), key: readFixture('proxy-key.pem') }, (request, response) => {
    response.setHeader('Content-Type', 'text/plain');
    response.end(`web says hello to ${request.headers.host} at ${request.url}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

describe('burrow proxy: HTTP CONNECT and SOCKS5 for names under --domain', () => {
  let world: World;
  let web: { server: HttpsServer; port: number };
  let sshd: Sshd;
  let proxy: BurrowProcess & { port: number };
  let caPath: string;

  before(async () => {
    requireClients();
    web = await startWeb();
    sshd = await startSshd();
    const closedPort = await freePort();
    world = await startWorld({
      extraRoutes: [
        { from: 'tcp+https://web.corp.test:443', to: `tcp://127.0.0.1:${web.port}` },
        { from: `tcp+https://ssh.corp.test:22`, to: `tcp://${sshd.address}` },
        { from: 'tcp+https://bob-only.corp.test:22', to: 'tcp://127.0.0.1:1', allow: ['bob@corp.test'] },
        { from: 'tcp+https://down.corp.test:22', to: `tcp://127.0.0.1:${closedPort}` },
        { from: 'tcp+https://badcorp.test:22', to: `tcp://${DEST}` },
        { from: 'tcp+https://app.internal.test:22', to: 'tcp://127.0.0.1:1' },
      ],
    });
    caPath = world.proxy.caPath;
    proxy = await startListener(
      ['--listen', '127.0.0.1:0', '--domain', 'corp.test', '--domain', 'Example.ORG.', '--pomerium-url', world.proxy.url, '--alternate-ca-path', caPath, '--json'],
      { env: world.env },
      'proxy',
    );
  });
  after(async () => {
    await stopAllCommands();
    await stopAll();
    await world?.close();
    await sshd?.stop();
    await new Promise((resolve) => web?.server.close(resolve));
  });

  it('says where it listens: the address on stdout, a listening event naming the domains', async () => {
    assert.match(proxy.stdoutText().trim(), /^127\.0\.0\.1:\d+$/);
    await eventually(() => events(proxy.stderr()).some((e) => e.event === 'listening'), 5000, 'the listening event');
    const listening = events(proxy.stderr()).find((e) => e.event === 'listening')!;
    assert.deepEqual(listening.domains, ['corp.test', 'example.org']);
    assert.equal(listening.proxy, world.proxy.url);
  });

  it('ncat through HTTP CONNECT and through SOCKS5: bytes go to the route and come back whole', async () => {
    const data = payload(256 * 1024, 7);
    for (const type of ['http', 'socks5']) {
      const dns = type === 'socks5' ? ['--proxy-dns', 'remote'] : [];
      const r = await run(NCAT, ['--proxy', `127.0.0.1:${proxy.port}`, '--proxy-type', type, ...dns, 'git.corp.test', '22'], { input: data, timeoutMs: 30_000 });
      assert.equal(r.code, 0, `${type}: ${r.stderr}\n${proxy.stderr()}`);
      assert.equal(sha256(r.stdout), sha256(data), `${type}: the echo came back whole`);
    }
  });

  it('curl to a real HTTPS server through an HTTPS proxy (CONNECT) and through --socks5-hostname', async () => {
    const url = 'https://web.corp.test/hello?x=1';
    for (const how of [['--proxy', `http://127.0.0.1:${proxy.port}`], ['--socks5-hostname', `127.0.0.1:${proxy.port}`]]) {
      const r = await run(CURL, ['--silent', '--show-error', '--max-time', '20', '--cacert', caPath, ...how, url], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, `${how[0]}: ${r.stderr}`);
      assert.equal(r.stdout.toString(), 'web says hello to web.corp.test at /hello?x=1\n');
    }
  });

  it('ssh with an ncat SOCKS5 ProxyCommand to a real sshd behind the proxy', async () => {
    const knownHosts = sshd.knownHostsFor(['ssh.corp.test']);
    const command = `${NCAT} --proxy 127.0.0.1:${proxy.port} --proxy-type socks5 --proxy-dns remote %h %p`;
    const r = await run('ssh', [...sshd.clientArgs(knownHosts), '-o', `ProxyCommand=${command}`, '-p', '22', 'ssh.corp.test', 'echo', 'through-burrow-proxy'], {
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 0, `${r.stderr}\n${proxy.stderr()}`);
    assert.equal(r.stdout.toString(), 'through-burrow-proxy\n');
  });

  it('SOCKS4a: a host name after the user id is tunnelled (reply 0x5A)', async () => {
    const r = await exchange(proxy.port, [Buffer.concat([socks4aConnect('git.corp.test', 22), Buffer.from('four-a')])], { until: (d) => d.length >= 14 });
    assert.deepEqual([...r.data.subarray(0, 2)], [0x00, 0x5a]);
    assert.equal(r.data.subarray(8).toString(), 'four-a');
  });

  it('names match case-insensitively with a trailing dot; bytes sent with the request are not lost', async () => {
    const http = await exchange(proxy.port, [`CONNECT GIT.Corp.Test.:22 HTTP/1.1\r\nHost: GIT.Corp.Test.:22${CRLF2}pipelined-http`], {
      until: (d) => d.toString().endsWith('pipelined-http'),
    });
    assert.equal(statusOf(http.data), 200, http.data.toString());
    assert.equal(http.data.toString(), `HTTP/1.1 200 Connection Established${CRLF2}pipelined-http`);
    const socks = await exchange(proxy.port, [Buffer.concat([socks5Connect('git.corp.test', 22), Buffer.from('pipelined-socks')])], {
      until: (d) => d.toString('latin1').endsWith('pipelined-socks'),
    });
    assert.equal(socks5Reply(socks.data), 0x00);
    assert.equal(socks.data.subarray(12).toString(), 'pipelined-socks');
    await eventually(() => events(proxy.stderr()).some((e) => e.event === 'connected' && e.dest === 'git.corp.test:22'), 5000, 'a connected event naming git.corp.test:22');
  });

  it('refuses what is not under a --domain (dot boundary, IP addresses) without contacting the proxy', async () => {
    const connects = world.proxy.stats.connects;
    for (const dest of ['badcorp.test:22', 'corp.test.evil.example:22', '127.0.0.1:22', '[::1]:22', 'app.internal.test:22']) {
      const http = await exchange(proxy.port, [`CONNECT ${dest} HTTP/1.1${CRLF2}`]);
      assert.equal(statusOf(http.data), 403, `${dest}: ${http.data.toString()}`);
      assert.ok(http.closed, 'then closed');
      assert.match(http.data.toString(), /refused a tunnel to/);
    }
    const socks = await exchange(proxy.port, [socks5Connect('badcorp.test', 22)], { until: socks5Answered });
    assert.equal(socks5Reply(socks.data), 0x02, 'connection not allowed by ruleset');
    const ipv4 = await exchange(proxy.port, [Buffer.from([0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0, 22])], { until: socks5Answered });
    assert.equal(socks5Reply(ipv4.data), 0x02);
    assert.equal(world.proxy.stats.connects, connects, 'nothing was asked of the proxy');
    await eventually(() => events(proxy.stderr()).some((e) => e.event === 'refused' && e.dest === 'badcorp.test:22'), 5000, 'a refused event');
    const refused = events(proxy.stderr()).find((e) => e.event === 'refused' && e.dest === 'badcorp.test:22')!;
    assert.equal(refused.code, 'BURROW_DESTINATION_REFUSED');
    assert.equal(refused.protocol, 'http');
    assert.equal(refused.message, text.destinationRefused('badcorp.test:22', 'corp.test, example.org'));
  });

  it("maps the proxy's answers to HTTP statuses and SOCKS reply codes", async () => {
    const cases: Array<[string, number, number]> = [
      ['bob-only.corp.test:22', 403, 0x02],
      ['nope.corp.test:22', 404, 0x04],
      ['down.corp.test:22', 503, 0x05],
    ];
    for (const [dest, status, reply] of cases) {
      const http = await exchange(proxy.port, [`CONNECT ${dest} HTTP/1.1${CRLF2}`], { timeoutMs: 15_000 });
      assert.equal(statusOf(http.data), status, `${dest}: ${http.data.toString()}`);
      assert.ok(http.closed, `${dest}: closed after the answer`);
      const [host, port] = dest.split(':') as [string, string];
      const socks = await exchange(proxy.port, [socks5Connect(host, Number(port))], { until: socks5Answered, timeoutMs: 15_000 });
      assert.equal(socks5Reply(socks.data), reply, `${dest} over SOCKS5`);
    }
    const failed = events(proxy.stderr()).filter((e) => e.event === 'failed').map((e) => [e.dest, e.code]);
    assert.deepEqual(
      [...new Map(failed.map(([d, c]) => [d, c])).entries()],
      [
        ['bob-only.corp.test:22', 'BURROW_ACCESS_DENIED'],
        ['nope.corp.test:22', 'BURROW_ROUTE_NOT_FOUND'],
        ['down.corp.test:22', 'BURROW_UPSTREAM_UNAVAILABLE'],
      ],
    );
  });

  it('turns down what it does not serve, clearly, and keeps serving', async () => {
    // A slow client, held open while the others are checked: answered 408 at the 10 s limit.
    const slow = exchange(proxy.port, ['CONNECT git.corp.test:22 HTTP/1.1\r\n'], { timeoutMs: 20_000 });
    const get = await exchange(proxy.port, [`GET http://web.corp.test/ HTTP/1.1\r\nHost: web.corp.test${CRLF2}`]);
    assert.equal(statusOf(get.data), 405);
    assert.match(get.data.toString(), /Allow: CONNECT\r\n/);
    assert.match(get.data.toString(), /tunnel proxy that answers CONNECT host:port only/);
    const garbage = await exchange(proxy.port, [`hello there${CRLF2}`]);
    assert.equal(statusOf(garbage.data), 400);
    const badTarget = await exchange(proxy.port, [`CONNECT http://git.corp.test:22/ HTTP/1.1${CRLF2}`]);
    assert.equal(statusOf(badTarget.data), 400);
    const huge = await exchange(proxy.port, [`CONNECT git.corp.test:22 HTTP/1.1\r\nX-Filler: ${'a'.repeat(20_000)}${CRLF2}`]);
    assert.equal(statusOf(huge.data), 431);
    const auth = await exchange(proxy.port, [Buffer.from([0x05, 0x01, 0x02])]);
    assert.deepEqual([...auth.data], [0x05, 0xff], 'no acceptable method');
    assert.ok(auth.closed);
    const bind = await exchange(proxy.port, [Buffer.from([0x05, 0x01, 0x00, 0x05, 0x02, 0x00, 0x03, 3, 0x61, 0x62, 0x63, 0, 22])], { until: socks5Answered });
    assert.equal(socks5Reply(bind.data), 0x07, 'command not supported');
    const atyp = await exchange(proxy.port, [Buffer.from([0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x09, 0, 0])], { until: socks5Answered });
    assert.equal(socks5Reply(atyp.data), 0x08, 'address type not supported');
    // A curl that points a plain http:// URL at it is refused, not proxied.
    const plain = await run(CURL, ['--silent', '--max-time', '10', '--output', '/dev/null', '--write-out', '%{http_code}', '--proxy', `http://127.0.0.1:${proxy.port}`, 'http://web.corp.test/'], {
      timeoutMs: 20_000,
    });
    assert.equal(plain.stdout.toString(), '405');
    const late = await slow;
    assert.equal(statusOf(late.data), 408, late.data.toString());
    assert.ok(late.closed);
    // Still serving.
    const ok = await exchange(proxy.port, [`CONNECT git.corp.test:22 HTTP/1.1${CRLF2}still-here`], { until: (d) => d.toString().endsWith('still-here') });
    assert.equal(statusOf(ok.data), 200);
    assert.equal(proxy.child.exitCode, null, 'the listener is still running');
    const codes = events(proxy.stderr()).filter((e) => e.event === 'refused' && e.code === 'BURROW_PROXY_REQUEST');
    assert.ok(codes.length >= 7, `each refusal is reported: ${codes.length}`);
  });

  it('takes its domains and proxy from the config file: a list of domains, no flags but --listen', async () => {
    const dir = tempDir('proxy-config');
    const file = join(dir, 'config.yaml');
    writeFileSync(file, `defaults:\n  domain:\n    - corp.test\n    - example.org\n  pomerium-url: ${world.proxy.url}\n  alternate-ca-path: ${caPath}\n`);
    const configured = await startListener(['--listen', '127.0.0.1:0', '--json'], { env: { ...world.env, BURROW_CONFIG: file } }, 'proxy');
    try {
      await eventually(() => events(configured.stderr()).some((e) => e.event === 'listening'), 5000, 'the listening event');
      assert.deepEqual(events(configured.stderr()).find((e) => e.event === 'listening')!.domains, ['corp.test', 'example.org']);
      const ok = await exchange(configured.port, [`CONNECT git.corp.test:22 HTTP/1.1${CRLF2}from-config`], { until: (d) => d.toString().endsWith('from-config') });
      assert.equal(statusOf(ok.data), 200, ok.data.toString());
      const refused = await exchange(configured.port, [`CONNECT badcorp.test:22 HTTP/1.1${CRLF2}`]);
      assert.equal(statusOf(refused.data), 403);
    } finally {
      await configured.stop('SIGTERM');
    }
  });

  it('stops on SIGTERM with exit 0', async () => {
    const other = await startListener(['--domain', 'corp.test', '--listen', ':0', '--pomerium-url', world.proxy.url, '--alternate-ca-path', caPath], { env: world.env }, 'proxy');
    assert.equal(await other.stop('SIGTERM'), 0);
  });
});

describe('burrow proxy: proxies that cannot be reached, or do not answer', () => {
  let silent: FakePomerium;
  before(async () => {
    silent = await startFakePomerium({ stallConnect: true, routes: [{ from: 'tcp+https://git.corp.test:22', to: 'tcp://127.0.0.1:1' }] });
  });
  after(async () => {
    await stopAll();
    await silent?.close();
  });

  it('unreachable proxy: 502 / SOCKS 0x01; no answer within --connect-timeout: 504 / SOCKS 0x06', async () => {
    const closed = await freePort();
    const env = { BURROW_SERVICE_ACCOUNT: silent.mintToken() };
    const cases: Array<[string, number, number]> = [
      [`https://127.0.0.1:${closed}`, 502, 0x01],
      [silent.url, 504, 0x06],
    ];
    for (const [url, status, reply] of cases) {
      const p = await startListener(['--domain', 'corp.test', '--listen', ':0', '--pomerium-url', url, '--alternate-ca-path', silent.caPath, '--connect-timeout', '1'], { env }, 'proxy');
      const http = await exchange(p.port, [`CONNECT git.corp.test:22 HTTP/1.1${CRLF2}`], { timeoutMs: 15_000 });
      assert.equal(statusOf(http.data), status, `${url}: ${http.data.toString()}\n${p.stderr()}`);
      const socks = await exchange(p.port, [socks5Connect('git.corp.test', 22)], { until: socks5Answered, timeoutMs: 15_000 });
      assert.equal(socks5Reply(socks.data), reply, url);
      await p.stop();
    }
  });
});

describe('burrow proxy: sign-in and the command line', () => {
  let world: World;
  before(async () => {
    world = await startWorld();
  });
  after(async () => {
    await stopAll();
    await world?.close();
  });

  it('concurrent connections with no token share one browser sign-in', async () => {
    const cache = tempDir('burrow-user-');
    const log = join(cache, 'browser.log');
    const p = await startListener(
      ['--domain', 'corp.test', '--listen', ':0', '--pomerium-url', world.proxy.url, '--alternate-ca-path', world.proxy.caPath, '--browser-cmd', followBrowser],
      { env: { XDG_CACHE_HOME: cache, ...browserEnv({ log, delayMs: 300, timeoutMs: 30_000 }) } },
      'proxy',
    );
    const before = world.proxy.stats.signIns;
    const results = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const r = await exchange(p.port, [`CONNECT git.corp.test:22 HTTP/1.1${CRLF2}conn-${i}`], { until: (d) => d.toString().endsWith(`conn-${i}`), timeoutMs: 45_000 });
        return r.data.toString().split(CRLF2)[1];
      }),
    );
    assert.deepEqual(results, Array.from({ length: 6 }, (_, i) => `conn-${i}`), p.stderr());
    assert.equal(world.proxy.stats.signIns - before, 1, 'one sign-in');
    assert.equal(browserLaunches(log).length, 1, 'one browser');
    assert.match(p.stderr(), /#\d 127\.0\.0\.1:\d+: connected to git\.corp\.test:22 in /, 'human lines name the destination');
    await p.stop();
  });

  it('usage errors: no --domain, an IP or wildcard as a domain, stdio, a bad --pomerium-url (exit 2, one line)', async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /needs at least one --domain/],
      [['--domain', '10.0.0.1'], /invalid --domain "10\.0\.0\.1": it is an IP address/],
      [['--domain', '*.corp.test'], /wildcards are not needed/],
      [['--domain', 'corp.test', '--listen', '-'], /no stdin\/stdout mode/],
      [['--domain', 'corp.test', '--pomerium-url', 'ftp://x'], /invalid --pomerium-url/],
    ];
    for (const [args, pattern] of cases) {
      const r = await runBurrow(['proxy', ...args]);
      assert.equal(r.code, ExitCode.usage, `${args.join(' ')}: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, pattern);
    }
  });
});
