/**
 * The pure part of `burrow doctor`: steps run in order and only when what they need passed, a
 * skipped step names the step that failed first, the exit code is the first failure's, the
 * clock is judged with the Date header's whole seconds and the round trip allowed for, and each
 * step prints as one line (and as the documented JSON fields).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EXPIRY_SKEW_SECONDS } from '../../src/auth/jwt.js';
import { stepJson, stepLine } from '../../src/cli/commands/doctor.js';
import { doctorExitCode, judgeClock, runSteps, STEP_NAMES, type StepName, type StepSpec } from '../../src/diagnose/steps.js';
import { AccessDeniedError, ExitCode, ProxyUnreachableError, TlsError } from '../../src/errors.js';
import { text } from '../../src/output/messages.js';

const ok = (step: StepName, needs: StepName[] = []): StepSpec => ({ step, needs, run: async () => ({ detail: `${step} fine` }) });
const failing = (step: StepName, error: Error, needs: StepName[] = []): StepSpec => ({
  step,
  needs,
  run: async () => {
    throw error;
  },
});

describe('doctor steps', () => {
  it('every step has a name of its own in the catalogue', () => {
    const names = STEP_NAMES.map((step) => text.doctorStep(step));
    assert.equal(new Set(names).size, STEP_NAMES.length);
    assert.ok(names.every((name) => name.length > 0 && name !== 'undefined'), names.join(', '));
  });

  it('all passing: every step runs, exit 0', async () => {
    const seen: string[] = [];
    const results = await runSteps([ok('dns'), ok('tcp', ['dns']), ok('tls', ['tcp'])], (r) => seen.push(r.step));
    assert.deepEqual(seen, ['dns', 'tcp', 'tls']);
    assert.ok(results.every((r) => r.ok && !r.skipped));
    assert.equal(doctorExitCode(results), ExitCode.ok);
  });

  it('a failure skips what needs it, and what needs a skipped step names the first failure; the rest still runs', async () => {
    let ran = false;
    const results = await runSteps([
      ok('dns'),
      failing('tcp', new ProxyUnreachableError('cannot connect', { hint: 'check it' }), ['dns']),
      { step: 'tls', needs: ['tcp'], run: async () => ((ran = true), { detail: 'never' }) },
      ok('credential-store'),
      ok('tunnel', ['tls']),
    ]);
    assert.equal(ran, false, 'a skipped step is not run');
    assert.deepEqual(
      results.map((r) => [r.step, r.ok, r.skipped ?? false]),
      [
        ['dns', true, false],
        ['tcp', false, false],
        ['tls', false, true],
        ['credential-store', true, false],
        ['tunnel', false, true],
      ],
    );
    assert.equal(results[2]!.detail, text.doctorSkipped(text.doctorStep('tcp')));
    assert.equal(results[4]!.detail, text.doctorSkipped(text.doctorStep('tcp')), 'names the step that failed, not the skipped one');
    assert.equal(doctorExitCode(results), ExitCode.proxyUnreachable);
  });

  it('the exit code is the first failure\'s; a bug in a step is an internal error, not a crash', async () => {
    const results = await runSteps([
      failing('tls', new TlsError('untrusted', { code: 'BURROW_TLS_UNTRUSTED' })),
      failing('tunnel', new AccessDeniedError('denied')),
      failing('clock', new TypeError('oops')),
    ]);
    assert.equal(doctorExitCode(results), ExitCode.tls);
    assert.equal(results[2]!.error?.code, 'BURROW_INTERNAL');
  });

  it('a step may stop short for want of an earlier one (skipped, naming it), and ask whether one passed', async () => {
    const results = await runSteps([
      failing('tls', new TlsError('untrusted')),
      { step: 'sign-in', needs: [], run: async (passed) => (passed('tls') ? { detail: 'checked' } : { skipped: 'found, not checked', after: 'tls' }) },
      ok('clock', ['sign-in']),
    ]);
    assert.deepEqual(results.map((r) => r.skipped ?? false), [false, true, true]);
    assert.equal(results[2]!.detail, text.doctorSkipped(text.doctorStep('tls')));
  });
});

describe('doctor: the clock', () => {
  const at = Date.parse('2026-12-03T12:00:00Z');
  it('no Date header, or one that is not a date: not judged', () => {
    assert.deepEqual(judgeClock({ date: undefined, sentAtMs: at, receivedAtMs: at + 10 }), { kind: 'no-date' });
    assert.deepEqual(judgeClock({ date: 'yesterday', sentAtMs: at, receivedAtMs: at + 10 }), { kind: 'no-date' });
  });

  it('the same second: no skew; the header has whole seconds, so up to a second either way is nothing', () => {
    const same = judgeClock({ date: new Date(at).toUTCString(), sentAtMs: at + 100, receivedAtMs: at + 120 });
    assert.equal(same.kind, 'measured');
    assert.ok(same.kind === 'measured' && Math.abs(same.skewSeconds) < 1 && !same.beyond);
  });

  it('beyond the token margin: flagged, with the sign saying which clock is behind', () => {
    const behind = judgeClock({ date: new Date(at + 300_000).toUTCString(), sentAtMs: at, receivedAtMs: at + 20 });
    assert.ok(behind.kind === 'measured' && behind.beyond && behind.skewSeconds > 290);
    const ahead = judgeClock({ date: new Date(at - 300_000).toUTCString(), sentAtMs: at, receivedAtMs: at + 20 });
    assert.ok(ahead.kind === 'measured' && ahead.beyond && ahead.skewSeconds < -290);
  });

  it('just past the margin is flagged only when the round trip leaves no doubt', () => {
    const margin = EXPIRY_SKEW_SECONDS;
    const date = new Date(at + (margin + 3) * 1000).toUTCString();
    const quick = judgeClock({ date, sentAtMs: at, receivedAtMs: at + 10 });
    assert.ok(quick.kind === 'measured' && quick.beyond);
    // A 10 s round trip: the proxy may have written its Date at any moment of it.
    const slow = judgeClock({ date, sentAtMs: at, receivedAtMs: at + 10_000 });
    assert.ok(slow.kind === 'measured' && !slow.beyond);
  });
});

describe('doctor: lines and JSON', () => {
  it('✓ found, ✗ message — hint, - skipped; JSON has exactly the documented fields', async () => {
    const [pass, fail, skip] = await runSteps([
      ok('dns'),
      failing('tcp', new ProxyUnreachableError('cannot connect to https://p:443 (for d:22): connection refused', { hint: 'check the proxy address and port' })),
      ok('tls', ['tcp']),
    ]);
    assert.equal(stepLine(pass!), `✓ ${text.doctorStep('dns')}: dns fine`);
    assert.equal(stepLine(fail!), `✗ ${text.doctorStep('tcp')}: cannot connect to https://p:443 (for d:22): connection refused — check the proxy address and port`);
    assert.equal(stepLine(skip!), `- ${text.doctorStep('tls')}: ${text.doctorSkipped(text.doctorStep('tcp'))}`);
    assert.deepEqual(stepJson(pass!), { step: 'dns', ok: true, detail: 'dns fine' });
    assert.deepEqual(stepJson(fail!), {
      step: 'tcp',
      ok: false,
      detail: 'cannot connect to https://p:443 (for d:22): connection refused',
      code: 'BURROW_PROXY_UNREACHABLE',
      hint: 'check the proxy address and port',
    });
    assert.deepEqual(stepJson(skip!), { step: 'tls', ok: false, skipped: true, detail: text.doctorSkipped(text.doctorStep('tcp')) });
  });
});
