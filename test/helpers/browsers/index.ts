/**
 * Stand-in browsers that burrow can launch with `--browser-cmd <program>` (run directly, no
 * shell, the sign-in URL as the only argument), as a user's browser would be.
 *
 * - {@link followBrowser}: scripted; submits the fake proxy's sign-in form with plain HTTP
 *   requests and follows the 302 to burrow's loopback callback. Fast (tens of ms).
 * - {@link chromiumBrowser}: Debian's real Chromium, headless, driven by playwright-core:
 *   loads the sign-in page, clicks the button, lands on the callback. Needs /usr/bin/chromium
 *   (apt package `chromium`, installed by .ci/run).
 *
 * Both read their options from the environment, which burrow passes on to them, so give them
 * to burrow's env, e.g. `spawnBurrow(args, { env: browserEnv({ log }) })`:
 *
 * | variable             | meaning                                                                 |
 * |----------------------|-------------------------------------------------------------------------|
 * | `BROWSER_LOG`        | file that gets one line (`<ISO time> <pid> <name>`) per launch          |
 * | `BROWSER_MODE`       | `follow` (default), `ignore` (log the launch, do nothing, exit 0),      |
 * |                      | `print` (log, print the URL to stdout, exit 0)                           |
 * | `BROWSER_EMAIL`      | who signs in (default: follow alice@corp.test, chromium the address    |
 * |                      | the proxy pre-fills, which is also alice@corp.test by default)          |
 * | `BROWSER_DELAY_MS`   | wait this long before submitting the sign-in form (a slow human)        |
 * | `BROWSER_CA`         | CA file trusted for https (follow only; default test/fixtures/ca.pem)   |
 * | `BROWSER_SCREENSHOT` | PNG path: chromium screenshots the callback page there                   |
 * | `BROWSER_TIMEOUT_MS` | bound of each request / browser step (default 10 s follow, 20 s chromium)|
 *
 * Exit status: 0 signed in (or ignore/print), 1 sign-in failed, 2 bad usage, 3 gave up
 * (watchdog: follow after delay + 6 × timeout + 1 s, chromium after 60 s + delay).
 *
 * How they are runnable: the compiled files (dist/test/helpers/browsers/*.js) start with
 * `#!/usr/bin/env node` (tsc keeps a shebang) and importing this module makes them executable
 * (chmod 755). The chmod is done here, at run time, because tsc writes fresh output as 0644 on
 * a clean clone and git does not track dist/; chmod is idempotent, so parallel test processes
 * importing this module at once are safe. `node` must be on the PATH given to burrow (tests
 * pass `process.env.PATH`).
 */
import { accessSync, chmodSync, constants, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Path of Debian's Chromium, the only browser the chromium stand-in will run. */
export const CHROMIUM_EXECUTABLE = '/usr/bin/chromium';

function runnable(name: string): string {
  const file = join(here, `${name}.js`);
  if (!existsSync(file)) throw new Error(`stand-in browser ${file} is missing: build with \`npx tsc -p tsconfig.json\` and run the compiled tests`);
  if (!readFileSync(file, 'utf8').startsWith('#!/usr/bin/env node\n')) throw new Error(`${file} lost its #!/usr/bin/env node line`);
  chmodSync(file, 0o755);
  accessSync(file, constants.X_OK);
  return file;
}

/** Absolute path of the scripted stand-in (dist/test/helpers/browsers/follow.js), executable. */
export const followBrowser = runnable('follow');

/** Absolute path of the Chromium stand-in (dist/test/helpers/browsers/chromium.js), executable. */
export const chromiumBrowser = runnable('chromium');

/**
 * Throws unless /usr/bin/chromium exists. Tests that use {@link chromiumBrowser} call this so a
 * missing browser is a clear failure (in CI and locally alike), never a skip.
 */
export function requireChromium(): void {
  if (existsSync(CHROMIUM_EXECUTABLE)) return;
  const where = process.env.CI === 'true' ? 'CI: .ci/run must install it' : 'install it';
  throw new Error(`${CHROMIUM_EXECUTABLE} not found; the Chromium sign-in tests need it (${where}: apt-get install chromium)`);
}

export interface BrowserOptions {
  /** BROWSER_LOG: file counting launches, one line each. */
  log?: string;
  mode?: 'follow' | 'ignore' | 'print';
  email?: string;
  delayMs?: number;
  ca?: string;
  screenshot?: string;
  timeoutMs?: number;
}

/** The BROWSER_* variables for `options`, to merge into the env given to burrow. */
export function browserEnv(options: BrowserOptions): Record<string, string> {
  const env: Record<string, string> = {};
  if (options.log !== undefined) env.BROWSER_LOG = options.log;
  if (options.mode !== undefined) env.BROWSER_MODE = options.mode;
  if (options.email !== undefined) env.BROWSER_EMAIL = options.email;
  if (options.delayMs !== undefined) env.BROWSER_DELAY_MS = String(options.delayMs);
  if (options.ca !== undefined) env.BROWSER_CA = options.ca;
  if (options.screenshot !== undefined) env.BROWSER_SCREENSHOT = options.screenshot;
  if (options.timeoutMs !== undefined) env.BROWSER_TIMEOUT_MS = String(options.timeoutMs);
  return env;
}

/** The lines of a BROWSER_LOG file (one per launch); none if it does not exist yet. */
export function browserLaunches(logFile: string): string[] {
  if (!existsSync(logFile)) return [];
  return readFileSync(logFile, 'utf8').split('\n').filter((line) => line !== '');
}

/** What the stand-in browsers reported as failures (`$BROWSER_LOG.errors`, see common.ts); empty if none. */
export function browserFailures(logFile: string): string {
  const file = `${logFile}.errors`;
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}
