/**
 * Everything burrow says on stderr. Stdout belongs to the tunnel (stdio mode) or to one
 * machine-readable line (listener mode), so every line goes to stderr, through `redact`, either
 * as human text (coloured per color.ts) or, with `--json`, as one JSON object per line
 * (events.ts is the vocabulary). A spinner shows while waiting for a person, on a terminal only.
 */
import type { ChalkInstance } from 'chalk';
import type { BurrowError } from '../errors.js';
import { stderrChalk } from './color.js';
import { type BurrowEvent, eventLevel, failureFields, type Visibility } from './events.js';
import { duration, formatBytes, formatMs, printableLine } from './format.js';
import { text } from './messages.js';
import { redact } from './redact.js';

export const LOG_LEVELS = ['silent', 'error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Logger {
  readonly level: LogLevel;
  /** True with --json: tools read stderr, so nothing but JSON lines may go there. */
  readonly json: boolean;
  error(message: string): void;
  warn(message: string): void;
  info(message: string): void;
  debug(message: string): void;
  /** Something the user must see to go on (a sign-in URL): shown at every level but silent. */
  notice(message: string): void;
  /** Prints a BurrowError as one line: what went wrong, then what to do about it. */
  failure(error: BurrowError): void;
  /** Reports an event (events.ts) at its level. */
  event(event: BurrowEvent): void;
  /**
   * Shows `message` with a spinner and the seconds waited, on a terminal only (not with --json,
   * not when stderr is a pipe or a file, not at --log-level silent). Returns what removes it.
   */
  spinner(message: string): () => void;
}

/** Where lines go: process.stderr, or a test's stand-in. */
export interface LogStream {
  write(chunk: string): unknown;
  isTTY?: boolean | undefined;
  /** The terminal's width (a TTY's `columns`): the spinner's line is cut to it. */
  columns?: number | undefined;
}

interface CommonLoggerOptions {
  level: LogLevel;
  /** JSON lines instead of human text (--json). */
  json?: boolean | undefined;
  /** The clock for JSON `time` fields and the spinner. */
  now?: () => number;
  /**
   * The tunnel of `burrow up` this logger speaks for: a `tunnel` field in every JSON line, and
   * `name: ` after `burrow: ` in every human one.
   */
  tunnel?: string | undefined;
}

/**
 * Where a logger writes: a stream (the process's stderr, from the CLI's Runtime) whose isTTY
 * decides colour and the spinner, with the environment for NO_COLOR / FORCE_COLOR / TERM; or a
 * function that collects lines (no colour, no spinner).
 */
export type LoggerOptions = CommonLoggerOptions &
  ({ stream: LogStream; env: NodeJS.ProcessEnv; write?: undefined } | { write: (line: string) => void; env?: NodeJS.ProcessEnv; stream?: undefined });

const rank: Record<LogLevel, number> = { silent: 0, error: 1, warn: 2, info: 3, debug: 4 };
/** Notices rank with errors (shown at every level but silent) without being errors. */
const visibilityRank: Record<Visibility, number> = { notice: 1, error: 1, warn: 2, info: 3, debug: 4 };

/** Formats a failure as the single line users see (also used by ssh, which shows our stderr). */
export function formatFailure(
  error: { message: string; hint?: string | undefined },
  color?: ChalkInstance | boolean,
  /** Which connection failed (listener mode): `#3 127.0.0.1:50312: `. */
  prefix = '',
  /** A refused request is a warning: the client's, not burrow's. */
  level: 'error' | 'warning' = 'error',
): string {
  const c = color === true ? stderrChalk({ FORCE_COLOR: '1' }, true) : color || undefined;
  const word = `${level}:`;
  const head = `${prefix && c ? c.dim(prefix) : prefix}${c ? (level === 'error' ? c.red.bold(word) : c.yellow(word)) : word}`;
  const message = printableLine(error.message);
  const hintText = error.hint === undefined ? undefined : printableLine(error.hint);
  const hint = hintText ? ` ${c ? c.dim('—') : '—'} ${c ? c.yellow(hintText) : hintText}` : '';
  return redact(`burrow: ${head} ${message}${hint}`);
}

/** One event as a JSON line: `event`, `time` (and `tunnel`, in `burrow up`) first, then the event's own fields. */
export function formatJson(event: BurrowEvent, nowMs: number, tunnel?: string): string {
  const { event: name, ...fields } = event;
  const time = new Date(nowMs).toISOString();
  return redact(JSON.stringify(tunnel === undefined ? { event: name, time, ...fields } : { event: name, time, tunnel, ...fields }));
}

