/**
 * The token pasted back on the terminal by a user whose browser is on another device: the
 * address the browser ended on (burrow's callback URL with `pomerium_jwt=`) or the bare token.
 *
 * It is read from /dev/tty (in an ssh ProxyCommand stdin is the tunnel) in raw mode, not line by
 * line: in canonical mode Linux cuts a line at 4095 bytes, and tokens of users in many groups are
 * longer; raw mode also keeps the token off the screen and out of the scrollback (no echo).
 * burrow does the little line editing itself (backspace, Ctrl-U, Enter, Ctrl-D; Ctrl-C raises
 * SIGINT as the terminal would have) and puts the terminal back as it was on every way out.
 *
 * A pasted token is checked (verify.ts) before it is taken: garbage, a cut-off token, an address
 * from another sign-in attempt or a token the proxy refuses gets one line saying so, and the user
 * may paste again, a few times.
 */
import { closeSync, openSync } from 'node:fs';
import tty from 'node:tty';
import { LoginError } from '../errors.js';
import type { Logger } from '../output/log.js';
import { text } from '../output/messages.js';
import { shapeProblem, type TokenVerdict } from './verify.js';

/** Pasted lines that are refused before the sign-in gives up. */
export const PASTE_ATTEMPTS = 5;
/** A line longer than this is no address (the largest tokens seen are tens of KiB). */
export const MAX_PASTE_CHARS = 256 * 1024;

/**
 * The token in a pasted line, or why it is refused (a catalogue sentence). `callbackUrl` is this
 * sign-in's callback: an address with another path is the end of another attempt (its state, the
 * random path, is not ours), whatever token it carries.
 */
export function parsePaste(line: string, callbackUrl: string): { token: string } | { problem: string } {
  const value = line.trim();
  let token: string;
  if (!value.includes('://')) {
    // A bare token, or what is left of one.
    // Every JWT starts with the base64url of '{"'.
    if (!value.startsWith('eyJ')) return { problem: text.pasteNotUnderstood };
    token = value;
  } else {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return { problem: text.pasteNotUnderstood };
    }
    const jwt = url.searchParams.get('pomerium_jwt');
    if (jwt === null) return { problem: text.pasteNotUnderstood };
    if (url.pathname !== new URL(callbackUrl).pathname) return { problem: text.pasteOtherAttempt };
    token = jwt;
  }
  const problem = shapeProblem(token);
  return problem ? { problem: text.pasteCutOff } : { token };
}

/** What a chunk of keystrokes amounts to. */
export type EditorAction = { kind: 'line'; line: string } | { kind: 'interrupt' } | { kind: 'eof' };

/**
 * The line editing raw mode leaves to us. Fed what the terminal sends; returns the lines ended
 * (Enter, or Ctrl-D after some text), Ctrl-C and Ctrl-D on an empty line. Escape sequences (arrow
 * keys, a terminal's bracketed-paste markers) and other control characters are dropped.
 */
export class LineEditor {
  #line = '';
  /** Inside an escape sequence: 'esc' after ESC, 'csi' after ESC [, 'ss3' after ESC O. */
  #escape: 'esc' | 'csi' | 'ss3' | undefined;
  #tooLong = false;

