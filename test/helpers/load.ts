/**
 * Load and leak checks shared by the load/soak tests and the soak benchmark: many concurrent
 * round trips through a local listener, each verified by sha256, and readings of another
 * process's file descriptors and resident memory from /proc (Linux).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { payload } from './data.js';

/** Open file descriptors of `pid` (entries of /proc/<pid>/fd). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident memory of `pid` in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN) * 1024;
}

/** Peak resident memory of `pid` in bytes so far (VmHWM). */
export function peakRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN) * 1024;
}

/** The soft and hard RLIMIT_NOFILE of `pid` (default: this process), from /proc/<pid>/limits. */
export function fdLimits(pid: number | 'self' = 'self'): { soft: number; hard: number } {
  const line = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  const n = (v: string | undefined) => (v === undefined || v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v));
  return { soft: n(line?.[1]), hard: n(line?.[2]) };
}

export const MiB = 1024 * 1024;

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * One connection to `port`: sends `data`, half-closes once it is all written, and resolves with
 * the sha256 and length of everything received by the time the far side closed. Rejects on a
 * socket error or after `timeoutMs`. Only the digest is kept, not the bytes.
 */
export function hashedRoundTrip(port: number, data: Buffer, timeoutMs: number): Promise<{ sha256: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const hash = createHash('sha256');
    let bytes = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`round trip of ${data.length} bytes: no close after ${timeoutMs} ms (${bytes} bytes back)`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    });
    socket.once('end', () => socket.end());
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ sha256: hash.digest('hex'), bytes });
    });
    socket.once('connect', () => socket.end(data));
  });
}

export interface BurstResult {
  connections: number;
  /** Connections whose echo matched what was sent, byte for byte. */
  ok: number;
  /** The first few failures, for the assertion message. */
  failures: string[];
  bytesEachWay: number;
}

/**
 * `count` concurrent round trips through an echo behind `port`; connection `i` sends
 * `sizeOf(i)` bytes of `payload(…, seed + i)` and must get exactly those bytes back. Payloads
 * are built and hashed up front (not timed with the traffic), then all connections start at once.
 */
export async function echoBurst(port: number, count: number, sizeOf: (i: number) => number, seed: number, timeoutMs: number): Promise<BurstResult> {
  const payloads = Array.from({ length: count }, (_, i) => payload(sizeOf(i), seed + i));
  const expected = payloads.map((p) => createHash('sha256').update(p).digest('hex'));
  const failures: string[] = [];
  let ok = 0;
  await Promise.all(
    payloads.map(async (data, i) => {
      try {
        const back = await hashedRoundTrip(port, data, timeoutMs);
        if (back.sha256 === expected[i]) ok++;
        else if (failures.length < 5) failures.push(`#${i}: ${back.bytes} of ${data.length} bytes back, digest differs`);
      } catch (error) {
        if (failures.length < 5) failures.push(`#${i}: ${(error as Error).message}`);
      }
    }),
  );
  return { connections: count, ok, failures, bytesEachWay: payloads.reduce((n, p) => n + p.length, 0) };
}

/** Polls `read` every `everyMs` until `ok(value)` or `timeoutMs`; returns the last value (bounded). */
export async function settle<T>(read: () => T, ok: (value: T) => boolean, timeoutMs: number, everyMs = 250): Promise<T> {
  const until = Date.now() + timeoutMs;
  let value = read();
  while (!ok(value) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, everyMs));
    value = read();
  }
  return value;
}

/**
 * A connection to the V8 inspector of a process started with `NODE_OPTIONS=--inspect=127.0.0.1:0`
 * (it prints its `ws://` address on stderr). Used to tell garbage that is merely not collected
 * yet from memory that is really held: V8 collects when it allocates, not when idle, so an idle
 * listener keeps a burst's garbage (and the native buffers it owns) until something forces a GC.
 */
export interface Inspector {
  /** A full garbage collection in the inspected process. */
  collectGarbage(): Promise<void>;
  /** `process.memoryUsage()` of the inspected process. */
  memoryUsage(): Promise<NodeJS.MemoryUsage>;
  close(): void;
}

export const INSPECT_ENV = { NODE_OPTIONS: '--inspect=127.0.0.1:0' };

