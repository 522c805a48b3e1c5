/**
 * What tests make the proxy do instead of its normal handling: canned answers from the
 * `respond` hook (well-formed or raw bytes), a delay before each tunnel request, or never
 * answering one.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';

/** The parts of a request that the {@link FakePomeriumOptions.respond} hook sees. */
export interface FakeRequest {
  method: string;
  /** The authority (`host:port`) for CONNECT, else path and query. */
  url: string;
  headers: IncomingHttpHeaders;
  /** Set for an HTTP Upgrade request (method `GET`), e.g. a WebSocket handshake. */
  upgrade?: true;
}

/**
 * What the {@link FakePomeriumOptions.respond} hook may answer: a well-formed HTTP response,
 * or raw bytes written to the TLS stream before it is ended (for malformed answers).
 */
export type CannedResponse =
  | { status: number; headers?: Record<string, string>; body?: string }
  | { raw: Buffer | string };

/** The fault options of {@link FakePomeriumOptions} that this file acts on. */
export interface FaultOptions {
  respond?: (request: FakeRequest) => CannedResponse | undefined;
  onConnectDelayMs?: number;
  stallConnect?: boolean;
}

/**
 * The delay and stall faults of a tunnel request (CONNECT or upgrade): waits `onConnectDelayMs`,
 * then says whether to go on. False when the proxy went down while waiting, or with
 * `stallConnect` (the socket then stays open until the client or close() ends it).
 */
export async function proceedAfterFaults(options: FaultOptions, closing: AbortSignal): Promise<boolean> {
  if (options.onConnectDelayMs) {
    try {
      await delay(options.onConnectDelayMs, undefined, { signal: closing });
    } catch {
      return false; // close() was called while we waited
    }
  }
  return !options.stallConnect;
}

/**
 * Asks the `respond` hook about `request`; when it answers, hands the answer to `raw` or
 * `answer` and returns true (the normal handling is then skipped).
 */
export function cannedAnswer(
  options: FaultOptions,
  request: FakeRequest,
  raw: (data: Buffer | string) => void,
  answer: (status: number, headers?: Record<string, string>, body?: string) => void,
): boolean {
  const canned = options.respond?.(request);
  if (!canned) return false;
  if ('raw' in canned) raw(canned.raw);
  else answer(canned.status, canned.headers, canned.body);
  return true;
}
