#!/usr/bin/env node
/**
 * A scripted stand-in browser for `burrow --browser-cmd`: `follow.js <sign-in URL>`.
 *
 * It submits the fake proxy's sign-in form the short way (`GET …/sign_in?…&email=…&submit=1`),
 * then follows redirects like a browser (the proxy's 302 leads to burrow's loopback callback),
 * and exits 0 when the last answer is a 200. See index.ts for the environment it reads.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { setTimeout as delay } from 'node:timers/promises';
import { fixture } from '../fixtures.js';
import { die, envMs, ENV, exitIfRunAsTestFile, recordLaunch, redact, watchdog } from './common.js';

const NAME = 'follow-browser';
const MAX_REDIRECTS = 5;

interface Answer {
  status: number;
  location: string | undefined;
}

/** One GET without connection reuse (so nothing keeps the process alive), bounded by `timeoutMs`. */
function get(url: URL, ca: string, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    // Browsers take response heads far beyond Node's 16 KiB (the redirect to burrow carries the token).
    const options = { method: 'GET', agent: false as const, maxHeaderSize: 256 * 1024, signal: AbortSignal.timeout(timeoutMs), headers: { 'User-Agent': NAME, Accept: 'text/html' } };
    const onResponse = (res: IncomingMessage): void => {
      res.resume(); // the body is not needed, but must be drained for 'end'
      res.once('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location }));
      res.once('error', reject);
    };
    const req =
      url.protocol === 'https:' ? httpsRequest(url, { ...options, ca }, onResponse) : url.protocol === 'http:' ? httpRequest(url, options, onResponse) : undefined;
    if (!req) return reject(new Error(`unsupported URL scheme ${url.protocol}`));
    req.once('error', (error) => reject(error.name === 'AbortError' ? new Error(`no answer from ${url.origin} within ${timeoutMs} ms`) : error));
    req.end();
  });
}

async function main(): Promise<void> {
  exitIfRunAsTestFile();
  recordLaunch(NAME);
  const arg = process.argv[2];
  if (!arg || process.argv.length !== 3) die(NAME, 'usage: follow.js <sign-in URL> (exactly one argument)', 2);
  const mode = process.env[ENV.mode] ?? '';
  if (mode === 'ignore') return; // a user who never finishes signing in
  if (mode === 'print') {
    process.stdout.write(`${arg}\n`);
    return;
  }
  if (mode !== '' && mode !== 'follow') die(NAME, `unknown ${ENV.mode} ${JSON.stringify(mode)}`, 2);

  const delayMs = envMs(ENV.delayMs, 0);
  const timeoutMs = envMs(ENV.timeoutMs, 10_000);
  watchdog(NAME, delayMs + (MAX_REDIRECTS + 1) * timeoutMs + 1000);

  let url: URL;
  try {
    url = new URL(arg);
  } catch {
    die(NAME, `not a URL: ${arg}`, 2);
  }
  const ca = readFileSync(process.env[ENV.ca] || fixture('ca.pem'), 'utf8');
  // The sign-in form, submitted the way the fake proxy accepts it as a GET.
  url.searchParams.set('email', process.env[ENV.email] || 'alice@corp.test');
  url.searchParams.set('submit', '1');

  if (delayMs > 0) await delay(delayMs); // a human reading the page

  for (let hop = 0; ; hop++) {
    let answer: Answer;
    try {
      answer = await get(url, ca, timeoutMs);
    } catch (error) {
      die(NAME, `GET ${redact(url.href)}: ${(error as Error).message}`);
    }
    if (answer.status >= 300 && answer.status < 400 && answer.location) {
      if (hop >= MAX_REDIRECTS) die(NAME, `more than ${MAX_REDIRECTS} redirects`);
      url = new URL(answer.location, url);
      continue;
    }
    if (answer.status !== 200) die(NAME, `GET ${redact(url.href)} answered ${answer.status}`);
    return;
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => die(NAME, error instanceof Error ? error.message : String(error)),
);
