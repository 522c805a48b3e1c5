import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseBrowser, commandArgs, parseBrowserCommand } from '../../src/auth/browser.js';
import { EXPIRY_SKEW_SECONDS, isExpired, tokenInfo } from '../../src/auth/jwt.js';

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (claims: unknown) => `${b64({ alg: 'ES256' })}.${b64(claims)}.c2ln`;

describe('tokenInfo: unverified claims', () => {
  it('reads exp (less the skew margin) and the user', () => {
    assert.deepEqual(tokenInfo(jwt({ exp: 2_000_000_000, iat: 1_999_990_000, email: 'a@b.c', sub: 's' })), {
      expiresAt: 2_000_000_000 - EXPIRY_SKEW_SECONDS,
      user: 'a@b.c',
    });
    assert.deepEqual(tokenInfo(jwt({ exp: 1000, sub: 'svc' })), { expiresAt: 1000 - EXPIRY_SKEW_SECONDS, user: 'svc' });
  });
  it('keeps most of a very short lifetime (a quarter as margin)', () => {
    assert.equal(tokenInfo(jwt({ iat: 100, exp: 104 })).expiresAt, 103);
  });
  it('tolerates tokens it cannot read: no expiry, no user', () => {
    for (const token of ['', 'abc', 'a.b.c', `x.${'A'.repeat(70_000)}.y`, jwt('string'), jwt(null), jwt({ exp: 'soon' }), jwt({ exp: 1e400 })]) {
      assert.deepEqual(tokenInfo(token), { expiresAt: undefined, user: undefined }, token.slice(0, 20));
    }
  });
  it('isExpired', () => {
    assert.equal(isExpired(undefined, Date.now()), false);
    assert.equal(isExpired(100, 99_000), false);
    assert.equal(isExpired(100, 100_000), true);
  });
});

describe('chooseBrowser', () => {
  const url = 'https://p.test/sign_in?a=1&b=%25s';
  const argv = (choice: ReturnType<typeof chooseBrowser>) =>
    choice.kind === 'command' ? [choice.command, ...commandArgs(choice.args, url)] : choice.kind;

  it('honours the flags, then the environment', () => {
    assert.deepEqual(chooseBrowser({ noBrowser: true, browserCmd: 'x' }, { DISPLAY: ':0' }), { kind: 'none', reason: 'no-browser' });
    assert.deepEqual(argv(chooseBrowser({ browserCmd: '/bin/my browser' }, { BROWSER: 'other' })), ['/bin/my browser', url]);
    assert.deepEqual(chooseBrowser({}, { DISPLAY: ':0' }, 'linux'), { kind: 'default' });
    assert.deepEqual(chooseBrowser({}, { WAYLAND_DISPLAY: 'wayland-0' }, 'linux'), { kind: 'default' });
    assert.deepEqual(chooseBrowser({}, { SSH_CONNECTION: '1 2 3 4' }, 'linux'), { kind: 'none', reason: 'no-display' }, 'an SSH login has no display');
    assert.deepEqual(chooseBrowser({}, {}, 'darwin'), { kind: 'default' });
    assert.deepEqual(chooseBrowser({}, { BROWSER: 'none', DISPLAY: ':0' }, 'linux'), { kind: 'none', reason: 'browser-none' });
    assert.deepEqual(chooseBrowser({}, { BROWSER: '  ', DISPLAY: ':0' }, 'linux'), { kind: 'default' }, 'blank BROWSER is unset');
  });

  it('takes $BROWSER as xdg-open and gh do: a command line, %s for the URL, else the URL appended', () => {
    const choice = chooseBrowser({}, { BROWSER: 'firefox --new-window' }, 'linux');
    assert.equal(choice.kind === 'command' && choice.source, 'BROWSER', 'used without a display too');
    assert.deepEqual(argv(choice), ['firefox', '--new-window', url]);
    assert.deepEqual(argv(chooseBrowser({}, { BROWSER: "'/opt/my browser/run' --url=%s --x" }, 'linux')), ['/opt/my browser/run', `--url=${url}`, '--x']);
    assert.deepEqual(argv(chooseBrowser({}, { BROWSER: 'b "a b" 100%% %s' }, 'linux')), ['b', 'a b', '100%', url], 'the URL itself is left alone');
    assert.deepEqual(commandArgs(parseBrowserCommand('a\\ b c'), 'U'), ['a b', 'c', 'U']);
  });
});
