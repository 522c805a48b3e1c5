/**
 * burrow udp end to end: the real CLI, real TLS, the local proxy's CONNECT-UDP routes, a real
 * DNS server (dnsmasq) queried with real dig, and a UDP echo server for content-exact datagrams
 * of every size from 1 byte to the largest an IPv4 socket carries.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ExitCode } from '../../src/errors.js';
import { encodeDatagramCapsule, encodeVarint, MAX_DATAGRAM_CAPSULE } from '../../src/tunnel/capsule.js';
import { HOLD_OFF_FIRST_MS } from '../../src/tunnel/udp-relay.js';
import { browserEnv, followBrowser } from '../helpers/browsers/index.js';
import { runBurrow, startListener, stopAll, tempDir } from '../helpers/burrow.js';
import { signInUrl } from '../helpers/fake-pomerium/sign-in.js';
import { createRng, FUZZ_SEED, type Rng } from '../helpers/fuzz.js';
import { eventually, startWorld, suiteWorld } from '../helpers/world.js';

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

/**
 * A port on 127.0.0.1 free a moment ago for UDP and TCP both: dnsmasq listens on both, and a
 * UDP port alone can be a TCP port another test holds. Bounded: 20 tries.
 */
async function freeDnsPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freeUdpPort();
    const tcp = createServer();
    const free = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (free) {
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
      return port;
    }
  }
  throw new Error('no port on 127.0.0.1 was free for both UDP and TCP in 20 tries');
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

