/**
 * UDP sessions: one datagram tunnel per local peer (source address), opened when the peer's
 * first datagram arrives and ended after a stretch of silence, at `--max-duration`, or at
 * shutdown. While a tunnel opens (a sign-in may take a minute), the peer's datagrams wait in a
 * short queue; past it they are dropped, as UDP allows. Nothing one peer does waits on another:
 * every tunnel opens and sends on its own, and a full queue anywhere drops rather than blocks.
 * The token outlives every session: a session ending is never a reason to sign in again.
 *
 * Two things keep a misbehaving peer or route from turning datagrams into connection attempts:
 * after a peer's tunnel fails to open, its datagrams are dropped for a hold-off (growing with each
 * failure in a row) instead of each opening another; and no more peers have a session at once
 * than the open-files limit leaves room for (the listener's descriptor `budget`), new ones beyond it being
 * dropped with one warning per spell of being full.
 */
import type { BurrowError } from '../errors.js';
import { toBurrowError } from '../errors.js';
import type { UdpListener, UdpPeer } from '../listen/udp.js';
import { type ConnectionFields, failureFields } from '../output/events.js';
import type { Logger } from '../output/log.js';
import { text } from '../output/messages.js';
import { formatAuthority, type Target } from '../target.js';
import type { TokenSource } from '../auth/token-source.js';
import type { DatagramTransport, DatagramTunnel } from './datagram.js';
import { armLimits, type SessionLimits } from './limits.js';
import { openSignedIn } from './session.js';

export interface UdpRelayOptions {
  target: Target;
  transport: DatagramTransport;
  tokens: TokenSource;
  logger: Logger;
  /** A session ends after this long without a datagram either way. */
  idleTimeoutMs: number;
  limits?: SessionLimits | undefined;
  /** Stops the relay: every session ends (reason `shutdown`). */
  signal: AbortSignal;
}

/**
 * A session whose peer has sent a single datagram (a DNS or NTP query and its answer) ends after
 * this much silence, or the idle timeout if shorter: such peers use a fresh source port per
 * query, and each would otherwise hold a connection to the proxy for the whole idle timeout.
 */
export const SINGLE_EXCHANGE_TIMEOUT_MS = 10_000;
/** Descriptors a session holds: its connection to the proxy (the local socket is shared). */
const SESSION_DESCRIPTORS = 1;
/** Datagrams (and bytes) a peer's session holds while its tunnel opens; the rest are dropped. */
const OPENING_QUEUE_DATAGRAMS = 64;
const OPENING_QUEUE_BYTES = 256 * 1024;

/**
 * After a peer's tunnel fails to open, its datagrams are dropped (and counted) for this long
 * instead of each trying again: 1 s, doubled with every failure in a row, at most 16 s. A second
 * is shorter than the first retry of the usual UDP clients (DNS resolvers wait 1-5 s, NTP and
 * syslog longer), so a passing failure (a 503 while a service restarts, the proxy coming back)
 * costs such a client nothing, while a peer sending hundreds of datagrams a second opens one
 * tunnel a second, not hundreds. The doubling is for failures that stay (403, 404, a refused
 * sign-in): one request to the proxy and one error line per peer every 16 s at most; a route
 * fixed meanwhile is in use within 16 s.
 */
export const HOLD_OFF_FIRST_MS = 1000;
export const HOLD_OFF_MAX_MS = 16_000;
/**
 * A peer quiet for this long after its hold-off ended starts again from the first hold-off (as
 * does one whose session ends any other way than breaking before anything came back).
 */
const HOLD_OFF_FORGET_MS = 60_000;

/** The hold-off after the `failures`-th failure in a row (1, 2, …). */
export function holdOffMs(failures: number): number {
  return Math.min(HOLD_OFF_MAX_MS, HOLD_OFF_FIRST_MS * 2 ** Math.min(30, Math.max(0, failures - 1)));
}

