/**
 * Fuzzing the pure parsers of hostile input: destinations (with and without --pomerium-url),
 * --listen values, environment proxy URLs and NO_PROXY lists, and JWTs. Every case must end in
 * a value that satisfies the parser's guarantees or a UsageError with a stable code whose
 * printed line is one line; nothing may throw anything else. Seeded and bounded: see
 * test/helpers/fuzz.ts (BURROW_FUZZ_SEED, BURROW_FUZZ_RUNS, BURROW_FUZZ_TIME).
 *
 * Each failure the fuzzer found is kept below as a fixed regression example.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { parsePaste } from '../../src/auth/paste.js';
import { EXPIRY_SKEW_SECONDS, JWT_SHAPE, isExpired, tokenInfo } from '../../src/auth/jwt.js';
import { parseProxyUrl, parseTarget } from '../../src/cli/destination.js';
import { formatAuthority, isLoopback, type ProxyEndpoint } from '../../src/target.js';
import { parseListen } from '../../src/cli/listen-address.js';
import { BurrowError, ExitCode, UsageError } from '../../src/errors.js';
import { judgeAnswerStart, parseAnswerHead } from '../../src/net/http-answer.js';
import { bypassesProxy, forwardProxyFor, type ForwardProxy } from '../../src/net/proxy-env.js';
import { formatExpiry } from '../../src/output/format.js';
import { formatFailure } from '../../src/output/log.js';
import { redact } from '../../src/output/redact.js';
import { decodeCredential, encodeCredential } from '../../src/store/file.js';
import { ALNUM, FOREIGN_GREETINGS, fuzz, mayBeginStatusLine, mutate, randomString, type Rng, stringCase, summary, tripwire } from '../helpers/fuzz.js';

const wire = tripwire();
after(() => {
  wire.remove();
  wire.check('after the unit fuzz targets');
});

/** A control character, a line separator or a bidi override: never raw in a line a terminal shows. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028-\u202e\u2066-\u2069]/;

/** The CLI contract for a rejected value: a UsageError with one of `codes`, printed as one line. */
function assertUsage(error: unknown, codes: string[]): string {
  if (!(error instanceof UsageError)) throw new Error(`not a UsageError: ${error instanceof Error ? error.stack : String(error)}`);
  assert.ok(codes.includes(error.code), `code ${error.code} not in ${codes.join(', ')}`);
  assert.equal(error.exitCode, ExitCode.usage);
  assert.ok(error.hint && error.hint.length > 0, 'a hint');
  const line = formatFailure(error);
  assert.doesNotMatch(line, CONTROL, `one printable line: ${JSON.stringify(line)}`);
  assert.match(line, /^burrow: error: .+ — .+$/);
  return error.code;
}

/** What may go into a CONNECT request line: a host name, or an IP literal (with a zone id). */
const SAFE_AUTHORITY = /^(\[[0-9a-f:.]+(%[A-Za-z0-9:._~-]+)?\]|[a-z0-9._-]+):[0-9]{1,5}$/;

function assertPort(port: number, min = 1): void {
  assert.ok(Number.isInteger(port) && port >= min && port <= 65535, `port ${port}`);
}

function assertEndpoint(proxy: ProxyEndpoint): void {
  assert.ok(proxy.scheme === 'https' || proxy.scheme === 'http');
  assertPort(proxy.port);
  assert.ok(proxy.host.length > 0);
  assert.equal(proxy.origin, `${proxy.scheme}://${formatAuthority(proxy.host, proxy.port)}`);
  assert.match(formatAuthority(proxy.host, proxy.port), SAFE_AUTHORITY, 'the origin is a plain scheme://host:port');
}

// --- destinations ---------------------------------------------------------------------------------

