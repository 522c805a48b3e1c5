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
   * After how many bytes a direction reads into buffers of its own instead of a fresh one per
   * read: the download (`readInto`) once it moved that many, the upload (`pumpSliced`) likewise.
   * 0 reads that way from the first byte (stdio: one tunnel per process). Default
   * {@link BULK_TRANSFER}: a listener's many small tunnels hold no buffers.
   */
  readIntoAfter?: number;
}

/**
 * When a direction of a tunnel is moving bulk data (a clone, a push) and read buffers of its own
 * pay: they are held for as long as the tunnel is open, and 1,000 short tunnels of a listener
 * each holding one left RSS 6-63 MiB higher after their second burst (test/e2e/load.test.ts).
 */
export const BULK_TRANSFER = 1024 * 1024;

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
  const readIntoAfter = options.readIntoAfter ?? BULK_TRANSFER;
  const upload = oneWay(local.input, remote, false, readIntoAfter, UPLOAD_SLICE)
    .then(() => tunnel.finish())
    .catch(fail('local'));
  const download = oneWay(remote, local.output, true, readIntoAfter)
    .then(() => options.onRemoteEnd?.())
    .catch(fail('remote'));
  await Promise.all([upload, download]);
  destroyLocal(local);
  remote.destroy();
  return result;
}

/**
 * The most clear text handed to the tunnel's stream in one write until a tunnel's upload is bulk
 * ({@link BULK_TRANSFER}): one TLS record's worth. A local read is up to 64 KiB (libuv's read
 * size); written whole, its encrypted copy (64 KiB and more) waits in Node's TLS output buffer
 * until the kernel takes it, beside the clear chunk. With 1,000 busy tunnels and a proxy that
 * lags, those copies were most of burrow's peak memory. A bulk upload, read into buffers of its
 * own, writes each read whole: four records per write cost a third less CPU than one, and the
 * few tunnels that move bulk data at once can hold a chunk's copy each.
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
 * tunnels holds 1,000 times. Here: the bytes and backpressure (with `slice`, the upload:
 * record-sized writes, `pumpSliced`; without, the download: piped, `readInto`), each read into
 * buffers of its own once `readIntoAfter` bytes came, where the stream can read that way, and
 * one listener per event. Resolves once `source` has ended and, with `end`, `dest` has finished
 * (its end sent after the last byte); without `end`, once every byte was handed to `dest`.
 * Rejects with the first error of either stream, or a premature close
 * (`ERR_STREAM_PREMATURE_CLOSE`) when one closes before that. Streams are not destroyed here:
 * the splice does that.
 */
