/**
 * The paths under test, each able to open one connection to the bench server: direct TCP, one
 * TLS hop, proxytunnel, the plain Node client, and burrow (listener, stdio, WebSocket). A
 * connection is a readable and a writable for the load generator (a socket, or a child
 * process's stdout and stdin) plus the pid of the client process it costs, if any.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { BURROW_BIN, spawnBurrow, startListener, tempDir, type BurrowProcess } from '../helpers/burrow.js';
import { repoRoot } from '../helpers/fixtures.js';
import { BENCH_DEST, WS_PATH, type ServersReady } from './protocol.js';

export type PathId = 'direct' | 'tls' | 'proxytunnel' | 'plain' | 'go-listener' | 'go-stdio' | 'listener' | 'stdio' | 'ws';

export const PATH_LABELS: Record<PathId, string> = {
  direct: 'direct TCP (ceiling)',
  tls: 'one TLS hop (TLS ceiling)',
  proxytunnel: 'proxytunnel -E (stdio)',
  plain: 'plain Node client (stdio, reference)',
  'go-listener': 'Go client, pomerium-cli\'s data path (listener)',
  'go-stdio': 'Go client, pomerium-cli\'s data path (stdio)',
  listener: 'burrow listener',
  stdio: 'burrow stdio',
  ws: 'burrow WebSocket (listener)',
};

/** Reads bytes as they come and wakes a waiter once a running total is reached; no other per-chunk work. */
export class Counter {
  received = 0;
  #target = Number.POSITIVE_INFINITY;
  #wake: ((error?: Error) => void) | undefined;
  #ended: Error | undefined;

  constructor(readable: Readable) {
    readable.on('data', (chunk: Buffer) => {
      this.received += chunk.length;
      if (this.received >= this.#target) this.#fire();
    });
    const ended = (what: string) => () => {
      this.#ended ??= new Error(`stream ${what} after ${this.received} bytes`);
      this.#fire(this.#ended);
    };
    readable.once('end', ended('ended'));
    readable.once('close', ended('closed'));
    readable.on('error', (error: Error) => {
      this.#ended ??= error;
      this.#fire(error);
    });
  }

  #fire(error?: Error): void {
    const wake = this.#wake;
    this.#wake = undefined;
    this.#target = Number.POSITIVE_INFINITY;
    wake?.(error);
  }

