/**
 * A small seeded fuzzing kit: a deterministic PRNG, generators that mix structured mutations of
 * valid inputs with random junk, and `fuzz()`, which runs a property over many generated cases,
 * bounded by a count AND a time budget, and names the seed and case on failure.
 *
 *   BURROW_FUZZ_SEED=<n>|random   seed of the whole run (default: fixed, so CI is reproducible)
 *   BURROW_FUZZ_RUNS=<n>          cases per target (default: each target's own count)
 *   BURROW_FUZZ_TIME=<seconds>    time budget per target (default: each target's own budget)
 *
 * Each case has its own generator, seeded from (seed, target, case index), so a failure can be
 * replayed alone with BURROW_FUZZ_SEED and BURROW_FUZZ_CASE=<index>.
 */
import assert from 'node:assert/strict';

const DEFAULT_SEED = 0x5eed_b0e0;

function parseSeed(value: string | undefined): number {
  if (value === undefined || value === '') return DEFAULT_SEED;
  if (value === 'random') return (Date.now() ^ (process.pid << 16)) >>> 0;
  const n = Number(value);
  assert.ok(Number.isInteger(n) && n >= 0, `BURROW_FUZZ_SEED must be a non-negative integer or "random", got ${JSON.stringify(value)}`);
  return n >>> 0;
}

/** The seed of this run (printed in every failure). */
export const FUZZ_SEED = parseSeed(process.env.BURROW_FUZZ_SEED);

/** A PRNG with the helpers generators need. */
export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** An integer in [min, max]. */
  range(min: number, max: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  /** Picks by weight: `[[3, a], [1, b]]` returns a three times as often as b. */
  weighted<T>(items: ReadonlyArray<readonly [number, T]>): T;
  /** `n` random bytes. */
  bytes(n: number): Buffer;
  /** A seed for a derived generator. */
  fork(): Rng;
}

/** sfc32, seeded through splitmix32: small, fast, good enough for test inputs. */
export function createRng(seed: number): Rng {
  let s = seed >>> 0;
  const split = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split();
  let b = split();
  let c = split();
  let d = split();
  const u32 = () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) u32();
  const rng: Rng = {
    next: () => u32() / 0x1_0000_0000,
    int: (n) => Math.floor(rng.next() * n),
    range: (min, max) => min + rng.int(max - min + 1),
    chance: (p) => rng.next() < p,
    pick: (items) => items[rng.int(items.length)]!,
    weighted: (items) => {
      const total = items.reduce((sum, [w]) => sum + w, 0);
      let x = rng.next() * total;
      for (const [w, item] of items) {
        if ((x -= w) < 0) return item;
      }
      return items[items.length - 1]![1];
    },
    bytes: (n) => {
      const out = Buffer.alloc(n);
      for (let i = 0; i < n; i++) out[i] = u32() & 0xff;
      return out;
    },
    fork: () => createRng(u32()),
  };
  return rng;
}

