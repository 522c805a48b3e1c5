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
    ['authorization: Pomerium x', text.reservedHeader('authorization')],
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
});