const DESTINATIONS = [
  'git.corp.example.com:22',
  'Git.Corp.Example.COM.:22',
  '[::1]:22',
  '[fe80::1%eth0]:22',
  '10.0.0.5:22',
  'a:1',
  'host_name:65535',
  'xn--bcher-kva.example:22',
  'tcp+https://git.corp.test:22',
  'TCP+HTTPS://git.corp.test:22/',
  'tcp+https://proxy.corp.test:8443/db.internal:5432',
  'tcp+https://[::1]:8443/[fe80::1]:22',
  'tcp+http://localhost:8080/redis:6379',
  'wss://gw.corp.test/ssh?x=1',
  'ws://127.0.0.1:8080/path/to',
  'wss://[::1]/a%20b',
];
const PROXY_URLS = ['https://proxy.corp.test', 'https://127.0.0.1:9443/', 'http://[::1]:8080', 'HTTPS://P.TEST:443', 'https://localhost:1'];

function checkTarget(input: string, pomeriumUrl: string | undefined): string {
  let target;
  try {
    target = parseTarget(input, pomeriumUrl);
  } catch (error) {
    return `rejected ${assertUsage(error, ['BURROW_INVALID_DESTINATION', 'BURROW_INVALID_URL', 'BURROW_USAGE'])}`;
  }
  assertEndpoint(target.proxy);
  const dest = target.destination;
  assertPort(dest.port);
  if (target.websocket) {
    const url = new URL(target.websocket.url);
    assert.ok(url.protocol === 'wss:' || url.protocol === 'ws:');
    assert.doesNotMatch(target.websocket.url, /[\s\u0000-\u001f]/, 'no whitespace in the URL sent in the request line');
    assert.equal(dest.authority, target.websocket.url);
    return 'websocket';
  }
  // The authority goes into the CONNECT request line: nothing but a host and a port.
  assert.equal(dest.authority, formatAuthority(dest.host, dest.port));
  assert.match(dest.authority, SAFE_AUTHORITY);
  // Parsing what we would send gives it back.
  assert.equal(parseTarget(dest.authority).destination.authority, dest.authority);
  if (pomeriumUrl !== undefined) assert.deepEqual(target.proxy, parseProxyUrl(pomeriumUrl, '--pomerium-url'));
  return pomeriumUrl === undefined ? 'accepted' : 'accepted with --pomerium-url';
}

describe('fuzz: destinations', () => {
  it('every destination (and --pomerium-url) parses to a sane target or a one-line usage error', async (t) => {
    const report = await fuzz(
      'destination',
      { runs: 4000, budgetMs: 4000 },
      (rng) => ({
        input: stringCase(rng, DESTINATIONS, 60),
        pomeriumUrl: rng.chance(0.35) ? stringCase(rng, PROXY_URLS, 40) : undefined,
      }),
      ({ input, pomeriumUrl }) => checkTarget(input, pomeriumUrl),
    );
    t.diagnostic(summary('destination', report));
    wire.check();
  });

  it('regressions found by fuzzing', () => {
    // A line break (or terminal escape) in the input came out raw in the reason: two lines on stderr.
    assert.equal(checkTarget('git\n.corp:22', undefined), 'rejected BURROW_INVALID_DESTINATION');
    assert.equal(checkTarget('tcp+https://p\u001b[31m/h:22', undefined), 'rejected BURROW_INVALID_DESTINATION');
    assert.equal(checkTarget('host:2\r2', undefined), 'rejected BURROW_INVALID_DESTINATION');
    // Port 0 in a URL was accepted (WHATWG URL allows it): a dial to port 0.
    assert.equal(checkTarget('h:22', 'https://proxy.corp.test:0'), 'rejected BURROW_INVALID_URL');
    assert.equal(checkTarget('wss://gw.corp.test:0/ssh', undefined), 'rejected BURROW_INVALID_DESTINATION');
  });
});

// --- --listen -------------------------------------------------------------------------------------

const LISTENS = ['-', ':2202', '2202', ':0', '127.0.0.1:0', 'localhost:8080', '[::1]:2202', '0.0.0.0:22', '[::]:0', 'Box.Local:9'];

