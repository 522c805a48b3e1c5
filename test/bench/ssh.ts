/**
 * The ssh section of `npm run bench`: a burst of sequential `ssh host true` to a real sshd behind
 * the proxy, as a user's `git fetch`/`git pull` burst makes them, through each way burrow offers
 * and through the per-process clients it competes with:
 *
 *   direct        ssh straight to sshd (the floor: ssh's own handshake and session over its own TCP socket)
 *   direct-pipe   the same through `nc host port` as ProxyCommand: ssh over pipes, a few ms of C
 *                 (ssh sets no TCP_NODELAY on its own socket for a command without a terminal:
 *                 over a socket it pays Nagle's algorithm, over a ProxyCommand's pipes it does not)
 *   proxytunnel   proxytunnel -E as ProxyCommand (C: the cheapest per-process ProxyCommand)
 *   go            the Go stand-in for pomerium-cli as ProxyCommand
 *   proxycommand  burrow tcp --listen - as ProxyCommand (one Node process per ssh)
 *   up            ssh to the local port of a tunnel of one long-running `burrow up` (HostKeyAlias)
 *   proxy-nc      nc -X 5 (OpenBSD's; else ncat) as ProxyCommand through one running burrow proxy
 *   multiplex     ssh-config --multiplex's options: the first ssh starts a master, the rest reuse it
 *
 * Each ssh is timed from its spawn to its exit, one path after another in turn (so that the
 * machine's other work falls on every path alike); a path's burst is the sum of its `count` ssh
 * times. The proxy's CONNECT count says how many tunnels each path opened. Medians of the bursts.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BURROW_BIN, startListener, tempDir } from '../helpers/burrow.js';
import { shQuote, type Sshd } from '../helpers/sshd.js';
import { benchCacheDir, cleanEnv, goClientBinary } from './clients.js';
import { median } from './measure.js';
import { proxytunnelVersion } from './proc.js';
import { SSH_BENCH_HOST, type ServersReady } from './protocol.js';

export type SshPathId = 'direct' | 'direct-pipe' | 'proxytunnel' | 'go' | 'proxycommand' | 'up' | 'proxy-nc' | 'multiplex';

export const SSH_PATH_LABELS: Record<SshPathId, string> = {
  direct: 'ssh straight to sshd (floor of a local port)',
  'direct-pipe': 'ssh to sshd through nc as ProxyCommand (floor of a ProxyCommand)',
  proxytunnel: 'proxytunnel -E as ProxyCommand',
  go: 'Go client (pomerium-cli stand-in) as ProxyCommand',
  proxycommand: 'burrow tcp --listen - as ProxyCommand',
  up: 'one running burrow up (a tunnel of its config file), ssh to its port',
  'proxy-nc': 'one running burrow proxy, nc SOCKS5 as ProxyCommand',
  multiplex: 'ssh-config --multiplex (ControlMaster, burrow ProxyCommand)',
};

export interface SshPathResult {
  /** One burst: the sum of `count` ssh times (spawn to exit), median over the repetitions. */
  burstMs: number;
  /** burstMs / the burst's ssh count. */
  perSshMs: number;
  /** CONNECTs the proxy answered per burst (median). */
  tunnels: number;
  runs: number;
}

export interface SshResult {
  /** ssh commands per burst. */
  count: number;
  reps: number;
  paths: Partial<Record<SshPathId, SshPathResult>>;
  /** Paths that could not run here, and why. */
  skipped: Partial<Record<SshPathId, string>>;
  /** The SOCKS client of the proxy-nc path. */
  nc?: string;
}

/** One way of reaching the sshd: the ssh options (before the host), the host, and what to undo. */
interface SshPath {
  id: SshPathId;
  args: string[];
  host: string;
  /** After each burst (multiplex: ssh -O exit). */
  afterBurst(): Promise<void>;
  stop(): Promise<void>;
}

const NCAT = '/usr/bin/ncat';
const NC_OPENBSD = '/usr/bin/nc.openbsd';
/** Which nc the proxy-nc path used, for the report. */
let ncUsed: string | undefined;

/** Runs one ssh to completion (not sshd.ts's run(): that kills the process group, and with it a ControlPersist master). */
function ssh(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('ssh', args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: 127, stderr: error.message });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 255, stderr });
    });
  });
}

