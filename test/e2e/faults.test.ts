/**
 * Faults under a live tunnel, end to end: the real CLI, real TLS, the local proxy (in this
 * process, or in a child process so it can be SIGKILLed or frozen with SIGSTOP), real upstream
 * servers. Whatever breaks, burrow must close both sides promptly, say what happened in one line,
 * exit with the documented code, and never hang, lose or corrupt bytes.
 *
 * Cases already covered elsewhere are not repeated here: malformed, cut-off and oversized CONNECT
 * answers, a proxy that never answers, refused connections and a reset under stdio mode are in
 * tcp-errors.test.ts; half-close both ways and backpressure in tcp-stream.test.ts; WebSocket pings
 * the server does not answer in websocket.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { oneLineFailure } from '../helpers/assertions.js';
import { type BurrowProcess, runBurrow, spawnBurrow, startListener, stopAll } from '../helpers/burrow.js';
import { chunked, payload, sha256 } from '../helpers/data.js';
import { startEchoServer, startSinkServer, startTcpServer, type TcpServer } from '../helpers/echo-server.js';
import { fixture } from '../helpers/fixtures.js';
import { type ProxyProcess, startProxyProcess, stopProxyProcesses } from '../helpers/proxy-process.js';
import { eventually, startWorld } from '../helpers/world.js';

const MB = 1024 * 1024;

/** Resolves with `promise`'s value, or `onTimeout` after `ms`; the timer never outlives the race. */
async function within<T>(promise: Promise<T>, ms: number, onTimeout: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<T>((resolve) => (timer = setTimeout(() => resolve(onTimeout), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** A client of a burrow listener that records what it receives and when it closed. */
interface Client {
  socket: net.Socket;
  received(): Buffer;
  /** Resolves once the socket is closed (cleanly or not). */
  closed: Promise<void>;
  /** Resolves once burrow's side has ended: an EOF (a half-close) or a close. */
  ended: Promise<void>;
  eof(): boolean;
  /** Whether the connection ended with ECONNRESET. */
  reset(): boolean;
}

async function connectClient(port: number): Promise<Client> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let gotEof = false;
  let gotReset = false;
  socket.once('end', () => (gotEof = true));
  socket.once('error', (error: NodeJS.ErrnoException) => (gotReset = error.code === 'ECONNRESET'));
  const ended = new Promise<void>((resolve) => {
    socket.once('end', () => resolve());
    socket.once('close', () => resolve());
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => Buffer.concat(chunks), closed, ended, eof: () => gotEof, reset: () => gotReset };
}

/** Writes to a child's stdin (or a socket) as fast as it takes it, until stopped. */
function flood(stream: NodeJS.WritableStream): { stop(): void; written(): number } {
  const block = payload(256 * 1024, 99);
  let written = 0;
  let stopped = false;
  const pump = () => {
    while (!stopped && (stream as net.Socket).writable !== false) {
      written += block.length;
      if (!stream.write(block)) return void stream.once('drain', pump);
    }
  };
  (stream as net.Socket).on?.('error', () => {});
  pump();
  return {
    stop: () => {
      stopped = true;
    },
    written: () => written,
  };
}

/** A spawned stdio burrow whose stdout is collected. */
function stdioBurrow(args: string[], env: NodeJS.ProcessEnv): BurrowProcess & { out(): Buffer } {
  const proc = spawnBurrow(args, { env, collectStdout: false });
  const chunks: Buffer[] = [];
  proc.child.stdout.on('data', (d: Buffer) => chunks.push(d));
  proc.child.stdin.on('error', () => {});
  return Object.assign(proc, { out: () => Buffer.concat(chunks) });
}

/** Lines of `stderr` that are errors. */
const errorLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('burrow: error:'));

describe('faults: the proxy dies, resets or stops answering', () => {
  let echo: TcpServer;
  let drip: TcpServer;
  before(async () => {
    echo = await startEchoServer();
    // Sends 1 KiB of "a" every 20 ms, whatever the client does.
    drip = await startTcpServer((s) => {
      const timer = setInterval(() => s.write(Buffer.alloc(1024, 0x61)), 20);
      s.on('close', () => clearInterval(timer));
    });
  });
  after(async () => {
    await stopAll();
    await stopProxyProcesses();
    await echo.close();
    await drip.close();
  });

  const routes = () => [
    { from: 'tcp+https://echo.corp.test:22', to: `tcp://${echo.address}` },
    { from: 'tcp+https://drip.corp.test:22', to: `tcp://${drip.address}` },
    { from: 'wss://ws.corp.test/echo', to: `tcp://${echo.address}` },
  ];
  const wssOf = (proxy: ProxyProcess) => `${proxy.url.replace(/^https:/, 'wss:')}/echo`;
  const wsArgs = (proxy: ProxyProcess, ...extra: string[]) => ['tcp', wssOf(proxy), '--alternate-ca-path', fixture('ca.pem'), ...extra];

  describe('killed (SIGKILL: the kernel closes its sockets)', () => {
    it('CONNECT, stdio, while receiving: exits within 5 s, every byte received is one the server sent', { timeout: 30_000 }, async () => {
      const proxy = await startProxyProcess({ routes: routes() });
      try {
        const proc = stdioBurrow(proxy.tcpArgs('drip.corp.test:22', '--listen', '-'), proxy.env);
        await eventually(() => proc.out().length > 4096, 10_000, 'data flowing');
        proxy.signal('SIGKILL');
        const code = await within(proc.exited, 5000, -1);
        assert.notEqual(code, -1, 'exited within 5 s');
        assert.ok(proc.out().every((b) => b === 0x61), 'only bytes the server sent');
        // The kernel ends a killed process's connections with a FIN (looks like a clean close, see
        // the README) or, with unread data, a reset (a broken tunnel).
        if (code !== 0) {
          assert.equal(code, ExitCode.tunnelBroken, proc.stderr());
          oneLineFailure(proc.stderr(), proxy.token);
        }
      } finally {
        await proxy.stop();
      }
    });

    it('CONNECT, stdio, while sending: exits 10 within 5 s with one line', { timeout: 30_000 }, async () => {
      const sink = await startSinkServer();
      const proxy = await startProxyProcess({ routes: [{ from: 'tcp+https://sink.corp.test:22', to: `tcp://${sink.address}` }] });
      try {
        const proc = stdioBurrow(proxy.tcpArgs('sink.corp.test:22', '--listen', '-'), proxy.env);
        const writer = flood(proc.child.stdin);
        await eventually(() => writer.written() > 8 * MB, 10_000, 'data flowing');
        proxy.signal('SIGKILL');
        const code = await within(proc.exited, 5000, -1);
        writer.stop();
        assert.equal(code, ExitCode.tunnelBroken, `exit ${code}: ${proc.stderr()}`);
        assert.match(oneLineFailure(proc.stderr(), proxy.token), /the tunnel to sink\.corp\.test:22 via https:\/\/localhost:\d+ broke: /);
        assert.equal(proc.out().length, 0);
      } finally {
        await proxy.stop();
        await sink.close();
      }
    });

    it('CONNECT, listener: open connections are closed within 5 s; new ones get one error line each; the listener stays up', { timeout: 30_000 }, async () => {
      const proxy = await startProxyProcess({ routes: routes() });
      try {
        const burrow = await startListener(proxy.tcpArgs('echo.corp.test:22').slice(1), { env: proxy.env });
        const clients = await Promise.all([1, 2, 3].map(() => connectClient(burrow.port)));
        for (const c of clients) c.socket.write('ping');
        await eventually(() => clients.every((c) => c.received().toString() === 'ping'), 10_000, 'echoes');
        proxy.signal('SIGKILL');
        // The kernel's FIN becomes an EOF (half-close) to each client, as any end of the server's
        // side would; a client that then ends its own is closed at once.
        const ended = await within(Promise.all(clients.map((c) => c.ended)).then(() => true), 5000, false);
        assert.ok(ended, 'every client saw the end within 5 s');
        for (const c of clients) c.socket.end();
        const closed = await within(Promise.all(clients.map((c) => c.closed)).then(() => true), 5000, false);
        assert.ok(closed, 'and is closed once it ends its side');
        const late = await connectClient(burrow.port);
        await within(late.closed, 10_000, undefined);
        await eventually(() => /cannot connect to https:\/\/localhost:\d+ \(for echo\.corp\.test:22\): connection refused/.test(burrow.stderr()), 5000, 'the refused line');
        assert.equal(burrow.child.exitCode, null, 'the listener keeps running');
        assert.equal(await burrow.stop(), 0);
      } finally {
        await proxy.stop();
      }
    });

    it('WebSocket, listener: open connections are closed within 5 s', { timeout: 30_000 }, async () => {
      const proxy = await startProxyProcess({ routes: routes() });
      try {
        const burrow = await startListener(wsArgs(proxy).slice(1), { env: proxy.env });
        const client = await connectClient(burrow.port);
        client.socket.write('ping');
        await eventually(() => client.received().toString() === 'ping', 10_000, 'the echo');
        proxy.signal('SIGKILL');
        // No close frame came (1006): a lost tunnel, passed on as a reset.
        assert.equal(await within(client.closed.then(() => true), 5000, false), true, 'closed within 5 s');
        assert.ok(client.reset(), 'with a reset');
        await eventually(() => /the connection was lost without a WebSocket close \(1006\)/.test(burrow.stderr()), 5000, 'the line');
        assert.equal(await burrow.stop(), 0);
      } finally {
        await proxy.stop();
      }
    });
  });

  describe('reset (RST from the proxy)', () => {
    for (const transport of ['connect', 'websocket'] as const) {
      it(`${transport}, listener: the client connection is closed at once and one line says "connection reset"`, { timeout: 30_000 }, async () => {
        const w = await startWorld({ extraRoutes: [{ from: 'wss://ws.corp.test/echo', to: `tcp://${echo.address}` }] });
        try {
          const args =
            transport === 'connect'
              ? w.tcpArgs().slice(1)
              : [`${w.proxy.url.replace(/^https:/, 'wss:')}/echo`, '--alternate-ca-path', w.proxy.caPath];
          const burrow = await startListener(args, { env: w.env });
          const client = await connectClient(burrow.port);
          client.socket.write('ping');
          await eventually(() => client.received().toString() === 'ping', 10_000, 'the echo');
          await w.proxy.close({ reset: true });
          assert.equal(await within(client.closed.then(() => true), 5000, false), true, 'closed within 5 s');
          assert.ok(client.reset(), 'with a reset passed on, not an EOF that looks like the end of the data');
          await eventually(() => errorLines(burrow.stderr()).length === 1, 5000, 'one error line');
          // The local proxy terminates its WebSockets (a FIN) before it resets the rest: then the
          // line says the connection was lost without a close frame.
          assert.match(errorLines(burrow.stderr())[0]!, transport === 'connect' ? /broke: connection reset/ : /broke: (connection reset|the connection was lost without a WebSocket close \(1006\))/);
          assert.equal(await burrow.stop(), 0);
        } finally {
          await w.close();
        }
      });
    }

    it('websocket, stdio: exits 10 within 5 s', { timeout: 30_000 }, async () => {
      const w = await startWorld({ extraRoutes: [{ from: 'wss://ws.corp.test/echo', to: `tcp://${echo.address}` }] });
      try {
        const proc = stdioBurrow(['tcp', `${w.proxy.url.replace(/^https:/, 'wss:')}/echo`, '--listen', '-', '--alternate-ca-path', w.proxy.caPath], w.env);
        proc.child.stdin.write('ping');
        await eventually(() => proc.out().toString() === 'ping', 10_000, 'the echo');
        await w.proxy.close({ reset: true });
        const code = await within(proc.exited, 5000, -1);
        assert.equal(code, ExitCode.tunnelBroken, proc.stderr());
        oneLineFailure(proc.stderr(), w.token);
      } finally {
        await w.close();
      }
    });
  });

  describe('blackhole (SIGSTOP: the connection stays, nobody reads or writes)', () => {
    const STALL = '1';

    it('CONNECT, stdio, stdin ended (ssh exited): exits 10 about --stall-timeout after, not never', { timeout: 30_000 }, async () => {
      const proxy = await startProxyProcess({ routes: routes() });
      try {
        const proc = stdioBurrow(proxy.tcpArgs('echo.corp.test:22', '--listen', '-', '--stall-timeout', STALL), proxy.env);
        proc.child.stdin.write('ping');
        await eventually(() => proc.out().toString() === 'ping', 10_000, 'the echo');
        proxy.signal('SIGSTOP');
        const endedAt = Date.now();
        proc.child.stdin.end();
        const code = await within(proc.exited, 8000, -1);
        const elapsed = Date.now() - endedAt;
        assert.equal(code, ExitCode.tunnelBroken, `exit ${code}: ${proc.stderr()}`);
        assert.ok(elapsed >= 900, `not before the timeout (${elapsed} ms)`);
        assert.match(oneLineFailure(proc.stderr(), proxy.token), /nothing came back for 1 s after the local side finished sending \(--stall-timeout\)/);
      } finally {
        await proxy.stop();
      }
    });

    it('CONNECT, stdio, sending into it: exits 10 once nothing moved for --stall-timeout', { timeout: 60_000 }, async () => {
      const proxy = await startProxyProcess({ routes: routes() });
      try {
        const proc = stdioBurrow(proxy.tcpArgs('echo.corp.test:22', '--listen', '-', '--stall-timeout', STALL), proxy.env);
        proc.child.stdin.write('ping');
        await eventually(() => proc.out().toString() === 'ping', 10_000, 'the echo');
        proxy.signal('SIGSTOP');
        // stdin stays open (ssh still running): only the queued bytes can tell.
        const writer = flood(proc.child.stdin);
        const code = await within(proc.exited, 30_000, -1);
        writer.stop();
        assert.equal(code, ExitCode.tunnelBroken, `exit ${code}: ${proc.stderr()}`);
        assert.match(oneLineFailure(proc.stderr(), proxy.token), /the proxy took none of the data waiting to be sent for 1 s \(--stall-timeout\)/);
      } finally {
        await proxy.stop();
      }
    });

    it('CONNECT, listener: a stalled upload and a half-closed client are both closed; after SIGCONT new connections work', { timeout: 60_000 }, async () => {
      const proxy = await startProxyProcess({ routes: routes() });
      try {
        const burrow = await startListener(proxy.tcpArgs('echo.corp.test:22', '--stall-timeout', STALL).slice(1), { env: proxy.env });
        const [uploader, quitter] = await Promise.all([connectClient(burrow.port), connectClient(burrow.port)]);
        for (const c of [uploader, quitter]) c.socket.write('ping');
        await eventually(() => [uploader, quitter].every((c) => c.received().toString() === 'ping'), 10_000, 'echoes');
        proxy.signal('SIGSTOP');
        uploader.socket.pause(); // it will not read the echo: only its sending matters
        const writer = flood(uploader.socket);
        quitter.socket.end();
        const closed = await within(Promise.all([uploader.closed, quitter.closed]).then(() => true), 30_000, false);
        writer.stop();
        assert.ok(closed, 'both closed');
        await eventually(() => errorLines(burrow.stderr()).length === 2, 5000, 'two error lines');
        const lines = errorLines(burrow.stderr()).join('\n');
        assert.match(lines, /took none of the data waiting to be sent/);
        assert.match(lines, /nothing came back for 1 s after the local side finished sending/);
        proxy.signal('SIGCONT');
        const again = await connectClient(burrow.port);
        again.socket.end('after');
        await within(again.closed, 10_000, undefined);
        assert.equal(again.received().toString(), 'after');
        assert.equal(await burrow.stop(), 0);
      } finally {
        await proxy.stop();
      }
    });

    it('WebSocket, stdio, stdin open: the keepalive ends it (exit 10) within 3 ping intervals plus slack', { timeout: 30_000 }, async () => {
      const proxy = await startProxyProcess({ routes: routes() });
      try {
        const proc = stdioBurrow(wsArgs(proxy, '--listen', '-', '--ping-interval', '0.3', '--stall-timeout', '0'), proxy.env);
        proc.child.stdin.write('ping');
        await eventually(() => proc.out().toString() === 'ping', 10_000, 'the echo');
        proxy.signal('SIGSTOP');
        const stoppedAt = Date.now();
        const code = await within(proc.exited, 8000, -1);
        assert.equal(code, ExitCode.tunnelBroken, `exit ${code}: ${proc.stderr()}`);
        assert.ok(Date.now() - stoppedAt < 3 * 300 + 2500);
        assert.match(oneLineFailure(proc.stderr(), proxy.token), /no answer to keepalive pings/);
      } finally {
        await proxy.stop();
      }
    });

    it('WebSocket, stdio, pings off, stdin ended: --stall-timeout still ends it (exit 10)', { timeout: 30_000 }, async () => {
      const proxy = await startProxyProcess({ routes: routes() });
      try {
        const proc = stdioBurrow(wsArgs(proxy, '--listen', '-', '--ping-interval', '0', '--stall-timeout', STALL), proxy.env);
        proc.child.stdin.write('ping');
        await eventually(() => proc.out().toString() === 'ping', 10_000, 'the echo');
        proxy.signal('SIGSTOP');
        proc.child.stdin.end();
        const code = await within(proc.exited, 8000, -1);
        assert.equal(code, ExitCode.tunnelBroken, `exit ${code}: ${proc.stderr()}`);
        assert.match(oneLineFailure(proc.stderr(), proxy.token), /--stall-timeout/);
      } finally {
        await proxy.stop();
      }
    });
  });

  describe('--stall-timeout does not cut healthy tunnels', () => {
    it('an idle tunnel (both sides open, nothing sent) lives on, then still carries bytes', { timeout: 30_000 }, async () => {
      const w = await startWorld();
      try {
        const proc = stdioBurrow(w.tcpArgs(undefined, '--listen', '-', '--stall-timeout', '0.3'), w.env);
        proc.child.stdin.write('one');
        await eventually(() => proc.out().toString() === 'one', 10_000, 'the first echo');
        await new Promise((r) => setTimeout(r, 1500));
        assert.equal(proc.child.exitCode, null, proc.stderr());
        proc.child.stdin.end('two');
        assert.equal(await within(proc.exited, 10_000, -1), 0, proc.stderr());
        assert.equal(proc.out().toString(), 'onetwo');
      } finally {
        await w.close();
      }
    });

    it('a server slower than the timeout to say its first word, or to answer after EOF while it streams, is not cut', { timeout: 30_000 }, async () => {
      // Silent for 1.2 s, then a banner; after the client's EOF, 1.2 s of 100 ms drips, then the end.
      const slow = await startTcpServer((s) => {
        setTimeout(() => s.write('banner\n'), 1200);
        s.resume();
        s.on('end', () => {
          let n = 0;
          const timer = setInterval(() => {
            if (++n > 12) {
              clearInterval(timer);
              s.end('bye\n');
            } else s.write('.');
          }, 100);
        });
      });
      const w = await startWorld({ extraRoutes: [{ from: 'tcp+https://slow.corp.test:22', to: `tcp://${slow.address}` }] });
      try {
        const proc = stdioBurrow(w.tcpArgs('slow.corp.test:22', '--listen', '-', '--stall-timeout', '0.5'), w.env);
        await eventually(() => proc.out().toString() === 'banner\n', 10_000, 'the banner');
        proc.child.stdin.end('x');
        assert.equal(await within(proc.exited, 10_000, -1), 0, proc.stderr());
        assert.equal(proc.out().toString(), `banner\n${'.'.repeat(12)}bye\n`);
      } finally {
        await w.close();
        await slow.close();
      }
    });

    it('a slow but steady reader upstream: 24 MB arrive byte for byte with --stall-timeout 1', { timeout: 90_000 }, async () => {
      let digest: Promise<{ bytes: number; sha: string }> | undefined;
      // Pauses 10 ms after each read: burrow's queue toward the proxy fills, yet moves. Like ssh's
      // window adjustments, it says something now and then, so only the sending side is on trial
      // (the kernel buffers that still drain after our last byte are invisible to burrow).
      const reader = await startTcpServer((s) => {
        const hash = createHash('sha256');
        let bytes = 0;
        const acks = setInterval(() => s.write('.'), 200);
        s.once('close', () => clearInterval(acks));
        digest = new Promise((resolve) => {
          s.on('data', (d: Buffer) => {
            hash.update(d);
            bytes += d.length;
            s.pause();
            setTimeout(() => s.resume(), 10);
          });
          s.on('end', () => {
            clearInterval(acks);
            resolve({ bytes, sha: hash.digest('hex') });
            s.end();
          });
        });
      });
      const w = await startWorld({ extraRoutes: [{ from: 'tcp+https://reader.corp.test:22', to: `tcp://${reader.address}` }] });
      try {
        const data = payload(24 * MB, 5);
        const r = await runBurrow(w.tcpArgs('reader.corp.test:22', '--listen', '-', '--stall-timeout', '1'), { env: w.env, input: data, timeoutMs: 80_000 });
        assert.equal(r.code, 0, r.stderr);
        const got = await digest!;
        assert.equal(got.bytes, data.length);
        assert.equal(got.sha, sha256(data));
      } finally {
        await w.close();
        await reader.close();
      }
    });

    it('--stall-timeout is validated: 0 is off, junk is a usage error (exit 2)', async () => {
      const bad = await runBurrow(['tcp', 'git.corp.test:22', '--listen', '-', '--stall-timeout', 'never']);
      assert.equal(bad.code, ExitCode.usage);
      assert.match(oneLineFailure(bad.stderr), /invalid --stall-timeout "never"/);
    });
  });
});
