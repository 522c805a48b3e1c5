/**
 * Debian's real squid (package `squid-openssl`, 5.7 on bookworm) as the corporate forward proxy
 * for end-to-end tests: a peer burrow's forward-proxy chaining did not write.
 *
 * {@link startSquid} runs `/usr/sbin/squid -N -n <unique name> -f <config>` in the foreground on a
 * free loopback port, from a config written into a fresh temporary directory: no disk cache, its
 * own access log, cache log, pid file and coredump directory there. What squid 5.7 needs, found
 * by running it:
 * - started as root, it switches to `cache_effective_user` (`proxy`) before it opens its logs,
 *   and `cache_effective_user root` is refused ("FATAL: Don't run Squid as root"): the temporary
 *   directory is chowned to `proxy`. The TLS key is read while still root, at start.
 * - it keeps IPC state in /dev/shm under its service name (`/dev/shm/squid-cf__queues.shm`, and
 *   `…-tls_session_cache.shm` with an https_port): two squids with the default name collide
 *   ("shm_open … File exists"), and a killed squid leaves them behind. Each instance gets its own
 *   `-n` name (alphanumeric only) and `stop()` removes that name's segments.
 * - `https_port … tls-cert=… tls-key=…` serves TLS to the client (an `https://` forward proxy).
 * - the Basic auth helper `basic_ncsa_auth` reads an htpasswd file; `openssl passwd -apr1`
 *   writes one (no apache2-utils needed). Helpers run in their own process group, so `stop()`
 *   collects squid's descendants from /proc before killing.
 * - the default config allows CONNECT to port 443 only (`SSL_ports`); this one has its own ACLs:
 *   CONNECT to any port of `localhost`, 127.x.x.x or ::1 (as written in the request), nothing else.
 * - a CONNECT is logged when its tunnel ends, not when it starts: wait for the line.
 * - a tunnel does not survive a half-close: when the client shuts down its sending side (FIN),
 *   squid closes both sides at once, and what the server had not sent back yet is lost (a plain
 *   node client, no burrow: 20 MB sent then end(), 17.9 MB of the echo came back; 1 MB then
 *   end(), none). `half_closed_clients on` does not change that. Clients keep their side open
 *   until the answer is in, as ssh does.
 * - SIGTERM takes about 3 s even with `shutdown_lifetime 0`, so `stop()` kills with SIGKILL.
 *
 * Access log lines ({@link SQUID_LOG_FORMAT}) look like
 * `1795455624.969 127.0.0.1:53122 TCP_TUNNEL/200 CONNECT localhost:34605 alice 145 44 35660 [Proxy-Authorization: Basic …\r\nHost: localhost:34605\r\n]`:
 * time, client address:port, squid status/HTTP status, method, URL (host:port for CONNECT), user
 * (`-` when none), bytes from and to the client (a tunnel's whole traffic), the local port of
 * squid's own connection onward (`-` when it made none: the far end sees its requests come from
 * that port), then every request header squid received, in brackets, CR LF written as `\r\n`.
 * {@link Squid.entries} parses them.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture } from './fixtures.js';
import { descendants, freePort } from './processes.js';

export const SQUID_BIN = '/usr/sbin/squid';
/** Squid's Basic auth helper for htpasswd-style files (package squid-openssl / squid). */
export const BASIC_NCSA_AUTH = '/usr/lib/squid/basic_ncsa_auth';

/** The access log format: method, URL and every request header squid received (see the module comment). */
export const SQUID_LOG_FORMAT = '%ts.%03tu %>a:%>p %Ss/%03>Hs %rm %ru %un %>st %<st %<lp [%[>h]';

export interface SquidOptions {
  /** Require Basic proxy authentication for every request (wrong or missing credentials: 407). */
  basicAuth?: { user: string; password: string };
  /** Also serve TLS (`https_port`) with the fixture certificate proxy.pem (localhost, 127.0.0.1). */
  httpsPort?: boolean;
  /** CONNECTs to these ports are refused by an `http_access deny` rule (squid answers 403). */
  denyConnectTo?: number[];
}

