/**
 * Rendering of burrow's events: human lines, JSON lines (field names and order, ISO time,
 * redaction), levels, colour decisions, byte and duration formatting, and the spinner's drawing
 * on a terminal-like stream (what it writes, that it clears its line, that other lines clear it).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BurrowError, ExitCode } from '../../src/errors.js';
import { colorLevel } from '../../src/output/color.js';
import { type BurrowEvent, eventLevel } from '../../src/output/events.js';
import { formatBytes, formatMs } from '../../src/output/format.js';
import { createLogger, formatEvent, formatJson } from '../../src/output/log.js';
import { text } from '../../src/output/messages.js';

const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
const conn = { conn: 3, peer: '127.0.0.1:50312', dest: 'git.corp.example.com:22', proxy: 'https://proxy.corp.example.com:443', transport: 'connect' };
/** The start of each line about that connection. */
const CONN = text.connectionPrefix(3, '127.0.0.1:50312');

function collect(level: 'silent' | 'error' | 'warn' | 'info' | 'debug', json = false) {
  const lines: string[] = [];
  const logger = createLogger({ level, json, write: (l) => lines.push(l), now: () => Date.UTC(2026, 0, 2, 3, 4, 5, 678) });
  return { logger, lines };
}

describe('events: human text', () => {
  it('renders each per-connection event as one line with the connection number and peer', () => {
    const { logger, lines } = collect('debug');
    logger.event({ event: 'connecting', ...conn });
    logger.event({ event: 'sign_in_required', ...conn, status: 302 });
    logger.event({ event: 'connected', ...conn, ms: 42 });
    logger.event({ event: 'closed', ...conn, ms: 3210, bytes_up: 1536, bytes_down: 5 * 1024 * 1024, reason: 'remote_closed' });
    logger.event({ event: 'closed', ...conn, ms: 10, bytes_up: 0, bytes_down: null, reason: 'shutdown' });
    assert.deepEqual(lines, [
      `burrow: debug: ${CONN}${text.connecting(conn.dest, conn.proxy, 'connect')}`,
      `burrow: ${CONN}${text.signInRequired(conn.proxy, 302)}`,
      `burrow: ${CONN}${text.connected(conn.dest, '42 ms')}`,
      `burrow: ${CONN}${text.closed('3.2 s', '1.5 KiB', '5.0 MiB', 'remote_closed')}`,
      `burrow: ${CONN}${text.closed('10 ms', '0 B', text.unknownBytes, 'shutdown')}`,
    ]);
  });

  it('renders failures (failed, broken, error) as the one-line error with its hint; a listener\'s name their connection', () => {
    const { logger, lines } = collect('error');
    const failure = { code: 'BURROW_ACCESS_DENIED', exit_code: 4, message: 'access denied by p for d (HTTP 403)', hint: 'ask an admin' };
    logger.event({ event: 'failed', ...conn, ms: 5, ...failure });
    logger.event({ event: 'closed', ...conn, ms: 5, bytes_up: 1, bytes_down: 1, reason: 'broken', ...failure, code: 'BURROW_TUNNEL_BROKEN' });
    logger.event({ event: 'error', ...failure, message: `bad token ${JWT}` });
    logger.event({ event: 'failed', ...conn, peer: 'stdio', ms: 5, ...failure });
    assert.deepEqual(lines, [
      'burrow: #3 127.0.0.1:50312: error: access denied by p for d (HTTP 403) — ask an admin',
      'burrow: #3 127.0.0.1:50312: error: access denied by p for d (HTTP 403) — ask an admin',
      'burrow: error: bad token eyJh…[hidden] — ask an admin',
      'burrow: error: access denied by p for d (HTTP 403) — ask an admin',
    ]);
  });

  it('renders sign_in as the browser line or the address to open, both with the address, at every level but silent', () => {
    const signIn = { event: 'sign_in', proxy: 'https://proxy.corp.example.com:443', url: 'https://proxy.corp.example.com/.pomerium/sign_in?x=1', wait_s: 300 } as const;
    const { logger, lines } = collect('error');
    logger.event({ ...signIn, browser_opened: true });
    logger.event({ ...signIn, browser_opened: false });
    assert.deepEqual(lines, [
      `burrow: ${text.browserOpened(signIn.proxy, '5 min', signIn.url)}`,
      `burrow: ${text.openThisUrl(signIn.proxy, signIn.url)}`,
    ]);
    assert.ok(lines.every((line) => line.endsWith(signIn.url)), 'the address is shown whether a browser was opened or not');
    const silent = collect('silent');
    silent.logger.event({ ...signIn, browser_opened: false });
    assert.deepEqual(silent.lines, []);
  });

  it('levels: connecting is debug, failures are errors, the rest info; notices show at every level but silent', () => {
    const at = (e: BurrowEvent) => eventLevel(e);
    assert.equal(at({ event: 'connecting', ...conn }), 'debug');
    assert.equal(at({ event: 'connected', ...conn, ms: 1 }), 'info');
    assert.equal(at({ event: 'closed', ...conn, ms: 1, bytes_up: 0, bytes_down: 0, reason: 'local_closed' }), 'info');
    assert.equal(at({ event: 'closed', ...conn, ms: 1, bytes_up: 0, bytes_down: 0, reason: 'broken', code: 'X', exit_code: 10, message: 'm' }), 'error');
    assert.equal(at({ event: 'failed', ...conn, ms: 1, code: 'X', exit_code: 7, message: 'm' }), 'error');
    const warn = collect('warn');
    warn.logger.event({ event: 'connected', ...conn, ms: 1 });
    warn.logger.notice('open this address');
    warn.logger.info('not at warn');
    assert.deepEqual(warn.lines, ['burrow: open this address']);
    const silent = collect('silent');
    silent.logger.notice('nothing');
    silent.logger.event({ event: 'failed', ...conn, ms: 1, code: 'X', exit_code: 7, message: 'm' });
    assert.deepEqual(silent.lines, []);
  });
});

