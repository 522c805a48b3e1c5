/** Assertions shared by the e2e tests. */
import assert from 'node:assert/strict';

/**
 * Asserts burrow's failure contract: exactly one line on stderr, the message then a hint after
 * "—", no stack trace, never the token. Returns the line.
 */
export function oneLineFailure(stderr: string, token?: string): string {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `exactly one line on stderr, got:\n${stderr}`);
  const line = lines[0]!;
  assert.match(line, /^burrow: error: .+ — .+/, 'message, then a hint');
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
  if (token) assert.ok(!stderr.includes(token), 'the token is never printed');
  return line;
}
