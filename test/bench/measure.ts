/**
 * One measurement each: a throughput run, a latency run, a connect-to-first-byte, the scale run
 * and the slow consumer. The load generator is this process; it writes one 1 MiB buffer again
 * and again and only counts what it reads, so that it is never the slowest party.
 */
import { spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import type { Writable } from 'node:stream';
import { Counter, spawnStdioClient, startBurrowListener, type BenchPath, type Conn } from './clients.js';
import { cpuSeconds, cpuTimes, machineBusySeconds, memory } from './proc.js';
import { header, Op, type ServersReady } from './protocol.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;
const CHUNK = Buffer.alloc(MiB, 0xa5);

const now = (): number => Number(process.hrtime.bigint()) / 1e6; // ms, monotonic, shared by all processes

/** Nearest-rank percentile (q in 0..1) of unsorted numbers. */
export function percentile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export const median = (values: number[]): number => {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return Number.NaN;
  const sorted = [...finite].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Writes `bytes` bytes (the same 1 MiB buffer over and over), honouring backpressure. */
function writeBytes(writable: Writable, bytes: number): Promise<void> {
  return new Promise((resolve) => {
    let left = bytes;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length);
        left -= n;
        if (!writable.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
          writable.once('drain', pump);
          return;
        }
      }
      resolve();
    };
    pump();
  });
}

export type Direction = 'upload' | 'download';

export interface ThroughputRun {
  path: string;
  direction: Direction;
  bytes: number;
  seconds: number;
  mibPerSecond: number;
  /** CPU seconds of the client process under test during the run (NaN: no separate client). */
  clientCpu: number;
  /** The kernel's part of clientCpu (system calls, loopback TCP). */
  clientSystemCpu: number;
  /** CPU seconds of the proxy + bench server process. */
  proxyCpu: number;
  /** CPU seconds of the load generator (this process). */
  loadgenCpu: number;
  /** Busy CPU seconds of the whole machine during the run (all cores). */
  machineCpu: number;
}

/**
 * N bytes one way through a fresh connection: upload to the sink (timed until its one-byte
 * acknowledgement) or download from the source (timed until the last byte). CPU counters are
 * read once the tunnel is up, so the client's start-up and TLS handshake are not counted.
 */
export async function throughput(path: BenchPath, direction: Direction, bytes: number, helperPid: number, timeoutMs: number): Promise<ThroughputRun> {
  const conn = await path.open();
  try {
    await conn.counter.until(1, 15_000, 'the greeting');
    const client0 = cpuTimes(conn.clientPid);
    const proxy0 = cpuSeconds(helperPid);
    const loadgen0 = process.cpuUsage();
    const machine0 = machineBusySeconds();
    const t0 = now();
    if (direction === 'upload') {
      conn.writable.write(header(Op.Upload, bytes));
      await Promise.all([writeBytes(conn.writable, bytes), conn.counter.until(2, timeoutMs, 'the upload acknowledgement')]);
    } else {
      conn.writable.write(header(Op.Download, bytes));
      await conn.counter.until(1 + bytes, timeoutMs, 'the download');
    }
    const seconds = (now() - t0) / 1000;
    const machineCpu = machineBusySeconds() - machine0;
    const loadgen = process.cpuUsage(loadgen0);
    const client1 = cpuTimes(conn.clientPid);
    return {
      path: path.id,
      direction,
      bytes,
      seconds,
      mibPerSecond: bytes / MiB / seconds,
      clientCpu: client1.user + client1.system - client0.user - client0.system,
      clientSystemCpu: client1.system - client0.system,
      proxyCpu: cpuSeconds(helperPid) - proxy0,
      loadgenCpu: (loadgen.user + loadgen.system) / 1e6,
      machineCpu,
    };
  } finally {
    await conn.close();
  }
}

