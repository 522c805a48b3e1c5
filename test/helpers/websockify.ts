/**
 * Debian's real `websockify` (package `websockify`, 0.10 on bookworm) as a WebSocket-to-TCP
 * gateway for end-to-end tests: a peer burrow's WebSocket transport did not write.
 *
 * {@link startWebsockify} runs `websockify 127.0.0.1:PORT <target>` on a free loopback port, with
 * TLS from the fixture certificate (proxy.pem, signed by ca.pem for localhost and 127.0.0.1) and
 * `--ssl-only`, in a process group of its own: websockify forks one handler process per
 * connection, and `stop()` kills the whole group.
 *
 * What websockify 0.10 does (read in its source, websocketproxy.py `do_proxy`, and checked with a
 * plain `ws` client):
 * - binary frames both ways with no subprotocol. A client offering `binary` gets it selected; a
 *   client offering only other subprotocols (e.g. `base64`) is refused with HTTP 400.
 * - a close frame from the client ends everything at once: the target socket is shut down
 *   (SHUT_RDWR) as soon as the close frame is read, so echoes the target had not sent back yet are
 *   lost, and client data read in the same batch as the close frame never reaches the target.
 *   (A client sending 20 MB then close(1000) right away got back 15.7-19.9 MB of the echo.)
 * - it answers the client's close with the same code, and a close frame WITHOUT a code (the
 *   `ws.close()` default, which means 1005) is answered with 1005 written on the wire, which
 *   RFC 6455 forbids: `ws` then fails with WS_ERR_INVALID_CLOSE_CODE. Clients must close with 1000.
 * - the target closing ends the WebSocket with 1000 "Target closed" after the queued data.
 * - it answers pings; it sends none unless `--heartbeat` is given.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
import { fixture } from './fixtures.js';
import { freePort } from './processes.js';

export interface WebsockifyOptions {
  /** `host:port` of the TCP service behind the gateway. */
  target: string;
  /** Serve wss:// with the fixture certificate and refuse plain connections (default true). */
  tls?: boolean;
  /** `--heartbeat`: websockify pings the client every this many seconds. */
  heartbeatSeconds?: number;
  /** `--verbose` (and `--traffic` if `'traffic'`): more in {@link Websockify.log}. */
  verbose?: boolean | 'traffic';
}

export interface Websockify {
  /** `wss://localhost:PORT/` (or `ws://…` without TLS). */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** What websockify printed so far (stdout and stderr, at most the last 256 KiB). */
  log(): string;
  /** Kills websockify and every handler process it forked; bounded, idempotent. */
  stop(): Promise<void>;
}

const running = new Set<Websockify>();

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
  }
  return existsSync(`/usr/bin/${name}`) ? `/usr/bin/${name}` : undefined;
}

/**
 * Throws unless `websockify` is installed: a clear failure with the package to install, in CI
 * (where .ci/run installs it) and locally alike, never a skip.
 */
export function requireWebsockify(): string {
  const bin = onPath('websockify');
  if (bin) return bin;
  const where = process.env.CI === 'true' ? 'CI: .ci/run must install it' : 'install it';
  throw new Error(`websockify not found; the WebSocket gateway tests need it (${where}: apt-get install websockify)`);
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/** Resolves once 127.0.0.1:port accepts a TCP connection; rejects if websockify exited or after `timeoutMs`. */
async function waitForListen(port: number, exited: () => number | null, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const code = exited();
    if (code !== null) throw new Error(`websockify exited with ${code}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.setTimeout(1000, () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('connect', () => {
        // A probe that sends nothing: the handler websockify forks for it gives up after 3 s.
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`websockify did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

/** Starts websockify in front of `options.target`; see the module comment. */
export async function startWebsockify(options: WebsockifyOptions): Promise<Websockify> {
  const bin = requireWebsockify();
  const tls = options.tls ?? true;
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const args = [
      ...(tls ? [`--cert=${fixture('proxy.pem')}`, `--key=${fixture('proxy-key.pem')}`, '--ssl-only'] : []),
      ...(options.heartbeatSeconds !== undefined ? [`--heartbeat=${options.heartbeatSeconds}`] : []),
      ...(options.verbose ? ['--verbose'] : []),
      ...(options.verbose === 'traffic' ? ['--traffic'] : []),
      `127.0.0.1:${port}`,
      options.target,
    ];
    // detached: its own process group, so stop() reaches the handlers it forks.
    const child = spawn(bin, args, {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', PYTHONUNBUFFERED: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let log = '';
    const append = (d: Buffer): void => {
      log += d.toString('utf8');
      if (log.length > 256 * 1024) log = log.slice(-256 * 1024);
    };
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    let exitCode: number | null = null;
    const exited = new Promise<void>((resolve) =>
      child.once('exit', (code, signal) => {
        exitCode = code ?? (signal ? 128 : 0);
        resolve();
      }),
    );
    child.once('error', (error) => {
      append(Buffer.from(`spawn error: ${error.message}\n`));
      exitCode ??= 127;
    });
    try {
      await waitForListen(port, () => exitCode, 10_000);
    } catch (error) {
      killGroup(child);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000).unref())]);
      lastError = new Error(`${(error as Error).message}\n--- websockify output ---\n${log}`);
      if (/Address already in use/.test(log)) continue;
      throw lastError;
    }
    let stopping: Promise<void> | undefined;
    const gateway: Websockify = {
      url: `${tls ? 'wss' : 'ws'}://localhost:${port}/`,
      port,
      pid: child.pid!,
      log: () => log,
      stop() {
        stopping ??= (async () => {
          killGroup(child);
          await Promise.race([exited, new Promise((r) => setTimeout(r, 5000).unref())]);
          running.delete(gateway);
        })();
        return stopping;
      },
    };
    running.add(gateway);
    return gateway;
  }
  throw lastError ?? new Error('websockify did not start');
}

/** Stops every websockify started here that is still running (for `after` hooks). */
export async function stopAllWebsockify(): Promise<void> {
  await Promise.all([...running].map((w) => w.stop()));
}
