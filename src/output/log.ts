/**
 * Human output. Stdout belongs to the tunnel (stdio mode) or to one machine-readable line
 * (listener mode), so everything here goes to stderr, through `redact`, coloured only when
 * stderr is a terminal (chalkStderr honours NO_COLOR / FORCE_COLOR).
 */
import { chalkStderr } from 'chalk';
import type { BurrowError } from '../errors.js';
import { redact } from './redact.js';

export const LOG_LEVELS = ['silent', 'error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Logger {
  readonly level: LogLevel;
  error(message: string): void;
  warn(message: string): void;
  info(message: string): void;
  debug(message: string): void;
  /** Something the user must see to go on (a sign-in URL): shown at every level but silent. */
  notice(message: string): void;
  /** Prints a BurrowError as one line: what went wrong, then what to do about it. */
  failure(error: BurrowError): void;
}

export interface LoggerOptions {
  level: LogLevel;
  /** Where lines go; tests pass a collector. */
  write?: (line: string) => void;
}

const rank: Record<LogLevel, number> = { silent: 0, error: 1, warn: 2, info: 3, debug: 4 };

/** Formats an error as the single line users see (also used by ssh, which shows our stderr). */
export function formatFailure(error: BurrowError, color = false): string {
  const c = color ? chalkStderr : undefined;
  const head = c ? c.red.bold('error:') : 'error:';
  const hint = error.hint ? ` ${c ? c.dim('—') : '—'} ${c ? c.yellow(error.hint) : error.hint}` : '';
  return redact(`burrow: ${head} ${error.message}${hint}`);
}

export function createLogger(options: LoggerOptions): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const color = options.write === undefined && chalkStderr.level > 0;
  const enabled = (level: LogLevel) => rank[level] <= rank[options.level];
  const emit = (level: LogLevel, label: string, message: string) => {
    if (enabled(level)) write(redact(`burrow: ${label}${message}`));
  };
  return {
    level: options.level,
    error: (m) => emit('error', color ? `${chalkStderr.red.bold('error:')} ` : 'error: ', m),
    warn: (m) => emit('warn', color ? `${chalkStderr.yellow('warning:')} ` : 'warning: ', m),
    info: (m) => emit('info', '', m),
    debug: (m) => emit('debug', color ? chalkStderr.dim('debug: ') : 'debug: ', m),
    notice: (m) => emit('error', '', m),
    failure: (e) => {
      if (enabled('error')) write(formatFailure(e, color));
    },
  };
}
