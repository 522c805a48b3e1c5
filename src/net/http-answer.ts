/**
 * Reading an HTTP/1.x answer head from a socket we keep using afterwards: the CONNECT answer of
 * the identity proxy, and of a forward proxy before it. Bytes after the head belong to the
 * stream and are pushed back with `unshift`; the socket is left paused for whoever reads next.
 * Each caller says which errors its failures become, so messages name the right hop.
 */
import type { Socket } from 'node:net';
import { text } from '../output/messages.js';

/** Answers larger than this are not a proxy talking HTTP/1.1 to us. */
export const MAX_ANSWER_HEAD = 64 * 1024;

export interface HttpAnswer {
  status: number;
  reason: string;
  headers: Record<string, string>;
}

type HeadParse = { answer: HttpAnswer } | { malformed: string };

/** Makes bytes from the network safe to show: printable ASCII only, bounded length. */
export function printable(value: string, max: number): string {
  const clean = value.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

/** Parses an HTTP/1.x response head (without the final CRLFCRLF). */
export function parseAnswerHead(head: string): HeadParse {
  const lines = head.split('\r\n');
  const statusLine = lines[0] ?? '';
  const match = /^HTTP\/1\.[01] ([0-9]{3})(?: (.*))?$/.exec(statusLine);
  if (!match) return { malformed: notStatusLine(Buffer.from(statusLine, 'latin1')) };
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return { malformed: text.answerBadHeader(printable(line, 60)) };
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { answer: { status: Number(match[1]), reason: match[2] ?? '', headers } };
}

export interface AnswerErrors {
  /** The bytes are not an HTTP answer head (`what` says how). */
  malformed(what: string): Error;
  /** The connection ended before a complete head; `partial` if some bytes had come. */
  closed(partial: boolean): Error;
  /** A socket error while waiting. */
  network(error: Error): Error;
  /** The deadline passed. */
  timeout(): Error;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/** `HTTP/1.x NNN` then a space or the line's end: what every status line we accept starts with. */
const STATUS_PREFIX = 'HTTP/1.';
const DIGIT = (byte: number) => byte >= 0x30 && byte <= 0x39;
function prefixByteOk(index: number, byte: number): boolean {
  if (index < STATUS_PREFIX.length) return byte === STATUS_PREFIX.charCodeAt(index);
  if (index === 7) return byte === 0x30 || byte === 0x31;
  if (index === 8) return byte === 0x20;
  if (index <= 11) return DIGIT(byte);
  return byte === 0x20 || byte === 0x0d; // the reason phrase, or the line's CR
}

/** What other servers greet with, to say what answered instead of a proxy. */
function lookalike(start: Buffer): string | undefined {
  const ascii = start.toString('latin1');
  if (ascii.startsWith('SSH-')) return text.looksLikeSsh;
  if (/^\* (OK|PREAUTH|BYE)/i.test(ascii)) return text.looksLikeImap;
  if (/^\+OK/.test(ascii)) return text.looksLikePop;
  if (/^220[ -]/.test(ascii)) return text.looksLikeSmtpFtp;
  if ((start[0] === 0x15 || start[0] === 0x16) && start[1] === 0x03) return text.looksLikeTls;
  if (/^HTTP\/(2|3)/.test(ascii)) return text.looksLikeNewerHttp;
  return undefined;
}

/** The complaint about bytes that cannot start a status line: the first line of them, made safe. */
function notStatusLine(bytes: Buffer): string {
  const lineEnd = bytes.findIndex((b) => b === 0x0d || b === 0x0a);
  const firstLine = bytes.subarray(0, lineEnd < 0 ? bytes.length : lineEnd);
  return text.answerNotHttp(printable(firstLine.toString('latin1'), 60), lookalike(bytes));
}

/**
 * Judges the start of an answer head before the whole head has come: a reason to fail now, or
 * undefined while the bytes so far can still begin a status line. So a server that is not an HTTP
 * proxy (an SSH banner, an IMAP greeting, a TLS record) is named at once, instead of after
 * --connect-timeout of waiting for a blank line it never sends.
 */
export function judgeAnswerStart(buffered: Buffer): string | undefined {
  const checked = Math.min(buffered.length, STATUS_PREFIX.length + 6);
  for (let i = 0; i < checked; i++) {
    if (!prefixByteOk(i, buffered[i]!)) return notStatusLine(buffered);
  }
  const lf = buffered.indexOf(0x0a);
  if (lf < 0) return undefined;
  // The status line is complete: it must end in CR LF and parse.
  if (lf === 0 || buffered[lf - 1] !== 0x0d) return text.answerBareLf(printable(buffered.subarray(0, lf).toString('latin1'), 60));
  const parsed = parseAnswerHead(buffered.subarray(0, lf - 1).toString('latin1'));
  return 'malformed' in parsed ? parsed.malformed : undefined;
}

/**
 * Reads one answer head (skipping 1xx interim answers, except 101 when `upgrade` is set: an
 * upgrade's answer). Rejects with the caller's errors.
 */
export function readAnswer(socket: Socket, deadline: number, errors: AnswerErrors, signal?: AbortSignal, upgrade = false): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    let statusLineOk = false;
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      signal?.removeEventListener('abort', onAbort);
    };
    const fail = (error: Error) => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      for (;;) {
        const end = buffered.indexOf(CRLFCRLF);
        if (end < 0) {
          // Once the status line is complete and good, the rest of the head is judged whole.
          if (!statusLineOk) {
            const wrong = judgeAnswerStart(buffered);
            if (wrong) return fail(errors.malformed(wrong));
            statusLineOk = buffered.includes(0x0a);
          }
          if (buffered.length > MAX_ANSWER_HEAD) fail(errors.malformed(text.answerTooLarge(MAX_ANSWER_HEAD / 1024)));
          return;
        }
        const parsed = parseAnswerHead(buffered.subarray(0, end).toString('latin1'));
        if ('malformed' in parsed) return fail(errors.malformed(parsed.malformed));
        buffered = buffered.subarray(end + 4);
        statusLineOk = false;
        // 1xx answers are interim; the real answer follows (101 is not used by CONNECT).
        if (parsed.answer.status >= 100 && parsed.answer.status < 200 && !(upgrade && parsed.answer.status === 101)) continue;
        cleanup();
        socket.pause();
        if (buffered.length > 0) socket.unshift(buffered);
        return resolve(parsed.answer);
      }
    };
    const onError = (error: Error) => fail(errors.network(error));
    const onEnd = () => fail(errors.closed(buffered.length > 0));
    const onAbort = () => fail(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    const timer = setTimeout(() => fail(errors.timeout()), Math.max(0, deadline - Date.now()));
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
