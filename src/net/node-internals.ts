/**
 * The one place burrow reaches past a documented API, with the versions it was checked on.
 * Each use has a documented fallback, taken when the internal is not there.
 *
 * Checked with Node v20.20.2 (and the v22 line's SecureContext, which has the same method).
 */
import tls from 'node:tls';

/**
 * Adds `pems` to the default trust of a fresh context. The documented `ca` option would replace
 * Node's bundled roots (and re-parsing all of them as PEM costs ~20 ms of start-up), so the
 * extra CAs go through the native context's `addCACert`, which is how Node's own
 * `createSecureContext` adds each `ca` entry. Returns false when there is no such method (another
 * runtime): the caller then uses the documented form.
 */
export function addCaCertificates(context: tls.SecureContext, pems: readonly string[]): boolean {
  const native = (context as unknown as { context?: { addCACert?: (pem: string) => void } }).context;
  if (typeof native?.addCACert !== 'function') return false;
  for (const pem of pems) native.addCACert(pem);
  return true;
}