/** The paths of `ids` that can run here, started; the others with the reason they cannot. */
async function startSshPaths(
  ids: readonly SshPathId[],
  servers: ServersReady,
  sshd: Sshd,
): Promise<{ paths: SshPath[]; skipped: Partial<Record<SshPathId, string>>; env: NodeJS.ProcessEnv }> {
  const knownHosts = sshd.knownHostsFor([SSH_BENCH_HOST]);
  // -F /dev/null: no user or system ssh config; HostKeyAlias: one known_hosts line for every path.
  const common = ['-F', '/dev/null', '-o', `HostKeyAlias=${SSH_BENCH_HOST}`, ...sshd.clientArgs(knownHosts)];
  // What a ProxyCommand inherits from ssh: the token, the code cache every burrow shares, no user config.
  const env = cleanEnv({ LANG: 'C', BURROW_SERVICE_ACCOUNT: servers.token, BENCH_TOKEN: servers.token, XDG_CACHE_HOME: benchCacheDir(), XDG_CONFIG_HOME: tempDir('burrow-bench-config-') });
  const burrowCommand = [process.execPath, BURROW_BIN, 'tcp', '--listen', '-', '%h:%p', '--pomerium-url', servers.proxyUrl, '--alternate-ca-path', servers.caPath]
    .map((a) => (a === '%h:%p' ? a : shQuote(a)))
    .join(' ');
  const proxyCommand = (command: string) => ['-o', `ProxyCommand=${command}`];
  const none = async (): Promise<void> => {};
  const paths: SshPath[] = [];
  const skipped: Partial<Record<SshPathId, string>> = {};
  for (const id of ids) {
    const simple = (args: string[], host = SSH_BENCH_HOST) => paths.push({ id, args: [...args, ...common], host, afterBurst: none, stop: none });
    switch (id) {
      case 'direct':
        simple(['-p', String(sshd.port)], '127.0.0.1');
        break;
      case 'direct-pipe': {
        const nc = existsSync(NC_OPENBSD) ? NC_OPENBSD : existsSync(NCAT) ? NCAT : undefined;
        if (nc === undefined) {
          skipped[id] = 'neither nc.openbsd nor ncat is installed (apt-get install netcat-openbsd)';
          break;
        }
        simple(proxyCommand(`${nc} 127.0.0.1 ${sshd.port}`));
        break;
      }
      case 'proxytunnel': {
        if (proxytunnelVersion() === undefined) {
          skipped[id] = 'proxytunnel is not installed (apt-get install proxytunnel)';
          break;
        }
        const args = ['-q', '-E', '-C', servers.caPath, '-p', `localhost:${servers.proxyPort}`, '-d', '%h:%p', '-H', `Authorization: Pomerium ${servers.token}`];
        simple(proxyCommand(['proxytunnel', ...args].map((a) => (a === '%h:%p' ? a : shQuote(a))).join(' ')));
        break;
      }
      case 'go': {
        const binary = goClientBinary();
        if (binary === undefined) {
          skipped[id] = 'the Go client was not built (apt-get install golang-go)';
          break;
        }
        const args = [binary, '-proxy', `localhost:${servers.proxyPort}`, '-dest', '%h:%p', '-ca', servers.caPath, '-listen', '-'];
        simple(proxyCommand(args.map((a) => (a === '%h:%p' ? a : shQuote(a))).join(' ')));
        break;
      }
      case 'proxycommand':
        simple(proxyCommand(burrowCommand));
        break;
      case 'up': {
        const config = join(tempDir('burrow-bench-up-'), 'config.yaml');
        const tunnel = [`  pomerium-url: ${servers.proxyUrl}`, `  alternate-ca-path: ${servers.caPath}`, 'tunnels:', '  ssh:', `    destination: ${SSH_BENCH_HOST}:22`];
        writeFileSync(config, ['defaults:', ...tunnel, ''].join('\n'));
        // Its stdout's first line is `ssh 127.0.0.1:PORT`.
        const listener = await startListener([], { env: { BURROW_SERVICE_ACCOUNT: servers.token, BURROW_CONFIG: config } }, 'up');
        paths.push({ id, args: ['-p', String(listener.port), ...common], host: '127.0.0.1', afterBurst: none, stop: async () => void (await listener.stop()) });
        break;
      }
      case 'proxy-nc': {
        // OpenBSD's nc -X 5, as the guide's recipe: a small C program. ncat works too, but spends
        // ~70 ms of its own before its first byte here, more than the tunnel itself.
        const nc = existsSync(NC_OPENBSD) ? 'openbsd' : existsSync(NCAT) ? 'ncat' : undefined;
        if (nc === undefined) {
          skipped[id] = 'neither nc.openbsd nor ncat is installed (apt-get install netcat-openbsd)';
          break;
        }
        const domain = SSH_BENCH_HOST.split('.').slice(1).join('.');
        const listener = await startListener(
          ['--domain', domain, '--listen', '127.0.0.1:0', '--pomerium-url', servers.proxyUrl, '--alternate-ca-path', servers.caPath],
          { env: { BURROW_SERVICE_ACCOUNT: servers.token } },
          'proxy',
        );
        const command =
          nc === 'openbsd' ? `${NC_OPENBSD} -X 5 -x 127.0.0.1:${listener.port} %h %p` : `${NCAT} --proxy 127.0.0.1:${listener.port} --proxy-type socks5 --proxy-dns remote %h %p`;
        ncUsed = nc === 'openbsd' ? 'nc.openbsd -X 5' : 'ncat --proxy-type socks5';
        paths.push({ id, args: [...proxyCommand(command), ...common], host: SSH_BENCH_HOST, afterBurst: none, stop: async () => void (await listener.stop()) });
        break;
      }
      case 'multiplex': {
        const sockets = join(tempDir('burrow-bench-mux-'), 'ssh');
        mkdirSync(sockets, { mode: 0o700 });
        // First: ssh takes the first value it is given, and common says ControlMaster no.
        const mux = ['-o', 'ControlMaster=auto', '-o', `ControlPath=${sockets}/%C`, '-o', 'ControlPersist=60', ...proxyCommand(burrowCommand)];
        const args = [...mux, ...common];
        paths.push({
          id,
          args,
          host: SSH_BENCH_HOST,
          // Each burst starts with no master, as the first git command of the day does.
          afterBurst: async () => void (await ssh([...args, '-O', 'exit', SSH_BENCH_HOST], env, 10_000)),
          stop: none,
        });
        break;
      }
    }
  }
  return { paths, skipped, env };
}

