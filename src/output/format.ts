/** Small formatting helpers for human output. */
import { text } from './messages.js';

/**
 * "expires in 59 min", "expired 2 h ago", "no expiry known" (a token without `exp`, as Pomerium
 * issues since v0.32.6): for `burrow status` and sign-in lines.
 */
export function formatExpiry(expiresAt: number | undefined, nowMs: number): string {
  if (expiresAt === undefined) return text.noExpiryKnown;
  const seconds = Math.round(expiresAt - nowMs / 1000);
  const span = duration(Math.abs(seconds));
  return seconds >= 0 ? `expires in ${span}` : `expired ${span} ago`;
}

/** A human duration: "45 s", "5 min", "3 h", "2 days". */
export function duration(seconds: number): string {
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  if (seconds < 48 * 3600) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}

/** A byte count: "0 B", "512 B", "1.5 KiB", "45 KiB", "3.2 MiB", "1.1 GiB". */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** A span of milliseconds: "850 ms", "3.2 s", "42 s", then `duration`'s "5 min", "3 h". */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  return duration(Math.round(ms / 1000));
}

/** Control characters, line and paragraph separators, bidi overrides (C0, DEL, C1, U+2028-E, U+2066-9). */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028-\u202e\u2066-\u2069]/g;

/**
 * Escapes what would break a line on a terminal: a line break in a hostile destination, an escape
 * sequence in a proxy's answer. Every line burrow writes to stderr goes through this, so one
 * failure is always one line, and nothing from outside can move the cursor or recolour the screen.
 */
export function printableLine(line: string): string {
  return line.replace(UNPRINTABLE, (c) =>
    c === '\n' ? '\\n' : c === '\r' ? '\\r' : c === '\t' ? '\\t' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