/** A peer whose last tunnel failed to open (or broke before anything came back). */
interface HoldOff {
  /** Failures in a row. */
  failures: number;
  /** Until when its datagrams are dropped. */
  until: number;
  /** Dropped since its last failure; reported by its next session. */
  dropped: number;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

interface Session {
  conn: number;
  peer: UdpPeer;
  base: ConnectionFields;
  startedAt: number;
  lastActivity: number;
  /** Datagrams from the peer so far (sent, queued or dropped). */
  fromPeer: number;
  /** Datagrams waiting for the tunnel to open. */
  queue: Buffer[] | undefined;
  queuedBytes: number;
  tunnel: DatagramTunnel | undefined;
  /** Dropped before the tunnel took them (queue full, tunnel failed) and replies the local socket refused. */
  droppedUp: number;
  droppedDown: number;
  deliveredDown: number;
  deliveredDownBytes: number;
  /** Set once the session is over, with why. */
  ending: { reason: 'idle_timeout' | 'shutdown' | 'session_limit' | 'remote_closed' | 'broken'; error?: BurrowError | undefined } | undefined;
  disarm: () => void;
}

/** Relays datagrams between `listener` and the proxy until `options.signal` fires and every session has ended. */
export async function relayUdp(listener: UdpListener, options: UdpRelayOptions): Promise<void> {
  const { target, transport, logger, signal } = options;
  const sessions = new Map<string, Session>();
  const running = new Set<Promise<void>>();
  let conn = 0;

  const end = (session: Session, ending: NonNullable<Session['ending']>): void => {
    if (session.ending) return;
    session.ending = ending;
    session.queue = undefined;
    session.tunnel?.close();
  };

  const holdOffs = new Map<string, HoldOff>();
  const budget = listener.budget;
  /** Set while new peers are refused for want of descriptors: what was dropped meanwhile. */
  let full: { datagrams: number } | undefined;

  /** Counts a failure of `key`'s peer and holds it off; returns for how long. */
  const holdOff = (key: string): number => {
    const held = holdOffs.get(key) ?? { failures: 0, until: 0, dropped: 0 };
    held.failures++;
    const ms = holdOffMs(held.failures);
    held.until = now() + ms;
    holdOffs.set(key, held);
    return ms;
  };

  const start = (peer: UdpPeer, key: string, first: Buffer): void => {
    const held = holdOffs.get(key);
    const base: ConnectionFields = {
      conn: ++conn,
      peer: formatAuthority(peer.address, peer.port),
      dest: target.destination.authority,
      proxy: target.proxy.origin,
      transport: transport.name,
    };
    const t = now();
    const session: Session = {
      conn,
      peer,
      base,
      startedAt: t,
      lastActivity: t,
      fromPeer: 1,
      queue: [first],
      queuedBytes: first.length,
      tunnel: undefined,
      droppedUp: held?.dropped ?? 0,
      droppedDown: 0,
      deliveredDown: 0,
      deliveredDownBytes: 0,
      ending: undefined,
      disarm: () => {},
    };
    if (held) held.dropped = 0;
    sessions.set(key, session);
    const run = runSession(session, key).finally(() => {
      if (sessions.get(key) === session) sessions.delete(key);
      running.delete(run);
      budget?.release(SESSION_DESCRIPTORS);
    });
    running.add(run);
  };

  const runSession = async (session: Session, key: string): Promise<void> => {
    const { base } = session;
    logger.event({ event: 'connecting', ...base });
    let opened: { tunnel: DatagramTunnel; token: string | undefined };
    try {
      opened = await openSignedIn((token) => transport.open({ target, token, signal }), { target, tokens: options.tokens, logger, signal }, base);
    } catch (error) {
      const dropped = session.droppedUp + (session.queue?.length ?? 0);
      session.ending ??= { reason: 'shutdown' };
      if (signal.aborted) {
        logger.event({ event: 'closed', ...base, ms: Math.round(now() - session.startedAt), bytes_up: 0, bytes_down: 0, ...datagramFields(0, 0, dropped, 0), reason: 'shutdown' });
        return;
      }
      // One failed event per failed open; the peer's datagrams wait out the hold-off, dropped.
      logger.event({ event: 'failed', ...base, ms: Math.round(now() - session.startedAt), ...failureFields(toBurrowError(error)), dropped_up: dropped, hold_off_ms: holdOff(key) });
      return;
    }
    const { tunnel, token } = opened;
    if (session.ending) {
      tunnel.close();
    } else {
      session.tunnel = tunnel;
      logger.event({ event: 'connected', ...base, ms: Math.round(now() - session.startedAt) });
      tunnel.onDatagram((payload) => {
        session.lastActivity = now();
        if (listener.send(payload, session.peer)) {
          session.deliveredDown++;
          session.deliveredDownBytes += payload.length;
        } else {
          session.droppedDown++;
        }
      });
      for (const payload of session.queue ?? []) if (!tunnel.send(payload)) session.droppedUp++;
      session.queue = undefined;
      session.queuedBytes = 0;
      session.disarm = armLimits(options.limits, { token, dest: target.destination.authority, logger }, (error) => end(session, { reason: 'session_limit', error }));
    }
    const openedAt = now();
    const failure = await tunnel.closed;
    session.disarm();
    if (!session.ending) {
      session.ending = failure ? { reason: 'broken', error: toBurrowError(failure) } : { reason: 'remote_closed' };
    }
    const counts = tunnel.counters();
    const { reason, error } = session.ending;
    // A tunnel that broke before the proxy sent anything back is no better than one that never
    // opened (a proxy that answers, then resets): the peer is held off as after a failed open.
    const heldOff = reason === 'broken' && counts.received === 0 && !signal.aborted ? holdOff(key) : undefined;
    if (heldOff === undefined) holdOffs.delete(key);
    logger.event({
      event: 'closed',
      ...base,
      ms: Math.round(now() - openedAt),
      bytes_up: counts.sentBytes,
      bytes_down: session.deliveredDownBytes,
      ...datagramFields(counts.sent, session.deliveredDown, session.droppedUp + counts.dropped, session.droppedDown),
      reason,
      ...(error ? failureFields(error) : {}),
      ...(heldOff === undefined ? {} : { hold_off_ms: heldOff }),
    });
  };

  listener.onDatagram((payload, peer) => {
    if (signal.aborted) return;
    const key = `${peer.address}|${peer.port}`;
    const session = sessions.get(key);
    if (!session || session.ending) {
      const held = holdOffs.get(key);
      if (held && now() < held.until) {
        held.dropped++;
        return;
      }
      if (budget && !budget.take(SESSION_DESCRIPTORS)) {
        if (!full) {
          full = { datagrams: 0 };
          logger.warn(text.udpFull(formatAuthority(peer.address, peer.port), budget.open, budget.limit));
        }
        full.datagrams++;
        return;
      }
      if (full) {
        logger.info(text.udpFullDropped(full.datagrams));
        full = undefined;
      }
      start(peer, key, payload);
      return;
    }
    session.fromPeer++;
    session.lastActivity = now();
    if (session.tunnel) {
      if (!session.tunnel.send(payload)) session.droppedUp++;
    } else if (session.queue && session.queue.length < OPENING_QUEUE_DATAGRAMS && session.queuedBytes + payload.length <= OPENING_QUEUE_BYTES) {
      session.queue.push(payload);
      session.queuedBytes += payload.length;
    } else {
      session.droppedUp++;
    }
  });

  // Silence is checked a few times per timeout, not per datagram: one timer for all sessions.
  const shortest = Math.min(options.idleTimeoutMs, SINGLE_EXCHANGE_TIMEOUT_MS);
  const sweep = setInterval(
    () => {
      const t = now();
      for (const session of sessions.values()) {
        if (session.ending || !session.tunnel) continue;
        const limit = session.fromPeer > 1 ? options.idleTimeoutMs : shortest;
        if (t - session.lastActivity >= limit) end(session, { reason: 'idle_timeout' });
      }
      for (const [key, held] of holdOffs) if (t - held.until >= HOLD_OFF_FORGET_MS) holdOffs.delete(key);
    },
    Math.max(25, Math.min(1000, shortest / 4)),
  );

  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(sweep);
  if (full) logger.info(text.udpFullDropped(full.datagrams));
  logger.event({ event: 'shutdown', open: sessions.size });
  for (const session of sessions.values()) end(session, { reason: 'shutdown' });
  await listener.close();
  await Promise.all(running);
}

/** The datagram counters of a UDP session's `closed` event. */
function datagramFields(up: number, down: number, droppedUp: number, droppedDown: number) {
  return { datagrams_up: up, datagrams_down: down, dropped_up: droppedUp, dropped_down: droppedDown };
}
