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
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { oneLineFailure } from '../helpers/assertions.js';
import { browserEnv, browserLaunches, followBrowser } from '../helpers/browsers/index.js';
import { type BurrowProcess, runBurrow, spawnBurrow, startListener, stopAll, storedTokens, tempDir } from '../helpers/burrow.js';
import { chunked, payload, sha256 } from '../helpers/data.js';
import { startEchoServer, startSinkServer, startTcpServer, type TcpServer } from '../helpers/echo-server.js';
import { fixture } from '../helpers/fixtures.js';
import { type ProxyProcess, startProxyProcess, stopProxyProcesses } from '../helpers/proxy-process.js';
import { requireSquid, type Squid, startSquid, stopAllSquid } from '../helpers/squid.js';
import { DEST, eventually, startWorld, suiteWorld, within, type World } from '../helpers/world.js';

const MB = 1024 * 1024;

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
/** Failure lines: `burrow: error: …`, or in listener mode `burrow: #N 127.0.0.1:PORT: error: …`. */
const errorLines = (stderr: string) => stderr.split('\n').filter((l) => /^burrow: (#\d+ \S+: )?error:/.test(l));

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

describe('faults: the upstream behind the proxy half-closes, resets, or is slow', () => {
  after(async () => {
    await stopAll();
  });

  it('the upstream ends its side first: the client still sends 8 MB, and the upstream gets every byte (listener)', { timeout: 60_000 }, async () => {
    let got: Promise<string> | undefined;
    const server = await startTcpServer((s) => {
      const hash = createHash('sha256');
      got = new Promise((resolve) => {
        s.on('data', (d: Buffer) => hash.update(d));
        s.once('end', () => resolve(hash.digest('hex')));
      });
      // It reads slowly (a pause after every chunk), so the buffers on the way stay full and the
      // client's last bytes are still queued in burrow when the client ends: they must be sent
      // before the tunnel closes.
      s.on('data', () => {
        s.pause();
        setTimeout(() => s.resume(), 10);
      });
      s.end('done talking\n');
    });
    const w = await startWorld({ extraRoutes: [{ from: 'tcp+https://early.corp.test:22', to: `tcp://${server.address}` }] });
    try {
      const burrow = await startListener(w.tcpArgs('early.corp.test:22').slice(1), { env: w.env });
      const client = await connectClient(burrow.port);
      await within(client.ended, 10_000, undefined);
      assert.ok(client.eof(), 'an EOF, not a close');
      assert.equal(client.received().toString(), 'done talking\n');
      const data = payload(8 * MB, 21);
      chunked(data).pipe(client.socket);
      await within(client.closed, 30_000, undefined);
      await eventually(() => got !== undefined, 5000, 'the upstream connection');
      assert.equal(await within(got!, 10_000, 'no end'), sha256(data));
      assert.equal(await burrow.stop(), 0);
    } finally {
      await w.close();
      await server.close();
    }
  });

  it('the upstream resets mid-stream: stdio exits 10 within 5 s; a listener client is closed within 5 s', { timeout: 60_000 }, async () => {
    // Takes the first bytes, then resets.
    const server = await startTcpServer((s) => s.once('data', () => s.resetAndDestroy()));
    const w = await startWorld({ extraRoutes: [{ from: 'tcp+https://rst.corp.test:22', to: `tcp://${server.address}` }] });
    try {
      const proc = stdioBurrow(w.tcpArgs('rst.corp.test:22', '--listen', '-'), w.env);
      proc.child.stdin.write('hello');
      const code = await within(proc.exited, 5000, -1);
      assert.equal(code, ExitCode.tunnelBroken, proc.stderr());
      assert.match(oneLineFailure(proc.stderr(), w.token), /the tunnel to rst\.corp\.test:22 via https:\/\/localhost:\d+ broke: /);

      const burrow = await startListener(w.tcpArgs('rst.corp.test:22').slice(1), { env: w.env });
      const client = await connectClient(burrow.port);
      client.socket.write('hello');
      assert.equal(await within(client.ended.then(() => true), 5000, false), true);
      // The proxy passes the upstream's reset on as a FIN (or a reset): the client ends too, as ssh
      // does on EOF, and the tunnel is reported as closed before any data came back.
      client.socket.end();
      await eventually(() => errorLines(burrow.stderr()).length === 1, 5000, 'one error line');
      assert.match(errorLines(burrow.stderr())[0]!, /the tunnel to rst\.corp\.test:22 via https:\/\/localhost:\d+ broke: /);
      assert.equal(await burrow.stop(), 0);
    } finally {
      await w.close();
      await server.close();
    }
  });

  it('a proxy slow to answer (1.5 s, the upstream slow to accept) is waited for within --connect-timeout', { timeout: 30_000 }, async () => {
    const w = await startWorld({ onConnectDelayMs: 1500 });
    try {
      const r = await runBurrow(w.tcpArgs(undefined, '--listen', '-', '--connect-timeout', '5', '--stall-timeout', '0.5'), { env: w.env, input: 'patience' });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'patience');
    } finally {
      await w.close();
    }
  });
});

describe('faults: the proxy answers garbage', () => {
  const huge = `${'X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(1200)}`; // ~100 kB
  const chunkedBody = (size: number) => `${size.toString(16)}\r\n${'x'.repeat(size)}\r\n0\r\n\r\n`;
  const binary = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x00, 0x1b, 0x07, 0xff, 0xfe]), Buffer.from('\r\n\r\n')]);
  /** The canned answers, by CONNECT authority and by WebSocket path. */
  const answers: Record<string, (headers: Record<string, string | string[] | undefined>) => string | Buffer> = {
    binary: () => binary,
    'status-200-then-close': () => 'HTTP/1.1 200 Connection established\r\n\r\n',
    'forbidden-chunked': () => `HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\nContent-Type: text/html\r\n\r\n${chunkedBody(50_000)}`,
    'unavailable-length': () => `HTTP/1.1 503 Service Unavailable\r\nContent-Length: 20000\r\n\r\n${'y'.repeat(20_000)}`,
    'missing-chunked-huge': () => `HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n${chunkedBody(1_000_000)}`,
    'interim-flood': () => 'HTTP/1.1 100 Continue\r\n\r\n'.repeat(5000),
    'bare-lf': () => 'HTTP/1.1 200 OK\n\n',
    'huge-head': () => `HTTP/1.1 200 OK\r\n${huge}\r\n`,
    'not-http': () => 'SSH-2.0-OpenSSH_9.2\r\n\r\n',
    truncated: () => 'HTTP/1.1 2',
    'ws-ok-not-101': () => 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
    'ws-bad-accept': () => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bogus\r\n\r\n',
    'ws-101-then-close': (headers) => {
      const key = String(headers['sec-websocket-key'] ?? '').trim();
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
    },
  };
  let world: Awaited<ReturnType<typeof startWorld>>;
  before(async () => {
    world = await startWorld({
      respond: (req) => {
        const name = req.method === 'CONNECT' ? req.url.replace(/\.corp\.test:22$/, '') : req.upgrade ? req.url.slice(1) : undefined;
        const answer = name === undefined ? undefined : answers[name];
        return answer ? { raw: answer(req.headers) } : undefined;
      },
    });
  });
  after(async () => {
    await stopAll();
    await world.close();
  });

  /** Stdio burrow with stdin left open, as ssh keeps it, until burrow exits (bounded). */
  const held = async (args: string[]) => {
    const proc = stdioBurrow(args, world.env);
    proc.child.stdin.write('hi');
    const code = await within(proc.exited, 20_000, -1);
    await proc.stop('SIGKILL');
    return { code, stdout: proc.out(), stderr: proc.stderr() };
  };
  const viaConnect = (name: string) => held(world.tcpArgs(`${name}.corp.test:22`, '--listen', '-', '--connect-timeout', '3'));
  const viaWebSocket = (name: string) =>
    held(['tcp', `${world.proxy.url.replace(/^https:/, 'wss:')}/${name}`, '--listen', '-', '--alternate-ca-path', world.proxy.caPath, '--connect-timeout', '3']);

  /** Asserts the one-line contract, printable text only, and nothing on stdout. */
  function failed(r: { code: number; stdout: Buffer; stderr: string }, exit: number, pattern: RegExp): void {
    assert.equal(r.code, exit, r.stderr);
    const line = oneLineFailure(r.stderr, world.token);
    assert.match(line, pattern);
    assert.match(line, /^[\x20-\x7e—…]+$/, 'printable text only');
    assert.equal(r.stdout.length, 0, 'nothing on stdout');
  }

  for (const [name, exit, pattern] of [
    ['binary', ExitCode.proxyProtocol, /malformed answer .*expected an HTTP\/1\.1 status line/],
    ['status-200-then-close', ExitCode.tunnelBroken, /broke: it was closed from the far end before any data came back/],
    ['forbidden-chunked', ExitCode.accessDenied, /access denied by .* \(HTTP 403/],
    ['unavailable-length', ExitCode.upstreamUnavailable, /could not reach .* \(HTTP 503\)/],
    ['missing-chunked-huge', ExitCode.routeNotFound, /has no route for missing-chunked-huge\.corp\.test:22 \(HTTP 404\)/],
    ['interim-flood', ExitCode.proxyProtocol, /closed the connection before answering/],
    ['bare-lf', ExitCode.proxyProtocol, /the status line "HTTP\/1\.1 200 OK" ends without CR LF/],
  ] as const) {
    it(`CONNECT answered with ${name}: exit ${exit}, one line`, { timeout: 30_000 }, async () => {
      failed(await viaConnect(name), exit, pattern);
    });
  }

  for (const [name, exit, pattern] of [
    ['not-http', ExitCode.proxyProtocol, /malformed answer/],
    ['binary', ExitCode.proxyProtocol, /malformed answer/],
    ['truncated', ExitCode.proxyProtocol, /closed the connection before answering|malformed answer/],
    ['huge-head', ExitCode.proxyProtocol, /malformed answer/],
    ['ws-ok-not-101', ExitCode.proxyProtocol, /with HTTP 200/],
    ['forbidden-chunked', ExitCode.accessDenied, /access denied by .* \(HTTP 403/],
    ['unavailable-length', ExitCode.upstreamUnavailable, /could not reach .* \(HTTP 503\)/],
    ['ws-bad-accept', ExitCode.proxyProtocol, /malformed answer .*Sec-WebSocket-Accept/],
    // Our "hi" may meet the connection closing: then the line says so instead.
    ['ws-101-then-close', ExitCode.tunnelBroken, /broke: (the connection was lost without a WebSocket close \(1006\)|the WebSocket was closed while data was still being sent) — /],
  ] as const) {
    it(`WebSocket upgrade answered with ${name}: exit ${exit}, one line`, { timeout: 30_000 }, async () => {
      failed(await viaWebSocket(name), exit, pattern);
    });
  }

  it('WebSocket 101 then an immediate close, stdin already ended, pings off: ends, never mid-await (Node exits 13 on an unsettled top-level await)', { timeout: 30_000 }, async () => {
    for (let i = 0; i < 5; i++) {
      const r = await runBurrow(
        ['tcp', `${world.proxy.url.replace(/^https:/, 'wss:')}/ws-101-then-close`, '--listen', '-', '--alternate-ca-path', world.proxy.caPath, '--ping-interval', '0'],
        { env: world.env, input: 'hi' },
      );
      // Whether our EOF (then a clean end) or the abrupt close (then a lost tunnel) comes first is a race.
      if (r.code === 0) assert.equal(r.stderr, '');
      else {
        assert.equal(r.code, ExitCode.tunnelBroken, r.stderr);
        // (or our "hi" met the closing WebSocket)
        assert.match(oneLineFailure(r.stderr, world.token), /without a WebSocket close \(1006\)|the WebSocket was closed while data was still being sent/);
      }
    }
  });

  describe('a TLS handshake that never completes, or is not TLS at all', () => {
    let silent: TcpServer;
    let plain: TcpServer;
    before(async () => {
      silent = await startTcpServer((s) => s.resume());
      plain = await startTcpServer((s) => {
        s.resume();
        s.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      });
    });
    after(async () => {
      await silent.close();
      await plain.close();
    });

    for (const transport of ['connect', 'websocket'] as const) {
      const args = (server: TcpServer) =>
        transport === 'connect'
          ? ['tcp', 'git.corp.test:22', '--pomerium-url', `https://${server.address}`, '--listen', '-', '--connect-timeout', '0.5']
          : ['tcp', `wss://${server.address}/ssh`, '--listen', '-', '--connect-timeout', '0.5'];
      it(`${transport}: silence after the ClientHello is a timeout (exit 7); a plain-text answer is a TLS error (exit 8)`, { timeout: 30_000 }, async () => {
        const r = await runBurrow(args(silent), { env: { BURROW_SERVICE_ACCOUNT: world.token } });
        assert.equal(r.code, ExitCode.proxyUnreachable, r.stderr);
        // (over WebSocket, ws's own handshake timer has the same budget and may fire first)
        assert.match(oneLineFailure(r.stderr, world.token), /the (TLS|WebSocket) handshake to https:\/\/127\.0\.0\.1:\d+ \(for .+\) timed out after 0\.5s/);
        const p = await runBurrow(args(plain), { env: { BURROW_SERVICE_ACCOUNT: world.token } });
        assert.equal(p.code, ExitCode.tls, p.stderr);
        assert.match(oneLineFailure(p.stderr, world.token), /TLS handshake with https:\/\/127\.0\.0\.1:\d+ failed/);
      });
    }
  });
});

