/**
 * Joins the local stream and the tunnel: one `pipe` per direction, so backpressure comes from
 * the platform and each side's EOF becomes a half-close of the other, which ssh and git rely on. The local side's EOF ends the tunnel's side through `Tunnel.finish` (a FIN, or the
 * transport's nearest equivalent). The splice is over when both directions finish, or one
 * fails; then both streams are destroyed so no socket outlives its tunnel.
 */
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { readIntoBuffers } from '../net/node-internals.js';
import type { Tunnel } from './transport.js';

export type Side = 'local' | 'remote';

/**
 * The local end of a tunnel: one socket (listener mode, `input === output`) or stdin and stdout
 * (stdio mode). Kept as two streams rather than wrapped into one Duplex: a wrapper re-buffers
 * and re-concatenates every chunk, which cost stdio mode a fifth of its download speed.
 */
export interface LocalEnd {
  /** What the local side sends: a socket, or stdin. */
  readonly input: Readable;
  /** Where the tunnel's bytes go: the same socket, or stdout. */
  readonly output: Writable;
}

/** Destroys both local streams (once, if they are the same socket). */
export function destroyLocal(local: LocalEnd): void {
  local.input.destroy();
  if (local.output !== (local.input as unknown)) local.output.destroy();
}

export interface SpliceResult {
  /** The first failure, if any (normal endings included: the caller decides what they mean). */
  error: Error | undefined;
  /** The side whose stream errored first; for a pipeline failure with no stream error, its source. */
  failedSide: Side | undefined;
}

export interface SpliceOptions {
  /**
   * Called once the remote side's EOF has been passed on to the local side. Stdio mode ends the
   * session here: stdout cannot be half-closed in a way ssh would notice, so it exits instead.
   */
  onRemoteEnd?: () => void;
  /**
   * After how many downloaded bytes the tunnel is read into a buffer of its own (`readInto`)
   * instead of piped: 0 reads that way from the first byte (stdio: one tunnel per process).
   * Default {@link BULK_DOWNLOAD}: a listener's many small tunnels hold no buffer.
   */
  readIntoAfter?: number;
}

/**
 * When a tunnel is moving bulk data (a clone, a download) and a read buffer of its own pays: the
 * buffer is held for as long as the tunnel is open, and 1,000 short tunnels of a listener each
 * holding one left RSS 6-63 MiB higher after their second burst (test/e2e/load.test.ts).
 */
export const BULK_DOWNLOAD = 1024 * 1024;

/** Splices `local` and `tunnel` until both directions are done; never rejects. */
export async function splice(local: LocalEnd, tunnel: Tunnel, options: SpliceOptions = {}): Promise<SpliceResult> {
  const remote = tunnel.stream;
  let erroredSide: Side | undefined;
  local.input.once('error', () => (erroredSide ??= 'local'));
  if (local.output !== (local.input as unknown)) local.output.once('error', () => (erroredSide ??= 'local'));
  remote.once('error', () => (erroredSide ??= 'remote'));

  const result: SpliceResult = { error: undefined, failedSide: undefined };
  const fail = (source: Side) => (error: Error) => {
    if (result.error === undefined) {
      result.error = error;
      result.failedSide = erroredSide ?? source;
    }
    // One direction broke, so the tunnel is over: destroying both ends the other pipeline too.
    destroyLocal(local);
    remote.destroy();
  };
  // `end: false` settles once the local side's bytes are written to the tunnel's stream, not yet
  // sent: `finish` settles once they are, and only then may the tunnel be destroyed below.
  const upload = oneWay(local.input, remote, false, 'sliced')
    .then(() => tunnel.finish())
    .catch(fail('local'));
  const download = oneWay(remote, local.output, true, options.readIntoAfter ?? BULK_DOWNLOAD)
    .then(() => options.onRemoteEnd?.())
    .catch(fail('remote'));
  await Promise.all([upload, download]);
  destroyLocal(local);
  remote.destroy();
  return result;
}