describe('events: JSON lines', () => {
  it('event and time first, then the fields as named in the schema; ISO time', () => {
    const line = formatJson({ event: 'connected', ...conn, ms: 42 }, Date.UTC(2026, 0, 2, 3, 4, 5, 678));
    assert.equal(
      line,
      '{"event":"connected","time":"2026-01-02T03:04:05.678Z","conn":3,"peer":"127.0.0.1:50312","dest":"git.corp.example.com:22","proxy":"https://proxy.corp.example.com:443","transport":"connect","ms":42}',
    );
  });

  it('with json, every kind of output is a JSON line: log lines, failures, events; never a token', () => {
    const { logger, lines } = collect('debug', true);
    logger.warn(`careful with Authorization: Pomerium ${JWT}`);
    logger.notice('open this address: https://idp.example/?x=1');
    logger.failure(new BurrowError('BURROW_AUTH_REQUIRED', ExitCode.authRequired, `refused ${JWT}`));
    logger.event({ event: 'closed', ...conn, ms: 9, bytes_up: 10, bytes_down: null, reason: 'local_closed' });
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      parsed.map((p) => [p.event, p.level ?? p.code ?? p.reason]),
      [
        ['log', 'warn'],
        ['log', 'notice'],
        ['error', 'BURROW_AUTH_REQUIRED'],
        ['closed', 'local_closed'],
      ],
    );
    assert.equal(parsed[2]!.exit_code, 3);
    assert.equal(parsed[3]!.bytes_down, null);
    for (const line of lines) assert.ok(!line.includes(JWT.slice(10)), `no token in ${line}`);
  });

  it('formatEvent gives the bare sentence (no prefix) for every event kind', () => {
    assert.equal(formatEvent({ event: 'shutdown', open: 2 }), text.shuttingDown(2));
    assert.equal(
      formatEvent({ event: 'listening', address: '127.0.0.1:2202', dest: 'g:22', proxy: 'https://p:443', transport: 'connect' }),
      text.listening('127.0.0.1:2202', 'g:22', 'https://p:443'),
    );
  });
});