/** One access log line, parsed. */
export interface SquidLogEntry {
  /** e.g. `TCP_TUNNEL`, `TCP_DENIED`, `NONE_NONE`. */
  squidStatus: string;
  /** The HTTP status squid answered (200 for an established tunnel). */
  status: number;
  method: string;
  /** `host:port` for CONNECT, as the client wrote it. */
  url: string;
  /** The authenticated (or claimed) user, undefined when none. */
  user: string | undefined;
  /** Bytes received from and sent to the client, tunnelled bytes included. */
  bytesFromClient: number;
  bytesToClient: number;
  /** Local port of squid's connection onward; undefined when it made none. */
  serverSidePort: number | undefined;
  /** The request headers squid received, as `Name: value` lines. */
  headers: string[];
  /** The line as logged. */
  line: string;
}

export interface Squid {
  /** `http://127.0.0.1:PORT`, without credentials. */
  readonly url: string;
  /** `https://localhost:PORT` when started with `httpsPort`. */
  readonly httpsUrl?: string;
  readonly port: number;
  readonly httpsPort?: number;
  readonly pid: number;
  /** The temporary directory holding the config, logs and password file. */
  readonly dir: string;
  /** The access log so far ('' before the first line); one line per request, see the module comment. */
  accessLog(): string;
  /** The access log so far, parsed, without the lines {@link settle} caused. */
  entries(): SquidLogEntry[];
  /**
   * Waits (bounded) until every request squid finished before this call is in the access log,
   * and returns how many entries {@link entries} then holds: slice from there to see what a test
   * caused. It sends squid a request of its own (a CONNECT to `settle-N.invalid:9`, refused
   * without a DNS lookup) and waits for that line; squid logs in order of completion, so a tunnel
   * whose client had already gone is written first. Use it before asserting that nothing came.
   */
  settle(): Promise<number>;
  /** squid's cache.log (its diagnostics) so far. */
  cacheLog(): string;
  /** Kills squid and its helpers, removes its shared memory and directory; bounded, idempotent. */
  stop(): Promise<void>;
}

const running = new Set<Squid>();
let instances = 0;
/** Pids of the squids started here and not yet stopped, for the exit hook below. */
const livePids = new Set<number>();
// squid runs on when the test process dies without its after hooks (an uncaught exception): kill
// it on the way out. process.kill is synchronous, as an 'exit' listener must be.
process.once('exit', () => {
  for (const pid of livePids) kill(pid, 'SIGKILL');
});

/**
 * Throws unless squid and its Basic auth helper are installed: a clear failure with the package
 * to install, in CI (where .ci/run installs it) and locally alike, never a skip.
 */
export function requireSquid(): void {
  const missing = [SQUID_BIN, BASIC_NCSA_AUTH].filter((path) => !existsSync(path));
  if (missing.length === 0) return;
  const where = process.env.CI === 'true' ? 'CI: .ci/run must install it' : 'install it';
  throw new Error(`${missing.join(', ')} not found; the forward proxy tests need squid (${where}: apt-get install squid-openssl)`);
}

