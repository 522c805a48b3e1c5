import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { LineEditor, MAX_PASTE_CHARS, parsePaste } from '../../src/auth/paste.js';
import { shapeProblem } from '../../src/auth/verify.js';
import { parseProxyOrigin } from '../../src/cli/destination.js';
import { text } from '../../src/output/messages.js';

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
/** An ES256 token as a proxy would sign it (64-byte signature). */
function es256(claims: unknown): string {
  const input = `${b64({ alg: 'ES256', typ: 'JWT' })}.${b64(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

describe('shapeProblem: a whole JWT or not', () => {
  const token = es256({ sub: 'alice', groups: Array.from({ length: 300 }, (_, i) => `group-${i}`) });
  it('takes a whole token, with or without exp', () => {
    assert.equal(shapeProblem(token), undefined);
    assert.equal(shapeProblem(es256({ sub: 'x', exp: 2_000_000_000 })), undefined);
    assert.equal(shapeProblem(`${b64({ alg: 'RS256' })}.${b64({})}.${Buffer.alloc(256, 1).toString('base64url')}`), undefined);
  });
  it('refuses a token cut anywhere, mangled, unsigned or not JSON', () => {
    const cuts = [1, 10, 43, 85, 86, 200, token.length - 300, token.length - 87].map((n) => token.slice(0, token.length - n));
    for (const bad of [
      ...cuts,
      token.replace('.', ''),
      `${token}.extra`,
      `${b64({ alg: 'none' })}.${b64({})}.`,
      `${b64({ alg: 'ES256' })}.${b64({})}.`,
      `${b64({ typ: 'JWT' })}.${b64({})}.${'A'.repeat(86)}`,
      `${b64({ alg: 'ES256' })}.${b64([1])}.${'A'.repeat(86)}`,
      `${b64({ alg: 'ES256' })}.bm90IGpzb24.${'A'.repeat(86)}`,
    ]) {
      assert.equal(shapeProblem(bad), text.tokenNotWhole, `${bad.length}: ${bad.slice(-20)}`);
    }
  });
});

describe('parsePaste', () => {
  const callback = 'http://127.0.0.1:4321/burrow/callback/abcDEF';
  const token = es256({ sub: 'alice' });
  it('takes the final address of this sign-in, or the bare token', () => {
    assert.deepEqual(parsePaste(`  ${callback}?pomerium_jwt=${token}\n`, callback), { token });
    assert.deepEqual(parsePaste(`http://localhost:4321/burrow/callback/abcDEF?x=1&pomerium_jwt=${token}`, callback), { token });
    assert.deepEqual(parsePaste(token, callback), { token });
  });
  it('says which way a paste is wrong', () => {
    const cases: Array<[string, string]> = [
      ['yes', text.pasteNotUnderstood],
      ['a.b.c', text.pasteNotUnderstood],
      [`${callback}?code=1`, text.pasteNotUnderstood],
      ['https://[bad', text.pasteNotUnderstood],
      [`http://127.0.0.1:9/burrow/callback/other?pomerium_jwt=${token}`, text.pasteOtherAttempt],
      [`${callback}?pomerium_jwt=${token.slice(0, -5)}`, text.pasteCutOff],
      [`${callback}?pomerium_jwt=${token.slice(0, 40)}`, text.pasteCutOff],
      [token.slice(0, 30), text.pasteCutOff],
    ];
    for (const [line, problem] of cases) assert.deepEqual(parsePaste(line, callback), { problem }, line);
  });
});

describe('LineEditor: the editing raw mode leaves to burrow', () => {
  it('ends lines at Enter (CR or LF), skips empty ones, edits with backspace and Ctrl-U', () => {
    const editor = new LineEditor();
    assert.deepEqual(editor.feed('ab\x7fc\r\r\n  \rxx\x15yz\n'), [
      { kind: 'line', line: 'ac' },
      { kind: 'line', line: 'yz' },
    ]);
  });
  it('Ctrl-C interrupts; Ctrl-D ends pasting on an empty line and ends the line otherwise', () => {
    const editor = new LineEditor();
    assert.deepEqual(editor.feed('ab\x04\x04\x03'), [{ kind: 'line', line: 'ab' }, { kind: 'eof' }, { kind: 'interrupt' }]);
  });
  it('drops escape sequences (bracketed paste, arrows) and control characters; keeps any length', () => {
    const editor = new LineEditor();
    const long = 'x'.repeat(70_000);
    assert.deepEqual(editor.feed(`\x1b[200~${long}\x1b[201~\x1b[D\x1bOA\t\x00é\r`), [{ kind: 'line', line: `${long}é` }]);
  });
  it('a line beyond the bound comes out empty (refused as too long), not cut', () => {
    const editor = new LineEditor();
    assert.deepEqual(editor.feed(`${'y'.repeat(MAX_PASTE_CHARS + 5)}\r`), [{ kind: 'line', line: '' }]);
    assert.deepEqual(editor.feed('ok\r'), [{ kind: 'line', line: 'ok' }]);
  });
});

describe("parseProxyOrigin: burrow login's proxy argument", () => {
  it('takes a URL, a bare host or a page URL, and keeps the origin', () => {
    const origin = (input: string) => parseProxyOrigin(input, 'proxy').origin;
    assert.equal(origin('https://proxy.corp.example.com'), 'https://proxy.corp.example.com:443');
    assert.equal(origin('proxy.corp.example.com'), 'https://proxy.corp.example.com:443');
    assert.equal(origin('Proxy.Corp.Example.com:8443'), 'https://proxy.corp.example.com:8443');
    assert.equal(origin('https://proxy/some/page?x=1#top'), 'https://proxy:443');
    assert.equal(origin('http://127.0.0.1:8080/'), 'http://127.0.0.1:8080');
    assert.equal(origin('[::1]:9443'), 'https://[::1]:9443');
  });
  it('refuses what names no proxy, with BURROW_INVALID_URL', () => {
    for (const input of ['', '  ', 'ftp://proxy', 'https://user:pw@proxy', 'https://proxy:0', 'bad host', 'https://-x-/']) {
      assert.throws(() => parseProxyOrigin(input, 'proxy'), { code: 'BURROW_INVALID_URL' }, input);
    }
  });
});