describe('colours', () => {
  it('FORCE_COLOR decides when set (over NO_COLOR); else NO_COLOR, a non-terminal or TERM=dumb mean none', () => {
    assert.equal(colorLevel({ FORCE_COLOR: '1' }, false), 1);
    assert.equal(colorLevel({ FORCE_COLOR: '' }, false), 1);
    assert.equal(colorLevel({ FORCE_COLOR: 'true' }, false), 1);
    assert.equal(colorLevel({ FORCE_COLOR: '3', NO_COLOR: '1' }, false), 3);
    assert.equal(colorLevel({ FORCE_COLOR: '0' }, true), 0);
    assert.equal(colorLevel({ FORCE_COLOR: 'false' }, true), 0);
    assert.equal(colorLevel({ NO_COLOR: '1', TERM: 'xterm' }, true), 0);
    assert.equal(colorLevel({ TERM: 'xterm-256color' }, false), 0);
    assert.equal(colorLevel({ TERM: 'dumb' }, true), 0);
    // An empty NO_COLOR does not count (no-color.org).
    assert.equal(colorLevel({ NO_COLOR: '', FORCE_COLOR: '2' }, false), 2);
  });

  it('a logger writing to a stream with FORCE_COLOR colours labels; with NO_COLOR it does not', () => {
    const out: string[] = [];
    const stream = { write: (s: string) => out.push(s), isTTY: false };
    createLogger({ level: 'warn', stream, env: { FORCE_COLOR: '1' } }).warn('w');
    createLogger({ level: 'warn', stream, env: { NO_COLOR: '1' } }).warn('w');
    assert.equal(out[0], 'burrow: \x1b[33mwarning:\x1b[39m w\n');
    assert.equal(out[1], 'burrow: warning: w\n');
  });
});

describe('spinner', () => {
  function terminal(isTTY: boolean, env: NodeJS.ProcessEnv = { TERM: 'xterm' }) {
    const out: string[] = [];
    let clock = 0;
    const logger = createLogger({ level: 'info', stream: { write: (s: string) => out.push(s), isTTY }, env: { NO_COLOR: '1', ...env }, now: () => clock });
    return { logger, out, tick: (ms: number) => (clock += ms) };
  }

  it('draws in place on a terminal, shows the seconds waited, and clears its line when stopped', (t) => {
    // The spinner's timer is node:test's fake one; its clock is the logger's injected `now`.
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
    const term = terminal(true);
    const stop = term.logger.spinner('waiting for the sign-in in your browser');
    assert.equal(term.out[0], '\r\x1b[K⠋ waiting for the sign-in in your browser 0 s');
    term.tick(2500);
    t.mock.timers.tick(250);
    assert.equal(term.out.length, 3, 'redrawn every 100 ms');
    assert.equal(term.out.at(-1), '\r\x1b[K⠹ waiting for the sign-in in your browser 2 s');
    // A line logged meanwhile replaces the spinner's line instead of being appended to it.
    term.logger.info('hello');
    assert.equal(term.out.at(-1), '\r\x1b[Kburrow: hello\n');
    stop();
    assert.equal(term.out.at(-1), '\r\x1b[K');
    const count = term.out.length;
    t.mock.timers.tick(1000);
    assert.equal(term.out.length, count, 'no frames after stop');
    term.logger.info('after');
    assert.equal(term.out.at(-1), 'burrow: after\n');
  });

  it('draws nothing when not a terminal, with json, at silent, or on TERM=dumb', () => {
    for (const t of [terminal(false), terminal(true, { TERM: 'dumb' })]) {
      t.logger.spinner('x')();
      assert.deepEqual(t.out, []);
    }
    const out: string[] = [];
    const stream = { write: (s: string) => out.push(s), isTTY: true };
    createLogger({ level: 'info', json: true, stream, env: {} }).spinner('x')();
    createLogger({ level: 'silent', stream, env: {} }).spinner('x')();
    assert.deepEqual(out, []);
  });
});

describe('formatting', () => {
  it('bytes and milliseconds', () => {
    assert.deepEqual([0, 512, 1023, 1536, 10 * 1024, 100_000, 5 * 1024 ** 2, 3 * 1024 ** 3].map(formatBytes), [
      '0 B',
      '512 B',
      '1023 B',
      '1.5 KiB',
      '10 KiB',
      '98 KiB',
      '5.0 MiB',
      '3.0 GiB',
    ]);
    assert.deepEqual([0, 999, 1000, 3210, 42_000, 600_000].map(formatMs), ['0 ms', '999 ms', '1.0 s', '3.2 s', '42 s', '10 min']);
  });
});