/** A bound socket on loopback that keeps every datagram it gets; close it when done. */
async function peerSocket(): Promise<{ socket: UdpSocket; replies: Buffer[]; send(data: Buffer | string, port: number): void; close(): Promise<void> }> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const replies: Buffer[] = [];
  socket.on('message', (m) => replies.push(m));
  return {
    socket,
    replies,
    send: (data, port) => socket.send(Buffer.from(data), port, '127.0.0.1'),
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** The masque path the proxy sees for `host:port`. */
const masque = (host: string, port: number) => `/.well-known/masque/udp/${host}/${port}/`;

/**
 * A capsule stream no proxy relaying UDP sends, seeded: a few capsules that are fine (unknown
 * types, which are skipped; datagrams of another context, dropped; datagrams for the peer), then
 * one that cannot be relayed (a DATAGRAM without a whole context id, or too long to be a UDP
 * payload), then maybe junk.
 */
function badCapsules(rng: Rng): Buffer {
  const parts: Buffer[] = [];
  for (let i = rng.int(4); i > 0; i--) {
    const kind = rng.int(3);
    const body = rng.bytes(rng.int(64));
    if (kind === 0) parts.push(encodeVarint(rng.range(1, 2 ** 30)), encodeVarint(body.length), body);
    else if (kind === 1) {
      const context = encodeVarint(rng.range(1, 2 ** 20));
      parts.push(encodeVarint(0), encodeVarint(context.length + body.length), context, body);
    } else parts.push(encodeDatagramCapsule(body));
  }
  const bad = rng.int(3);
  if (bad === 0) parts.push(Buffer.from([0x00, 0x00]));
  else if (bad === 1) parts.push(encodeVarint(0), encodeVarint(rng.range(MAX_DATAGRAM_CAPSULE + 1, 2 ** 40)), rng.bytes(rng.int(16)));
  else {
    // The context id's first byte announces 2, 4 or 8 bytes; the capsule ends sooner.
    const first = [0x40, 0x80, 0xc0][rng.int(3)]! | rng.int(64);
    const room = (1 << (first >> 6)) - 1;
    parts.push(encodeVarint(0), encodeVarint(1 + rng.int(room)), Buffer.from([first]));
    parts.push(rng.bytes(room));
  }
  if (rng.chance(0.5)) parts.push(rng.bytes(rng.int(32)));
  return Buffer.concat(parts);
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
  });
  // What the proxy's hooks do, set by the tests: the next request for a destination is held,
  // CONNECT-UDP answers carry raw bytes for the fuzz route.
  const hooks = { slowNext: 0, fuzz: [] as Buffer[] };
  const world = suiteWorld({
    respond: (req) => {
      if (req.url === masque('down.corp.test', 7)) return { status: 503 };
      if (req.url === masque('relogin.corp.test', 7)) return { status: 302, headers: { Location: signInUrl(world.proxy.url, 'https://relogin.corp.test:7/') } };
      return undefined;
    },
    delayRequest: (req) => {
      if (req.url !== masque('echo.corp.test', 7) || hooks.slowNext === 0) return undefined;
      const ms = hooks.slowNext;
      hooks.slowNext = 0;
      return ms;
    },
    udpAfterAnswer: (req) => (req.url === masque('fuzz.corp.test', 7) ? hooks.fuzz.shift() : undefined),
  });
  // The UDP routes, once their servers have ports.
  before(async () => {
    world.proxy.addRoute({ from: 'udp+https://echo.corp.test:7', to: `udp://127.0.0.1:${echo.port}` });
    world.proxy.addRoute({ from: 'udp+https://bob-only.corp.test:7', to: `udp://127.0.0.1:${echo.port}`, allow: ['bob@corp.test'] });
    world.proxy.addRoute({ from: 'udp+https://fuzz.corp.test:7', to: `udp://127.0.0.1:${echo.port}` });
    world.proxy.addRoute({ from: 'udp+https://relogin.corp.test:7', to: `udp://127.0.0.1:${echo.port}` });
  });
  after(async () => {
    dnsmasq?.kill('SIGKILL');
    echo.socket.close();
  });

  const args = (dest: string, ...extra: string[]) => [dest, '--pomerium-url', world.proxy.url, '--alternate-ca-path', world.proxy.caPath, ...extra];

  it('dig gets its answers from a real DNS server behind the proxy, 40 queries from 40 source ports at once', async (t) => {
    if (!requireTools(t)) return;
    // A port taken between choosing it and dnsmasq's bind (other tests run alongside) makes it
    // exit at once with "Address already in use": then another port, 5 tries at most.
    let dnsmasqErr = '';
    for (let attempt = 1; ; attempt++) {
      dnsPort = await freeDnsPort();
      dnsmasqErr = '';
      const started = spawn(
        DNSMASQ,
        ['--keep-in-foreground', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--bind-interfaces', '--listen-address=127.0.0.1', `--port=${dnsPort}`, '--user=root', '--pid-file=', '--address=/intranet.corp.test/10.1.2.3', '--txt-record=hello.corp.test,through burrow'],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      dnsmasq = started;
      started.stderr?.on('data', (d: Buffer) => (dnsmasqErr += d.toString()));
      const exited = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 500);
        started.once('exit', () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      if (!exited) break;
      if (attempt === 5 || !/address already in use/i.test(dnsmasqErr)) throw new Error(`dnsmasq did not start: ${dnsmasqErr}`);
    }
    world.proxy.addRoute({ from: 'udp+https://dns.corp.test:53', to: `udp://127.0.0.1:${dnsPort}` });
    // Ready when it answers directly.
    for (let i = 0; i < 50; i++) {
      const direct = await run(DIG, ['@127.0.0.1', '-p', String(dnsPort), '+short', '+tries=1', '+time=1', 'intranet.corp.test', 'A']).catch(() => ({ stdout: '' }));
      if (direct.stdout.trim() === '10.1.2.3') break;
      if (i === 49) throw new Error(`dnsmasq does not answer: ${dnsmasqErr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const burrow = await startListener(args('dns.corp.test:53', '--json'), { env: world.env }, 'udp');
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        run(DIG, ['@127.0.0.1', '-p', String(burrow.port), '+short', '+tries=2', '+time=8', i % 2 ? 'intranet.corp.test' : 'hello.corp.test', i % 2 ? 'A' : 'TXT']).then((r) =>
          // UDP may lose a datagram (40 sessions opening at once on a busy machine): dig then says
          // so on a ';;' line and asks again, and the answer to the retry is what counts.
          r.stdout
            .split('\n')
            .filter((line) => !line.startsWith(';;'))
            .join('\n')
            .trim(),
        ),
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
    // The same code and exit code as burrow tcp's 503 (tcp-errors.test.ts).
    ['503', 'down.corp.test:7', 'BURROW_UPSTREAM_UNAVAILABLE', ExitCode.upstreamUnavailable],
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

  it('302 for a refused service account: the session fails with BURROW_AUTH_REQUIRED (exit 3, as tcp), no sign-in, and the listener keeps serving', async () => {
    const other = await startWorld();
    const foreign = other.token;
    await other.close();
    const signIns = world.proxy.stats.signIns;
    const burrow = await startListener(args('echo.corp.test:7', '--json', '--browser-cmd', '/nonexistent/browser'), { env: { BURROW_SERVICE_ACCOUNT: foreign } }, 'udp');
    await exchange(burrow.port, [Buffer.from('x')], 500);
    await eventually(() => events(burrow.stderr()).some((e) => e.event === 'failed'), 5000, 'the failed event');
    const failed = events(burrow.stderr()).find((e) => e.event === 'failed')!;
    assert.equal(failed.code, 'BURROW_AUTH_REQUIRED');
    assert.equal(failed.exit_code, ExitCode.authRequired);
    assert.match(String(failed.message), /\(HTTP 302\)/);
    assert.equal(world.proxy.stats.signIns, signIns, 'a service account never signs in');
    assert.ok(!burrow.stderr().includes(foreign), 'the token is never printed');
    assert.equal(burrow.child.exitCode, null, 'still serving');
    assert.equal(await burrow.stop(), 0);
  });

  it('302 again after a fresh sign-in: one sign-in, exactly one retry, then BURROW_LOGIN_REJECTED; never a loop', async () => {
    const cache = tempDir('burrow-udp-relogin-');
    const env = { XDG_CACHE_HOME: cache, ...browserEnv({ log: `${cache}/browser.log` }) };
    const signIns = world.proxy.stats.signIns;
    const asked = () => world.proxy.requests.filter((r) => r.url === masque('relogin.corp.test', 7)).length;
    const before = asked();
    const burrow = await startListener(args('relogin.corp.test:7', '--json', '--browser-cmd', followBrowser), { env }, 'udp');
    await exchange(burrow.port, [Buffer.from('x')], 500);
    await eventually(() => events(burrow.stderr()).some((e) => e.event === 'failed'), 20_000, () => `the failed event; ${burrow.stderr()}`);
    const all = events(burrow.stderr());
    assert.equal(all.filter((e) => e.event === 'sign_in_required').length, 1);
    const failed = all.find((e) => e.event === 'failed')!;
    assert.equal(failed.code, 'BURROW_LOGIN_REJECTED');
    assert.equal(failed.exit_code, ExitCode.authRequired);
    assert.equal(world.proxy.stats.signIns, signIns + 1, 'one sign-in');
    assert.equal(asked() - before, 2, 'the request and one retry');
    assert.equal(burrow.child.exitCode, null, 'still serving');
    assert.equal(await burrow.stop(), 0);
  });

  it('after a failed open, the peer is held off (1 s, then 2 s): one failed event and one request per attempt, its datagrams dropped and counted; other peers are not held', async () => {
    const burrow = await startListener(args('down.corp.test:7', '--json'), { env: world.env }, 'udp');
    const asked = () => world.proxy.requests.filter((r) => r.url === masque('down.corp.test', 7)).length;
    const before = asked();
    const peer = await peerSocket();
    const other = await peerSocket();
    const port = (socket: UdpSocket) => `127.0.0.1:${(socket.address() as AddressInfo).port}`;
    const failedOf = (socket: UdpSocket) => events(burrow.stderr()).filter((e) => e.event === 'failed' && e.peer === port(socket));
    try {
      // 50 datagrams, one every 50 ms: 2.5 s, which the first hold-off (1 s) and the second (2 s) cover but for two attempts.
      const started = Date.now();
      for (let i = 0; i < 50; i++) {
        peer.send(`query ${i}`, burrow.port);
        if (i === 10) other.send('another peer', burrow.port);
        await new Promise((r) => setTimeout(r, 50));
      }
      const elapsed = Date.now() - started;
      await eventually(() => failedOf(other.socket).length === 1, 5000, 'the other peer\'s own attempt');
      const failed = failedOf(peer.socket);
      // Attempts at 0, ~1 s (after the first hold-off) and, if the loop ran past 3 s, ~3 s.
      assert.ok(failed.length === 2 || (failed.length === 3 && elapsed >= 3 * HOLD_OFF_FIRST_MS), `attempts in ${elapsed} ms: ${JSON.stringify(failed)}`);
      assert.deepEqual(
        failed.map((e) => [e.code, e.hold_off_ms]),
        [['BURROW_UPSTREAM_UNAVAILABLE', 1000], ['BURROW_UPSTREAM_UNAVAILABLE', 2000], ['BURROW_UPSTREAM_UNAVAILABLE', 4000]].slice(0, failed.length),
      );
      // What never reached the proxy: the datagram that started the attempt (queued while it
      // opened) and, from the second on, the ~20 that fell in the hold-off before it.
      assert.ok(Number(failed[0]!.dropped_up) >= 1 && Number(failed[0]!.dropped_up) <= 20, `dropped while the first opened: ${failed[0]!.dropped_up}`);
      assert.ok(Number(failed[1]!.dropped_up) >= 5 && Number(failed[1]!.dropped_up) <= 45, `dropped during the hold-off: ${failed[1]!.dropped_up}`);
      assert.equal(asked() - before, failed.length + 1, 'one request per attempt, the other peer\'s included');
      assert.equal(failedOf(other.socket)[0]!.hold_off_ms, 1000);
      assert.equal(burrow.child.exitCode, null, 'still serving');
    } finally {
      await peer.close();
      await other.close();
    }
    assert.equal(await burrow.stop(), 0);
  });

  it('a peer whose tunnel is slow to open does not hold up another: the fast echo comes back while the slow one waits, then the slow one is delivered', async () => {
    const burrow = await startListener(args('echo.corp.test:7', '--json'), { env: world.env }, 'udp');
    const slow = await peerSocket();
    const fast = await peerSocket();
    try {
      const asked = () => world.proxy.requests.filter((r) => r.url === masque('echo.corp.test', 7)).length;
      const before = asked();
      hooks.slowNext = 5000;
      slow.send('slow one', burrow.port);
      await eventually(() => asked() > before, 5000, 'the slow request to reach the proxy');
      const t0 = Date.now();
      fast.send('fast one', burrow.port);
      await eventually(() => fast.replies.length === 1, 4000, 'the fast echo');
      assert.ok(Date.now() - t0 < 4000, 'well within the slow one\'s delay');
      assert.equal(slow.replies.length, 0, 'the slow peer still waits');
      await eventually(() => slow.replies.length === 1, 10_000, 'the slow echo');
      assert.equal(slow.replies[0]!.toString(), 'slow one', 'queued while its tunnel opened, then delivered');
      assert.equal(fast.replies[0]!.toString(), 'fast one');
    } finally {
      hooks.slowNext = 0;
      await slow.close();
      await fast.close();
    }
    assert.equal(await burrow.stop(), 0);
  });

  it(`bad capsules from the proxy (fuzzed, seed ${FUZZ_SEED}): each such session ends with a protocol error, burrow never crashes and keeps serving others`, async () => {
    const CASES = 40;
    const burrow = await startListener(args('fuzz.corp.test:7', '--json'), { env: world.env }, 'udp');
    const steady = await peerSocket();
    const peers: Array<Awaited<ReturnType<typeof peerSocket>>> = [];
    try {
      steady.send('before', burrow.port);
      await eventually(() => steady.replies.length === 1, 5000, 'the steady peer\'s echo');
      const rng = createRng(FUZZ_SEED ^ 0xcab5);
      hooks.fuzz = Array.from({ length: CASES }, () => badCapsules(rng.fork()));
      for (let i = 0; i < CASES; i++) {
        const peer = await peerSocket();
        peers.push(peer);
        peer.send(`case ${i}`, burrow.port);
      }
      const broken = () => events(burrow.stderr()).filter((e) => e.event === 'closed' && e.reason === 'broken');
      await eventually(() => broken().length === CASES, 15_000, () => `${CASES} broken sessions, got ${broken().length}; ${burrow.stderr().slice(-2000)}`);
      assert.equal(hooks.fuzz.length, 0, 'every case was sent');
      for (const e of broken()) {
        assert.equal(e.code, 'BURROW_PROXY_PROTOCOL', JSON.stringify(e));
        assert.equal(e.exit_code, ExitCode.proxyProtocol);
        // Broken before anything came back: held off as after a failed open.
        assert.equal(e.hold_off_ms, e.datagrams_down === 0 ? HOLD_OFF_FIRST_MS : undefined, JSON.stringify(e));
      }
      assert.doesNotMatch(burrow.stderr(), /\n\s+at |Uncaught|TypeError|RangeError/, 'no stack traces');
      assert.equal(burrow.child.exitCode, null, 'still serving');
      // The session opened before is untouched, and a new peer gets a working tunnel.
      steady.send('after', burrow.port);
      await eventually(() => steady.replies.length === 2, 5000, 'the steady peer\'s second echo');
      assert.equal(steady.replies[1]!.toString(), 'after');
      const got = await exchange(burrow.port, [Buffer.from('fresh')]);
      assert.equal(got[0]?.toString(), 'fresh');
    } finally {
      hooks.fuzz = [];
      await steady.close();
      for (const peer of peers) await peer.close();
    }
    assert.equal(await burrow.stop(), 0);
  });

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

describe('burrow udp: the proxy going away, and the open-files cap', () => {
  let echo: { socket: UdpSocket; port: number };
  before(async () => {
    echo = await udpEcho();
  });
  after(async () => {
    await stopAll();
    echo.socket.close();
  });

  it('the proxy dying under an open session: closed as broken, new attempts fail while it is down (held off), and tunnels open again once it is back', async () => {
    const world = await startWorld({ extraRoutes: [{ from: 'udp+https://echo.corp.test:7', to: `udp://127.0.0.1:${echo.port}` }] });
    const peer = await peerSocket();
    try {
      const burrow = await startListener(['echo.corp.test:7', '--pomerium-url', world.proxy.url, '--alternate-ca-path', world.proxy.caPath, '--json'], { env: world.env }, 'udp');
      peer.send('up', burrow.port);
      await eventually(() => peer.replies.length === 1, 5000, 'the first echo');
      await world.proxy.stop({ reset: true });
      await eventually(() => events(burrow.stderr()).some((e) => e.event === 'closed'), 5000, 'the closed event');
      const closed = events(burrow.stderr()).find((e) => e.event === 'closed')!;
      assert.equal(closed.reason, 'broken', JSON.stringify(closed));
      assert.equal(closed.code, 'BURROW_TUNNEL_BROKEN');
      assert.equal(closed.exit_code, ExitCode.tunnelBroken);
      assert.equal(closed.datagrams_up, 1);
      assert.equal(closed.hold_off_ms, undefined, 'it had carried datagrams: the next one may open a tunnel at once');
      // While the proxy is down: a clear failure, once per attempt.
      peer.send('down', burrow.port);
      await eventually(() => events(burrow.stderr()).some((e) => e.event === 'failed'), 5000, 'the failed event');
      const failed = events(burrow.stderr()).find((e) => e.event === 'failed')!;
      assert.equal(failed.code, 'BURROW_PROXY_UNREACHABLE', JSON.stringify(failed));
      assert.equal(failed.exit_code, ExitCode.proxyUnreachable);
      assert.equal(failed.hold_off_ms, HOLD_OFF_FIRST_MS);
      assert.equal(burrow.child.exitCode, null, 'still serving');
      await world.proxy.start();
      // The same peer, once its hold-off is over, and a new one get tunnels again.
      const until = Date.now() + 5000;
      while (peer.replies.length < 2 && Date.now() < until) {
        peer.send('back', burrow.port);
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(peer.replies[1]?.toString(), 'back', burrow.stderr());
      const got = await exchange(burrow.port, [Buffer.from('new peer')]);
      assert.equal(got[0]?.toString(), 'new peer');
      assert.equal(events(burrow.stderr()).filter((e) => e.event === 'failed').length, 1, 'one failure while the proxy was down: the hold-off kept the rest');
      assert.equal(await burrow.stop(), 0);
    } finally {
      await peer.close();
      await world.close();
    }
  });

  it('under a low open-files limit: peers beyond the room get their datagrams dropped with one warning and a count, never a crash; room comes back', async () => {
    const world = await startWorld({ extraRoutes: [{ from: 'udp+https://echo.corp.test:7', to: `udp://127.0.0.1:${echo.port}` }] });
    const peers: Array<Awaited<ReturnType<typeof peerSocket>>> = [];
    try {
      const limit = 64;
      const burrow = await startListener(
        ['echo.corp.test:7', '--pomerium-url', world.proxy.url, '--alternate-ca-path', world.proxy.caPath, '--json', '--idle-timeout', '1s'],
        { env: world.env, wrapper: ['prlimit', `--nofile=${limit}:${limit}`, '--'] },
        'udp',
      );
      const PEERS = 60;
      for (let i = 0; i < PEERS; i++) peers.push(await peerSocket());
      for (const [i, peer] of peers.entries()) peer.send(`peer ${i}`, burrow.port);
      const full = /dropping datagrams from 127\.0\.0\.1:\d+ and any other new peer: (\d+) UDP sessions are open, all that the open-files limit of 64 leaves room for/;
      const warnings = () => events(burrow.stderr()).filter((e) => e.event === 'log' && full.test(String(e.message)));
      await eventually(() => warnings().length === 1, 5000, () => `the warning; ${burrow.stderr()}`);
      const room = Number(full.exec(String(warnings()[0]!.message))![1]);
      assert.ok(room >= 1 && room < PEERS, `room for ${room} sessions under a limit of ${limit}`);
      await eventually(() => peers.filter((p) => p.replies.length > 0).length === room, 10_000, () => `${room} echoes`);
      // Beyond the room: dropped, one warning for the spell, nothing else.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(peers.filter((p) => p.replies.length > 0).length, room);
      assert.equal(warnings().length, 1, 'one warning, not one per datagram');
      assert.equal(events(burrow.stderr()).filter((e) => e.event === 'failed').length, 0, 'no session failed: none was opened without room');
      assert.doesNotMatch(burrow.stderr(), /too many open files|EMFILE|\n\s+at /, 'no descriptor ran out; no stack traces');
      // The sessions end after 1 s of silence; then a new peer gets a tunnel, and the drops are counted.
      await eventually(() => events(burrow.stderr()).filter((e) => e.event === 'closed').length === room, 10_000, 'the idle sessions to close');
      const got = await exchange(burrow.port, [Buffer.from('room again')]);
      assert.equal(got[0]?.toString(), 'room again');
      const count = events(burrow.stderr()).find((e) => e.event === 'log' && /from new peers dropped while every UDP session was taken/.test(String(e.message)));
      assert.ok(count, burrow.stderr());
      assert.match(String(count.message), new RegExp(`^${PEERS - room} datagrams`));
      assert.equal(burrow.child.exitCode, null, 'still serving');
      assert.equal(await burrow.stop(), 0);
    } finally {
      for (const peer of peers) await peer.close();
      await world.close();
    }
  });
});