/** FNV-1a of a string, to derive per-target seeds. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The generator of case `index` of `target` in this run. */
export function caseRng(target: string, index: number): Rng {
  return createRng((hash(target) ^ FUZZ_SEED ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
}

// --- generators ---------------------------------------------------------------------------------

/** Characters that parsers of addresses and URLs tend to treat specially. */
export const SPECIAL = [
  ':', '[', ']', '/', '\\', '@', '%', '?', '#', '.', '..', '-', '_', '+', '*', '!', '~', ',', ';', '=', '&',
  ' ', '\t', '\r', '\n', '\r\n', '\0', '\x7f', '\x1b[31m', '"', "'", '`', '$', '{', '}', '<', '>', '|',
  '0', '00', '65535', '65536', '99999', '-1', '0x10', '1e3', '٣', '\u00e9', '\u200b', '\ufeff', '\uffff',
  '\ud800', '\udc00', '😀', 'xn--', '%00', '%0d%0a', '%2f', '%5b', '::', '::1', '127.0.0.1', '[::1]',
];

/** A random string of `alphabet` characters; `max` bounds its length. */
export function randomString(rng: Rng, max: number, alphabet?: string): string {
  const len = rng.int(max + 1);
  let out = '';
  for (let i = 0; i < len; i++) {
    if (alphabet) out += alphabet[rng.int(alphabet.length)];
    else out += rng.weighted<() => string>([
      [6, () => String.fromCharCode(rng.range(0x20, 0x7e))],
      [1, () => String.fromCharCode(rng.int(0x20))],
      [1, () => String.fromCharCode(rng.range(0x80, 0xffff))],
      [1, () => rng.pick(SPECIAL)],
    ])();
  }
  return out;
}

export const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/**
 * Structured mutations of a valid `input`: the region where parsers go wrong. Applies 1-3 edits
 * (insert, delete, replace, duplicate a slice, truncate, change case, splice in special tokens).
 */
export function mutate(rng: Rng, input: string): string {
  let s = input;
  const edits = rng.range(1, 3);
  for (let e = 0; e < edits; e++) {
    const at = rng.int(s.length + 1);
    s = rng.weighted<() => string>([
      [3, () => s.slice(0, at) + rng.pick(SPECIAL) + s.slice(at)],
      [2, () => s.slice(0, at) + s.slice(at + rng.range(1, 4))],
      [2, () => s.slice(0, at) + randomString(rng, 3) + s.slice(at + 1)],
      [1, () => s.slice(0, at) + s.slice(rng.int(s.length), rng.int(s.length + 1)) + s.slice(at)],
      [1, () => s.slice(0, at)],
      [1, () => s.slice(at)],
      [1, () => (rng.chance(0.5) ? s.toUpperCase() : s.toLowerCase())],
      [1, () => s.slice(0, at) + 'a'.repeat(rng.pick([63, 64, 254, 256, 5000])) + s.slice(at)],
      [1, () => ` ${s} `],
    ])();
  }
  return s;
}

/** Mostly structured mutations of one of `valid`, sometimes a valid one as is, sometimes junk. */
export function stringCase(rng: Rng, valid: readonly string[], junkMax = 40): string {
  return rng.weighted<() => string>([
    [2, () => rng.pick(valid)],
    [6, () => mutate(rng, rng.pick(valid))],
    [2, () => randomString(rng, junkMax)],
  ])();
}

// --- the runner -----------------------------------------------------------------------------------

export interface FuzzOptions {
  /** Cases to run (BURROW_FUZZ_RUNS overrides). */
  runs: number;
  /** Time budget in ms (BURROW_FUZZ_TIME, in seconds, overrides). */
  budgetMs: number;
}

export interface FuzzReport {
  ran: number;
  /** How many cases had each outcome label the property returned. */
  outcomes: Record<string, number>;
}

function envNumber(name: string): number | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  assert.ok(Number.isFinite(n) && n > 0, `${name} must be a positive number, got ${JSON.stringify(value)}`);
  return n;
}

/** What to print about a case's input: JSON, bounded (inputs may be 100 kB). */
export function show(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value, (_k, v: unknown) => (Buffer.isBuffer(v) ? `<${v.length} bytes: ${v.toString('latin1')}>` : v));
  } catch {
    text = String(value);
  }
  return text.length > 600 ? `${text.slice(0, 600)}… (${text.length} chars)` : text;
}

/**
 * Runs `property` on generated cases until `runs` cases or the time budget is spent. The
 * property gets the case's own generator and returns an outcome label (for the report) or
 * throws. A throw is re-raised naming the seed, the case and the input `describe` gave.
 */