/** uid and gid of `name` from /etc/passwd. */
function systemUser(name: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`squid switches to user "${name}" when started as root, and there is no such user (apt-get install squid-openssl creates it)`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** An htpasswd line for `user`, hashed by `openssl passwd -apr1` (the password goes on stdin, not argv). */
function htpasswdLine(user: string, password: string): string {
  const hash = execFileSync('openssl', ['passwd', '-apr1', '-stdin'], { input: `${password}\n`, encoding: 'utf8', timeout: 10_000 }).trim();
  return `${user}:${hash}\n`;
}

function squidConfig(c: { dir: string; port: number; httpsPort?: number; passwd?: string; denyConnectTo: number[]; asRoot: boolean }): string {
  const lines = [
    `http_port 127.0.0.1:${c.port}`,
    ...(c.httpsPort !== undefined ? [`https_port 127.0.0.1:${c.httpsPort} tls-cert=${fixture('proxy.pem')} tls-key=${fixture('proxy-key.pem')}`] : []),
    // Started as root it must switch to an unprivileged user (root is refused); this is the default.
    ...(c.asRoot ? ['cache_effective_user proxy'] : []),
    `pid_filename ${join(c.dir, 'squid.pid')}`,
    `cache_log ${join(c.dir, 'cache.log')}`,
    `coredump_dir ${c.dir}`,
    `logformat burrow ${SQUID_LOG_FORMAT}`,
    `access_log stdio:${join(c.dir, 'access.log')} burrow`,
    'buffered_logs off',
    'logfile_rotate 0',
    // No disk cache (no cache_dir), nothing cached in memory either.
    'cache deny all',
    'pinger_enable off',
    'netdb_filename none',
    'icp_port 0',
    'htcp_port 0',
    'shutdown_lifetime 0 seconds',
    'visible_hostname burrow-test-squid',
    // Names come from /etc/hosts (localhost); a DNS query must not leave the machine, and is bounded.
    'hosts_file /etc/hosts',
    'dns_nameservers 127.0.0.1',
    'dns_timeout 2 seconds',
    // Matched on the request's host as written (-n: no reverse lookup). A `dst` ACL would resolve
    // every other name first: a CONNECT to example.com then waited 35 s for DNS before its 403.
    'acl loopback_dst dstdom_regex -n ^localhost$ ^127\\.[0-9]+\\.[0-9]+\\.[0-9]+$ ^\\[?::1\\]?$',
    'acl CONNECT method CONNECT',
  ];
  if (c.passwd !== undefined) {
    lines.push(
      `auth_param basic program ${BASIC_NCSA_AUTH} ${c.passwd}`,
      'auth_param basic children 2 startup=1 idle=1',
      'auth_param basic realm burrow-test',
      'acl authenticated proxy_auth REQUIRED',
      // The last ACL of this rule is an auth one, so a request without valid credentials gets 407.
      'http_access deny !authenticated',
    );
  }
  if (c.denyConnectTo.length > 0) {
    lines.push(`acl denied_ports port ${c.denyConnectTo.join(' ')}`, 'http_access deny CONNECT denied_ports');
  }
  lines.push('http_access allow CONNECT loopback_dst', 'http_access deny all');
  return `${lines.join('\n')}\n`;
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

/** Unlinks the /dev/shm segments whose names `match` (squid leaves them when killed). */
function removeSharedMemoryWhere(match: (entry: string) => boolean): void {
  let entries: string[];
  try {
    entries = readdirSync('/dev/shm');
  } catch {
    return;
  }
  for (const entry of entries) {
    if (!match(entry)) continue;
    try {
      unlinkSync(join('/dev/shm', entry));
    } catch {
      // Gone already.
    }
  }
}

/** Removes /dev/shm segments of instances whose test process is gone (it died before stop()). */
function removeStaleSharedMemory(): void {
  removeSharedMemoryWhere((entry) => {
    const owner = /^burrowsq(\d+)n\d+-.*\.shm$/.exec(entry)?.[1];
    return owner !== undefined && Number(owner) !== process.pid && !existsSync(`/proc/${owner}`);
  });
}

/** Removes the /dev/shm segments of service `name`. */
function removeSharedMemory(name: string): void {
  removeSharedMemoryWhere((entry) => entry.startsWith(`${name}-`) && entry.endsWith('.shm'));
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

/**
 * Waits until squid's cache.log says it accepts connections on every port (bounded). A TCP probe
 * would do too, but squid logs a probe that sends nothing (`NONE_NONE/000 error:…`) in the
 * access log that tests read.
 */
async function waitForListening(
  dir: string,
  ports: { http: number; https?: number },
  exited: () => string | undefined,
  timeoutMs: number,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  const wanted = [`Accepting HTTP Socket connections at .* local=127\\.0\\.0\\.1:${ports.http} `];
  if (ports.https !== undefined) wanted.push(`Accepting HTTPS Socket connections at .* local=127\\.0\\.0\\.1:${ports.https} `);
  while (Date.now() < until) {
    const log = readOr(join(dir, 'cache.log'), '');
    if (wanted.every((re) => new RegExp(re).test(log))) return;
    const why = exited();
    if (why !== undefined) throw new Error(`squid ${why} before listening`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`squid did not listen on 127.0.0.1:${ports.http}${ports.https !== undefined ? ` and :${ports.https}` : ''} within ${timeoutMs} ms`);
}

const LINE = /^\S+ \S+ ([A-Z_]+)\/(\d+) (\S+) (\S+) (\S+) (\d+) (\d+) (\S+) \[(.*)\]$/;
const SETTLE_HOST = /^settle-\d+\.invalid:9$/;

/** Parses access log text written with {@link SQUID_LOG_FORMAT}; throws on a line it does not understand. */
export function parseAccessLog(text: string): SquidLogEntry[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const m = LINE.exec(line);
      if (!m) throw new Error(`unexpected squid access log line: ${line}`);
      return {
        squidStatus: m[1]!,
        status: Number(m[2]),
        method: m[3]!,
        url: m[4]!,
        user: m[5] === '-' ? undefined : m[5],
        bytesFromClient: Number(m[6]),
        bytesToClient: Number(m[7]),
        serverSidePort: /^[1-9]\d*$/.test(m[8]!) ? Number(m[8]) : undefined,
        headers: m[9]!.split('\\r\\n').filter((h) => h !== ''),
        line,
      };
    });
}

/** Sends one CONNECT to `host` through squid and reads the answer head; bounded. */
function probe(port: number, host: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let got = '';
    const timer = setTimeout(() => finish(new Error(`squid did not answer CONNECT ${host} within ${timeoutMs} ms`)), timeoutMs);
    function finish(error?: Error): void {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve();
    }
    socket.once('connect', () => socket.write(`CONNECT ${host} HTTP/1.1\r\nHost: ${host}\r\n\r\n`));
    socket.setEncoding('latin1').on('data', (d: string) => {
      got += d;
      if (got.includes('\r\n\r\n')) finish();
    });
    socket.once('error', (error) => finish(error));
    socket.once('end', () => finish(got.startsWith('HTTP/') ? undefined : new Error(`squid closed the probe without an answer (${JSON.stringify(got)})`)));
  });
}

