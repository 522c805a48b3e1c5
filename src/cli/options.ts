/**
 * Flag values turned into validated settings, and the parsers the flag table (flags.ts) checks
 * values with. The flags themselves are declared in flags.ts. Environment is read here, when used.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';
import type { LogLevel } from '../output/log.js';
import { errorWords, text } from '../output/messages.js';
import type { SessionLimits } from '../tunnel/limits.js';

/** Header names burrow sets itself, or that would break the request. */
const RESERVED_HEADERS = new Set(['host', 'connection', 'upgrade', 'content-length', 'transfer-encoding', 'te', 'trailer']);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Parses `--header "Name: value"` flags. Values may be secrets: they are never logged. */
export function parseHeaders(values: string[]): Array<[string, string]> {
  return values.map((raw) => {
    const colon = raw.indexOf(':');
    const name = colon > 0 ? raw.slice(0, colon).trim() : '';
    const value = colon > 0 ? raw.slice(colon + 1).trim() : '';
    // The input is shown by name only: the value may be an API key.
    if (!TOKEN.test(name) || /[\r\n\0]/.test(value)) throw new UsageError(text.invalidHeader(name || (raw.split(/\s/)[0] ?? "").slice(0, 40)), { hint: text.invalidHeaderHint });
    const lower = name.toLowerCase();
    // A token on the command line is in `ps` for every local user: each form is refused with its own way out.
    if (lower === 'authorization' || lower === 'x-pomerium-authorization') throw new UsageError(text.tokenHeader(name), { hint: text.tokenHeaderHint });
    if (lower === 'cookie' && /(^|[;\s])_pomerium/i.test(value)) throw new UsageError(text.sessionCookieHeader(name), { hint: text.sessionCookieHeaderHint });
    if (lower === 'user-agent') throw new UsageError(text.userAgentHeader(name), { hint: text.userAgentHeaderHint });
    if (lower.startsWith('proxy-')) throw new UsageError(text.forwardProxyHeader(name), { hint: text.forwardProxyHeaderHint });
    if (RESERVED_HEADERS.has(lower) || lower.startsWith('sec-websocket-')) {
      throw new UsageError(text.reservedHeader(name), { hint: text.reservedHeaderHint });
    }
    return [name, value];
  });
}

/** `--stall-timeout`'s default (`tcp`, and what `ssh-config` leaves out). */
export const DEFAULT_STALL_TIMEOUT = '60';

export interface SessionLimitValues {
  /** Commander fills in the default. */
  stallTimeout?: string;
  maxDuration?: string;
  closeOnTokenExpiry?: boolean;
}

/** `--stall-timeout` in ms; 0 = off. */
export function stallTimeout(values: SessionLimitValues): number {
  const value = values.stallTimeout ?? DEFAULT_STALL_TIMEOUT;
  return value === '0' ? 0 : parseSeconds('--stall-timeout', value, { min: 0.1, max: 86_400 });
}

/** The validated limits, or undefined when none was asked for. */
export function sessionLimits(values: SessionLimitValues): SessionLimits | undefined {
  if (values.maxDuration === undefined && !values.closeOnTokenExpiry) return undefined;
  return {
    ...(values.maxDuration === undefined ? {} : { maxDurationMs: parseDuration('--max-duration', values.maxDuration), maxDurationLabel: values.maxDuration.trim() }),
    ...(values.closeOnTokenExpiry ? { closeOnTokenExpiry: true } : {}),
  };
}

export interface ServiceAccountValues {
  serviceAccount?: string;
  serviceAccountFile?: string;
}

/** The machine token, if one was given: flag, then file, then BURROW_SERVICE_ACCOUNT. */
export function serviceAccountToken(values: ServiceAccountValues, env: NodeJS.ProcessEnv): string | undefined {
  if (values.serviceAccount !== undefined && values.serviceAccountFile !== undefined) {
    throw new UsageError(text.conflictingFlags('--service-account', '--service-account-file'), { hint: text.conflictingFlagsHint });
  }
  let token: string | undefined;
  let source: string;
  if (values.serviceAccount !== undefined) {
    token = values.serviceAccount;
    source = '--service-account';
  } else if (values.serviceAccountFile !== undefined) {
    const path = values.serviceAccountFile;
    source = `--service-account-file ${JSON.stringify(path)}`;
    try {
      token = readFileSync(path, 'utf8');
    } catch (error) {
      const reason = errorWords((error as NodeJS.ErrnoException).code ?? '', (error as Error).message);
      throw new UsageError(text.fileUnreadable('service account file', path, reason), {
        code: 'BURROW_FILE_UNREADABLE',
        hint: text.fileUnreadableHint,
        cause: error,
      });
    }
  } else if (env.BURROW_SERVICE_ACCOUNT !== undefined) {
    token = env.BURROW_SERVICE_ACCOUNT;
    source = 'BURROW_SERVICE_ACCOUNT';
  } else {
    return undefined;
  }
  const trimmed = token.trim();
  if (trimmed === '') throw new UsageError(text.emptyServiceAccount(source), { hint: text.emptyServiceAccountHint });
  return trimmed;
}