export async function fuzz<T>(
  target: string,
  options: FuzzOptions,
  generate: (rng: Rng, index: number) => T,
  property: (input: T, index: number) => string | Promise<string>,
): Promise<FuzzReport> {
  const runs = envNumber('BURROW_FUZZ_RUNS') ?? options.runs;
  const budgetMs = (envNumber('BURROW_FUZZ_TIME') ?? options.budgetMs / 1000) * 1000;
  const only = envNumber('BURROW_FUZZ_CASE');
  const started = Date.now();
  const outcomes: Record<string, number> = {};
  let ran = 0;
  for (let i = only ?? 0; i < (only === undefined ? runs : only + 1); i++) {
    if (ran > 0 && Date.now() - started > budgetMs) break;
    const input = generate(caseRng(target, i), i);
    let outcome: string;
    try {
      outcome = await property(input, i);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const replay = `BURROW_FUZZ_SEED=${FUZZ_SEED} BURROW_FUZZ_CASE=${i}`;
      const wrapped = new Error(`fuzz ${target}: case ${i} failed (replay: ${replay}): ${message}\n  input: ${show(input)}`, { cause: error });
      throw wrapped;
    }
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    ran++;
  }
  // A budget exhausted by a slow machine still has to have tested something.
  assert.ok(ran >= Math.min(runs, 20) || only !== undefined, `fuzz ${target}: only ${ran} cases ran within ${budgetMs} ms`);
  return { ran, outcomes };
}

/**
 * Fails the test on anything that escapes to the process: an uncaught exception or an unhandled
 * rejection during a fuzz case is exactly the bug being hunted. Returns a function that throws
 * what was caught (call it after each case or target) and one that removes the tripwire.
 */
export function tripwire(): { check(context?: string): void; remove(): void } {
  const escaped: unknown[] = [];
  const onError = (error: unknown) => escaped.push(error);
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  return {
    check(context = '') {
      if (escaped.length === 0) return;
      const first = escaped.splice(0);
      const error = first[0];
      throw new Error(
        `escaped to the process${context ? ` (${context})` : ''}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
    },
    remove() {
      process.off('uncaughtException', onError);
      process.off('unhandledRejection', onError);
    },
  };
}

/** Rejects if `promise` takes longer than `ms`: every network case is bounded. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no outcome within ${ms} ms (a hang)`)), ms);
    }),
  ]);
}

/** Prints a one-line summary of a fuzz target (visible with the spec reporter). */
export function summary(target: string, report: FuzzReport): string {
  const outcomes = Object.entries(report.outcomes)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return `${target}: ${report.ran} cases (seed ${FUZZ_SEED}): ${outcomes}`;
}

// --- answers to a tunnel request -------------------------------------------------------------------

/** What other servers send first: what a proxy's answer must never be taken for. */
export const FOREIGN_GREETINGS: readonly string[] = [
  'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n',
  'SSH-1.99-Cisco-1.25\r\n',
  '* OK [CAPABILITY IMAP4rev1 LITERAL+ STARTTLS] Dovecot ready.\r\n',
  '+OK POP3 server ready\r\n',
  '220 mail.corp.test ESMTP Postfix\r\n',
  '220 (vsFTPd 3.0.5)\r\n',
  'RFB 003.008\n',
  '\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03',
  '\x15\x03\x01\x00\x02\x02\x46',
  'HTTP/2 200\r\n',
  'HTTP/1.1 OK\r\n\r\n',
  'http/1.1 200 ok\r\n',
  'J\x00\x00\x00\x0a8.0.36\x00', // MySQL's greeting
  '\x00\x00\x00\x08\x04\xd2\x16\x2f',
  '<!DOCTYPE html>\n<html>',
  '-ERR unknown command\r\n',
];

/**
 * An oracle, written apart from the code under test: true while `bytes` may still begin an
 * answer head `HTTP/1.0|1.1 NNN` followed by a space or the line's CR LF.
 */
export function mayBeginStatusLine(bytes: Buffer): boolean {
  const start = bytes.subarray(0, 13).toString('latin1');
  const template = /^(H(T(T(P(\/(1(\.([01]( ([0-9]([0-9]([0-9]([ \r])?)?)?)?)?)?)?)?)?)?)?)?)?$/;
  if (!template.test(start)) return false;
  const lf = bytes.indexOf(0x0a);
  if (lf < 0) return true;
  return /^HTTP\/1\.[01] [0-9]{3}( [^\r\n]*)?\r$/.test(bytes.subarray(0, lf).toString('latin1'));
}
