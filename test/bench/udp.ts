/**
 * The UDP row of the benchmark: `burrow udp` (one local socket, CONNECT-UDP through the local
 * proxy to a UDP echo) against the same echo reached directly, in the same run. Two figures:
 *
 * - datagrams per second: a windowed echo, `window` 64-byte datagrams in flight at all times,
 *   each reply releasing the next; a datagram not back within LOSS_MS counts as lost and frees its
 *   slot, so a drop costs a little time, never the run;
 * - round trip: one 64-byte datagram at a time, median and p99 after unrecorded warm-up ones.
 *
 * The load generator is this process, one socket (so burrow sees one peer, one tunnel).
 */
import { createSocket, type Socket } from 'node:dgram';
import { startListener, type BurrowProcess } from '../helpers/burrow.js';
import { benchCacheDir } from './clients.js';
import { cpuSeconds } from './proc.js';
import { UDP_BENCH_DEST, type ServersReady } from './protocol.js';

/** Payload bytes of every datagram. */
export const UDP_PAYLOAD = 64;
/** A datagram not echoed within this long is counted lost and its slot reused. */
const LOSS_MS = 500;

const now = (): number => Number(process.hrtime.bigint()) / 1e6;

export interface UdpRateRun {
  datagrams: number;
  seconds: number;
  perSecond: number;
  lost: number;
  /** CPU seconds of the burrow process during the run (NaN for the direct path). */
  clientCpu: number;
  /** CPU seconds of the proxy's process (the echo included) and of the load generator. */
  proxyCpu: number;
  loadgenCpu: number;
}

async function boundSocket(): Promise<Socket> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  for (const set of [socket.setRecvBufferSize, socket.setSendBufferSize]) {
    try {
      set.call(socket, 4 * 1024 * 1024);
    } catch {
      // the kernel's limit: its default is enough for a window of 64-byte datagrams
    }
  }
  return socket;
}

const close = (socket: Socket): Promise<void> => new Promise((resolve) => socket.close(() => resolve()));

/** `count` datagrams through the echo at `port`, `window` in flight; the first `warmup` are not timed. */
export async function udpRate(
  port: number,
  count: number,
  window: number,
  pids: { client: number | undefined; proxy: number },
  timeoutMs = 60_000,
  warmup = 500,
): Promise<UdpRateRun> {
  const socket = await boundSocket();
  try {
    // Sequence numbers in the first 4 bytes; the rest is filler.
    const template = Buffer.alloc(UDP_PAYLOAD, 0x61);
    const inFlight = new Map<number, number>();
    let next = 0;
    let done = 0;
    let lost = 0;
    const total = warmup + count;
    let t0 = 0;
    let cpu0 = { client: Number.NaN, proxy: Number.NaN, loadgen: process.cpuUsage() };
    const send = (): void => {
      const message = Buffer.from(template);
      message.writeUInt32BE(next);
      inFlight.set(next, now());
      next++;
      socket.send(message, port, '127.0.0.1');
    };
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`udp rate: ${done} of ${total} datagrams in ${timeoutMs} ms`)), timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        clearInterval(sweep);
        resolve();
      };
      const settle = (): void => {
        done++;
        if (done === warmup) {
          t0 = now();
          cpu0 = { client: cpuSeconds(pids.client), proxy: cpuSeconds(pids.proxy), loadgen: process.cpuUsage() };
        }
        if (done >= total) return finish();
        if (next < total) send();
      };
      socket.on('message', (message) => {
        if (message.length < 4 || !inFlight.delete(message.readUInt32BE(0))) return;
        settle();
      });
      const sweep = setInterval(() => {
        const oldest = now() - LOSS_MS;
        for (const [seq, sent] of inFlight) {
          if (sent > oldest) continue;
          inFlight.delete(seq);
          if (done >= warmup) lost++;
          settle();
        }
      }, 50);
      for (let i = 0; i < Math.min(window, total); i++) send();
    });
    const seconds = (now() - t0) / 1000;
    const loadgen = process.cpuUsage(cpu0.loadgen);
    return {
      datagrams: count,
      seconds,
      perSecond: count / seconds,
      lost,
      clientCpu: cpuSeconds(pids.client) - cpu0.client,
      proxyCpu: cpuSeconds(pids.proxy) - cpu0.proxy,
      loadgenCpu: (loadgen.user + loadgen.system) / 1e6,
    };
  } finally {
    await close(socket);
  }
}

/** Round-trip times in µs of `rounds` single 64-byte datagrams, after `warmup` unrecorded ones. */
export async function udpRoundTrips(port: number, rounds: number, warmup = 100, timeoutMs = 60_000): Promise<number[]> {
  const socket = await boundSocket();
  try {
    const message = Buffer.alloc(UDP_PAYLOAD, 0x62);
    const samples: number[] = [];
    const deadline = now() + timeoutMs;
    for (let i = -warmup; i < rounds; i++) {
      if (now() > deadline) throw new Error(`udp round trips: ${samples.length} of ${rounds} in ${timeoutMs} ms`);
      const sent = process.hrtime.bigint();
      const back = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          socket.off('message', onMessage);
          resolve(false);
        }, LOSS_MS);
        const onMessage = (): void => {
          clearTimeout(timer);
          resolve(true);
        };
        socket.once('message', onMessage);
        socket.send(message, port, '127.0.0.1');
      });
      // A lost one is not a round trip: it is skipped, not timed at LOSS_MS.
      if (back && i >= 0) samples.push(Number(process.hrtime.bigint() - sent) / 1000);
    }
    return samples;
  } finally {
    await close(socket);
  }
}

/** A `burrow udp` listener to the bench's UDP echo, token from the environment. */
export function startBurrowUdp(servers: ServersReady): Promise<BurrowProcess & { port: number }> {
  return startListener(
    [UDP_BENCH_DEST, '--pomerium-url', servers.proxyUrl, '--alternate-ca-path', servers.caPath, '--log-level', 'warn'],
    { env: { BURROW_SERVICE_ACCOUNT: servers.token, XDG_CACHE_HOME: benchCacheDir() } },
    'udp',
  );
}
