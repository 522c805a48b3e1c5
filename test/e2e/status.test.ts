/**
 * `burrow status` through the real binary: what is cached, for people (stderr) and for scripts
 * (`--json` on stdout, the exit code), against sign-ins made by `burrow login` with the local
 * proxy and a stand-in browser, and entries written to the file store as burrow writes them.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { formatExpiry } from '../../src/output/format.js';
import { text } from '../../src/output/messages.js';
import { encodeCredential, entryName } from '../../src/store/file.js';
import type { StoredCredential } from '../../src/store/store.js';
import { browserEnv, followBrowser } from '../helpers/browsers/index.js';
import { runBurrow, storedTokens, tempDir } from '../helpers/burrow.js';
import { suiteWorld } from '../helpers/world.js';

/** Writes an entry into the file store under the cache dir `cache`, 0600 in a 0700 directory, as burrow does. */
function writeEntry(cache: string, credential: StoredCredential): void {
  const dir = join(cache, 'burrow', 'credentials');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, entryName(credential.proxy)), encodeCredential(credential), { mode: 0o600 });
}

const lines = (stderr: string) => stderr.split('\n').filter((l) => l !== '');

describe('burrow status', () => {
  const world = suiteWorld();
  const user = () => {
    const cache = tempDir('burrow-status-');
    return { cache, env: { XDG_CACHE_HOME: cache, ...browserEnv({ log: join(cache, 'browser.log') }) } };
  };

  it('nothing cached: exit 3 (BURROW_NOT_SIGNED_IN) with one line; --json gives an empty list on stdout', async () => {
    const u = user();
    const location = join(u.cache, 'burrow', 'credentials');
    const human = await runBurrow(['status'], { env: u.env });
    assert.equal(human.code, ExitCode.authRequired, human.stderr);
    assert.equal(human.stdout.length, 0, 'nothing on stdout without --json');
    assert.deepEqual(lines(human.stderr), [`burrow: error: ${text.noSignInsIn(location)} — ${text.notSignedInHint(undefined)}`]);

    const json = await runBurrow(['status', '--json'], { env: u.env });
    assert.equal(json.code, ExitCode.authRequired);
    assert.deepEqual(JSON.parse(json.stdout.toString()), { store: 'file', location, sign_ins: [] });
    const [error, ...rest] = lines(json.stderr).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(rest, []);
    assert.equal(error!.event, 'error');
    assert.equal(error!.code, 'BURROW_NOT_SIGNED_IN');
    assert.equal(error!.exit_code, ExitCode.authRequired);

    const asked = await runBurrow(['status', world.proxy.url], { env: u.env });
    assert.equal(asked.code, ExitCode.authRequired);
    assert.deepEqual(lines(asked.stderr), [`burrow: error: ${text.notSignedIn(`${world.proxy.url}`)} — ${text.notSignedInHint(world.proxy.url)}`]);
  });

  it('after burrow login: proxy, user and expiry on stderr, the same as JSON on stdout, never the token; exit 0', async () => {
    const u = user();
    const login = await runBurrow(['login', world.proxy.url, '--browser-cmd', followBrowser, '--alternate-ca-path', world.proxy.caPath], { env: u.env });
    assert.equal(login.code, 0, login.stderr);
    const [token] = storedTokens(u.cache);
    assert.ok(token);
    const origin = world.proxy.url; // https://localhost:PORT: already an origin with its port

    const human = await runBurrow(['status'], { env: u.env });
    assert.equal(human.code, 0, human.stderr);
    assert.equal(human.stdout.length, 0);
    assert.deepEqual(lines(human.stderr), [
      `burrow: ${text.signedIn(origin, 'alice@corp.test', 'expires in 60 min')}`,
      `burrow: ${text.signInsKeptIn(join(u.cache, 'burrow', 'credentials'))}`,
    ]);

    const before = Date.now();
    const json = await runBurrow(['status', '--json'], { env: u.env });
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.stderr, '');
    const data = JSON.parse(json.stdout.toString()) as { sign_ins: Array<Record<string, unknown>> };
    assert.equal(data.sign_ins.length, 1);
    const [entry] = data.sign_ins;
    assert.deepEqual(Object.keys(entry!).sort(), ['expired', 'expires_at', 'proxy', 'user']);
    assert.equal(entry!.proxy, origin);
    assert.equal(entry!.user, 'alice@corp.test');
    assert.equal(entry!.expired, false);
    // exp is an hour after the sign-in, less the 10 s clock-skew margin.
    const expires = Date.parse(entry!.expires_at as string);
    assert.ok(expires > before + 3_500_000 && expires < before + 3_600_000, String(entry!.expires_at));
    for (const out of [human.stderr, json.stdout.toString(), json.stderr]) assert.ok(!out.includes(token!), 'no token in status');

    assert.equal((await runBurrow(['status', world.proxy.url], { env: u.env })).code, 0, 'the proxy asked for has a usable sign-in');
    const other = await runBurrow(['status', 'https://other.corp.test', '--json'], { env: u.env });
    assert.equal(other.code, ExitCode.authRequired, 'another proxy has none');
    assert.deepEqual((JSON.parse(other.stdout.toString()) as { sign_ins: unknown[] }).sign_ins, []);
  });

  it('a token without exp (Pomerium since v0.32.6): "no expiry known", expires_at null, usable', async () => {
    const u = user();
    const proxy = 'https://git.corp.test:443';
    writeEntry(u.cache, { proxy, token: world.proxy.mintToken(), user: 'alice@corp.test', storedAt: Date.now() });
    const human = await runBurrow(['status', proxy], { env: u.env });
    assert.equal(human.code, 0, human.stderr);
    assert.equal(lines(human.stderr)[0], `burrow: ${text.signedIn(proxy, 'alice@corp.test', text.noExpiryKnown)}`);
    const json = await runBurrow(['status', '--json'], { env: u.env });
    assert.equal(json.code, 0);
    assert.deepEqual((JSON.parse(json.stdout.toString()) as { sign_ins: unknown[] }).sign_ins, [
      { proxy, user: 'alice@corp.test', expires_at: null, expired: false },
    ]);
  });

  it('only expired sign-ins: each is listed as expired, and the exit code is 3', async () => {
    const u = user();
    const proxy = 'https://git.corp.test:443';
    const expiresAt = Math.floor(Date.now() / 1000) - 7200;
    writeEntry(u.cache, { proxy, token: 'a.b.c', user: 'alice@corp.test', expiresAt, storedAt: Date.now() - 10_800_000 });
    const human = await runBurrow(['status'], { env: u.env });
    assert.equal(human.code, ExitCode.authRequired);
    const shown = lines(human.stderr);
    assert.equal(shown[0], `burrow: ${text.signInExpired(proxy, 'alice@corp.test', formatExpiry(expiresAt, Date.now()))}`);
    assert.match(shown[0]!, /expired 2 h ago$/);
    assert.equal(shown.at(-1), `burrow: error: ${text.allSignInsExpired} — ${text.notSignedInHint(undefined)}`);
    const asked = await runBurrow(['status', proxy, '--json'], { env: u.env });
    assert.equal(asked.code, ExitCode.authRequired);
    const [entry] = (JSON.parse(asked.stdout.toString()) as { sign_ins: Array<Record<string, unknown>> }).sign_ins;
    assert.equal(entry!.expired, true);
    assert.equal(entry!.expires_at, new Date(expiresAt * 1000).toISOString());

    // One usable sign-in among expired ones is enough when no proxy is named.
    writeEntry(u.cache, { proxy: 'https://db.corp.test:443', token: 'd.e.f', storedAt: Date.now() });
    assert.equal((await runBurrow(['status'], { env: u.env })).code, 0);
    assert.equal((await runBurrow(['status', proxy], { env: u.env })).code, ExitCode.authRequired, 'but the expired proxy asked for is not');
  });

  it('fields written by something else are shown inert, one line each', async () => {
    const u = user();
    const hostile = 'https://evil.test:443';
    writeEntry(u.cache, { proxy: hostile, token: 'x.y.z', user: '\x1b[31mmallory\nroot', storedAt: Date.now() });
    const human = await runBurrow(['status'], { env: u.env });
    assert.equal(human.code, 0, human.stderr);
    assert.equal(lines(human.stderr)[0], `burrow: signed in to ${hostile} as \\u001b[31mmallory\\nroot (${text.noExpiryKnown})`);
    assert.doesNotMatch(human.stderr, /\x1b/);
    const json = await runBurrow(['status', '--json'], { env: u.env });
    assert.equal((JSON.parse(json.stdout.toString()) as { sign_ins: Array<{ user: string }> }).sign_ins[0]!.user, '\x1b[31mmallory\nroot');
    assert.doesNotMatch(json.stdout.toString(), /\x1b/, 'JSON escapes it');
  });
});