/**
 * `reps` bursts of `count` sequential `ssh host true` per path, interleaved; `connects()` reads
 * the proxy's CONNECT count. A failed ssh fails the burst (its stderr in the error).
 */
export async function sshBursts(
  ids: readonly SshPathId[],
  servers: ServersReady,
  sshd: Sshd,
  count: number,
  reps: number,
  connects: () => Promise<number>,
  log: (line: string) => void,
): Promise<SshResult> {
  const { paths, skipped, env } = await startSshPaths(ids, servers, sshd);
  const bursts: Partial<Record<SshPathId, Array<{ ms: number; tunnels: number }>>> = {};
  try {
    // One unrecorded ssh per path: host keys read, code cache written, listeners warm.
    for (const path of paths) {
      const warm = await ssh([...path.args, path.host, 'true'], env);
      if (warm.code !== 0) throw new Error(`ssh through ${path.id} failed (exit ${warm.code}): ${warm.stderr.trim().slice(0, 500)}`);
      await path.afterBurst();
    }
    // Interleaved one ssh at a time (each round starts with another path), so that what else the
    // machine does falls on every path alike; a burst is the sum of one path's ssh times.
    for (let rep = 0; rep < reps; rep++) {
      const spent = new Map<SshPathId, number>();
      const opened = new Map<SshPathId, number>();
      for (let i = 0; i < count; i++) {
        for (const path of paths.map((_, k) => paths[(k + i + rep) % paths.length]!)) {
          const from = await connects();
          const t0 = performance.now();
          const r = await ssh([...path.args, path.host, 'true'], env);
          const ms = performance.now() - t0;
          if (r.code !== 0) throw new Error(`ssh ${i + 1}/${count} through ${path.id} failed (exit ${r.code}): ${r.stderr.trim().slice(0, 500)}`);
          spent.set(path.id, (spent.get(path.id) ?? 0) + ms);
          opened.set(path.id, (opened.get(path.id) ?? 0) + (await connects()) - from);
        }
      }
      for (const path of paths) {
        await path.afterBurst();
        const ms = spent.get(path.id) ?? Number.NaN;
        const tunnels = opened.get(path.id) ?? Number.NaN;
        (bursts[path.id] ??= []).push({ ms, tunnels });
        log(`ssh ${rep + 1}/${reps} ${path.id.padEnd(12)} ${count} × ssh true in ${ms.toFixed(0).padStart(5)} ms (${(ms / count).toFixed(1)} ms each), ${tunnels} tunnels`);
      }
    }
  } finally {
    for (const path of paths) await path.stop().catch(() => {});
  }
  const result: SshResult = { count, reps, paths: {}, skipped, ...(ncUsed ? { nc: ncUsed } : {}) };
  for (const [id, runs] of Object.entries(bursts) as Array<[SshPathId, Array<{ ms: number; tunnels: number }>]>) {
    const burstMs = median(runs.map((r) => r.ms));
    result.paths[id] = { burstMs, perSshMs: burstMs / count, tunnels: median(runs.map((r) => r.tunnels)), runs: runs.length };
  }
  return result;
}
