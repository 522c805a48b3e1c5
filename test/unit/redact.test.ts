import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BurrowError, ExitCode } from '../../src/errors.js';
import { createLogger, formatFailure } from '../../src/output/log.js';
import { text } from '../../src/output/messages.js';
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

describe('redact and the catalogue', () => {
  /** Arguments that are not tokens, of the kinds messages take (hosts, URLs, paths, reasons). */
  const SAMPLES = ['https://proxy.corp.example.com:443', 'git.corp.example.com:22', 'Authorization', '/home/alice/.cache/burrow', 'alice@corp.example.com'];
  /** Messages whose argument picks a wording from a closed list. */
  const CHOICES: Record<string, unknown[][]> = {
    closed: ['local_closed', 'remote_closed', 'shutdown', 'broken', 'session_limit'].map((reason) => ['4.2 s', '12 KiB', '3 MiB', reason]),
    credentialStoreFailed: ['read', 'save', 'remove', 'list'].map((action) => [action, '/home/alice/.cache/burrow', 'EACCES']),
    // The proxy is an origin here: the hint builds its sign-out address from it.
    accessDeniedHint: [['https://proxy.corp.example.com:443', 'alice@corp.example.com'], ['https://proxy.corp.example.com:443', undefined]],
    noBrowserBecause: ['no-browser', 'browser-none', 'no-display'].map((reason) => [reason]),
    upReloaded: [
      ['/home/alice/.config/burrow/config.yaml', { started: 1, stopped: 0, restarted: 2, unchanged: 3, failed: 0 }],
      ['/home/alice/.config/burrow/config.yaml', { started: 0, stopped: 1, restarted: 0, unchanged: 0, failed: 1 }],
    ],
    upServiceWritten: [['systemd'], ['launchd']],
    k8sNotInteractive: ['none', 'damaged', { refused: 401 }].map((cached) => ['https://proxy.corp.example.com:443', cached]),
  };
  const sentences: Array<[string, string]> = [];
  for (const [name, entry] of Object.entries(text) as Array<[string, string | ((...args: unknown[]) => string)]>) {
    if (typeof entry === 'string') {
      sentences.push([name, entry]);
      continue;
    }
    const calls = CHOICES[name] ?? [
      ...SAMPLES.map((sample) => Array.from({ length: entry.length }, () => sample)),
      Array.from({ length: entry.length }, () => 0),
      Array.from({ length: entry.length }, () => 1),
      Array.from({ length: entry.length }, () => undefined),
    ];
    for (const args of calls) sentences.push([name, entry(...args)]);
  }

  it('passes every sentence of the catalogue through unchanged', () => {
    assert.ok(sentences.length > Object.keys(text).length, 'functions were called');
    const eaten = sentences.filter(([, sentence]) => redact(sentence) !== sentence).map(([name, sentence]) => `${name}: ${sentence} → ${redact(sentence)}`);
    assert.deepEqual(eaten, []);
  });
  it('still hides a token put into a sentence', () => {
    const line = `${text.reservedHeader('Authorization')} (Authorization: Bearer ${JWT})`;
    assert.ok(!redact(line).includes(JWT));
    assert.equal(redact('Authorization: Bearer opaque-123'), 'Authorization: Bearer …[hidden]');
    assert.equal(redact('X-Pomerium-Authorization: Pomerium opaque-123'), 'X-Pomerium-Authorization: Pomerium …[hidden]');
    assert.equal(redact('a Pomerium-compatible proxy; Pomerium-abc.123'), 'a Pomerium-compatible proxy; Pomerium-…[hidden]');
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
