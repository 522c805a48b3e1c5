/** What the request handlers of one proxy share (built by startFakePomerium in index.ts). */
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { FakePomeriumOptions, FakePomeriumStats, FakeWsClosure } from './index.js';
import type { RouteTable } from './policy.js';
import type { TokenClaims, TokenIssuer } from './tokens.js';

/** The options with their defaults filled in. */
export type ProxySettings = FakePomeriumOptions &
  Required<Pick<FakePomeriumOptions, 'tokenTtlSeconds' | 'signInEmail' | 'unauthenticatedStatus' | 'upstreamConnectTimeoutMs'>>;

export interface ProxyContext {
  readonly settings: ProxySettings;
  /** `https://localhost:PORT` and the host part of it. */
  readonly url: string;
  readonly urlHost: string;
  readonly stats: FakePomeriumStats;
  readonly wsClosures: FakeWsClosure[];
  readonly routes: RouteTable;
  readonly tokens: TokenIssuer;
  /** Aborted when the proxy goes down (stop or close); a new one after start(). */
  readonly closing: AbortSignal;
  /** Adds an answered request to `events`. */
  record(method: string, target: string, status: number, token: string | undefined, claims: TokenClaims | null): void;
  /** Adds a request head to `requests`. */
  recordRequest(method: string, target: string, headers: IncomingHttpHeaders): void;
  /** Keeps `socket` to be destroyed on stop or close. */
  track(socket: Socket): void;
  /** Counts a tunnel as open; call the function returned once both its ends are closed. */
  openTunnel(): () => void;
  /** The sign-in page that comes back to `redirect`. */
  signInUrl(redirect: string): string;
}

/** Adds one to `table[status]`. */
export function countStatus(table: Record<number, number>, status: number): void {
  table[status] = (table[status] ?? 0) + 1;
}
