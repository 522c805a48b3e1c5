/**
 * burrow udp end to end: the real CLI, real TLS, the local proxy's CONNECT-UDP routes, a real
 * DNS server (dnsmasq) queried with real dig, and a UDP echo server for content-exact datagrams
 * of every size from 1 byte to the largest an IPv4 socket carries.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ExitCode } from '../../src/errors.js';
import { browserEnv, followBrowser } from '../helpers/browsers/index.js';
import { runBurrow, startListener, tempDir } from '../helpers/burrow.js';
import { eventually, suiteWorld } from '../helpers/world.js';

const run = promisify(execFile);
const DNSMASQ = '/usr/sbin/dnsmasq';
const DIG = '/usr/bin/dig';
/** The largest payload a UDP/IPv4 socket sends: 65535 less the IP and UDP headers. */
const MAX_IPV4_PAYLOAD = 65507;

/** Fails under CI (the tools are installed by .ci/run), skips elsewhere. */
function requireTools(t: { skip(message: string): void }): boolean {
  const missing = [DNSMASQ, DIG].filter((path) => !existsSync(path));
  if (missing.length === 0) return true;
  if (process.env.CI) throw new Error(`missing ${missing.join(', ')}: install dnsmasq and dnsutils`);
  t.skip(`missing ${missing.join(', ')}`);
  return false;
}

async function udpEcho(): Promise<{ socket: UdpSocket; port: number }> {
  const socket = createSocket('udp4');
  socket.on('message', (message, peer) => socket.send(message, peer.port, peer.address));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, port: (socket.address() as AddressInfo).port };
}

async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/** A payload whose bytes depend on its size and seed, so a mix-up or a cut shows. */
function pattern(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return out;
}

/** Sends `data` from a fresh socket to `port` and waits (bounded) for one reply. */
async function exchange(port: number, datagrams: Buffer[], timeoutMs = 5000): Promise<Buffer[]> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const got: Buffer[] = [];
  try {
    for (const data of datagrams) {
      const reply = new Promise<Buffer | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), timeoutMs);
        socket.once('message', (message) => {
          clearTimeout(timer);
          resolve(message);
        });
      });
      socket.send(data, port, '127.0.0.1');
      const message = await reply;
      if (message === undefined) break;
      got.push(message);
    }
  } finally {
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
  return got;
}