function checkListen(input: string): string {
  let listen;
  try {
    listen = parseListen(input);
  } catch (error) {
    return `rejected ${assertUsage(error, ['BURROW_INVALID_LISTEN'])}`;
  }
  if (listen.kind === 'stdio') {
    assert.equal(input.trim(), '-');
    return 'stdio';
  }
  assertPort(listen.port, 0);
  assert.match(formatAuthority(listen.host, listen.port), SAFE_AUTHORITY);
  assert.equal(listen.loopback, isLoopback(listen.host));
  return listen.loopback ? 'loopback' : 'non-loopback';
}

describe('fuzz: --listen', () => {
  it('every --listen value is stdio, a sane address, or a one-line usage error', async (t) => {
    const report = await fuzz('listen', { runs: 4000, budgetMs: 3000 }, (rng) => stringCase(rng, LISTENS, 30), checkListen);
    t.diagnostic(summary('listen', report));
    wire.check();
  });

  it('regressions found by fuzzing', () => {
    assert.equal(checkListen('127.0.0.1:2\n202'), 'rejected BURROW_INVALID_LISTEN');
    assert.equal(checkListen('\u001b]0;pwned\u0007:22'), 'rejected BURROW_INVALID_LISTEN');
  });
});

// --- environment proxy URLs -------------------------------------------------------------------------

const FORWARD_PROXIES = [
  'http://squid.corp:3128',
  'https://user:p%40ssw0rd@proxy.corp:8443',
  'proxy.corp:3128',
  'http://[::1]:3128',
  'HTTP://Proxy.Corp.',
  'socks5://x:1080',
  'http://u:hunter2secret@10.0.0.1',
  'http://:0nly-s3cr3t@squid.corp:3128/',
];
const NO_PROXY_LISTS = ['*', '.corp.test', 'localhost,127.0.0.1,::1', '10.0.0.0/8', '[::1]:443', 'proxy.corp.test:443', '*.corp.test proxy', 'fe80::/10'];
const IDENTITY_PROXIES = ['https://proxy.corp.test', 'http://proxy.corp.test:8080', 'https://10.1.2.3:8443', 'https://[::1]', 'https://localhost'].map((u) =>
  parseProxyUrl(u, 'test'),
);
const PROXY_VARS = ['https_proxy', 'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'];

interface ProxyEnvCase {
  target: ProxyEndpoint;
  values: { proxy?: string | false };
  env: NodeJS.ProcessEnv;
}

function proxyEnvCase(rng: Rng): ProxyEnvCase {
  const env: NodeJS.ProcessEnv = {};
  for (const name of PROXY_VARS) if (rng.chance(0.3)) env[name] = stringCase(rng, FORWARD_PROXIES, 50);
  for (const name of ['no_proxy', 'NO_PROXY']) if (rng.chance(0.3)) env[name] = stringCase(rng, NO_PROXY_LISTS, 40);
  const values = rng.weighted<() => ProxyEnvCase['values']>([
    [6, () => ({})],
    [1, () => ({ proxy: false })],
    [2, () => ({ proxy: stringCase(rng, FORWARD_PROXIES, 50) })],
  ])();
  return { target: rng.pick(IDENTITY_PROXIES), values, env };
}

/** The passwords in a proxy URL, as they could leak (raw, and percent-decoded). */
function secretsIn(value: string): string[] {
  const match = /:\/\/[^/@]*:([^/@]{4,})@/.exec(value);
  if (!match) return [];
  const raw = match[1]!;
  let decoded = raw;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    // Not valid percent-encoding: only the raw form can leak.
  }
  return [raw, decoded].filter((s) => s.length >= 4);
}