/** Round-trip times in µs of `rounds` 64-byte messages through the echo, after `warmup` unrecorded ones. */
export async function latency(path: BenchPath, rounds: number, warmup = 100, timeoutMs = 60_000): Promise<number[]> {
  const conn = await path.open();
  try {
    await conn.counter.until(1, 15_000, 'the greeting');
    conn.writable.write(header(Op.Echo, 0));
    const message = Buffer.alloc(64, 0x61);
    const samples: number[] = new Array<number>(rounds);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`latency: ${rounds} round trips not done in ${timeoutMs} ms`)), timeoutMs);
      let i = -warmup - 1;
      let expected = 1;
      let sent = 0n;
      const next = (error?: Error): void => {
        const arrived = process.hrtime.bigint();
        if (error) {
          clearTimeout(timer);
          return reject(error);
        }
        if (i >= 0) samples[i] = Number(arrived - sent) / 1000;
        i++;
        if (i >= rounds) {
          clearTimeout(timer);
          return resolve();
        }
        expected += message.length;
        sent = process.hrtime.bigint();
        conn.writable.write(message);
        conn.counter.onTotal(expected, next);
      };
      next();
    });
    return samples;
  } finally {
    await conn.close();
  }
}

/** ms from opening a connection (or starting a stdio client process) to the upstream's first byte. */
export async function firstByte(path: BenchPath): Promise<number> {
  const t0 = now();
  const conn = await path.open();
  await conn.counter.until(1, 15_000, 'the greeting');
  const ms = now() - t0;
  await conn.close();
  return ms;
}

/** ms from spawning a process to its exit. */
export function spawnToExit(file: string, args: string[], env: NodeJS.ProcessEnv = { PATH: process.env.PATH }): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const child = spawn(file, args, { stdio: 'ignore', env });
    child.once('error', reject);
    child.once('exit', () => resolve(now() - t0));
  });
}

/** ms from spawning `node -e 0` to its exit: what any Node program pays before its first line. */
export const nodeStartup = (): Promise<number> => spawnToExit(process.execPath, ['-e', '0']);

/** Samples a process's RSS every `ms` and keeps the largest value seen. */
function rssSampler(pid: number | undefined, ms = 100): { max(): number; stop(): void } {
  let max = 0;
  const take = (): void => {
    const { rssMiB } = memory(pid);
    if (rssMiB > max) max = rssMiB;
  };
  take();
  const timer = setInterval(take, ms);
  return {
    max: () => max,
    stop: () => clearInterval(timer),
  };
}

export interface DownloadsResult {
  connections: number;
  failed: number;
  firstError: string | undefined;
  wallSeconds: number;
  /** Connect to greeting, over all connections (ms). */
  setupMedianMs: number;
  setupP99Ms: number;
  setupMaxMs: number;
}

/** `connections` concurrent connections to `port`, each downloading `bytesEach`; all opened at once. */
export async function concurrentDownloads(port: number, connections: number, bytesEach: number, timeoutMs: number): Promise<DownloadsResult> {
  const setup: number[] = [];
  const t0 = now();
  const one = async (): Promise<void> => {
    const start = now();
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    socket.on('error', () => {});
    const counter = new Counter(socket);
    try {
      await counter.until(1, timeoutMs, 'the greeting');
      setup.push(now() - start);
      socket.write(header(Op.Download, bytesEach));
      await counter.until(1 + bytesEach, timeoutMs, `${bytesEach} bytes`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          socket.destroy();
          resolve();
        }, 5000);
        socket.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        socket.end();
      });
    } finally {
      socket.destroy();
    }
  };
  const results = await Promise.allSettled(Array.from({ length: connections }, one));
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  return {
    connections,
    failed: failures.length,
    firstError: failures[0] ? String((failures[0].reason as Error)?.message ?? failures[0].reason) : undefined,
    wallSeconds: (now() - t0) / 1000,
    setupMedianMs: percentile(setup, 0.5),
    setupP99Ms: percentile(setup, 0.99),
    setupMaxMs: percentile(setup, 1),
  };
}

export interface ScaleResult extends DownloadsResult {
  bytesEach: number;
  /** RSS of the listener before its first connection. */
  idleMiB: number;
  /** VmHWM of the listener at the end. */
  peakMiB: number;
  /** Listener CPU seconds for the whole run. */
  cpuSeconds: number;
}