  feed(chunk: string): EditorAction[] {
    const actions: EditorAction[] = [];
    for (const char of chunk) {
      const code = char.codePointAt(0)!;
      if (this.#escape === 'esc') {
        this.#escape = char === '[' ? 'csi' : char === 'O' ? 'ss3' : undefined;
        continue;
      }
      if (this.#escape === 'csi') {
        if (code >= 0x40 && code <= 0x7e) this.#escape = undefined;
        continue;
      }
      if (this.#escape === 'ss3') {
        this.#escape = undefined;
        continue;
      }
      if (char === '\r' || char === '\n') {
        if (this.#line.trim() !== '' || this.#tooLong) actions.push(this.#take());
      } else if (code === 0x03) {
        actions.push({ kind: 'interrupt' });
      } else if (code === 0x04) {
        actions.push(this.#line === '' && !this.#tooLong ? { kind: 'eof' } : this.#take());
      } else if (code === 0x7f || code === 0x08) {
        this.#line = [...this.#line].slice(0, -1).join('');
      } else if (code === 0x15) {
        this.#line = '';
        this.#tooLong = false;
      } else if (code === 0x1b) {
        this.#escape = 'esc';
      } else if (code >= 0x20 && !(code >= 0x80 && code < 0xa0)) {
        if (this.#line.length >= MAX_PASTE_CHARS) this.#tooLong = true;
        else this.#line += char;
      }
    }
    return actions;
  }

  #take(): EditorAction {
    const line = this.#tooLong ? '' : this.#line;
    this.#line = '';
    this.#tooLong = false;
    return { kind: 'line', line };
  }
}

/** The terminal to read from, in raw mode, and how to put it back. */
export interface PasteTerminal {
  readonly input: NodeJS.ReadableStream;
  /** Restores the mode it had and lets go of it; idempotent. */
  close(): void;
}

/** Opens /dev/tty in raw mode (no echo, no line limit), or undefined when there is none. */
export function openTerminal(): PasteTerminal | undefined {
  let fd: number | undefined;
  let input: tty.ReadStream;
  try {
    fd = openSync('/dev/tty', 'r');
    input = new tty.ReadStream(fd);
  } catch {
    if (fd !== undefined) closeSync(fd);
    return undefined;
  }
  try {
    input.setRawMode(true);
  } catch {
    input.destroy();
    return undefined;
  }
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    process.off('exit', close);
    try {
      input.setRawMode(false);
    } catch {
      // A terminal that hung up has no mode left to restore.
    }
    input.destroy();
  };
  // Whatever ends the process without passing through close() (an exit from elsewhere) still
  // must not leave the user's terminal without echo.
  process.once('exit', close);
  input.setEncoding('utf8');
  return { input, close };
}

export interface PasteOptions {
  /** This sign-in's callback URL: a pasted address must end there. */
  callbackUrl: string;
  /** Asks the proxy about a token (verify.ts checkToken). */
  check: (token: string) => Promise<TokenVerdict>;
  logger: Logger;
  /** The terminal; default /dev/tty ({@link openTerminal}). */
  terminal?: () => PasteTerminal | undefined;
  /** Ctrl-C: default SIGINT to this process, as the terminal sends it outside raw mode. */
  onInterrupt?: () => void;
  attempts?: number;
}

export interface PasteReader {
  /** Resolves with a checked token; rejects when too many pastes were refused; else pending. */
  readonly token: Promise<string>;
  /** Stops reading and restores the terminal; idempotent. */
  close(): void;
}

/**
 * Reads pasted addresses from the terminal until one carries a token that passes the check.
 * Without a terminal it never settles (the browser callback may still come).
 */
export function readPastedToken(options: PasteOptions): PasteReader {
  const { logger } = options;
  const terminal = (options.terminal ?? openTerminal)();
  if (!terminal) return { token: new Promise(() => {}), close: () => {} };
  const editor = new LineEditor();
  const attempts = options.attempts ?? PASTE_ATTEMPTS;
  let refused = 0;
  let queue = Promise.resolve();
  let done = false;
  let resolve!: (token: string) => void;
  let reject!: (error: Error) => void;
  const token = new Promise<string>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Rejected only through the sign-in's race; never left unhandled if that race is already over.
  token.catch(() => {});
  const close = () => {
    done = true;
    terminal.input.off('data', onData);
    terminal.close();
  };
  const refuse = (problem: string) => {
    refused++;
    if (refused >= attempts) {
      close();
      reject(new LoginError('BURROW_LOGIN_FAILED', text.pasteGaveUp(refused), { hint: text.pasteGaveUpHint }));
      return;
    }
    logger.warn(text.pasteRefused(problem, attempts - refused));
  };
  const consider = async (line: string) => {
    if (line === '') return refuse(text.pasteTooLong);
    const parsed = parsePaste(line, options.callbackUrl);
    if ('problem' in parsed) return refuse(parsed.problem);
    logger.notice(text.pasteChecking);
    const verdict = await options.check(parsed.token);
    if (done) return;
    if (verdict.ok) {
      close();
      resolve(parsed.token);
    } else {
      refuse(verdict.problem);
    }
  };
  const onData = (chunk: string) => {
    for (const action of editor.feed(chunk)) {
      if (done) return;
      if (action.kind === 'interrupt') {
        close();
        (options.onInterrupt ?? (() => process.kill(process.pid, 'SIGINT')))();
        return;
      }
      if (action.kind === 'eof') {
        // The user is done pasting; the browser callback may still come.
        close();
        logger.notice(text.pasteClosed);
        return;
      }
      // One at a time, in order: lines pasted while a token is being checked wait their turn.
      const line = action.line;
      queue = queue
        .then(() => (done ? undefined : consider(line)))
        .catch((error: unknown) => {
          if (done) return;
          close();
          reject(error as Error);
        });
    }
  };
  terminal.input.on('data', onData);
  // A terminal that cannot be read (hung up, EIO) only ends pasting; the browser callback still works.
  terminal.input.on('error', () => close());
  return { token, close };
}
