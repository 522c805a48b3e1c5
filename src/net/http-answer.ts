/**
 * Reading an HTTP/1.x answer head from a socket we keep using afterwards: the CONNECT answer of
 * the identity proxy, and of a forward proxy before it. Bytes after the head belong to the
 * stream and are pushed back with `unshift`; the socket is left paused for whoever reads next.
 * Each caller says which errors its failures become, so messages name the right hop.
 */
import type { Socket } from 'node:net';

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
  if (!match) return { malformed: `expected an HTTP/1.1 status line, got "${printable(statusLine, 60)}"` };
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return { malformed: `bad header line "${printable(line, 60)}"` };
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

/** Reads one answer head (skipping 1xx interim answers). Rejects with the caller's errors. */
export function readAnswer(socket: Socket, deadline: number, errors: AnswerErrors, signal?: AbortSignal): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
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
          if (buffered.length > MAX_ANSWER_HEAD) fail(errors.malformed(`the answer head is larger than ${MAX_ANSWER_HEAD / 1024} KiB`));
          return;
        }
        const parsed = parseAnswerHead(buffered.subarray(0, end).toString('latin1'));
        if ('malformed' in parsed) return fail(errors.malformed(parsed.malformed));
        buffered = buffered.subarray(end + 4);
        // 1xx answers are interim; the real answer follows (101 is not used by CONNECT).
        if (parsed.answer.status >= 100 && parsed.answer.status < 200) continue;
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