/** A fresh burrow listener, `connections` concurrent connections each moving `bytesEach` (download). */
export async function scale(servers: ServersReady, connections: number, bytesEach: number): Promise<ScaleResult> {
  const listener = await startBurrowListener(servers);
  const pid = listener.child.pid;
  try {
    const idleMiB = memory(pid).rssMiB;
    const cpu0 = cpuSeconds(pid);
    const downloads = await concurrentDownloads(listener.port, connections, bytesEach, 120_000);
    return { ...downloads, bytesEach, idleMiB, peakMiB: memory(pid).peakMiB, cpuSeconds: cpuSeconds(pid) - cpu0 };
  } finally {
    await listener.stop();
  }
}

/**
 * `connections` concurrent echoes through `port`, all opened at once: each sends the echo
 * command and `bytesEach` bytes (one shared buffer, written as fast as backpressure lets it),
 * half-closes, and must get exactly `bytesEach` bytes back after the greeting.
 */
export async function concurrentEchoes(port: number, connections: number, bytesEach: number, timeoutMs: number): Promise<DownloadsResult> {
  const setup: number[] = [];
  const t0 = now();
  const one = async (): Promise<void> => {
    const start = now();
    const socket = netConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
    socket.setNoDelay(true);
    socket.on('error', () => {});
    const counter = new Counter(socket);
    try {
      await counter.until(1, timeoutMs, 'the greeting');
      setup.push(now() - start);
      socket.write(header(Op.Echo, 0));
      await Promise.all([writeBytes(socket, bytesEach).then(() => socket.end()), counter.until(1 + bytesEach, timeoutMs, `${bytesEach} bytes echoed`)]);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => resolve(), 5000);
        socket.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (counter.received !== 1 + bytesEach) throw new Error(`${counter.received - 1} bytes echoed, ${bytesEach} sent`);
    } finally {
      socket.destroy();
    }
  };
  const results = await Promise.allSettled(Array.from({ length: connections }, one));
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  return {
    connections,
    failed: failures.length,
    firstError: failures[0] ? String((failures[0].reason as Error)?.message ?? failures[0].reason) : undefined,
    wallSeconds: (now() - t0) / 1000,
    setupMedianMs: percentile(setup, 0.5),
    setupP99Ms: percentile(setup, 0.99),
    setupMaxMs: percentile(setup, 1),
  };
}

/** A fresh burrow listener, `connections` echoes of `bytesEach` opened at once (the echo burst). */
export async function echoBurst(servers: ServersReady, connections: number, bytesEach: number): Promise<ScaleResult> {
  const listener = await startBurrowListener(servers);
  const pid = listener.child.pid;
  try {
    const idleMiB = memory(pid).rssMiB;
    const cpu0 = cpuSeconds(pid);
    const echoes = await concurrentEchoes(listener.port, connections, bytesEach, 120_000);
    // A failed echo is told by the client side only; burrow's last lines say what it saw.
    if (echoes.failed > 0) echoes.firstError = `${echoes.firstError ?? ''}; burrow's stderr ends: ${listener.stderr().trim().split('\n').slice(-3).join(' | ').slice(0, 400)}`;
    return { ...echoes, bytesEach, idleMiB, peakMiB: memory(pid).peakMiB, cpuSeconds: cpuSeconds(pid) - cpu0 };
  } finally {
    await listener.stop();
  }
}

/**
 * Reads `conn` at `bytesPerSecond` (pausing it between 100 ms ticks) while the source sends as
 * fast as backpressure lets it. Returns a stop function giving the rate achieved.
 */
function slowRead(conn: Conn, bytesPerSecond: number): { stop(): number } {
  const readable = conn.readable;
  let budget = 0;
  let read = 0;
  const start = now();
  readable.on('data', (chunk: Buffer) => {
    read += chunk.length;
    budget -= chunk.length;
    if (budget <= 0) readable.pause();
  });
  const tick = setInterval(() => {
    budget = Math.min(budget + bytesPerSecond / 10, bytesPerSecond / 10);
    if (budget > 0) readable.resume();
  }, 100);
  readable.pause();
  return {
    stop() {
      clearInterval(tick);
      return read / MiB / ((now() - start) / 1000);
    },
  };
}