/** One event as human text (without the `burrow: ` prefix and level label). */
export function formatEvent(event: BurrowEvent, c?: ChalkInstance): string {
  const prefix = (e: { conn: number; peer: string }) => {
    const p = text.connectionPrefix(e.conn, e.peer);
    return c ? c.dim(p) : p;
  };
  switch (event.event) {
    case 'listening':
      return 'domains' in event
        ? text.proxyListening(event.address, event.domains.join(', '), event.proxy)
        : text.listening(event.address, event.dest, event.proxy);
    case 'refused':
      return `${prefix(event)}${printableLine(event.message)}`;
    case 'connecting':
      return `${prefix(event)}${text.connecting(event.dest, event.proxy, event.transport)}`;
    case 'sign_in_required':
      return `${prefix(event)}${text.signInRequired(event.proxy, event.status)}`;
    case 'connected':
      return `${prefix(event)}${text.connected(event.dest, formatMs(event.ms))}`;
    case 'closed': {
      const bytes = (n: number | null) => (n === null ? text.unknownBytes : formatBytes(n));
      const datagrams =
        event.datagrams_up === undefined
          ? undefined
          : { up: event.datagrams_up, down: event.datagrams_down ?? 0, dropped: (event.dropped_up ?? 0) + (event.dropped_down ?? 0) };
      return `${prefix(event)}${text.closed(formatMs(event.ms), bytes(event.bytes_up), bytes(event.bytes_down), event.reason, datagrams)}`;
    }
    case 'sign_in':
      return event.browser_opened ? text.browserOpened(event.proxy, duration(event.wait_s), event.url) : text.openThisUrl(event.proxy, event.url);
    case 'shutdown':
      return text.shuttingDown(event.open);
    case 'failed':
    case 'error':
    case 'log':
      // Messages may carry text from outside (arguments, a proxy's answer): one line, inert.
      return printableLine(event.message);
  }
}

/**
 * The spinner's message and time cut to fit `columns` with its glyph and spaces, one column
 * short of the edge (writing the last column makes some terminals wrap). Characters are counted
 * as one column each (the catalogue's sentences are plain text).
 */
export function fitSpinner(message: string, waited: string, columns: number | undefined): [string, string] {
  if (!columns || columns <= 0) return [message, waited];
  const room = columns - 1 - 1; // the edge, the glyph
  const chars = [...message];
  if (chars.length + waited.length + 2 <= room) return [message, waited];
  const forMessage = room - waited.length - 2;
  if (forMessage >= 2) return [`${chars.slice(0, forMessage - 1).join('')}…`, waited];
  // Too narrow for any of the message: the time alone, if even that fits.
  return ['', waited.length + 1 <= room ? waited : ''];
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const CLEAR_LINE = '\r\x1b[K';

export function createLogger(options: LoggerOptions): Logger {
  const env = options.env ?? {};
  const stream: LogStream | undefined = options.stream;
  const tty = stream?.isTTY === true;
  const c = stream && !options.json ? stderrChalk(env, tty) : undefined;
  const json = options.json === true;
  const now = options.now ?? Date.now;
  const tunnel = options.tunnel;
  const tag = tunnel === undefined ? '' : `${tunnel}: `;
  let spinning = false;
  const write =
    options.write ??
    ((line: string) => {
      // A line written while the spinner turns replaces it; the next frame redraws it below.
      stream?.write(spinning ? `${CLEAR_LINE}${line}\n` : `${line}\n`);
    });
  const enabled = (visibility: Visibility) => visibilityRank[visibility] <= rank[options.level];
  const label = (level: 'error' | 'warn' | 'debug') => {
    const word = level === 'warn' ? 'warning:' : `${level}:`;
    if (!c) return `${word} `;
    return `${level === 'error' ? c.red.bold(word) : level === 'warn' ? c.yellow(word) : c.dim(word)} `;
  };

  const event = (e: BurrowEvent) => {
    if (!enabled(eventLevel(e))) return;
    if (json) return write(formatJson(e, now(), tunnel));
    if (e.event === 'failed' || e.event === 'error' || (e.event === 'closed' && (e.reason === 'broken' || e.reason === 'session_limit') && e.message !== undefined)) {
      // A listener's failures name their connection, as its other lines do; stdio has only one.
      const which = 'conn' in e && e.peer !== 'stdio' ? text.connectionPrefix(e.conn, e.peer) : '';
      return write(formatFailure({ message: e.message ?? '', hint: e.hint }, c, `${tag}${which}`));
    }
    if (e.event === 'refused') return write(formatFailure({ message: e.message, hint: e.hint }, c, `${tag}${text.connectionPrefix(e.conn, e.peer)}`, 'warning'));
    const level = eventLevel(e);
    const head = level === 'notice' || level === 'info' ? '' : label(level);
    write(redact(`burrow: ${tag}${head}${formatEvent(e, c)}`));
  };
  const log = (level: 'error' | 'warn' | 'info' | 'debug' | 'notice') => (message: string) => event({ event: 'log', level, message });

  return {
    level: options.level,
    json,
    error: log('error'),
    warn: log('warn'),
    info: log('info'),
    debug: log('debug'),
    notice: log('notice'),
    failure: (error) => event({ event: 'error', ...failureFields(error) }),
    event,
    spinner(message) {
      if (json || !stream || !tty || spinning || !enabled('notice') || env.TERM === 'dumb') return () => {};
      const started = now();
      let frame = 0;
      const draw = () => {
        const glyph = SPINNER[frame++ % SPINNER.length]!;
        const waited = text.waitedFor(Math.floor((now() - started) / 1000));
        // One line, whatever the width (read at every frame: terminals get resized): a line that
        // wraps cannot be redrawn with \r, and would leave a copy of itself per frame.
        const [shown, time] = fitSpinner(redact(message), waited, stream.columns);
        stream.write(`${CLEAR_LINE}${c ? c.cyan(glyph) : glyph}${shown ? ` ${shown}` : ''}${time ? ` ${c ? c.dim(time) : time}` : ''}`);
      };
      spinning = true;
      draw();
      const timer = setInterval(draw, 100);
      timer.unref();
      return () => {
        if (!spinning) return;
        clearInterval(timer);
        spinning = false;
        stream.write(CLEAR_LINE);
      };
    },
  };
}