/**
 * The most clear text handed to the tunnel's stream in one write: one TLS record's worth. A
 * local read is up to 64 KiB (libuv's read size); written whole, its encrypted copy (64 KiB and
 * more) waits in Node's TLS output buffer until the kernel takes it, beside the clear chunk. With
 * 1,000 busy tunnels and a proxy that lags, those copies were most of burrow's peak memory.
 */
export const UPLOAD_SLICE = 16 * 1024;

/** What `stream.pipeline` rejects with when a stream closes before its end. */
function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/**
 * One direction, with `pipeline`'s outcome at a fraction of its memory: `pipeline` watches each
 * stream with `finished()` (five of them for two streams, each with its closures and listener
 * arrays), ~13 KiB of heap per tunnel for both directions, which a listener with 1,000 open
 * tunnels holds 1,000 times. Here: the bytes and backpressure by `how` (`sliced`: the upload,
 * in record-sized writes, `pumpSliced`; a number: the download, piped, then read into a buffer
 * of its own, `readInto`, once that many bytes came, where the stream can read that way), and
 * one listener per event. Resolves once `source` has ended and, with `end`, `dest` has finished
 * (its end sent after the last byte); without `end`, once every byte was handed to `dest`.
 * Rejects with the first error of either stream, or a premature close
 * (`ERR_STREAM_PREMATURE_CLOSE`) when one closes before that. Streams are not destroyed here:
 * the splice does that.
 */
function oneWay(source: Readable, dest: Writable, end: boolean, how: 'sliced' | number): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    // The source's end came (`endSeen`), and was passed on (`sourceEnded`): when sliced, the
    // second waits while the last chunk is still being written piece by piece (`busy`).
    let endSeen = false;
    let sourceEnded = false;
    let busy: (() => void) | undefined;
    const settle = (error?: Error) => {
      if (settled) return;
      settled = true;
      if (error) reject(error);
      else resolve();
    };
    // Left attached once settled: a stream that errors after its end must not throw.
    source.on('error', settle);
    dest.on('error', settle);
    const ended = () => {
      endSeen = true;
      if (busy) return void (busy = ended);
      sourceEnded = true;
      // `pipe` never ends standard output itself; pipeline did, and so does this.
      if (end) dest.end();
      else settle();
    };
    if (source.readableEnded) queueMicrotask(ended);
    else source.once('end', ended);
    if (end) dest.once('finish', () => settle());
    source.once('close', () => {
      if (!endSeen) settle(prematureClose());
    });
    dest.once('close', () => {
      if (!settled && !(end ? dest.writableFinished : sourceEnded)) settle(prematureClose());
    });
    if (how === 'sliced') {
      pumpSliced(source, dest, UPLOAD_SLICE, {
        start: () => (busy = () => {}),
        done: () => {
          const then = busy;
          busy = undefined;
          then?.();
        },
      });
    } else if (!(how === 0 && readInto(source, dest))) {
      source.pipe(dest, { end: false });
      if (how > 0) readIntoOnceBulk(source, dest, how);
    }
  });
}

/**
 * Switches a piped download to `readInto` once `after` bytes have come: the chunk that crosses
 * the line is written by the pipe (its listener came first), then the pipe is taken away and,
 * a microtask later, what the socket buffered meanwhile is written ahead of the first read into
 * the buffer. Where the socket cannot read that way, it is piped again.
 */
function readIntoOnceBulk(source: Readable, dest: Writable, after: number): void {
  if (!(source instanceof Socket)) return;
  let seen = 0;
  const count = (chunk: Buffer) => {
    seen += chunk.length;
    if (seen < after) return;
    source.off('data', count);
    source.unpipe(dest);
    queueMicrotask(() => {
      if (!source.destroyed && !dest.destroyed && !readInto(source, dest)) source.pipe(dest, { end: false });
    });
  };
  source.on('data', count);
}