  /** Calls `done` once `total` bytes have been received in all (at once if they already have). */
  onTotal(total: number, done: (error?: Error) => void): void {
    if (this.received >= total) return done();
    if (this.#ended) return done(this.#ended);
    this.#target = total;
    this.#wake = done;
  }

  until(total: number, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        this.#target = Number.POSITIVE_INFINITY;
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${this.received}/${total} bytes)`));
      }, timeoutMs);
      this.onTotal(total, (error) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      });
    });
  }
}

export interface Conn {
  readable: Readable;
  writable: Writable;
  counter: Counter;
  /** The client process whose CPU this connection costs (undefined: the load generator itself). */
  clientPid: number | undefined;
  /** Ends our side and waits (bounded) for the connection, or the client process, to go. */
  close(): Promise<void>;
}

export interface BenchPath {
  readonly id: PathId;
  readonly label: string;
  /** A long-lived client process (listener modes), for memory readings. */
  readonly pid: number | undefined;
  open(): Promise<Conn>;
  stop(): Promise<void>;
}

export function socketConn(socket: Socket, clientPid: number | undefined): Conn {
  socket.setNoDelay(true);
  socket.on('error', () => {});
  return {
    readable: socket,
    writable: socket,
    counter: new Counter(socket),
    clientPid,
    close: () =>
      new Promise<void>((resolve) => {
        if (socket.destroyed) return resolve();
        const timer = setTimeout(() => {
          socket.destroy();
          resolve();
        }, 2000);
        socket.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        socket.end();
        socket.resume();
      }),
  };
}

export function whenConnected(socket: Socket, event: 'connect' | 'secureConnect'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once(event, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

/** Child processes started here (proxytunnel, plain client); burrow's own go through helpers/burrow.ts. */
const children = new Set<ChildProcess>();

export function killChildren(): void {
  for (const child of children) child.kill('SIGKILL');
}

/** Environment for every client process: nothing inherited but PATH and HOME (no NODE_OPTIONS, no NODE_EXTRA_CA_CERTS). */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...extra };
}

export function spawnTracked(file: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess & { stderrText(): string } {
  const child = spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  return Object.assign(child, { stderrText: () => stderr });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
  });
}

export function processConn(child: ChildProcess): Conn {
  const { stdin, stdout } = child;
  if (!stdin || !stdout) throw new Error('child without pipes');
  stdin.on('error', () => {});
  return {
    readable: stdout,
    writable: stdin,
    counter: new Counter(stdout),
    clientPid: child.pid,
    async close() {
      stdin.end();
      stdout.resume();
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited(child);
      clearTimeout(timer);
    },
  };
}

/** The arguments of proxytunnel for one stdio tunnel to the bench server. */
export function proxytunnelArgs(servers: ServersReady): string[] {
  // -C: proxytunnel verifies the proxy's certificate and name against our test CA, as burrow does.
  return ['-q', '-E', '-C', servers.caPath, '-p', `localhost:${servers.proxyPort}`, '-d', BENCH_DEST, '-H', `Authorization: Pomerium ${servers.token}`];
}

export function plainArgs(servers: ServersReady): string[] {
  return [join(repoRoot, 'dist', 'test', 'bench', 'plain-client.js'), 'localhost', String(servers.proxyPort), BENCH_DEST, servers.caPath];
}

/**
 * The Go stand-in for pomerium-cli (test/bench/go-client/main.go), built with the machine's `go`
 * (Debian's golang-go) into a temporary directory once per run. Returns the binary, or why not.
 */
export function buildGoClient(): { binary: string } | { why: string } {
  const source = join(repoRoot, 'test', 'bench', 'go-client', 'main.go');
  const binary = join(tempDir('burrow-bench-go-'), 'go-client');
  // GOCACHE outside the repository and kept between runs, so that a rebuild takes a second.
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, GOCACHE: join(tmpdir(), 'burrow-bench-gocache'), GOFLAGS: '-trimpath', CGO_ENABLED: '0' };
  const built = spawnSync('go', ['build', '-o', binary, source], { env, encoding: 'utf8', timeout: 180_000 });
  if (built.error) return { why: `go is not installed (apt-get install golang-go): ${built.error.message}` };
  if (built.status !== 0) return { why: `go build failed: ${(built.stderr || built.stdout).trim().slice(0, 300)}` };
  return { binary };
}

let goBinary: string | undefined;
/** Set once by the coordinator after {@link buildGoClient}. */
export function useGoClient(binary: string): void {
  goBinary = binary;
}

/** The Go client's binary, once built (undefined without go). */
export function goClientBinary(): string | undefined {
  return goBinary;
}

export function goArgs(servers: ServersReady, listen: string): string[] {
  return ['-proxy', `localhost:${servers.proxyPort}`, '-dest', BENCH_DEST, '-ca', servers.caPath, '-listen', listen];
}

function goClient(servers: ServersReady, listen: string): ChildProcess & { stderrText(): string } {
  if (goBinary === undefined) throw new Error('the Go client was not built');
  return spawnTracked(goBinary, goArgs(servers, listen), cleanEnv({ BENCH_TOKEN: servers.token }));
}

/** A Go client in listener mode: resolves once it printed its port. */
async function startGoListener(servers: ServersReady): Promise<{ child: ChildProcess; port: number }> {
  const child = goClient(servers, '127.0.0.1:0');
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the Go client did not print its port within 10 s; stderr: ${child.stderrText()}`)), 10_000);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /^(\d+)\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the Go client exited with ${code}: ${child.stderrText()}`));
    });
  });
  child.stdout?.resume();
  return { child, port };
}

export function burrowStdioArgs(servers: ServersReady): string[] {
  return ['tcp', '--listen', '-', BENCH_DEST, '--pomerium-url', servers.proxyUrl, '--alternate-ca-path', servers.caPath];
}

/**
 * The cache directory every burrow process of this bench run shares, as one user's runs do: the
 * first start-up writes the V8 code cache there (src/cli/loader.ts), the later ones use it.
 */
let sharedCache: string | undefined;
export function benchCacheDir(): string {
  return (sharedCache ??= tempDir('burrow-bench-cache-'));
}

/** Starts `kind`'s client process for one stdio tunnel; the caller owns it. */
export function spawnStdioClient(kind: 'proxytunnel' | 'plain' | 'go-stdio' | 'stdio', servers: ServersReady): ChildProcess & { stderrText(): string } {
  if (kind === 'proxytunnel') return spawnTracked('proxytunnel', proxytunnelArgs(servers), cleanEnv());
  if (kind === 'go-stdio') return goClient(servers, '-');
  if (kind === 'plain') return spawnTracked(process.execPath, plainArgs(servers), cleanEnv({ BENCH_TOKEN: servers.token }));
  // helpers/burrow.ts gives it a fresh cache directory and the file store, and kills it in stopAll().
  const burrow = spawnBurrow(burrowStdioArgs(servers), { env: { BURROW_SERVICE_ACCOUNT: servers.token, XDG_CACHE_HOME: benchCacheDir() }, collectStdout: false });
  return Object.assign(burrow.child, { stderrText: burrow.stderr });
}

/** Runs `node [nodeArgs] bin/burrow.js args…` with the bench's clean environment (for --cpu-prof and the like). */
export function spawnBurrowWithNodeArgs(nodeArgs: string[], args: string[], servers: ServersReady): ChildProcess & { stderrText(): string } {
  return spawnTracked(process.execPath, [...nodeArgs, BURROW_BIN, ...args], cleanEnv({ BURROW_SERVICE_ACCOUNT: servers.token, BURROW_CREDENTIAL_STORE: 'file', XDG_CACHE_HOME: tempDir('burrow-bench-') }));
}

/** Starts the paths. Listener modes start their long-lived burrow here. */
export async function startPath(id: PathId, servers: ServersReady): Promise<BenchPath> {
  const base = { id, label: PATH_LABELS[id] };
  switch (id) {
    case 'direct':
      return {
        ...base,
        pid: undefined,
        open: async () => socketConn(await whenConnected(netConnect({ host: '127.0.0.1', port: servers.benchPort }), 'connect'), undefined),
        stop: async () => {},
      };
    case 'tls': {
      const ca = readFileSync(servers.caPath);
      return {
        ...base,
        pid: undefined,
        open: async () =>
          socketConn(await whenConnected(tlsConnect({ host: '127.0.0.1', port: servers.tlsPort, servername: 'localhost', ca }), 'secureConnect'), undefined),
        stop: async () => {},
      };
    }
    case 'proxytunnel':
    case 'plain':
    case 'go-stdio':
    case 'stdio':
      return {
        ...base,
        pid: undefined,
        open: async () => {
          const child = spawnStdioClient(id, servers);
          const conn = processConn(child);
          // The first byte is the bench server's greeting: the tunnel is up.
          try {
            await conn.counter.until(1, 15_000, `${id}'s tunnel`);
          } catch (error) {
            child.kill('SIGKILL');
            throw new Error(`${(error as Error).message}; stderr: ${child.stderrText().trim().slice(0, 300)}`);
          }
          return conn;
        },
        stop: async () => {},
      };
    case 'go-listener': {
      const go = await startGoListener(servers);
      return {
        ...base,
        pid: go.child.pid,
        open: async () => socketConn(await whenConnected(netConnect({ host: '127.0.0.1', port: go.port }), 'connect'), go.child.pid),
        stop: async () => {
          go.child.kill('SIGTERM');
          await exited(go.child);
        },
      };
    }
    case 'listener':
    case 'ws': {
      const dest = id === 'ws' ? `${servers.proxyUrl.replace(/^https:/, 'wss:')}${WS_PATH}` : BENCH_DEST;
      const listener = await startBurrowListener(servers, dest);
      return {
        ...base,
        pid: listener.child.pid,
        open: async () =>
          socketConn(await whenConnected(netConnect({ host: '127.0.0.1', port: listener.port }), 'connect'), listener.child.pid),
        stop: async () => void (await listener.stop()),
      };
    }
  }
}

/** A burrow listener for `dest` (CONNECT, or WebSocket for a wss:// URL), token from the environment. */
export async function startBurrowListener(servers: ServersReady, dest = BENCH_DEST): Promise<BurrowProcess & { port: number }> {
  // A wss:// destination names its gateway itself; host:port goes through --pomerium-url.
  const args = dest.startsWith('wss://') ? [dest, '--alternate-ca-path', servers.caPath] : [dest, '--pomerium-url', servers.proxyUrl, '--alternate-ca-path', servers.caPath];
  return startListener(args, { env: { BURROW_SERVICE_ACCOUNT: servers.token } });
}
