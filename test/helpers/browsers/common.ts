/**
 * Shared by the stand-in browsers (follow.ts, chromium.ts), which run as their own processes
 * launched by burrow's `--browser-cmd`. Everything here is about being a well-behaved child:
 * record the launch, fail with one line, never hang.
 */
import { appendFileSync } from 'node:fs';

/** Environment variables the stand-ins read; see index.ts for their meaning. */
export const ENV = {
  log: 'BROWSER_LOG',
  email: 'BROWSER_EMAIL',
  ca: 'BROWSER_CA',
  delayMs: 'BROWSER_DELAY_MS',
  mode: 'BROWSER_MODE',
  screenshot: 'BROWSER_SCREENSHOT',
  timeoutMs: 'BROWSER_TIMEOUT_MS',
} as const;

/**
 * `node --test dist/test/` runs every .js file under dist/test/ as a test file, these programs
 * included, with no argument and NODE_TEST_CONTEXT set: that run must pass without doing
 * anything (and without counting as a launch).
 */
export function exitIfRunAsTestFile(): void {
  if (process.argv.length === 2 && process.env.NODE_TEST_CONTEXT) process.exit(0);
}

/** Appends `<ISO time> <pid> <name>` to $BROWSER_LOG, one line per launch (O_APPEND: atomic for a short line). */
export function recordLaunch(name: string): void {
  const file = process.env[ENV.log];
  if (file) appendFileSync(file, `${new Date().toISOString()} ${process.pid} ${name}\n`);
}

/** Tokens must never reach output, not even a test's failure message. */
export function redact(text: string): string {
  return text.replace(/(pomerium_jwt=)[^&#\s]*/g, '$1[hidden]');
}

/**
 * Says why the stand-in failed, in one line: on stderr, and (burrow runs a browser with its output
 * ignored) appended to `$BROWSER_LOG.errors`, so a test can show it.
 */
export function reportFailure(name: string, message: string): void {
  const line = `${name}: ${redact(message).split('\n')[0]}`;
  process.stderr.write(`${line}\n`);
  const file = process.env[ENV.log];
  if (file) appendFileSync(`${file}.errors`, `${new Date().toISOString()} ${process.pid} ${line}\n`);
}

/** Reports one line (see reportFailure) and exits with `code`. */
export function die(name: string, message: string, code = 1): never {
  reportFailure(name, message);
  process.exit(code);
}

/** A non-negative integer from the environment, or `fallback`. */
export function envMs(variable: string, fallback: number): number {
  const raw = process.env[variable];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) die('browser', `${variable} must be a non-negative integer, got ${JSON.stringify(raw)}`, 2);
  return value;
}

/**
 * Exits with status 3 after `ms` whatever the process is doing; unref'd, so it never keeps a
 * finished process alive. Playwright's own 'exit' handler still kills a launched browser.
 */
export function watchdog(name: string, ms: number): void {
  setTimeout(() => die(name, `gave up after ${ms} ms`, 3), ms).unref();
}