/** Parses a positive number of seconds into milliseconds. */
export function parseSeconds(flag: string, value: string, { min = 0.001, max = 86_400 } = {}): number {
  const n = Number(value);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(value.trim()) || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(text.invalidNumber(flag, value, `a number of seconds from ${min} to ${max}`), { hint: text.invalidNumberHint(flag) });
  }
  return Math.round(n * 1000);
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** setTimeout's ceiling (2^31 - 1 ms) rounded down to whole days. */
const MAX_DURATION_MS = 24 * UNIT_MS.d!;

/**
 * Parses a duration: plain seconds (`90`, `1.5`) or numbers with units, alone or combined
 * (`90s`, `30m`, `8h`, `1d`, `1h30m`). From 1 s to 24 days. Returns milliseconds.
 */
/**
 * `--idle-timeout`'s default: RFC 4787's shortest allowed NAT binding lifetime for UDP, which
 * every UDP application already lives with (WireGuard's keepalive is 25 s, games send many
 * times a second); DNS and other one-datagram exchanges end after 10 s instead (udp-relay.ts).
 */
export const DEFAULT_IDLE_TIMEOUT = '2m';

export function parseDuration(flag: string, value: string): number {
  const input = value.trim().toLowerCase();
  let ms = Number.NaN;
  if (/^[0-9]+(\.[0-9]+)?$/.test(input)) {
    ms = Number(input) * 1000;
  } else if (/^([0-9]+(\.[0-9]+)?[smhd])+$/.test(input)) {
    ms = 0;
    for (const [, n, unit] of input.matchAll(/([0-9]+(?:\.[0-9]+)?)([smhd])/g)) ms += Number(n) * UNIT_MS[unit!]!;
  }
  if (!Number.isFinite(ms) || ms < 1000 || ms > MAX_DURATION_MS) {
    throw new UsageError(text.invalidDuration(flag, value), { hint: text.invalidDurationHint(flag) });
  }
  return Math.round(ms);
}

export function logLevel(values: { verbose?: boolean; logLevel?: LogLevel }, fallback: LogLevel): LogLevel {
  if (values.logLevel) return values.logLevel;
  if (values.verbose) return 'debug';
  return fallback;
}

/** `--connect-timeout` in ms (`tcp` and `login` check the same range). */
export function connectTimeout(value: string): number {
  return parseSeconds('--connect-timeout', value, { min: 0.1, max: 3600 });
}

/** `--ping-interval` in ms; 0 = off (as `tcp` checks it). */
export function pingInterval(value: string): number {
  return value === '0' ? 0 : parseSeconds('--ping-interval', value, { min: 0.05, max: 3600 });
}

/** ssh_config host patterns: names with * ? and ! negation, several separated by spaces. */
const HOST_PATTERN = /^!?[A-Za-z0-9*?._-]+(?: +!?[A-Za-z0-9*?._-]+)*$/;

/** An ssh `Host` pattern (`ssh-config`'s argument or `--host`), trimmed. */
export function parseHostPattern(value: string): string {
  if (!HOST_PATTERN.test(value.trim())) throw new UsageError(text.badHostPattern(value), { hint: text.badHostPatternHint });
  return value.trim();
}

/** `ssh-config --user`: a plain user name. */
export function parseSshUser(value: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(value)) throw new UsageError(text.badSshUser(value), { hint: text.badSshUserHint });
  return value;
}

/** `ssh-config --server-alive-interval`: whole seconds, 0 to 86400 (0 = leave ssh's default). */
/** ssh's ControlPersist: yes, no, or a time (`600`, `10m`, `1h30m`); returned as written, lower-cased. */
export function parseControlPersist(value: string): string {
  const v = value.trim().toLowerCase();
  if (!/^(yes|no|([0-9]+[smhdw]?)+)$/.test(v) || v.length > 16) {
    throw new UsageError(text.invalidControlPersist(value), { hint: text.invalidControlPersistHint });
  }
  return v;
}

export function parseServerAliveInterval(value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) > 86_400) {
    throw new UsageError(text.invalidNumber('--server-alive-interval', value, 'whole seconds, 0 to 86400'), {
      hint: text.invalidNumberHint('--server-alive-interval'),
    });
  }
  return Number(value);
}
