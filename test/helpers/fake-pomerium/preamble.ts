/**
 * The preamble that CONNECT (connect.ts) and WebSocket upgrades (websocket.ts) share, in this
 * order: record the request head, read and verify the Authorization token, the delay and stall
 * faults, a canned answer, the kind's own target checks, route lookup (404), policy (sign-in
 * redirect, 401, 403), the upstream dial (503). Every answer is counted per status and recorded
 * as an event. What is left to each kind is its success answer and the splice.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { countStatus, type ProxyContext } from './context.js';
import { cannedAnswer, type FakeRequest, proceedAfterFaults } from './faults.js';
import { type ParsedRoute, policy } from './policy.js';
import { readToken } from './tokens.js';
import { dial, endSoon, writeAnswer } from './wire.js';

/** Where a tunnel request wants to go. */
export interface Destination {
  /** Undefined: no such route (404). */
  route: ParsedRoute | undefined;
  /** The URL a sign-in redirect comes back to. */
  signInTarget: string;
}

/** An answer that ends a tunnel request. */
export interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

/** One tunnel request, as its kind sees it. */
export interface TunnelRequest<D extends Destination, U = Socket> {
  headers: IncomingHttpHeaders;
  /** The method kept in `requests` (CONNECT, or GET for every upgrade). */
  requestMethod: string;
  /** The method of its events. */
  eventMethod: string;
  /** The target kept in `requests` and events: the lower-case authority, or path and query. */
  target: string;
  /** What the `respond` hook is asked about. */
  hook: FakeRequest;
  /** Answers counted by status: `stats.connectsByStatus` or `stats.upgradesByStatus`. */
  byStatus: Record<number, number>;
  /** After the faults: the destination, or the answer that refuses a request of this kind. */
  resolve(): D | Answer;
  /** Opens the upstream (default: TCP to the route's `to`); rejects for a 503. */
  dial?(route: ParsedRoute): Promise<U>;
  /** Lets go of an upstream no one will use (default: destroy the TCP socket). */
  release?(upstream: U): void;
}

/** A request let through: the connected upstream; `count` records the success answer. */
export interface Admitted<D extends Destination, U = Socket> {
  upstream: U;
  destination: D;
  count(status: number): void;
}

/**
 * Runs the preamble for `request` arriving on `socket`. Resolves with the admitted tunnel, or
 * undefined once the request has been answered (or left unanswered: stall, proxy going down,
 * client gone while dialling).
 */
export async function admitTunnel<D extends Destination, U = Socket>(ctx: ProxyContext, socket: Socket, request: TunnelRequest<D, U>): Promise<Admitted<D, U> | undefined> {
  // The http server removed its own listeners when it handed the socket over.
  socket.on('error', () => socket.destroy());
  ctx.recordRequest(request.requestMethod, request.target, request.headers);
  const { token, claims } = readToken(request.headers, ctx.tokens);
  const count = (status: number): void => {
    countStatus(request.byStatus, status);
    ctx.record(request.eventMethod, request.target, status, token, claims);
  };
  const reply = (status: number, headers?: Record<string, string>, body?: string): void => {
    count(status);
    writeAnswer(socket, status, headers, body);
  };

  if (!(await proceedAfterFaults(ctx.settings, ctx.closing, request.hook))) return undefined;
  const raw = (data: Buffer | string): void => {
    count(0);
    endSoon(socket, data);
  };
  if (cannedAnswer(ctx.settings, request.hook, raw, reply)) return undefined;

  const destination = request.resolve();
  if ('status' in destination) return void reply(destination.status, destination.headers, destination.body);
  const { route, signInTarget } = destination;
  if (!route) return void reply(404);
  const refusal = policy(route, claims, ctx.settings.unauthenticatedStatus, () => ctx.signInUrl(signInTarget));
  if (refusal) return void reply(refusal.status, refusal.headers);
  let upstream: U;
  try {
    upstream = request.dial
      ? await request.dial(route)
      : ((await dial(route.toHost, route.toPort, ctx.settings.upstreamConnectTimeoutMs, (s) => ctx.track(s))) as U);
  } catch {
    return void reply(503);
  }
  if (socket.destroyed || ctx.closing.aborted) {
    if (request.release) request.release(upstream);
    else (upstream as Socket).destroy();
    return undefined;
  }
  return { upstream, destination, count };
}
