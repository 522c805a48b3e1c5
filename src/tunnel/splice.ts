/**
 * Joins the local stream and the tunnel: one `pipe` per direction, so backpressure comes from
 * the platform and each side's EOF becomes a half-close of the other, which ssh and git rely on. The local side's EOF ends the tunnel's side through `Tunnel.finish` (a FIN, or the
 * transport's nearest equivalent). The splice is over when both directions finish, or one
 * fails; then both streams are destroyed so no socket outlives its tunnel.
 */
import type { Readable, Writable } from 'node:stream';
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
}

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
  const upload = oneWay(local.input, remote, false)
    .then(() => tunnel.finish())
    .catch(fail('local'));
  const download = oneWay(remote, local.output, true)
    .then(() => options.onRemoteEnd?.())
    .catch(fail('remote'));
  await Promise.all([upload, download]);
  destroyLocal(local);
  remote.destroy();
  return result;
}

/** What `stream.pipeline` rejects with when a stream closes before its end. */
function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/**
 * One direction, with `pipeline`'s outcome at a fraction of its memory: `pipeline` watches each
 * stream with `finished()` (five of them for two streams, each with its closures and listener
 * arrays), ~13 KiB of heap per tunnel for both directions, which a listener with 1,000 open
 * tunnels holds 1,000 times. Here: `pipe` for the bytes and backpressure, and one listener per
 * event. Resolves once `source` has ended and, with `end`, `dest` has finished (its end sent
 * after the last byte); without `end`, once every byte was handed to `dest`. Rejects with the
 * first error of either stream, or a premature close (`ERR_STREAM_PREMATURE_CLOSE`) when one
 * closes before that. Streams are not destroyed here: the splice does that.
 */
function oneWay(source: Readable, dest: Writable, end: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let sourceEnded = false;
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
      sourceEnded = true;
      // `pipe` never ends standard output itself; pipeline did, and so does this.
      if (end) dest.end();
      else settle();
    };
    if (source.readableEnded) queueMicrotask(ended);
    else source.once('end', ended);
    if (end) dest.once('finish', () => settle());
    source.once('close', () => {
      if (!sourceEnded) settle(prematureClose());
    });
    dest.once('close', () => {
      if (!settled && !(end ? dest.writableFinished : sourceEnded)) settle(prematureClose());
    });
    source.pipe(dest, { end: false });
  });
}
