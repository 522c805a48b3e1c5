/**
 * Starts the fake proxy in a child process (proxy-child.ts) for faults a proxy in the test's own
 * process cannot show: being killed (SIGKILL) or frozen (SIGSTOP, a blackhole that keeps its
 * TCP connections). Every process started here is stopped by `stop()` or `stopProxyProcesses()`.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FakeRoute } from './fake-pomerium.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'proxy-child.js');

export interface ProxyProcess {
  readonly url: string;
  readonly caPath: string;
  /** A valid token of this proxy. */
  readonly token: string;
  readonly pid: number;
  readonly child: ChildProcessWithoutNullStreams;
  /** `tcp <dest> --pomerium-url … --alternate-ca-path …` plus `extra`. */
  tcpArgs(dest: string, ...extra: string[]): string[];
  /** Environment carrying the token (BURROW_SERVICE_ACCOUNT). */
  readonly env: NodeJS.ProcessEnv;
  /** Sends `signal` (SIGKILL, SIGSTOP, SIGCONT…). */
  signal(signal: NodeJS.Signals): void;
  /** Resolves once the process has exited. */
  readonly exited: Promise<void>;
  /** Continues it if frozen, kills it, and waits for the exit (bounded). */
  stop(): Promise<void>;
}

const running = new Set<ProxyProcess>();

export async function startProxyProcess(options: { routes: FakeRoute[]; wsAutoPong?: boolean }): Promise<ProxyProcess> {
  const child = spawn(process.execPath, [CHILD, JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const ready = await new Promise<{ url: string; caPath: string; token: string }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`proxy process not ready within 15 s: ${stderr}`)), 15_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const newline = out.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      resolve(JSON.parse(out.slice(0, newline)) as { url: string; caPath: string; token: string });
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`proxy process exited before it was ready: ${stderr}`));
    });
  });
  const proc: ProxyProcess = {
    ...ready,
    pid: child.pid!,
    child,
    env: { BURROW_SERVICE_ACCOUNT: ready.token },
    tcpArgs: (dest, ...extra) => ['tcp', dest, '--pomerium-url', ready.url, '--alternate-ca-path', ready.caPath, ...extra],
    signal(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    exited,
    async stop() {
      proc.signal('SIGCONT');
      proc.signal('SIGKILL');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      running.delete(proc);
    },
  };
  running.add(proc);
  return proc;
}

/** Stops every proxy process still running (for `after` hooks). */
export async function stopProxyProcesses(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop()));
}