describe('faults: the credential store cannot be used', () => {
  const world = suiteWorld();

  /** A user without a token, signing in through the scripted browser, with the file store under `cache`. */
  function user(cache: string) {
    const log = join(tempDir('burrow-browser-'), 'browser.log');
    return {
      log,
      env: { XDG_CACHE_HOME: cache, BURROW_CREDENTIAL_STORE: 'file', ...browserEnv({ log }) },
      args: (...more: string[]) => [...world.tcpArgs(DEST, '--browser-cmd', followBrowser), ...more],
    };
  }

  /**
   * Two connections through one listener: the first signs in, the second reuses the token kept in
   * memory. Returns the listener's stderr.
   */
  async function twoConnections(u: ReturnType<typeof user>): Promise<string> {
    const launches = browserLaunches(u.log).length;
    const burrow = await startListener(u.args().slice(1), { env: u.env });
    for (const word of ['one', 'two']) {
      const client = await connectClient(burrow.port);
      client.socket.end(word);
      await within(client.closed, 20_000, undefined);
      assert.equal(client.received().toString(), word, burrow.stderr());
    }
    assert.equal(browserLaunches(u.log).length - launches, 1, `one sign-in for both connections: ${burrow.stderr()}`);
    assert.equal(await burrow.stop(), 0);
    return burrow.stderr();
  }

  const warnings = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('burrow: warning:'));

  it('the cache directory cannot exist (its parent is a regular file): sign-in works, one warning line', { timeout: 60_000 }, async () => {
    const file = join(tempDir(), 'not-a-directory');
    writeFileSync(file, 'x');
    const u = user(join(file, 'cache'));
    const stdio = await runBurrow(u.args('--listen', '-'), { env: u.env, input: 'first' });
    assert.equal(stdio.code, 0, stdio.stderr);
    assert.equal(stdio.stdout.toString(), 'first');
    assert.equal(warnings(stdio.stderr).length, 1, stdio.stderr);
    assert.match(warnings(stdio.stderr)[0]!, /cannot save the sign-in to .*: a file is in the way of the directory; the sign-in is kept for this process only$/);
    const listener = await twoConnections(u);
    assert.equal(warnings(listener).length, 1, listener);
  });

  it('the cache directory is somewhere nothing can be created (/proc): sign-in works, one warning line', { timeout: 60_000 }, async () => {
    const u = user('/proc/burrow-cannot-live-here');
    const stdio = await runBurrow(u.args('--listen', '-'), { env: u.env, input: 'proc' });
    assert.equal(stdio.code, 0, stdio.stderr);
    assert.equal(stdio.stdout.toString(), 'proc');
    assert.equal(warnings(stdio.stderr).length, 1, stdio.stderr);
    assert.match(warnings(stdio.stderr)[0]!, /the sign-in is kept for this process only$/);
  });

  it('the disk is full (a 64 KiB tmpfs, filled): sign-in works, one warning line naming "no space left"', { timeout: 60_000 }, async () => {
    const mountPoint = tempDir('burrow-full-');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', mountPoint], { stdio: 'pipe' });
    } catch (error) {
      // Needs root (or CAP_SYS_ADMIN), which the test machines and CI have.
      throw new Error(`cannot mount a tmpfs for the disk-full case (run the tests as root): ${(error as Error).message}`);
    }
    try {
      // The directories exist; the disk has no room left for a single data block.
      mkdirSync(join(mountPoint, 'burrow', 'credentials'), { recursive: true, mode: 0o700 });
      mkdirSync(join(mountPoint, 'burrow', 'locks'), { recursive: true, mode: 0o700 });
      try {
        writeFileSync(join(mountPoint, 'filler'), Buffer.alloc(1024 * 1024));
      } catch (error) {
        assert.equal((error as NodeJS.ErrnoException).code, 'ENOSPC');
      }
      const u = user(mountPoint);
      const stdio = await runBurrow(u.args('--listen', '-'), { env: u.env, input: 'full' });
      assert.equal(stdio.code, 0, stdio.stderr);
      assert.equal(stdio.stdout.toString(), 'full');
      assert.equal(warnings(stdio.stderr).length, 1, stdio.stderr);
      assert.match(warnings(stdio.stderr)[0]!, /cannot save the sign-in to .*: no space left on the device; the sign-in is kept for this process only$/);
      const listener = await twoConnections(u);
      assert.equal(warnings(listener).length, 1, listener);
      // The code cache (cli/loader.ts) could not be written either: silently, and no half-written
      // temporary file is left behind.
      const codeCache = join(mountPoint, 'burrow', 'code-cache');
      const left = existsSync(codeCache) ? readdirSync(codeCache) : [];
      assert.deepEqual(left.filter((f) => f.endsWith('.tmp')), [], `left in ${codeCache}: ${left.join(', ')}`);
    } finally {
      execFileSync('umount', ['-l', mountPoint], { stdio: 'pipe' });
    }
  });

  it('a corrupt credential file: one warning naming it, a fresh sign-in replaces it, the next run is silent', { timeout: 60_000 }, async () => {
    const cache = tempDir('burrow-corrupt-');
    const u = user(cache);
    const first = await runBurrow(u.args('--listen', '-'), { env: u.env, input: 'a' });
    assert.equal(first.code, 0, first.stderr);
    const dir = join(cache, 'burrow', 'credentials');
    const [entry] = (await import('node:fs')).readdirSync(dir).filter((f) => f.endsWith('.json'));
    assert.ok(entry, 'a credential file');
    for (const garbage of ['{"version": 1, "proxy": "https://loc', '\u0000\u0000\u0000', '[]']) {
      writeFileSync(join(dir, entry), garbage);
      const r = await runBurrow(u.args('--listen', '-'), { env: u.env, input: 'b' });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'b');
      assert.equal(warnings(r.stderr).length, 1, r.stderr);
      assert.match(warnings(r.stderr)[0]!, /ignoring the unreadable credential file ".*\.json"$/);
      const [token] = storedTokens(cache);
      assert.ok(token && world.proxy.verifyToken(token), 'replaced by a valid entry');
    }
    const launches = browserLaunches(u.log).length;
    const silent = await runBurrow(u.args('--listen', '-'), { env: u.env, input: 'c' });
    assert.equal(silent.stdout.toString(), 'c');
    assert.equal(silent.stderr, '');
    assert.equal(browserLaunches(u.log).length, launches, 'no sign-in');
    assert.ok(!readFileSync(join(dir, entry), 'utf8').includes('\u0000'));
  });
});