function checkProxyEnv({ target, values, env }: ProxyEnvCase): string {
  let forward: ForwardProxy | undefined;
  try {
    forward = forwardProxyFor(target, values, env);
  } catch (error) {
    const code = assertUsage(error, ['BURROW_INVALID_URL']);
    const line = formatFailure(error as BurrowError);
    for (const value of [typeof values.proxy === 'string' ? values.proxy : '', ...PROXY_VARS.map((n) => env[n] ?? '')]) {
      for (const secret of secretsIn(value)) assert.ok(!line.includes(secret), `the password is not shown: ${line}`);
    }
    return `rejected ${code}`;
  }
  if (forward === undefined) {
    const noProxy = env.no_proxy?.trim() ? env.no_proxy : env.NO_PROXY;
    if (typeof values.proxy !== 'string' && noProxy?.split(/[\s,]+/).includes('*')) return 'direct (NO_PROXY=*)';
    return 'direct';
  }
  assert.ok(forward.scheme === 'http' || forward.scheme === 'https');
  assertPort(forward.port);
  assert.match(forward.origin, /^https?:\/\/(\[[0-9a-f:.]+\]|[^\s@/\\[\]]+):[0-9]+$/, `origin without credentials: ${forward.origin}`);
  if (forward.authorization !== undefined) assert.match(forward.authorization, /^Basic [A-Za-z0-9+/]*=*$/);
  return forward.authorization ? 'forward with credentials' : 'forward';
}

describe('fuzz: environment proxy URLs', () => {
  it('HTTPS_PROXY/ALL_PROXY/NO_PROXY and --proxy give a sane forward proxy, none, or a one-line error without the password', async (t) => {
    const report = await fuzz('proxy-env', { runs: 4000, budgetMs: 3000 }, proxyEnvCase, checkProxyEnv);
    t.diagnostic(summary('proxy-env', report));
    wire.check();
  });

  it('NO_PROXY matching never throws and honours * and exact entries', async (t) => {
    const report = await fuzz(
      'no-proxy',
      { runs: 3000, budgetMs: 2000 },
      (rng) => ({ list: stringCase(rng, NO_PROXY_LISTS, 60), target: rng.pick(IDENTITY_PROXIES) }),
      ({ list, target }) => {
        const result = bypassesProxy(list, target.host, target.port);
        assert.equal(typeof result, 'boolean');
        assert.equal(bypassesProxy(`${list},*`, target.host, target.port), true);
        assert.equal(bypassesProxy(`${list} ${target.host}`, target.host, target.port), true);
        return result ? 'bypass' : 'proxied';
      },
    );
    t.diagnostic(summary('no-proxy', report));
  });

  it('regressions found by fuzzing', () => {
    const target = IDENTITY_PROXIES[0]!;
    // Port 0 was accepted as the forward proxy's port.
    assert.equal(checkProxyEnv({ target, values: {}, env: { HTTPS_PROXY: 'http://squid.corp:0' } }), 'rejected BURROW_INVALID_URL');
    // "10.0.0.0/" (no prefix length) read as /0: every IPv4 address bypassed the proxy.
    assert.equal(bypassesProxy('10.0.0.0/', '192.168.1.1', 443), false);
    assert.equal(bypassesProxy('10.0.0.0/8', '10.9.8.7', 443), true);
  });
});

// --- JWTs ----------------------------------------------------------------------------------------

const b64 = (value: string | Buffer) => Buffer.from(value).toString('base64url');
const NOW_S = Math.floor(Date.now() / 1000);

function claimValue(rng: Rng, kind: 'exp' | 'user'): unknown {
  if (kind === 'exp') {
    if (rng.chance(0.6)) return NOW_S + rng.range(-100_000, 100_000);
    return rng.pick<() => unknown>([
      () => NOW_S + rng.next(),
      () => String(NOW_S + 3600),
      () => 1e308,
      () => -1e308,
      () => Number.MAX_SAFE_INTEGER,
      () => 2 ** 53 + 1,
      () => -1,
      () => 0,
      () => null,
      () => true,
      () => [NOW_S],
      () => ({ exp: NOW_S }),
      () => undefined,
    ])();
  }
  return rng.pick<() => unknown>([
    () => 'alice@corp.test',
    () => randomString(rng, 40),
    () => `alice\n burrow: error: fake line\u001b[2J`,
    () => 'x'.repeat(rng.pick([255, 257, 100_000])),
    () => '\u202eevil@corp.test',
    () => 42,
    () => null,
    () => undefined,
  ])();
}

