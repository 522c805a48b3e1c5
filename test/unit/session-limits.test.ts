import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { EXPIRY_SKEW_SECONDS } from '../../src/auth/jwt.js';
import { sshConfigBlock } from '../../src/cli/commands/ssh-config.js';
import { parseDuration, sessionLimits } from '../../src/cli/options.js';
import type { Runtime } from '../../src/cli/runtime.js';
import { BurrowError, SessionLimitError } from '../../src/errors.js';
import { duration } from '../../src/output/format.js';
import { createLogger } from '../../src/output/log.js';
import { text } from '../../src/output/messages.js';
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
        (e: unknown) =>
          e instanceof BurrowError &&
          e.code === 'BURROW_USAGE' &&
          e.exitCode === 2 &&
          e.message === text.invalidDuration('--max-duration', input) &&
          e.hint === text.invalidDurationHint('--max-duration'),
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
  // The timers and the clock are node:test's fake ones (reset after each test), so each
  // deadline is checked to the millisecond without waiting for it.
  const START_MS = Date.UTC(2026, 0, 2, 3, 4, 5);
  const START_S = START_MS / 1000;
  const fakeClock = (t: TestContext) => t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: START_MS });
  const context = { dest: 'git.corp.test:22', logger, now: () => Date.now() };

  it('closes at --max-duration with a BURROW_SESSION_LIMIT error naming the limit, once', (t) => {
    fakeClock(t);
    const errors: SessionLimitError[] = [];
    armLimits({ maxDurationMs: 1000, maxDurationLabel: '1s' }, { ...context, token: undefined }, (e) => errors.push(e));
    t.mock.timers.tick(999);
    assert.equal(errors.length, 0, 'not before the limit');
    t.mock.timers.tick(1);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.code, 'BURROW_SESSION_LIMIT');
    assert.equal(errors[0]!.exitCode, 13);
    assert.equal(errors[0]!.message, text.sessionLimitReached(context.dest, '1s'));
    assert.equal(errors[0]!.hint, text.sessionLimitHint);
    t.mock.timers.tick(10_000);
    assert.equal(errors.length, 1, 'once');
  });

  it('closes when the token expires (exp less the skew margin), and a disarmed timer never fires', (t) => {
    fakeClock(t);
    const errors: SessionLimitError[] = [];
    // iat..exp of 2 s: the margin is a quarter, so it closes 1.5 s after iat.
    armLimits({ closeOnTokenExpiry: true }, { ...context, token: jwt({ iat: START_S, exp: START_S + 2 }) }, (e) => errors.push(e));
    const disarm = armLimits({ closeOnTokenExpiry: true, maxDurationMs: 1000 }, { ...context, token: jwt({ iat: START_S, exp: START_S + 2 }) }, () =>
      assert.fail('disarmed'),
    );
    disarm();
    t.mock.timers.tick(1499);
    assert.equal(errors.length, 0, 'not before exp less the margin');
    t.mock.timers.tick(1);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.code, 'BURROW_SESSION_LIMIT');
    assert.equal(errors[0]!.exitCode, 13);
    // Open for 1.5 s, rounded to the second.
    assert.equal(errors[0]!.message, text.tokenExpiredClose(context.dest, duration(2)));
    assert.equal(errors[0]!.hint, text.tokenExpiredCloseHint);
    t.mock.timers.tick(10_000);
    assert.equal(errors.length, 1, 'once, and nothing from the disarmed one');
  });

  it('does not fire early for a token that expires beyond setTimeout\'s 24.8-day range', (t) => {
    fakeClock(t);
    const MAX_TIMER_MS = 2 ** 31 - 1;
    let fired = 0;
    const disarm = armLimits({ closeOnTokenExpiry: true }, { ...context, token: jwt({ exp: START_S + 365 * 86_400 }) }, () => fired++);
    // Closes at exp less the 10 s margin; waits longer than one timer can hold are chained, so
    // time is advanced a timer's range at a time (each tick then fires one link of the chain).
    let left = (365 * 86_400 - EXPIRY_SKEW_SECONDS) * 1000 - 1;
    while (left > 0) {
      const step = Math.min(left, MAX_TIMER_MS);
      t.mock.timers.tick(step);
      left -= step;
      assert.equal(fired, 0, `not fired ${Math.round((Date.now() - START_MS) / 86_400_000)} days in`);
    }
    t.mock.timers.tick(1);
    assert.equal(fired, 1, 'fired at exp less the margin');
    disarm();
  });

  it('ignores tokens without exp, and public routes (no token)', (t) => {
    fakeClock(t);
    let fired = false;
    const a = armLimits({ closeOnTokenExpiry: true }, { ...context, token: jwt({ sub: 'svc' }) }, () => (fired = true));
    const b = armLimits({ closeOnTokenExpiry: true }, { ...context, token: undefined }, () => (fired = true));
    t.mock.timers.tick(400 * 86_400_000);
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
      (e: unknown) => e instanceof BurrowError && e.code === 'BURROW_USAGE' && e.exitCode === 2 && e.message === text.invalidDuration('--max-duration', 'forever'),
    );
  });
});
