import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseHeaders } from '../../src/cli/options.js';
import { BurrowError } from '../../src/errors.js';
import { text } from '../../src/output/messages.js';

describe('--header', () => {
  it('parses Name: value pairs, trimming around the colon', () => {
    assert.deepEqual(parseHeaders(['PRIVATE-TOKEN: abc123', 'X-Trace:1', 'X-Empty:']), [
      ['PRIVATE-TOKEN', 'abc123'],
      ['X-Trace', '1'],
      ['X-Empty', ''],
    ]);
  });
  const bad: Array<[string, string]> = [
    ['no colon secretvalue', text.invalidHeader('no')],
    [': value', text.invalidHeader(':')],
    ['Bad Name: v', text.invalidHeader('Bad Name')],
    ['X-A: line\r\nInjected: yes', text.invalidHeader('X-A')],
    ['Host: evil', text.reservedHeader('Host')],
    ['Sec-WebSocket-Key: x', text.reservedHeader('Sec-WebSocket-Key')],
  ];
  for (const [input, message] of bad) {
    it(`rejects ${JSON.stringify(input)} without echoing its value`, () => {
      assert.throws(
        () => parseHeaders([input]),
        (e: unknown) => e instanceof BurrowError && e.code === 'BURROW_USAGE' && e.exitCode === 2 && e.message === message && !e.message.includes('secretvalue'),
      );
    });
  }
  // Headers that would put a token on the command line (or a second User-Agent): each its own sentence and hint.
  const refused: Array<[string, string, string]> = [
    ['authorization: Pomerium secretvalue', text.tokenHeader('authorization'), text.tokenHeaderHint],
    ['Authorization: Bearer secretvalue', text.tokenHeader('Authorization'), text.tokenHeaderHint],
    ['X-Pomerium-Authorization: secretvalue', text.tokenHeader('X-Pomerium-Authorization'), text.tokenHeaderHint],
    ['Cookie: _pomerium=secretvalue', text.sessionCookieHeader('Cookie'), text.sessionCookieHeaderHint],
    ['cookie: a=1; _pomerium_csrf=secretvalue', text.sessionCookieHeader('cookie'), text.sessionCookieHeaderHint],
    ['User-Agent: secretvalue', text.userAgentHeader('User-Agent'), text.userAgentHeaderHint],
    ['Proxy-Authorization: Basic secretvalue', text.forwardProxyHeader('Proxy-Authorization'), text.forwardProxyHeaderHint],
    ['Host: evil', text.reservedHeader('Host'), text.reservedHeaderHint],
  ];
  for (const [input, message, hint] of refused) {
    it(`refuses ${JSON.stringify(input.split(':')[0])} with its own hint`, () => {
      assert.throws(
        () => parseHeaders([input]),
        (e: unknown) => e instanceof BurrowError && e.exitCode === 2 && e.message === message && e.hint === hint && !`${e.message}${e.hint}`.includes('secretvalue'),
      );
    });
  }
  it('gives every refusal a different hint', () => {
    const hints = new Set(refused.map(([, , hint]) => hint));
    assert.equal(hints.size, 5);
  });
  it('takes other cookies', () => {
    assert.deepEqual(parseHeaders(['Cookie: session=abc']), [['Cookie', 'session=abc']]);
  });
});
