import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseHeaders } from '../../src/cli/options.js';
import { BurrowError } from '../../src/errors.js';

describe('--header', () => {
  it('parses Name: value pairs, trimming around the colon', () => {
    assert.deepEqual(parseHeaders(['PRIVATE-TOKEN: abc123', 'X-Trace:1', 'X-Empty:']), [
      ['PRIVATE-TOKEN', 'abc123'],
      ['X-Trace', '1'],
      ['X-Empty', ''],
    ]);
  });
  const bad: Array<[string, string]> = [
    ['no colon secretvalue', 'invalid --header "no"'],
    [': value', 'invalid --header ":"'],
    ['Bad Name: v', 'invalid --header "Bad Name"'],
    ['X-A: line\r\nInjected: yes', 'invalid --header "X-A"'],
    ['Host: evil', '--header cannot set Host: burrow sets it itself'],
    ['authorization: Pomerium x', '--header cannot set authorization: burrow sets it itself'],
    ['Sec-WebSocket-Key: x', '--header cannot set Sec-WebSocket-Key: burrow sets it itself'],
  ];
  for (const [input, message] of bad) {
    it(`rejects ${JSON.stringify(input)} without echoing its value`, () => {
      assert.throws(
        () => parseHeaders([input]),
        (e: unknown) => e instanceof BurrowError && e.code === 'BURROW_USAGE' && e.message === message && !e.message.includes('secretvalue'),
      );
    });
  }
});
