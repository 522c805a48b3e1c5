/**
 * Runs the real CLI (`node bin/burrow.js`) as a child process, the way users and ssh do, with
 * its cache in a temporary directory. Every process started here is killed by `stopAll()` or
 * its own `stop()`, which tests call in `after` hooks.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunked } from './data.js';
import { repoRoot } from './fixtures.js';

export const BURROW_BIN = join(repoRoot, 'bin', 'burrow.js');

export interface BurrowProcess {
  child: ChildProcessWithoutNullStreams;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Everything written to stdout so far (stdio mode: the tunnel's bytes; listener: the address). */
  stdoutText(): string;
  /** Resolves with the exit code (or 128+signal). */
  exited: Promise<number>;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

const running = new Set<BurrowProcess>();

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** Collect stdout as text (listener mode); stdio tests read `child.stdout` themselves. */
  collectStdout?: boolean;
  /** A command that execs burrow with its arguments appended, e.g. `['prlimit', '--nofile=64:64', '--']`. */
  wrapper?: string[];
  /** Options for `node` itself, before bin/burrow.js (e.g. `--trace-opt`). */
  nodeArgs?: string[];
}

/** A fresh cache directory per process tree, removed by stopAll. */
const tempDirs: string[] = [];
export function tempDir(prefix = 'burrow-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export function spawnBurrow(args: string[], options: SpawnOptions = {}): BurrowProcess {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    XDG_CACHE_HOME: tempDir('burrow-cache-'),
    // An empty config directory: a config file of the user's own must not change what tests see.
    XDG_CONFIG_HOME: tempDir('burrow-config-'),
    BURROW_CREDENTIAL_STORE: 'file',
    NO_COLOR: '1',
    ...options.env,
  };
  const [command, ...argv] = [...(options.wrapper ?? []), process.execPath, ...(options.nodeArgs ?? []), BURROW_BIN, ...args];
  const child = spawn(command!, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  if (options.collectStdout !== false) child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  const exited = new Promise<number>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : 2))),
  );
  const proc: BurrowProcess = {
    child,
    stderr: () => stderr,
    stdoutText: () => stdout,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        const code = await exited;
        clearTimeout(timer);
        return code;
      }
      return exited;
    },
  };
  running.add(proc);
  void exited.then(() => running.delete(proc));
  return proc;
}

/** Runs burrow to completion (bounded), returning its exit code and output. */
export async function runBurrow(
  args: string[],
  options: SpawnOptions & { input?: Buffer | string; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  const proc = spawnBurrow(args, { ...options, collectStdout: false });
  const chunks: Buffer[] = [];
  proc.child.stdout.on('data', (d: Buffer) => chunks.push(d));
  proc.child.stdin.on('error', () => {});
  proc.child.stdin.end(options.input ?? '');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
  const code = await proc.exited;
  clearTimeout(timer);
  return { code, stdout: Buffer.concat(chunks), stderr: proc.stderr() };
}

/**
 * Starts a listener-mode burrow (`burrow tcp`, or `command`) and waits for the bound address it
 * prints on stdout.
 */
export async function startListener(args: string[], options: SpawnOptions = {}, command = 'tcp'): Promise<BurrowProcess & { address: string; port: number }> {
  const proc = spawnBurrow([command, ...args], options);
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no address printed within 15s; stderr: ${proc.stderr()}`)), 15_000);
    const check = () => {
      const line = proc.stdoutText().split('\n')[0];
      if (proc.stdoutText().includes('\n') && line) {
        clearTimeout(timer);
        proc.child.stdout.off('data', check);
        resolve(line.trim());
      }
    };
    proc.child.stdout.on('data', check);
    void proc.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`burrow exited with ${code} before listening; stderr: ${proc.stderr()}`));
    });
  });
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  return Object.assign(proc, { address, port });
}

/**
 * Runs stdio-mode burrow against an echo: writes `data` to its stdin, and half-closes stdin only
 * once every byte has come back (as ssh does: some gateways drop in-flight data on a half-close).
 */
export async function stdioEcho(
  args: string[],
  env: NodeJS.ProcessEnv,
  data: Buffer | string,
  timeoutMs = 60_000,
): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  const bytes = Buffer.from(data);
  const proc = spawnBurrow(args, { env, collectStdout: false });
  const chunks: Buffer[] = [];
  let received = 0;
  proc.child.stdin.on('error', () => {});
  proc.child.stdout.on('data', (d: Buffer) => {
    chunks.push(d);
    received += d.length;
    if (received >= bytes.length) proc.child.stdin.end();
  });
  chunked(bytes).pipe(proc.child.stdin, { end: false });
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  return { code, stdout: Buffer.concat(chunks), stderr: proc.stderr() };
}

/** Every token in the file credential store under the cache dir `cache` (to check none leaked). */
export function storedTokens(cache: string): string[] {
  const dir = join(cache, 'burrow', 'credentials');
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { token: string }).token);
  } catch {
    return [];
  }
}

/** Kills every process started here and removes temporary directories. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop('SIGKILL')));
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}
