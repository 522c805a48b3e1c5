#!/usr/bin/env node
/**
 * A real browser for `burrow --browser-cmd`: `chromium.js <sign-in URL>`.
 *
 * Drives Debian's Chromium (/usr/bin/chromium, apt package `chromium`) headless with
 * playwright-core: opens the sign-in URL, clicks the proxy's `#sign-in` button, waits until
 * the browser has landed on the loopback callback (the URL carrying `pomerium_jwt`) and that
 * page has loaded with a 200, optionally screenshots it, closes the browser and exits 0.
 * Any failure: one line on stderr and a non-zero exit. The whole run is bounded (60 s).
 */
import { existsSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import type { Browser, Response } from 'playwright-core';
import { die, envMs, ENV, exitIfRunAsTestFile, recordLaunch, redact, reportFailure, watchdog } from './common.js';

const NAME = 'chromium-browser';
export const CHROMIUM_PATH = '/usr/bin/chromium';
const HARD_LIMIT_MS = 60_000;

let browser: Browser | undefined;

function isCallback(url: string): boolean {
  try {
    return new URL(url).searchParams.has('pomerium_jwt');
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  exitIfRunAsTestFile();
  recordLaunch(NAME);
  const arg = process.argv[2];
  if (!arg || process.argv.length !== 3) die(NAME, 'usage: chromium.js <sign-in URL> (exactly one argument)', 2);
  const mode = process.env[ENV.mode] ?? '';
  if (mode === 'ignore') return;
  if (mode === 'print') {
    process.stdout.write(`${arg}\n`);
    return;
  }
  const delayMs = envMs(ENV.delayMs, 0);
  const stepMs = envMs(ENV.timeoutMs, 20_000);
  // Exits (3) if anything below hangs; playwright's 'exit' handler then SIGKILLs the browser's process group.
  watchdog(NAME, HARD_LIMIT_MS + delayMs);
  if (!existsSync(CHROMIUM_PATH)) die(NAME, `${CHROMIUM_PATH} not found: install the Debian package "chromium" (apt-get install chromium)`);

  // Loaded only now: the test-runner pass and the ignore/print modes stay fast.
  const { chromium } = await import('playwright-core');
  const started = Date.now();
  const launch = () => chromium.launch({
    executablePath: CHROMIUM_PATH, // never a playwright-downloaded browser
    headless: true,
    timeout: stepMs,
    // Ours below exit promptly; playwright's would close the browser and let main() carry on.
    handleSIGTERM: false,
    handleSIGINT: false,
    handleSIGHUP: false,
    // Root (CI, containers) needs --no-sandbox. The rest keeps Chromium off the network.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  // Starting Chromium is the one step that is the machine's, not burrow's: on a loaded CI machine
  // it once stalled past its timeout. One more try; the failure is reported either way.
  browser = await launch().catch((error: unknown) => {
    reportFailure(NAME, `launching Chromium failed, trying once more: ${error instanceof Error ? error.message : String(error)}`);
    return launch();
  });
  // The proxy's certificate is signed by the test CA, which Chromium does not know.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.setDefaultTimeout(stepMs);

  const signIn = await page.goto(arg, { waitUntil: 'load' });
  if (signIn?.status() !== 200) throw new Error(`sign-in page answered ${signIn?.status() ?? 'nothing'}`);
  const email = process.env[ENV.email];
  if (email) await page.fill('#email', email); // else the proxy's pre-filled address
  if (delayMs > 0) await delay(delayMs);

  // Form POST -> 302 from the proxy -> GET of burrow's loopback URL: the document response we want.
  const landed = page.waitForResponse((r: Response) => r.request().isNavigationRequest() && r.frame() === page.mainFrame() && isCallback(r.url()));
  await page.click('#sign-in');
  const callback = await landed;
  await page.waitForLoadState('load');
  if (callback.status() !== 200) throw new Error(`callback ${redact(callback.url())} answered ${callback.status()}`);

  const screenshot = process.env[ENV.screenshot];
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  if (process.env.BROWSER_VERBOSE) process.stderr.write(`${NAME}: signed in ${Date.now() - started} ms after launch\n`);
}

/** Closes the browser (bounded) and exits; if the close stalls, process.exit runs playwright's
 *  'exit' handler, which SIGKILLs the browser's process group. */
async function finish(code: number): Promise<never> {
  await Promise.race([browser?.close().catch(() => undefined), delay(5000, undefined, { ref: false })]);
  process.exit(code);
}

for (const [signal, number] of [['SIGTERM', 15], ['SIGINT', 2], ['SIGHUP', 1]] as const) process.once(signal, () => void finish(128 + number));

main().then(
  () => finish(0),
  (error: unknown) => {
    reportFailure(NAME, error instanceof Error ? error.message : String(error));
    return finish(1);
  },
);