function oneWay(source: Readable, dest: Writable, end: boolean, readIntoAfter: number, slice?: number): Promise<void> {
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
    if (slice !== undefined) {
      pumpSliced(
        source,
        dest,
        slice,
        {
          start: () => (busy = () => {}),
          done: () => {
            const then = busy;
            busy = undefined;
            then?.();
          },
        },
        readIntoAfter,
      );
    } else if (!(readIntoAfter === 0 && readInto(source, dest, BULK_TRANSFER))) {
      source.pipe(dest, { end: false });
      if (readIntoAfter > 0) readIntoOnceBulk(source, dest, readIntoAfter);
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
      if (!source.destroyed && !dest.destroyed && !readInto(source, dest, 0)) source.pipe(dest, { end: false });
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

/** How many reads (TLS records) a bulk download joins into one write to the local side. */
export const JOINED_RECORDS = 4;

/**
 * `source.pipe(dest)` for a socket, reading into a buffer of its own instead of a fresh one per
 * read: per TLS record that saves a buffer, its stream chunk and the 'data' event, a quarter to
 * a third less CPU per GiB downloaded (docs/performance.md). Until `joinAfter` bytes have come,
 * each read is written at once, from one buffer used again whenever `dest` took the last bytes
 * at once (the usual case: a local socket or stdout has room) and replaced while `dest` still
 * holds them. From then on (bulk data: a clone, a download) the reads of one event-loop turn are
 * joined, up to {@link JOINED_RECORDS} of them, and written together at the end of that turn or
 * once the buffer is full: a fifth less CPU again, at the price of a few microseconds per round
 * trip, so not before the tunnel is bulk. The buffer is held while the tunnel is open (16 KiB for
 * a TLS tunnel, four times that once joining), so a listener's tunnels take one only once they
 * move bulk data ({@link BULK_TRANSFER}). Bytes the socket already buffered (those that came
 * with the proxy's answer) are written first. False when the socket cannot read that way
 * (node-internals.ts): then the caller pipes.
 */
function readInto(source: Readable, dest: Writable, joinAfter: number): boolean {
  if (!(source instanceof Socket)) return false;
  for (let chunk = source.read() as Buffer | null; chunk !== null; chunk = source.read() as Buffer | null) dest.write(chunk);
  const size = readBufferSize(source);
  let seen = 0;
  let joining = joinAfter === 0;
  // One record's worth at first, the joined size once a second read comes: a listener's tunnel
  // that turns bulk just as it ends (1,000 downloads of 1 MiB at once) takes no more.
  let own = Buffer.allocUnsafe(size);
  // Joining: own[start, end) is read and not yet written; the next read goes to own[end…], the
  // view handed out last, which only the buffer generator below replaces.
  let start = 0;
  let end = 0;
  let turn = false;
  let waiting = false;
  const resume = () => {
    waiting = false;
    source.resume();
  };
  /** Writes `chunk`; false (and a resume on 'drain') when `dest` is full. */
  const pass = (chunk: Buffer): boolean => {
    if (dest.write(chunk)) return true;
    if (!waiting) {
      waiting = true;
      dest.once('drain', resume);
    }
    return false;
  };
  const flush = (): boolean => {
    if (dest.destroyed) return false;
    if (start === end) return true;
    const chunk = own.subarray(start, end);
    start = end;
    return pass(chunk);
  };
  const endOfTurn = () => {
    turn = false;
    if (!flush()) source.pause();
  };
  const next = (): Buffer => {
    if (!joining) return dest.writableLength > 0 ? (own = Buffer.allocUnsafe(size)) : own;
    if (own.length - end >= size) return end === 0 ? own : own.subarray(end);
    // No room for another read: start over, in the same buffer once `dest` holds none of it.
    if (dest.writableLength > 0 || own.length < JOINED_RECORDS * size) own = Buffer.allocUnsafe(JOINED_RECORDS * size);
    start = end = 0;
    return own;
  };
  const switched = readIntoBuffers(source, next, (n, buffer) => {
    if (dest.destroyed) return false;
    if (!joining) {
      seen += n;
      const taken = pass(buffer.subarray(0, n));
      if (seen >= joinAfter) {
        // The buffer `dest` may still hold is left to it; joining reads into a larger one.
        joining = true;
        own = Buffer.allocUnsafe(JOINED_RECORDS * size);
      }
      return taken;
    }
    end += n;
    if (!turn) {
      turn = true;
      setImmediate(endOfTurn);
    }
    return own.length - end >= size || flush();
  });
  if (!switched) return false;
  // What was joined goes before the end is passed on ('end' listeners run in order: this first).
  source.prependOnceListener('end', () => void flush());
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
 *
 * Once `readIntoAfter` bytes have come (0: from the first), a socket source is read into buffers
 * of its own ({@link OwnReadBuffers}) instead of a fresh one per read (fresh memory for the kernel
 * to copy into: thousands of page faults per 512 MiB uploaded on this machine), and each read,
 * up to 64 KiB, is written whole (docs/performance.md). The switch is made between chunks, with
 * no write waiting for 'drain'; what the socket holds by then goes first, sliced, as one more
 * chunk. Where the socket cannot read that way, it stays as it is.
 */
function pumpSliced(source: Readable, dest: Writable, slice: number, chunk: { start(): void; done(): void }, readIntoAfter: number): void {
  let pending: Buffer | undefined;
  let offset = 0;
  // The write callback that frees the own buffer `pending` is a view of, for its last piece.
  let release: (() => void) | undefined;
  // A write is waiting for 'drain' (then the source is paused, or `pending` waits).
  let waiting = false;
  let seen = 0;
  // undefined: not switched yet; null: the socket cannot read into buffers of its own.
  let own: OwnReadBuffers | null | undefined;
  const resume = () => {
    waiting = false;
    source.resume();
  };
  /** Hands `pending` over piece by piece: true once all of it is, false while waiting for 'drain'. */
  const feed = (): boolean => {
    while (pending !== undefined) {
      if (dest.destroyed) return false;
      const piece = pending.subarray(offset, offset + slice);
      offset += piece.length;
      if (offset >= pending.length) {
        // The last piece: reading goes on at once, and the next chunk may queue behind it.
        const freed = release;
        pending = undefined;
        release = undefined;
        dest.write(piece, freed);
        return true;
      }
      // `false` with nothing left queued: the piece went to the kernel at once (a 'drain' will
      // follow, unheard). `false` with bytes queued: wait until they are gone.
      if (!dest.write(piece) && dest.writableLength > 0) {
        waiting = true;
        dest.once('drain', next);
        return false;
      }
    }
    return true;
  };
  /**
   * One chunk read, sliced unless `whole` (`freed` once its last byte left `dest`): false to read
   * no more until resumed.
   */
  const write = (data: Buffer, freed?: () => void, whole = false): boolean => {
    seen += data.length;
    if (whole || data.length <= slice) {
      // As `pipe` does: the chunk is dest's now; read on once dest drained.
      if (!dest.write(data, freed) && dest.writableLength > 0) {
        waiting = true;
        dest.once('drain', resume);
        return false;
      }
      return true;
    }
    chunk.start();
    pending = data;
    offset = 0;
    release = freed;
    if (!feed()) return false;
    chunk.done();
    return true;
  };
  const onData = (data: Buffer) => {
    if (dest.destroyed) return;
    if (!write(data)) source.pause();
    // Not from inside the socket's read: a microtask later (as readIntoOnceBulk does).
    else if (own === undefined && seen >= readIntoAfter) queueMicrotask(switchOver);
  };
  /** Switches to buffers of its own when due and safe; false while a chunk it took waits. */
  const switchToOwn = (): boolean => {
    if (own !== undefined || seen < readIntoAfter || waiting || pending !== undefined || !(source instanceof Socket)) return true;
    if (source.destroyed || dest.destroyed) return true;
    const buffers = new OwnReadBuffers(readBufferSize(source));
    // `read()` emits what it returns as 'data': the listener goes first.
    source.off('data', onData);
    const held = source.readableLength > 0 ? (source.read() as Buffer | null) : null;
    own = readIntoBuffers(
      source,
      () => buffers.next(),
      (n, buffer) => !dest.destroyed && write(buffer.subarray(0, n), buffers.take(buffer), true),
    )
      ? buffers
      : null;
    if (own === null) source.on('data', onData);
    if (held === null || write(held)) return true;
    source.pause();
    return false;
  };
  const switchOver = () => void switchToOwn();
  const next = () => {
    waiting = false;
    if (!feed()) return;
    chunk.done();
    if (switchToOwn()) source.resume();
  };
  source.on('data', onData);
  // From the first byte: switched before any read (false: a chunk the socket held waits).
  if (readIntoAfter === 0 && !switchToOwn()) return;
  // As `pipe` does: the source is handed over paused.
  if (dest.writableNeedDrain) {
    waiting = true;
    dest.once('drain', resume);
  } else {
    source.resume();
  }
}

/**
 * Read buffers for a socket whose bytes go to a stream that holds on to them until its write
 * calls back (a TLS socket: once the record is on its way to the kernel). Two, used in turn:
 * the next read's buffer is asked for right after a read, while that read's bytes are still
 * being written, and the one before is free again by then. A buffer is free once the write of
 * its last byte called back, the documented moment a stream is done with a chunk; should both
 * still be held, the read gets a fresh one.
 */
class OwnReadBuffers {
  readonly #buffers: readonly [Buffer, Buffer];
  readonly #held = [false, false];
  readonly #release = [() => void (this.#held[0] = false), () => void (this.#held[1] = false)] as const;

  constructor(size: number) {
    this.#buffers = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
  }

  /** The buffer for the next read. */
  next(): Buffer {
    if (!this.#held[0]) return this.#buffers[0];
    if (!this.#held[1]) return this.#buffers[1];
    return Buffer.allocUnsafe(this.#buffers[0].length);
  }

  /** Marks `buffer` held by a write and returns that write's callback, which frees it (none for a fresh one). */
  take(buffer: Buffer): (() => void) | undefined {
    const index = this.#buffers.indexOf(buffer);
    if (index < 0) return undefined;
    this.#held[index] = true;
    return this.#release[index];
  }
}