export interface SlowResult {
  seconds: number;
  /** What the slow reader actually took, MiB/s. */
  consumerMiBps: number;
  /** Listener: largest sampled RSS while the slow consumer was alone. */
  listenerAloneMiB: number;
  /** Listener: VmHWM at the end, after `concurrent` downloads ran alongside the slow consumer. */
  listenerPeakMiB: number;
  listenerIdleMiB: number;
  concurrent: DownloadsResult;
  /** Peak RSS of a burrow stdio process whose stdout is read at the same slow rate. */
  stdioPeakMiB: number;
  /** The same for proxytunnel, when installed. */
  proxytunnelPeakMiB: number | undefined;
}

/**
 * Memory under a slow consumer: a burrow listener with one connection read at `bytesPerSecond`
 * while the source sends as fast as it can; half-way through, `concurrent` downloads of
 * `bytesEach` run through the same listener (the "200 connections plus one slow
 * consumer"). Alongside, a burrow stdio process (and proxytunnel) with a slow reader on stdout.
 */
export async function slowConsumer(
  servers: ServersReady,
  seconds: number,
  bytesPerSecond: number,
  concurrent: number,
  bytesEach: number,
  withProxytunnel: boolean,
): Promise<SlowResult> {
  const listener = await startBurrowListener(servers);
  const pid = listener.child.pid;
  const conns: Conn[] = [];
  const endless = 2 ** 50;
  try {
    const listenerIdleMiB = memory(pid).rssMiB;
    const socket = netConnect({ host: '127.0.0.1', port: listener.port });
    socket.on('error', () => {});
    const slowConn: Conn = { readable: socket, writable: socket, counter: new Counter(socket), clientPid: pid, close: async () => void socket.destroy() };
    conns.push(slowConn);
    await slowConn.counter.until(1, 15_000, 'the greeting');

    const stdioChild = spawnStdioClient('stdio', servers);
    const stdioConn: Conn = { readable: stdioChild.stdout!, writable: stdioChild.stdin!, counter: new Counter(stdioChild.stdout!), clientPid: stdioChild.pid, close: async () => void stdioChild.kill('SIGKILL') };
    stdioChild.stdin!.on('error', () => {});
    conns.push(stdioConn);
    await stdioConn.counter.until(1, 15_000, 'the stdio greeting');
    let ptConn: Conn | undefined;
    if (withProxytunnel) {
      const pt = spawnStdioClient('proxytunnel', servers);
      pt.stdin!.on('error', () => {});
      ptConn = { readable: pt.stdout!, writable: pt.stdin!, counter: new Counter(pt.stdout!), clientPid: pt.pid, close: async () => void pt.kill('SIGKILL') };
      conns.push(ptConn);
      await ptConn.counter.until(1, 15_000, 'the proxytunnel greeting');
    }

    const readers = conns.map((conn) => {
      conn.writable.write(header(Op.Download, endless));
      return slowRead(conn, bytesPerSecond);
    });
    const alone = rssSampler(pid);
    await new Promise((r) => setTimeout(r, (seconds * 1000) / 2));
    alone.stop();
    const during = rssSampler(pid);
    const [concurrentResult] = await Promise.all([
      concurrentDownloads(listener.port, concurrent, bytesEach, 120_000),
      new Promise((r) => setTimeout(r, (seconds * 1000) / 2)),
    ]);
    during.stop();
    const consumerMiBps = readers.map((r) => r.stop())[0] ?? Number.NaN;
    return {
      seconds,
      consumerMiBps,
      listenerIdleMiB,
      listenerAloneMiB: alone.max(),
      listenerPeakMiB: memory(pid).peakMiB,
      concurrent: concurrentResult,
      stdioPeakMiB: memory(stdioConn.clientPid).peakMiB,
      proxytunnelPeakMiB: ptConn ? memory(ptConn.clientPid).peakMiB : undefined,
    };
  } finally {
    for (const conn of conns) await conn.close();
    await listener.stop();
  }
}