/**
 * The size of `readInto`'s buffer: Node hands a TLS socket's clear text over at most one record,
 * 16 KiB, at a time; a plain TCP read is up to 64 KiB.
 */
export function readBufferSize(source: Socket): number {
  return source instanceof TLSSocket ? 16 * 1024 : 64 * 1024;
}

/**
 * `source.pipe(dest)` for a socket, reading into one buffer that is used again for the next
 * read whenever `dest` took the last bytes at once (the usual case: a local socket or stdout has
 * room), and replaced by a fresh one when `dest` still holds them. Per TLS record that saves a
 * buffer, its stream chunk and the 'data' event: a quarter to a third less CPU per GiB
 * downloaded, in stdio and listener mode (docs/performance.md). The buffer is held while the
 * tunnel is open (16 KiB for a TLS tunnel), so a listener's tunnels take one only once they move
 * bulk data ({@link BULK_DOWNLOAD}). Bytes the socket already buffered (those that came with the
 * proxy's answer) are written first. False when the socket cannot read that way
 * (node-internals.ts): then the caller pipes.
 */
function readInto(source: Readable, dest: Writable): boolean {
  if (!(source instanceof Socket)) return false;
  for (let chunk = source.read() as Buffer | null; chunk !== null; chunk = source.read() as Buffer | null) dest.write(chunk);
  const size = readBufferSize(source);
  let own = Buffer.allocUnsafe(size);
  let waiting = false;
  const resume = () => {
    waiting = false;
    source.resume();
  };
  const switched = readIntoBuffers(
    source,
    () => (dest.writableLength > 0 ? (own = Buffer.allocUnsafe(size)) : own),
    (n, buffer) => {
      if (dest.destroyed) return false;
      if (dest.write(buffer.subarray(0, n))) return true;
      if (!waiting) {
        waiting = true;
        dest.once('drain', resume);
      }
      return false;
    },
  );
  if (!switched) return false;
  if (dest.writableNeedDrain) {
    waiting = true;
    dest.once('drain', resume);
  } else {
    source.resume();
  }
  return true;
}

/**
 * `source.pipe(dest)` with at most `slice` bytes per write, and the next piece of a chunk written
 * only once `dest` has taken the one before (or queued it below its high-water mark): what waits
 * on a slow `dest` is the chunk read (a view of it per piece, no copy) and one piece in flight,
 * not the whole chunk in flight. The source is paused while a chunk is being written. `chunk`
 * tells the caller when a chunk starts and when its last piece is handed to `dest`, so that the
 * source's end, which can come before that, is passed on after it.
 */
function pumpSliced(source: Readable, dest: Writable, slice: number, chunk: { start(): void; done(): void }): void {
  let pending: Buffer | undefined;
  let offset = 0;
  const resume = () => source.resume();
  const feed = (): void => {
    while (pending !== undefined) {
      if (dest.destroyed) return;
      if (offset >= pending.length) {
        pending = undefined;
        chunk.done();
        source.resume();
        return;
      }
      const piece = pending.subarray(offset, offset + slice);
      offset += piece.length;
      // `false` with nothing left queued: the piece went to the kernel at once (a 'drain' will
      // follow, unheard). `false` with bytes queued: wait until they are gone.
      if (!dest.write(piece) && dest.writableLength > 0 && offset < pending.length) {
        dest.once('drain', feed);
        return;
      }
    }
  };
  source.on('data', (data: Buffer) => {
    if (dest.destroyed) return;
    if (data.length <= slice) {
      // As `pipe` does: the chunk is dest's now; read on once dest drained.
      if (!dest.write(data) && dest.writableLength > 0) {
        source.pause();
        dest.once('drain', resume);
      }
      return;
    }
    source.pause();
    chunk.start();
    pending = data;
    offset = 0;
    feed();
  });
  // As `pipe` does: the source is handed over paused.
  if (dest.writableNeedDrain) dest.once('drain', resume);
  else source.resume();
}
