/**
 * Flag groups shared by commands (pomerium-cli's addTLSFlags / addServiceAccountFlags), and
 * their conversion into validated settings. Environment is read here, when used.
 */
import { readFileSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { UsageError } from '../errors.js';
import { LOG_LEVELS, type LogLevel } from '../output/log.js';
import { text } from '../output/messages.js';
import type { SessionLimits } from '../tunnel/limits.js';

export function addTlsOptions(command: Command): Command {
  return command
    .option('--disable-tls-verification', 'do not verify the proxy\'s TLS certificate (insecure; for testing)')
    .option('--alternate-ca-path <pem>', 'also trust the CA certificate(s) in this PEM file')
    .option('--ca-cert <pem-or-base64>', 'also trust this CA certificate (PEM text or base64 of it)')
    .option('--client-cert <pem>', 'client certificate for proxies that require mutual TLS')
    .option('--client-key <pem>', 'private key of --client-cert');
}

export function addServiceAccountOptions(command: Command): Command {
  return command
    .option('--service-account <jwt>', 'a service account token (visible to other local users in the process list: prefer the file or env var)')
    .option('--service-account-file <path>', 'read the service account token from this file (or set BURROW_SERVICE_ACCOUNT)');
}

export function addSignInOptions(command: Command): Command {
  return command
    .option('--browser-cmd <program>', 'run <program> <sign-in URL> instead of opening the default browser')
    .option('--no-browser', 'do not open a browser: print the sign-in address (and accept the final address pasted back)')
    .option('--login-timeout <seconds>', 'how long to wait for a browser sign-in', '300')
    .addOption(
      new Option('--credential-store <kind>', 'where to keep sign-ins (default: keychain if usable, else files; env BURROW_CREDENTIAL_STORE)').choices([
        'keychain',
        'file',
      ]),
    );
}

export function addForwardProxyOptions(command: Command): Command {
  return command
    .option('--proxy <url>', 'corporate forward proxy to reach the identity proxy through (default: HTTPS_PROXY / ALL_PROXY, minus NO_PROXY)')
    .option('--no-proxy', 'reach the identity proxy directly, whatever HTTPS_PROXY says');
}

export function addTransportOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--transport <kind>', 'how to reach the destination: auto picks connect for host:port and tcp+https://, websocket for wss://')
        .choices(['auto', 'connect', 'websocket'])
        .default('auto'),
    )
    .option('--ping-interval <seconds>', 'WebSocket keepalive ping interval; the tunnel closes when pongs stop (0 = off)', '30')
    .option('--header <header>', 'add "Name: value" to the tunnel request (repeatable; for gateways with their own API keys)', collect, []);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Header names burrow sets itself, or that would break the request. */
const RESERVED_HEADERS = new Set(['host', 'authorization', 'connection', 'upgrade', 'content-length', 'transfer-encoding', 'te', 'trailer']);
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
    if (RESERVED_HEADERS.has(lower) || lower.startsWith('sec-websocket-') || lower.startsWith('proxy-')) {
      throw new UsageError(text.reservedHeader(name), { hint: text.reservedHeaderHint });
    }
    return [name, value];
  });
}

/** How long tunnels may live and stall (`tcp`, and passed on by `ssh-config`). */
export function addSessionLimitOptions(command: Command): Command {
  return command
    .option(
      '--stall-timeout <seconds>',
      'close a tunnel when data waiting for the proxy does not move, or nothing comes back after the local side finished, for this long (0 = off)',
      DEFAULT_STALL_TIMEOUT,
    )
    .option('--max-duration <time>', 'close each tunnel when it is this old, e.g. 90s, 30m, 8h (the proxy checks policy only when a tunnel opens)')
    .option('--close-on-token-expiry', 'close each tunnel when the token it was opened with expires');
}

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

export function addLogOptions(command: Command): Command {
  return command
    .option('-v, --verbose', 'say more on stderr: every connection\'s steps (same as --log-level debug)')
    .addOption(new Option('--log-level <level>', 'how much to print on stderr').choices(LOG_LEVELS))
    .option('--json', 'write events and errors on stderr as JSON lines, for tools (see the README for the fields)');
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
      const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
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
