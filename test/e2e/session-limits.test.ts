/**
 * Bounded sessions: `--max-duration` and `--close-on-token-expiry` close a tunnel that stays
 * open (an idle ssh session: nobody ends it), in listener and stdio mode, with one clear line,
 * exit code 13 in stdio mode, and every byte sent before the limit delivered intact.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { oneLineFailure } from '../helpers/assertions.js';
import { browserEnv, followBrowser } from '../helpers/browsers/index.js';
import { runBurrow, spawnBurrow, startListener, tempDir } from '../helpers/burrow.js';
import { payload, sha256 } from '../helpers/data.js';
import { join } from 'node:path';
import { DEST, eventually, startWorld, suiteWorld } from '../helpers/world.js';

/** A local connection that sends `data`, does NOT half-close, and records what comes back and when it closes. */
function openIdle(port: number, data: Buffer) {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  let received = 0;
  let closedAt: number | undefined;
  socket.on('data', (d: Buffer) => {
    chunks.push(d);
    received += d.length;
  });
  socket.on('error', () => {});
  // burrow closing the tunnel is a FIN here (allowHalfOpen: 'end', not necessarily 'close').
  socket.once('end', () => (closedAt ??= Date.now()));
  socket.once('close', () => (closedAt ??= Date.now()));
  const opened = Date.now();
  socket.write(data);
  return {
    opened,
    received: () => received,
    bytes: () => Buffer.concat(chunks),
    closedAt: () => closedAt,
    destroy: () => socket.destroy(),
  };
}

/** Stdio-mode burrow whose stdin stays open (like ssh): writes `data`, collects stdout, waits for exit (bounded). */
async function stdioIdle(args: string[], env: NodeJS.ProcessEnv, data: Buffer, timeoutMs = 20_000) {
  const proc = spawnBurrow(args, { env, collectStdout: false });
  const chunks: Buffer[] = [];
  let echoedAt: number | undefined;
  let received = 0;
  proc.child.stdout.on('data', (d: Buffer) => {
    chunks.push(d);
    received += d.length;
    if (received >= data.length) echoedAt ??= Date.now();
  });
  proc.child.stdin.on('error', () => {});
  const started = Date.now();
  proc.child.stdin.write(data);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  return { code, stdout: Buffer.concat(chunks), stderr: proc.stderr(), seconds: (Date.now() - started) / 1000, echoedAt };
}

