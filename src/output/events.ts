/**
 * What burrow reports while it runs, as one typed vocabulary. Each event is plain data whose
 * field names are the `--json` schema (snake_case, stable: tools match on them); log.ts renders
 * an event either as a JSON line or as human text (through messages.ts), at the level below.
 *
 * Every connection that emits `connecting` ends with exactly one `closed` or `failed`.
 */
import type { BurrowError } from '../errors.js';

/** Fields every per-connection event carries. */
export interface ConnectionFields {
  /** The connection's number in this process, from 1. */
  conn: number;
  /** The local peer: `127.0.0.1:50312` in listener mode, `stdio` in stdio mode. */
  peer: string;
  /** The destination asked of the proxy, `host:port` (or the wss:// URL's host:port). */
  dest: string;
  /** The identity proxy's origin, `https://host:port`. */
  proxy: string;
  /** `connect`, `websocket`, or `connect-udp` (a UDP session). */
  transport: string;
}

/** What a failure looks like to a tool: the stable code and exit code, the line a human sees. */
export interface FailureFields {
  code: string;
  exit_code: number;
  message: string;
  hint?: string | undefined;
}

/**
 * Why a tunnel that opened is over:
 * - `local_closed`: the local side (ssh, git, the client of the listener) ended or went away first;
 * - `remote_closed`: the far side (the service behind the proxy, or the proxy) ended first;
 * - `shutdown`: burrow was stopped (Ctrl-C, SIGTERM) while the tunnel was open or opening;
 * - `broken`: the tunnel failed (reset, keepalive lost): the event carries the failure fields;
 * - `session_limit`: burrow closed it at `--max-duration` or when its token expired
 *   (`--close-on-token-expiry`): the event carries the failure fields (BURROW_SESSION_LIMIT);
 * - `idle_timeout`: a UDP session carried no datagram either way for `--idle-timeout`.
 */
export type CloseReason = 'local_closed' | 'remote_closed' | 'shutdown' | 'broken' | 'session_limit' | 'idle_timeout';

/**
 * What a UDP session carried, in its `closed` event: datagrams sent to the proxy and written to
 * the local peer, and those dropped on the way up (too large, queued behind a tunnel still
 * opening or backed up) and down (the local socket's send queue full). Byte counts are payloads.
 */
export interface DatagramFields {
  datagrams_up: number;
  datagrams_down: number;
  dropped_up: number;
  dropped_down: number;
}

export type BurrowEvent =
  /** Listener mode is ready; `address` is also printed alone on stdout. */
  | { event: 'listening'; address: string; dest: string; proxy: string; transport: string }
  /**
   * `burrow proxy` is ready: it tunnels names under `domains`, through `proxy` (`--pomerium-url`),
   * or through each host's own proxy on port 443 (`null`). `address` is also printed on stdout.
   */
  | { event: 'listening'; address: string; domains: string[]; proxy: string | null; transport: string }
  /**
   * `burrow proxy` turned a request down without contacting anyone: a destination outside
   * `--domain` (BURROW_DESTINATION_REFUSED), or a request it cannot read or does not serve
   * (BURROW_PROXY_REQUEST). `dest` is the destination asked for, when the request got that far;
   * `protocol` is what the client spoke (`http`, `socks5`, `socks4`).
   */
  | ({ event: 'refused'; conn: number; peer: string; dest: string | null; protocol: string } & FailureFields)
  /** A connection was accepted (or stdio started) and its tunnel is being opened. */
  | ({ event: 'connecting' } & ConnectionFields)
  /** The proxy answered 302/401: burrow signs in (or waits for the sign-in in progress), then retries once. */
  | ({ event: 'sign_in_required'; status: number | null } & ConnectionFields)
  /**
   * A browser sign-in started: `url` is the proxy's sign-in address, opened in the browser
   * (`browser_opened`) or printed for the user to open (--no-browser, or no browser found);
   * `wait_s` is how long burrow waits for it (--login-timeout). Shown at every level but silent.
   */
  | { event: 'sign_in'; proxy: string; url: string; browser_opened: boolean; wait_s: number }
  /** The tunnel is open; `ms` is the time since `connecting`, sign-in included. */
  | ({ event: 'connected'; ms: number } & ConnectionFields)
  /**
   * The tunnel is over; `ms` is how long it was open (since `connecting` if it never opened).
   * Byte counts are the local side's (`bytes_up`: read from it, sent to the proxy; `bytes_down`:
   * written to it); `null` when the stream keeps no count (stdout redirected to a file).
   */
  | ({
      event: 'closed';
      ms: number;
      bytes_up: number | null;
      bytes_down: number | null;
      reason: CloseReason;
      /** A UDP session that broke before the proxy sent anything back: its peer is held off as after a failed open. */
      hold_off_ms?: number;
    } & ConnectionFields &
      Partial<DatagramFields> &
      Partial<FailureFields>)
  /**
   * The tunnel could not be opened; `ms` is the time since `connecting`. A UDP session's also
   * says how many of the peer's datagrams never reached the proxy (`dropped_up`: queued while it
   * opened, or dropped during the hold-off after the peer's previous failure) and for how long
   * the peer's datagrams are now dropped before its next attempt (`hold_off_ms`).
   */
  | ({ event: 'failed'; ms: number; dropped_up?: number; hold_off_ms?: number } & ConnectionFields & FailureFields)
  /** The listener was told to stop (`open` tunnels are being closed). */
  | { event: 'shutdown'; open: number }
  /** burrow itself failed (bad flags, cannot listen, …): the process exits with `exit_code`. */
  | ({ event: 'error' } & FailureFields)
  /**
   * Any other line burrow prints: warnings, sign-in instructions (`notice`: what a person must
   * see to go on, shown at every level but silent).
   */
  | { event: 'log'; level: 'error' | 'warn' | 'notice' | 'info' | 'debug'; message: string };

export type EventName = BurrowEvent['event'];

/**
 * How an event ranks against `--log-level`: a severity, or `notice` for what a person must see
 * to go on (a sign-in address, a prompt). A notice is no error: it shows at every level but
 * silent, and says nothing about anything having gone wrong.
 */
export type Visibility = 'notice' | 'error' | 'warn' | 'info' | 'debug';

/** The visibility of an event; failures are always errors. */
export function eventLevel(e: BurrowEvent): Visibility {
  switch (e.event) {
    case 'failed':
    case 'error':
      return 'error';
    case 'closed':
      return e.reason === 'broken' || e.reason === 'session_limit' ? 'error' : 'info';
    case 'refused':
      // A client's request, not burrow's failure: the listener keeps serving.
      return 'warn';
    case 'connecting':
      // Followed within milliseconds by connected or failed: only useful when chasing a hang.
      return 'debug';
    case 'sign_in':
      // Without it the user cannot sign in at all.
      return 'notice';
    case 'log':
      return e.level;
    default:
      return 'info';
  }
}

/** The fields a failure contributes to an event. */
export function failureFields(error: BurrowError): FailureFields {
  return { code: error.code, exit_code: error.exitCode, message: error.message, hint: error.hint };
}
