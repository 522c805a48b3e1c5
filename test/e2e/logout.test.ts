/**
 * Forgetting sign-ins through the real binary: `burrow logout [proxy] [--browser] [--json]` and
 * `burrow cache clear | location --json`. `--browser` is tested with a real program given to
 * `--browser-cmd` (a shell script that records its arguments and fetches the page with curl) and
 * the local proxy's sign-out page.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { signOutUrl, text } from '../../src/output/messages.js';
import { browserEnv, followBrowser } from '../helpers/browsers/index.js';
import { runBurrow, storedTokens, tempDir } from '../helpers/burrow.js';
import { eventually, suiteWorld } from '../helpers/world.js';

const lines = (stderr: string) => stderr.split('\n').filter((l) => l !== '');

describe('burrow logout and cache clear', () => {
  const world = suiteWorld({
    extraRoutes: [{ from: 'tcp+https://bob-only.corp.test:22', to: 'tcp://127.0.0.1:1', allow: ['bob@corp.test'] }],
  });

  /** A fresh user with a recording browser: `record` gets one line per argument, `record.status` curl's HTTP status. */
  function user() {
    const cache = tempDir('burrow-logout-');
    const record = join(cache, 'browser-args');
    const script = join(cache, 'record-browser.sh');
    writeFileSync(
      script,
      // The status file appears whole (rename), once curl is done: the test waits for it.
      `#!/bin/sh\nprintf '%s\\n' "$@" >> "$RECORD"\ncode=$(curl -sS --max-time 10 --cacert "$CA" -o /dev/null -w '%{http_code}' "$1")\nprintf '%s\\n' "$code" > "$RECORD.tmp" && mv "$RECORD.tmp" "$RECORD.status"\n`,
    );
    chmodSync(script, 0o755);
    const env = { XDG_CACHE_HOME: cache, RECORD: record, CA: world.proxy.caPath, ...browserEnv({ log: join(cache, 'browser.log') }) };
    const signIn = async () => {
      const login = await runBurrow(['login', world.proxy.url, '--browser-cmd', followBrowser, '--alternate-ca-path', world.proxy.caPath], { env });
      assert.equal(login.code, 0, login.stderr);
      assert.equal(storedTokens(cache).length, 1);
    };
    const recorded = () => (existsSync(`${record}.status`) ? readFileSync(record, 'utf8').split('\n').filter(Boolean) : undefined);
    return { cache, env, script, record, signIn, recorded };
  }

  it('after a 403, the hint names logout --browser and the sign-out page; logout --browser forgets the token and opens that page', async () => {
    const u = user();
    const origin = world.proxy.url;
    const page = `${world.proxy.url}/.pomerium/sign_out`;
    assert.equal(signOutUrl(origin), page);

    const denied = await runBurrow([...world.tcpArgs('bob-only.corp.test:22', '--listen', '-'), '--browser-cmd', followBrowser], { env: u.env });
    assert.equal(denied.code, ExitCode.accessDenied, denied.stderr);
    assert.ok(lines(denied.stderr).at(-1)!.endsWith(` — ${text.accessDeniedHint(origin, 'alice@corp.test')}`), denied.stderr);
    assert.ok(denied.stderr.includes(page), 'the hint names the sign-out page');
    assert.equal(storedTokens(u.cache).length, 1, 'a 403 keeps the token');

    const signOutsBefore = world.proxy.stats.signOuts;
    const logout = await runBurrow(['logout', '--browser', origin, '--browser-cmd', u.script], { env: u.env });
    assert.equal(logout.code, 0, logout.stderr);
    assert.deepEqual(lines(logout.stderr), [`burrow: ${text.loggedOut(origin)}`, `burrow: ${text.signOutOpened(origin, page)}`]);
    assert.equal(logout.stdout.length, 0);
    assert.deepEqual(storedTokens(u.cache), [], 'the local token is gone');
    await eventually(() => u.recorded() !== undefined, 15_000, 'the browser command to run');
    assert.deepEqual(u.recorded(), [page], 'the browser got the sign-out page, its only argument');
    assert.equal(readFileSync(`${u.record}.status`, 'utf8').trim(), '200', 'the proxy answered it');
    assert.equal(world.proxy.stats.signOuts - signOutsBefore, 1);
  });

  it('without --browser no browser runs, even with --browser-cmd; --browser without a proxy is a usage error', async () => {
    const u = user();
    await u.signIn();
    const logout = await runBurrow(['logout', world.proxy.url, '--browser-cmd', u.script], { env: u.env });
    assert.equal(logout.code, 0, logout.stderr);
    assert.deepEqual(lines(logout.stderr), [`burrow: ${text.loggedOut(world.proxy.url)}`]);
    await delay(300); // the script would have run by now (spawned before burrow exits)
    assert.equal(existsSync(u.record), false, 'no browser was started');

    const again = await runBurrow(['logout', world.proxy.url], { env: u.env });
    assert.deepEqual(lines(again.stderr), [`burrow: ${text.notSignedIn(world.proxy.url)}`]);

    const all = await runBurrow(['logout', '--browser', '--browser-cmd', u.script], { env: u.env });
    assert.equal(all.code, ExitCode.usage);
    assert.deepEqual(lines(all.stderr), [`burrow: error: ${text.logoutBrowserNeedsProxy} — ${text.logoutBrowserNeedsProxyHint}`]);
    // --no-browser after --browser wins, as the last of the pair always does.
    const off = await runBurrow(['logout', '--browser', '--no-browser', world.proxy.url, '--browser-cmd', u.script], { env: u.env });
    assert.equal(off.code, 0, off.stderr);
    await delay(300);
    assert.equal(existsSync(u.record), false);
  });

  it('no browser to open (no display): the sign-out page is printed for a person to open', async () => {
    const u = user();
    await u.signIn();
    const env = { ...u.env, DISPLAY: '', WAYLAND_DISPLAY: '' };
    const logout = await runBurrow(['logout', '--browser', world.proxy.url], { env });
    assert.equal(logout.code, 0, logout.stderr);
    const page = signOutUrl(world.proxy.url);
    assert.deepEqual(lines(logout.stderr), [`burrow: ${text.loggedOut(world.proxy.url)}`, `burrow: ${text.signOutPrinted(world.proxy.url, page)}`]);

    const json = await runBurrow(['logout', '--browser', '--json', world.proxy.url], { env });
    assert.equal(json.code, 0);
    assert.deepEqual(JSON.parse(json.stdout.toString()), { signed_out: [], sign_out_url: page, browser_opened: false });
    // The page still reaches a person, as a JSON line.
    const [notice] = lines(json.stderr).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(notice!.message, text.signOutPrinted(world.proxy.url, page));
  });

  it('--json: what was forgotten on stdout, nothing on stderr; cache location and cache clear too', async () => {
    const u = user();
    await u.signIn();
    const one = await runBurrow(['logout', '--browser', '--json', world.proxy.url, '--browser-cmd', u.script], { env: u.env });
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stderr, '');
    assert.deepEqual(JSON.parse(one.stdout.toString()), { signed_out: [world.proxy.url], sign_out_url: signOutUrl(world.proxy.url), browser_opened: true });
    await eventually(() => u.recorded() !== undefined, 15_000, 'the browser command to run');

    await u.signIn();
    const all = await runBurrow(['logout', '--json'], { env: u.env });
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stderr, '');
    assert.deepEqual(JSON.parse(all.stdout.toString()), { signed_out: [world.proxy.url] });
    assert.deepEqual(storedTokens(u.cache), []);

    await u.signIn();
    const clear = await runBurrow(['cache', 'clear', '--json'], { env: u.env });
    assert.equal(clear.code, 0, clear.stderr);
    assert.equal(clear.stderr, '');
    assert.deepEqual(JSON.parse(clear.stdout.toString()), { signed_out: [world.proxy.url] });
    assert.deepEqual(storedTokens(u.cache), []);

    const location = await runBurrow(['cache', 'location', '--json'], { env: u.env });
    assert.equal(location.code, 0, location.stderr);
    assert.deepEqual(JSON.parse(location.stdout.toString()), {
      directory: join(u.cache, 'burrow'),
      store: 'file',
      tokens: join(u.cache, 'burrow', 'credentials'),
    });
  });
});