/** A token: structured (real JWS shape with odd claims) or mutated, or junk. */
function jwtCase(rng: Rng): string {
  const header = b64(JSON.stringify({ alg: rng.pick(['ES256', 'none', 'HS256']), typ: 'JWT' }));
  const claims: Record<string, unknown> = {};
  if (rng.chance(0.8)) claims.exp = claimValue(rng, 'exp');
  if (rng.chance(0.5)) claims.iat = rng.chance(0.5) ? claimValue(rng, 'exp') : NOW_S;
  if (rng.chance(0.5)) claims.email = claimValue(rng, 'user');
  if (rng.chance(0.3)) claims.sub = claimValue(rng, 'user');
  const signature = b64(rng.bytes(rng.range(0, 96)));
  const payloadText = rng.weighted<() => string>([
    [6, () => JSON.stringify(claims)],
    [1, () => rng.pick(['null', '[]', '"str"', '42', '{', '{"exp":1e999}', '{"exp":-1e999}', '{"__proto__":{"exp":1}}', '\u0000'])],
    [1, () => randomString(rng, 50)],
  ])();
  const structured = `${header}.${b64(payloadText)}.${signature}`;
  return rng.weighted<() => string>([
    [5, () => structured],
    [3, () => mutate(rng, structured)],
    [1, () => `${header}.${Buffer.from(payloadText).toString('base64')}.${signature}`],
    [1, () => `${header}.${b64(rng.bytes(rng.range(0, 200)))}.${signature}`],
    [1, () => `${header}.${b64(`{"exp":${NOW_S},"pad":"${'A'.repeat(rng.pick([70_000, 200_000]))}"}`)}.${signature}`],
    [1, () => randomString(rng, 80)],
    [1, () => Array.from({ length: rng.range(0, 6) }, () => randomString(rng, 12, `${ALNUM}-_=+/`)).join('.')],
  ])();
}

const EXPIRY_TEXT = /^(no expiry known|expires in \d+ (s|min|h|days)|expired \d+ (s|min|h|days) ago)$/;

function checkJwt(token: string): string {
  const info = tokenInfo(token);
  if (info.expiresAt !== undefined) assert.ok(Number.isFinite(info.expiresAt), `expiresAt ${info.expiresAt}`);
  if (info.user !== undefined) {
    assert.equal(typeof info.user, 'string');
    assert.ok(info.user.length <= 256, 'user bounded');
    assert.doesNotMatch(info.user, CONTROL, `user printable: ${JSON.stringify(info.user)}`);
  }
  // Whatever exp said, the expiry text is a plain sentence.
  assert.match(formatExpiry(info.expiresAt, Date.now()), EXPIRY_TEXT);
  assert.equal(typeof isExpired(info.expiresAt, Date.now()), 'boolean');
  // An exp the token plainly states is honoured, less the skew margin.
  const payload = token.split('.')[1] ?? '';
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    claims = undefined;
  }
  const exp = (claims as { exp?: unknown } | undefined)?.exp;
  if (typeof exp === 'number' && Math.abs(exp) < 1e11 && payload.length <= 64 * 1024 && token.split('.').length >= 2) {
    assert.ok(info.expiresAt !== undefined && info.expiresAt <= exp && info.expiresAt >= exp - EXPIRY_SKEW_SECONDS, `exp ${exp} -> ${info.expiresAt}`);
  }
  // What the store keeps round-trips.
  const credential = { proxy: 'https://p.test:443', token: token || 'x', expiresAt: info.expiresAt, user: info.user, storedAt: 1 };
  assert.deepEqual(decodeCredential(encodeCredential(credential), 'https://p.test:443'), JSON.parse(JSON.stringify(credential)));
  // Pasted back, a token is recognised or not, never thrown on; a well-formed one never leaks in a line.
  const pasted = parsePaste(`http://127.0.0.1:1/cb?${new URLSearchParams({ pomerium_jwt: token })}`, 'http://127.0.0.1:1/cb');
  assert.ok('problem' in pasted || JWT_SHAPE.test(pasted.token));
  if (JWT_SHAPE.test(token) && token.startsWith('eyJ') && token.length > 20) {
    const line = redact(`sent Authorization: Pomerium ${token} and Bearer Pomerium-${token} and ${token}`);
    assert.ok(!line.includes(token), `redacted: ${line.slice(0, 200)}`);
  }
  if (info.expiresAt === undefined) return 'no expiry';
  return isExpired(info.expiresAt, Date.now()) ? 'expired' : 'valid';
}