describe('faults: a sign-in lock whose owner was SIGKILLed', () => {
  const world = suiteWorld();

  it('a process waiting for it takes over within seconds of the kill; a later one does not wait at all', { timeout: 60_000 }, async () => {
    const cache = tempDir('burrow-lock-');
    const log = join(cache, 'browser.log');
    const args = [...world.tcpArgs(DEST, '--listen', '-', '--browser-cmd', followBrowser)];
    const env = (mode: 'ignore' | 'follow') => ({ XDG_CACHE_HOME: cache, BURROW_CREDENTIAL_STORE: 'file', ...browserEnv({ log, mode }) });

    // The owner: its browser never comes back, so it sits in the sign-in holding the lock.
    const owner = spawnBurrow(args, { env: env('ignore'), collectStdout: false });
    await eventually(() => owner.stderr().includes('opened your browser'), 15_000, 'the owner to start signing in');
    const waiter = stdioBurrow(args, env('follow'));
    waiter.child.stdin.write('waited');
    await eventually(() => /another burrow process \(pid \d+\) is signing in/.test(waiter.stderr()), 15_000, 'the waiter to wait');
    assert.match(waiter.stderr(), new RegExp(`pid ${owner.child.pid}\\)`));

    owner.child.kill('SIGKILL');
    await owner.exited;
    const killedAt = Date.now();
    await eventually(() => waiter.out().toString() === 'waited', 15_000, 'the waiter to sign in and carry bytes');
    assert.ok(Date.now() - killedAt < 10_000, `took over ${Date.now() - killedAt} ms after the kill`);
    waiter.child.stdin.end();
    assert.equal(await within(waiter.exited, 10_000, -1), 0, waiter.stderr());
    assert.equal(browserLaunches(log).length, 2, 'the owner\'s launch, then the waiter\'s own');

    // A stale lock left on disk by a killed owner: the next process goes straight ahead.
    // Forget the token first, so that a sign-in (and so the lock) is needed again.
    const logout = await runBurrow(['logout', world.proxy.url], { env: env('follow') });
    assert.equal(logout.code, 0, logout.stderr);
    const second = spawnBurrow(args, { env: env('ignore'), collectStdout: false });
    await eventually(() => second.stderr().includes('opened your browser'), 15_000, 'a second owner');
    second.child.kill('SIGKILL');
    await second.exited;
    const lockDir = join(cache, 'burrow', 'locks');
    assert.ok((await import('node:fs')).readdirSync(lockDir).some((f) => f.endsWith('.lock')), 'the killed owner left its lock behind');
    const startedAt = Date.now();
    const next = await runBurrow(args, { env: env('follow'), input: 'no wait' });
    assert.equal(next.code, 0, next.stderr);
    assert.equal(next.stdout.toString(), 'no wait');
    assert.doesNotMatch(next.stderr, /another burrow process/, 'a dead owner is not waited for');
    assert.ok(Date.now() - startedAt < 10_000);
  });
});

describe('faults: a forward proxy that tears tunnels down on a half-close (squid)', () => {
  let world: World;
  let squid: Squid;
  before(async () => {
    requireSquid();
    world = await startWorld();
    squid = await startSquid();
  });
  after(async () => {
    await stopAll();
    await stopAllSquid();
    await world?.close();
  });

  it('stdin ended right after the request: burrow holds its FIN until the server is quiet, so the answer still arrives', { timeout: 60_000 }, async () => {
    for (const size of [5, 1024 * 1024]) {
      const data = payload(size, 31);
      const r = await runBurrow(world.tcpArgs(DEST, '--listen', '-'), { env: { ...world.env, HTTPS_PROXY: squid.url }, input: data, timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.length, data.length, `all ${size} bytes echoed through squid`);
      assert.equal(sha256(r.stdout), sha256(data));
    }
  });
});