/** JSON lines of a --json burrow's stderr. */
function events(stderr: string): Array<Record<string, unknown>> {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('burrow udp', () => {
  let echo: { socket: UdpSocket; port: number };
  let dnsPort: number;
  let dnsmasq: ChildProcess | undefined;
  before(async () => {
    echo = await udpEcho();
    dnsPort = await freeUdpPort();
  });
  const world = suiteWorld();
  // The UDP routes, once their servers have ports.
  before(async () => {
    world.proxy.addRoute({ from: 'udp+https://echo.corp.test:7', to: `udp://127.0.0.1:${echo.port}` });
    world.proxy.addRoute({ from: 'udp+https://dns.corp.test:53', to: `udp://127.0.0.1:${dnsPort}` });
    world.proxy.addRoute({ from: 'udp+https://bob-only.corp.test:7', to: `udp://127.0.0.1:${echo.port}`, allow: ['bob@corp.test'] });
  });
  after(async () => {
    dnsmasq?.kill('SIGKILL');
    echo.socket.close();
  });

  const args = (dest: string, ...extra: string[]) => [dest, '--pomerium-url', world.proxy.url, '--alternate-ca-path', world.proxy.caPath, ...extra];

  it('dig gets its answers from a real DNS server behind the proxy, 40 queries from 40 source ports at once', async (t) => {
    if (!requireTools(t)) return;
    dnsmasq = spawn(
      DNSMASQ,
      ['--keep-in-foreground', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--bind-interfaces', '--listen-address=127.0.0.1', `--port=${dnsPort}`, '--user=root', '--pid-file=', '--address=/intranet.corp.test/10.1.2.3', '--txt-record=hello.corp.test,through burrow'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let dnsmasqErr = '';
    dnsmasq.stderr?.on('data', (d: Buffer) => (dnsmasqErr += d.toString()));
    // Ready when it answers directly.
    await eventually(() => dnsmasq?.exitCode === null, 2000, 'dnsmasq to start');
    for (let i = 0; i < 50; i++) {
      const direct = await run(DIG, ['@127.0.0.1', '-p', String(dnsPort), '+short', '+tries=1', '+time=1', 'intranet.corp.test', 'A']).catch(() => ({ stdout: '' }));
      if (direct.stdout.trim() === '10.1.2.3') break;
      if (i === 49) throw new Error(`dnsmasq does not answer: ${dnsmasqErr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const burrow = await startListener(args('dns.corp.test:53', '--json'), { env: world.env }, 'udp');
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        run(DIG, ['@127.0.0.1', '-p', String(burrow.port), '+short', '+tries=2', '+time=5', i % 2 ? 'intranet.corp.test' : 'hello.corp.test', i % 2 ? 'A' : 'TXT']).then((r) => r.stdout.trim()),
      ),
    );
    answers.forEach((answer, i) => assert.equal(answer, i % 2 ? '10.1.2.3' : '"through burrow"', `query ${i}`));
    const connected = events(burrow.stderr()).filter((e) => e.event === 'connected');
    assert.ok(connected.length >= 40, `one session per source port: ${connected.length}`);
    assert.equal(await burrow.stop(), 0);
    const closed = events(burrow.stderr()).filter((e) => e.event === 'closed');
    assert.equal(closed.length, connected.length, 'every session reports closed');
    assert.ok(closed.every((e) => e.reason === 'shutdown' && e.transport === 'connect-udp' && typeof e.datagrams_up === 'number'));
  });

  it('echoes datagrams of every size from 1 byte to 65,507, content-exact, in one session', async () => {
    // --pomerium-url wins over the proxy the URL names.
    const burrow = await startListener(args('udp+https://localhost/echo.corp.test:7', '--json'), { env: world.env }, 'udp');
    const sizes = [1, 2, 3, 100, 508, 1200, 1472, 1500, 4096, 8192, 9000, 16_384, 32_768, 65_000, MAX_IPV4_PAYLOAD];
    const sent = sizes.map((size, i) => pattern(size, i));
    const back = await exchange(burrow.port, sent);
    assert.equal(back.length, sent.length, `replies: ${back.length} of ${sent.length}; ${burrow.stderr()}`);
    back.forEach((reply, i) => assert.ok(reply.equals(sent[i]!), `datagram of ${sizes[i]} B came back changed`));
    assert.equal(await burrow.stop(), 0);
    const closed = events(burrow.stderr()).filter((e) => e.event === 'closed');
    assert.equal(closed.length, 1);
    const total = sizes.reduce((a, b) => a + b, 0);
    assert.deepEqual(
      { up: closed[0]!.datagrams_up, down: closed[0]!.datagrams_down, bytesUp: closed[0]!.bytes_up, bytesDown: closed[0]!.bytes_down, dropped: closed[0]!.dropped_up },
      { up: sizes.length, down: sizes.length, bytesUp: total, bytesDown: total, dropped: 0 },
    );
  });

  it('ends a quiet session after --idle-timeout, and the next datagram opens a new one with the same token', async () => {
    const burrow = await startListener(args('echo.corp.test:7', '--json', '--idle-timeout', '1s'), { env: world.env }, 'udp');
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const replies: Buffer[] = [];
    socket.on('message', (m) => replies.push(m));
    try {
      for (let i = 0; i < 3; i++) socket.send(Buffer.from(`ping ${i}`), burrow.port, '127.0.0.1');
      await eventually(() => replies.length === 3, 5000, 'three echoes');
      await eventually(() => events(burrow.stderr()).some((e) => e.event === 'closed'), 5000, 'the idle session to close');
      const closed = events(burrow.stderr()).find((e) => e.event === 'closed')!;
      assert.equal(closed.reason, 'idle_timeout');
      assert.equal(closed.datagrams_up, 3);
      assert.equal(closed.datagrams_down, 3);
      socket.send(Buffer.from('again'), burrow.port, '127.0.0.1');
      await eventually(() => replies.length === 4, 5000, 'the echo through a new session');
      assert.equal(replies[3]!.toString(), 'again');
      assert.equal(events(burrow.stderr()).filter((e) => e.event === 'connected').length, 2);
    } finally {
      socket.close();
    }
    assert.equal(await burrow.stop(), 0);
  });

  it('signs in on first use, with one sign-in for many new peers at once, and reuses the token after', async () => {
    const cache = tempDir('burrow-udp-user-');
    const env = { XDG_CACHE_HOME: cache, ...browserEnv({ log: `${cache}/browser.log` }) };
    const signIns = world.proxy.stats.signIns;
    const burrow = await startListener(args('echo.corp.test:7', '--browser-cmd', followBrowser), { env }, 'udp');
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => exchange(burrow.port, [pattern(100 + i, i)], 20_000)));
    results.forEach((got, i) => assert.ok(got[0]?.equals(pattern(100 + i, i)), `peer ${i}: ${burrow.stderr()}`));
    assert.equal(world.proxy.stats.signIns, signIns + 1, 'one sign-in for all peers');
    assert.equal(await burrow.stop(), 0);
    // A new process reuses the cached token: no sign-in.
    const again = await startListener(args('echo.corp.test:7', '--browser-cmd', followBrowser), { env }, 'udp');
    const got = await exchange(again.port, [Buffer.from('cached')]);
    assert.equal(got[0]?.toString(), 'cached');
    assert.equal(world.proxy.stats.signIns, signIns + 1, 'no second sign-in');
    assert.equal(await again.stop(), 0);
  });

  for (const [name, dest, code, exitCode] of [
    ['403', 'bob-only.corp.test:7', 'BURROW_ACCESS_DENIED', ExitCode.accessDenied],
    ['404', 'nowhere.corp.test:7', 'BURROW_ROUTE_NOT_FOUND', ExitCode.routeNotFound],
  ] as const) {
    it(`a ${name} answer fails the session with ${code}, and the listener keeps serving`, async () => {
      const burrow = await startListener(args(dest, '--json'), { env: world.env }, 'udp');
      await exchange(burrow.port, [Buffer.from('x')], 500);
      await eventually(() => events(burrow.stderr()).some((e) => e.event === 'failed'), 5000, 'the failed event');
      const failed = events(burrow.stderr()).find((e) => e.event === 'failed')!;
      assert.equal(failed.code, code);
      assert.equal(failed.exit_code, exitCode);
      assert.equal(burrow.child.exitCode, null, 'still serving');
      assert.equal(await burrow.stop(), 0);
    });
  }

  it('refuses --listen - and tcp+https:// destinations with one line and exit 2', async () => {
    const stdio = await runBurrow(['udp', ...args('echo.corp.test:7', '--listen', '-')], { env: world.env });
    assert.equal(stdio.code, ExitCode.usage);
    assert.match(stdio.stderr, /UDP has no stdin\/stdout mode/);
    assert.equal(stdio.stderr.trim().split('\n').length, 1);
    const tcp = await runBurrow(['udp', 'tcp+https://git.corp.test:22'], { env: world.env });
    assert.equal(tcp.code, ExitCode.usage);
    assert.match(tcp.stderr, /are for "burrow tcp"/);
  });
});