describe('burrow tcp: --max-duration and --close-on-token-expiry', () => {
  const world = suiteWorld();

  it('listener mode: each tunnel is closed at --max-duration, bytes before it arrive intact, the listener stays up', async () => {
    const burrow = await startListener(world.tcpArgs(DEST, '--max-duration', '1s').slice(1), { env: world.env });
    const data = payload(256 * 1024, 21);
    const conn = openIdle(burrow.port, data);
    await eventually(() => conn.received() >= data.length, 5000, 'the echo');
    assert.equal(sha256(conn.bytes()), sha256(data), 'bytes before the limit arrive intact');
    assert.equal(conn.closedAt(), undefined, 'still open before the limit');
    await eventually(() => conn.closedAt() !== undefined, 6000, 'the tunnel to be closed at the limit');
    assert.ok(conn.closedAt()! - conn.opened >= 1000, 'not closed before the limit');
    await eventually(() => world.proxy.openTunnels === 0, 3000, 'the proxy side to close too');
    await eventually(() => /--max-duration 1s/.test(burrow.stderr()), 2000, 'the message');
    const line = burrow.stderr().split('\n').find((l) => l.includes('--max-duration 1s'))!;
    assert.match(line, /^burrow: #\d+ 127\.0\.0\.1:\d+: error: closed the tunnel to git\.corp\.test:22: it reached --max-duration 1s — .+/);

    // A new connection gets a new tunnel with its own full allowance.
    const again = openIdle(burrow.port, Buffer.from('again'));
    await eventually(() => again.received() >= 5, 5000, 'the second echo');
    assert.equal(again.bytes().toString(), 'again');
    again.destroy();
    assert.equal(await burrow.stop(), 0);
  });

  it('stdio mode: exits 13 (BURROW_SESSION_LIMIT) with one line naming the limit, after delivering every byte', async () => {
    const data = payload(512 * 1024, 22);
    const result = await stdioIdle(world.tcpArgs(DEST, '--listen', '-', '--max-duration', '1'), world.env, data);
    assert.equal(result.code, ExitCode.sessionLimit, result.stderr);
    assert.equal(result.stdout.length, data.length);
    assert.equal(sha256(result.stdout), sha256(data));
    const line = oneLineFailure(result.stderr, world.token);
    assert.match(line, /closed the tunnel to git\.corp\.test:22: it reached --max-duration 1 — .*--max-duration/);
    assert.ok(result.seconds >= 1, 'not before the limit');
  });

  it('--json: the closed event says session_limit, with the code and exit code', async () => {
    const result = await stdioIdle(world.tcpArgs(DEST, '--listen', '-', '--max-duration', '1', '--json'), world.env, Buffer.from('j'));
    assert.equal(result.code, ExitCode.sessionLimit, result.stderr);
    const events = result.stderr.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const closed = events.filter((e) => e.event === 'closed');
    assert.equal(closed.length, 1, result.stderr);
    assert.equal(closed[0]!.reason, 'session_limit');
    assert.equal(closed[0]!.code, 'BURROW_SESSION_LIMIT');
    assert.equal(closed[0]!.exit_code, ExitCode.sessionLimit);
    assert.equal(closed[0]!.bytes_up, 1);
  });

  it('a connection that ends by itself before the limit exits 0 as usual', async () => {
    const { code, stdout, stderr } = await runBurrow(world.tcpArgs(DEST, '--listen', '-', '--max-duration', '30m'), { env: world.env, input: 'short' });
    assert.equal(code, 0, stderr);
    assert.equal(stdout.toString(), 'short');
    assert.equal(stderr, '');
  });

  it('--close-on-token-expiry: a service account tunnel closes when its token expires', async () => {
    // A 4 s token: burrow stops trusting it a quarter of its life early (clock skew), at 3 s.
    const token = world.proxy.mintToken({ ttlSeconds: 4 });
    const data = payload(64 * 1024, 23);
    const result = await stdioIdle(world.tcpArgs(DEST, '--listen', '-', '--close-on-token-expiry'), { BURROW_SERVICE_ACCOUNT: token }, data);
    assert.equal(result.code, ExitCode.sessionLimit, result.stderr);
    assert.equal(sha256(result.stdout), sha256(data));
    const line = oneLineFailure(result.stderr, token);
    assert.match(line, /closed the tunnel to git\.corp\.test:22 after \d+ s: the token it was opened with expired — .*--close-on-token-expiry/);
  });

  it('--close-on-token-expiry: a browser sign-in\'s tunnel closes when that token expires', async () => {
    const short = await startWorld({ tokenTtlSeconds: 4 });
    try {
      const cache = tempDir('burrow-user-');
      const env = { XDG_CACHE_HOME: cache, ...browserEnv({ log: join(cache, 'browser.log') }) };
      const data = Buffer.from('hello through a browser token');
      const result = await stdioIdle(short.tcpArgs(DEST, '--listen', '-', '--close-on-token-expiry', '--browser-cmd', followBrowser), env, data);
      assert.equal(result.code, ExitCode.sessionLimit, result.stderr);
      assert.equal(result.stdout.toString(), data.toString());
      assert.equal(short.proxy.stats.signIns, 1);
      assert.match(result.stderr, /^burrow: error: closed the tunnel to git\.corp\.test:22 after \d+ s: the token it was opened with expired — /m);
      assert.equal(short.proxy.openTunnels, 0);
    } finally {
      await short.close();
    }
  });

  it('without the flags nothing closes an idle tunnel', async () => {
    const burrow = await startListener(world.tcpArgs().slice(1), { env: world.env });
    const conn = openIdle(burrow.port, Buffer.from('x'));
    await eventually(() => conn.received() === 1, 5000, 'the echo');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(conn.closedAt(), undefined);
    conn.destroy();
    assert.equal(await burrow.stop(), 0);
  });

  for (const bad of ['0', 'soon', '25d', '-5m']) {
    it(`--max-duration ${bad} is a usage error: one line, exit 2`, async () => {
      const { code, stderr } = await runBurrow(world.tcpArgs(DEST, '--listen', '-', `--max-duration=${bad}`), { env: world.env });
      assert.equal(code, ExitCode.usage);
      const line = oneLineFailure(stderr);
      assert.match(line, /invalid --max-duration/);
    });
  }
});