describe('fuzz: JWTs', () => {
  it('any token decodes to a finite expiry or none and a printable user, and is never shown', async (t) => {
    const report = await fuzz('jwt', { runs: 3000, budgetMs: 4000 }, jwtCase, checkJwt);
    t.diagnostic(summary('jwt', report));
    wire.check();
  });

  it('regressions found by fuzzing', () => {
    const header = b64('{"alg":"ES256"}');
    const token = (claims: string) => `${header}.${b64(claims)}.c2ln`;
    // A user claim with a line break and escape sequences went raw into "signed in as …" and status.
    assert.equal(tokenInfo(token('{"email":"a\\nburrow: error: x\\u001b[2J"}')).user, 'a?burrow: error: x?[2J');
    // exp = 1e308 printed "expires in 1.1574074074074074e+303 days"; it now counts as no expiry.
    assert.equal(tokenInfo(token('{"exp":1e308}')).expiresAt, undefined);
    assert.equal(checkJwt(token('{"exp":-1e308}')), 'no expiry');
  });
});

// --- the start of a proxy's answer ------------------------------------------------------------------

const GOOD_HEADS = [
  'HTTP/1.1 200 Connection established\r\n\r\n',
  'HTTP/1.0 200\r\nProxy-Agent: x\r\n\r\n',
  'HTTP/1.1 100 Continue\r\n\r\n',
  'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="x"\r\n\r\n',
  'HTTP/1.1 503 \r\nRetry-After: 5\r\n\r\n',
];

function answerStartCase(rng: Rng): Buffer {
  return rng.weighted<() => Buffer>([
    [3, () => Buffer.from(rng.pick(GOOD_HEADS).slice(0, rng.int(40) + 1), 'latin1')],
    [3, () => Buffer.from(mutate(rng, rng.pick(GOOD_HEADS)), 'latin1')],
    [2, () => Buffer.from(rng.pick(FOREIGN_GREETINGS), 'latin1')],
    [2, () => rng.bytes(rng.range(1, 200))],
    [1, () => Buffer.from(`HTTP/1.1 200 ${randomString(rng, 90)}\r\n`, 'latin1')],
  ])();
}

/** judgeAnswerStart against the oracle: fails exactly what cannot begin a head, once, printably. */
function checkAnswerStart(bytes: Buffer): string {
  const verdict = judgeAnswerStart(bytes);
  assert.equal(verdict === undefined, mayBeginStatusLine(bytes), `judged ${JSON.stringify(bytes.toString('latin1').slice(0, 40))}: ${verdict}`);
  if (verdict === undefined) return 'may be a head';
  assert.doesNotMatch(verdict, CONTROL, 'printable');
  const shown = /"([^"]*)"/.exec(verdict)?.[1] ?? '';
  assert.ok(shown.length <= 61, `short: ${shown.length}`);
  // Once wrong, more bytes never make it right; and a complete head says the same.
  assert.ok(judgeAnswerStart(Buffer.concat([bytes, Buffer.from('\r\n\r\nHTTP/1.1 200 OK\r\n\r\n')])));
  const end = bytes.indexOf('\r\n\r\n');
  if (end >= 0) assert.ok('malformed' in parseAnswerHead(bytes.subarray(0, end).toString('latin1')));
  return 'refused at once';
}

describe('fuzz: the start of a proxy answer', () => {
  it('every prefix of a good head may go on; what cannot start a status line is refused at once, printably', async (t) => {
    const report = await fuzz('answer-start', { runs: 4000, budgetMs: 3000 }, answerStartCase, checkAnswerStart);
    t.diagnostic(summary('answer-start', report));
    for (const head of GOOD_HEADS) for (let i = 0; i <= head.length; i++) assert.equal(judgeAnswerStart(Buffer.from(head.slice(0, i))), undefined);
    wire.check();
  });
});
