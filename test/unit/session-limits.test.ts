import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sshConfigBlock } from '../../src/cli/commands/ssh-config.js';
import { parseDuration, sessionLimits } from '../../src/cli/options.js';
import type { Runtime } from '../../src/cli/runtime.js';
import { BurrowError, SessionLimitError } from '../../src/errors.js';
import { createLogger } from '../../src/output/log.js';
import { armLimits } from '../../src/tunnel/limits.js';

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (claims: unknown) => `${b64({ alg: 'ES256' })}.${b64(claims)}.c2ln`;
const logger = createLogger({ level: 'silent', write: () => {} });

describe('parseDuration', () => {
  const good: Array<[string, number]> = [
    ['1', 1000],
    ['1.5', 1500],
    ['90', 90_000],
    ['90s', 90_000],
    ['30m', 1_800_000],
    ['8h', 28_800_000],
    ['1h30m', 5_400_000],
    ['1d', 86_400_000],
    [' 2H ', 7_200_000],
    ['0.5m', 30_000],
    ['24d', 24 * 86_400_000],
  ];
  for (const [input, ms] of good) it(`${JSON.stringify(input)} is ${ms} ms`, () => assert.equal(parseDuration('--max-duration', input), ms));

  for (const input of ['', '0', '0s', '0.5', '999ms', '-1', '1x', 'h', '1h 30m', '25d', '1e3', 'Infinity', '10 s', '1..2s']) {
    it(`rejects ${JSON.stringify(input)} as a usage error naming the flag`, () => {
      assert.throws(
        () => parseDuration('--max-duration', input),
        (e: unknown) => e instanceof BurrowError && e.code === 'BURROW_USAGE' && e.exitCode === 2 && e.message.includes('--max-duration') && e.hint === 'for example --max-duration 8h',
      );
    });
  }

  it('sessionLimits: nothing asked, nothing armed; otherwise the validated values', () => {
    assert.equal(sessionLimits({}), undefined);
    assert.deepEqual(sessionLimits({ maxDuration: '30m' }), { maxDurationMs: 1_800_000, maxDurationLabel: '30m' });
    assert.deepEqual(sessionLimits({ closeOnTokenExpiry: true }), { closeOnTokenExpiry: true });
  });
});

describe('armLimits', () => {
  const context = { dest: 'git.corp.test:22', logger };

  it('closes at --max-duration with a BURROW_SESSION_LIMIT error naming the limit, once', async () => {
    const errors: SessionLimitError[] = [];
    const started = Date.now();
    armLimits({ maxDurationMs: 1000, maxDurationLabel: '1s' }, { ...context, token: undefined }, (e) => errors.push(e));
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.code, 'BURROW_SESSION_LIMIT');
    assert.equal(errors[0]!.exitCode, 13);
    assert.match(errors[0]!.message, /--max-duration 1s/);
    assert.ok(Date.now() - started >= 1000);
  });

  it('closes when the token expires (exp less the skew margin), and a disarmed timer never fires', async () => {
    const now = Math.floor(Date.now() / 1000);
    const errors: SessionLimitError[] = [];
    // iat..exp of 2 s: the margin is a quarter, so it closes 1.5 s after iat.
    armLimits({ closeOnTokenExpiry: true }, { ...context, token: jwt({ iat: now, exp: now + 2 }) }, (e) => errors.push(e));
    const disarm = armLimits({ closeOnTokenExpiry: true, maxDurationMs: 1000 }, { ...context, token: jwt({ iat: now, exp: now + 2 }) }, () =>
      assert.fail('disarmed'),
    );
    disarm();
    await new Promise((r) => setTimeout(r, 2200));
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /the token it was opened with expired/);
  });

  it('does not fire early for a token that expires beyond setTimeout\'s 24.8-day range', async () => {
    const now = Math.floor(Date.now() / 1000);
    let fired = false;
    const disarm = armLimits({ closeOnTokenExpiry: true }, { ...context, token: jwt({ exp: now + 365 * 86_400 }) }, () => (fired = true));
    await new Promise((r) => setTimeout(r, 100));
    disarm();
    assert.equal(fired, false);
  });

  it('ignores tokens without exp, and public routes (no token)', async () => {
    let fired = false;
    const a = armLimits({ closeOnTokenExpiry: true }, { ...context, token: jwt({ sub: 'svc' }) }, () => (fired = true));
    const b = armLimits({ closeOnTokenExpiry: true }, { ...context, token: undefined }, () => (fired = true));
    await new Promise((r) => setTimeout(r, 50));
    a();
    b();
    assert.equal(fired, false);
  });
});

describe('ssh-config passes the limits on', () => {
  const runtime = { env: {}, version: '9.9.9', selfCommand: () => ['/usr/bin/node', '/opt/burrow/bin/burrow.js'] } as unknown as Runtime;
  const defaults = { loginTimeout: '300', serverAliveInterval: '30', stallTimeout: '60' };
  it('adds --max-duration and --close-on-token-expiry to the ProxyCommand', () => {
    const block = sshConfigBlock('git.corp.test', { ...defaults, maxDuration: '8h', closeOnTokenExpiry: true }, runtime);
    assert.match(block, /^ {2}ProxyCommand \/usr\/bin\/node \/opt\/burrow\/bin\/burrow\.js tcp --listen - %h:%p --max-duration 8h --close-on-token-expiry$/m);
  });
  it('adds --stall-timeout only when it is not the default, and checks it now', () => {
    assert.doesNotMatch(sshConfigBlock('git.corp.test', defaults, runtime), /--stall-timeout/);
    assert.match(sshConfigBlock('git.corp.test', { ...defaults, stallTimeout: '300' }, runtime), /%h:%p --stall-timeout 300$/m);
    assert.match(sshConfigBlock('git.corp.test', { ...defaults, stallTimeout: '0' }, runtime), /%h:%p --stall-timeout 0$/m);
    assert.throws(
      () => sshConfigBlock('git.corp.test', { ...defaults, stallTimeout: 'soon' }, runtime),
      (e: unknown) => e instanceof BurrowError && e.exitCode === 2 && e.message.includes('--stall-timeout'),
    );
  });
  it('rejects a bad --max-duration now rather than at every ssh', () => {
    assert.throws(
      () => sshConfigBlock('git.corp.test', { ...defaults, maxDuration: 'forever' }, runtime),
      (e: unknown) => e instanceof BurrowError && e.exitCode === 2 && e.message.startsWith('invalid --max-duration "forever"'),
    );
  });
});
