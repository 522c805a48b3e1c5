/**
 * Joins the local stream and the tunnel: one `pipeline` per direction, so backpressure comes
 * from the platform and each side's EOF becomes a half-close of the other, which ssh and git
 * rely on. The local side's EOF ends the tunnel's side through `Tunnel.finish` (a FIN, or the
 * transport's nearest equivalent). The splice is over when both directions finish, or one
 * fails; then both streams are destroyed so no socket outlives its tunnel.
 */
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
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
  const upload = pipeline(local.input, remote, { end: false })
    .then(() => tunnel.finish())
    .catch(fail('local'));
  const download = pipeline(remote, local.output)
    .then(() => options.onRemoteEnd?.())
    .catch(fail('remote'));
  await Promise.all([upload, download]);
  destroyLocal(local);
  remote.destroy();
  return result;
}
