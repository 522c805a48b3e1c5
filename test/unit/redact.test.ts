import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BurrowError, ExitCode } from '../../src/errors.js';
import { createLogger, formatFailure } from '../../src/output/log.js';
import { redact } from '../../src/output/redact.js';

const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJlbWFpbCI6ImFAYi5jIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ';

describe('redact', () => {
  it('hides JWTs wherever they appear', () => {
    const out = redact(`token ${JWT} and again:${JWT}`);
    assert.ok(!out.includes(JWT));
    assert.equal(out, 'token eyJh…[hidden] and again:eyJh…[hidden]');
  });
  it('hides Authorization values and callback query tokens', () => {
    assert.equal(redact('Authorization: Pomerium secret-opaque-token'), 'Authorization: Pomerium …[hidden]');
    assert.equal(redact('Authorization: Bearer Pomerium-abc'), 'Authorization: Bearer …[hidden]');
    assert.equal(redact('authorization: Pomerium opaque'), 'authorization: Pomerium …[hidden]');
    assert.equal(redact('sent Bearer Pomerium-opaque'), 'sent Bearer Pomerium-…[hidden]');
    assert.equal(redact('GET /cb?a=1&pomerium_jwt=abc.def.ghi&b=2'), 'GET /cb?a=1&pomerium_jwt=…[hidden]&b=2');
  });
  it('leaves ordinary text alone', () => {
    for (const line of [
      'access denied by https://proxy.test:8443 for git.corp.test:22 (HTTP 403)',
      'check that this is a Pomerium proxy (see --pomerium-url), or use Bearer tokens',
    ]) {
      assert.equal(redact(line), line);
    }
  });
});

describe('logger', () => {
  it('writes one line per failure, message then hint, never a token', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'warn', write: (l) => lines.push(l) });
    logger.failure(new BurrowError('BURROW_INTERNAL', ExitCode.internal, `bad ${JWT}`, { hint: 'do this' }));
    logger.info('not shown at warn');
    logger.warn('shown');
    assert.deepEqual(lines, ['burrow: error: bad eyJh…[hidden] — do this', 'burrow: warning: shown']);
    assert.equal(formatFailure(new BurrowError('BURROW_INTERNAL', 1, 'x')), 'burrow: error: x');
  });
});