/** Starts squid with its own config; see the module comment. */
export async function startSquid(options: SquidOptions = {}): Promise<Squid> {
  requireSquid();
  removeStaleSharedMemory();
  const asRoot = process.getuid?.() === 0;
  const proxyUser = asRoot ? systemUser('proxy') : undefined;
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), 'burrow-squid-'));
    // Alphanumeric only (squid refuses anything else); unique per process and instance.
    const name = `burrowsq${process.pid}n${++instances}`;
    let child: ChildProcess | undefined;
    let output = '';
    try {
      const port = await freePort();
      const httpsPort = options.httpsPort ? await freePort() : undefined;
      const passwd = options.basicAuth ? join(dir, 'passwd') : undefined;
      if (passwd && options.basicAuth) writeFileSync(passwd, htpasswdLine(options.basicAuth.user, options.basicAuth.password), { mode: 0o644 });
      const config = join(dir, 'squid.conf');
      writeFileSync(
        config,
        squidConfig({ dir, port, ...(httpsPort !== undefined ? { httpsPort } : {}), ...(passwd ? { passwd } : {}), denyConnectTo: options.denyConnectTo ?? [], asRoot }),
        { mode: 0o644 },
      );
      // squid opens its logs and pid file after switching to `proxy`: the directory must be its.
      if (proxyUser) chownSync(dir, proxyUser.uid, proxyUser.gid);

      child = spawn(SQUID_BIN, ['-N', '-n', name, '-f', config], {
        cwd: dir,
        env: { PATH: process.env.PATH, LANG: 'C' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      if (child.pid !== undefined) livePids.add(child.pid);
      const append = (d: Buffer): void => {
        output += d.toString('utf8');
        if (output.length > 64 * 1024) output = output.slice(-64 * 1024);
      };
      child.stdout!.on('data', append);
      child.stderr!.on('data', append);
      let exitReason: string | undefined;
      const spawned = child;
      const exited = new Promise<void>((resolve) =>
        spawned.once('exit', (code, signal) => {
          exitReason = signal ? `was killed by ${signal}` : `exited with ${code}`;
          resolve();
        }),
      );
      spawned.once('error', (error) => {
        exitReason = `could not start: ${error.message}`;
      });

      await waitForListening(dir, { http: port, ...(httpsPort !== undefined ? { https: httpsPort } : {}) }, () => exitReason, 15_000);

      const pid = spawned.pid!;
      let stopping: Promise<void> | undefined;
      let settles = 0;
      const accessLog = (): string => readOr(join(dir, 'access.log'), '');
      const entries = (): SquidLogEntry[] => parseAccessLog(accessLog()).filter((e) => !SETTLE_HOST.test(e.url));
      const squid: Squid = {
        url: `http://127.0.0.1:${port}`,
        ...(httpsPort !== undefined ? { httpsUrl: `https://localhost:${httpsPort}`, httpsPort } : {}),
        port,
        pid,
        dir,
        accessLog,
        entries,
        async settle() {
          const host = `settle-${++settles}.invalid:9`;
          await probe(port, host, 5000);
          const until = Date.now() + 5000;
          while (!parseAccessLog(accessLog()).some((e) => e.url === host)) {
            if (Date.now() > until) throw new Error(`squid did not log CONNECT ${host} within 5000 ms`);
            await new Promise((r) => setTimeout(r, 20));
          }
          return entries().length;
        },
        cacheLog: () => readOr(join(dir, 'cache.log'), ''),
        stop() {
          stopping ??= (async () => {
            const helpers = descendants(pid);
            kill(pid, 'SIGKILL');
            for (const helper of helpers) kill(helper, 'SIGKILL');
            await Promise.race([exited, new Promise((r) => setTimeout(r, 5000).unref())]);
            livePids.delete(pid);
            removeSharedMemory(name);
            rmSync(dir, { recursive: true, force: true });
            running.delete(squid);
          })();
          return stopping;
        },
      };
      running.add(squid);
      return squid;
    } catch (error) {
      const cacheLog = readOr(join(dir, 'cache.log'), '');
      if (child?.pid !== undefined) {
        for (const helper of descendants(child.pid)) kill(helper, 'SIGKILL');
        kill(child.pid, 'SIGKILL');
        const c = child;
        await Promise.race([
          new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(undefined) : c.once('exit', r))),
          new Promise((r) => setTimeout(r, 2000).unref()),
        ]);
        livePids.delete(child.pid);
      }
      removeSharedMemory(name);
      rmSync(dir, { recursive: true, force: true });
      lastError = new Error(`${(error as Error).message}\n--- squid output ---\n${output}\n--- cache.log ---\n${cacheLog.slice(-8000)}`);
      // Another process took the free port between our check and squid's bind: try another.
      if (/Address already in use|cannot bind/i.test(output + cacheLog)) continue;
      throw lastError;
    }
  }
  throw lastError ?? new Error('squid did not start');
}

/** Stops every squid started here that is still running (for `after` hooks). */
export async function stopAllSquid(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop()));
}