export async function attachInspector(stderr: string): Promise<Inspector> {
  const url = /ws:\/\/127\.0\.0\.1:\d+\/[0-9a-f-]+/.exec(stderr)?.[0];
  if (!url) throw new Error(`no inspector address on stderr: ${stderr.slice(0, 300)}`);
  const { WebSocket } = await import('ws');
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let id = 0;
  const call = (method: string, params: object = {}) =>
    new Promise<{ result?: { value?: unknown } }>((resolve, reject) => {
      const mine = ++id;
      const timer = setTimeout(() => reject(new Error(`inspector: no answer to ${method} within 10 s`)), 10_000);
      const onMessage = (raw: Buffer) => {
        const message = JSON.parse(raw.toString()) as { id?: number; result?: { result?: { value?: unknown } } };
        if (message.id !== mine) return;
        clearTimeout(timer);
        ws.off('message', onMessage);
        resolve(message.result ?? {});
      };
      ws.on('message', onMessage);
      ws.send(JSON.stringify({ id: mine, method, params }));
    });
  return {
    async collectGarbage() {
      await call('HeapProfiler.collectGarbage');
    },
    async memoryUsage() {
      const answer = await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
      return JSON.parse(String(answer.result?.value)) as NodeJS.MemoryUsage;
    },
    close: () => ws.close(),
  };
}

export interface SoakSample {
  /** Seconds since the soak started. */
  t: number;
  cycle: number;
  rssMiB: number;
  fds: number;
}

export interface SoakResult {
  cycles: number;
  connections: number;
  /** Connections whose echo did not match (or failed). */
  failed: number;
  failures: string[];
  bytesEachWay: number;
  seconds: number;
  samples: SoakSample[];
}

/**
 * Repeated connect/transfer/close cycles through the listener on `port`: each cycle runs
 * `concurrency` echo round trips of `bytes` each (sha256-checked) and waits for all of them to
 * close, then samples `pid`'s RSS and descriptors. Bounded by `durationMs` and `maxCycles`.
 */
export async function soak(options: {
  port: number;
  pid: number;
  durationMs: number;
  maxCycles: number;
  concurrency: number;
  bytes: number;
  /** Sample every n-th cycle (default 1). */
  sampleEvery?: number;
  onSample?: (sample: SoakSample) => void;
}): Promise<SoakResult> {
  const started = Date.now();
  const samples: SoakSample[] = [];
  const failures: string[] = [];
  let cycles = 0;
  let failed = 0;
  let bytesEachWay = 0;
  while (cycles < options.maxCycles && Date.now() - started < options.durationMs) {
    const burst = await echoBurst(options.port, options.concurrency, () => options.bytes, (cycles * 7919) % 100_000, 30_000);
    cycles++;
    failed += burst.connections - burst.ok;
    bytesEachWay += burst.bytesEachWay;
    if (failures.length < 5) failures.push(...burst.failures.slice(0, 5 - failures.length));
    if (cycles % (options.sampleEvery ?? 1) === 0) {
      const sample = { t: (Date.now() - started) / 1000, cycle: cycles, rssMiB: rssBytes(options.pid) / MiB, fds: fdCount(options.pid) };
      samples.push(sample);
      options.onSample?.(sample);
    }
  }
  return { cycles, connections: cycles * options.concurrency, failed, failures, bytesEachWay, seconds: (Date.now() - started) / 1000, samples };
}

/**
 * Flatness of a soak's RSS: after dropping the first `warmupFraction` of samples (JIT, heap
 * growing to its working size), the median of the last third against the median of the first
 * third of what remains.
 */
export function rssTrend(samples: SoakSample[], warmupFraction = 0.2): { earlyMiB: number; lateMiB: number; growthMiB: number; maxMiB: number } {
  const steady = samples.slice(Math.floor(samples.length * warmupFraction));
  const third = Math.max(1, Math.floor(steady.length / 3));
  const earlyMiB = median(steady.slice(0, third).map((s) => s.rssMiB));
  const lateMiB = median(steady.slice(-third).map((s) => s.rssMiB));
  return { earlyMiB, lateMiB, growthMiB: lateMiB - earlyMiB, maxMiB: Math.max(...samples.map((s) => s.rssMiB)) };
}
